//! Small helpers: C strings, decimal numbers, RFC 3339 timestamps.

use crate::*;

/// The bytes of a NUL-terminated string (without the NUL).
pub(crate) fn cstr(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    // SAFETY: `p` comes from argv and points to a NUL-terminated string that lives for the
    // whole process. The volatile read keeps LLVM from turning the loop into `strlen`.
    unsafe {
        while core::ptr::read_volatile(p.add(n)) != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}

pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(if neg { -v } else { v })
}

/// Formats `v` in decimal into `buf`, NUL-terminated; returns the digits (without the NUL).
pub(crate) fn fmt_u64(mut v: u64, buf: &mut [u8; 24]) -> &[u8] {
    let mut tmp = [0u8; 20];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = tmp[n - 1 - i];
    }
    buf[n] = 0;
    &buf[..n]
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// CLOCK_REALTIME as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (30 bytes).
pub(crate) fn rfc3339_now(out: &mut [u8; 30]) {
    let ts = clock(CLOCK_REALTIME);
    let days = ts.sec.div_euclid(86_400);
    let secs = ts.sec.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u64;
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, u64::from(mo));
    put(8, 2, u64::from(d));
    put(11, 2, (secs / 3600) as u64);
    put(14, 2, (secs / 60 % 60) as u64);
    put(17, 2, (secs % 60) as u64);
    put(20, 9, ts.nsec.clamp(0, 999_999_999) as u64);
    out[4] = b'-';
    out[7] = b'-';
    out[10] = b'T';
    out[13] = b':';
    out[16] = b':';
    out[19] = b'.';
    out[29] = b'Z';
}
