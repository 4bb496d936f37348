//! The host side of networking as three trait objects: the link [`Driver`], the
//! [`Firewall`] and the network [`Namespaces`]. [`Backend::host`] is this machine (bridge,
//! nftables, bind-mounted namespaces); tests build a [`Backend`] of fakes that record calls.

use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::rc::Rc;

use berth_store::Store;

use crate::config::NetConf;
use crate::driver::{BridgeDriver, Driver};
use crate::firewall::{Firewall, Nftables};
use crate::netns::{HostNamespaces, Namespaces};
use crate::nft::PortRule;
use crate::state::{Endpoint, Network};
use crate::{NetError, Result};

/// The services networking uses on the host.
#[derive(Debug)]
pub struct Backend {
    /// The store's networking settings.
    pub conf: NetConf,
    /// Links: bridges, veths.
    pub driver: Box<dyn Driver>,
    /// Packet filter: NAT, isolation, published ports.
    pub firewall: Box<dyn Firewall>,
    /// Network namespaces.
    pub namespaces: Box<dyn Namespaces>,
}

impl Backend {
    /// This host's backend for the store at `root`: Linux bridge, nftables, bind-mounted
    /// namespaces.
    ///
    /// Errors: a malformed settings file.
    pub fn host(store: &Store) -> Result<Backend> {
        let conf = NetConf::load(store.root())?;
        Ok(Backend {
            driver: Box::new(BridgeDriver::new(conf.clone(), store.root())),
            firewall: Box::new(Nftables::new(&conf, store.root())),
            namespaces: Box::new(HostNamespaces),
            conf,
        })
    }
}

/// A log of calls shared by the fakes, and the operations that should fail.
#[derive(Debug, Default)]
pub struct FakeLog {
    /// Calls in order, as `"component.op arg"` strings.
    pub calls: RefCell<Vec<String>>,
    /// Operations (`"driver.detach"`, `"firewall.commit"`, …) that fail.
    pub failing: RefCell<Vec<String>>,
}

impl FakeLog {
    fn record(&self, op: &str, arg: &str) -> Result<()> {
        self.calls.borrow_mut().push(format!("{op} {arg}"));
        if self.failing.borrow().iter().any(|f| f == op) {
            return Err(NetError::Other(format!("{op} failed")));
        }
        Ok(())
    }

    /// The recorded calls.
    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    /// Make `op` fail from now on.
    pub fn fail(&self, op: &str) {
        self.failing.borrow_mut().push(op.to_string());
    }
}

/// A driver, firewall and namespaces that do nothing but record calls into one log.
#[derive(Debug, Clone)]
pub struct Fake(pub Rc<FakeLog>);

impl Driver for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn ensure_network(&self, net: &Network) -> Result<bool> {
        self.0
            .record("driver.ensure_network", &net.name)
            .map(|_| false)
    }
    fn remove_network(&self, net: &Network) -> Result<()> {
        self.0.record("driver.remove_network", &net.name)
    }
    fn attach(
        &self,
        _netns: &Path,
        net: &Network,
        ep: &Endpoint,
        default_route: bool,
    ) -> Result<()> {
        self.0.record(
            "driver.attach",
            &format!(
                "{} {} {}",
                net.name,
                ep.ip,
                if default_route { "default" } else { "-" }
            ),
        )
    }
    fn detach(&self, ep: &Endpoint) -> Result<()> {
        self.0.record("driver.detach", &ep.network)
    }
}

impl Firewall for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn ensure_network(&self, net: &Network, _bridge_created: bool) -> Result<()> {
        self.0.record("firewall.ensure_network", &net.name)
    }
    fn remove_network(&self, net: &Network) -> Result<()> {
        self.0.record("firewall.remove_network", &net.name)
    }
    fn publish(&self, ports: &[PortRule]) -> Result<()> {
        self.0.record("firewall.publish", &ports.len().to_string())
    }
    fn unpublish(&self, ports: &[PortRule]) -> Result<()> {
        self.0
            .record("firewall.unpublish", &ports.len().to_string())
    }
    fn share(&self, port: &crate::nft::SharedPort) -> Result<()> {
        self.0.record(
            "firewall.share",
            &format!("{} {}", port.host_port, port.backends.len()),
        )
    }
    fn commit(&self) -> Result<()> {
        self.0.record("firewall.commit", "")
    }
    fn reset(&self) -> Result<()> {
        self.0.record("firewall.reset", "")
    }
}

impl Namespaces for Fake {
    fn create(&self, path: &Path) -> io::Result<()> {
        self.0
            .record(
                "netns.create",
                &path.file_name().unwrap_or_default().to_string_lossy(),
            )
            .map_err(|e| io::Error::other(e.to_string()))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.0
            .record(
                "netns.remove",
                &path.file_name().unwrap_or_default().to_string_lossy(),
            )
            .map_err(|e| io::Error::other(e.to_string()))
    }
    fn in_use(&self, _path: &Path) -> bool {
        false
    }
}

impl Backend {
    /// A backend of fakes sharing one [`FakeLog`], with settings `conf`.
    pub fn fake(conf: NetConf) -> (Backend, Rc<FakeLog>) {
        let log = Rc::new(FakeLog::default());
        let f = Fake(log.clone());
        (
            Backend {
                conf,
                driver: Box::new(f.clone()),
                firewall: Box::new(f.clone()),
                namespaces: Box::new(f),
            },
            log,
        )
    }
}
