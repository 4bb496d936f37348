//! A small synchronous rtnetlink client over the maintained `netlink-sys` socket and the
//! `netlink-packet-route` message types: just the requests berth needs (bridges, veth pairs,
//! addresses, routes, link state). One socket, one request at a time, each acknowledged, each
//! answer awaited at most [`REPLY_TIMEOUT`].
//!
//! A netlink socket talks to the network namespace it was created in, so callers that work
//! inside a container's namespace create the socket on a thread that has joined it (see
//! [`crate::netns`]).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkMessage, NetlinkPayload, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK,
    NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    LinkMessageBuffer,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::Socket;

/// The longest berth waits for the kernel's answer to one request (it answers at once unless
/// something is badly wrong; without a bound a lost answer would hang the command).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Receive buffer size in bytes: one `RTM_NEWLINK` answer (a few KiB with statistics) fits.
const RECV_BUF: usize = 32 * 1024;

/// Datagrams read per request before giving up (the kernel sends a few then the ack).
const MAX_DATAGRAMS: usize = 64;

/// A data message received before the acknowledgement: netlink message type and payload.
type Reply = (u16, Vec<u8>);

/// The bits of a C `int` (an interface index) as the `u32` the route messages carry.
fn index_bits(v: i32) -> u32 {
    u32::from_ne_bytes(v.to_ne_bytes())
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed netlink reply: {what}"),
    )
}

/// Read the messages of one received datagram that answer request `seq`: data messages go to
/// `out`; returns `Ok(true)` on the acknowledgement (or `NLMSG_DONE`), the request's error as
/// an `io::Error` with the kernel's errno, and `InvalidData` for a truncated or malformed
/// message (every length is checked before use).
fn read_replies(data: &[u8], seq: u32, out: &mut Vec<Reply>) -> io::Result<bool> {
    let mut off = 0;
    while off < data.len() {
        let rest = &data[off..];
        let buf = NetlinkBuffer::new_checked(rest).map_err(invalid)?;
        let len = usize::try_from(buf.length()).map_err(invalid)?;
        let (ty, mseq) = (buf.message_type(), buf.sequence_number());
        // Messages are 4-byte aligned; the last one may end without padding.
        off = off.saturating_add((len + 3) & !3);
        if mseq != seq {
            continue;
        }
        match ty {
            NLMSG_ERROR | NLMSG_DONE => {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len])
                    .map_err(invalid)?;
                match msg.payload {
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(true),
                        Some(_) => return Err(e.to_io()),
                    },
                    _ => return Ok(true),
                }
            }
            _ => out.push((ty, buf.payload().to_vec())),
        }
    }
    Ok(false)
}

/// A route netlink socket bound to the network namespace of the thread that opened it.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::os::fd::AsRawFd;
        f.debug_struct("Netlink")
            .field("fd", &self.sock.as_raw_fd())
            .finish()
    }
}

impl Netlink {
    /// Open and bind a `NETLINK_ROUTE` socket in the calling thread's network namespace, with
    /// a receive timeout of [`REPLY_TIMEOUT`].
    ///
    /// # Errors
    /// The `socket(2)`, `bind(2)` or `setsockopt(2)` error.
    pub fn open() -> io::Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        rustix::net::sockopt::set_socket_timeout(
            &sock,
            rustix::net::sockopt::Timeout::Recv,
            Some(REPLY_TIMEOUT),
        )?;
        Ok(Netlink { sock, seq: 1 })
    }

    /// Send one request (`NLM_F_REQUEST | NLM_F_ACK | flags`) and wait for its
    /// acknowledgement; returns the data messages received before it.
    ///
    /// # Errors
    /// The kernel's error for the request (its errno), `TimedOut` when no answer comes within
    /// [`REPLY_TIMEOUT`], `InvalidData` for a malformed answer.
    fn call(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<Reply>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        req.header.sequence_number = seq;
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; RECV_BUF];
        for _ in 0..MAX_DATAGRAMS {
            let n = match self.sock.recv(&mut &mut rbuf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no netlink answer within {} s", REPLY_TIMEOUT.as_secs()),
                    ))
                }
                Err(e) => return Err(e),
            };
            if read_replies(&rbuf[..n.min(rbuf.len())], seq, &mut out)? {
                return Ok(out);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no netlink acknowledgement",
        ))
    }

    /// Index of a link by name, or `None` if there is no such link.
    ///
    /// # Errors
    /// Any netlink error but `ENODEV`.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<i32>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.call(RouteNetlinkMessage::GetLink(m), 0) {
            Ok(msgs) => {
                for (ty, p) in msgs {
                    if ty == libc::RTM_NEWLINK {
                        let b = LinkMessageBuffer::new_checked(&p[..]).map_err(invalid)?;
                        return Ok(Some(i32::from_ne_bytes(b.link_index().to_ne_bytes())));
                    }
                }
                Ok(None)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create a bridge (up), with `mtu` bytes when given. Returns false if it already existed.
    ///
    /// # Errors
    /// Any netlink error but `EEXIST`.
    pub fn add_bridge(&mut self, name: &str, mtu: Option<u32>) -> io::Result<bool> {
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        match self.call(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Create a veth pair: `host` (in this namespace, enslaved to the link with index
    /// `master`, up) and `peer` (moved into the namespace open at descriptor `peer_ns`, with
    /// MAC `peer_mac`); both with `mtu` bytes when given.
    ///
    /// # Errors
    /// Any netlink error (`EEXIST` when `host` exists).
    pub fn add_veth(
        &mut self,
        host: &str,
        master: i32,
        peer: &str,
        peer_ns: RawFd,
        peer_mac: [u8; 6],
        mtu: Option<u32>,
    ) -> io::Result<()> {
        self.call(
            RouteNetlinkMessage::NewLink(veth_message(host, master, peer, peer_ns, peer_mac, mtu)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(|_| ())
    }

    /// Delete a link by name. Returns false if it did not exist.
    ///
    /// # Errors
    /// Any netlink error but `ENODEV`.
    pub fn del_link(&mut self, name: &str) -> io::Result<bool> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.call(RouteNetlinkMessage::DelLink(m), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Bring the link with index `index` up.
    ///
    /// # Errors
    /// Any netlink error.
    pub fn set_up(&mut self, index: i32) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index_bits(index);
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        self.call(RouteNetlinkMessage::NewLink(m), 0).map(|_| ())
    }

    /// Add the IPv4 address `addr/prefix` (with its broadcast address) to the link with index
    /// `index`. Returns false if it was already there.
    ///
    /// # Errors
    /// Any netlink error but `EEXIST`.
    pub fn add_addr(&mut self, index: i32, addr: Ipv4Addr, prefix: u8) -> io::Result<bool> {
        match self.call(
            RouteNetlinkMessage::NewAddress(addr_message(index, addr, prefix)),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Add (or replace) a route in the main table to `dst/prefix` via `gateway` (or on-link)
    /// out of the link with index `oif`.
    ///
    /// # Errors
    /// Any netlink error.
    pub fn add_route(
        &mut self,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
        oif: i32,
    ) -> io::Result<()> {
        self.call(
            RouteNetlinkMessage::NewRoute(route_message(dst, prefix, gateway, oif)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(|_| ())
    }
}

/// The `RTM_NEWLINK` body that creates a veth pair (see [`Netlink::add_veth`]).
fn veth_message(
    host: &str,
    master: i32,
    peer: &str,
    peer_ns: RawFd,
    peer_mac: [u8; 6],
    mtu: Option<u32>,
) -> LinkMessage {
    let mut p = LinkMessage::default();
    p.attributes.push(LinkAttribute::IfName(peer.to_string()));
    p.attributes.push(LinkAttribute::Address(peer_mac.to_vec()));
    p.attributes.push(LinkAttribute::NetNsFd(peer_ns));
    let mut m = LinkMessage::default();
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes.push(LinkAttribute::IfName(host.to_string()));
    m.attributes
        .push(LinkAttribute::Controller(index_bits(master)));
    if let Some(mtu) = mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
        p.attributes.push(LinkAttribute::Mtu(mtu));
    }
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
    ]));
    m
}

/// The `RTM_NEWADDR` body for `addr/prefix` on link `index` (see [`Netlink::add_addr`]).
fn addr_message(index: i32, addr: Ipv4Addr, prefix: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.prefix_len = prefix;
    m.header.scope = AddressScope::Universe;
    m.header.index = index_bits(index);
    m.attributes.push(AddressAttribute::Local(IpAddr::V4(addr)));
    m.attributes
        .push(AddressAttribute::Address(IpAddr::V4(addr)));
    if prefix < 31 {
        let host_bits = 32 - u32::from(prefix);
        let bcast = u32::from(addr) | u32::try_from((1u64 << host_bits) - 1).unwrap_or(u32::MAX);
        m.attributes
            .push(AddressAttribute::Broadcast(Ipv4Addr::from(bcast)));
    }
    m
}

/// The `RTM_NEWROUTE` body (see [`Netlink::add_route`]).
fn route_message(dst: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>, oif: i32) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.destination_prefix_length = prefix;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    if prefix > 0 {
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
    }
    if let Some(gw) = gateway {
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
    }
    m.attributes.push(RouteAttribute::Oif(index_bits(oif)));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(msg: RouteNetlinkMessage, seq: u32) -> Vec<u8> {
        let mut m = NetlinkMessage::from(msg);
        m.header.sequence_number = seq;
        m.finalize();
        let mut b = vec![0u8; m.buffer_len()];
        m.serialize(&mut b);
        b
    }

    /// An `NLMSG_ERROR` answer to `seq` with `code` (0 = ack) and `extra` payload bytes.
    fn error_msg(seq: u32, code: i32, extra: usize) -> Vec<u8> {
        let len = 16 + 4 + extra;
        let mut b = Vec::new();
        b.extend_from_slice(&u32::try_from(len).unwrap().to_ne_bytes());
        b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        b.extend_from_slice(&0u16.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&code.to_ne_bytes());
        b.resize(len, 0);
        b
    }

    #[test]
    fn an_ack_ends_the_request() {
        let mut out = Vec::new();
        assert!(read_replies(&error_msg(5, 0, 16), 5, &mut out).unwrap());
        assert!(out.is_empty());
    }

    #[test]
    fn a_kernel_error_keeps_its_errno() {
        let mut out = Vec::new();
        let e = read_replies(&error_msg(5, -libc::EEXIST, 16), 5, &mut out).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
    }

    #[test]
    fn answers_to_other_requests_are_skipped() {
        let mut data = error_msg(4, -libc::ENODEV, 16);
        data.extend(error_msg(5, 0, 0));
        let mut out = Vec::new();
        assert!(read_replies(&data, 5, &mut out).unwrap());
    }

    #[test]
    fn a_truncated_error_payload_is_an_error_not_a_panic() {
        // Length field 18: the 16-byte header and only 2 of the 4 error-code bytes.
        let mut data = error_msg(5, 0, 0);
        data.truncate(18);
        data[0..4].copy_from_slice(&18u32.to_ne_bytes());
        let mut out = Vec::new();
        let e = read_replies(&data, 5, &mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_length_beyond_the_datagram_is_an_error() {
        let mut data = error_msg(5, 0, 0);
        data[0..4].copy_from_slice(&400u32.to_ne_bytes());
        let mut out = Vec::new();
        assert_eq!(
            read_replies(&data, 5, &mut out).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(read_replies(&data[..10], 5, &mut out).is_err());
    }

    #[test]
    fn data_before_the_ack_is_returned() {
        let mut link = LinkMessage::default();
        link.header.index = 7;
        link.attributes.push(LinkAttribute::IfName("br0".into()));
        let mut data = bytes(RouteNetlinkMessage::NewLink(link), 9);
        data.extend(error_msg(9, 0, 0));
        let mut out = Vec::new();
        assert!(read_replies(&data, 9, &mut out).unwrap());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, libc::RTM_NEWLINK);
        let b = LinkMessageBuffer::new_checked(&out[0].1[..]).unwrap();
        assert_eq!(b.link_index(), 7);
    }

    #[test]
    fn veth_request_round_trips() {
        let m = veth_message("vethab", 3, "eth0", 9, [2, 0, 0, 0, 0, 1], Some(1400));
        let b = bytes(RouteNetlinkMessage::NewLink(m.clone()), 1);
        assert_eq!(b.len() % 4, 0);
        let back = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&b).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) = back.payload else {
            panic!("not a link message");
        };
        assert!(l.attributes.contains(&LinkAttribute::Controller(3)));
        assert!(l.attributes.contains(&LinkAttribute::Mtu(1400)));
        assert!(l.header.flags.contains(LinkFlags::Up));
    }

    #[test]
    fn address_carries_broadcast_below_31_bits() {
        let m = addr_message(4, Ipv4Addr::new(10, 88, 0, 1), 16);
        assert!(m
            .attributes
            .contains(&AddressAttribute::Broadcast(Ipv4Addr::new(
                10, 88, 255, 255
            ))));
        let m = addr_message(4, Ipv4Addr::new(10, 88, 0, 1), 31);
        assert_eq!(m.attributes.len(), 2);
    }

    #[test]
    fn default_route_has_no_destination() {
        let m = route_message(
            Ipv4Addr::UNSPECIFIED,
            0,
            Some(Ipv4Addr::new(10, 88, 0, 1)),
            2,
        );
        assert_eq!(m.header.table, RouteHeader::RT_TABLE_MAIN);
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Destination(_))));
        assert!(m.attributes.contains(&RouteAttribute::Oif(2)));
    }
}
