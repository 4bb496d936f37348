//! Docker's human-readable durations and sizes (`go-units`' `HumanDuration`, `HumanSize`).

/// A duration in seconds as Docker words it (`Less than a second`, `1 second`, `About a
/// minute`, `3 hours`, `2 weeks`, …).
pub fn duration(secs: i64) -> String {
    let d = secs.max(0);
    match d {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{d} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", d / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", d / 3600),
        172_800..=1_209_599 => format!("{} days", d / 86400),
        1_209_600..=5_183_999 => format!("{} weeks", d / 604_800),
        5_184_000..=63_071_999 => format!("{} months", d / 2_592_000),
        _ => format!("{} years", d / 31_536_000),
    }
}

/// "x ago" for a Unix timestamp (seconds), as Docker's `CREATED` column prints it.
pub fn ago(ts: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    format!("{} ago", duration(now - ts))
}

/// A size in bytes with Docker's decimal units (`0B`, `4.26MB`, `1.2GB`; four significant
/// digits).
pub fn size(n: u64) -> String {
    let (v, unit) = decimal(n);
    format!("{}{unit}", sig4(v))
}

/// `n` bytes scaled to Docker's largest decimal unit that keeps the value at or above 1
/// (`(4.26, "MB")`).
fn decimal(n: u64) -> (f64, &'static str) {
    const U: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    // Precision loss above 2^53 bytes does not show in the digits Docker prints.
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < U.len() {
        v /= 1000.0;
        i += 1;
    }
    (v, U[i])
}

/// A size in bytes as the docker CLI's `images` SIZE and `ps -s` SIZE columns print it
/// (go-units' `HumanSizeWithPrecision(n, 3)`: `1.98MB`, `371MB`; three significant digits).
pub fn size3(n: u64) -> String {
    let (v, unit) = decimal(n);
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{unit}")
}

/// A size in bytes with binary units as `docker stats` prints memory (`1.5MiB`, `7.7GiB`).
pub fn binary_size(n: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", sig4(v), U[i])
}

/// Go's `%.4g` as go-units uses it: at most 4 significant digits, no trailing zeros.
fn sig4(v: f64) -> String {
    let digits = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::size(0), "0B");
        assert_eq!(super::size(999), "999B");
        assert_eq!(super::size(4_260_000), "4.26MB");
        assert_eq!(super::size(12_345_678), "12.35MB");
        assert_eq!(super::size(1_000_000), "1MB");
        assert_eq!(super::size3(1_982_256), "1.98MB");
        assert_eq!(super::size3(370_700_000), "371MB");
        assert_eq!(super::size3(5_000), "5kB");
        assert_eq!(super::size3(4), "4B");
        assert_eq!(super::binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(super::duration(90), "About a minute");
    }
}
