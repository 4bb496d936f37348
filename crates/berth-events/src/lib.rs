//! Docker's event log (`docker events`, `GET /events`): every command and monitor records what
//! happened to a container, image, network or volume in the store's `events` table (owned by
//! this crate), and `events` reads it back, following new rows with a bounded poll.
//!
//! Recording never fails the operation that records: a full disk or a locked database loses
//! the event, not the container.

use std::collections::BTreeMap;

use berth_store::rusqlite::{params, OptionalExtension};
use berth_store::Store;
use serde_json::{json, Value};

/// The table and its index; rows older than a week are dropped when new ones are written.
const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time_nano);"];

/// How long events are kept, in nanoseconds (one week).
const KEEP_NANOS: i64 = 7 * 24 * 3600 * 1_000_000_000;

/// Errors reading the event log.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The store failed (migration).
    #[error("event log: {0}")]
    Store(#[from] berth_store::StoreError),
    /// A query failed.
    #[error("event log: {0}")]
    Db(#[from] berth_store::DbError),
}

/// One event, as Docker's `events` API returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Position in the log (increasing).
    pub seq: i64,
    /// Unix time in nanoseconds.
    pub time_nano: i64,
    /// `container`, `image`, `network` or `volume`.
    pub kind: String,
    /// `create`, `start`, `die`, `stop`, `kill`, `destroy`, `pause`, `unpause`, `rename`,
    /// `pull`, `tag`, `untag`, `delete`, `load`, `import`, `connect`, `disconnect`, `mount`, …
    pub action: String,
    /// The object's id (container id, image id or name, network id, volume name).
    pub actor: String,
    /// Attributes (`name`, `image`, `exitCode`, `signal`, …).
    pub attributes: BTreeMap<String, String>,
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Record an event now. Best effort: failures are logged by the caller's tracing only.
pub fn record(store: &Store, kind: &str, action: &str, actor: &str, attributes: &[(&str, &str)]) {
    let attrs: BTreeMap<&str, &str> = attributes.iter().copied().collect();
    let text = serde_json::to_string(&attrs).unwrap_or_else(|_| "{}".into());
    let _ = (|| -> Result<(), EventsError> {
        store.migrate("events", MIGRATIONS)?;
        let now = now_nanos();
        store.db().execute(
            "INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now, kind, action, actor, text],
        )?;
        // Keep the log bounded: drop what is older than a week (cheap with the index).
        store.db().execute(
            "DELETE FROM events WHERE time_nano < ?1",
            [now - KEEP_NANOS],
        )?;
        Ok(())
    })();
}

/// Record an event of an object that has labels, as Docker records image events (moby's
/// `LogImageEvent`): the labels become attributes, then `attributes` are added (an attribute
/// wins over a label of the same key, so `name` stays the object's name). Best effort, as
/// [`record`].
pub fn record_labelled(
    store: &Store,
    kind: &str,
    action: &str,
    actor: &str,
    labels: &BTreeMap<String, String>,
    attributes: &[(&str, &str)],
) {
    let mut attrs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    attrs.extend_from_slice(attributes);
    record(store, kind, action, actor, &attrs);
}

/// Events with `since_nano <= time <= until_nano` and `seq > after`, oldest first, at most
/// `limit` of them.
pub fn list(
    store: &Store,
    since_nano: Option<i64>,
    until_nano: Option<i64>,
    after: i64,
    limit: usize,
) -> Result<Vec<Event>, EventsError> {
    store.migrate("events", MIGRATIONS)?;
    let mut st = store.db().prepare(
        "SELECT seq, time_nano, type, action, actor, attributes FROM events
         WHERE seq > ?1 AND time_nano >= ?2 AND time_nano <= ?3 ORDER BY seq LIMIT ?4",
    )?;
    let rows = st.query_map(
        params![
            after,
            since_nano.unwrap_or(0),
            until_nano.unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |r| {
            let attrs: String = r.get(5)?;
            Ok(Event {
                seq: r.get(0)?,
                time_nano: r.get(1)?,
                kind: r.get(2)?,
                action: r.get(3)?,
                actor: r.get(4)?,
                attributes: serde_json::from_str(&attrs).unwrap_or_default(),
            })
        },
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The newest event's position (0 when the log is empty): `events` without `--since`
/// follows from here.
pub fn last_seq(store: &Store) -> Result<i64, EventsError> {
    store.migrate("events", MIGRATIONS)?;
    Ok(store
        .db()
        .query_row("SELECT MAX(seq) FROM events", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0))
}

impl Event {
    /// Docker's JSON form (`Type`, `Action`, `Actor{ID, Attributes}`, `scope`, `time`,
    /// `timeNano`, and the old `status`/`id`/`from` for containers and images).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "Type": self.kind,
            "Action": self.action,
            "Actor": {"ID": self.actor, "Attributes": self.attributes},
            "scope": "local",
            "time": self.time_nano / 1_000_000_000,
            "timeNano": self.time_nano,
        });
        if self.kind == "container" || self.kind == "image" {
            v["status"] = json!(self.action);
            v["id"] = json!(self.actor);
            if let Some(img) = self.attributes.get("image") {
                v["from"] = json!(img);
            }
        }
        v
    }

    /// What a `--format` template sees: the fields of Docker's Go `events.Message` by their
    /// Go names (`.Type`, `.Action`, `.Actor`, `.Scope`, `.Time` in seconds, `.TimeNano`, and
    /// `.Status`, `.ID`, `.From` where [`Event::to_json`] has them), as the docker CLI
    /// evaluates templates on that struct; `{{json .}}` still prints [`Event::to_json`].
    pub fn template_fields(&self) -> Value {
        let mut v = self.to_json();
        if let Some(o) = v.as_object_mut() {
            for (json, go) in [
                ("scope", "Scope"),
                ("time", "Time"),
                ("timeNano", "TimeNano"),
                ("status", "Status"),
                ("id", "ID"),
                ("from", "From"),
            ] {
                if let Some(x) = o.remove(json) {
                    o.insert(go.to_string(), x);
                }
            }
        }
        v
    }

    /// Whether the event passes `--filter` conditions (`type`, `event`/`action`,
    /// `container`, `image`, `network`, `volume`, `label`): every key must match, values of
    /// one key are alternatives.
    pub fn matches(&self, filters: &[(String, String)]) -> bool {
        let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter().all(|k| {
            filters
                .iter()
                .filter(|(fk, _)| fk == k)
                .any(|(_, v)| match k {
                    "type" => self.kind == *v,
                    "event" | "action" => self.action == *v,
                    "container" | "image" | "network" | "volume" => {
                        (self.kind == k
                            && (self.actor.starts_with(v.as_str())
                                || self.attributes.get("name") == Some(v)))
                            || (k == "image" && self.attributes.get("image") == Some(v))
                    }
                    "label" => match v.split_once('=') {
                        Some((lk, lv)) => self.attributes.get(lk) == Some(&lv.to_string()),
                        None => self.attributes.contains_key(v.as_str()),
                    },
                    _ => false,
                })
        })
    }

    /// The text line `docker events` prints:
    /// `2024-01-02T03:04:05.000000000Z container start ID (image=…, name=…)`.
    pub fn line(&self) -> String {
        let secs = self.time_nano.div_euclid(1_000_000_000);
        let nanos = self.time_nano.rem_euclid(1_000_000_000);
        let attrs: Vec<String> = self
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{}.{nanos:09}Z {} {} {} ({})",
            utc(secs),
            self.kind,
            self.action,
            self.actor,
            attrs.join(", ")
        )
    }
}

/// `2024-01-02T03:04:05` for Unix seconds (UTC).
fn utc(ts: i64) -> String {
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
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_attributes_and_name_wins() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let labels: BTreeMap<String, String> = [("team", "blue"), ("name", "label-name")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        record_labelled(
            &store,
            "image",
            "tag",
            "sha256:ab",
            &labels,
            &[("name", "app:1")],
        );
        let e = &list(&store, None, None, 0, 10).unwrap()[0];
        assert_eq!(e.attributes["name"], "app:1");
        assert_eq!(e.attributes["team"], "blue");
        let f = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(e.matches(&f("label", "team=blue")));
        assert!(e.matches(&f("label", "team")));
        assert!(!e.matches(&f("label", "team=red")));
    }

    #[test]
    fn record_list_filter() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        assert_eq!(last_seq(&store).unwrap(), 0);
        record(
            &store,
            "container",
            "create",
            "abc",
            &[("name", "web"), ("image", "busybox")],
        );
        record(&store, "container", "start", "abc", &[("name", "web")]);
        record(&store, "network", "create", "n1", &[("name", "shop")]);
        let all = list(&store, None, None, 0, 100).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].action, "create");
        let f = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(
            all.iter()
                .filter(|e| e.matches(&f("type", "container")))
                .count(),
            2
        );
        assert_eq!(
            all.iter()
                .filter(|e| e.matches(&f("container", "web")))
                .count(),
            2
        );
        assert_eq!(
            all.iter()
                .filter(|e| e.matches(&f("event", "start")))
                .count(),
            1
        );
        assert_eq!(
            all.iter()
                .filter(|e| e.matches(&f("image", "busybox")))
                .count(),
            1
        );
        assert_eq!(list(&store, None, None, all[1].seq, 100).unwrap().len(), 1);
        assert_eq!(all[0].to_json()["Actor"]["Attributes"]["name"], "web");
        // Templates see the Go field names (`{{.Time}}`, `{{.ID}}`), not the JSON keys.
        let t = all[0].template_fields();
        assert_eq!(t["Time"], all[0].to_json()["time"]);
        assert_eq!(t["TimeNano"], all[0].to_json()["timeNano"]);
        assert_eq!(
            (&t["Scope"], &t["ID"], &t["From"]),
            (&json!("local"), &json!("abc"), &json!("busybox"))
        );
        assert!(t.get("time").is_none());
        assert!(all[0]
            .line()
            .contains(" container create abc (image=busybox, name=web)"));
        assert_eq!(utc(0), "1970-01-01T00:00:00");
    }
}
