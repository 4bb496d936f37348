//! Stage 2: variable interpolation in every scalar, as the compose specification defines it:
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`,
//! `${VAR:+alternative}`, `${VAR+alternative}`, and `$$` for a literal `$`. Defaults and
//! alternatives may themselves contain interpolations.

use crate::yaml::{Kind, Node};

/// Why a template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpError {
    /// A `$` not followed by a name, `{`, or `$`; or an unclosed `${`.
    Invalid,
    /// `${VAR:?msg}` / `${VAR?msg}` with the variable missing: (variable, message).
    Required(String, String),
}

/// Expand `s`; `lookup` gives a variable's value (`None` when unset). Unset variables used
/// without a default are reported through `missing` and expand to "".
pub fn expand(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut dyn FnMut(&str),
) -> Result<String, InterpError> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let next = s[i..].find('$').map_or(b.len(), |p| i + p);
            out.push_str(&s[i..next]);
            i = next;
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let start = i + 2;
                let mut depth = 1;
                let mut j = start;
                while j < b.len() {
                    match b[j] {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                if j >= b.len() {
                    return Err(InterpError::Invalid);
                }
                out.push_str(&braced(&s[start..j], lookup, missing)?);
                i = j + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let name = &s[i + 1..j];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => missing(name),
                }
                i = j;
            }
            // A `$` not starting a variable stays literal (as compose does).
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

fn braced(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut dyn FnMut(&str),
) -> Result<String, InterpError> {
    let name_end = inner
        .bytes()
        .position(|c| !(c.is_ascii_alphanumeric() || c == b'_'))
        .unwrap_or(inner.len());
    let name = &inner[..name_end];
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return Err(InterpError::Invalid);
    }
    let rest = &inner[name_end..];
    let val = lookup(name);
    if rest.is_empty() {
        return Ok(match val {
            Some(v) => v,
            None => {
                missing(name);
                String::new()
            }
        });
    }
    let (op, arg) = if let Some(a) = rest.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = rest.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = rest.strip_prefix(":+") {
        (":+", a)
    } else {
        match rest.as_bytes()[0] {
            b'-' => ("-", &rest[1..]),
            b'?' => ("?", &rest[1..]),
            b'+' => ("+", &rest[1..]),
            _ => return Err(InterpError::Invalid),
        }
    };
    let set_nonempty = val.as_deref().is_some_and(|v| !v.is_empty());
    let set = val.is_some();
    match op {
        ":-" if set_nonempty => Ok(val.unwrap_or_default()),
        "-" if set => Ok(val.unwrap_or_default()),
        ":-" | "-" => expand(arg, lookup, missing),
        ":?" if set_nonempty => Ok(val.unwrap_or_default()),
        "?" if set => Ok(val.unwrap_or_default()),
        ":?" | "?" => Err(InterpError::Required(
            name.to_string(),
            expand(arg, lookup, missing)?,
        )),
        ":+" if set_nonempty => expand(arg, lookup, missing),
        "+" if set => expand(arg, lookup, missing),
        _ => Ok(String::new()),
    }
}

/// Interpolate every scalar (values and mapping keys) of `node` in place. `path` is the dotted
/// path of `node` for error messages; on error returns (path, mark line, error).
pub fn interpolate_tree(
    node: &mut Node,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut dyn FnMut(&str),
) -> Result<(), Box<(String, crate::yaml::Mark, String, InterpError)>> {
    match &mut node.kind {
        Kind::Scalar(s, _) => {
            if s.contains('$') {
                match expand(s, lookup, missing) {
                    Ok(v) => {
                        *s = v;
                        // An interpolated value is a string (compose-go casts it by field).
                        if let Kind::Scalar(_, plain) = &mut node.kind {
                            *plain = false;
                        }
                    }
                    Err(e) => {
                        return Err(Box::new((
                            path.to_string(),
                            node.mark.clone(),
                            s.clone(),
                            e,
                        )))
                    }
                }
            }
        }
        Kind::Seq(items) => {
            for (i, it) in items.iter_mut().enumerate() {
                interpolate_tree(it, &format!("{path}[{i}]"), lookup, missing)?;
            }
        }
        Kind::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                // Extensions (x-*) are interpolated too (compose-go does); keys as well.
                let p = if path.is_empty() {
                    k.name.clone()
                } else {
                    format!("{path}.{}", k.name)
                };
                if k.name.contains('$') {
                    match expand(&k.name, lookup, missing) {
                        Ok(v) => k.name = v,
                        Err(e) => return Err(Box::new((p, k.mark.clone(), k.name.clone(), e))),
                    }
                }
                interpolate_tree(v, &p, lookup, missing)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Result<String, InterpError> {
        let look = |n: &str| match n {
            "SET" => Some("v".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        expand(s, &look, &mut |_| {})
    }

    #[test]
    fn all_forms() {
        assert_eq!(ex("a $SET b ${SET}").unwrap(), "a v b v");
        assert_eq!(ex("${UNSET}").unwrap(), "");
        assert_eq!(ex("${UNSET:-d}").unwrap(), "d");
        assert_eq!(ex("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(ex("${EMPTY-d}").unwrap(), "");
        assert_eq!(ex("${UNSET-d}").unwrap(), "d");
        assert_eq!(ex("${SET:+x}").unwrap(), "x");
        assert_eq!(ex("${EMPTY:+x}").unwrap(), "");
        assert_eq!(ex("${EMPTY+x}").unwrap(), "x");
        assert_eq!(ex("${UNSET+x}").unwrap(), "");
        assert_eq!(ex("$$SET $${SET}").unwrap(), "$SET ${SET}");
        assert_eq!(ex("${UNSET:-${SET}/x}").unwrap(), "v/x");
        assert_eq!(
            ex("${DOCUMENT_ROOT-./www}:/var/www").unwrap(),
            "./www:/var/www"
        );
        assert_eq!(
            ex("${UNSET:?need it}"),
            Err(InterpError::Required("UNSET".into(), "need it".into()))
        );
        assert_eq!(ex("${EMPTY?m}").unwrap(), "");
        assert_eq!(
            ex("${EMPTY:?m}"),
            Err(InterpError::Required("EMPTY".into(), "m".into()))
        );
        assert_eq!(ex("a $ b $1 c$").unwrap(), "a $ b $1 c$");
        assert_eq!(ex("${A"), Err(InterpError::Invalid));
        assert_eq!(ex("${}"), Err(InterpError::Invalid));
    }

    #[test]
    fn missing_is_reported() {
        let mut seen = vec![];
        let _ = expand("$X ${Y:-1} ${Z}", &|_| None, &mut |n| {
            seen.push(n.to_string())
        });
        assert_eq!(seen, vec!["X", "Z"]);
    }
}
