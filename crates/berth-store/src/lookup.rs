//! One resolver for the words users give to name objects (containers, images, networks):
//! a full id, a name, or an id prefix, with Docker's precedence and messages.
//!
//! Precedence (as Docker's daemon): a full id, then an exact name, then a unique id prefix.
//! A prefix that matches several ids is an error ("multiple IDs found with provided prefix"),
//! never "not found" and never an arbitrary pick.
//!
//! Each component owns its table and fetches the candidates itself (a query such as
//! `WHERE id = ?1 OR name = ?1 OR substr(id, 1, length(?1)) = ?1`, see [`ID_OR_NAME_OR_PREFIX`]);
//! this module only decides among them.

/// The SQL condition selecting the candidates of [`pick`] from a table with `id` and `name`
/// columns, with the user's word bound as `?1`. Case-sensitive, as Docker's ids.
pub const ID_OR_NAME_OR_PREFIX: &str =
    "(id = ?1 OR name = ?1 OR (length(?1) > 0 AND substr(id, 1, length(?1)) = ?1))";

/// Why a word names no single object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Nothing has this id, name or id prefix.
    #[error("no such object: {0}")]
    NotFound(String),
    /// The word is a prefix of several ids (and neither a full id nor a name).
    #[error("multiple IDs found with provided prefix: {prefix} ({count} objects); use more characters of the id or the name")]
    Ambiguous {
        /// The word the user gave.
        prefix: String,
        /// How many ids start with it.
        count: usize,
    },
}

/// One candidate object: its full id (as stored, e.g. `sha256:<hex>` for images) and names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The full id as stored.
    pub id: &'a str,
    /// The part of the id that prefixes are matched against (the hex without `sha256:`).
    pub id_hex: &'a str,
    /// The object's names (a container's name, an image's tags, a network's name).
    pub names: Vec<&'a str>,
}

/// Pick the object `key` names among `candidates` (any superset of the matching objects):
/// its index, or [`LookupError`].
///
/// `key` may carry `sha256:` before an id or id prefix; an empty key matches nothing.
pub fn pick(key: &str, candidates: &[Candidate<'_>]) -> Result<usize, LookupError> {
    if key.is_empty() {
        return Err(LookupError::NotFound(key.to_string()));
    }
    // 1. A full id.
    let bare = key.strip_prefix("sha256:").unwrap_or(key);
    if let Some(i) = candidates
        .iter()
        .position(|c| c.id == key || c.id_hex == key || (bare != key && c.id_hex == bare))
    {
        return Ok(i);
    }
    // 2. An exact name.
    if let Some(i) = candidates.iter().position(|c| c.names.contains(&key)) {
        return Ok(i);
    }
    // 3. A unique id prefix.
    if bare.is_empty() {
        return Err(LookupError::NotFound(key.to_string()));
    }
    let matches: Vec<usize> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.id_hex.starts_with(bare))
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [] => Err(LookupError::NotFound(key.to_string())),
        [i] => Ok(*i),
        many => Err(LookupError::Ambiguous {
            prefix: key.to_string(),
            count: many.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c<'a>(id: &'a str, names: &[&'a str]) -> Candidate<'a> {
        Candidate {
            id,
            id_hex: id.strip_prefix("sha256:").unwrap_or(id),
            names: names.to_vec(),
        }
    }

    #[test]
    fn full_id_then_name_then_unique_prefix() {
        let all = [
            c("1abc", &["web"]),
            c("1abd", &["1abc0"]),
            c("2fff", &["1a"]),
            c("9999", &["db"]),
        ];
        // Full id wins over a name that is equal to it.
        assert_eq!(pick("1abc", &all), Ok(0));
        // A name wins over an id prefix.
        assert_eq!(pick("1a", &all), Ok(2));
        assert_eq!(pick("web", &all), Ok(0));
        // A unique prefix.
        assert_eq!(pick("99", &all), Ok(3));
        assert_eq!(pick("2", &all), Ok(2));
        // An ambiguous prefix says so.
        let e = pick("1", &all).unwrap_err();
        assert_eq!(
            e,
            LookupError::Ambiguous {
                prefix: "1".into(),
                count: 2
            }
        );
        assert!(e
            .to_string()
            .starts_with("multiple IDs found with provided prefix: 1"));
        assert_eq!(
            pick("1ab", &all).unwrap_err(),
            LookupError::Ambiguous {
                prefix: "1ab".into(),
                count: 2
            }
        );
        // Nothing.
        assert_eq!(pick("x", &all), Err(LookupError::NotFound("x".into())));
        assert_eq!(pick("", &all), Err(LookupError::NotFound("".into())));
        // Prefixes are case-sensitive, as Docker's ids.
        assert!(pick("1ABC", &all).is_err());
    }

    #[test]
    fn image_ids_with_and_without_sha256() {
        let all = [c("sha256:aa11", &["alpine:latest"]), c("sha256:aa22", &[])];
        assert_eq!(pick("sha256:aa11", &all), Ok(0));
        assert_eq!(pick("aa11", &all), Ok(0));
        assert_eq!(pick("sha256:aa2", &all), Ok(1));
        assert_eq!(pick("alpine:latest", &all), Ok(0));
        assert!(matches!(
            pick("sha256:aa", &all),
            Err(LookupError::Ambiguous { count: 2, .. })
        ));
        assert!(pick("sha256:", &all).is_err());
    }
}
