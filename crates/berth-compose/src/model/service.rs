//! A service's main settings: [`Service`], its build, dependencies, deploy, health check and
//! logging.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::*;

/// One service.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Profiles enabling this service (none: always enabled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// `blkio_config:` (block I/O weights and per-device throttles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<BlkioConfig>,
    /// Build definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// Added capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Dropped capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Parent cgroup of the container (`cgroup_parent`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string_ne"
    )]
    pub cgroup_parent: Option<String>,
    /// Command (`None`: the image's).
    #[serde(default, deserialize_with = "de_command")]
    pub command: Option<Vec<String>>,
    /// CFS period in microseconds (`cpu_period`; 0 is unset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_i64_nz"
    )]
    pub cpu_period: Option<i64>,
    /// CFS quota in microseconds per period (`cpu_quota`; 0 is unset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_i64_nz"
    )]
    pub cpu_quota: Option<i64>,
    /// Number of CPUs, fractional (`cpus: 0.5`; 0 is unset). Kept at compose's float32
    /// precision.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_cpus",
        serialize_with = "ser_opt_cpus"
    )]
    pub cpus: Option<f64>,
    /// CPUs allowed, as a list (`cpuset: "0-2,4"`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string_ne"
    )]
    pub cpuset: Option<String>,
    /// Relative CPU weight (`cpu_shares`; 0 is unset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_i64_nz"
    )]
    pub cpu_shares: Option<i64>,
    /// Configs mounted into the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileRef>,
    /// Fixed container name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Dependencies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, DependsOn>,
    /// Deploy section (replicas, resources, restart policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// Devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// DNS servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// DNS resolver options (`ndots:2`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_str_vec"
    )]
    pub dns_opt: Vec<String>,
    /// DNS search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// Domain name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// Entrypoint (`None`: the image's).
    #[serde(default, deserialize_with = "de_command")]
    pub entrypoint: Option<Vec<String>>,
    /// Environment (value `None`: declared but unset).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_opt_str_map"
    )]
    pub environment: BTreeMap<String, Option<String>>,
    /// Exposed ports (`80`, `80/udp`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_str_vec"
    )]
    pub expose: Vec<String>,
    /// Links to containers outside the project, `CONTAINER[:ALIAS]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
    /// Extra /etc/hosts entries `HOST=IP`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// Extra supplementary groups (names or numbers).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_str_vec"
    )]
    pub group_add: Vec<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// IPC namespace: `host`, `private`, `shareable`, `none`, `service:NAME`,
    /// `container:NAME`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string_ne"
    )]
    pub ipc: Option<String>,
    /// Run an init as PID 1.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_bool"
    )]
    pub init: Option<bool>,
    /// Labels.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub labels: BTreeMap<String, String>,
    /// Links `SERVICE[:ALIAS]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Memory limit in bytes (`mem_limit: 64m`; 0 is unset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_bytes_nz",
        serialize_with = "ser_opt_sbytes"
    )]
    pub mem_limit: Option<i64>,
    /// Memory soft limit in bytes (`mem_reservation`; 0 is unset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_bytes_nz",
        serialize_with = "ser_opt_sbytes"
    )]
    pub mem_reservation: Option<i64>,
    /// Memory plus swap limit in bytes (`memswap_limit`; -1: unlimited swap; 0 is unset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_bytes_nz",
        serialize_with = "ser_opt_sbytes"
    )]
    pub memswap_limit: Option<i64>,
    /// Swappiness 0-100 (`mem_swappiness`; compose treats 0 as unset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_bytes_nz",
        serialize_with = "ser_opt_sbytes"
    )]
    pub mem_swappiness: Option<i64>,
    /// Logging driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// `network_mode` (`host`, `none`, `service:NAME`, `container:NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Networks the service joins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    /// Disable the OOM killer.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub oom_kill_disable: bool,
    /// OOM score adjustment, -1000 to 1000 (0 is unset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_i64_nz"
    )]
    pub oom_score_adj: Option<i64>,
    /// PID namespace: `host`, `service:NAME`, `container:NAME`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string_ne"
    )]
    pub pid: Option<String>,
    /// Maximum number of processes (`pids_limit`; -1: unlimited; 0 is unset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_i64_nz"
    )]
    pub pids_limit: Option<i64>,
    /// Platform (`linux/amd64`); only the host's is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Privileged.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub privileged: bool,
    /// Pull policy: always, never, missing, build, if_not_present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
    /// Read-only root filesystem.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub read_only: bool,
    /// Restart policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// Replicas (legacy `scale`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub scale: Option<u64>,
    /// Secrets mounted under /run/secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileRef>,
    /// Security options (`seccomp=PROFILE`, `no-new-privileges`, `apparmor=…`, `label=…`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_str_vec"
    )]
    pub security_opt: Vec<String>,
    /// /dev/shm size in bytes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_bytes",
        serialize_with = "ser_opt_bytes"
    )]
    pub shm_size: Option<u64>,
    /// Keep stdin open.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub stdin_open: bool,
    /// Time to wait before SIGKILL, nanoseconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_duration",
        serialize_with = "ser_opt_duration"
    )]
    pub stop_grace_period: Option<u64>,
    /// Stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Sysctls.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub sysctls: BTreeMap<String, String>,
    /// tmpfs mounts `PATH[:OPTIONS]`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_str_vec"
    )]
    pub tmpfs: Vec<String>,
    /// Allocate a tty.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub tty: bool,
    /// Ulimits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// User.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string"
    )]
    pub user: Option<String>,
    /// User namespace mode (`host`; berth does not remap users, so only `host` or empty).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string_ne"
    )]
    pub userns_mode: Option<String>,
    /// Mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    /// Mounts of other services or containers, `SERVICE[:ro|rw]` or
    /// `container:NAME[:ro|rw]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `x-*` extensions of the service.
    #[serde(skip)]
    pub extensions: BTreeMap<String, Value>,
    /// Where the service's keys were written, for errors found after loading.
    #[serde(skip)]
    pub positions: Positions,
}

/// Where each key of a service was written: key → (file as given to the loader, 1-based
/// line); the key `""` is the service's name. Not part of the model's value: two services
/// that differ only in positions are equal.
#[derive(Debug, Clone, Default)]
pub struct Positions(pub BTreeMap<String, (String, usize)>);

impl PartialEq for Positions {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Positions {
    /// The file and line of `key`: a key of the service such as `cgroup_parent`, or one of
    /// its entries (`cap_add[1]`, `ulimits.nofile`; deeper paths are cut back to the nearest
    /// known one), else of the service's name; `None` for a service not read from a file.
    pub fn of(&self, key: &str) -> Option<(&str, usize)> {
        let mut k = key;
        loop {
            if let Some((f, l)) = self.0.get(k) {
                return Some((f.as_str(), *l));
            }
            match k.rfind(['.', '[']) {
                Some(i) if i > 0 => k = &k[..i],
                _ => break,
            }
        }
        self.0.get("").map(|(f, l)| (f.as_str(), *l))
    }
}

/// `build:` of a service.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Build context (absolute path after loading).
    pub context: String,
    /// Dockerfile, relative to the context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Inline Dockerfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    /// Build arguments (value `None`: taken from the environment at build time).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_opt_str_map"
    )]
    pub args: BTreeMap<String, Option<String>>,
    /// Target stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Image labels.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub labels: BTreeMap<String, String>,
    /// Network for RUN steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Don't use the cache.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub no_cache: bool,
    /// Pull base images.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub pull: bool,
    /// Extra tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// One `depends_on` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DependsOn {
    /// `service_started`, `service_healthy` or `service_completed_successfully`.
    #[serde(default = "started")]
    pub condition: String,
    /// Restart this service when the dependency is updated.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub restart: bool,
    /// Fail if the dependency is missing (else warn).
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub required: bool,
}

pub(super) fn started() -> String {
    "service_started".into()
}
pub(super) fn yes() -> bool {
    true
}

/// `deploy:` (the parts a single host uses).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// Mode (replicated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Number of containers.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub replicas: Option<u64>,
    /// Labels (on the service).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub labels: BTreeMap<String, String>,
    /// Limits and reservations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Restart policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Placement (accepted, unused on one host).
    #[serde(default)]
    pub placement: Value,
    /// Update config (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<Value>,
}

/// `deploy.resources`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Hard limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Resource>,
    /// Reservations (accepted; a single host does not reserve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Resource>,
}

/// CPU / memory / pids amounts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// CPUs (fractional).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_f64"
    )]
    pub cpus: Option<f64>,
    /// Memory in bytes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_bytes",
        serialize_with = "ser_opt_bytes"
    )]
    pub memory: Option<u64>,
    /// Maximum number of processes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub pids: Option<u64>,
}

/// `deploy.restart_policy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// none, on-failure, any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Delay between restarts (nanoseconds).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_duration",
        serialize_with = "ser_opt_duration"
    )]
    pub delay: Option<u64>,
    /// Attempts.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub max_attempts: Option<u64>,
    /// Window (nanoseconds).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_duration",
        serialize_with = "ser_opt_duration"
    )]
    pub window: Option<u64>,
}

/// A device mapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Host path.
    pub source: String,
    /// Container path.
    pub target: String,
    /// cgroup permissions (rwm).
    pub permissions: String,
}

/// `healthcheck:`. Durations are nanoseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// `["CMD", …]`, `["CMD-SHELL", cmd]` or `["NONE"]`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_test"
    )]
    pub test: Vec<String>,
    /// Time allowed for one check.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_duration",
        serialize_with = "ser_opt_duration"
    )]
    pub timeout: Option<u64>,
    /// Time between checks.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_duration",
        serialize_with = "ser_opt_duration"
    )]
    pub interval: Option<u64>,
    /// Consecutive failures before unhealthy.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub retries: Option<u64>,
    /// Grace period after start.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_duration",
        serialize_with = "ser_opt_duration"
    )]
    pub start_period: Option<u64>,
    /// Interval during the start period.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_duration",
        serialize_with = "ser_opt_duration"
    )]
    pub start_interval: Option<u64>,
    /// Disable the image's check.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub disable: bool,
}

/// `logging:`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// Driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Options.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub options: BTreeMap<String, String>,
}

/// `blkio_config:` (block I/O weight and per-device weights and throttles).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BlkioConfig {
    /// Relative block I/O weight, 10-1000 (0 is unset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_i64_nz"
    )]
    pub weight: Option<i64>,
    /// Per-device weights (`weight_device: [{path, weight}]`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_null_vec"
    )]
    pub weight_device: Vec<WeightDevice>,
    /// Read limits in bytes per second (`device_read_bps: [{path, rate}]`, rate `12mb`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_null_vec"
    )]
    pub device_read_bps: Vec<ThrottleDevice>,
    /// Read limits in operations per second (`device_read_iops: [{path, rate}]`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_null_vec"
    )]
    pub device_read_iops: Vec<ThrottleDevice>,
    /// Write limits in bytes per second (`device_write_bps`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_null_vec"
    )]
    pub device_write_bps: Vec<ThrottleDevice>,
    /// Write limits in operations per second (`device_write_iops`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_null_vec"
    )]
    pub device_write_iops: Vec<ThrottleDevice>,
}

/// One `blkio_config.weight_device` item. Printed as compose does (`Path`, `Weight`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WeightDevice {
    /// The block device (`/dev/sda`; empty when not given).
    #[serde(default, rename(serialize = "Path"), deserialize_with = "de_string")]
    pub path: String,
    /// Its relative weight (compose keeps 0-65535; the engine takes 10-1000).
    #[serde(default, rename(serialize = "Weight"), deserialize_with = "de_weight")]
    pub weight: u16,
}

/// One `blkio_config.device_{read,write}_{bps,iops}` item. Printed as compose does (`Path`,
/// `Rate` as text).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThrottleDevice {
    /// The block device (`/dev/sda`; empty when not given).
    #[serde(default, rename(serialize = "Path"), deserialize_with = "de_string")]
    pub path: String,
    /// The limit: bytes per second for `*_bps` (units allowed: `12mb`, powers of 1024),
    /// operations per second for `*_iops` (compose reads both the same way). Negative
    /// values pass the loader, as in compose; the engine refuses them.
    #[serde(
        default,
        rename(serialize = "Rate"),
        deserialize_with = "de_rate",
        serialize_with = "ser_i64_text"
    )]
    pub rate: i64,
}
