//! Images as Docker's `images` listing shows them: one row per tag (or one `<none>` row),
//! with the fields `docker images --format` knows, and `images --filter`.

use serde_json::{json, Value};

use crate::{Image, Reference};

/// Docker's default `images` table.
pub const IMAGES_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// Header text of `images` fields.
pub const IMAGES_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "SIZE"),
];

/// One `images` row for `tag` of `img` (`None`: the `<none>` row of an untagged image).
/// `containers` is how many containers use the image, when counted.
pub fn image_row(img: &Image, tag: Option<&Reference>, no_trunc: bool) -> Value {
    let (repo, tagname) = match tag {
        Some(t) => (t.familiar_name(), t.tag().unwrap_or("latest").to_string()),
        None => ("<none>".to_string(), "<none>".to_string()),
    };
    let id = if no_trunc {
        img.id.to_string()
    } else {
        img.id.short().to_string()
    };
    let created_at = chrono_like(img.created);
    let digest = img
        .repo_digests
        .iter()
        .find(|d| tag.is_some_and(|t| d.starts_with(&format!("{}@", t.familiar_name()))))
        .and_then(|d| d.split_once('@').map(|(_, x)| x.to_string()))
        .unwrap_or_else(|| "<none>".into());
    json!({
        "Containers": "N/A",
        "CreatedAt": created_at,
        "CreatedSince": berth_format::human::ago(img.created),
        "Digest": digest,
        "ID": id,
        "Repository": repo,
        "SharedSize": "N/A",
        "Size": berth_format::human::size3(img.size),
        "Tag": tagname,
        "UniqueSize": "N/A",
        "VirtualSize": berth_format::human::size(img.size),
        "@labels": img.config.labels.clone().unwrap_or_default(),
    })
}

/// `2024-01-02 15:04:05 +0000 UTC` for a Unix time.
fn chrono_like(ts: i64) -> String {
    // Days from the civil calendar (Howard Hinnant's algorithm), to avoid a chrono dependency.
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
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

/// An `images --filter` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter {0:?}: {1}")]
pub struct ImageFilterError(pub String, pub String);

/// `images --filter`: `dangling`, `label`, `before`, `since`, `reference`. Keys must all
/// match; values of one key are alternatives.
#[derive(Debug, Default, Clone)]
pub struct ImageFilter {
    conds: Vec<(String, Vec<String>)>,
    /// Creation times of the `before`/`since` images, resolved by the caller.
    pub before: Option<i64>,
    /// See [`ImageFilter::before`].
    pub since: Option<i64>,
}

impl ImageFilter {
    /// Parse `KEY=VALUE` items.
    pub fn parse(items: &[String]) -> Result<ImageFilter, ImageFilterError> {
        let mut f = ImageFilter::default();
        for i in items {
            let (k, v) = i
                .split_once('=')
                .ok_or_else(|| ImageFilterError(i.clone(), "use KEY=VALUE".into()))?;
            match k {
                "dangling" if !matches!(v, "true" | "false" | "1" | "0") => {
                    return Err(ImageFilterError(
                        i.clone(),
                        "dangling is true or false".into(),
                    ))
                }
                "dangling" | "label" | "before" | "since" | "reference" => {}
                _ => {
                    return Err(ImageFilterError(
                        i.clone(),
                        "the key is one of dangling, label, before, since, reference".into(),
                    ))
                }
            }
            match f.conds.iter_mut().find(|(ck, _)| ck == k) {
                Some((_, vs)) => vs.push(v.to_string()),
                None => f.conds.push((k.to_string(), vec![v.to_string()])),
            }
        }
        Ok(f)
    }

    /// The `before`/`since` image references, for the caller to resolve.
    pub fn references(&self) -> Vec<(&str, &str)> {
        self.conds
            .iter()
            .filter(|(k, _)| k == "before" || k == "since")
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_str(), v.as_str())))
            .collect()
    }

    /// Whether an image passes the image-level keys (`dangling`, `label`, `before`, `since`).
    pub fn matches_image(&self, img: &Image) -> bool {
        self.conds.iter().all(|(k, vs)| {
            let one = |v: &String| match k.as_str() {
                "dangling" => img.tags.is_empty() == matches!(v.as_str(), "true" | "1"),
                "label" => {
                    let labels = img.config.labels.clone().unwrap_or_default();
                    match v.split_once('=') {
                        Some((lk, lv)) => labels.get(lk).map(String::as_str) == Some(lv),
                        None => labels.contains_key(v.as_str()),
                    }
                }
                "before" => self.before.is_some_and(|t| img.created < t),
                "since" => self.since.is_some_and(|t| img.created > t),
                _ => true,
            };
            // Docker's rule: every `label` value must match; other keys' values are
            // alternatives.
            if k == "label" {
                vs.iter().all(one)
            } else {
                vs.iter().any(one)
            }
        })
    }

    /// Whether a tag passes `reference=` (a glob over the familiar `name` or `name:tag`).
    pub fn matches_tag(&self, tag: &Reference) -> bool {
        self.conds
            .iter()
            .filter(|(k, _)| k == "reference")
            .all(|(_, vs)| {
                vs.iter().any(|v| {
                    let name = tag.familiar_name();
                    let full = format!("{name}:{}", tag.tag().unwrap_or("latest"));
                    glob(v, &full) || glob(v, &name)
                })
            })
    }

    /// Whether the filter has a `reference=` key (untagged images then never match).
    pub fn has_reference(&self) -> bool {
        self.conds.iter().any(|(k, _)| k == "reference")
    }
}

/// Shell-style glob (`*`, `?`) as Go's `path.Match` over a reference (`*` stops at `/`).
fn glob(pat: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    fn m(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| m(rest, &t[i..])),
            Some(('?', rest)) => t.first().is_some_and(|c| *c != '/') && m(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && m(rest, &t[1..]),
        }
    }
    m(&p, &t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn globs_and_dates() {
        assert!(super::glob("busy*", "busybox:latest"));
        assert!(super::glob("*:1", "app:1"));
        assert!(!super::glob("*", "team/app"));
        assert_eq!(super::chrono_like(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            super::chrono_like(1_700_000_000),
            "2023-11-14 22:13:20 +0000 UTC"
        );
        assert!(super::ImageFilter::parse(&["colour=x".into()]).is_err());
    }
}
