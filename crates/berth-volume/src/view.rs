//! `volume ls` rows: the fields `docker volume ls --format` knows and the default table.

use crate::Volume;

/// Docker's default `volume ls` table.
pub const VOLUMES_TABLE: &str = "table {{.Driver}}\t{{.Name}}";

/// Header text of `volume ls` fields.
pub const VOLUMES_HEADERS: &[(&str, &str)] = &[("Name", "VOLUME NAME")];

/// One `volume ls` row with the fields `docker volume ls --format` knows (strings); `links`
/// is the number of containers using it.
pub fn volume_row(v: &Volume, links: usize) -> serde_json::Value {
    let labels: Vec<String> = v.labels.iter().map(|(k, x)| format!("{k}={x}")).collect();
    serde_json::json!({
        "Availability": "N/A",
        "CreatedAt": v.created,
        "Driver": v.driver,
        "Group": "N/A",
        "Labels": labels.join(","),
        "Links": links.to_string(),
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Scope": "local",
        "Size": "N/A",
        "Status": "N/A",
        "@labels": v.labels,
    })
}
