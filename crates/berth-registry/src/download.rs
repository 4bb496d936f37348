//! Plain HTTP(S) downloads as blocking readers: the `URL` source of `berth import URL` and of
//! the Docker API's `POST /images/create?fromSrc=URL` (`docker import URL`), read as it
//! arrives (never held whole in memory).

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver};

use crate::{RegistryError, Result};

/// Largest download `berth import URL` and `docker import URL` take, in bytes (as sent,
/// possibly compressed).
pub const MAX_DOWNLOAD: u64 = 64 << 30;

/// Chunks in flight between the download thread and the reader.
const QUEUE: usize = 16;

/// Whether `s` is a URL [`open_url`] takes (`http://` or `https://`).
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// GET `url` (http or https, redirects followed, system CA roots) and return its body as a
/// blocking reader that fails once more than `max` bytes arrive. Returns after the response
/// headers: a connection failure or a non-2xx status is an error here, not later.
///
/// Errors: [`RegistryError::Download`] naming the URL and the cause; reads from the reader
/// fail with the cause when the transfer breaks off or exceeds `max` bytes.
pub fn open_url(url: &str, max: u64) -> Result<Box<dyn Read + Send>> {
    let fail = |detail: String| RegistryError::Download {
        url: url.to_string(),
        detail,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| fail(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(fail("only http and https URLs can be downloaded".into()));
    }
    let (tx, rx) = sync_channel::<std::result::Result<bytes::Bytes, String>>(QUEUE);
    let (head_tx, head_rx) = sync_channel::<std::result::Result<(), String>>(1);
    std::thread::Builder::new()
        .name("berth-download".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = head_tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let resp = match reqwest::Client::new().get(parsed).send().await {
                    Ok(r) if r.status().is_success() => r,
                    Ok(r) => {
                        let _ = head_tx.send(Err(format!("the server answered {}", r.status())));
                        return;
                    }
                    Err(e) => {
                        let _ = head_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                if head_tx.send(Ok(())).is_err() {
                    return;
                }
                let mut resp = resp;
                loop {
                    match resp.chunk().await {
                        Ok(Some(b)) => {
                            if tx.send(Ok(b)).is_err() {
                                return; // the reader is gone
                            }
                        }
                        Ok(None) => return,
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                    }
                }
            });
        })
        .map_err(|e| fail(e.to_string()))?;
    match head_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(fail(e)),
        Err(_) => return Err(fail("the download stopped".into())),
    }
    Ok(Box::new(Body {
        rx,
        buf: bytes::Bytes::new(),
        left: max,
    }))
}

/// The body of a download: chunks from the download thread.
struct Body {
    rx: Receiver<std::result::Result<bytes::Bytes, String>>,
    buf: bytes::Bytes,
    left: u64,
}

impl Read for Body {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    let n = u64::try_from(b.len()).unwrap_or(u64::MAX);
                    if n > self.left {
                        return Err(std::io::Error::other("the download is larger than allowed"));
                    }
                    self.left -= n;
                    self.buf = b;
                }
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                Err(_) => return Ok(0), // the sender finished: end of the body
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// A one-request HTTP server on loopback answering `status` with `body`.
    fn serve(status: &'static str, body: Vec<u8>) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut req);
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        });
        format!("http://{addr}/rootfs.tar")
    }

    #[test]
    fn reads_the_body_and_refuses_errors_and_oversize() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut got = Vec::new();
        open_url(&serve("200 OK", body.clone()), 1 << 20)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, body);
        let e = open_url(&serve("404 Not Found", vec![]), 1 << 20)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("404") && e.contains("cannot download"), "{e}");
        let mut r = open_url(&serve("200 OK", body), 1000).unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err());
        assert!(open_url("ftp://x/y", 10).is_err());
        assert!(is_url("https://a/b") && !is_url("/tmp/x.tar"));
    }
}
