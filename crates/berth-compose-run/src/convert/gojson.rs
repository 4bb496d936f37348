//! Go's `encoding/json` output for a compose service, so that berth's configuration hash is
//! byte-for-byte docker compose's.
//!
//! docker compose hashes `json.Marshal` of compose-go's `types.ServiceConfig`: compact JSON,
//! struct fields in declaration order (each struct's table below, taken from
//! compose-go **v2.9.1** `types/` — the version docker compose v2.40.3 builds with), map keys
//! sorted bytewise, strings escaped as Go does (`<`, `>`, `&`, U+2028, U+2029 as `\u003c`…;
//! control characters as `\n`, `\u001b`…) and floats as Go formats them (`float32` fields
//! at single precision, no `.0`). Values come from berth's normalised model, whose JSON
//! (`compose config --format json`) already equals docker compose's up to key order; this
//! module only puts the keys in Go's order. Keys a table does not know (a newer compose-go
//! field) go after the known ones, sorted.

use serde_json::Value;

/// The shape of a JSON value: which key order its objects take.
#[derive(Clone, Copy)]
enum Ty {
    /// A scalar, or an object whose keys are sorted (a Go map), recursively.
    Any,
    /// A Go struct: keys in this order.
    Struct(&'static [(&'static str, Ty)]),
    /// A Go map: keys sorted, values of this shape.
    Map(&'static Ty),
    /// A Go slice: items of this shape.
    List(&'static Ty),
    /// A `float32` number.
    F32,
}

use Ty::{Any, List, Map, Struct, F32};

const DURATION: Ty = Any;
const MAPPING: Ty = Any;

const SERVICE_HOOK: &[(&str, Ty)] = &[
    ("command", Any),
    ("user", Any),
    ("privileged", Any),
    ("working_dir", Any),
    ("environment", MAPPING),
];

const TRIGGER: &[(&str, Ty)] = &[
    ("path", Any),
    ("action", Any),
    ("target", Any),
    ("exec", Struct(SERVICE_HOOK)),
    ("include", Any),
    ("ignore", Any),
    ("initial_sync", Any),
];

const DEVELOP: &[(&str, Ty)] = &[("watch", List(&Struct(TRIGGER)))];

const WEIGHT_DEVICE: &[(&str, Ty)] = &[("Path", Any), ("Weight", Any)];
const THROTTLE_DEVICE: &[(&str, Ty)] = &[("Path", Any), ("Rate", Any)];

const BLKIO: &[(&str, Ty)] = &[
    ("weight", Any),
    ("weight_device", List(&Struct(WEIGHT_DEVICE))),
    ("device_read_bps", List(&Struct(THROTTLE_DEVICE))),
    ("device_read_iops", List(&Struct(THROTTLE_DEVICE))),
    ("device_write_bps", List(&Struct(THROTTLE_DEVICE))),
    ("device_write_iops", List(&Struct(THROTTLE_DEVICE))),
];

const FILE_REFERENCE: &[(&str, Ty)] = &[
    ("source", Any),
    ("target", Any),
    ("uid", Any),
    ("gid", Any),
    ("mode", Any),
];

const CREDENTIAL_SPEC: &[(&str, Ty)] = &[("config", Any), ("file", Any), ("registry", Any)];

const DEPENDENCY: &[(&str, Ty)] = &[("condition", Any), ("restart", Any), ("required", Any)];

const UPDATE_CONFIG: &[(&str, Ty)] = &[
    ("parallelism", Any),
    ("delay", DURATION),
    ("failure_action", Any),
    ("monitor", DURATION),
    ("max_failure_ratio", F32),
    ("order", Any),
];

const DEVICE_REQUEST: &[(&str, Ty)] = &[
    ("capabilities", Any),
    ("driver", Any),
    ("count", Any),
    ("device_ids", Any),
    ("options", MAPPING),
];

const DISCRETE_RESOURCE: &[(&str, Ty)] = &[("kind", Any), ("value", Any)];
const GENERIC_RESOURCE: &[(&str, Ty)] = &[("discrete_resource_spec", Struct(DISCRETE_RESOURCE))];

const RESOURCE: &[(&str, Ty)] = &[
    ("cpus", F32),
    ("memory", Any),
    ("pids", Any),
    ("devices", List(&Struct(DEVICE_REQUEST))),
    ("generic_resources", List(&Struct(GENERIC_RESOURCE))),
];

const RESOURCES: &[(&str, Ty)] = &[
    ("limits", Struct(RESOURCE)),
    ("reservations", Struct(RESOURCE)),
];

const RESTART_POLICY: &[(&str, Ty)] = &[
    ("condition", Any),
    ("delay", DURATION),
    ("max_attempts", Any),
    ("window", DURATION),
];

const PLACEMENT_PREFERENCE: &[(&str, Ty)] = &[("spread", Any)];
const PLACEMENT: &[(&str, Ty)] = &[
    ("constraints", Any),
    ("preferences", List(&Struct(PLACEMENT_PREFERENCE))),
    ("max_replicas_per_node", Any),
];

const DEPLOY: &[(&str, Ty)] = &[
    ("mode", Any),
    ("replicas", Any),
    ("labels", MAPPING),
    ("update_config", Struct(UPDATE_CONFIG)),
    ("rollback_config", Struct(UPDATE_CONFIG)),
    ("resources", Struct(RESOURCES)),
    ("restart_policy", Struct(RESTART_POLICY)),
    ("placement", Struct(PLACEMENT)),
    ("endpoint_mode", Any),
];

const DEVICE_MAPPING: &[(&str, Ty)] = &[("source", Any), ("target", Any), ("permissions", Any)];

const PROVIDER: &[(&str, Ty)] = &[("type", Any), ("options", Any)];

const ENV_FILE: &[(&str, Ty)] = &[("path", Any), ("required", Any), ("format", Any)];

const EXTENDS: &[(&str, Ty)] = &[("file", Any), ("service", Any)];

const HEALTHCHECK: &[(&str, Ty)] = &[
    ("test", Any),
    ("timeout", DURATION),
    ("interval", DURATION),
    ("retries", Any),
    ("start_period", DURATION),
    ("start_interval", DURATION),
    ("disable", Any),
];

const LOGGING: &[(&str, Ty)] = &[("driver", Any), ("options", MAPPING)];

const SERVICE_MODEL: &[(&str, Ty)] = &[("endpoint_var", Any), ("model_var", Any)];

const SERVICE_NETWORK: &[(&str, Ty)] = &[
    ("aliases", Any),
    ("driver_opts", MAPPING),
    ("gw_priority", Any),
    ("interface_name", Any),
    ("ipv4_address", Any),
    ("ipv6_address", Any),
    ("link_local_ips", Any),
    ("mac_address", Any),
    ("priority", Any),
];

const PORT: &[(&str, Ty)] = &[
    ("name", Any),
    ("mode", Any),
    ("host_ip", Any),
    ("target", Any),
    ("published", Any),
    ("protocol", Any),
    ("app_protocol", Any),
];

const ULIMIT: &[(&str, Ty)] = &[("single", Any), ("soft", Any), ("hard", Any)];

const VOLUME_BIND: &[(&str, Ty)] = &[
    ("selinux", Any),
    ("propagation", Any),
    ("create_host_path", Any),
    ("recursive", Any),
];
const VOLUME_VOLUME: &[(&str, Ty)] = &[("labels", MAPPING), ("nocopy", Any), ("subpath", Any)];
const VOLUME_TMPFS: &[(&str, Ty)] = &[("size", Any), ("mode", Any)];
const VOLUME_IMAGE: &[(&str, Ty)] = &[("subpath", Any)];

const SERVICE_VOLUME: &[(&str, Ty)] = &[
    ("type", Any),
    ("source", Any),
    ("target", Any),
    ("read_only", Any),
    ("consistency", Any),
    ("bind", Struct(VOLUME_BIND)),
    ("volume", Struct(VOLUME_VOLUME)),
    ("tmpfs", Struct(VOLUME_TMPFS)),
    ("image", Struct(VOLUME_IMAGE)),
];

/// compose-go v2.9.1 `types.ServiceConfig`'s JSON fields, in declaration order (`build`
/// and the other fields docker compose clears before hashing included, for completeness).
const SERVICE: &[(&str, Ty)] = &[
    ("profiles", Any),
    ("annotations", MAPPING),
    ("attach", Any),
    ("build", Any),
    ("develop", Struct(DEVELOP)),
    ("blkio_config", Struct(BLKIO)),
    ("cap_add", Any),
    ("cap_drop", Any),
    ("cgroup_parent", Any),
    ("cgroup", Any),
    ("cpu_count", Any),
    ("cpu_percent", F32),
    ("cpu_period", Any),
    ("cpu_quota", Any),
    ("cpu_rt_period", Any),
    ("cpu_rt_runtime", Any),
    ("cpus", F32),
    ("cpuset", Any),
    ("cpu_shares", Any),
    ("command", Any),
    ("configs", List(&Struct(FILE_REFERENCE))),
    ("container_name", Any),
    ("credential_spec", Struct(CREDENTIAL_SPEC)),
    ("depends_on", Map(&Struct(DEPENDENCY))),
    ("deploy", Struct(DEPLOY)),
    ("device_cgroup_rules", Any),
    ("devices", List(&Struct(DEVICE_MAPPING))),
    ("dns", Any),
    ("dns_opt", Any),
    ("dns_search", Any),
    ("dockerfile", Any),
    ("domainname", Any),
    ("entrypoint", Any),
    ("provider", Struct(PROVIDER)),
    ("environment", MAPPING),
    ("env_file", List(&Struct(ENV_FILE))),
    ("expose", Any),
    ("extends", Struct(EXTENDS)),
    ("external_links", Any),
    ("extra_hosts", Any),
    ("group_add", Any),
    ("gpus", List(&Struct(DEVICE_REQUEST))),
    ("hostname", Any),
    ("healthcheck", Struct(HEALTHCHECK)),
    ("image", Any),
    ("init", Any),
    ("ipc", Any),
    ("isolation", Any),
    ("labels", MAPPING),
    ("label_file", Any),
    ("links", Any),
    ("logging", Struct(LOGGING)),
    ("log_driver", Any),
    ("log_opt", MAPPING),
    ("mem_limit", Any),
    ("mem_reservation", Any),
    ("memswap_limit", Any),
    ("mem_swappiness", Any),
    ("mac_address", Any),
    ("models", Map(&Struct(SERVICE_MODEL))),
    ("net", Any),
    ("network_mode", Any),
    ("networks", Map(&Struct(SERVICE_NETWORK))),
    ("oom_kill_disable", Any),
    ("oom_score_adj", Any),
    ("pid", Any),
    ("pids_limit", Any),
    ("platform", Any),
    ("ports", List(&Struct(PORT))),
    ("privileged", Any),
    ("pull_policy", Any),
    ("read_only", Any),
    ("restart", Any),
    ("runtime", Any),
    ("scale", Any),
    ("secrets", List(&Struct(FILE_REFERENCE))),
    ("security_opt", Any),
    ("shm_size", Any),
    ("stdin_open", Any),
    ("stop_grace_period", DURATION),
    ("stop_signal", Any),
    ("storage_opt", MAPPING),
    ("sysctls", MAPPING),
    ("tmpfs", Any),
    ("tty", Any),
    ("ulimits", Map(&Struct(ULIMIT))),
    ("use_api_socket", Any),
    ("user", Any),
    ("userns_mode", Any),
    ("uts", Any),
    ("volume_driver", Any),
    ("volumes", List(&Struct(SERVICE_VOLUME))),
    ("volumes_from", Any),
    ("working_dir", Any),
    ("post_start", List(&Struct(SERVICE_HOOK))),
    ("pre_stop", List(&Struct(SERVICE_HOOK))),
];

/// A service's JSON (in `compose config --format json`'s shape, without `$$` escaping) as
/// Go's `json.Marshal` of compose-go's `types.ServiceConfig` writes it: compact, keys in
/// compose-go's field order, Go's string escaping and float formatting.
pub fn service_json(v: &Value) -> String {
    let mut out = String::new();
    write(&mut out, v, Struct(SERVICE));
    out
}

fn write(out: &mut String, v: &Value, ty: Ty) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => number(out, n, matches!(ty, F32)),
        Value::String(s) => string(out, s),
        Value::Array(a) => {
            let item = match ty {
                List(t) => *t,
                _ => Any,
            };
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, x, item);
            }
            out.push(']');
        }
        Value::Object(m) => {
            // Known fields in declaration order, then the rest sorted (serde_json's map
            // iterates sorted; Go sorts map keys bytewise, as `str`'s order is).
            let mut keys: Vec<(&String, Ty)> = Vec::with_capacity(m.len());
            match ty {
                Struct(fields) => {
                    for (k, t) in fields {
                        if let Some((key, _)) = m.get_key_value(*k) {
                            keys.push((key, *t));
                        }
                    }
                    let mut rest: Vec<&String> = m
                        .keys()
                        .filter(|k| !fields.iter().any(|(f, _)| f == k))
                        .collect();
                    rest.sort();
                    keys.extend(rest.into_iter().map(|k| (k, Any)));
                }
                Map(t) => {
                    let mut all: Vec<&String> = m.keys().collect();
                    all.sort();
                    keys.extend(all.into_iter().map(|k| (k, *t)));
                }
                _ => {
                    let mut all: Vec<&String> = m.keys().collect();
                    all.sort();
                    keys.extend(all.into_iter().map(|k| (k, Any)));
                }
            }
            out.push('{');
            for (i, (k, t)) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, k);
                out.push(':');
                if let Some(x) = m.get(k) {
                    write(out, x, t);
                }
            }
            out.push('}');
        }
    }
}

/// A number as Go writes it: integers as they are; floats in the shortest form that reads
/// back (at single precision for `float32` fields), without a trailing `.0`, and in
/// exponent form (`1e-07`… cleaned to `1e-7`, `1e+21`) outside [1e-6, 1e21).
fn number(out: &mut String, n: &serde_json::Number, f32_field: bool) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
        return;
    }
    let Some(f) = n.as_f64() else {
        out.push_str(&n.to_string());
        return;
    };
    let a = f.abs();
    // Go: exponent form when abs < 1e-6 || abs >= 1e21 (float32: the same bounds on the
    // single-precision value).
    #[allow(clippy::cast_possible_truncation)] // a float32 field holds a float32 value
    let s = if f32_field {
        let g = f as f32;
        let ga = g.abs();
        if ga != 0.0 && !(1e-6..1e21).contains(&ga) {
            go_exponent(&format!("{g:e}"))
        } else {
            format!("{g}")
        }
    } else if a != 0.0 && !(1e-6..1e21).contains(&a) {
        go_exponent(&format!("{f:e}"))
    } else {
        format!("{f}")
    };
    out.push_str(&s);
}

/// Rust's `1e21` / `1.5e-7` → Go's `1e+21` / `1.5e-07`, then cleaned as Go's encoder does
/// (`e-07` → `e-7`): a sign always, at least one digit.
fn go_exponent(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
        _ => s.to_string(),
    }
}

/// A JSON string as Go's encoder writes it (HTML-safe).
fn string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\u{0}'..='\u{1f}' => {
                let u = u32::from(c);
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    let d = usize::try_from((u >> shift) & 0xf).unwrap_or(0);
                    out.push(char::from(HEX[d]));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_order_escaping_and_floats() {
        let v = json!({
            "volumes": [{"target": "/d", "type": "bind", "source": "/s", "bind": {"create_host_path": true}}],
            "command": ["sh", "-c", "a && b <c> \u{1b}\n"],
            "cpus": 1.5,
            "environment": {"B": "2", "A": null},
            "entrypoint": null,
            "x-unknown": 1,
            "deploy": {"resources": {"limits": {"memory": "1024", "cpus": 0.1}}, "placement": {}},
            "ulimits": {"nofile": {"soft": 1, "hard": 2}, "nproc": 3},
        });
        assert_eq!(
            service_json(&v),
            concat!(
                r#"{"cpus":1.5,"command":["sh","-c","a \u0026\u0026 b \u003cc\u003e \u001b\n"],"#,
                r#""deploy":{"resources":{"limits":{"cpus":0.1,"memory":"1024"}},"placement":{}},"#,
                r#""entrypoint":null,"environment":{"A":null,"B":"2"},"#,
                r#""ulimits":{"nofile":{"soft":1,"hard":2},"nproc":3},"#,
                r#""volumes":[{"type":"bind","source":"/s","target":"/d","bind":{"create_host_path":true}}],"#,
                r#""x-unknown":1}"#
            )
        );
    }

    #[test]
    fn floats_as_go_writes_them() {
        let f = |x: f64, f32_field: bool| {
            let mut s = String::new();
            number(&mut s, &serde_json::Number::from_f64(x).unwrap(), f32_field);
            s
        };
        assert_eq!(f(2.0, true), "2");
        assert_eq!(f(0.1, true), "0.1");
        assert_eq!(f(f64::from(0.1f32), true), "0.1");
        assert_eq!(f(0.25, false), "0.25");
        assert_eq!(f(1e21, false), "1e+21");
        assert_eq!(f(1.5e-7, false), "1.5e-7");
    }
}
