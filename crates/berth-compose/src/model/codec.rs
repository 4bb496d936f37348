//! Conversions between compose's YAML forms and the model: lenient deserializers, sizes,
//! durations, shell words.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serializer};
use serde_json::Value;

pub(super) fn value_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
pub(super) fn is_false(b: &bool) -> bool {
    !*b
}

/// A scalar as compose prints it in string-typed fields (numbers and booleans as text).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => format_float(f),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`-like text (shortest that round-trips).
pub(super) fn format_float(f: f64) -> String {
    let s = format!("{f}");
    s
}

pub(super) fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    scalar_text(&v)
        .map(Some)
        .ok_or_else(|| D::Error::custom("must be a string"))
}

pub(super) fn de_str_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::de::Error;
    let v = Value::deserialize(d)?;
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(a) => a
            .iter()
            .map(|x| scalar_text(x).ok_or_else(|| D::Error::custom("items must be strings")))
            .collect(),
        other => scalar_text(&other)
            .map(|s| vec![s])
            .ok_or_else(|| D::Error::custom("must be a string or a list of strings")),
    }
}

pub(super) fn de_str_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(de_opt_str_map(d)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

pub(super) fn de_opt_str_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    use serde::de::Error;
    let v = Value::deserialize(d)?;
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| {
                if v.is_null() {
                    Ok((k, None))
                } else {
                    scalar_text(&v)
                        .map(|s| (k.clone(), Some(s)))
                        .ok_or_else(|| {
                            D::Error::custom(format!("{k}: must be a string, number or boolean"))
                        })
                }
            })
            .collect(),
        _ => Err(D::Error::custom("must be a mapping or a list of KEY=VALUE")),
    }
}

pub(super) fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(de_opt_bool(d)?.unwrap_or(false))
}

pub(super) fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" | "1" => Ok(Some(true)),
            "false" | "no" | "n" | "off" | "0" | "" => Ok(Some(false)),
            _ => Err(D::Error::custom(format!("invalid boolean {s:?}"))),
        },
        other => Err(D::Error::custom(format!("invalid boolean {other}"))),
    }
}

pub(super) fn de_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(|| {
            D::Error::custom(format!("invalid number {n}: must be a whole number ≥ 0"))
        }),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("invalid number {s:?}"))),
        other => Err(D::Error::custom(format!("invalid number {other}"))),
    }
}

pub(super) fn de_u16<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    use serde::de::Error;
    let n = de_opt_u64(d)?.ok_or_else(|| D::Error::custom("missing port"))?;
    u16::try_from(n).map_err(|_| D::Error::custom(format!("invalid port {n}: must be 0-65535")))
}

pub(super) fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("invalid number {s:?}"))),
        other => Err(D::Error::custom(format!("invalid number {other}"))),
    }
}

pub(super) fn de_opt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid size {n}"))),
        Value::String(s) => parse_bytes(&s).map(Some).ok_or_else(|| {
            D::Error::custom(format!(
                "invalid size {s:?}: use a number with an optional unit b, k, m or g (e.g. 64m)"
            ))
        }),
        other => Err(D::Error::custom(format!("invalid size {other}"))),
    }
}

#[allow(clippy::ref_option)] // serde's serialize_with passes a reference
pub(super) fn ser_opt_bytes<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => s.serialize_str(&n.to_string()),
        None => s.serialize_none(),
    }
}

/// A list where `null` is empty.
pub(super) fn de_null_vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A string (numbers and booleans as their text; `null` is empty).
pub(super) fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(de_opt_string(d)?.unwrap_or_default())
}

/// `weight_device[].weight`: a whole number 0-65535 (compose's uint16; text is refused, as
/// compose does).
pub(super) fn de_weight<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_u64()
            .and_then(|w| u16::try_from(w).ok())
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "invalid weight {n}: must be a whole number 0-65535"
                ))
            }),
        other => Err(D::Error::custom(format!(
            "invalid weight {other}: must be a whole number"
        ))),
    }
}

/// A throttle rate: a whole number, or text with an optional size unit (`12mb`, `1.5k`,
/// `1024`; powers of 1024), as compose's `UnitBytes`.
pub(super) fn de_rate<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    let v = Value::deserialize(d)?;
    match &v {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| D::Error::custom(format!("invalid rate {n}: must be a whole number"))),
        Value::String(s) => parse_bytes(s)
            .and_then(|b| i64::try_from(b).ok())
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "invalid rate {s:?}: use a number with an optional unit k, m or g (e.g. 12mb)"
                ))
            }),
        other => Err(D::Error::custom(format!("invalid rate {other}"))),
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's serialize_with passes a reference
pub(super) fn ser_i64_text<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// A string where empty means unset (compose's `omitempty` strings).
pub(super) fn de_opt_string_ne<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(de_opt_string(d)?.filter(|s| !s.is_empty()))
}

/// A whole number (or its text) where 0 means unset (compose's `omitempty` integers).
pub(super) fn de_opt_i64_nz<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => value_i64(&v)
            .map(|n| (n != 0).then_some(n))
            .ok_or_else(|| D::Error::custom(format!("invalid number {v}: must be a whole number"))),
    }
}

/// A size in bytes (`64m`, `1024`, or -1 for unlimited) where 0 means unset.
pub(super) fn de_opt_bytes_nz<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let v = Value::deserialize(d)?;
    let n = match &v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_i64(),
        Value::String(s) if s.trim() == "-1" => Some(-1),
        Value::String(s) => parse_bytes(s).and_then(|b| i64::try_from(b).ok()),
        _ => None,
    };
    match n {
        Some(n) if n >= -1 => Ok((n != 0).then_some(n)),
        _ => Err(D::Error::custom(format!(
            "invalid size {v}: use a number with an optional unit b, k, m or g (e.g. 64m), or -1"
        ))),
    }
}

#[allow(clippy::ref_option)] // serde's serialize_with passes a reference
pub(super) fn ser_opt_sbytes<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => s.serialize_str(&n.to_string()),
        None => s.serialize_none(),
    }
}

/// `cpus:` as compose reads it: a float32 (or its text); 0 means unset.
pub(super) fn de_opt_cpus<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::de::Error;
    let Some(f) = de_opt_f64(d)? else {
        return Ok(None);
    };
    if !f.is_finite() || f < 0.0 {
        return Err(D::Error::custom(format!(
            "invalid cpus {f}: use a positive number such as 0.5"
        )));
    }
    // Compose keeps cpus as a float32: round through its shortest text.
    #[allow(clippy::cast_possible_truncation)] // intended: float32 precision, as compose
    let short = format!("{}", f as f32);
    Ok(short.parse::<f64>().ok().filter(|f| *f != 0.0))
}

/// `cpus:` printed as compose does: a whole number without a fraction.
#[allow(clippy::ref_option)] // serde's serialize_with passes a reference
pub(super) fn ser_opt_cpus<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        #[allow(clippy::cast_possible_truncation)] // checked: whole and in range
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => s.serialize_i64(*f as i64),
        Some(f) => s.serialize_f64(*f),
        None => s.serialize_none(),
    }
}

pub(super) fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => parse_duration(&s).map(Some).ok_or_else(|| {
            D::Error::custom(format!(
                "invalid duration {s:?}: use a number with a unit, e.g. 30s, 1m30s, 500ms"
            ))
        }),
        Value::Number(n) => n
            .as_u64()
            .and_then(|v| v.checked_mul(1_000_000_000))
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid duration {n}"))),
        other => Err(D::Error::custom(format!("invalid duration {other}"))),
    }
}

#[allow(clippy::ref_option)] // serde's serialize_with passes a reference
pub(super) fn ser_opt_duration<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => s.serialize_str(&format_duration(*n)),
        None => s.serialize_none(),
    }
}

pub(super) fn de_command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => split_shell(&s)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid command {s:?}: unterminated quote"))),
        Value::Array(a) => a
            .iter()
            .map(|x| scalar_text(x).ok_or_else(|| D::Error::custom("items must be strings")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(D::Error::custom(format!(
            "must be a string or a list, not {other}"
        ))),
    }
}

pub(super) fn de_test<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(vec![]),
        Value::String(s) => Ok(vec!["CMD-SHELL".into(), s]),
        Value::Array(a) => a
            .iter()
            .map(|x| scalar_text(x).ok_or_else(|| D::Error::custom("items must be strings")))
            .collect(),
        other => Err(D::Error::custom(format!(
            "must be a string or a list, not {other}"
        ))),
    }
}

/// Sizes as Docker's go-units `RAMInBytes`: `64m`, `1.5g`, `512kb`, `1024` (bytes); units
/// are powers of 1024. `None` if malformed.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let v: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return None,
    };
    #[allow(clippy::cast_precision_loss)] // sizes far below 2^53 are exact
    let bytes = v * mult as f64;
    if !bytes.is_finite() || !(0.0..=1.8e19).contains(&bytes) {
        return None;
    }
    // Truncation toward zero is what Docker does with fractional sizes.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(bytes as u64)
}

/// Go `time.ParseDuration`: `1h2m3.5s`, `500ms`, `10us`; nanoseconds. `None` if malformed.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if n_end == 0 {
            return None;
        }
        let v: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += v * mult;
        rest = &rest[u_end..];
    }
    if !total.is_finite() || total > 9.2e18 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked range above
    Some(total.round() as u64)
}

/// A literal `$` in a loaded value is printed as `$$`, so the output can be read again as a
/// compose file without interpolating it (as Docker prints it).
pub(super) fn escape_dollars(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Array(a) => a.iter_mut().for_each(escape_dollars),
        Value::Object(m) => m.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

/// Go's `time.Duration.String()`: `1m30s`, `500ms`, `0s`.
pub fn format_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (div, unit) = if ns < 1_000 {
            (1, "ns")
        } else if ns < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{unit}", frac(ns, div));
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s_ns = ns % 60_000_000_000;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", frac(s_ns, 1_000_000_000)));
    out
}

pub(super) fn frac(v: u64, div: u64) -> String {
    let whole = v / div;
    let rem = v % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{rem:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// Split a command string as a POSIX shell would (quotes and backslashes; no expansion).
/// `None` for an unterminated quote.
pub fn split_shell(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        x => cur.push(x),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            x @ ('"' | '\\' | '$' | '`') => cur.push(x),
                            '\n' => {}
                            x => {
                                cur.push('\\');
                                cur.push(x);
                            }
                        },
                        x => cur.push(x),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(x) => cur.push(x),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Some(out)
}
