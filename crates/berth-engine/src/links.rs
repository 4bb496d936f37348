//! Legacy links (`--link NAME:ALIAS` on the default bridge): the environment variables Docker
//! set in the linking container (`ALIAS_PORT_80_TCP_ADDR`, `ALIAS_ENV_…`, `ALIAS_NAME`).
//!
//! Docker 29 stopped setting them unless its daemon runs with
//! `DOCKER_KEEP_DEPRECATED_LEGACY_LINKS_ENV_VARS=1`; berth, which has no daemon, reads that
//! variable from the environment of the command that starts the container ([`enabled`]).

/// The escape hatch Docker 29 gives for the deprecated link variables.
pub const KEEP_ENV: &str = "DOCKER_KEEP_DEPRECATED_LEGACY_LINKS_ENV_VARS";

/// Whether link variables are set: `DOCKER_KEEP_DEPRECATED_LEGACY_LINKS_ENV_VARS=1`.
pub fn enabled() -> bool {
    std::env::var(KEEP_ENV).is_ok_and(|v| v == "1")
}

/// A port as Docker's `network.Port`: number and protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    num: u16,
    proto: String,
}

fn parse_port(s: &str) -> Option<Port> {
    let (n, p) = s.split_once('/').unwrap_or((s, "tcp"));
    Some(Port {
        num: n.parse().ok()?,
        proto: p.to_ascii_lowercase(),
    })
}

/// TCP first, then by protocol name, then by number (Docker's `withTCPPriority`).
fn order(a: &Port, b: &Port) -> std::cmp::Ordering {
    let tcp = |p: &Port| p.proto != "tcp";
    tcp(a)
        .cmp(&tcp(b))
        .then_with(|| a.proto.cmp(&b.proto))
        .then_with(|| a.num.cmp(&b.num))
}

/// The variables for a link named `name` (`/PARENT/ALIAS`) to a container at `child_ip` with
/// the configured environment `env` (`KEY=VALUE`; HOME and PATH are left out) and the exposed
/// ports `exposed` (`80/tcp`, `53/udp`; unparsable entries are skipped), as Docker's
/// `links.EnvVars`: per port `ALIAS_PORT_N_PROTO{,_ADDR,_PORT,_PROTO}`, the first port as
/// `ALIAS_PORT`, runs of consecutive ports as `…_START`/`…_END`, then `ALIAS_NAME` and
/// `ALIAS_ENV_KEY`.
pub fn env_vars(child_ip: &str, name: &str, env: &[String], exposed: &[String]) -> Vec<String> {
    let last = name.rsplit('/').next().unwrap_or(name);
    let alias = last.to_ascii_uppercase().replace('-', "_");
    let mut ports: Vec<Port> = exposed.iter().filter_map(|p| parse_port(p)).collect();
    ports.sort_by(order);
    ports.dedup();
    let mut out = Vec::new();
    let mut start: Option<Port> = None;
    let mut end: Option<Port> = None;
    for (i, p) in ports.iter().enumerate() {
        let (num, proto) = (p.num, p.proto.as_str());
        if i == 0 {
            start = Some(p.clone());
            end = Some(p.clone());
            out.push(format!("{alias}_PORT={proto}://{child_ip}:{num}"));
        }
        let prefix = format!("{alias}_PORT_{num}_{}", proto.to_ascii_uppercase());
        out.push(format!("{prefix}={proto}://{child_ip}:{num}"));
        out.push(format!("{prefix}_ADDR={child_ip}"));
        out.push(format!("{prefix}_PORT={num}"));
        out.push(format!("{prefix}_PROTO={proto}"));
        // Part of a run of consecutive ports of one protocol?
        if let Some(e) = &end {
            if u32::from(num) == u32::from(e.num) + 1 && proto == e.proto {
                end = Some(p.clone());
                if i + 1 < ports.len() {
                    continue;
                }
            }
        }
        if let (Some(s), Some(e)) = (&start, &end) {
            if s != e {
                let prefix = format!("{alias}_PORT_{}_{}", s.num, s.proto.to_ascii_uppercase());
                out.push(format!("{prefix}_START={}://{child_ip}:{}", s.proto, s.num));
                out.push(format!("{prefix}_PORT_START={}", s.num));
                out.push(format!("{prefix}_END={}://{child_ip}:{}", e.proto, e.num));
                out.push(format!("{prefix}_PORT_END={}", e.num));
            }
        }
        start = Some(p.clone());
        end = Some(p.clone());
    }
    out.push(format!("{alias}_NAME={name}"));
    for v in env {
        let Some((k, val)) = v.split_once('=') else {
            continue;
        };
        if k == "HOME" || k == "PATH" {
            continue;
        }
        out.push(format!("{alias}_ENV_{k}={val}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::env_vars;

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn single_port_and_naming() {
        let got = sorted(env_vars(
            "172.0.17.2",
            "/db/docker-1",
            &[
                "PASSWORD=gordon".into(),
                "PATH=/bin".into(),
                "HOME=/root".into(),
            ],
            &["6379/tcp".into()],
        ));
        assert_eq!(
            got,
            vec![
                "DOCKER_1_ENV_PASSWORD=gordon",
                "DOCKER_1_NAME=/db/docker-1",
                "DOCKER_1_PORT=tcp://172.0.17.2:6379",
                "DOCKER_1_PORT_6379_TCP=tcp://172.0.17.2:6379",
                "DOCKER_1_PORT_6379_TCP_ADDR=172.0.17.2",
                "DOCKER_1_PORT_6379_TCP_PORT=6379",
                "DOCKER_1_PORT_6379_TCP_PROTO=tcp",
            ]
        );
    }

    #[test]
    fn port_ranges_as_docker() {
        let got = sorted(env_vars(
            "172.0.17.2",
            "/db/docker",
            &["PASSWORD=gordon".into()],
            &[
                "6300/udp".into(),
                "6379/tcp".into(),
                "6380/tcp".into(),
                "6381/tcp".into(),
                "6382/udp".into(),
            ],
        ));
        let want = vec![
            "DOCKER_ENV_PASSWORD=gordon",
            "DOCKER_NAME=/db/docker",
            "DOCKER_PORT=tcp://172.0.17.2:6379",
            "DOCKER_PORT_6300_UDP=udp://172.0.17.2:6300",
            "DOCKER_PORT_6300_UDP_ADDR=172.0.17.2",
            "DOCKER_PORT_6300_UDP_PORT=6300",
            "DOCKER_PORT_6300_UDP_PROTO=udp",
            "DOCKER_PORT_6379_TCP=tcp://172.0.17.2:6379",
            "DOCKER_PORT_6379_TCP_ADDR=172.0.17.2",
            "DOCKER_PORT_6379_TCP_END=tcp://172.0.17.2:6381",
            "DOCKER_PORT_6379_TCP_PORT=6379",
            "DOCKER_PORT_6379_TCP_PORT_END=6381",
            "DOCKER_PORT_6379_TCP_PORT_START=6379",
            "DOCKER_PORT_6379_TCP_PROTO=tcp",
            "DOCKER_PORT_6379_TCP_START=tcp://172.0.17.2:6379",
            "DOCKER_PORT_6380_TCP=tcp://172.0.17.2:6380",
            "DOCKER_PORT_6380_TCP_ADDR=172.0.17.2",
            "DOCKER_PORT_6380_TCP_PORT=6380",
            "DOCKER_PORT_6380_TCP_PROTO=tcp",
            "DOCKER_PORT_6381_TCP=tcp://172.0.17.2:6381",
            "DOCKER_PORT_6381_TCP_ADDR=172.0.17.2",
            "DOCKER_PORT_6381_TCP_PORT=6381",
            "DOCKER_PORT_6381_TCP_PROTO=tcp",
            "DOCKER_PORT_6382_UDP=udp://172.0.17.2:6382",
            "DOCKER_PORT_6382_UDP_ADDR=172.0.17.2",
            "DOCKER_PORT_6382_UDP_PORT=6382",
            "DOCKER_PORT_6382_UDP_PROTO=udp",
        ];
        assert_eq!(got, want);
    }
}
