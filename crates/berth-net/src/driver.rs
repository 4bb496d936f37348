//! Network drivers. A driver makes networks exist on the host (links, addresses) and plugs
//! container network namespaces into them. Packet filtering is the [`crate::firewall`]'s job,
//! so a rootless driver (pasta, slirp4netns) can pair with another firewall, or none.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::config::NetConf;
use crate::netlink::Netlink;
use crate::state::{Endpoint, Network};
use crate::{ipam, netns, NetError, Result};

/// The link side of a network backend.
pub trait Driver: std::fmt::Debug {
    /// Short name (`bridge`, …).
    fn name(&self) -> &'static str;
    /// Make the network usable on the host (idempotent; cheap when already done). Returns
    /// whether its link was created just now.
    fn ensure_network(&self, net: &Network) -> Result<bool>;
    /// Remove the network's link from the host.
    fn remove_network(&self, net: &Network) -> Result<()>;
    /// Plug the namespace at `netns` into `net` with the endpoint's address. With
    /// `default_route` the namespace's default route goes through this network.
    fn attach(&self, netns: &Path, net: &Network, ep: &Endpoint, default_route: bool)
        -> Result<()>;
    /// Unplug an endpoint (missing pieces are fine).
    fn detach(&self, ep: &Endpoint) -> Result<()>;
}

fn nl_err(what: &str, e: io::Error) -> NetError {
    let hint = if e.raw_os_error() == Some(libc::EPERM) {
        "; run berth as root"
    } else {
        ""
    };
    NetError::Other(format!("{what}: {e}{hint}"))
}

/// Linux bridge + veth pairs, for rootful berth.
pub struct BridgeDriver {
    conf: NetConf,
    conf_path: PathBuf,
}

impl std::fmt::Debug for BridgeDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeDriver")
            .field("conf", &self.conf)
            .finish()
    }
}

/// MTU of the interface that carries the host's default route (when it is below 1500, as on
/// many VMs, containers must not use more).
fn uplink_mtu() -> Option<u32> {
    let routes = fs::read_to_string("/proc/net/route").ok()?;
    let dev = routes.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then(|| f[0].to_string())
    })?;
    let mtu: u32 = fs::read_to_string(format!("/sys/class/net/{dev}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (mtu < 1500).then_some(mtu)
}

impl BridgeDriver {
    /// The bridge driver of the store at `root` with settings `conf` (the MTU defaults to the
    /// uplink's when it is below 1500).
    pub fn new(mut conf: NetConf, root: &Path) -> BridgeDriver {
        if conf.mtu.is_none() {
            conf.mtu = uplink_mtu();
        }
        BridgeDriver {
            conf,
            conf_path: root.join(crate::config::CONF_FILE),
        }
    }
}

fn sysctl(path: &str, value: &str) -> Result<()> {
    match fs::read_to_string(path) {
        Ok(v) if v.trim() == value => Ok(()),
        _ => fs::write(path, value)
            .map_err(|e| NetError::Other(format!("cannot set {path}: {e}; run berth as root"))),
    }
}

impl Driver for BridgeDriver {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn ensure_network(&self, net: &Network) -> Result<bool> {
        let mut nl = Netlink::open().map_err(|e| nl_err("netlink", e))?;
        if nl
            .link_index(&net.bridge)
            .map_err(|e| nl_err("netlink", e))?
            .is_none()
        {
            // A new bridge: its subnet must not shadow a route of the host (another
            // engine's bridge, a VPN, the LAN).
            if let Some((dev, r)) = ipam::host_routes()
                .into_iter()
                .find(|(dev, r)| dev != &net.bridge && ipam::overlap(r, &net.subnet))
            {
                let fix = if net.is_default() {
                    format!("set bridge_subnet in {}", self.conf_path.display())
                } else {
                    format!(
                        "remove network {} and create it with another --subnet",
                        net.name
                    )
                };
                return Err(NetError::Other(format!(
                    "subnet {} of network {} overlaps the host route {r} on {dev}; {fix}",
                    net.subnet, net.name
                )));
            }
        }
        let created = nl
            .add_bridge(&net.bridge, self.conf.mtu)
            .map_err(|e| nl_err(&format!("cannot create bridge {}", net.bridge), e))?;
        let idx = nl
            .link_index(&net.bridge)
            .map_err(|e| nl_err("netlink", e))?
            .ok_or_else(|| NetError::Other(format!("bridge {} vanished", net.bridge)))?;
        nl.add_addr(idx, net.gateway, net.subnet.prefix_len())
            .map_err(|e| nl_err(&format!("cannot address bridge {}", net.bridge), e))?;
        if created {
            nl.set_up(idx).map_err(|e| nl_err("netlink", e))?;
        }
        sysctl(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge),
            "1",
        )?;
        if !net.internal {
            sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        }
        Ok(created)
    }

    fn remove_network(&self, net: &Network) -> Result<()> {
        Netlink::open()
            .and_then(|mut nl| nl.del_link(&net.bridge))
            .map(|_| ())
            .map_err(|e| nl_err(&format!("cannot delete bridge {}", net.bridge), e))
    }

    fn attach(
        &self,
        ns_path: &Path,
        net: &Network,
        ep: &Endpoint,
        default_route: bool,
    ) -> Result<()> {
        let ns = fs::File::open(ns_path)
            .map_err(|e| NetError::Other(format!("{}: {e}", ns_path.display())))?;
        let mut nl = Netlink::open().map_err(|e| nl_err("netlink", e))?;
        let master = nl
            .link_index(&net.bridge)
            .map_err(|e| nl_err("netlink", e))?
            .ok_or_else(|| NetError::Other(format!("bridge {} is missing", net.bridge)))?;
        nl.add_veth(
            &ep.veth,
            master,
            &ep.ifname,
            ns.as_raw_fd(),
            ipam::parse_mac(&ep.mac).unwrap_or_else(|| ipam::mac_for(ep.ip)),
            self.conf.mtu,
        )
        .map_err(|e| nl_err(&format!("cannot create veth {}", ep.veth), e))?;
        let (ip, prefix, gw, ifname) = (
            ep.ip,
            net.subnet.prefix_len(),
            net.gateway,
            ep.ifname.clone(),
        );
        netns::run_in(ns_path, move || {
            let mut nl = Netlink::open()?;
            let idx = nl
                .link_index(&ifname)?
                .ok_or_else(|| io::Error::other(format!("{ifname} missing in the namespace")))?;
            nl.add_addr(idx, ip, prefix)?;
            nl.set_up(idx)?;
            if default_route {
                nl.add_route(std::net::Ipv4Addr::UNSPECIFIED, 0, Some(gw), idx)?;
            }
            Ok(())
        })
        .map_err(|e| {
            nl_err(
                &format!("cannot configure {} in the container", ep.ifname),
                e,
            )
        })
    }

    fn detach(&self, ep: &Endpoint) -> Result<()> {
        Netlink::open()
            .and_then(|mut nl| nl.del_link(&ep.veth))
            .map(|_| ())
            .map_err(|e| nl_err(&format!("cannot delete veth {}", ep.veth), e))
    }
}

/// Where the network namespace of container `container_id` is pinned.
pub fn default_netns_path(root: &Path, container_id: &str) -> PathBuf {
    root.join("run").join("netns").join(container_id)
}
