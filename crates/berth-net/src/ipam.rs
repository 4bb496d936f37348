//! Address management: subnets for new networks and addresses inside a subnet. Pure functions;
//! callers run them inside a write transaction so concurrent berth processes never collide.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// True if two subnets share any address.
pub fn overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// First subnet of `pool` that overlaps none of `taken`.
pub fn choose_subnet(pool: &[Ipv4Net], taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    pool.iter()
        .find(|c| !taken.iter().any(|t| overlap(c, t)))
        .copied()
}

/// The default gateway of a subnet: its first host address.
pub fn default_gateway(net: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

/// A free host address of `net`, skipping the gateway and `used`, searching round-robin from
/// host offset `start` (so a just-released address is not handed out again at once).
/// Returns the address and the offset to start from next time.
pub fn alloc_ip(
    net: &Ipv4Net,
    gateway: Ipv4Addr,
    used: &HashSet<Ipv4Addr>,
    start: u32,
) -> Option<(Ipv4Addr, u32)> {
    let base = u32::from(net.network());
    let prefix = net.prefix_len();
    if prefix > 30 {
        return None;
    }
    // prefix <= 30 (checked above), so the count fits in a u32.
    let hosts = u32::try_from((1u64 << (32 - prefix)) - 2).ok()?; // offsets 1..=hosts
    for i in 0..hosts {
        let off = 1 + (start.saturating_sub(1) + i) % hosts;
        let ip = Ipv4Addr::from(base + off);
        if ip != gateway && !used.contains(&ip) {
            return Some((ip, off + 1));
        }
    }
    None
}

/// Docker-style MAC for an address: 02:42 followed by the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Parse `02:42:0a:00:00:02` (or with `-`); `None` if malformed.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// `--mac-address` as Docker checks it: six hex bytes, unicast (the first byte's lowest bit
/// clear).
///
/// Errors: a message naming the value.
pub fn check_mac(s: &str) -> std::result::Result<(), String> {
    match parse_mac(s) {
        Some(m) if m[0] & 1 == 0 => Ok(()),
        Some(_) => Err(format!(
            "invalid --mac-address {s:?}: a multicast address cannot be an interface's; clear the lowest bit of the first byte"
        )),
        None => Err(format!(
            "invalid --mac-address {s:?}: use six hex bytes such as 02:42:ac:11:00:02"
        )),
    }
}

/// Pretty-print a MAC as lowercase `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// IPv4 routes of the host (main table, from /proc/net/route), default route excluded.
pub fn host_routes() -> Vec<(String, Ipv4Net)> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return vec![];
    };
    parse_proc_route(&text)
}

/// Parse the text of `/proc/net/route` into `(device, destination subnet)` pairs (the default route
/// is skipped).
pub fn parse_proc_route(text: &str) -> Vec<(String, Ipv4Net)> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dst), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
        else {
            continue;
        };
        // The kernel prints the network-order bytes as a native-endian number.
        let dst = Ipv4Addr::from(dst.to_ne_bytes());
        let len = u8::try_from(mask.count_ones()).unwrap_or(32);
        if len == 0 {
            continue;
        }
        if let Ok(n) = Ipv4Net::new(dst, len) {
            out.push((f[0].to_string(), n.trunc()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn subnets() {
        let pool = [n("172.18.0.0/16"), n("172.19.0.0/16"), n("10.89.0.0/24")];
        assert_eq!(choose_subnet(&pool, &[]), Some(n("172.18.0.0/16")));
        assert_eq!(
            choose_subnet(&pool, &[n("172.18.5.0/24")]),
            Some(n("172.19.0.0/16"))
        );
        assert_eq!(
            choose_subnet(&pool, &[n("172.16.0.0/12")]),
            Some(n("10.89.0.0/24"))
        );
        assert_eq!(
            choose_subnet(&pool, &[n("0.0.0.0/1"), n("128.0.0.0/1")]),
            None
        );
        assert_eq!(
            default_gateway(&n("10.89.3.0/24")),
            Ipv4Addr::new(10, 89, 3, 1)
        );
    }

    #[test]
    fn addresses() {
        let net = n("10.0.0.0/29"); // hosts .1-.6
        let gw = default_gateway(&net);
        let mut used = HashSet::new();
        let mut next = 0;
        let mut got = vec![];
        while let Some((ip, nx)) = alloc_ip(&net, gw, &used, next) {
            used.insert(ip);
            got.push(ip);
            next = nx;
        }
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(got[4], Ipv4Addr::new(10, 0, 0, 6));
        // Release .3: the next allocation wraps around and finds it.
        used.remove(&Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(
            alloc_ip(&net, gw, &used, next).unwrap().0,
            Ipv4Addr::new(10, 0, 0, 3)
        );
        // Round robin: with .2 and .3 free and the cursor after .3, .4.. are tried first.
        used.remove(&Ipv4Addr::new(10, 0, 0, 2));
        used.remove(&Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(
            alloc_ip(&net, gw, &used, 4).unwrap().0,
            Ipv4Addr::new(10, 0, 0, 5)
        );
        assert!(alloc_ip(&n("10.0.0.0/31"), gw, &HashSet::new(), 0).is_none());
    }

    #[test]
    fn proc_route() {
        let t =
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = parse_proc_route(t);
        assert_eq!(r, vec![("eth0".to_string(), n("192.0.2.0/24"))]);
    }

    #[test]
    fn mac() {
        assert_eq!(
            mac_string(mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
    }
}
