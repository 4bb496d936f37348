//! Networks as Docker shows them, for both front ends (`berth network …` and the API's
//! `/networks`): the default network (stored as [`crate::DEFAULT_NETWORK`]) under Docker's
//! name `bridge`, and Docker's predefined `host` and `none` networks, which have no rows (the
//! host's namespace and a namespace with only loopback are network modes, not networks);
//! their ids derive from the default network's id, so they are stable per store. Also
//! `network ls`'s filters.

use berth_store::Store;

use crate::networks::get_network;
use crate::state::{self, Network};
use crate::{NetError, Result, DEFAULT_NETWORK, DEFAULT_NETWORK_ALIAS};

/// The name Docker shows for a stored network name: `bridge` for the default network
/// (stored as [`DEFAULT_NETWORK`]), any other name unchanged.
pub fn shown_name(stored: &str) -> &str {
    if stored == DEFAULT_NETWORK {
        DEFAULT_NETWORK_ALIAS
    } else {
        stored
    }
}

/// Docker's predefined networks without a bridge: `host` and `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Predefined {
    /// `host`: the host's network namespace (driver `host`).
    Host,
    /// `none`: a namespace with only loopback (driver `null`).
    None,
}

impl Predefined {
    /// Both, in `network ls` order.
    pub const ALL: [Predefined; 2] = [Predefined::Host, Predefined::None];

    /// `host` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            Predefined::Host => "host",
            Predefined::None => "none",
        }
    }

    /// Docker's driver name: `host` or `null`.
    pub fn driver(self) -> &'static str {
        match self {
            Predefined::Host => "host",
            Predefined::None => "null",
        }
    }

    /// The predefined network with this exact name, if any.
    pub fn by_name(name: &str) -> Option<Predefined> {
        Predefined::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// A network as `network ls` lists it: a stored (bridge) network, or `host`/`none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// A network with a row (the default one included).
    Stored(Network),
    /// `host` or `none`, with the id and creation time (Unix seconds) they show.
    Predefined {
        /// Which one.
        kind: Predefined,
        /// 64 hex characters, derived from the default network's id.
        id: String,
        /// The default network's creation time (Unix seconds).
        created: i64,
    },
}

impl Listed {
    /// The name Docker shows (`bridge` for the default network).
    pub fn name(&self) -> &str {
        match self {
            Listed::Stored(n) => shown_name(&n.name),
            Listed::Predefined { kind, .. } => kind.name(),
        }
    }

    /// The full id (64 hex characters).
    pub fn id(&self) -> &str {
        match self {
            Listed::Stored(n) => &n.id,
            Listed::Predefined { id, .. } => id,
        }
    }

    /// Docker's driver name: `bridge`, `host` or `null`.
    pub fn driver(&self) -> &str {
        match self {
            Listed::Stored(n) => &n.driver,
            Listed::Predefined { kind, .. } => kind.driver(),
        }
    }

    /// Creation time, Unix seconds.
    pub fn created(&self) -> i64 {
        match self {
            Listed::Stored(n) => n.created,
            Listed::Predefined { created, .. } => *created,
        }
    }

    /// True for Docker's predefined networks (`bridge`, `host`, `none`): filter
    /// `type=builtin`, never removed or pruned.
    pub fn is_builtin(&self) -> bool {
        match self {
            Listed::Stored(n) => n.is_default(),
            Listed::Predefined { .. } => true,
        }
    }
}

/// The id Docker-shaped output gives the predefined network `p` of the store whose default
/// network has the id `default_id`: the sha256 of both, stable for the store.
fn predefined_id(default_id: &str, p: Predefined) -> String {
    berth_store::Digest::sha256_of(format!("{default_id}/{}", p.name()).as_bytes())
        .hex()
        .to_string()
}

fn predefined(default: &Network) -> Vec<Listed> {
    Predefined::ALL
        .into_iter()
        .map(|kind| Listed::Predefined {
            kind,
            id: predefined_id(&default.id, kind),
            created: default.created,
        })
        .collect()
}

/// Every network as Docker lists it, sorted by shown name: the stored ones (the default
/// under `bridge`) and `host`, `none`.
///
/// # Errors
/// A store or database error.
pub fn list_shown(store: &Store) -> Result<Vec<Listed>> {
    let stored = crate::networks::list_networks(store)?;
    let default = get_network(store, DEFAULT_NETWORK)?;
    let mut out: Vec<Listed> = stored.into_iter().map(Listed::Stored).collect();
    out.extend(predefined(&default));
    out.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(out)
}

/// The network a word names, as Docker resolves it: `host`/`none` by name, a stored network
/// by name (`bridge` or `berth`: the default), full id or unique id prefix, and `host`/`none`
/// by full id or id prefix.
///
/// # Errors
/// [`NetError::NotFound`] when nothing matches, [`NetError::Ambiguous`] for an id prefix of
/// several stored networks, a store error.
pub fn find_shown(store: &Store, word: &str) -> Result<Listed> {
    if let Some(kind) = Predefined::by_name(word) {
        let default = get_network(store, DEFAULT_NETWORK)?;
        return Ok(Listed::Predefined {
            kind,
            id: predefined_id(&default.id, kind),
            created: default.created,
        });
    }
    match get_network(store, word) {
        Ok(n) => Ok(Listed::Stored(n)),
        Err(NetError::NotFound(w)) => {
            let default = get_network(store, DEFAULT_NETWORK)?;
            let hex = !word.is_empty() && word.bytes().all(|b| b.is_ascii_hexdigit());
            predefined(&default)
                .into_iter()
                .find(|l| hex && l.id().starts_with(word))
                .ok_or(NetError::NotFound(w))
        }
        Err(e) => Err(e),
    }
}

/// The predefined `host`/`none` network a word names (by name, id or id prefix), if it names
/// one; `Ok(None)` for anything else, an unknown word included.
///
/// # Errors
/// A store or database error.
pub fn predefined_of(store: &Store, word: &str) -> Result<Option<Predefined>> {
    match find_shown(store, word) {
        Ok(Listed::Predefined { kind, .. }) => Ok(Some(kind)),
        Ok(Listed::Stored(_)) | Err(NetError::NotFound(_)) | Err(NetError::Ambiguous(_)) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `network ls` filters (`docker network ls --filter`, `GET /networks?filters=`): each key
/// with its values. Keys: `name` (substring), `id` (prefix), `driver` (exact), `type`
/// (`builtin`: bridge, host, none; `custom`: the others), `label` (`KEY` or `KEY=VALUE`,
/// every value must match), `scope` (`local`), `dangling` (`true`: custom networks without
/// containers). Values of one key other than `label` are alternatives.
///
/// # Errors
/// [`NetError::BadFilter`] for an unknown key or a bad `type`/`dangling` value; a store error.
pub fn filter_shown(store: &Store, filters: &[(String, Vec<String>)]) -> Result<Vec<Listed>> {
    for (k, vals) in filters {
        match k.as_str() {
            "name" | "id" | "driver" | "label" | "scope" => {}
            "type" => {
                if let Some(v) = vals
                    .iter()
                    .find(|v| !matches!(v.as_str(), "builtin" | "custom"))
                {
                    return Err(NetError::BadFilter(format!(
                        "invalid filter: 'type'='{v}'; use type=builtin or type=custom"
                    )));
                }
            }
            "dangling" => {
                if let Some(v) = vals
                    .iter()
                    .find(|v| !matches!(v.as_str(), "true" | "false" | "1" | "0"))
                {
                    return Err(NetError::BadFilter(format!(
                        "invalid filter 'dangling={v}'; use dangling=true or dangling=false"
                    )));
                }
            }
            _ => {
                return Err(NetError::BadFilter(format!(
                "invalid filter '{k}'; the keys are name, id, driver, type, label, scope, dangling"
            )))
            }
        }
    }
    let mut out = Vec::new();
    for n in list_shown(store)? {
        let mut ok = true;
        for (k, vals) in filters {
            if vals.is_empty() {
                continue;
            }
            let one = |v: &String| -> Result<bool> {
                Ok(match k.as_str() {
                    "name" => n.name().contains(v.as_str()),
                    "id" => n.id().starts_with(v.as_str()),
                    "driver" => n.driver() == v,
                    "scope" => v == "local",
                    "type" => (v == "builtin") == n.is_builtin(),
                    "dangling" => {
                        let unused = match &n {
                            Listed::Stored(s) => {
                                !n.is_builtin()
                                    && state::endpoints_of_network(store.db(), &s.name)?.is_empty()
                            }
                            Listed::Predefined { .. } => false,
                        };
                        unused == matches!(v.as_str(), "true" | "1")
                    }
                    "label" => {
                        let labels = match &n {
                            Listed::Stored(s) => state::labels_of(store.db(), &s.name)?,
                            Listed::Predefined { .. } => Default::default(),
                        };
                        match v.split_once('=') {
                            Some((lk, lv)) => labels.get(lk).map(String::as_str) == Some(lv),
                            None => labels.contains_key(v.as_str()),
                        }
                    }
                    _ => false,
                })
            };
            let mut hits = vals.iter().map(one);
            ok = if k == "label" {
                hits.try_fold(true, |acc, h| h.map(|h| acc && h))?
            } else {
                hits.try_fold(false, |acc, h| h.map(|h| acc || h))?
            };
            if !ok {
                break;
            }
        }
        if ok {
            out.push(n);
        }
    }
    Ok(out)
}

/// `network ls`-style filters from the CLI's `--filter KEY=VALUE` words, grouped by key.
///
/// # Errors
/// [`NetError::BadFilter`] for a word without `=`.
pub fn parse_filter_words(words: &[String]) -> Result<Vec<(String, Vec<String>)>> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| NetError::BadFilter(format!("invalid filter {w:?}: use KEY=VALUE")))?;
        match out.iter_mut().find(|(key, _)| key == k) {
            Some((_, vals)) => vals.push(v.to_string()),
            None => out.push((k.to_string(), vec![v.to_string()])),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_sees_bridge_host_and_none() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let all = list_shown(&store).unwrap();
        let names: Vec<&str> = all.iter().map(Listed::name).collect();
        assert_eq!(names, ["bridge", "host", "none"]);
        let drivers: Vec<&str> = all.iter().map(Listed::driver).collect();
        assert_eq!(drivers, ["bridge", "host", "null"]);
        assert!(all.iter().all(Listed::is_builtin));
        // Stable ids, found by name, id and id prefix; `berth` stays an alias.
        let host = find_shown(&store, "host").unwrap();
        assert_eq!(host.id().len(), 64);
        assert_eq!(find_shown(&store, host.id()).unwrap(), host);
        assert_eq!(find_shown(&store, &host.id()[..12]).unwrap(), host);
        assert_eq!(list_shown(&store).unwrap()[1], host);
        assert_eq!(find_shown(&store, "berth").unwrap().name(), "bridge");
        assert_eq!(
            predefined_of(&store, "none").unwrap(),
            Some(Predefined::None)
        );
        assert_eq!(predefined_of(&store, "bridge").unwrap(), None);
        assert_eq!(predefined_of(&store, "nope").unwrap(), None);
    }

    #[test]
    fn filters_follow_docker() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let names = |f: &[&str]| -> Vec<String> {
            let words: Vec<String> = f.iter().map(|s| s.to_string()).collect();
            filter_shown(&store, &parse_filter_words(&words).unwrap())
                .unwrap()
                .iter()
                .map(|l| l.name().to_string())
                .collect()
        };
        assert_eq!(names(&["driver=null"]), ["none"]);
        assert_eq!(names(&["driver=host", "driver=bridge"]), ["bridge", "host"]);
        assert_eq!(names(&["name=o"]), ["host", "none"]);
        assert_eq!(names(&["type=builtin"]), ["bridge", "host", "none"]);
        assert!(names(&["type=custom"]).is_empty());
        assert!(names(&["dangling=true"]).is_empty());
        assert!(names(&["label=a"]).is_empty());
        let host = find_shown(&store, "host").unwrap();
        assert_eq!(names(&[&format!("id={}", &host.id()[..6])]), ["host"]);
        for bad in [&["type=x"][..], &["nope=1"], &["dangling=maybe"]] {
            let words: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            assert!(matches!(
                filter_shown(&store, &parse_filter_words(&words).unwrap()),
                Err(NetError::BadFilter(_))
            ));
        }
    }
}
