//! Retrying transient registry failures.
//!
//! Transient: HTTP 429 (rate limited), 502, 503 and 504, and connections that reset, time out
//! or end before the body is complete once the registry was reached. Each is retried with
//! exponential backoff (0.5 s, 1 s, 2 s, … at most 20 s a wait), waiting at least what a
//! `Retry-After` header asks, for at most [`RetryPolicy::max_attempts`] tries and
//! [`RetryPolicy::max_wait`] of waiting in total; a `Retry-After` beyond what is left fails at
//! once, saying when to come back. Everything else (401, 403, 404, bad content, refused or
//! unresolvable addresses, TLS) fails at the first answer.

use std::time::{Duration, SystemTime};

use crate::error::RegistryError;

/// Bounds of the retries of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first one included (default 6).
    pub max_attempts: u32,
    /// Total time spent waiting between tries (default 60 s).
    pub max_wait: Duration,
    /// The first backoff (default 500 ms), doubled after each failure.
    pub first_delay: Duration,
    /// The longest single wait (default 20 s), `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            max_wait: Duration::from_secs(60),
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
        }
    }
}

/// What to do after a failed try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then try again.
    Retry(Duration),
    /// Stop: out of tries, or of time (the reason, for the error message).
    GiveUp(String),
}

impl RetryPolicy {
    /// Decide after `failures` failed tries (1 after the first), having waited `waited` so
    /// far, when the registry asked for `retry_after`.
    pub fn next(&self, failures: u32, waited: Duration, retry_after: Option<Duration>) -> Decision {
        if failures >= self.max_attempts {
            return Decision::GiveUp(format!("gave up after {failures} attempts"));
        }
        let left = self.max_wait.saturating_sub(waited);
        let backoff = self
            .first_delay
            .saturating_mul(1u32 << (failures.saturating_sub(1)).min(16))
            .min(self.max_delay);
        if let Some(ra) = retry_after {
            if ra > left || ra > self.max_delay {
                return Decision::GiveUp(format!(
                    "the registry asks to wait {} s before trying again",
                    ra.as_secs().max(1)
                ));
            }
        }
        let delay = backoff.max(retry_after.unwrap_or_default());
        if delay > left {
            return Decision::GiveUp(format!(
                "gave up after {failures} attempts in {} s",
                waited.as_secs()
            ));
        }
        Decision::Retry(delay)
    }
}

/// HTTP statuses worth retrying: 429, 502, 503, 504.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Parse a `Retry-After` value: delay-seconds or an HTTP-date (relative to `now`; a date in
/// the past means no wait).
pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let when = httpdate(v)?;
    Some(when.duration_since(now).unwrap_or_default())
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form HTTP/1.1 senders must use.
fn httpdate(v: &str) -> Option<SystemTime> {
    let mut w = v.split_whitespace();
    let _wday = w.next()?;
    let day: u64 = w.next()?.parse().ok()?;
    let month = match w.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = w.next()?.parse().ok()?;
    let mut hms = w.next()?.split(':').map(|x| x.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if w.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::try_from(day).ok()? - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Whether an error is worth another try, and the wait the registry asked for.
pub fn transient(e: &RegistryError) -> Option<Option<Duration>> {
    match e {
        RegistryError::Unavailable { retry_after, .. } => Some(*retry_after),
        RegistryError::Connect { .. } => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_in_tries_and_time() {
        let p = RetryPolicy::default();
        let z = Duration::ZERO;
        assert_eq!(
            p.next(1, z, None),
            Decision::Retry(Duration::from_millis(500))
        );
        assert_eq!(p.next(2, z, None), Decision::Retry(Duration::from_secs(1)));
        assert_eq!(p.next(3, z, None), Decision::Retry(Duration::from_secs(2)));
        // Retry-After wins when longer than the backoff.
        assert_eq!(
            p.next(1, z, Some(Duration::from_secs(3))),
            Decision::Retry(Duration::from_secs(3))
        );
        assert_eq!(
            p.next(3, z, Some(Duration::from_secs(1))),
            Decision::Retry(Duration::from_secs(2))
        );
        // Out of tries.
        assert!(matches!(p.next(6, z, None), Decision::GiveUp(m) if m.contains("6 attempts")));
        // Out of time.
        assert!(matches!(
            p.next(5, Duration::from_secs(55), None),
            Decision::GiveUp(m) if m.contains("55 s")
        ));
        // A Retry-After beyond the budget fails at once, saying so.
        assert!(matches!(
            p.next(1, z, Some(Duration::from_secs(3600))),
            Decision::GiveUp(m) if m.contains("wait 3600 s")
        ));
        // The longest single wait is capped.
        let q = RetryPolicy {
            max_attempts: 40,
            max_wait: Duration::from_secs(1000),
            ..p
        };
        assert_eq!(
            q.next(30, z, None),
            Decision::Retry(Duration::from_secs(20))
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 06 Nov 1994 08:49:37
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", SystemTime::UNIX_EPOCH),
            Some(Duration::ZERO)
        );
        assert_eq!(
            httpdate("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(951_825_600))
        );
        for bad in [
            "",
            "soon",
            "-1",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn which_errors_are_transient() {
        for s in [429, 502, 503, 504] {
            assert!(is_transient_status(s));
        }
        for s in [400, 401, 403, 404, 405, 500, 501] {
            assert!(!is_transient_status(s), "{s}");
        }
        let e = RegistryError::Unavailable {
            status: 429,
            message: "toomanyrequests".into(),
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(transient(&e), Some(Some(Duration::from_secs(1))));
        assert_eq!(
            transient(&RegistryError::Unauthorized {
                message: "x".into()
            }),
            None
        );
        assert_eq!(
            transient(&RegistryError::Registry {
                status: 404,
                message: "x".into()
            }),
            None
        );
    }
}
