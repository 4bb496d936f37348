//! Registry answers as errors: OCI error documents, transient statuses and `Retry-After`.

use super::*;

/// The `Retry-After` of an answer, if it has a readable one.
pub(crate) fn retry_after_of(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry::parse_retry_after(v, std::time::SystemTime::now()))
}

/// `750 ms`, `1 s`, `12 s`.
pub(crate) fn human_delay(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs())
    }
}

/// Turn an error response (and its OCI error document) into an error: transient statuses
/// (429, 502, 503, 504) become [`RegistryError::Unavailable`] with their `Retry-After`.
pub async fn error_from_response(resp: Response) -> RegistryError {
    let status = resp.status();
    let retry_after = retry_after_of(&resp);
    let body = read_limited(resp, 64 << 10, "error document", "")
        .await
        .unwrap_or_default();
    let message = error_message(status, &body);
    if status == StatusCode::UNAUTHORIZED {
        // A HEAD (blob checks of a push) or a terse registry sends no body: say what a 401
        // means, as the registry's own document does.
        let m = if body.iter().all(u8::is_ascii_whitespace) {
            "authentication required".to_string()
        } else {
            message
                .strip_prefix("unauthorized: ")
                .unwrap_or(&message)
                .to_string()
        };
        return RegistryError::Unauthorized { message: m };
    }
    if retry::is_transient_status(status.as_u16()) {
        return RegistryError::Unavailable {
            status: status.as_u16(),
            message,
            retry_after,
        };
    }
    RegistryError::Registry {
        status: status.as_u16(),
        message,
    }
}

/// Render an OCI error document (`{"errors":[{"code","message","detail"}]}`) or a plain body.
pub fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        code: Option<String>,
        message: Option<String>,
    }
    #[derive(Deserialize)]
    struct Doc {
        errors: Vec<E>,
    }
    if let Ok(d) = serde_json::from_slice::<Doc>(body) {
        let parts: Vec<String> = d
            .errors
            .iter()
            .map(|e| {
                let code = e
                    .code
                    .as_deref()
                    .unwrap_or("error")
                    .to_ascii_lowercase()
                    .replace('_', " ");
                match e.message.as_deref().filter(|m| !m.is_empty()) {
                    Some(m) => format!("{code}: {m}"),
                    None => code,
                }
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let line: String = line.chars().take(200).collect();
    let reason = status.canonical_reason().unwrap_or("").to_ascii_lowercase();
    if line.is_empty() {
        format!("registry answered {} {reason}", status.as_u16())
    } else {
        format!("registry answered {} {reason}: {line}", status.as_u16())
    }
}
