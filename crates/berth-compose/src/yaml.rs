//! Stage 1: YAML text → a tree of [`Node`]s that remember where they came from (file, line,
//! column). Anchors and aliases are expanded and YAML merge keys (`<<`) applied here, so later
//! stages see plain mappings, sequences and scalars.

use std::collections::HashMap;
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::{ComposeError, Result};

/// Where a node starts: file, line and column (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The file the node was read from (as given to the loader).
    pub file: Arc<str>,
    /// Line, 1-based.
    pub line: usize,
    /// Column, 1-based.
    pub col: usize,
}

impl std::fmt::Display for Mark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: Kind,
    /// Where it starts.
    pub mark: Mark,
    /// A local tag such as `!reset` or `!override` (without the `!`), if any.
    pub tag: Option<String>,
}

/// The shape of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar: its text and whether it was written plain (unquoted), which decides whether
    /// it may be read as a number, boolean or null.
    Scalar(String, bool),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order; keys are strings.
    Map(Vec<(Key, Node)>),
}

/// A mapping key and its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key text.
    pub name: String,
    /// Where the key is written.
    pub mark: Mark,
}

impl Node {
    /// A new node at `mark`.
    pub fn new(kind: Kind, mark: Mark) -> Node {
        Node {
            kind,
            mark,
            tag: None,
        }
    }

    /// An empty mapping at `mark`.
    pub fn empty_map(mark: Mark) -> Node {
        Node::new(Kind::Map(Vec::new()), mark)
    }

    /// A quoted (always a string) scalar.
    pub fn string(s: impl Into<String>, mark: Mark) -> Node {
        Node::new(Kind::Scalar(s.into(), false), mark)
    }

    /// Whether this is a plain null (`~`, `null`, or nothing).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s, true) if is_null_text(s))
    }

    /// The scalar text, if a scalar (null gives `None`).
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s, plain) if !(*plain && is_null_text(s)) => Some(s),
            _ => None,
        }
    }

    /// The mapping entries, if a mapping.
    pub fn as_map(&self) -> Option<&Vec<(Key, Node)>> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The mapping entries, mutable.
    pub fn as_map_mut(&mut self) -> Option<&mut Vec<(Key, Node)>> {
        match &mut self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The sequence items, if a sequence.
    pub fn as_seq(&self) -> Option<&Vec<Node>> {
        match &self.kind {
            Kind::Seq(v) => Some(v),
            _ => None,
        }
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The value under `key` of a mapping, mutable.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?
            .iter_mut()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// Remove `key` from a mapping and return its value.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        let m = self.as_map_mut()?;
        let i = m.iter().position(|(k, _)| k.name == key)?;
        Some(m.remove(i).1)
    }

    /// Set `key` in a mapping (replacing an existing value; appending otherwise).
    pub fn insert(&mut self, key: &str, value: Node) {
        let mark = value.mark.clone();
        if let Some(m) = self.as_map_mut() {
            if let Some(slot) = m.iter_mut().find(|(k, _)| k.name == key) {
                slot.1 = value;
            } else {
                m.push((
                    Key {
                        name: key.to_string(),
                        mark,
                    },
                    value,
                ));
            }
        }
    }

    /// A short name of the node's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar(_, _) if self.is_null() => "null",
            Kind::Scalar(_, _) => "a scalar",
            Kind::Seq(_) => "a sequence",
            Kind::Map(_) => "a mapping",
        }
    }

    /// Convert to JSON, resolving plain scalars as YAML 1.2's core schema does (null, booleans,
    /// integers, floats); quoted scalars stay strings.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Scalar(s, false) => Value::String(s.clone()),
            Kind::Scalar(s, true) => plain_scalar_json(s),
            Kind::Seq(v) => Value::Array(v.iter().map(Node::to_json).collect()),
            Kind::Map(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn is_null_text(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// YAML 1.2 core schema resolution of a plain scalar.
pub fn plain_scalar_json(s: &str) -> serde_json::Value {
    use serde_json::Value;
    if is_null_text(s) {
        return Value::Null;
    }
    match s {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let t = s.strip_prefix('+').unwrap_or(s);
    // A leading 0 means octal (go-yaml parses integers with base prefix detection).
    if t.len() > 1 && t.starts_with('0') && t.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = i64::from_str_radix(&t[1..], 8) {
            return Value::from(i);
        }
    }
    if !t.is_empty()
        && t.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
        && t != "-"
    {
        if let Ok(i) = t.parse::<i64>() {
            return Value::from(i);
        }
    }
    if let Some(h) = t.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(h, 16) {
            return Value::from(i);
        }
    }
    if let Some(o) = t.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(o, 8) {
            return Value::from(i);
        }
    }
    let looks_float = t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_float {
        if let Ok(f) = t.parse::<f64>() {
            if let Some(n) = serde_json::Number::from_f64(f) {
                return Value::Number(n);
            }
        }
    }
    Value::String(s.to_string())
}

enum Frame {
    Seq(Vec<Node>, Mark, usize, Option<String>),
    Map(Vec<(Key, Node)>, Option<Key>, Mark, usize, Option<String>),
}

struct Builder {
    file: Arc<str>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    doc: Option<Node>,
    docs: usize,
    err: Option<ComposeError>,
}

fn local_tag(t: Option<Tag>) -> Option<String> {
    t.filter(|t| t.handle == "!").map(|t| t.suffix)
}

impl Builder {
    fn mark(&self, m: Marker) -> Mark {
        Mark {
            file: self.file.clone(),
            line: m.line(),
            col: m.col() + 1,
        }
    }

    fn fail(&mut self, mark: &Mark, msg: String) {
        if self.err.is_none() {
            self.err = Some(ComposeError::Syntax {
                file: mark.file.to_string(),
                line: mark.line,
                msg,
            });
        }
    }

    /// Hand a finished node to its parent (or make it the document).
    fn push(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.docs += 1;
                if self.doc.is_none() {
                    self.doc = Some(node);
                }
            }
            Some(Frame::Seq(items, ..)) => items.push(node),
            Some(Frame::Map(entries, pending, ..)) => match pending.take() {
                None => {
                    let name = match &node.kind {
                        Kind::Scalar(s, _) => s.clone(),
                        _ => {
                            let m = node.mark.clone();
                            self.fail(&m, "mapping keys must be strings".into());
                            return;
                        }
                    };
                    *pending = Some(Key {
                        name,
                        mark: node.mark,
                    });
                }
                Some(k) => {
                    if k.name != "<<" && entries.iter().any(|(e, _)| e.name == k.name) {
                        let m = k.mark.clone();
                        self.fail(&m, format!("mapping key {:?} already defined", k.name));
                        return;
                    }
                    entries.push((k, node));
                }
            },
        }
    }
}

/// Apply YAML merge keys: explicit keys win, then earlier merged mappings win over later ones.
fn apply_merges(
    entries: Vec<(Key, Node)>,
) -> std::result::Result<Vec<(Key, Node)>, (Mark, String)> {
    if !entries.iter().any(|(k, _)| k.name == "<<") {
        return Ok(entries);
    }
    let mut out: Vec<(Key, Node)> = Vec::new();
    let mut sources: Vec<Node> = Vec::new();
    for (k, v) in entries {
        if k.name == "<<" {
            match v.kind {
                Kind::Map(_) => sources.push(v),
                Kind::Seq(items) => {
                    for it in items {
                        if !matches!(it.kind, Kind::Map(_)) {
                            return Err((
                                it.mark,
                                "merge key (<<) needs a mapping or a list of mappings".into(),
                            ));
                        }
                        sources.push(it);
                    }
                }
                _ => {
                    return Err((
                        v.mark,
                        "merge key (<<) needs a mapping or a list of mappings".into(),
                    ))
                }
            }
        } else {
            out.push((k, v));
        }
    }
    for src in sources {
        if let Kind::Map(m) = src.kind {
            for (k, v) in m {
                if !out.iter().any(|(e, _)| e.name == k.name) {
                    out.push((k, v));
                }
            }
        }
    }
    Ok(out)
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, m: Marker) {
        if self.err.is_some() {
            return;
        }
        let mark = self.mark(m);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let plain =
                    style == TScalarStyle::Plain && tag.as_ref().is_none_or(|t| t.handle == "!");
                let mut n = Node::new(Kind::Scalar(text, plain), mark);
                n.tag = local_tag(tag);
                self.push(n, anchor);
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(n) => {
                    let n = n.clone();
                    self.push(n, 0);
                }
                None => self.fail(&mark, "unknown anchor".into()),
            },
            Event::SequenceStart(anchor, tag) => {
                self.stack
                    .push(Frame::Seq(Vec::new(), mark, anchor, local_tag(tag)))
            }
            Event::MappingStart(anchor, tag) => {
                self.stack
                    .push(Frame::Map(Vec::new(), None, mark, anchor, local_tag(tag)))
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, mark, anchor, tag)) = self.stack.pop() {
                    let mut n = Node::new(Kind::Seq(items), mark);
                    n.tag = tag;
                    self.push(n, anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(entries, _, mark, anchor, tag)) = self.stack.pop() {
                    match apply_merges(entries) {
                        Ok(entries) => {
                            let mut n = Node::new(Kind::Map(entries), mark);
                            n.tag = tag;
                            self.push(n, anchor);
                        }
                        Err((m, msg)) => self.fail(&m, msg),
                    }
                }
            }
            _ => {}
        }
    }
}

/// Parse one YAML document. An empty document gives an empty mapping. `file` names the source
/// in marks and errors.
///
/// Errors: [`ComposeError::Syntax`] with the file and line of a YAML syntax error, a duplicate
/// key, an unknown alias or a bad merge key.
pub fn parse(text: &str, file: &str) -> Result<Node> {
    let mut b = Builder {
        file: Arc::from(file),
        stack: Vec::new(),
        anchors: HashMap::new(),
        doc: None,
        docs: 0,
        err: None,
    };
    let mut p = Parser::new_from_str(text);
    if let Err(e) = p.load(&mut b, true) {
        return Err(ComposeError::Syntax {
            file: file.to_string(),
            line: e.marker().line(),
            msg: e.info().to_string(),
        });
    }
    if let Some(e) = b.err {
        return Err(e);
    }
    let start = Mark {
        file: Arc::from(file),
        line: 1,
        col: 1,
    };
    Ok(match b.doc {
        Some(n) if n.is_null() => Node::empty_map(start),
        Some(n) => n,
        None => Node::empty_map(start),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_anchors_and_merge_keys() {
        let t = "x-base: &b\n  restart: always\n  image: a\nservices:\n  web:\n    <<: *b\n    image: b\n";
        let n = parse(t, "c.yaml").unwrap();
        let web = n.get("services").unwrap().get("web").unwrap();
        assert_eq!(web.get("image").unwrap().as_str(), Some("b"));
        assert_eq!(web.get("restart").unwrap().as_str(), Some("always"));
        assert_eq!(web.get("image").unwrap().mark.line, 7);
        assert_eq!(web.mark.line, 6);
    }

    #[test]
    fn merge_list_earlier_wins() {
        let t = "a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc:\n  <<: [*a, *b]\n";
        let n = parse(t, "f").unwrap();
        let c = n.get("c").unwrap();
        assert_eq!(c.get("x").unwrap().as_str(), Some("1"));
        assert_eq!(c.get("y").unwrap().as_str(), Some("2"));
    }

    #[test]
    fn syntax_and_duplicate_errors_name_the_line() {
        let e = parse("a: 1\nb: [1,\n", "f.yaml").unwrap_err().to_string();
        assert!(e.starts_with("f.yaml:"), "{e}");
        let e = parse("a: 1\nb: 2\na: 3\n", "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.yaml:3"), "{e}");
    }

    #[test]
    fn plain_scalars_resolve_like_yaml_core() {
        let n = parse(
            "a: 80\nb: '80'\nc: true\nd: ~\ne: 1.5\nf: 0x10\ng: yes\n",
            "f",
        )
        .unwrap();
        let j = n.to_json();
        assert_eq!(j["a"], 80);
        assert_eq!(j["b"], "80");
        assert_eq!(j["c"], true);
        assert!(j["d"].is_null());
        assert_eq!(j["e"], 1.5);
        assert_eq!(j["f"], 16);
        assert_eq!(j["g"], "yes");
    }
}
