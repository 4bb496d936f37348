//! `.env` and `env_file` files: `KEY=VALUE` lines, `export` prefixes, `#` comments, single
//! quotes (literal), double quotes (escapes and interpolation), unquoted values (trimmed,
//! interpolated, ` #` starts a comment).

use std::collections::BTreeMap;
use std::path::Path;

use crate::{interp, ComposeError, Result};

/// Largest env file read, in bytes.
pub const MAX_ENV_FILE: u64 = 4 << 20;

/// Parse env-file text. `lookup` resolves variables used in values; the same file's earlier
/// keys are used only for names it does not know (compose-go's order: a value from the
/// process or project environment wins over the file's own). Returns the pairs in file
/// order; a bare `KEY` gives `None` (take from the environment).
pub fn parse(
    text: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, Option<String>)>> {
    parse_layered(text, file, lookup, &|_| None)
}

/// [`parse`] with a last resort: `fallback` resolves names neither `lookup` nor the file's
/// earlier keys know (for `--env-file A --env-file B`: the process environment, then B's own
/// keys, then A's).
pub fn parse_layered(
    text: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    fallback: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, Option<String>)>> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let bad = |msg: &str| ComposeError::Syntax {
            file: file.to_string(),
            line: i + 1,
            msg: msg.to_string(),
        };
        let (key, rest) = match line.split_once('=') {
            Some((k, v)) => (k.trim_end().to_string(), v.to_string()),
            None => {
                let k = line.trim().to_string();
                if k.chars().any(char::is_whitespace) {
                    return Err(bad("invalid line: use KEY=VALUE"));
                }
                out.push((k, None));
                continue;
            }
        };
        if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c == '$') {
            return Err(bad(&format!("invalid variable name {key:?}")));
        }
        let look = |n: &str| {
            lookup(n)
                .or_else(|| seen.get(n).cloned())
                .or_else(|| fallback(n))
        };
        let value = if let Some(r) = rest.strip_prefix('\'') {
            let mut acc = r.to_string();
            loop {
                if let Some(end) = acc.find('\'') {
                    acc.truncate(end);
                    break acc;
                }
                match lines.next() {
                    Some((_, l)) => {
                        acc.push('\n');
                        acc.push_str(l);
                    }
                    None => return Err(bad("unterminated single quote")),
                }
            }
        } else if let Some(r) = rest.strip_prefix('"') {
            let mut acc = r.to_string();
            let body = loop {
                if let Some(end) = unescaped_quote(&acc) {
                    acc.truncate(end);
                    break acc;
                }
                match lines.next() {
                    Some((_, l)) => {
                        acc.push('\n');
                        acc.push_str(l);
                    }
                    None => return Err(bad("unterminated double quote")),
                }
            };
            let unescaped = body
                .replace("\\n", "\n")
                .replace("\\t", "\t")
                .replace("\\\"", "\"")
                .replace("\\\\", "\\");
            interp::expand(&unescaped, &look, &mut |_| {})
                .map_err(|_| bad("invalid interpolation in value"))?
        } else {
            let v = match rest.find(" #") {
                Some(p) => &rest[..p],
                None => &rest,
            };
            interp::expand(v.trim(), &look, &mut |_| {})
                .map_err(|_| bad("invalid interpolation in value"))?
        };
        seen.insert(key.clone(), value.clone());
        out.push((key, Some(value)));
    }
    Ok(out)
}

fn unescaped_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Read and parse an env file (size-bounded).
pub fn read(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, Option<String>)>> {
    read_layered(path, lookup, &|_| None)
}

/// Read and parse an env file (size-bounded) with [`parse_layered`]'s lookup order.
pub fn read_layered(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    fallback: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, Option<String>)>> {
    let text = crate::read_bounded(path, MAX_ENV_FILE)?;
    parse_layered(&text, &path.display().to_string(), lookup, fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let t = "# c\nA=1\nexport B = two words  # comment\nC='lit $A'\nD=\"x\\ny $A\"\nE=${A}-${NOPE:-d}\nF\n";
        let v = parse(t, ".env", &|_| None).unwrap();
        let m: BTreeMap<_, _> = v.into_iter().collect();
        assert_eq!(m["A"].as_deref(), Some("1"));
        assert_eq!(m["B"].as_deref(), Some("two words"));
        assert_eq!(m["C"].as_deref(), Some("lit $A"));
        assert_eq!(m["D"].as_deref(), Some("x\ny 1"));
        assert_eq!(m["E"].as_deref(), Some("1-d"));
        assert_eq!(m["F"], None);
    }

    #[test]
    fn environment_wins_over_the_files_own_keys() {
        // docker compose: `A=one` then `B=x-$A` gives x-proc when A=proc is in the environment.
        let t = "A=one\nB=x-$A\nC=${N}\nD=${A}\n";
        let look = |k: &str| (k == "A").then(|| "proc".to_string());
        let m: BTreeMap<_, _> = parse(t, ".env", &look).unwrap().into_iter().collect();
        assert_eq!(m["A"].as_deref(), Some("one"));
        assert_eq!(m["B"].as_deref(), Some("x-proc"));
        assert_eq!(m["C"].as_deref(), Some(""));
        assert_eq!(m["D"].as_deref(), Some("proc"));
        // A later --env-file's own keys win over an earlier file's.
        let earlier = |k: &str| (k == "A" || k == "E").then(|| "earlier".to_string());
        let t = "A=own\nB=$A\nF=$E\n";
        let m: BTreeMap<_, _> = parse_layered(t, "b.env", &|_| None, &earlier)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(m["B"].as_deref(), Some("own"));
        assert_eq!(m["F"].as_deref(), Some("earlier"));
    }

    #[test]
    fn bad_line_names_the_line() {
        let e = parse("A=1\nB C D\n", "x.env", &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.env:2:"), "{e}");
    }
}
