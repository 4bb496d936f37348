//! Docker-shaped JSON: `network inspect` and a container's `NetworkSettings`.

use berth_store::Store;

use crate::state;
use crate::Result;

/// Docker's `network inspect` document of the network a word names (name, id or id prefix;
/// `bridge`, `host` and `none` as Docker shows them, see [`crate::find_shown`]).
///
/// # Errors
/// [`crate::NetError::NotFound`], [`crate::NetError::Ambiguous`], a store error.
pub fn inspect_network(store: &Store, name: &str) -> Result<serde_json::Value> {
    network_doc(store, &crate::find_shown(store, name)?)
}

/// Docker's `network inspect` document of a listed network (`GET /networks` gives a list of
/// these): `Name` (shown name), `Id`, `Created` (RFC 3339), `Scope`, `Driver`, `IPAM`,
/// `Internal`, `Containers` (by container id), `Options`, `Labels`.
///
/// # Errors
/// A database error.
pub fn network_doc(store: &Store, listed: &crate::Listed) -> Result<serde_json::Value> {
    let created = chrono::DateTime::from_timestamp(listed.created(), 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let n = match listed {
        crate::Listed::Stored(n) => n,
        crate::Listed::Predefined { kind, .. } => {
            return predefined_doc(store, listed, *kind, created)
        }
    };
    let eps = state::endpoints_of_network(store.db(), &n.name)?;
    let containers: serde_json::Map<String, serde_json::Value> = eps
        .iter()
        .map(|e| {
            (
                e.container_id.clone(),
                serde_json::json!({
                    "Name": e.container_name,
                    "EndpointID": e.veth,
                    "MacAddress": e.mac,
                    "IPv4Address": format!("{}/{}", e.ip, n.subnet.prefix_len()),
                    "IPv6Address": "",
                    "Aliases": e.aliases,
                }),
            )
        })
        .collect();
    let mut options = serde_json::json!({"com.docker.network.bridge.name": n.bridge});
    if n.is_default() {
        // Docker's default bridge shows its settings as options.
        for (k, v) in [
            ("com.docker.network.bridge.default_bridge", "true"),
            ("com.docker.network.bridge.enable_icc", "true"),
            ("com.docker.network.bridge.enable_ip_masquerade", "true"),
            ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
        ] {
            options[k] = serde_json::json!(v);
        }
    }
    Ok(serde_json::json!({
        "Name": listed.name(),
        "Id": n.id,
        "Created": created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()}],
        },
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": state::labels_of(store.db(), &n.name)?,
    }))
}

/// [`network_doc`] of `host` or `none`: no IPAM, no options; `Containers` are the running
/// containers networked with that mode (their sandbox rows), without addresses.
fn predefined_doc(
    store: &Store,
    listed: &crate::Listed,
    kind: crate::Predefined,
    created: String,
) -> Result<serde_json::Value> {
    // Running containers networked with this mode (their sandbox rows), as Docker lists
    // them: no addresses.
    let containers: serde_json::Map<String, serde_json::Value> = state::list_sandboxes(store.db())?
        .into_iter()
        .filter(|sb| sb.mode == kind.name())
        .map(|sb| {
            (
                sb.container_id,
                serde_json::json!({
                    "Name": sb.container_name,
                    "EndpointID": "",
                    "MacAddress": "",
                    "IPv4Address": "",
                    "IPv6Address": "",
                }),
            )
        })
        .collect();
    Ok(serde_json::json!({
            "Name": listed.name(),
            "Id": listed.id(),
            "Created": created,
            "Scope": "local",
            "Driver": listed.driver(),
            "EnableIPv4": true,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": null},
            "Internal": false,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": {},
            "Labels": {},
    }))
}

/// One entry of `NetworkSettings.Networks`: the endpoint `e` on network `n`.
fn endpoint_settings(n: &state::Network, e: &state::Endpoint) -> serde_json::Value {
    let mut dns_names = vec![e.container_name.clone()];
    dns_names.extend(e.aliases.iter().cloned());
    dns_names.push(e.container_id.chars().take(12).collect());
    serde_json::json!({
        "Aliases": if e.aliases.is_empty() { serde_json::Value::Null } else { serde_json::json!(e.aliases) },
        "NetworkID": n.id,
        "EndpointID": e.veth,
        "Gateway": n.gateway.to_string(),
        "IPAddress": e.ip.to_string(),
        "IPPrefixLen": n.subnet.prefix_len(),
        "MacAddress": e.mac,
        "DNSNames": if n.is_default() { serde_json::Value::Null } else { serde_json::json!(dns_names) },
    })
}

/// `NetworkSettings.Networks` of every container that has an endpoint, by container id, in
/// two queries (networks, endpoints): what a container list shows, without per-container
/// queries. The entries are those [`network_settings`] gives.
pub fn networks_of_all(
    store: &Store,
) -> Result<std::collections::HashMap<String, serde_json::Map<String, serde_json::Value>>> {
    state::migrate(store)?;
    let db = store.db();
    let nets: std::collections::HashMap<String, state::Network> = state::list_networks(db)?
        .into_iter()
        .map(|n| (n.name.clone(), n))
        .collect();
    let mut out: std::collections::HashMap<String, serde_json::Map<String, serde_json::Value>> =
        std::collections::HashMap::new();
    for e in state::all_endpoints(db)? {
        let Some(n) = nets.get(&e.network) else {
            continue;
        };
        out.entry(e.container_id.clone()).or_default().insert(
            crate::shown_name(&n.name).to_string(),
            endpoint_settings(n, &e),
        );
    }
    Ok(out)
}

/// Docker-like `NetworkSettings` of a container, for `inspect`.
pub fn network_settings(store: &Store, container_id: &str) -> Result<serde_json::Value> {
    state::migrate(store)?;
    let db = store.db();
    let sb = state::get_sandbox(db, container_id)?;
    let eps = state::endpoints_of_container(db, container_id)?;
    let ports = state::ports_of_container(db, container_id)?;
    let mut pmap = serde_json::Map::new();
    for p in &ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        let entry = pmap.entry(key).or_insert_with(|| serde_json::json!([]));
        if let Some(a) = entry.as_array_mut() {
            a.push(serde_json::json!({
                "HostIp": p.host_ip.to_string(),
                "HostPort": p.host_port.to_string(),
            }));
        }
    }
    let mut nets = serde_json::Map::new();
    let mut top = serde_json::json!({
        "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "",
    });
    for e in &eps {
        let Some(n) = state::get_network(db, &e.network)? else {
            continue;
        };
        let v = endpoint_settings(&n, e);
        if n.is_default() {
            top = serde_json::json!({
                "Gateway": n.gateway.to_string(),
                "IPAddress": e.ip.to_string(),
                "IPPrefixLen": n.subnet.prefix_len(),
                "MacAddress": e.mac,
            });
        }
        nets.insert(crate::shown_name(&n.name).to_string(), v);
    }
    let mut out = serde_json::json!({
        "Bridge": "",
        "SandboxID": sb.as_ref().map(|s| s.container_id.clone()).unwrap_or_default(),
        "SandboxKey": sb.as_ref().and_then(|s| s.netns.as_ref()).map(|p| p.display().to_string()).unwrap_or_default(),
        "Ports": pmap,
        "Networks": nets,
    });
    if let (Some(o), Some(t)) = (out.as_object_mut(), top.as_object()) {
        for (k, v) in t {
            o.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

/// Docker's default `network ls` table.
pub const NETWORKS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

/// Header text of `network ls` fields.
pub const NETWORKS_HEADERS: &[(&str, &str)] = &[("ID", "NETWORK ID"), ("IPv6", "IPV6")];

/// One `network ls` row with the fields `docker network ls --format` knows (strings), plus
/// `Subnet` and `Gateway` (empty for `host` and `none`).
pub fn network_row(n: &crate::Listed, no_trunc: bool) -> serde_json::Value {
    let full = n.id();
    let id = if no_trunc || full.len() <= 12 {
        full
    } else {
        &full[..12]
    };
    let (subnet, gateway, internal) = match n {
        crate::Listed::Stored(s) => (s.subnet.to_string(), s.gateway.to_string(), s.internal),
        crate::Listed::Predefined { .. } => (String::new(), String::new(), false),
    };
    serde_json::json!({
        "CreatedAt": chrono_utc(n.created()),
        "Driver": n.driver(),
        "ID": id,
        "IPv4": "true",
        "IPv6": "false",
        "Internal": internal.to_string(),
        "Labels": "",
        "Name": n.name(),
        "Scope": "local",
        "Subnet": subnet,
        "Gateway": gateway,
        "@labels": {},
    })
}

/// `2024-01-02 15:04:05 +0000 UTC` for a Unix time (civil-from-days, no date crate).
fn chrono_utc(ts: i64) -> String {
    let (days, secs) = (ts.div_euclid(86_400), ts.rem_euclid(86_400));
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
