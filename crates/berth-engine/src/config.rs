//! What a container was created with (stored as JSON in its row), and flag parsing helpers.

use std::collections::BTreeMap;

use berth_net::NetworkMode;
use serde::{Deserialize, Serialize};

use crate::{EngineError, Result};

/// The resolved configuration of a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerConfig {
    /// Final argv (entrypoint + cmd after Docker's override rules).
    pub args: Vec<String>,
    /// The entrypoint in effect: `--entrypoint` or the image's `ENTRYPOINT` (Docker's
    /// `Config.Entrypoint`).
    pub entrypoint: Vec<String>,
    /// The command in effect: the words after the image name or the image's `CMD` (Docker's
    /// `Config.Cmd`).
    pub cmd: Vec<String>,
    /// The environment as `KEY=VALUE` strings: the image's, then `-e`/`--env-file` overriding.
    pub env: Vec<String>,
    /// The working directory inside the container: `-w` or the image's `WORKDIR` (empty: `/`).
    pub working_dir: String,
    /// `USER[:GROUP]` as given (resolved against the image's /etc/passwd at start).
    pub user: String,
    /// `--group-add`: extra supplementary groups (names or numbers) for the container's
    /// processes and its exec sessions; see [`crate::user`].
    #[serde(default)]
    pub group_add: Vec<String>,
    /// The container's host name (`--hostname`, default the first 12 hex digits of its id).
    pub hostname: String,
    /// `--domainname`: the UTS domain name (empty: none); with the hostname it makes the
    /// FQDN of /etc/hosts.
    #[serde(default)]
    pub domainname: String,
    /// `-t`: the process gets a pseudo-terminal.
    pub tty: bool,
    /// `-i`: the process's stdin stays open for `attach`/`start -i`.
    pub open_stdin: bool,
    /// Bind mounts from the host (`-v /host:/ctr[:ro]`, `--mount type=bind`).
    pub binds: Vec<Bind>,
    /// `--tmpfs` mounts.
    pub tmpfs: Vec<Tmpfs>,
    /// `--read-only`: the root file system is mounted read-only.
    pub read_only: bool,
    /// `--network`: none, host, another container's namespace, or networks to join.
    pub network: NetworkMode,
    /// `-p` specs as the user wrote them (`[IP:][HOST:]CONTAINER[/PROTO]`).
    pub publish: Vec<String>,
    /// `-P`: the exposed ports (`80/tcp`) to publish on random host ports; empty without `-P`.
    pub publish_all: Vec<String>,
    /// `--dns`: nameserver addresses replacing the host's.
    pub dns: Vec<String>,
    /// `--dns-search` (`.`: no search domains).
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--add-host HOST:IP` entries for /etc/hosts.
    pub add_hosts: Vec<String>,
    /// `--memory` limit in bytes (`None` or ≤ 0: unlimited).
    pub memory: Option<i64>,
    /// `--cpus` in billionths of a CPU (`1.5` → 1_500_000_000), Docker's `NanoCpus`.
    pub nano_cpus: Option<i64>,
    /// `--pids-limit`: maximum number of processes (`None`, 0 or -1: unlimited).
    pub pids_limit: Option<i64>,
    /// `--restart` policy applied by the monitor when the process exits.
    pub restart: RestartPolicy,
    /// `--init`: run docker-init/tini as PID 1, which reaps zombies and forwards signals.
    pub init: bool,
    /// `None` = builtin libcontainer; else an OCI runtime binary (name or path).
    pub runtime: Option<String>,
    /// Labels: the image's, then `--label`/`--label-file` overriding.
    pub labels: BTreeMap<String, String>,
    /// The signal `stop` sends first (`SIGTERM`, `TERM` or a number; see [`parse_signal`]).
    pub stop_signal: String,
    /// Seconds `stop` waits after the stop signal before sending SIGKILL (Docker's default 10).
    pub stop_timeout: u32,
    /// `--rm`: remove the container (and its anonymous volumes) when it exits.
    pub auto_remove: bool,
    /// Confinement: capabilities, seccomp, devices, limits (Docker's defaults when absent).
    #[serde(default)]
    pub security: crate::security::SecurityConfig,
    /// Volumes (named and anonymous) mounted into the container; see [`crate::volumes`].
    #[serde(default)]
    pub volumes: Vec<crate::volumes::VolumeMount>,
    /// The health check (image `HEALTHCHECK` merged with `--health-*`); `None` = no check.
    #[serde(default)]
    pub healthcheck: Option<crate::health::HealthConfig>,
    /// Log driver and options (`--log-driver`, `--log-opt`).
    #[serde(default)]
    pub log_config: crate::logs::LogConfig,
    /// Cgroup settings beyond `memory`, `nano_cpus` and `pids_limit` (`--cpu-shares`,
    /// `--memory-swap`, `--blkio-weight`, …; Docker's units).
    #[serde(default)]
    pub resources: crate::resources::Resources,
    /// `--pid`, `--ipc`, `--uts`, `--cgroupns` (`None`: Docker's default, a private namespace).
    #[serde(default)]
    pub namespaces: crate::resources::NamespaceModes,
    /// Extra network settings: `--expose`, `--link`, `--ip`, `--ip6`, `--mac-address`,
    /// `--cidfile`.
    #[serde(default)]
    pub extra: RunExtras,
}

/// Settings of `run`/`create` kept for inspect and for the network setup (Docker's
/// `Config.ExposedPorts`, `HostConfig.Links`, `HostConfig.ContainerIDFile`, the endpoint's
/// IPAM config and MAC address).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunExtras {
    /// `--expose` ports as `PORT/PROTO` (`80/tcp`), in addition to the image's EXPOSE.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// `--link NAME:ALIAS` with NAME resolved to the linked container's name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// `--ip`: the IPv4 address requested on the container's user network.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv4_address: String,
    /// `--ip6`: the IPv6 address requested.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv6_address: String,
    /// `--mac-address`: the MAC address of the container's interface.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    /// `--cidfile`: where the container id was written (absolute path).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cidfile: String,
}

/// A bind mount of a host path into the container (`-v /host:/ctr[:ro]`, `--mount
/// type=bind`), mounted `rbind` (OCI runtime spec mount with type `bind`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Bind {
    /// Absolute path on the host; it must exist at start.
    pub source: String,
    /// Absolute path inside the container.
    pub destination: String,
    /// Mounted read-only (`:ro`, `readonly`).
    pub read_only: bool,
    /// Mount propagation (`rprivate` when `None`): `private`, `rshared`, `slave`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
}

/// A `--tmpfs PATH[:OPTIONS]` mount: always `nosuid,nodev`, and `noexec` unless `exec` is
/// among the options (Docker's defaults).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tmpfs {
    /// Absolute path inside the container.
    pub destination: String,
    /// Mount options as given (`size=64m`, `mode=1777`, `exec`, …).
    pub options: Vec<String>,
}

/// `--restart`: Docker's restart policy (`HostConfig.RestartPolicy`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct RestartPolicy {
    /// "no", "always", "on-failure", "unless-stopped" (empty: "no").
    pub name: String,
    /// With `on-failure:N`, the most restarts to attempt (0: no limit).
    pub max_retries: u32,
}

impl RestartPolicy {
    /// Parse `no`, `always`, `unless-stopped` or `on-failure[:N]` as `--restart` takes it.
    ///
    /// Errors: [`EngineError::InvalidArgument`] for another name, a count that is not a
    /// number, or a count with a policy other than `on-failure` (as Docker).
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let (name, n) = match s.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let bad = || {
            EngineError::InvalidArgument(format!(
                "invalid restart policy {s:?}: use no, always, unless-stopped or on-failure[:N]"
            ))
        };
        match (name, n) {
            ("no" | "always" | "unless-stopped", None) | ("on-failure", None) => {
                Ok(RestartPolicy {
                    name: name.to_string(),
                    max_retries: 0,
                })
            }
            ("on-failure", Some(n)) => Ok(RestartPolicy {
                name: name.to_string(),
                max_retries: n.parse().map_err(|_| bad())?,
            }),
            ("always" | "unless-stopped", Some(_)) => Err(EngineError::InvalidArgument(format!(
                "invalid restart policy {s:?}: maximum retry count can only be used with on-failure"
            ))),
            _ => Err(bad()),
        }
    }

    /// Whether the policy never restarts (`no` or unset).
    pub fn is_none(&self) -> bool {
        self.name.is_empty() || self.name == "no"
    }

    /// Whether to restart after an exit with `code`, having restarted `count` times already.
    pub fn should_restart(&self, code: i32, count: u32, stop_requested: bool) -> bool {
        if stop_requested {
            return false;
        }
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => code != 0 && (self.max_retries == 0 || count < self.max_retries),
            _ => false,
        }
    }
}

/// Parse `64m`, `1g`, `512k`, `1024` (bytes) as Docker does.
///
/// Errors: [`EngineError::InvalidArgument`] for text that is not a number with an optional
/// unit, or a negative size.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.parse().map_err(|_| {
        EngineError::InvalidArgument(format!(
            "invalid size {s:?}: use a number with an optional unit b, k, m or g (e.g. 64m)"
        ))
    })?;
    if v < 0.0 || !v.is_finite() {
        return Err(EngineError::InvalidArgument(format!(
            "invalid size {s:?}: must be positive"
        )));
    }
    // Finite and not negative (checked above): the cast drops a fraction of a byte and
    // saturates at i64::MAX, as Docker's int64(float64) does.
    #[allow(clippy::cast_possible_truncation)]
    let n = (v * mult as f64) as i64;
    Ok(n)
}

/// `--cpus 1.5` → nano CPUs.
///
/// Errors: [`EngineError::InvalidArgument`] for text that is not a number, or a value not above 0.
pub fn parse_cpus(s: &str) -> Result<i64> {
    let v: f64 = s.trim().parse().map_err(|_| {
        EngineError::InvalidArgument(format!(
            "invalid --cpus {s:?}: use a number such as 0.5 or 2"
        ))
    })?;
    if v <= 0.0 || !v.is_finite() {
        return Err(EngineError::InvalidArgument(format!(
            "invalid --cpus {s:?}: must be greater than 0"
        )));
    }
    // Finite and positive (checked above): the cast drops fractions of a nanosecond and
    // saturates at i64::MAX.
    #[allow(clippy::cast_possible_truncation)]
    let n = (v * 1e9) as i64;
    Ok(n)
}

/// `-v HOST:CTR[:OPTIONS]` as a bind mount (named and anonymous volumes are refused here;
/// [`crate::volumes::parse_volume_flag`] accepts every form).
///
/// Errors: [`EngineError::InvalidArgument`] for a malformed flag (see
/// [`crate::volumes::parse_volume_flag`]) or a source that is not an absolute host path.
pub fn parse_volume(s: &str) -> Result<Bind> {
    match crate::volumes::parse_volume_flag(s)? {
        crate::volumes::MountRequest::Bind(b) => Ok(b),
        _ => Err(EngineError::InvalidArgument(format!(
            "invalid bind mount {s:?}: the host path must be absolute"
        ))),
    }
}

/// `--tmpfs /run[:size=64m,mode=1777]`
///
/// Errors: [`EngineError::InvalidArgument`] when the path is not absolute.
pub fn parse_tmpfs(s: &str) -> Result<Tmpfs> {
    let (dst, opts) = s.split_once(':').unwrap_or((s, ""));
    if !dst.starts_with('/') {
        return Err(EngineError::InvalidArgument(format!(
            "invalid --tmpfs {s:?}: the path must be absolute"
        )));
    }
    Ok(Tmpfs {
        destination: dst.to_string(),
        options: opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// Read a Docker env file: `KEY=VALUE` lines, `KEY` alone copies the host value, `#` comments.
///
/// Errors: [`EngineError::InvalidArgument`] when the file cannot be read, or naming `FILE:LINE`
/// for an empty variable name or one with white space.
pub fn read_env_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        EngineError::InvalidArgument(format!("cannot read env file {}: {e}", path.display()))
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, _)) if k.is_empty() || k.contains(char::is_whitespace) => {
                return Err(EngineError::InvalidArgument(format!(
                    "{}:{}: invalid variable name {k:?}",
                    path.display(),
                    i + 1
                )))
            }
            Some(_) => out.push(line.to_string()),
            None => {
                if let Ok(v) = std::env::var(line.trim()) {
                    out.push(format!("{}={v}", line.trim()));
                }
            }
        }
    }
    Ok(out)
}

/// Read a Docker label file (`--label-file`): `KEY=VALUE` lines (`KEY` alone: empty value),
/// `#` comments and blank lines skipped.
///
/// Errors: [`EngineError::InvalidArgument`] naming the file (unreadable) or the file and line
/// (a key with white space).
pub fn read_label_file(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        EngineError::InvalidArgument(format!("cannot read label file {}: {e}", path.display()))
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(EngineError::InvalidArgument(format!(
                "{}:{}: invalid label name {k:?}",
                path.display(),
                i + 1
            )));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// `--expose PORT[-END][/PROTO]` → the ports as `PORT/PROTO` (protocol tcp by default).
///
/// Errors: [`EngineError::InvalidArgument`] for a port outside 1–65535, a reversed range or an
/// unknown protocol.
pub fn parse_expose(s: &str) -> Result<Vec<String>> {
    let bad = || {
        EngineError::InvalidArgument(format!(
            "invalid --expose {s:?}: use PORT[-END][/tcp|udp|sctp], e.g. 8080 or 53/udp"
        ))
    };
    let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p != 0);
    let (a, b) = match ports.split_once('-') {
        Some((a, b)) => (port(a).ok_or_else(bad)?, port(b).ok_or_else(bad)?),
        None => {
            let p = port(ports).ok_or_else(bad)?;
            (p, p)
        }
    };
    if a > b {
        return Err(bad());
    }
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// The host's platform as OCI spells it (`linux/amd64`, `linux/arm64`, …).
pub fn host_platform() -> String {
    format!("linux/{}", berth_image::archive::host_arch())
}

/// `--platform OS[/ARCH[/VARIANT]]`: berth runs only the host's platform, and only images
/// built for it.
///
/// Errors: [`EngineError::InvalidArgument`] when the platform is not the host's, or when the
/// image (`image_arch`) is for another architecture.
pub fn check_platform(requested: &str, image_ref: &str, image_arch: &str) -> Result<()> {
    let host_arch = berth_image::archive::host_arch();
    let mut parts = requested.trim().splitn(3, '/');
    let os = parts.next().unwrap_or("").to_ascii_lowercase();
    let arch = parts.next().map(|a| a.to_ascii_lowercase());
    let arch = match arch.as_deref() {
        Some("x86_64" | "x86-64") => Some("amd64".to_string()),
        Some("aarch64") => Some("arm64".to_string()),
        _ => arch,
    };
    if os != "linux" || arch.as_deref().is_some_and(|a| a != host_arch) {
        return Err(EngineError::InvalidArgument(format!(
            "--platform {requested}: berth runs only this host's platform ({}); there is no emulation",
            host_platform()
        )));
    }
    if !image_arch.is_empty() && image_arch != host_arch {
        return Err(EngineError::InvalidArgument(format!(
            "image with reference {image_ref} was found but its platform (linux/{image_arch}) does not match the specified platform ({requested})"
        )));
    }
    Ok(())
}

/// Merge env lists: later entries override earlier ones with the same key; order of first
/// appearance kept.
pub fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in base.iter().chain(over.iter()) {
        let key = e.split_once('=').map(|(k, _)| k).unwrap_or(e);
        if let Some(slot) = out
            .iter_mut()
            .find(|x| x.split_once('=').map(|(k, _)| k).unwrap_or(x) == key)
        {
            *slot = e.clone();
        } else {
            out.push(e.clone());
        }
    }
    out
}

/// Signal names/numbers as Docker accepts them (`TERM`, `SIGTERM`, `15`, `SIGRTMIN+3`); see
/// [`berth_signal::parse`]. Errors: [`EngineError::InvalidArgument`] naming the input.
pub fn parse_signal(s: &str) -> Result<i32> {
    berth_signal::parse(s).map_err(|e| EngineError::InvalidArgument(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert_eq!(RestartPolicy::parse("on-failure:3").unwrap().max_retries, 3);
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("always:2").is_err());
        let p = RestartPolicy::parse("on-failure:2").unwrap();
        assert!(p.should_restart(1, 0, false));
        assert!(p.should_restart(1, 1, false));
        assert!(!p.should_restart(1, 2, false));
        assert!(!p.should_restart(0, 0, false));
        assert!(!RestartPolicy::parse("always")
            .unwrap()
            .should_restart(0, 9, true));
    }

    #[test]
    fn sizes_and_cpus() {
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_cpus("0.5").unwrap(), 500_000_000);
        assert!(parse_cpus("0").is_err());
    }

    #[test]
    fn expose_labels_platform() {
        assert_eq!(parse_expose("80").unwrap(), vec!["80/tcp".to_string()]);
        assert_eq!(
            parse_expose("53-54/UDP").unwrap(),
            vec!["53/udp".to_string(), "54/udp".to_string()]
        );
        assert!(parse_expose("0").is_err());
        assert!(parse_expose("9-8").is_err());
        assert!(parse_expose("80/xyz").is_err());
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("labels");
        std::fs::write(&f, "# c\na=1\n\nb\nc=x=y\n").unwrap();
        assert_eq!(
            read_label_file(&f).unwrap(),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), String::new()),
                ("c".to_string(), "x=y".to_string())
            ]
        );
        std::fs::write(&f, "bad key=1\n").unwrap();
        let e = read_label_file(&f).unwrap_err().to_string();
        assert!(e.contains(":1:"), "{e}");
        let host = host_platform();
        let arch = berth_image::archive::host_arch();
        assert!(check_platform(&host, "img", arch).is_ok());
        assert!(check_platform("linux", "img", arch).is_ok());
        assert!(check_platform("linux/s390x", "img", arch).is_err());
        assert!(check_platform("windows/amd64", "img", arch).is_err());
        assert!(check_platform(&host, "img", "s390x").is_err());
    }

    #[test]
    fn volumes_env_signals() {
        let b = parse_volume("/a:/b:ro").unwrap();
        assert!(b.read_only);
        assert!(parse_volume("rel:/b").is_err());
        assert!(parse_volume("/a:/b:xx").is_err());
        assert_eq!(
            merge_env(&["A=1".into(), "B=2".into()], &["A=3".into()]),
            vec!["A=3".to_string(), "B=2".to_string()]
        );
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert!(parse_signal("NOPE").is_err());
        // The shared parser: real-time names too (the full table is in berth-signal).
        assert_eq!(parse_signal("SIGRTMIN+3").unwrap(), 37);
        assert_eq!(parse_signal("rtmax-1").unwrap(), 63);
        assert!(parse_signal("RTMIN+99").is_err());
    }
}
