//! Networking settings of a store: `<root>/net.conf`, `key = value` lines, `#` comments.
//!
//! ```text
//! prefix = berth                 # names: bridge berth0, user bridges berth-<id>, veths berthv<hex>,
//!                                # nftables table `ip berth` (1-6 chars, a-z 0-9)
//! bridge_subnet = 172.17.0.0/16  # the default `bridge` network
//! bridge_gateway = 172.17.0.1
//! pool = 172.18.0.0/16, 172.19.0.0/16   # subnets for `network create` without --subnet
//! mtu = 1500                     # default: 1500, or less if the default route's interface has less
//! host_gateway_ip = 172.17.0.1   # what `--add-host NAME:host-gateway` points at (Docker's
//!                                # `host-gateway-ip`); one IPv4 and/or one IPv6 address,
//!                                # comma-separated; default: the default bridge's gateway
//! public_dns_fallback = no       # yes: when the host has no resolver containers can reach
//!                                # (only 127.0.0.53 and no systemd-resolved upstreams), give
//!                                # containers Docker's fallback 8.8.8.8, 8.8.4.4; no: warn
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnet::Ipv4Net;

use crate::{NetError, Result};

/// File name of the settings file inside the store root.
pub const CONF_FILE: &str = "net.conf";

#[derive(Debug, Clone, PartialEq, Eq)]
/// Host-wide network settings, from `<root>/net.conf` (`key = value` lines; see
/// [`NetConf::parse`]).
pub struct NetConf {
    /// `prefix`: names the default bridge (`<prefix>0`), user bridges (`<prefix>-<id>`) and the
    /// nftables table (default `berth`).
    pub prefix: String,
    /// `bridge_subnet`: the default network's IPv4 subnet (default `172.17.0.0/16`).
    pub bridge_subnet: Ipv4Net,
    /// `bridge_gateway`: the default bridge's address (default: the subnet's first host address).
    pub bridge_gateway: Option<Ipv4Addr>,
    /// `pool`: subnets handed to user networks created without `--subnet`, in order.
    pub pool: Vec<Ipv4Net>,
    /// `mtu`: MTU in bytes of bridges and veths (default: the uplink's when below 1500, else the
    /// kernel's).
    pub mtu: Option<u32>,
    /// `host_gateway_ip`: the addresses `host-gateway` stands for in `--add-host`; empty means
    /// the default bridge's gateway (see [`NetConf::host_gateway_ips`]).
    pub host_gateway_ip: Vec<IpAddr>,
    /// `public_dns_fallback`: allow Docker's public resolvers when the host has none that
    /// containers can reach (default: no, with a warning).
    pub public_dns_fallback: bool,
}

impl Default for NetConf {
    fn default() -> Self {
        let mut pool: Vec<Ipv4Net> = (18..=31)
            .map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).unwrap())
            .collect();
        pool.extend((0..=255).map(|c| Ipv4Net::new(Ipv4Addr::new(10, 89, c, 0), 24).unwrap()));
        NetConf {
            prefix: "berth".into(),
            bridge_subnet: "172.17.0.0/16".parse().unwrap(),
            bridge_gateway: None,
            pool,
            mtu: None,
            host_gateway_ip: Vec::new(),
            public_dns_fallback: false,
        }
    }
}

impl NetConf {
    /// Read `<root>/net.conf`; a missing file means all defaults.
    pub fn load(root: &Path) -> Result<NetConf> {
        let p = root.join(CONF_FILE);
        match std::fs::read_to_string(&p) {
            Ok(s) => NetConf::parse(&s).map_err(|e| {
                NetError::Other(format!("{}: {e}; fix or remove the file", p.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NetConf::default()),
            Err(e) => Err(NetError::Other(format!("cannot read {}: {e}", p.display()))),
        }
    }

    /// Parse the text of a `net.conf` file.
    ///
    /// # Errors
    /// A message naming the line (`line N: …`) for an unknown key or a bad value.
    pub fn parse(text: &str) -> std::result::Result<NetConf, String> {
        let mut c = NetConf::default();
        for (no, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("line {}: expected key = value", no + 1));
            };
            let (k, v) = (k.trim(), v.trim());
            let bad = |what: &str| format!("line {}: invalid {k} {v:?}: {what}", no + 1);
            match k {
                "prefix" => {
                    if v.is_empty()
                        || v.len() > 6
                        || !v
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    {
                        return Err(bad("use 1 to 6 characters a-z, 0-9"));
                    }
                    c.prefix = v.to_string();
                }
                "bridge_subnet" => {
                    c.bridge_subnet = v.parse().map_err(|_| bad("expected a.b.c.d/len"))?;
                }
                "bridge_gateway" => {
                    c.bridge_gateway = Some(v.parse().map_err(|_| bad("expected a.b.c.d"))?);
                }
                "pool" => {
                    c.pool = v
                        .split(',')
                        .map(|s| s.trim().parse())
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| bad("expected a comma-separated list of a.b.c.d/len"))?;
                }
                "mtu" => c.mtu = Some(v.parse().map_err(|_| bad("expected a number"))?),
                "public_dns_fallback" => {
                    c.public_dns_fallback = match v {
                        "yes" | "true" | "1" => true,
                        "no" | "false" | "0" => false,
                        _ => return Err(bad("expected yes or no")),
                    }
                }
                "host_gateway_ip" => {
                    let ips: Vec<IpAddr> = v
                        .split(',')
                        .map(|s| s.trim().parse())
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| bad("expected one or two IP addresses, comma-separated"))?;
                    let v4 = ips.iter().filter(|i| i.is_ipv4()).count();
                    if ips.is_empty() || v4 > 1 || ips.len() - v4 > 1 {
                        return Err(bad("give at most one IPv4 and one IPv6 address"));
                    }
                    c.host_gateway_ip = ips;
                }
                _ => return Err(format!("line {}: unknown setting {k}", no + 1)),
            }
        }
        Ok(c)
    }

    /// Where the host's resolver settings are read from (the real paths) and whether the
    /// public fallback is allowed.
    pub fn host_dns(&self) -> crate::files::HostDns {
        crate::files::HostDns::system(self.public_dns_fallback)
    }

    /// The addresses `--add-host NAME:host-gateway` points at: `host_gateway_ip` when set,
    /// else the default bridge's gateway (as Docker does with docker0's address).
    pub fn host_gateway_ips(&self) -> Vec<IpAddr> {
        if !self.host_gateway_ip.is_empty() {
            return self.host_gateway_ip.clone();
        }
        let gw = self
            .bridge_gateway
            .unwrap_or_else(|| crate::ipam::default_gateway(&self.bridge_subnet.trunc()));
        vec![IpAddr::V4(gw)]
    }

    /// Name of the default network's bridge device (`<prefix>0`).
    pub fn default_bridge(&self) -> String {
        format!("{}0", self.prefix)
    }

    /// Name of berth's nftables table (the prefix).
    pub fn nft_table(&self) -> &str {
        &self.prefix
    }

    /// Bridge device of a user network with the given id.
    pub fn user_bridge(&self, net_id: &str) -> String {
        format!("{}-{}", self.prefix, &net_id[..8.min(net_id.len())])
    }

    /// A fresh host-side veth name.
    pub fn new_veth(&self) -> String {
        format!("{}v{:08x}", self.prefix, rand::random::<u32>())
    }

    /// True if a link name is one berth made with this prefix.
    pub fn owns_link(&self, name: &str) -> bool {
        name == self.default_bridge()
            || name.strip_prefix(&self.prefix).is_some_and(|r| {
                (r.starts_with('-') && r.len() == 9) || (r.starts_with('v') && r.len() == 9)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_conf() {
        let c = NetConf::parse("# x\nprefix = bt1\nbridge_subnet = 10.90.1.0/24 # c\npool=10.90.2.0/24, 10.90.3.0/24\nmtu=1400\n").unwrap();
        assert_eq!(c.prefix, "bt1");
        assert_eq!(c.bridge_subnet.to_string(), "10.90.1.0/24");
        assert_eq!(c.pool.len(), 2);
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.default_bridge(), "bt10");
        assert_eq!(c.user_bridge("0123456789abcdef"), "bt1-01234567");
        assert!(c.owns_link(&c.new_veth()));
        assert!(c.owns_link("bt1-01234567"));
        assert!(!c.owns_link("eth0"));
        assert!(NetConf::parse("prefix = TooLongName").is_err());
        assert!(NetConf::parse("nosuch = 1").is_err());
        assert_eq!(NetConf::parse("").unwrap(), NetConf::default());
        // host-gateway: the default bridge's gateway unless configured.
        assert_eq!(
            NetConf::default().host_gateway_ips(),
            vec!["172.17.0.1".parse::<IpAddr>().unwrap()]
        );
        let c = NetConf::parse("bridge_subnet = 10.90.1.0/24").unwrap();
        assert_eq!(
            c.host_gateway_ips(),
            vec!["10.90.1.1".parse::<IpAddr>().unwrap()]
        );
        let c =
            NetConf::parse("bridge_gateway = 10.90.1.254\nbridge_subnet = 10.90.1.0/24").unwrap();
        assert_eq!(
            c.host_gateway_ips(),
            vec!["10.90.1.254".parse::<IpAddr>().unwrap()]
        );
        let c = NetConf::parse("host_gateway_ip = 192.0.2.1, fd00::1").unwrap();
        assert_eq!(
            c.host_gateway_ips(),
            vec![
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "fd00::1".parse::<IpAddr>().unwrap()
            ]
        );
        assert!(NetConf::parse("host_gateway_ip = 1.1.1.1, 2.2.2.2").is_err());
        assert!(NetConf::parse("host_gateway_ip = nope").is_err());
        assert!(!NetConf::default().public_dns_fallback);
        assert!(
            NetConf::parse("public_dns_fallback = yes")
                .unwrap()
                .public_dns_fallback
        );
        assert!(NetConf::parse("public_dns_fallback = maybe").is_err());
    }
}
