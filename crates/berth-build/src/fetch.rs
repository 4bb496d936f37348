//! Downloads for `ADD <url>` (http and https, redirects followed, size bounded).

use std::time::Duration;

/// Largest download ADD accepts, in bytes.
pub const MAX_DOWNLOAD: u64 = 1 << 30;

/// GET `url`; the body, or a one-line reason.
pub(crate) fn get(url: &str) -> Result<Vec<u8>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
        let mut resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("download failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("download failed: HTTP status {}", resp.status()));
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("download failed: {e}"))?
        {
            out.extend_from_slice(&chunk);
            if out.len() as u64 > MAX_DOWNLOAD {
                return Err(format!(
                    "the download is larger than {MAX_DOWNLOAD} bytes; fetch it with RUN instead"
                ));
            }
        }
        Ok(out)
    })
}
