//! Stage 4: merging compose trees (several `-f` files, `extends`, `include`) by the compose
//! specification's rules: mappings merge key by key, scalars are replaced, `command`,
//! `entrypoint` and `healthcheck.test` are replaced whole, `volumes` merge by target,
//! `secrets`/`configs` by target (`/run/secrets/SOURCE` or `/SOURCE` when none is written, as
//! compose-go does), other sequences are appended without duplicates. The
//! `!reset` tag removes a value, `!override` replaces it without merging.

use crate::yaml::{Kind, Node};

/// What to do with two sequences at `path` (a dotted path with service names replaced by `*`).
fn seq_rule(path: &str) -> SeqRule {
    match path {
        "services.*.command" | "services.*.entrypoint" | "services.*.healthcheck.test" => {
            SeqRule::Replace
        }
        "services.*.volumes" => SeqRule::ByKey("target", None),
        "services.*.secrets" => SeqRule::ByKey("target", Some("/run/secrets/")),
        "services.*.configs" => SeqRule::ByKey("target", Some("/")),
        "services.*.env_file" => SeqRule::ByKey("path", None),
        _ => SeqRule::AppendUnique,
    }
}

enum SeqRule {
    Replace,
    /// Items with the same value of the key replace each other; the second field, when set,
    /// is the prefix a missing key defaults to, followed by the item's `source`.
    ByKey(&'static str, Option<&'static str>),
    AppendUnique,
}

/// Generalise a concrete path to the rule's form: `services.web.volumes` → `services.*.volumes`.
fn generic(path: &str) -> String {
    let mut parts: Vec<&str> = path.split('.').collect();
    if parts.len() >= 2 && parts[0] == "services" {
        parts[1] = "*";
    }
    parts.join(".")
}

/// Merge `over` into `base` (both at `path`).
pub fn merge(base: &mut Node, over: Node, path: &str) {
    if over.tag.as_deref() == Some("override") {
        let mut o = over;
        o.tag = None;
        *base = o;
        return;
    }
    match (&mut base.kind, over.kind) {
        (Kind::Map(b), Kind::Map(o)) => {
            for (k, v) in o {
                let p = if path.is_empty() {
                    k.name.clone()
                } else {
                    format!("{path}.{}", k.name)
                };
                if v.tag.as_deref() == Some("reset") {
                    b.retain(|(bk, _)| bk.name != k.name);
                    continue;
                }
                match b.iter_mut().find(|(bk, _)| bk.name == k.name) {
                    Some((_, bv)) => merge(bv, v, &p),
                    None => {
                        let mut v = v;
                        strip_tags(&mut v);
                        b.push((k, v));
                    }
                }
            }
        }
        (Kind::Seq(b), Kind::Seq(o)) => match seq_rule(&generic(path)) {
            SeqRule::Replace => {
                *b = o;
            }
            SeqRule::ByKey(k, default) => {
                let key_of = |x: &Node| -> Option<String> {
                    match x.get(k).and_then(Node::as_str) {
                        Some(v) => Some(v.to_string()),
                        None => default.and_then(|pre| {
                            x.get("source")
                                .and_then(Node::as_str)
                                .map(|s| format!("{pre}{s}"))
                        }),
                    }
                };
                for item in o {
                    let key = key_of(&item);
                    match b.iter_mut().find(|x| key.is_some() && key_of(x) == key) {
                        Some(slot) => *slot = item,
                        None => b.push(item),
                    }
                }
            }
            SeqRule::AppendUnique => {
                for item in o {
                    if !b.iter().any(|x| same(x, &item)) {
                        b.push(item);
                    }
                }
            }
        },
        (_, okind) => {
            base.kind = okind;
            base.mark = over.mark;
            base.tag = None;
        }
    }
}

fn strip_tags(n: &mut Node) {
    n.tag = None;
    match &mut n.kind {
        Kind::Map(m) => {
            m.retain(|(_, v)| v.tag.as_deref() != Some("reset"));
            for (_, v) in m.iter_mut() {
                strip_tags(v);
            }
        }
        Kind::Seq(s) => s.iter_mut().for_each(strip_tags),
        Kind::Scalar(..) => {}
    }
}

/// Structural equality ignoring positions.
fn same(a: &Node, b: &Node) -> bool {
    a.to_json() == b.to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    fn m(a: &str, b: &str) -> serde_json::Value {
        let mut x = parse(a, "a").unwrap();
        let y = parse(b, "b").unwrap();
        merge(&mut x, y, "");
        x.to_json()
    }

    #[test]
    fn spec_rules() {
        let base = "services:\n  web:\n    image: a\n    command: [x, y]\n    environment: {A: '1', B: '2'}\n    volumes:\n      - {type: bind, source: /a, target: /data}\n      - {type: bind, source: /b, target: /b}\n    dns: [1.1.1.1]\n";
        let over = "services:\n  web:\n    image: b\n    command: [z]\n    environment: {B: '3'}\n    volumes:\n      - {type: bind, source: /c, target: /data}\n    dns: [1.1.1.1, 8.8.8.8]\n";
        let j = m(base, over);
        let w = &j["services"]["web"];
        assert_eq!(w["image"], "b");
        assert_eq!(w["command"], serde_json::json!(["z"]));
        assert_eq!(w["environment"], serde_json::json!({"A": "1", "B": "3"}));
        assert_eq!(w["volumes"][0]["source"], "/c");
        assert_eq!(w["volumes"].as_array().unwrap().len(), 2);
        assert_eq!(w["dns"], serde_json::json!(["1.1.1.1", "8.8.8.8"]));
    }

    #[test]
    fn reset_and_override_tags() {
        let j = m(
            "s:\n  a: {x: 1, y: 2}\n  b: [1, 2]\n",
            "s:\n  a: !override {z: 3}\n  b: !reset []\n",
        );
        assert_eq!(j["s"]["a"], serde_json::json!({"z": 3}));
        assert!(j["s"].get("b").is_none());
    }

    #[test]
    fn secrets_and_configs_merge_by_target() {
        // compose-go keys them by target, a missing one standing for /run/secrets/SOURCE
        // (secrets) or /SOURCE (configs); a same key is replaced whole.
        let base = "services:\n  w:\n    secrets:\n      - {source: s1}\n      - {source: s2, target: x, mode: 0400}\n    configs:\n      - {source: c1}\n";
        let over = "services:\n  w:\n    secrets:\n      - {source: s1, target: other}\n      - {source: s3, target: x, uid: '1'}\n      - {source: s1, target: /run/secrets/s1, mode: 0444}\n    configs:\n      - {source: c1, target: /c1, mode: 0444}\n      - {source: c2, target: c1}\n";
        let j = m(base, over);
        let w = &j["services"]["w"];
        assert_eq!(
            w["secrets"],
            serde_json::json!([
                {"source": "s1", "target": "/run/secrets/s1", "mode": 292},
                {"source": "s3", "target": "x", "uid": "1"},
                {"source": "s1", "target": "other"}
            ])
        );
        assert_eq!(
            w["configs"],
            serde_json::json!([
                {"source": "c1", "target": "/c1", "mode": 292},
                {"source": "c2", "target": "c1"}
            ])
        );
    }
}
