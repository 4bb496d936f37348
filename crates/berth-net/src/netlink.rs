//! A minimal synchronous rtnetlink client: just the requests berth needs (bridges, veth pairs,
//! addresses, routes, link state). One socket, one request at a time, each acknowledged.
//!
//! A netlink socket talks to the network namespace it was created in, so callers that work
//! inside a container's namespace create the socket on a thread that has joined it (see
//! [`crate::netns`]).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_REPLACE: u16 = 0x100;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 1 << 15;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

const IFF_UP: u32 = 1;
const AF_INET: u8 = 2;
const AF_UNSPEC: u8 = 0;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

/// The bits of a C `int` (an interface index or a descriptor) as the `u32` attribute the kernel
/// reads back as an `int`.
fn bits(v: i32) -> u32 {
    u32::from_ne_bytes(v.to_ne_bytes())
}

/// A message under construction: header, fixed part, attributes (nested ones via `nest`).
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(ty: u16, flags: u16) -> Msg {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn ifinfo(mut self, family: u8, index: i32, flags: u32, change: u32) -> Msg {
        self.push_ifinfo(family, index, flags, change);
        self
    }

    fn push_ifinfo(&mut self, family: u8, index: i32, flags: u32, change: u32) {
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
    }

    fn raw(mut self, bytes: &[u8]) -> Msg {
        self.buf.extend_from_slice(bytes);
        self
    }

    fn align(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        self.align();
        let len = u16::try_from(4 + data.len()).expect("netlink attributes berth builds are small");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.align();
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.attr(ty, &d);
    }

    fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    fn nest(&mut self, ty: u16) {
        self.align();
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }

    fn end_nest(&mut self) {
        let start = self.nests.pop().expect("unbalanced netlink nest");
        let len =
            u16::try_from(self.buf.len() - start).expect("netlink nests berth builds are small");
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        self.align();
        let len = u32::try_from(self.buf.len()).expect("netlink messages berth builds are small");
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// A route netlink socket bound to the network namespace of the thread that opened it.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").field("fd", &self.fd).finish()
    }
}

impl Netlink {
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value (kernel picks the pid).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::sa_family_t::try_from(libc::AF_NETLINK).expect("AF_NETLINK is 16");
        // SAFETY: `sa` is a valid sockaddr_nl and the length matches its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_nl>())
                    .expect("sockaddr_nl is 12 bytes"),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Netlink { fd, seq: 1 })
    }

    /// Send one request and wait for its acknowledgement; returns any data messages received
    /// before the ack (as `(type, payload)`).
    fn call(&mut self, msg: Msg) -> io::Result<Vec<(u16, Vec<u8>)>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let buf = msg.finish(seq);
        // SAFETY: `buf` is a valid initialised buffer of the given length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 32 * 1024];
        // Bounded: the kernel answers every request with at most a few messages then the ack.
        for _ in 0..64 {
            // SAFETY: `rbuf` is a writable buffer of the given length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), rbuf.as_mut_ptr().cast(), rbuf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let data = &rbuf[..n.unsigned_abs()];
            let mut off = 0;
            while off + NLMSG_HDRLEN <= data.len() {
                let len = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap()) as usize;
                let ty = u16::from_ne_bytes(data[off + 4..off + 6].try_into().unwrap());
                let mseq = u32::from_ne_bytes(data[off + 8..off + 12].try_into().unwrap());
                if len < NLMSG_HDRLEN || off + len > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink reply",
                    ));
                }
                let payload = &data[off + NLMSG_HDRLEN..off + len];
                off += (len + 3) & !3;
                if mseq != seq {
                    continue;
                }
                match ty {
                    NLMSG_ERROR => {
                        let code = i32::from_ne_bytes(payload[0..4].try_into().unwrap());
                        if code == 0 {
                            return Ok(out);
                        }
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                    NLMSG_DONE => return Ok(out),
                    _ => out.push((ty, payload.to_vec())),
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no netlink acknowledgement",
        ))
    }

    /// Index of a link by name, or `None` if there is no such link.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<i32>> {
        let mut m = Msg::new(RTM_GETLINK, 0).ifinfo(AF_UNSPEC, 0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        match self.call(m) {
            Ok(msgs) => {
                for (ty, p) in msgs {
                    if ty == RTM_NEWLINK && p.len() >= 8 {
                        return Ok(Some(i32::from_ne_bytes(p[4..8].try_into().unwrap())));
                    }
                }
                Ok(None)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create a bridge (up). Returns false if it already existed.
    pub fn add_bridge(&mut self, name: &str, mtu: Option<u32>) -> io::Result<bool> {
        let mut m =
            Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(AF_UNSPEC, 0, IFF_UP, IFF_UP);
        m.attr_str(IFLA_IFNAME, name);
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        m.nest(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "bridge");
        m.end_nest();
        match self.call(m) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Create a veth pair: `host` (in this namespace, enslaved to `master`, up) and `peer`
    /// (moved into the namespace `peer_ns`, with MAC `peer_mac`).
    pub fn add_veth(
        &mut self,
        host: &str,
        master: i32,
        peer: &str,
        peer_ns: RawFd,
        peer_mac: [u8; 6],
        mtu: Option<u32>,
    ) -> io::Result<()> {
        let mut m =
            Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(AF_UNSPEC, 0, IFF_UP, IFF_UP);
        m.attr_str(IFLA_IFNAME, host);
        m.attr_u32(IFLA_MASTER, bits(master));
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        m.nest(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        m.nest(IFLA_INFO_DATA);
        m.nest(VETH_INFO_PEER);
        m.align();
        m.push_ifinfo(AF_UNSPEC, 0, 0, 0);
        m.attr_str(IFLA_IFNAME, peer);
        m.attr(IFLA_ADDRESS, &peer_mac);
        m.attr_u32(IFLA_NET_NS_FD, bits(peer_ns));
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        m.end_nest();
        m.end_nest();
        m.end_nest();
        self.call(m).map(|_| ())
    }

    /// Delete a link by name. Returns false if it did not exist.
    pub fn del_link(&mut self, name: &str) -> io::Result<bool> {
        let mut m = Msg::new(RTM_DELLINK, 0).ifinfo(AF_UNSPEC, 0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        match self.call(m) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Bring a link up.
    pub fn set_up(&mut self, index: i32) -> io::Result<()> {
        let m = Msg::new(RTM_NEWLINK, 0).ifinfo(AF_UNSPEC, index, IFF_UP, IFF_UP);
        self.call(m).map(|_| ())
    }

    /// Add an IPv4 address. Returns false if it was already there.
    pub fn add_addr(&mut self, index: i32, addr: Ipv4Addr, prefix: u8) -> io::Result<bool> {
        let mut fixed = vec![AF_INET, prefix, 0, RT_SCOPE_UNIVERSE];
        fixed.extend_from_slice(&index.to_ne_bytes());
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL).raw(&fixed);
        m.attr(IFA_LOCAL, &addr.octets());
        m.attr(IFA_ADDRESS, &addr.octets());
        let host_bits = 32 - u32::from(prefix);
        if prefix < 31 {
            let bcast =
                u32::from(addr) | u32::try_from((1u64 << host_bits) - 1).unwrap_or(u32::MAX);
            m.attr(IFA_BROADCAST, &Ipv4Addr::from(bcast).octets());
        }
        match self.call(m) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Add (or replace) a route to `dst/prefix` via `gateway` (or on-link) out of `oif`.
    pub fn add_route(
        &mut self,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
        oif: i32,
    ) -> io::Result<()> {
        let fixed = [
            AF_INET,
            prefix,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
            0,
            0,
            0,
            0,
        ];
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE).raw(&fixed);
        if prefix > 0 {
            m.attr(RTA_DST, &dst.octets());
        }
        if let Some(gw) = gateway {
            m.attr(RTA_GATEWAY, &gw.octets());
        }
        m.attr_u32(RTA_OIF, bits(oif));
        self.call(m).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE).ifinfo(AF_UNSPEC, 3, IFF_UP, IFF_UP);
        m.attr_str(IFLA_IFNAME, "ab");
        m.nest(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        m.end_nest();
        let b = m.finish(7);
        assert_eq!(b.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        // ifname attr right after the 16-byte ifinfomsg: len 4+3=7, padded to 8.
        assert_eq!(u16::from_ne_bytes(b[32..34].try_into().unwrap()), 7);
        // nest length covers the kind attribute (4 + 4 + "veth\0" padded = 16).
        assert_eq!(u16::from_ne_bytes(b[40..42].try_into().unwrap()), 16);
    }
}
