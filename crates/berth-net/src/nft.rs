//! nftables: berth's rules live only in its own table (`table ip <prefix>`), driven by sets
//! and maps so that a container or network adds and removes set elements, never rules.
//!
//! - `bridges`, `same` (bridge . bridge), `internal`, `masq` describe networks;
//! - `pany` / `pip` map published ports (any host address / one host address) to the
//!   container address and port; DNAT happens in prerouting (traffic from outside and from
//!   containers) and output (the host itself, including 127.0.0.1 thanks to `route_localnet`).
//! - `psany` / `psip` send a fixed host port shared by a port group (the replicas of a compose
//!   service) to that port's own chain, which spreads new connections round-robin over the
//!   group's active containers (`numgen inc`); the chain is rewritten (flushed and filled in
//!   one batch) whenever a member joins, leaves, turns healthy or unhealthy.
//! - `route_localnet` would also let a container address the host's loopback services through
//!   the bridge; the input chain drops such packets unless they answer the host's own
//!   connections. A network's DNS server (on its gateway) answers only its own bridge:
//!   `gateways` / `dnsgw` drop DNS queries from other bridges.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use crate::ports::Proto;
use crate::{NetError, Result};

/// The table with its sets, maps, chains and (re)written base rules. Idempotent: existing
/// elements are kept, base rules are flushed and added again in the same atomic batch.
pub fn base_script(t: &str) -> String {
    format!(
        "add table ip {t}
add set ip {t} bridges {{ type ifname; }}
add set ip {t} same {{ type ifname . ifname; }}
add set ip {t} internal {{ type ifname; }}
add set ip {t} masq {{ type ipv4_addr; flags interval; }}
add set ip {t} gateways {{ type ipv4_addr; }}
add set ip {t} dnsgw {{ type ifname . ipv4_addr; }}
add map ip {t} pany {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
add map ip {t} pip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
add map ip {t} psany {{ type inet_proto . inet_service : verdict; }}
add map ip {t} psip {{ type ipv4_addr . inet_proto . inet_service : verdict; }}
add chain ip {t} ports
add chain ip {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain ip {t} output {{ type nat hook output priority -100; policy accept; }}
add chain ip {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain ip {t} forward {{ type filter hook forward priority filter; policy accept; }}
add chain ip {t} input {{ type filter hook input priority filter; policy accept; }}
flush chain ip {t} ports
flush chain ip {t} prerouting
flush chain ip {t} output
flush chain ip {t} postrouting
flush chain ip {t} forward
flush chain ip {t} input
add rule ip {t} ports ip daddr . meta l4proto . th dport vmap @psip
add rule ip {t} ports meta l4proto . th dport vmap @psany
add rule ip {t} ports dnat ip addr . port to ip daddr . meta l4proto . th dport map @pip
add rule ip {t} ports dnat ip addr . port to meta l4proto . th dport map @pany
add rule ip {t} prerouting fib daddr type local jump ports
add rule ip {t} output fib daddr type local jump ports
add rule ip {t} postrouting ct status dnat iifname . oifname @same masquerade
add rule ip {t} postrouting ip saddr 127.0.0.0/8 oifname @bridges masquerade
add rule ip {t} postrouting ip saddr @masq oifname != @bridges masquerade
add rule ip {t} forward iifname . oifname @same accept
add rule ip {t} forward iifname @internal drop
add rule ip {t} forward oifname @internal drop
add rule ip {t} forward ct state established,related accept
add rule ip {t} forward ct status dnat accept
add rule ip {t} forward iifname @bridges oifname @bridges drop
add rule ip {t} input iifname @bridges ip daddr 127.0.0.0/8 ct state established,related accept
add rule ip {t} input iifname @bridges ip daddr 127.0.0.0/8 drop
add rule ip {t} input iifname @bridges meta l4proto {{ tcp, udp }} th dport 53 ip daddr @gateways iifname . ip daddr != @dnsgw drop
"
    )
}

/// Elements describing one network.
pub fn network_elements(
    t: &str,
    bridge: &str,
    subnet: &Ipv4Net,
    gateway: Ipv4Addr,
    internal: bool,
) -> Vec<String> {
    let mut v = vec![
        format!("ip {t} bridges {{ \"{bridge}\" }}"),
        format!("ip {t} same {{ \"{bridge}\" . \"{bridge}\" }}"),
        format!("ip {t} gateways {{ {gateway} }}"),
        format!("ip {t} dnsgw {{ \"{bridge}\" . {gateway} }}"),
    ];
    if internal {
        v.push(format!("ip {t} internal {{ \"{bridge}\" }}"));
    } else {
        v.push(format!("ip {t} masq {{ {subnet} }}"));
    }
    v
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    /// Host address (`0.0.0.0`: every address).
    pub host_ip: Ipv4Addr,
    /// Host port.
    pub host_port: u16,
    /// Protocol.
    pub proto: Proto,
    /// Container address the port forwards to.
    pub ctr_ip: Ipv4Addr,
    /// Container port.
    pub ctr_port: u16,
}

/// The nftables set element of port rule `p` in table `t` (`ip <t> pany { proto . port }`
/// for every host address, `pip` for one), with its `: ctr_ip . ctr_port` value when
/// `with_value` (map elements), without it for deletion.
pub fn port_element(t: &str, p: &PortRule, with_value: bool) -> String {
    let key = if p.host_ip.is_unspecified() {
        format!("ip {t} pany {{ {} . {}", p.proto.as_str(), p.host_port)
    } else {
        format!(
            "ip {t} pip {{ {} . {} . {}",
            p.host_ip,
            p.proto.as_str(),
            p.host_port
        )
    };
    if with_value {
        format!("{key} : {} . {} }}", p.ctr_ip, p.ctr_port)
    } else {
        format!("{key} }}")
    }
}

/// A fixed host port shared by a port group, and where its new connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPort {
    /// Host address (`0.0.0.0`: every address).
    pub host_ip: Ipv4Addr,
    /// Host port.
    pub host_port: u16,
    /// Protocol.
    pub proto: Proto,
    /// (container address, container port) of the active members; empty: none takes
    /// connections now.
    pub backends: Vec<(Ipv4Addr, u16)>,
}

/// The script that (re)writes a shared port's chain and its verdict map entry. It starts with
/// the base script (idempotent), so that a table made by an older berth gains the maps.
pub fn shared_script(t: &str, p: &SharedPort) -> String {
    let proto = p.proto.as_str();
    let (chain, element) = if p.host_ip.is_unspecified() {
        let chain = format!("sp_{proto}_{}", p.host_port);
        let el = format!(
            "ip {t} psany {{ {proto} . {} : goto {chain} }}",
            p.host_port
        );
        (chain, el)
    } else {
        let chain = format!(
            "sp_{}_{proto}_{}",
            p.host_ip.to_string().replace('.', "_"),
            p.host_port
        );
        let el = format!(
            "ip {t} psip {{ {} . {proto} . {} : goto {chain} }}",
            p.host_ip, p.host_port
        );
        (chain, el)
    };
    let mut s = base_script(t);
    s.push_str(&format!(
        "add chain ip {t} {chain}
flush chain ip {t} {chain}
"
    ));
    if !p.backends.is_empty() {
        let map: Vec<String> = p
            .backends
            .iter()
            .enumerate()
            .map(|(i, (ip, port))| format!("{i} : {ip} . {port}"))
            .collect();
        s.push_str(&format!(
            "add rule ip {t} {chain} meta l4proto {proto} dnat ip to numgen inc mod {} map {{ {} }}\n",
            p.backends.len(),
            map.join(", ")
        ));
    }
    s.push_str(&format!("add element {element}\n"));
    s
}

/// Run an nft script atomically.
pub fn apply(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            NetError::Other(format!(
                "cannot run nft: {e}; install nftables (the nft command) for container networking"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::Other(format!("nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        Err(NetError::Other(format!(
            "nftables rules could not be applied: {first}; check that the kernel has nf_tables and nft works"
        )))
    }
}

/// Delete elements; missing ones are fine. Tries one batch, then one by one.
pub fn delete_elements(elems: &[String]) -> Result<()> {
    if elems.is_empty() {
        return Ok(());
    }
    let script: String = elems
        .iter()
        .map(|e| format!("delete element {e}\n"))
        .collect();
    if apply(&script).is_ok() {
        return Ok(());
    }
    for e in elems {
        let _ = apply(&format!("delete element {e}\n"));
    }
    Ok(())
}

/// Remove the whole table (missing is fine).
pub fn delete_table(t: &str) -> Result<()> {
    let _ = apply(&format!("add table ip {t}\ndelete table ip {t}\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements() {
        let p = PortRule {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 8080,
            proto: Proto::Tcp,
            ctr_ip: Ipv4Addr::new(172, 17, 0, 2),
            ctr_port: 80,
        };
        assert_eq!(
            port_element("berth", &p, true),
            "ip berth pany { tcp . 8080 : 172.17.0.2 . 80 }"
        );
        assert_eq!(
            port_element("berth", &p, false),
            "ip berth pany { tcp . 8080 }"
        );
        let p = PortRule {
            host_ip: Ipv4Addr::LOCALHOST,
            proto: Proto::Udp,
            ..p
        };
        assert_eq!(
            port_element("berth", &p, true),
            "ip berth pip { 127.0.0.1 . udp . 8080 : 172.17.0.2 . 80 }"
        );
        let n = network_elements(
            "b",
            "b0",
            &"10.1.0.0/16".parse().unwrap(),
            Ipv4Addr::new(10, 1, 0, 1),
            false,
        );
        assert!(n.contains(&"ip b masq { 10.1.0.0/16 }".to_string()));
        let n = network_elements(
            "b",
            "b0",
            &"10.1.0.0/16".parse().unwrap(),
            Ipv4Addr::new(10, 1, 0, 1),
            true,
        );
        assert!(n.contains(&"ip b internal { \"b0\" }".to_string()));
        assert!(n.contains(&"ip b dnsgw { \"b0\" . 10.1.0.1 }".to_string()));
        assert!(base_script("b").contains("add table ip b\n"));
    }

    #[test]
    fn shared_ports_get_their_own_chain() {
        let mut p = SharedPort {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 8080,
            proto: Proto::Tcp,
            backends: vec![
                (Ipv4Addr::new(10, 1, 0, 2), 80),
                (Ipv4Addr::new(10, 1, 0, 3), 80),
            ],
        };
        let s = shared_script("b", &p);
        assert!(s.starts_with(&base_script("b")));
        assert!(s.contains("flush chain ip b sp_tcp_8080\n"));
        assert!(s.contains(
            "add rule ip b sp_tcp_8080 meta l4proto tcp dnat ip to numgen inc mod 2 map { 0 : 10.1.0.2 . 80, 1 : 10.1.0.3 . 80 }\n"
        ));
        assert!(s.ends_with("add element ip b psany { tcp . 8080 : goto sp_tcp_8080 }\n"));
        // No member takes connections: the chain is emptied, the entry stays.
        p.backends.clear();
        p.host_ip = Ipv4Addr::LOCALHOST;
        let s = shared_script("b", &p);
        assert!(!s.contains("dnat ip to numgen"));
        assert!(s.ends_with(
            "add element ip b psip { 127.0.0.1 . tcp . 8080 : goto sp_127_0_0_1_tcp_8080 }\n"
        ));
    }
}
