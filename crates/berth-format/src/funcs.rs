//! Template functions: Go's builtins and the ones Docker's CLI adds.

use serde_json::{Map, Value};

use crate::template::{print_go, print_top, truth, type_name};
use crate::FormatError;

fn err(msg: impl Into<String>) -> FormatError {
    FormatError::Template(msg.into())
}

fn want(name: &str, args: &[Value], n: usize) -> Result<(), FormatError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )))
    }
}

fn text(name: &str, v: &Value) -> Result<String, FormatError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        other => Err(err(format!(
            "wrong type for value; expected string; got {} (in {name})",
            type_name(other)
        ))),
    }
}

fn int(name: &str, v: &Value) -> Result<i64, FormatError> {
    v.as_i64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                // A whole number within i64's range (checked): the cast is exact.
                .map(|f| {
                    #[allow(clippy::cast_possible_truncation)]
                    let i = f as i64;
                    i
                })
        })
        .ok_or_else(|| err(format!("{name}: expected an integer, got {}", print_top(v))))
}

fn usize_arg(name: &str, v: &Value) -> Result<usize, FormatError> {
    usize::try_from(int(name, v)?).map_err(|_| err(format!("{name}: negative index")))
}

/// Copy of a value without the hidden `@` keys of objects (what `json` prints).
pub(crate) fn visible(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !k.starts_with('@'))
                .map(|(k, v)| (k.clone(), visible(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(visible).collect()),
        other => other.clone(),
    }
}

/// Call the function `name` with evaluated arguments.
pub(crate) fn call(name: &str, a: &[Value]) -> Result<Value, FormatError> {
    let s = |v: String| Ok(Value::String(v));
    match name {
        "json" => {
            want(name, a, 1)?;
            s(serde_json::to_string(&visible(&a[0])).unwrap_or_default())
        }
        "split" => {
            want(name, a, 2)?;
            let (t, sep) = (text(name, &a[0])?, text(name, &a[1])?);
            let parts: Vec<Value> = if sep.is_empty() {
                t.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                t.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Value::Array(parts))
        }
        "join" => {
            want(name, a, 2)?;
            let sep = text(name, &a[1])?;
            match &a[0] {
                Value::Array(items) => s(items.iter().map(print_go).collect::<Vec<_>>().join(&sep)),
                Value::Null => s(String::new()),
                other => Err(err(format!(
                    "wrong type for value; expected []string; got {}",
                    type_name(other)
                ))),
            }
        }
        "title" => {
            want(name, a, 1)?;
            let t = text(name, &a[0])?;
            let mut out = String::with_capacity(t.len());
            let mut prev_sep = true;
            for c in t.chars() {
                if prev_sep {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                prev_sep = !(c.is_alphanumeric() || c == '_');
            }
            s(out)
        }
        "lower" => {
            want(name, a, 1)?;
            s(text(name, &a[0])?.to_lowercase())
        }
        "upper" => {
            want(name, a, 1)?;
            s(text(name, &a[0])?.to_uppercase())
        }
        "pad" => {
            want(name, a, 3)?;
            let t = text(name, &a[0])?;
            let (p, q) = (usize_arg(name, &a[1])?, usize_arg(name, &a[2])?);
            s(format!("{}{t}{}", " ".repeat(p), " ".repeat(q)))
        }
        "truncate" => {
            want(name, a, 2)?;
            let t = text(name, &a[0])?;
            let n = usize_arg(name, &a[1])?;
            s(t.chars().take(n).collect())
        }
        "and" => Ok(a
            .iter()
            .find(|v| !truth(v))
            .or(a.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "or" => Ok(a
            .iter()
            .find(|v| truth(v))
            .or(a.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "not" => {
            want(name, a, 1)?;
            Ok(Value::Bool(!truth(&a[0])))
        }
        "len" => {
            want(name, a, 1)?;
            let n = match &a[0] {
                Value::String(t) => t.len(),
                Value::Array(x) => x.len(),
                Value::Object(o) => o.keys().filter(|k| !k.starts_with('@')).count(),
                Value::Null => 0,
                other => return Err(err(format!("len of type {}", type_name(other)))),
            };
            Ok(Value::from(n))
        }
        "index" => {
            let (first, keys) = a
                .split_first()
                .ok_or_else(|| err("wrong number of args for index"))?;
            let mut cur = first.clone();
            for k in keys {
                cur = match (&cur, k) {
                    (Value::Array(x), k) => {
                        let i = usize_arg(name, k)?;
                        x.get(i).cloned().ok_or_else(|| {
                            err(format!("error calling index: index out of range: {i}"))
                        })?
                    }
                    (Value::Object(o), Value::String(k)) => {
                        o.get(k).cloned().unwrap_or(Value::Null)
                    }
                    (Value::String(t), k) => {
                        let i = usize_arg(name, k)?;
                        Value::from(*t.as_bytes().get(i).ok_or_else(|| {
                            err(format!("error calling index: index out of range: {i}"))
                        })?)
                    }
                    (Value::Null, _) => Value::Null,
                    (other, _) => {
                        return Err(err(format!(
                            "error calling index: cannot index {}",
                            type_name(other)
                        )))
                    }
                };
            }
            Ok(cur)
        }
        "slice" => {
            let (first, idx) = a
                .split_first()
                .ok_or_else(|| err("wrong number of args for slice"))?;
            let idx: Vec<usize> = idx
                .iter()
                .map(|v| usize_arg(name, v))
                .collect::<Result<_, _>>()?;
            let len = match first {
                Value::String(t) => t.len(),
                Value::Array(x) => x.len(),
                other => {
                    return Err(err(format!(
                        "can't slice item of type {}",
                        type_name(other)
                    )))
                }
            };
            let from = idx.first().copied().unwrap_or(0);
            let to = idx.get(1).copied().unwrap_or(len);
            if from > to || to > len {
                return Err(err(format!(
                    "error calling slice: index out of range: {to}"
                )));
            }
            match first {
                Value::String(t) => t
                    .get(from..to)
                    .map(|x| Value::String(x.to_string()))
                    .ok_or_else(|| err("error calling slice: not at a character boundary")),
                Value::Array(x) => Ok(Value::Array(x[from..to].to_vec())),
                _ => Ok(Value::Null),
            }
        }
        "print" => s(sprint(a)),
        "println" => {
            let parts: Vec<String> = a.iter().map(print_go).collect();
            s(format!("{}\n", parts.join(" ")))
        }
        "printf" => {
            let (f, rest) = a
                .split_first()
                .ok_or_else(|| err("wrong number of args for printf"))?;
            s(sprintf(&text(name, f)?, rest))
        }
        "eq" => {
            let (x, ys) = a
                .split_first()
                .ok_or_else(|| err("missing argument for comparison"))?;
            if ys.is_empty() {
                return Err(err("missing argument for comparison"));
            }
            Ok(Value::Bool(ys.iter().any(|y| equal(x, y))))
        }
        "ne" => {
            want(name, a, 2)?;
            Ok(Value::Bool(!equal(&a[0], &a[1])))
        }
        "lt" | "le" | "gt" | "ge" => {
            want(name, a, 2)?;
            let o = order(&a[0], &a[1])?;
            Ok(Value::Bool(match name {
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            }))
        }
        "html" => s(sprint(a)
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&#34;")
            .replace('\'', "&#39;")),
        "js" => s(sprint(a)
            .replace('\\', "\\\\")
            .replace('\'', "\\'")
            .replace('"', "\\\"")
            .replace('<', "\\u003C")
            .replace('>', "\\u003E")),
        "urlquery" => s(sprint(a)
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else if b == b' ' {
                    "+".into()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()),
        _ => Err(err(format!("function {name:?} not defined"))),
    }
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
fn sprint(a: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in a.iter().enumerate() {
        if i > 0 && !v.is_string() && !a[i - 1].is_string() {
            out.push(' ');
        }
        out.push_str(&print_go(v));
    }
    out
}

fn equal(x: &Value, y: &Value) -> bool {
    match (x, y) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => a.as_f64() == b.as_f64(),
        },
        _ => x == y,
    }
}

fn order(x: &Value, y: &Value) -> Result<std::cmp::Ordering, FormatError> {
    match (x, y) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(i), Some(j)) => Ok(i.cmp(&j)),
            _ => a
                .as_f64()
                .partial_cmp(&b.as_f64())
                .ok_or_else(|| err("incomparable numbers")),
        },
        (Value::String(a), Value::String(b)) => Ok(a.cmp(b)),
        _ => Err(err(format!(
            "incompatible types for comparison: {} and {}",
            type_name(x),
            type_name(y)
        ))),
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %d %q %t %x %X %f %e %g %c %%`,
/// with flags `-`, `0`, `+`, width and precision.
fn sprintf(f: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = f.chars().peekable();
    let mut next = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero, mut plus) = (false, false, false);
        while let Some(&fl) = it.peek() {
            match fl {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' | '#' => {}
                _ => break,
            }
            it.next();
        }
        let mut width = String::new();
        while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            it.next();
        }
        let mut prec: Option<usize> = None;
        if it.peek() == Some(&'.') {
            it.next();
            let mut p = String::new();
            while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                it.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(v) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let num = v.as_f64();
        let body = match verb {
            'v' | 's' => {
                let t = print_go(v);
                match prec {
                    Some(p) if verb == 's' => t.chars().take(p).collect(),
                    _ => t,
                }
            }
            'q' => serde_json::to_string(&print_go(v)).unwrap_or_default(),
            't' => print_go(v),
            'd' => match v.as_i64() {
                Some(i) if plus && i >= 0 => format!("+{i}"),
                Some(i) => i.to_string(),
                None => format!("%!d({})", print_go(v)),
            },
            'x' | 'X' => {
                let t = match (v.as_i64(), v) {
                    (Some(i), _) => format!("{i:x}"),
                    (None, Value::String(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                    _ => format!("%!x({})", print_go(v)),
                };
                if verb == 'X' {
                    t.to_uppercase()
                } else {
                    t
                }
            }
            'c' => v
                .as_u64()
                .and_then(|u| u32::try_from(u).ok())
                .and_then(char::from_u32)
                .map(String::from)
                .unwrap_or_default(),
            'f' | 'F' => match num {
                Some(n) => format!("{n:.*}", prec.unwrap_or(6)),
                None => format!("%!f({})", print_go(v)),
            },
            'e' => match num {
                Some(n) => go_exp(n, prec.unwrap_or(6)),
                None => format!("%!e({})", print_go(v)),
            },
            'g' => match num {
                Some(n) => crate::template::go_float(n),
                None => format!("%!g({})", print_go(v)),
            },
            other => format!("%!{other}({})", print_go(v)),
        };
        let w: usize = width.parse().unwrap_or(0);
        let n = body.chars().count();
        if n >= w {
            out.push_str(&body);
        } else if left {
            out.push_str(&body);
            out.push_str(&" ".repeat(w - n));
        } else if zero && matches!(verb, 'd' | 'f' | 'x' | 'X') {
            let (sign, digits) = match body.strip_prefix('-') {
                Some(d) => ("-", d),
                None => ("", body.as_str()),
            };
            out.push_str(sign);
            out.push_str(&"0".repeat(w - n));
            out.push_str(digits);
        } else {
            out.push_str(&" ".repeat(w - n));
            out.push_str(&body);
        }
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|v| format!("{}={}", type_name(v), print_go(v)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// `%e` as Go prints it (`1.500000e+06`).
fn go_exp(n: f64, prec: usize) -> String {
    let e = format!("{n:.prec$e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", exp.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn printf_verbs() {
        assert_eq!(
            sprintf(
                "%05d|%x|%.2f|%t",
                &[json!(42), json!(255), json!(1.5), json!(true)]
            ),
            "00042|ff|1.50|true"
        );
        assert_eq!(sprintf("%s %s", &[json!("a")]), "a %!s(MISSING)");
        assert_eq!(sprintf("%e", &[json!(1500000.0)]), "1.500000e+06");
        assert_eq!(sprintf("100%%", &[]), "100%");
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(
            sprint(&[json!("a"), json!(1), json!(2), json!("b")]),
            "a1 2b"
        );
    }
}
