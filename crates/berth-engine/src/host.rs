//! The host services the lifecycle depends on, as trait objects: the OCI runtime, cgroups,
//! networking and process signals. [`Host::real`] is the machine; tests substitute fakes
//! ([`crate::runtime::fake::FakeRuntime`], a [`crate::cgroups::CgroupFs`] over a directory,
//! [`FakeNetwork`]) to check lifecycle decisions without root.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::Path;
use std::rc::Rc;

use berth_net::{NetConfig, NetSetup};
use berth_store::Store;

use crate::cgroups::{CgroupFs, Cgroups};
use crate::runtime::Runtime;
use crate::Result;

/// Container networking as the lifecycle uses it (berth-net on a real host).
pub trait Network: std::fmt::Debug {
    /// Create the network namespace, interfaces, published ports and the generated
    /// hosts/resolv.conf/hostname files in `dir` for a container about to start.
    fn setup(&self, store: &Store, cfg: &NetConfig, dir: &Path) -> Result<NetSetup>;
    /// Release everything [`Network::setup`] made for container `id`. Idempotent; keeps going
    /// after a failure and reports the failures together.
    fn teardown(&self, store: &Store, id: &str) -> Result<()>;
    /// Release network resources of containers not in `keep` (after a crash or reboot).
    fn cleanup_stale(&self, store: &Store, keep: &HashSet<String>) -> Result<()>;
}

/// berth-net: bridges, veths and nftables on this host.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostNetwork;

impl Network for HostNetwork {
    fn setup(&self, store: &Store, cfg: &NetConfig, dir: &Path) -> Result<NetSetup> {
        Ok(berth_net::setup(store, cfg, dir)?)
    }
    fn teardown(&self, store: &Store, id: &str) -> Result<()> {
        Ok(berth_net::teardown(store, id)?)
    }
    fn cleanup_stale(&self, store: &Store, keep: &HashSet<String>) -> Result<()> {
        Ok(berth_net::cleanup_stale(store, keep)?)
    }
}

/// Sends signals to containers' processes.
pub trait Signals: std::fmt::Debug {
    /// Send `sig` to `pid`, the recorded init of container `id`. `Ok(false)` when that process
    /// is gone or no longer the container's (a recycled pid): nothing was signalled.
    fn signal_container(&self, pid: i32, id: &str, sig: i32) -> std::io::Result<bool>;
}

/// Signals through a pidfd, after checking the process is in the container's cgroup
/// ([`crate::pidfd::signal_container`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct HostSignals;

impl Signals for HostSignals {
    fn signal_container(&self, pid: i32, id: &str, sig: i32) -> std::io::Result<bool> {
        crate::pidfd::signal_container(pid, id, sig)
    }
}

/// The services one command uses. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Host {
    /// Cgroups of containers (OOM check, removal, membership).
    pub cgroups: Rc<dyn Cgroups>,
    /// Networking.
    pub network: Rc<dyn Network>,
    /// Process signals.
    pub signals: Rc<dyn Signals>,
    /// A runtime used for every container instead of the one each container names (tests).
    pub runtime_override: Option<Rc<dyn Runtime>>,
}

impl Host {
    /// This machine: the cgroup filesystem, berth-net, pidfd signals, and each container's
    /// runtime.
    pub fn real() -> Host {
        Host {
            cgroups: Rc::new(CgroupFs::host()),
            network: Rc::new(HostNetwork),
            signals: Rc::new(HostSignals),
            runtime_override: None,
        }
    }

    /// The runtime of a container that names `name` (`None` = builtin), see
    /// [`crate::runtime::open`].
    ///
    /// Errors: [`crate::EngineError::InvalidArgument`] when the runtime binary is not found.
    pub fn runtime(&self, store_root: &Path, name: Option<&str>) -> Result<Rc<dyn Runtime>> {
        if let Some(rt) = &self.runtime_override {
            return Ok(rt.clone());
        }
        Ok(Rc::from(crate::runtime::open(store_root, name)?))
    }
}

/// One call made to a [`FakeNetwork`] or [`FakeSignals`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCall {
    /// Network set up for a container id.
    NetSetup(String),
    /// Network torn down for a container id.
    NetTeardown(String),
    /// Stale network resources cleaned up.
    NetCleanupStale,
    /// Signal `sig` sent to `pid`.
    Kill(i32, i32),
}

/// Networking that records calls and does nothing (every container gets `--network none`).
#[derive(Debug, Default)]
pub struct FakeNetwork {
    /// Calls made so far, in order (shared with a [`FakeSignals`] when built by
    /// [`Host::fake`]).
    pub calls: Rc<RefCell<Vec<HostCall>>>,
}

impl Network for FakeNetwork {
    fn setup(&self, _store: &Store, cfg: &NetConfig, _dir: &Path) -> Result<NetSetup> {
        self.calls
            .borrow_mut()
            .push(HostCall::NetSetup(cfg.container_id.clone()));
        Ok(NetSetup::default())
    }
    fn teardown(&self, _store: &Store, id: &str) -> Result<()> {
        self.calls
            .borrow_mut()
            .push(HostCall::NetTeardown(id.to_string()));
        Ok(())
    }
    fn cleanup_stale(&self, _store: &Store, _keep: &HashSet<String>) -> Result<()> {
        self.calls.borrow_mut().push(HostCall::NetCleanupStale);
        Ok(())
    }
}

/// Signals that are recorded, not sent.
#[derive(Debug, Default)]
pub struct FakeSignals {
    /// Calls made so far, in order.
    pub calls: Rc<RefCell<Vec<HostCall>>>,
}

impl Signals for FakeSignals {
    fn signal_container(&self, pid: i32, _id: &str, sig: i32) -> std::io::Result<bool> {
        self.calls.borrow_mut().push(HostCall::Kill(pid, sig));
        Ok(true)
    }
}

impl Host {
    /// A host of fakes: `runtime` for every container, cgroups under `cgroup_root` (processes
    /// under `proc_root`), networking and signals recorded into the returned list.
    pub fn fake(
        runtime: Rc<dyn Runtime>,
        cgroup_root: &Path,
        proc_root: &Path,
    ) -> (Host, Rc<RefCell<Vec<HostCall>>>) {
        let calls = Rc::new(RefCell::new(Vec::new()));
        let host = Host {
            cgroups: Rc::new(CgroupFs::at(cgroup_root, proc_root)),
            network: Rc::new(FakeNetwork {
                calls: calls.clone(),
            }),
            signals: Rc::new(FakeSignals {
                calls: calls.clone(),
            }),
            runtime_override: Some(runtime),
        };
        (host, calls)
    }
}
