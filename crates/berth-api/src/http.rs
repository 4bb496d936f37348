//! Response bodies and helpers: whole bodies, JSON, streamed bodies fed from a channel,
//! Docker's multiplexed stream frames, query strings.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use crate::{ApiError, API_VERSION};

/// The body of every response.
pub type Body = BoxBody<Bytes, std::io::Error>;
/// A response of this service.
pub type Resp = Response<Body>;

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A response with `status`, `Content-Type: application/json` and `v` as its body.
pub fn json<T: serde::Serialize>(status: u16, v: &T) -> Resp {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec());
    with_headers(status, "application/json", full(body))
}

/// A response with a status, a content type and a body, plus the headers Docker sends with
/// every response.
pub fn with_headers(status: u16, content_type: &str, body: Body) -> Resp {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if !content_type.is_empty() {
        if let Ok(v) = content_type.parse() {
            h.insert(hyper::header::CONTENT_TYPE, v);
        }
    }
    add_common_headers(h);
    r
}

/// `Api-Version`, `Server`, `Ostype` (as dockerd sends on every response).
pub fn add_common_headers(h: &mut hyper::HeaderMap) {
    h.insert(
        "Api-Version",
        hyper::header::HeaderValue::from_static(API_VERSION),
    );
    h.insert("Ostype", hyper::header::HeaderValue::from_static("linux"));
    if let Ok(v) = format!("berth/{} (linux)", env!("CARGO_PKG_VERSION")).parse() {
        h.insert(hyper::header::SERVER, v);
    }
    h.insert(
        "Docker-Experimental",
        hyper::header::HeaderValue::from_static("false"),
    );
}

/// No content (204).
pub fn no_content() -> Resp {
    with_headers(204, "", empty())
}

/// Docker's error response: `{"message": "…"}` with the error's status.
pub fn error(e: &ApiError) -> Resp {
    json(e.status(), &serde_json::json!({ "message": e.to_string() }))
}

/// A body fed by a channel: each message is one chunk; the body ends when every sender is
/// dropped.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A streamed body and the sender that feeds it.
pub fn channel() -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel(64);
    (tx, ChannelBody { rx }.boxed())
}

/// Docker's multiplexed stream frame: 1 byte stream (0 stdin, 1 stdout, 2 stderr), 3 zero
/// bytes, the payload length as 4 bytes big-endian, then the payload. Payloads longer than
/// 4 GiB are split.
pub fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    for chunk in data.chunks(u32::MAX as usize) {
        let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        out.push(stream);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// A `std::io::Write` that sends what is written into a channel, framed for `stream` when
/// `multiplex`, raw otherwise. Writes block (it is used from blocking threads); a closed
/// channel (client gone) is a `BrokenPipe` error.
pub struct ChannelWriter {
    /// Where the bytes go.
    pub tx: mpsc::Sender<Bytes>,
    /// Docker's stream number (1 stdout, 2 stderr).
    pub stream: u8,
    /// Frame the bytes (no terminal) or not.
    pub multiplex: bool,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let data = if self.multiplex {
            frame(self.stream, buf)
        } else {
            buf.to_vec()
        };
        self.tx
            .blocking_send(Bytes::from(data))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A blocking `std::io::Read` over a request body: a task on the runtime forwards the body's
/// chunks through a small channel, the reader (on a worker thread) takes them in order. A
/// failed body read is an `UnexpectedEof` error for the reader.
pub struct BodyReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl BodyReader {
    /// Start forwarding `body` (called on the runtime).
    pub fn new(mut body: hyper::body::Incoming) -> BodyReader {
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(fr) = body.frame().await {
                let item = match fr {
                    Ok(f) => match f.into_data() {
                        Ok(d) => Ok(d),
                        Err(_) => continue,
                    },
                    Err(e) => Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("reading the request body: {e}"),
                    )),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        BodyReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// Parsed query string (`a=1&b=x`, percent-decoded); the last of repeated keys wins in
/// [`Query::get`], [`Query::all`] gives every value.
#[derive(Debug, Default)]
pub struct Query(pub HashMap<String, String>, pub Vec<(String, String)>);

impl Query {
    /// Parse the query part of a URI.
    pub fn parse(q: Option<&str>) -> Query {
        let mut m = HashMap::new();
        let mut pairs = Vec::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.insert(decode(k), decode(v));
            pairs.push((decode(k), decode(v)));
        }
        Query(m, pairs)
    }

    /// Every value of a repeated key (`names=a&names=b`).
    pub fn all(&self, k: &str) -> Vec<String> {
        self.1
            .iter()
            .filter(|(pk, _)| pk == k)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The value of `k`, if present.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// A boolean parameter as Docker reads them: `1`, `true`, `True` are true; absent is
    /// `default`.
    pub fn bool(&self, k: &str, default: bool) -> bool {
        match self.get(k) {
            None => default,
            Some(v) => matches!(v, "1" | "true" | "True" | "TRUE" | "yes"),
        }
    }

    /// An integer parameter; absent or empty is `None`; anything else that is not a number
    /// is a 400.
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::BadParameter(format!("invalid value for {k}: {v:?} is not a number"))
            }),
        }
    }

    /// Docker's `filters` parameter: `{"key": ["v", …]}` or the old `{"key": {"v": true}}`.
    pub fn filters(&self) -> Result<Vec<(String, Vec<String>)>, ApiError> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(Vec::new());
        };
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::BadParameter(format!("invalid filters {raw:?}: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| ApiError::BadParameter(format!("invalid filters {raw:?}")))?;
        let mut out = Vec::new();
        for (k, vals) in obj {
            let list = match vals {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                serde_json::Value::Object(o) => o
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(true))
                    .map(|(s, _)| s.clone())
                    .collect(),
                serde_json::Value::String(s) => vec![s.clone()],
                _ => Vec::new(),
            };
            out.push((k.clone(), list));
        }
        Ok(out)
    }
}

/// Percent-decoding of a query component (`+` is a space).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answer a request whose output streams (attach, exec start): with `Upgrade: tcp` the
/// connection is hijacked (101 Switching Protocols, then raw bytes both ways: what comes from
/// `out` goes to the client, what the client sends goes to `stdin`); without it, a 200
/// response streams `out` and stdin is closed.
pub fn hijack(
    req: &mut hyper::Request<hyper::body::Incoming>,
    content_type: &str,
    out: mpsc::Receiver<Bytes>,
    stdin: Option<std::os::fd::OwnedFd>,
) -> Resp {
    hijack_with_keys(req, content_type, out, stdin, None)
}

/// [`hijack`] watching the client's input for a detach sequence (`detachKeys`, with a
/// terminal): once seen, the input stops and the connection ends; the container keeps
/// running.
pub fn hijack_with_keys(
    req: &mut hyper::Request<hyper::body::Incoming>,
    content_type: &str,
    out: mpsc::Receiver<Bytes>,
    stdin: Option<std::os::fd::OwnedFd>,
    keys: Option<berth_engine::detach::DetachKeys>,
) -> Resp {
    let wants_upgrade = req
        .headers()
        .get(hyper::header::UPGRADE)
        .is_some_and(|v| v.to_str().unwrap_or("").eq_ignore_ascii_case("tcp"));
    if !wants_upgrade {
        return with_headers(200, content_type, ChannelBody { rx: out }.boxed());
    }
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("upgrade: {e}");
                return;
            }
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let (mut rd, mut wr) = tokio::io::split(io);
        let mut out = out;
        let detached = std::sync::Arc::new(tokio::sync::Notify::new());
        let detached_tx = detached.clone();
        let mut matcher = keys.map(|k| k.matcher());
        let stdin_task = tokio::spawn(async move {
            let Some(fd) = stdin else {
                // Keep reading so a client's half-close is seen; discard the bytes.
                let mut buf = vec![0u8; 8192];
                while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
                return;
            };
            let (tx, mut rx) = mpsc::channel::<Bytes>(16);
            let writer = std::thread::spawn(move || {
                use std::io::Write;
                let mut f = std::fs::File::from(fd);
                while let Some(b) = rx.blocking_recv() {
                    if f.write_all(&b).is_err() {
                        break;
                    }
                }
            });
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let (data, detach) = match matcher.as_mut() {
                            Some(m) => {
                                let mut fwd = Vec::with_capacity(n);
                                let d = m.feed(&buf[..n], &mut fwd);
                                (Bytes::from(fwd), d)
                            }
                            None => (Bytes::copy_from_slice(&buf[..n]), false),
                        };
                        if !data.is_empty() && tx.send(data).await.is_err() {
                            break;
                        }
                        if detach {
                            detached_tx.notify_one();
                            break;
                        }
                    }
                }
            }
            drop(tx);
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        });
        loop {
            let b = tokio::select! {
                b = out.recv() => b,
                _ = detached.notified() => None,
            };
            let Some(b) = b else { break };
            if wr.write_all(&b).await.is_err() {
                break;
            }
            let _ = wr.flush().await;
        }
        let _ = wr.shutdown().await;
        stdin_task.abort();
    });
    let mut r = with_headers(101, content_type, empty());
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("tcp"),
    );
    r
}

/// Content type of a container's or exec's output: raw with a terminal, else multiplexed.
pub fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Relay a blocking reader (a pipe) into `tx`, framed as `stream` unless `tty`; ends at EOF,
/// on a read error or when the receiver is gone. Runs on its own thread.
pub fn pump(
    fd: std::os::fd::OwnedFd,
    tx: mpsc::Sender<Bytes>,
    stream: u8,
    tty: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::Read;
        let mut f = std::fs::File::from(fd);
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let data = if tty {
                        buf[..n].to_vec()
                    } else {
                        frame(stream, &buf[..n])
                    };
                    if tx.blocking_send(Bytes::from(data)).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_stream_and_big_endian_length() {
        assert_eq!(frame(1, b"hi"), vec![1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
        assert_eq!(frame(2, b""), Vec::<u8>::new());
    }

    #[test]
    fn query_decoding_and_filters() {
        let q = Query::parse(Some(
            "all=1&filters=%7B%22status%22%3A%5B%22exited%22%5D%7D&name=a+b&t=",
        ));
        assert!(q.bool("all", false));
        assert_eq!(q.get("name"), Some("a b"));
        assert_eq!(q.int("t").unwrap(), None);
        assert_eq!(
            q.filters().unwrap(),
            vec![("status".to_string(), vec!["exited".to_string()])]
        );
        let old = Query::parse(Some("filters=%7B%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%7D"));
        assert_eq!(
            old.filters().unwrap(),
            vec![("label".to_string(), vec!["a=b".to_string()])]
        );
        assert_eq!(decode("%2Fx%zz"), "/x%zz");
    }
}
