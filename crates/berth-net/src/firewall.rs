//! Firewalls: the packet-filter side of networking (forwarding, masquerade, isolation between
//! networks, published ports), separate from the [`crate::driver::Driver`] that makes links.
//! Today nftables ([`Nftables`]); a rootless setup (no firewall, or a user-space forwarder)
//! plugs in beside it.
//!
//! Changes are queued by the calls and applied by [`Firewall::commit`] in one batch, so a
//! container start costs one `nft` transaction however many networks and ports it has.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::NetConf;
use crate::nft::{self, PortRule};
use crate::state::Network;
use crate::Result;

/// The packet filter of a network backend.
pub trait Firewall: std::fmt::Debug {
    /// Short name (`nftables`, …).
    fn name(&self) -> &'static str;
    /// Queue what network `net` needs (forwarding, NAT unless internal, isolation).
    /// `bridge_created` says the driver has just created its link, so earlier state is stale.
    fn ensure_network(&self, net: &Network, bridge_created: bool) -> Result<()>;
    /// Remove what [`Firewall::ensure_network`] set up for `net`, at once.
    fn remove_network(&self, net: &Network) -> Result<()>;
    /// Queue forwarding of published ports.
    fn publish(&self, ports: &[PortRule]) -> Result<()>;
    /// Queue removal of published ports (missing ones are fine).
    fn unpublish(&self, ports: &[PortRule]) -> Result<()>;
    /// Queue (re)writing where a shared host port sends new connections.
    fn share(&self, port: &crate::nft::SharedPort) -> Result<()>;
    /// Apply everything queued, in one batch. Deletions that fail do not stop additions.
    fn commit(&self) -> Result<()>;
    /// Remove all of berth's firewall state (`network reset`).
    fn reset(&self) -> Result<()>;
}

/// berth's own nftables table (`NetConf::nft_table`), driven through `nft -f`.
pub struct Nftables {
    table: String,
    state_dir: PathBuf,
    boot_id: String,
    script: RefCell<String>,
    delete: RefCell<Vec<String>>,
    /// Markers to write once the queued script is applied: the network's elements are in
    /// place since this boot.
    markers: RefCell<Vec<PathBuf>>,
}

impl std::fmt::Debug for Nftables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nftables")
            .field("table", &self.table)
            .finish()
    }
}

impl Nftables {
    /// The firewall of the store at `root` with settings `conf`.
    pub fn new(conf: &NetConf, root: &Path) -> Nftables {
        Nftables {
            table: conf.nft_table().to_string(),
            state_dir: root.join("run").join("net"),
            boot_id: fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .unwrap_or_default()
                .trim()
                .to_string(),
            script: RefCell::new(String::new()),
            delete: RefCell::new(Vec::new()),
            markers: RefCell::new(Vec::new()),
        }
    }

    /// The nft script queued so far (tests).
    #[cfg(test)]
    fn queued(&self) -> String {
        self.script.borrow().clone()
    }

    fn marker(&self, bridge: &str) -> PathBuf {
        self.state_dir.join(format!("fw-{bridge}"))
    }

    /// Forget that firewall state was applied (after the table was removed).
    fn forget(&self) {
        if let Ok(rd) = fs::read_dir(&self.state_dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("fw-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

impl Firewall for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn ensure_network(&self, net: &Network, bridge_created: bool) -> Result<()> {
        let marker = self.marker(&net.bridge);
        let fresh = fs::read_to_string(&marker).is_ok_and(|b| b == self.boot_id);
        if bridge_created || !fresh {
            let t = self.table.as_str();
            let mut s = self.script.borrow_mut();
            if !s.contains("add table") {
                s.insert_str(0, &nft::base_script(t));
            }
            for e in nft::network_elements(t, &net.bridge, &net.subnet, net.gateway, net.internal) {
                s.push_str(&format!("add element {e}\n"));
            }
            self.markers.borrow_mut().push(marker);
        }
        Ok(())
    }

    fn remove_network(&self, net: &Network) -> Result<()> {
        let elems = nft::network_elements(
            &self.table,
            &net.bridge,
            &net.subnet,
            net.gateway,
            net.internal,
        );
        let res = nft::delete_elements(&elems);
        let _ = fs::remove_file(self.marker(&net.bridge));
        res
    }

    fn publish(&self, ports: &[PortRule]) -> Result<()> {
        let mut s = self.script.borrow_mut();
        for p in ports {
            s.push_str(&format!(
                "add element {}\n",
                nft::port_element(&self.table, p, true)
            ));
        }
        Ok(())
    }

    fn share(&self, port: &crate::nft::SharedPort) -> Result<()> {
        self.script
            .borrow_mut()
            .push_str(&nft::shared_script(&self.table, port));
        Ok(())
    }

    fn unpublish(&self, ports: &[PortRule]) -> Result<()> {
        self.delete.borrow_mut().extend(
            ports
                .iter()
                .map(|p| nft::port_element(&self.table, p, false)),
        );
        Ok(())
    }

    fn commit(&self) -> Result<()> {
        let script = std::mem::take(&mut *self.script.borrow_mut());
        let delete = std::mem::take(&mut *self.delete.borrow_mut());
        let markers = std::mem::take(&mut *self.markers.borrow_mut());
        let mut res = nft::delete_elements(&delete);
        if !script.is_empty() {
            match nft::apply(&script) {
                Ok(()) => {
                    // Only now is the network's firewall state known to be in place.
                    let _ = fs::create_dir_all(&self.state_dir);
                    for m in markers {
                        let _ = fs::write(&m, &self.boot_id);
                    }
                }
                Err(e) => {
                    self.forget();
                    res = Err(e);
                }
            }
        }
        res
    }

    fn reset(&self) -> Result<()> {
        let res = nft::delete_table(&self.table);
        self.forget();
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(bridge: &str, internal: bool) -> Network {
        Network {
            name: bridge.into(),
            id: "0".repeat(64),
            driver: "bridge".into(),
            bridge: bridge.into(),
            subnet: "10.251.0.0/24".parse().unwrap(),
            gateway: "10.251.0.1".parse().unwrap(),
            internal,
            created: 0,
        }
    }

    fn fw() -> (tempfile::TempDir, Nftables) {
        let d = tempfile::tempdir().unwrap();
        let fw = Nftables::new(&NetConf::default(), d.path());
        (d, fw)
    }

    #[test]
    fn the_base_table_is_queued_once_for_many_networks() {
        let (_d, fw) = fw();
        fw.ensure_network(&net("brA", false), true).unwrap();
        fw.ensure_network(&net("brB", true), true).unwrap();
        let s = fw.queued();
        assert_eq!(s.matches("add table").count(), 1, "{s}");
        assert!(s.contains("brA") && s.contains("brB"), "{s}");
        assert!(s.starts_with("add table"), "{s}");
    }

    #[test]
    fn a_network_marked_in_place_since_boot_queues_nothing() {
        let (d, fw) = fw();
        let dir = d.path().join("run/net");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("fw-brC"), &fw.boot_id).unwrap();
        fw.ensure_network(&net("brC", false), false).unwrap();
        assert!(fw.queued().is_empty());
        // A bridge created just now gets its elements again.
        fw.ensure_network(&net("brC", false), true).unwrap();
        assert!(fw.queued().contains("brC"));
    }

    #[test]
    fn published_ports_are_queued_as_elements() {
        let (_d, fw) = fw();
        let rule = PortRule {
            host_ip: "0.0.0.0".parse().unwrap(),
            host_port: 8080,
            proto: crate::ports::Proto::Tcp,
            ctr_ip: "10.251.0.2".parse().unwrap(),
            ctr_port: 80,
        };
        fw.publish(&[rule]).unwrap();
        let s = fw.queued();
        assert!(s.starts_with("add element"), "{s}");
        assert!(s.contains("8080") && s.contains("10.251.0.2"), "{s}");
    }
}
