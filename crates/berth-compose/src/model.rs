//! The typed compose model (what `config` prints and `up` runs). Field names are the compose
//! specification's; the JSON form matches `docker compose config --format json`.
//!
//! Deserialisation accepts the canonical (long) forms produced by [`crate::normalize`]; the
//! lenient helpers accept numbers, booleans and strings interchangeably where compose does.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A loaded project.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Project {
    /// Normalised project name.
    pub name: String,
    /// Networks used by the enabled services, by key.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    /// Services, by name (only the enabled ones, see profiles).
    pub services: BTreeMap<String, Service>,
    /// Named volumes used by the services.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    /// Secrets used by the services.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileObject>,
    /// Configs used by the services.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileObject>,
    /// Top-level `x-*` extensions.
    #[serde(skip)]
    pub extensions: BTreeMap<String, Value>,
    /// The project directory (absolute).
    #[serde(skip)]
    pub working_dir: std::path::PathBuf,
    /// The compose files read (absolute), in order.
    #[serde(skip)]
    pub config_files: Vec<std::path::PathBuf>,
    /// Services left out by profiles (name → its definition), for `--profile`-less errors.
    #[serde(skip)]
    pub disabled: BTreeMap<String, Service>,
    /// Warnings for the user (unset variables, obsolete `version`).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// A top-level network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Name on the engine (`PROJECT_KEY` unless set or external).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Driver (bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub driver_opts: BTreeMap<String, String>,
    /// IP address management.
    #[serde(default)]
    pub ipam: Ipam,
    /// Managed outside the project.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub external: bool,
    /// No outside connectivity.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub internal: bool,
    /// IPv6.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_bool"
    )]
    pub enable_ipv6: Option<bool>,
    /// Attachable (accepted).
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub attachable: bool,
    /// Labels.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub labels: BTreeMap<String, String>,
}

/// `ipam` of a network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ipam {
    /// Driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    /// Driver options.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub options: BTreeMap<String, String>,
}

/// One IPAM pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IpamPool {
    /// CIDR subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// IP range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Auxiliary addresses.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub aux_addresses: BTreeMap<String, String>,
}

/// A top-level volume.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Name on the engine (`PROJECT_KEY` unless set or external).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Driver (local).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options (`type`, `o`, `device` for local).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub driver_opts: BTreeMap<String, String>,
    /// Managed outside the project.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub external: bool,
    /// Labels.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret or config (file-based, or from the environment / inline content).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileObject {
    /// Name (`PROJECT_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Host file (absolute after loading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Environment variable holding the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Inline content (configs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Managed outside the project.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub external: bool,
    /// Labels.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub labels: BTreeMap<String, String>,
}

/// One service.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Profiles enabling this service (none: always enabled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Build definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// Added capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Dropped capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Command (`None`: the image's).
    #[serde(default, deserialize_with = "de_command")]
    pub command: Option<Vec<String>>,
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
    /// Logging driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// `network_mode` (`host`, `none`, `service:NAME`, `container:NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Networks the service joins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
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
    /// Mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `x-*` extensions of the service.
    #[serde(skip)]
    pub extensions: BTreeMap<String, Value>,
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

fn started() -> String {
    "service_started".into()
}
fn yes() -> bool {
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

/// A service's attachment to a network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetwork {
    /// Extra DNS names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Fixed IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    /// Fixed IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    /// Priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

/// A published port (long syntax).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Port name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ingress or host.
    #[serde(default = "ingress")]
    pub mode: String,
    /// Host address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Container port.
    #[serde(deserialize_with = "de_u16")]
    pub target: u16,
    /// Host port or range (`None`: random).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string"
    )]
    pub published: Option<String>,
    /// tcp or udp.
    #[serde(default = "tcp")]
    pub protocol: String,
    /// Application protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

fn ingress() -> String {
    "ingress".into()
}
fn tcp() -> String {
    "tcp".into()
}

/// A mount (long syntax).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// bind, volume, tmpfs (npipe, cluster, image are refused at `up`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Host path (bind, absolute after loading) or volume name; none for tmpfs/anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Container path.
    pub target: String,
    /// Read-only.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub read_only: bool,
    /// Consistency (ignored on Linux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Bind options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// Volume options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    /// tmpfs options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
}

/// Bind mount options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BindOptions {
    /// Propagation (rprivate, shared, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// SELinux relabel (z, Z).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
    /// Create the host path if missing.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub create_host_path: bool,
}

/// Volume mount options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeOptions {
    /// Don't copy the image's content into a new volume.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub nocopy: bool,
    /// Mount a sub-path of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// tmpfs mount options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TmpfsOptions {
    /// Size in bytes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_bytes",
        serialize_with = "ser_opt_bytes"
    )]
    pub size: Option<u64>,
    /// Mode (octal).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub mode: Option<u64>,
}

/// A secret or config reference of a service.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Top-level key.
    pub source: String,
    /// Path in the container (secrets: relative to /run/secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Owner uid.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string"
    )]
    pub uid: Option<String>,
    /// Owner gid.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string"
    )]
    pub gid: Option<String>,
    /// File mode (printed in octal, `"0440"`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_mode",
        serialize_with = "ser_opt_mode"
    )]
    pub mode: Option<u32>,
}

fn de_opt_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid mode {n}"))),
        Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .map(Some)
            .map_err(|_| D::Error::custom(format!("invalid mode {s:?}: use octal, e.g. 0440"))),
        other => Err(D::Error::custom(format!("invalid mode {other}"))),
    }
}

#[allow(clippy::ref_option)] // serde's serialize_with passes a reference
fn ser_opt_mode<S: Serializer>(v: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => s.serialize_str(&format!("0{n:o}")),
        None => s.serialize_none(),
    }
}

/// A ulimit: one number (soft = hard) or a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
    /// Written as a single number.
    pub single: bool,
}

impl Serialize for Ulimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.single {
            s.serialize_i64(self.soft)
        } else {
            let mut m = BTreeMap::new();
            m.insert("soft", self.soft);
            m.insert("hard", self.hard);
            // soft first, as Docker prints it.
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(2))?;
            map.serialize_entry("soft", &m["soft"])?;
            map.serialize_entry("hard", &m["hard"])?;
            map.end()
        }
    }
}

impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        match &v {
            Value::Object(m) => {
                if let Some(k) = m.keys().find(|k| *k != "soft" && *k != "hard") {
                    return Err(D::Error::custom(format!(
                        "unknown key {k:?}: use soft and hard"
                    )));
                }
                let get = |k: &str| -> Result<i64, D::Error> {
                    m.get(k)
                        .and_then(value_i64)
                        .ok_or_else(|| D::Error::custom(format!("{k} must be an integer")))
                };
                Ok(Ulimit {
                    soft: get("soft")?,
                    hard: get("hard")?,
                    single: false,
                })
            }
            _ => {
                let n = value_i64(&v)
                    .ok_or_else(|| D::Error::custom("a ulimit is an integer or {soft, hard}"))?;
                Ok(Ulimit {
                    soft: n,
                    hard: n,
                    single: true,
                })
            }
        }
    }
}

fn value_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

/// A scalar as compose prints it in string-typed fields (numbers and booleans as text).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => format_float(f),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`-like text (shortest that round-trips).
fn format_float(f: f64) -> String {
    let s = format!("{f}");
    s
}

fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    scalar_text(&v)
        .map(Some)
        .ok_or_else(|| D::Error::custom("must be a string"))
}

fn de_str_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::de::Error;
    let v = Value::deserialize(d)?;
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(a) => a
            .iter()
            .map(|x| scalar_text(x).ok_or_else(|| D::Error::custom("items must be strings")))
            .collect(),
        other => scalar_text(&other)
            .map(|s| vec![s])
            .ok_or_else(|| D::Error::custom("must be a string or a list of strings")),
    }
}

fn de_str_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(de_opt_str_map(d)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

fn de_opt_str_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    use serde::de::Error;
    let v = Value::deserialize(d)?;
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| {
                if v.is_null() {
                    Ok((k, None))
                } else {
                    scalar_text(&v)
                        .map(|s| (k.clone(), Some(s)))
                        .ok_or_else(|| {
                            D::Error::custom(format!("{k}: must be a string, number or boolean"))
                        })
                }
            })
            .collect(),
        _ => Err(D::Error::custom("must be a mapping or a list of KEY=VALUE")),
    }
}

fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(de_opt_bool(d)?.unwrap_or(false))
}

fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" | "1" => Ok(Some(true)),
            "false" | "no" | "n" | "off" | "0" | "" => Ok(Some(false)),
            _ => Err(D::Error::custom(format!("invalid boolean {s:?}"))),
        },
        other => Err(D::Error::custom(format!("invalid boolean {other}"))),
    }
}

fn de_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(|| {
            D::Error::custom(format!("invalid number {n}: must be a whole number ≥ 0"))
        }),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("invalid number {s:?}"))),
        other => Err(D::Error::custom(format!("invalid number {other}"))),
    }
}

fn de_u16<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    use serde::de::Error;
    let n = de_opt_u64(d)?.ok_or_else(|| D::Error::custom("missing port"))?;
    u16::try_from(n).map_err(|_| D::Error::custom(format!("invalid port {n}: must be 0-65535")))
}

fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("invalid number {s:?}"))),
        other => Err(D::Error::custom(format!("invalid number {other}"))),
    }
}

fn de_opt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid size {n}"))),
        Value::String(s) => parse_bytes(&s).map(Some).ok_or_else(|| {
            D::Error::custom(format!(
                "invalid size {s:?}: use a number with an optional unit b, k, m or g (e.g. 64m)"
            ))
        }),
        other => Err(D::Error::custom(format!("invalid size {other}"))),
    }
}

#[allow(clippy::ref_option)] // serde's serialize_with passes a reference
fn ser_opt_bytes<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => s.serialize_str(&n.to_string()),
        None => s.serialize_none(),
    }
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => parse_duration(&s).map(Some).ok_or_else(|| {
            D::Error::custom(format!(
                "invalid duration {s:?}: use a number with a unit, e.g. 30s, 1m30s, 500ms"
            ))
        }),
        Value::Number(n) => n
            .as_u64()
            .and_then(|v| v.checked_mul(1_000_000_000))
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid duration {n}"))),
        other => Err(D::Error::custom(format!("invalid duration {other}"))),
    }
}

#[allow(clippy::ref_option)] // serde's serialize_with passes a reference
fn ser_opt_duration<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => s.serialize_str(&format_duration(*n)),
        None => s.serialize_none(),
    }
}

fn de_command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => split_shell(&s)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid command {s:?}: unterminated quote"))),
        Value::Array(a) => a
            .iter()
            .map(|x| scalar_text(x).ok_or_else(|| D::Error::custom("items must be strings")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(D::Error::custom(format!(
            "must be a string or a list, not {other}"
        ))),
    }
}

fn de_test<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(vec![]),
        Value::String(s) => Ok(vec!["CMD-SHELL".into(), s]),
        Value::Array(a) => a
            .iter()
            .map(|x| scalar_text(x).ok_or_else(|| D::Error::custom("items must be strings")))
            .collect(),
        other => Err(D::Error::custom(format!(
            "must be a string or a list, not {other}"
        ))),
    }
}

/// Sizes as Docker's go-units `RAMInBytes`: `64m`, `1.5g`, `512kb`, `1024` (bytes); units
/// are powers of 1024. `None` if malformed.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let v: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return None,
    };
    #[allow(clippy::cast_precision_loss)] // sizes far below 2^53 are exact
    let bytes = v * mult as f64;
    if !bytes.is_finite() || !(0.0..=1.8e19).contains(&bytes) {
        return None;
    }
    // Truncation toward zero is what Docker does with fractional sizes.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(bytes as u64)
}

/// Go `time.ParseDuration`: `1h2m3.5s`, `500ms`, `10us`; nanoseconds. `None` if malformed.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if n_end == 0 {
            return None;
        }
        let v: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += v * mult;
        rest = &rest[u_end..];
    }
    if !total.is_finite() || total > 9.2e18 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked range above
    Some(total.round() as u64)
}

/// A literal `$` in a loaded value is printed as `$$`, so the output can be read again as a
/// compose file without interpolating it (as Docker prints it).
fn escape_dollars(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Array(a) => a.iter_mut().for_each(escape_dollars),
        Value::Object(m) => m.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

/// Go's `time.Duration.String()`: `1m30s`, `500ms`, `0s`.
pub fn format_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (div, unit) = if ns < 1_000 {
            (1, "ns")
        } else if ns < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{unit}", frac(ns, div));
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s_ns = ns % 60_000_000_000;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", frac(s_ns, 1_000_000_000)));
    out
}

fn frac(v: u64, div: u64) -> String {
    let whole = v / div;
    let rem = v % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{rem:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// Split a command string as a POSIX shell would (quotes and backslashes; no expansion).
/// `None` for an unterminated quote.
pub fn split_shell(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        x => cur.push(x),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            x @ ('"' | '\\' | '$' | '`') => cur.push(x),
                            '\n' => {}
                            x => {
                                cur.push('\\');
                                cur.push(x);
                            }
                        },
                        x => cur.push(x),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(x) => cur.push(x),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Some(out)
}

impl Project {
    /// The model as JSON, in `docker compose config --format json`'s shape (with extensions).
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            for (k, e) in &self.extensions {
                m.insert(k.clone(), e.clone());
            }
            if let Some(Value::Object(svcs)) = m.get_mut("services") {
                for (name, s) in &self.services {
                    if let Some(Value::Object(sm)) = svcs.get_mut(name) {
                        // Docker prints command and entrypoint even when unset.
                        sm.entry("command").or_insert(Value::Null);
                        sm.entry("entrypoint").or_insert(Value::Null);
                        // Service-level extensions are not printed (as Docker).
                        let _ = s;
                    }
                }
            }
        }
        escape_dollars(&mut v);
        v
    }

    /// Service names in dependency order (dependencies first), ties by name.
    pub fn dependency_order(&self) -> Vec<String> {
        let mut done: Vec<String> = Vec::new();
        fn visit(p: &Project, n: &str, done: &mut Vec<String>, stack: &mut Vec<String>) {
            if done.iter().any(|d| d == n) || stack.iter().any(|d| d == n) {
                return;
            }
            stack.push(n.to_string());
            if let Some(s) = p.services.get(n) {
                for dep in s.depends_on.keys() {
                    visit(p, dep, done, stack);
                }
            }
            stack.pop();
            done.push(n.to_string());
        }
        for n in self.services.keys() {
            visit(self, n, &mut done, &mut Vec::new());
        }
        done
    }
}

impl Service {
    /// Number of containers to run: `deploy.replicas`, else `scale`, else 1.
    pub fn replicas(&self) -> u64 {
        self.deploy
            .as_ref()
            .and_then(|d| d.replicas)
            .or(self.scale)
            .unwrap_or(1)
    }
}

/// JSON → YAML text (for `config`'s default format).
pub fn json_to_yaml(v: &Value) -> String {
    use yaml_rust2::{Yaml, YamlEmitter};
    fn conv(v: &Value) -> Yaml {
        match v {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Boolean(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Yaml::Integer(i),
                None => Yaml::Real(n.to_string()),
            },
            Value::String(s) => Yaml::String(s.clone()),
            Value::Array(a) => Yaml::Array(a.iter().map(conv).collect()),
            Value::Object(m) => {
                let mut h = yaml_rust2::yaml::Hash::new();
                for (k, v) in m {
                    h.insert(Yaml::String(k.clone()), conv(v));
                }
                Yaml::Hash(h)
            }
        }
    }
    let mut out = String::new();
    let mut em = YamlEmitter::new(&mut out);
    em.multiline_strings(true);
    if em.dump(&conv(v)).is_err() {
        return String::new();
    }
    let body = out.strip_prefix("---\n").unwrap_or(&out).to_string();
    body + "\n"
}

impl Project {
    /// The model as YAML (`config`'s default output).
    pub fn to_yaml(&self) -> String {
        json_to_yaml(&self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_like_go() {
        assert_eq!(
            parse_duration("90s").map(format_duration).as_deref(),
            Some("1m30s")
        );
        assert_eq!(
            parse_duration("1m").map(format_duration).as_deref(),
            Some("1m0s")
        );
        assert_eq!(
            parse_duration("1h").map(format_duration).as_deref(),
            Some("1h0m0s")
        );
        assert_eq!(
            parse_duration("500ms").map(format_duration).as_deref(),
            Some("500ms")
        );
        assert_eq!(
            parse_duration("1.5s").map(format_duration).as_deref(),
            Some("1.5s")
        );
        assert_eq!(
            parse_duration("0s").map(format_duration).as_deref(),
            Some("0s")
        );
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("1x"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("64m"), Some(64 << 20));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("1.5k"), Some(1536));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("64mb"), Some(64 << 20));
        assert_eq!(parse_bytes("x"), None);
    }

    #[test]
    fn shell_split() {
        assert_eq!(
            split_shell(r#"echo "a b" c\ d 'e f'"#).unwrap(),
            vec!["echo", "a b", "c d", "e f"]
        );
        assert!(split_shell("a 'b").is_none());
    }
}
