//! How Go sees the `interface{}` values a JSON document decodes to: truth, type names, and
//! printing as `fmt` prints them.

use serde_json::Value;

/// Go's notion of an empty (false) value.
pub(crate) fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "interface {}",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Print a value as an action prints it.
pub(crate) fn print_top(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        other => print_go(other),
    }
}

/// Print as Go's `fmt.Sprint` prints decoded JSON (`<nil>` inside containers).
pub(crate) fn print_go(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => go_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(print_go).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(o) => {
            let mut ks: Vec<&String> = o.keys().filter(|k| !k.starts_with('@')).collect();
            ks.sort();
            let parts: Vec<String> = ks
                .into_iter()
                .map(|k| format!("{k}:{}", print_go(&o[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// A float as Go's `%v` prints it: shortest digits, exponent form below 1e-4 or from 1e6.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return "0".into();
    }
    let e = format!("{f:e}"); // shortest digits: "1.5e6"
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}
