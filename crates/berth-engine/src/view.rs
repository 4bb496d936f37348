//! Containers as Docker's listings show them: the `ps` row (`ID`, `Image`, `Command`,
//! `CreatedAt`, `RunningFor`, `Ports`, `State`, `Status`, `Size`, `Names`, `Labels`, `Mounts`,
//! `Networks`, `LocalVolumes`, the fields `docker ps --format` knows) and `ps --filter`.
//! One implementation for the CLI and the API.

use std::collections::{BTreeMap, HashMap};

use berth_format::human;
use berth_net::NetworkMode;
use serde_json::{json, Value};

use crate::state::{Container, State};

/// Docker's default `ps` table.
pub const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// Header text of `ps` fields (the others print their name in capitals).
pub const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("RunningFor", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// The status column: `Up 5 seconds (healthy)`, `Up 1 second (Paused)`, `Exited (0) 2
/// minutes ago`, `Created`, … `health` is the container's health status when it has a check.
pub fn status_text(c: &Container, health: Option<&str>) -> String {
    status_text_paused(c, health, false)
}

/// [`status_text`] of a container that may be paused.
pub fn status_text_paused(c: &Container, health: Option<&str>, paused: bool) -> String {
    match c.state {
        State::Running => {
            let up = match &c.started_at {
                Some(t) => format!("Up {}", since(t)),
                None => "Up".into(),
            };
            if paused {
                return format!("{up} (Paused)");
            }
            match health {
                Some("starting") => format!("{up} (health: starting)"),
                Some(h) => format!("{up} ({h})"),
                None => up,
            }
        }
        State::Restarting => format!(
            "Restarting ({}) {}",
            c.exit_code.unwrap_or(0),
            c.finished_at
                .as_deref()
                .map(|t| format!("{} ago", since(t)))
                .unwrap_or_default()
        ),
        State::Exited => format!(
            "Exited ({}) {} ago",
            c.exit_code.unwrap_or(0),
            c.finished_at
                .as_deref()
                .map(since)
                .unwrap_or_else(|| "a while".into())
        ),
        State::Created => "Created".into(),
        State::Removing => "Removing".into(),
    }
}

/// Seconds since an RFC 3339 time, worded (`5 seconds`).
fn since(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => human::duration(chrono::Utc::now().timestamp() - t.timestamp()),
        Err(_) => "a while".into(),
    }
}

/// The command, quoted; with `trunc`, cut to 20 characters with `…` as Docker does.
pub fn command_text(c: &Container, trunc: bool) -> String {
    let s = c.config.args.join(" ");
    if trunc && s.chars().count() > 20 {
        format!("\"{}…\"", s.chars().take(19).collect::<String>())
    } else {
        format!("\"{s}\"")
    }
}

/// The names of the networks a container is attached to (`none`, `host`, `container:ID`).
pub fn network_names(c: &Container) -> Vec<String> {
    match &c.config.network {
        NetworkMode::None => vec!["none".into()],
        NetworkMode::Host => vec!["host".into()],
        NetworkMode::Container(id) => vec![format!("container:{id}")],
        NetworkMode::Networks(n) => n
            .iter()
            .map(|a| berth_net::shown_name(&a.network).to_string())
            .collect(),
    }
}

fn created_at(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default()
}

/// Docker's state word: `paused` for a frozen running container, else the stored state.
pub fn state_text(c: &Container, paused: bool) -> &'static str {
    if paused && c.state == State::Running {
        "paused"
    } else {
        c.state.as_str()
    }
}

/// `s` cut to `width` characters with `…` as its last one (Docker's `Ellipsis`).
fn ellipsis(s: &str, width: usize) -> String {
    if s.chars().count() > width {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

/// `s` in double quotes with quotes, backslashes, newlines and tabs escaped (as Go's `strconv.Quote`).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The ports of a list entry (`Ports` of [`crate::list::summary`]) as `docker ps` shows
/// them (the docker CLI's `DisplayablePorts`): sorted by container port, address, host port
/// and protocol; ports published on the same number (or only exposed) folded into ranges
/// (`127.0.0.1:8000-8001->8000-8001/tcp`, `80-81/tcp`); other publications after them
/// (`0.0.0.0:8080->80/tcp`).
fn summary_ports(ports: &[Value]) -> String {
    struct Port {
        private: u64,
        ip: String,
        public: u64,
        proto: String,
    }
    let mut ps: Vec<Port> = ports
        .iter()
        .map(|p| Port {
            private: p["PrivatePort"].as_u64().unwrap_or(0),
            ip: p["IP"].as_str().unwrap_or("").to_string(),
            public: p["PublicPort"].as_u64().unwrap_or(0),
            proto: p["Type"].as_str().unwrap_or("tcp").to_string(),
        })
        .collect();
    ps.sort_by(|a, b| {
        (a.private, &a.ip, a.public, &a.proto).cmp(&(b.private, &b.ip, b.public, &b.proto))
    });
    let host = |ip: &str, port: String| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    // Groups keyed by `PROTO` (exposed) or `IP/PROTO` (published on the same number), in
    // the order their keys first appear; a gap in a key's numbers closes its group.
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut open: HashMap<(String, String), (u64, u64)> = HashMap::new();
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    let form = |(ip, proto): &(String, String), first: u64, last: u64| {
        let range = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        // Not bracketed, as the docker CLI prints it (`:::80->80/tcp`).
        if ip.is_empty() {
            format!("{range}/{proto}")
        } else {
            format!("{ip}:{range}->{range}/{proto}")
        }
    };
    for p in &ps {
        if !p.ip.is_empty() && p.public != p.private {
            mappings.push(format!(
                "{}->{}/{}",
                host(&p.ip, p.public.to_string()),
                p.private,
                p.proto
            ));
            continue;
        }
        let key = (p.ip.clone(), p.proto.clone());
        match open.get_mut(&key) {
            None => {
                open.insert(key.clone(), (p.private, p.private));
                keys.push(key);
            }
            Some(g) if p.private == g.1 + 1 => g.1 = p.private,
            Some(g) => {
                result.push(form(&key, g.0, g.1));
                *g = (p.private, p.private);
            }
        }
    }
    for k in &keys {
        if let Some(&(first, last)) = open.get(k) {
            result.push(form(k, first, last));
        }
    }
    result.extend(mappings);
    result.join(", ")
}

/// One `ps` row, formatted from a container's list entry ([`crate::list::summary`], the
/// `ContainerSummary` the API serves) as the docker CLI formats it: Docker's field names
/// with string values (`ID`, `Image`, `Command`, `CreatedAt`, `RunningFor`, `Ports`,
/// `State`, `Status`, `Size`, `Names`, `Labels`, `Mounts`, `Networks`, `LocalVolumes`),
/// plus the hidden `@labels` object behind `{{.Label "k"}}`. `no_trunc` keeps ids,
/// commands and mount names whole.
pub fn ps_row(s: &Value, no_trunc: bool) -> Value {
    let trunc = !no_trunc;
    let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("");
    let list = |k: &str| {
        s.get(k)
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
    };
    let id = text("Id");
    let id = if trunc { &id[..id.len().min(12)] } else { id };
    let names: Vec<&str> = list("Names")
        .iter()
        .filter_map(Value::as_str)
        .map(|n| n.strip_prefix('/').unwrap_or(n))
        .collect();
    let names = if trunc {
        names
            .iter()
            .find(|n| !n.contains('/'))
            .map(|n| (*n).to_string())
            .unwrap_or_default()
    } else {
        names.join(",")
    };
    let command = text("Command");
    let command = if trunc {
        quote(&ellipsis(command, 20))
    } else {
        quote(command)
    };
    let created = s.get("Created").and_then(Value::as_i64).unwrap_or(0);
    let labels_obj = s.get("Labels").cloned().unwrap_or_else(|| json!({}));
    let mut labels: Vec<String> = labels_obj
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    let mounts = list("Mounts");
    let mount_names: Vec<String> = mounts
        .iter()
        .map(|m| match m["Name"].as_str().filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => m["Source"].as_str().unwrap_or(""),
        })
        .filter(|n| !n.is_empty())
        .map(|n| {
            if trunc {
                ellipsis(n, 15)
            } else {
                n.to_string()
            }
        })
        .collect();
    let local_volumes = mounts.iter().filter(|m| m["Driver"] == "local").count();
    let networks: Vec<&str> = s
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    // The docker CLI's formatter: `0B` when sizes were not asked for.
    let rw = s.get("SizeRw").and_then(Value::as_u64).unwrap_or(0);
    let size = match s
        .get("SizeRootFs")
        .and_then(Value::as_u64)
        .filter(|v| *v > 0)
    {
        Some(root) => format!("{} (virtual {})", human::size3(rw), human::size3(root)),
        None => human::size3(rw),
    };
    json!({
        "Command": command,
        "CreatedAt": created_at(created),
        "ID": id,
        "Image": text("Image"),
        "Labels": labels.join(","),
        "LocalVolumes": local_volumes.to_string(),
        "Mounts": mount_names.join(","),
        "Names": names,
        "Networks": networks.join(","),
        "Ports": summary_ports(list("Ports")),
        "RunningFor": human::ago(created),
        "Size": size,
        "State": text("State"),
        "Status": text("Status"),
        "@labels": labels_obj,
    })
}

/// Docker's default `stats` table.
pub const STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// Header text of `stats` fields.
pub const STATS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Container", "CONTAINER"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
];

/// One `stats` row: `cpu_percent` over the sampling interval, `mem_total` (bytes) the limit
/// shown when the container has none.
pub fn stats_row(
    c: &Container,
    s: &crate::ops::Stats,
    cpu_percent: f64,
    mem_total: u64,
    given: &str,
) -> Value {
    let limit = s
        .cgroup
        .memory_limit
        .unwrap_or(mem_total)
        .min(mem_total.max(1));
    #[allow(clippy::cast_precision_loss)] // percentages of byte counts
    let mem_pct = if limit > 0 {
        s.cgroup.memory_usage as f64 * 100.0 / limit as f64
    } else {
        0.0
    };
    json!({
        "BlockIO": format!("{} / {}", human::size(s.cgroup.blkio_read), human::size(s.cgroup.blkio_write)),
        "CPUPerc": format!("{cpu_percent:.2}%"),
        "Container": given,
        "ID": &c.id[..12.min(c.id.len())],
        "MemPerc": format!("{mem_pct:.2}%"),
        "MemUsage": format!("{} / {}", human::binary_size(s.cgroup.memory_usage), human::binary_size(limit)),
        "Name": c.name,
        "NetIO": format!("{} / {}", human::size(s.net_rx), human::size(s.net_tx)),
        "PIDs": s.cgroup.pids.to_string(),
    })
}

/// A `ps --filter` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter {0:?}: {1}")]
pub struct FilterError(pub String, pub String);

/// `ps --filter` conditions: every key must match; several values of one key are
/// alternatives, except `label`, whose values must all match (Docker's rules).
#[derive(Debug, Default, Clone)]
pub struct PsFilter {
    conds: BTreeMap<String, Vec<String>>,
}

const PS_KEYS: &[&str] = &[
    "id", "name", "label", "status", "exited", "ancestor", "before", "since", "volume", "network",
    "publish", "expose", "health", "is-task",
];

impl PsFilter {
    /// Parse `KEY=VALUE` items. Errors name the item and the accepted keys.
    pub fn parse(items: &[String]) -> Result<PsFilter, FilterError> {
        let mut f = PsFilter::default();
        for i in items {
            let (k, v) = i
                .split_once('=')
                .ok_or_else(|| FilterError(i.clone(), "use KEY=VALUE".into()))?;
            if !PS_KEYS.contains(&k) {
                return Err(FilterError(
                    i.clone(),
                    format!("the key is one of {}", PS_KEYS.join(", ")),
                ));
            }
            let bad = |why: &str| Err(FilterError(i.clone(), why.into()));
            match k {
                "health" if !matches!(v, "starting" | "healthy" | "unhealthy" | "none") => {
                    return bad("health is starting, healthy, unhealthy or none")
                }
                "status"
                    if !matches!(
                        v,
                        "created"
                            | "restarting"
                            | "running"
                            | "removing"
                            | "paused"
                            | "exited"
                            | "dead"
                    ) =>
                {
                    return bad(
                        "status is created, restarting, running, removing, paused, exited or dead",
                    )
                }
                "exited" if v.parse::<i32>().is_err() => return bad("exited takes an exit code"),
                "is-task" if !matches!(v, "true" | "false") => {
                    return bad("is-task is true or false")
                }
                _ => {}
            }
            f.conds
                .entry(k.to_string())
                .or_default()
                .push(v.to_string());
        }
        Ok(f)
    }

    /// Whether the filter shows stopped containers without `-a` (status, exited, before,
    /// since do, as in Docker).
    pub fn implies_all(&self) -> bool {
        ["status", "exited"]
            .iter()
            .any(|k| self.conds.contains_key(*k))
    }

    /// The `before`/`since` values (container names or ids), for the caller to resolve to
    /// containers ([`FilterContext::before`], [`FilterContext::since`]).
    pub fn references(&self) -> Vec<(&str, &str)> {
        ["before", "since"]
            .iter()
            .flat_map(|k| {
                self.conds
                    .get(*k)
                    .into_iter()
                    .flatten()
                    .map(move |v| (*k, v.as_str()))
            })
            .collect()
    }

    /// Whether container `c` passes. `health` is its health status (when it has a check);
    /// `ctx` holds what the caller resolved from the store: the ids `ancestor` values name,
    /// the `before`/`since` containers, the creation order and the paused ids.
    pub fn matches(&self, c: &Container, health: Option<&str>, ctx: &FilterContext) -> bool {
        self.conds.iter().all(|(k, vs)| {
            let one = |v: &String| match k.as_str() {
                "health" => health.unwrap_or("none") == v,
                "status" => state_text(c, ctx.paused.contains(&c.id)) == v,
                "exited" => {
                    c.state == State::Exited
                        && c.exit_code.map(|e| e.to_string()) == Some(v.clone())
                }
                "name" => c.name.contains(v.as_str()),
                "id" => c.id.starts_with(v.as_str()),
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => c.config.labels.get(lk).map(String::as_str) == Some(lv),
                    None => c.config.labels.contains_key(v.as_str()),
                },
                "volume" => {
                    c.config
                        .volumes
                        .iter()
                        .any(|m| &m.name == v || &m.destination == v)
                        || c.config
                            .binds
                            .iter()
                            .any(|b| &b.destination == v || &b.source == v)
                }
                "network" => network_names(c).iter().any(|n| n == v),
                "ancestor" => {
                    c.image_name == *v
                        || c.image_name == format!("{v}:latest")
                        || c.image_id
                            .as_str()
                            .trim_start_matches("sha256:")
                            .starts_with(v.trim_start_matches("sha256:"))
                        || ctx.ancestor_ids.iter().any(|id| id == c.image_id.as_str())
                }
                "before" => ctx.before.as_ref().is_some_and(|r| ctx.older(c, r)),
                "since" => ctx.since.as_ref().is_some_and(|r| ctx.older(r, c)),
                "publish" => {
                    let (port, proto) = split_port(v);
                    c.net.as_ref().is_some_and(|n| {
                        n.ports.iter().any(|p| {
                            p.host_port.to_string() == port && proto.is_none_or(|x| p.protocol == x)
                        })
                    })
                }
                "expose" => {
                    let (port, proto) = split_port(v);
                    c.net.as_ref().is_some_and(|n| {
                        n.ports.iter().any(|p| {
                            p.container_port.to_string() == port
                                && proto.is_none_or(|x| p.protocol == x)
                        })
                    }) || c
                        .config
                        .publish
                        .iter()
                        .chain(&c.config.publish_all)
                        .any(|p| {
                            let spec = p.rsplit(':').next().unwrap_or(p);
                            let (sp, sproto) = split_port(spec);
                            sp == port && proto.is_none_or(|x| sproto.unwrap_or("tcp") == x)
                        })
                }
                "is-task" => v == "false",
                _ => false,
            };
            // Docker's rule: every `label` value must match (compose finds one service's
            // containers with project and service labels); other keys' values are alternatives.
            if k == "label" {
                vs.iter().all(one)
            } else {
                vs.iter().any(one)
            }
        })
    }
}

fn split_port(v: &str) -> (&str, Option<&str>) {
    match v.split_once('/') {
        Some((p, proto)) => (p, Some(proto)),
        None => (v, None),
    }
}

/// Values a filter needs from the store, resolved by the caller.
#[derive(Debug, Default, Clone)]
pub struct FilterContext {
    /// Image ids (`sha256:…`) that `ancestor=` values name.
    pub ancestor_ids: Vec<String>,
    /// The `before=` container.
    pub before: Option<Container>,
    /// The `since=` container.
    pub since: Option<Container>,
    /// Container ids, newest first (the store's creation order, which breaks ties between
    /// containers created in the same second).
    pub order: Vec<String>,
    /// Ids of paused containers.
    pub paused: Vec<String>,
}

impl FilterContext {
    /// Whether `a` was created before `b`.
    fn older(&self, a: &Container, b: &Container) -> bool {
        let pos = |c: &Container| self.order.iter().position(|i| *i == c.id);
        match (pos(a), pos(b)) {
            (Some(x), Some(y)) => x > y,
            _ => a.created < b.created,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_sorted_and_folded_as_the_docker_cli_shows_them() {
        let p = |ip: &str, public: u64, private: u64, proto: &str| {
            if ip.is_empty() {
                json!({"PrivatePort": private, "Type": proto})
            } else {
                json!({"IP": ip, "PublicPort": public, "PrivatePort": private, "Type": proto})
            }
        };
        let ports = [
            p("0.0.0.0", 18443, 443, "tcp"),
            p("0.0.0.0", 18180, 80, "tcp"),
            p("127.0.0.1", 8001, 8001, "tcp"),
            p("127.0.0.1", 8000, 8000, "tcp"),
            p("", 0, 5000, "tcp"),
            p("", 0, 5001, "tcp"),
            p("", 0, 53, "udp"),
            p("::", 9000, 9000, "tcp"),
            p("::", 9090, 90, "tcp"),
        ];
        assert_eq!(
            summary_ports(&ports),
            "53/udp, 5000-5001/tcp, 127.0.0.1:8000-8001->8000-8001/tcp, :::9000->9000/tcp, \
             0.0.0.0:18180->80/tcp, [::]:9090->90/tcp, 0.0.0.0:18443->443/tcp"
        );
        // A gap closes a range.
        let ports = [
            p("", 0, 80, "tcp"),
            p("", 0, 82, "tcp"),
            p("", 0, 81, "tcp"),
            p("", 0, 84, "tcp"),
        ];
        assert_eq!(summary_ports(&ports), "80-82/tcp, 84/tcp");
        assert_eq!(summary_ports(&[]), "");
    }

    #[test]
    fn filters_parse_and_refuse() {
        assert!(PsFilter::parse(&["status=running".into(), "exited=0".into()]).is_ok());
        let e = PsFilter::parse(&["colour=red".into()]).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        assert!(PsFilter::parse(&["exited=x".into()]).is_err());
        assert!(PsFilter::parse(&["status=sleeping".into()]).is_err());
        assert!(PsFilter::parse(&["status=running".into()])
            .unwrap()
            .implies_all());
    }

    #[test]
    fn label_values_must_all_match_other_keys_are_alternatives() {
        let t = crate::testutil::store();
        let mk = |name: &str, service: &str| {
            let mut c = crate::testutil::row(&t.store, name, crate::state::State::Created);
            c.config.labels.insert("p".into(), "proj".into());
            c.config.labels.insert("s".into(), service.into());
            c
        };
        let (web, db) = (mk("web", "web"), mk("db", "db"));
        let ctx = FilterContext::default();
        let f = |items: &[&str]| {
            PsFilter::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        // docker compose lists one service's containers with project and service labels.
        let both = f(&["label=p=proj", "label=s=db"]);
        assert!(both.matches(&db, None, &ctx));
        assert!(!both.matches(&web, None, &ctx));
        assert!(!f(&["label=p", "label=other"]).matches(&db, None, &ctx));
        // Names (and other keys) stay alternatives.
        let names = f(&["name=web", "name=db"]);
        assert!(names.matches(&web, None, &ctx) && names.matches(&db, None, &ctx));
    }
}
