//! `GET /events?since=&until=&filters=`: the store's event log (crate `berth-events`, the
//! table `berth events` reads), as Docker's stream of JSON objects, one per line. Without
//! `until` the response follows new events (a bounded poll of the table) until the client
//! goes away.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::http::{self, Query, Resp};
use crate::server::App;
use crate::{ApiError, Result};

/// Filter keys `GET /events` understands (Docker's, less swarm's).
const KEYS: &[&str] = &[
    "type",
    "event",
    "action",
    "container",
    "image",
    "network",
    "volume",
    "label",
    "scope",
    "daemon",
];

/// How often a following stream looks for new rows.
const POLL: Duration = Duration::from_millis(200);

/// A `since`/`until` value as Docker's API takes it: Unix seconds with an optional
/// fraction (`1700000000.123456789`), or RFC 3339. Returns Unix nanoseconds.
///
/// Errors: 400 naming the parameter.
pub(crate) fn parse_time(name: &str, v: &str) -> Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_nanos_opt().unwrap_or(i64::MAX));
    }
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let bad = || {
        ApiError::BadParameter(format!(
            "invalid {name} {v:?}: use Unix seconds (with an optional fraction) or RFC 3339"
        ))
    };
    let s: i64 = secs.parse().map_err(|_| bad())?;
    let mut nanos: i64 = 0;
    if !frac.is_empty() {
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let padded = format!("{frac:0<9}");
        nanos = padded.parse().map_err(|_| bad())?;
    }
    Ok(s.saturating_mul(1_000_000_000).saturating_add(nanos))
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// `GET /events`.
pub async fn events(app: &Arc<App>, q: &Query) -> Result<Resp> {
    let since = q
        .get("since")
        .filter(|s| !s.is_empty())
        .map(|s| parse_time("since", s))
        .transpose()?;
    let until = q
        .get("until")
        .filter(|s| !s.is_empty())
        .map(|s| parse_time("until", s))
        .transpose()?;
    let mut filters = Vec::new();
    for (k, vals) in q.filters()? {
        if !KEYS.contains(&k.as_str()) {
            return Err(ApiError::BadParameter(format!(
                "invalid filter '{k}': use one of {}",
                KEYS.join(", ")
            )));
        }
        match k.as_str() {
            // Every berth event is local and comes from this host.
            "scope" if vals.iter().all(|v| v == "local") => continue,
            "daemon" => continue,
            _ => {}
        }
        for v in vals {
            filters.push((k.clone(), v));
        }
    }
    // Where following starts: everything from `since`, else only what comes after now.
    let start = app
        .blocking(move |store| {
            if since.is_some() || until.is_some() {
                Ok(0)
            } else {
                berth_events::last_seq(store).map_err(|e| ApiError::Internal(e.to_string()))
            }
        })
        .await?;
    let (tx, body) = http::channel();
    let root = app.root.clone();
    std::thread::Builder::new()
        .name("berth-api-events".into())
        .spawn(move || follow(&root, since, until, start, &filters, &tx))
        .map_err(|e| ApiError::Internal(format!("starting the events thread: {e}")))?;
    Ok(http::with_headers(200, "application/json", body))
}

/// Send the matching events after `after`, following new ones until `until` has passed or the
/// client is gone.
fn follow(
    root: &std::path::Path,
    since: Option<i64>,
    until: Option<i64>,
    mut after: i64,
    filters: &[(String, String)],
    tx: &tokio::sync::mpsc::Sender<Bytes>,
) {
    let Ok(store) = berth_store::Store::open(root) else {
        return;
    };
    // A `since` in the future waits for it, like Docker.
    loop {
        if tx.is_closed() {
            return;
        }
        let batch = match berth_events::list(&store, since, until, after, 1000) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!("events: {e}");
                Vec::new()
            }
        };
        for e in &batch {
            after = e.seq;
            if !e.matches(filters) {
                continue;
            }
            let line = format!("{}\n", e.to_json());
            if tx.blocking_send(Bytes::from(line)).is_err() {
                return;
            }
        }
        if batch.len() >= 1000 {
            continue;
        }
        if until.is_some_and(|u| u <= now_nanos()) {
            return;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_docker_sends_them() {
        assert_eq!(parse_time("since", "12").unwrap(), 12_000_000_000);
        assert_eq!(parse_time("since", "12.5").unwrap(), 12_500_000_000);
        assert_eq!(parse_time("until", "1.000000001").unwrap(), 1_000_000_001);
        assert_eq!(
            parse_time("since", "1970-01-01T00:00:02Z").unwrap(),
            2_000_000_000
        );
        assert!(parse_time("since", "soon").is_err());
        assert!(parse_time("since", "1.x").is_err());
    }
}
