//! Detaching from an attached terminal: Docker's `--detach-keys` syntax, its default
//! (Ctrl-P Ctrl-Q), the `detachKeys` setting of the Docker CLI's `config.json`, and the matcher
//! that watches a client's input for the sequence.

use crate::{EngineError, Result};

/// Docker's default detach sequence: Ctrl-P, Ctrl-Q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// Names of the control keys, `ctrl-@` (0) … `ctrl-_` (31), as Docker spells them.
const CTRL_NAMES: [&str; 32] = [
    "ctrl-@", "ctrl-a", "ctrl-b", "ctrl-c", "ctrl-d", "ctrl-e", "ctrl-f", "ctrl-g", "ctrl-h",
    "ctrl-i", "ctrl-j", "ctrl-k", "ctrl-l", "ctrl-m", "ctrl-n", "ctrl-o", "ctrl-p", "ctrl-q",
    "ctrl-r", "ctrl-s", "ctrl-t", "ctrl-u", "ctrl-v", "ctrl-w", "ctrl-x", "ctrl-y", "ctrl-z",
    "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_",
];

/// A detach key sequence: the bytes a client's input must contain, in order, to detach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys(Vec<u8>);

impl Default for DetachKeys {
    fn default() -> Self {
        DetachKeys(DEFAULT_DETACH_KEYS.to_vec())
    }
}

impl DetachKeys {
    /// Parse Docker's syntax: comma-separated keys, each a single character, `ctrl-X` with X
    /// one of `a`-`z`, `@`, `[`, `\`, `]`, `^`, `_` (lowercase, as Docker), or `DEL`.
    ///
    /// Errors: [`EngineError::InvalidArgument`] naming the key that is not understood.
    pub fn parse(spec: &str) -> Result<DetachKeys> {
        let mut out = Vec::new();
        for key in spec.split(',') {
            if key.len() == 1 {
                out.push(key.as_bytes()[0]);
            } else if let Some(code) = CTRL_NAMES.iter().position(|n| *n == key) {
                // Positions are below 32.
                out.push(u8::try_from(code).unwrap_or(0));
            } else if key == "DEL" {
                out.push(127);
            } else {
                return Err(EngineError::InvalidArgument(format!(
                    "invalid detach keys ({spec}): unknown key {key:?}; give comma-separated single characters or ctrl-<a-z|@|[|\\|]|^|_>, e.g. ctrl-p,ctrl-q"
                )));
            }
        }
        Ok(DetachKeys(out))
    }

    /// The keys to use: `flag` (`--detach-keys`) when given and not empty, else the Docker
    /// CLI configuration's `detachKeys` ([`config_detach_keys`]), else Ctrl-P Ctrl-Q.
    ///
    /// Errors: as [`DetachKeys::parse`], for whichever setting was chosen.
    pub fn resolve(flag: Option<&str>) -> Result<DetachKeys> {
        match flag.filter(|f| !f.is_empty()) {
            Some(f) => DetachKeys::parse(f),
            None => match config_detach_keys() {
                Some(c) => DetachKeys::parse(&c),
                None => Ok(DetachKeys::default()),
            },
        }
    }

    /// The key bytes, in order.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// A fresh matcher for this sequence.
    pub fn matcher(&self) -> EscapeMatcher {
        EscapeMatcher {
            keys: self.0.clone(),
            held: 0,
        }
    }
}

/// `detachKeys` from the Docker CLI's configuration (`$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`); `None` when the file or the key is missing, empty or unreadable.
pub fn config_detach_keys() -> Option<String> {
    let dir = match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".docker"),
    };
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("detachKeys")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Watches a stream of input for a detach sequence. Bytes that may start the sequence are
/// held back until the next byte decides; everything else passes through unchanged.
#[derive(Debug, Clone)]
pub struct EscapeMatcher {
    keys: Vec<u8>,
    /// How many leading bytes of `keys` are held back (matched so far).
    held: usize,
}

impl EscapeMatcher {
    /// Feed `input`; the bytes to forward are appended to `out`. Returns true once the whole
    /// sequence has been seen: then the input after it and the sequence itself are dropped
    /// (the caller detaches). An empty sequence never matches.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return false;
        }
        for &b in input {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    self.held = 0;
                    return true;
                }
                continue;
            }
            // Not the sequence after all: what was held goes through. The byte itself may
            // start the sequence afresh (Ctrl-P Ctrl-P Ctrl-Q detaches).
            out.extend_from_slice(&self.keys[..self.held]);
            self.held = 0;
            if b == self.keys[0] {
                self.held = 1;
                if self.keys.len() == 1 {
                    self.held = 0;
                    return true;
                }
            } else {
                out.push(b);
            }
        }
        false
    }

    /// The bytes held back (a partial sequence), released when the input ends.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.keys[..self.held]);
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_syntax() {
        assert_eq!(
            DetachKeys::parse("ctrl-p,ctrl-q").unwrap().bytes(),
            &[16, 17]
        );
        assert_eq!(
            DetachKeys::parse("a,ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_,DEL")
                .unwrap()
                .bytes(),
            &[b'a', 0, 27, 28, 29, 30, 31, 127]
        );
        assert_eq!(DetachKeys::parse("ctrl-a").unwrap().bytes(), &[1]);
        assert_eq!(DetachKeys::default().bytes(), DEFAULT_DETACH_KEYS);
        for bad in [
            "ctrl-P", "ctrl-1", "ab", "", ",", "a,,b", "ctrl-", "ctrl-pp",
        ] {
            let e = DetachKeys::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid detach keys"), "{bad}: {e}");
        }
    }

    fn run(keys: &[u8], chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut m = DetachKeys(keys.to_vec()).matcher();
        let mut out = Vec::new();
        for c in chunks {
            if m.feed(c, &mut out) {
                return (out, true);
            }
        }
        m.flush(&mut out);
        (out, false)
    }

    #[test]
    fn matcher_detaches_on_the_sequence_only() {
        let pq: &[u8] = &[16, 17];
        assert_eq!(run(pq, &[b"ab\x10\x11cd"]), (b"ab".to_vec(), true));
        // Split across reads.
        assert_eq!(run(pq, &[b"ab\x10", b"\x11cd"]), (b"ab".to_vec(), true));
        // A lone Ctrl-P followed by something else goes through, in order.
        assert_eq!(run(pq, &[b"\x10x\x11"]), (b"\x10x\x11".to_vec(), false));
        assert_eq!(run(pq, &[b"\x10", b"x"]), (b"\x10x".to_vec(), false));
        // Ctrl-P twice then Ctrl-Q: the second Ctrl-P starts the sequence again.
        assert_eq!(run(pq, &[b"\x10\x10\x11"]), (b"\x10".to_vec(), true));
        // A partial sequence at the end of input is released.
        assert_eq!(run(pq, &[b"a\x10"]), (b"a\x10".to_vec(), false));
        // One-key sequences and longer ones.
        assert_eq!(run(b"q", &[b"abqz"]), (b"ab".to_vec(), true));
        assert_eq!(run(b"abc", &[b"xabab", b"c"]), (b"xab".to_vec(), true));
        assert_eq!(run(b"", &[b"abc"]), (b"abc".to_vec(), false));
    }

    #[test]
    fn config_file_setting_is_used_when_no_flag() {
        let dir = std::env::temp_dir().join(format!("berth-detach-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), r#"{"detachKeys": "ctrl-x,x"}"#).unwrap();
        std::env::set_var("DOCKER_CONFIG", &dir);
        assert_eq!(DetachKeys::resolve(None).unwrap().bytes(), &[24, b'x']);
        assert_eq!(DetachKeys::resolve(Some("")).unwrap().bytes(), &[24, b'x']);
        assert_eq!(DetachKeys::resolve(Some("ctrl-a")).unwrap().bytes(), &[1]);
        std::fs::write(dir.join("config.json"), r#"{"detachKeys": "bad-key"}"#).unwrap();
        assert!(DetachKeys::resolve(None).is_err());
        std::fs::write(dir.join("config.json"), r#"{}"#).unwrap();
        assert_eq!(DetachKeys::resolve(None).unwrap(), DetachKeys::default());
        std::env::remove_var("DOCKER_CONFIG");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
