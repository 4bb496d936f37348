//! The `journald` log driver: each line of a container's output becomes one journal entry,
//! sent as a datagram in systemd's native protocol (`KEY=value` lines; a value holding a
//! newline is sent as `KEY\n`, its length as 64-bit little endian, the bytes, `\n`) to
//! `/run/systemd/journal/socket`, with Docker's fields: `MESSAGE`, `PRIORITY` (6 for stdout,
//! 3 for stderr), `CONTAINER_ID` (12 hex digits), `CONTAINER_ID_FULL`, `CONTAINER_NAME`,
//! `CONTAINER_TAG` and `SYSLOG_IDENTIFIER` (the `tag` option, default the short id),
//! `IMAGE_NAME`. Lines longer than [`MAX_LINE`] bytes are split into several entries marked
//! `CONTAINER_PARTIAL_MESSAGE=true`, as Docker does.
//!
//! The protocol is a few lines of framing over a Unix datagram socket, so no crate is used
//! (`systemd-journal-logger` and `libsystemd` implement the same framing but pull in the `log`
//! facade or a whole systemd binding).

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where systemd-journald listens for native-protocol datagrams.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// Environment variable overriding [`SOCKET`] (tests, hosts with journald elsewhere).
pub const SOCKET_ENV: &str = "BERTH_JOURNALD_SOCKET";

/// Longest message sent as one entry, in bytes (Docker's log buffer size, 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// The journal socket this host uses ([`SOCKET_ENV`] or [`SOCKET`]).
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SOCKET))
}

/// Whether a journal listens on this host (its socket exists).
pub fn available() -> bool {
    socket_path().exists()
}

/// Append one field in the native protocol's framing.
pub fn push_field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value);
    } else {
        out.push(b'=');
        out.extend_from_slice(value);
    }
    out.push(b'\n');
}

/// A connection to the journal for one container's output.
#[derive(Debug)]
pub struct Journal {
    sock: UnixDatagram,
    target: PathBuf,
    /// The fields every entry carries (container id, name, tag, image).
    common: Vec<u8>,
    /// Unfinished lines of stdout and stderr.
    carry: [Vec<u8>; 2],
}

impl Journal {
    /// Prepare entries for container `id` (64 hex digits) named `name`, from image `image`;
    /// `tag` is the `tag` log option (`{{.ID}}`, `{{.FullID}}`, `{{.Name}}` and
    /// `{{.ImageName}}` are replaced), the short id when `None`.
    ///
    /// Errors: the socket cannot be created.
    pub fn open(
        socket: &Path,
        id: &str,
        name: &str,
        image: &str,
        tag: Option<&str>,
    ) -> std::io::Result<Journal> {
        let short = &id[..id.len().min(12)];
        let tag = tag
            .unwrap_or("{{.ID}}")
            .replace("{{.ID}}", short)
            .replace("{{.FullID}}", id)
            .replace("{{.Name}}", name)
            .replace("{{.ImageName}}", image);
        let mut common = Vec::new();
        push_field(&mut common, "CONTAINER_ID", short.as_bytes());
        push_field(&mut common, "CONTAINER_ID_FULL", id.as_bytes());
        push_field(&mut common, "CONTAINER_NAME", name.as_bytes());
        push_field(&mut common, "CONTAINER_TAG", tag.as_bytes());
        push_field(&mut common, "IMAGE_NAME", image.as_bytes());
        push_field(&mut common, "SYSLOG_IDENTIFIER", tag.as_bytes());
        Ok(Journal {
            sock: UnixDatagram::unbound()?,
            target: socket.to_path_buf(),
            common,
            carry: [Vec::new(), Vec::new()],
        })
    }

    /// The datagram of one entry.
    pub fn entry(&self, stream: &str, message: &[u8], partial: bool) -> Vec<u8> {
        let mut d = Vec::with_capacity(self.common.len() + message.len() + 64);
        push_field(&mut d, "MESSAGE", message);
        push_field(
            &mut d,
            "PRIORITY",
            if stream == "stderr" { b"3" } else { b"6" },
        );
        d.extend_from_slice(&self.common);
        if partial {
            push_field(&mut d, "CONTAINER_PARTIAL_MESSAGE", b"true");
        }
        d
    }

    fn send(&self, stream: &str, message: &[u8], partial: bool) {
        // A full or absent journal drops the entry (Docker's journald driver does the same
        // rather than block the container); the local cache keeps it.
        let _ = self
            .sock
            .send_to(&self.entry(stream, message, partial), &self.target);
    }

    /// Log `data` read from `stream` (`stdout` or `stderr`): one entry per complete line.
    pub fn write(&mut self, stream: &str, data: &[u8]) {
        let i = usize::from(stream == "stderr");
        let mut carry = std::mem::take(&mut self.carry[i]);
        carry.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = carry[start..].iter().position(|b| *b == b'\n') {
            let line = &carry[start..start + nl];
            for (k, chunk) in line.chunks(MAX_LINE).enumerate() {
                let last = (k + 1) * MAX_LINE >= line.len();
                self.send(stream, chunk, !last);
            }
            if line.is_empty() {
                self.send(stream, b"", false);
            }
            start += nl + 1;
        }
        let mut rest = carry.split_off(start);
        while rest.len() >= MAX_LINE {
            let tail = rest.split_off(MAX_LINE);
            self.send(stream, &rest, true);
            rest = tail;
        }
        self.carry[i] = rest;
    }

    /// The stream ended: send an unfinished last line.
    pub fn finish(&mut self, stream: &str) {
        let i = usize::from(stream == "stderr");
        let rest = std::mem::take(&mut self.carry[i]);
        if !rest.is_empty() {
            self.send(stream, &rest, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(d: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < d.len() {
            let end = d[i..]
                .iter()
                .position(|b| *b == b'\n' || *b == b'=')
                .unwrap()
                + i;
            let key = String::from_utf8(d[i..end].to_vec()).unwrap();
            if d[end] == b'=' {
                let nl = d[end..].iter().position(|b| *b == b'\n').unwrap() + end;
                out.push((key, d[end + 1..nl].to_vec()));
                i = nl + 1;
            } else {
                let len = u64::from_le_bytes(d[end + 1..end + 9].try_into().unwrap());
                let len = usize::try_from(len).unwrap();
                out.push((key, d[end + 9..end + 9 + len].to_vec()));
                i = end + 9 + len + 1;
            }
        }
        out
    }

    #[test]
    fn entries_carry_dockers_fields() {
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("journal.sock");
        let server = UnixDatagram::bind(&sock_path).unwrap();
        let id = "ab".repeat(32);
        let mut j = Journal::open(&sock_path, &id, "web", "nginx:1", None).unwrap();
        j.write("stdout", b"hello\nwor");
        j.write("stdout", b"ld\n");
        j.write("stderr", b"oops");
        j.finish("stderr");
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        for _ in 0..3 {
            let n = server.recv(&mut buf).unwrap();
            got.push(fields(&buf[..n]));
        }
        let get = |e: &Vec<(String, Vec<u8>)>, k: &str| {
            e.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(get(&got[0], "MESSAGE").as_deref(), Some("hello"));
        assert_eq!(get(&got[1], "MESSAGE").as_deref(), Some("world"));
        assert_eq!(get(&got[2], "MESSAGE").as_deref(), Some("oops"));
        assert_eq!(get(&got[0], "PRIORITY").as_deref(), Some("6"));
        assert_eq!(get(&got[2], "PRIORITY").as_deref(), Some("3"));
        assert_eq!(get(&got[0], "CONTAINER_ID").as_deref(), Some(&id[..12]));
        assert_eq!(
            get(&got[0], "CONTAINER_ID_FULL").as_deref(),
            Some(id.as_str())
        );
        assert_eq!(get(&got[0], "CONTAINER_NAME").as_deref(), Some("web"));
        assert_eq!(
            get(&got[0], "SYSLOG_IDENTIFIER").as_deref(),
            Some(&id[..12])
        );
        assert_eq!(get(&got[0], "IMAGE_NAME").as_deref(), Some("nginx:1"));
    }

    #[test]
    fn framing_and_long_lines() {
        let mut d = Vec::new();
        push_field(&mut d, "MESSAGE", b"a\nb");
        assert_eq!(d, b"MESSAGE\n\x03\0\0\0\0\0\0\0a\nb\n");
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("j");
        let server = UnixDatagram::bind(&sock_path).unwrap();
        let mut j = Journal::open(&sock_path, "c1", "n", "i", Some("app/{{.Name}}")).unwrap();
        let long = vec![b'x'; MAX_LINE + 10];
        j.write("stdout", &long);
        j.write("stdout", b"\n");
        let mut buf = vec![0u8; 65536];
        let n = server.recv(&mut buf).unwrap();
        let e = fields(&buf[..n]);
        assert!(e.contains(&("CONTAINER_PARTIAL_MESSAGE".into(), b"true".to_vec())));
        assert!(e.contains(&("SYSLOG_IDENTIFIER".into(), b"app/n".to_vec())));
        let n = server.recv(&mut buf).unwrap();
        let e = fields(&buf[..n]);
        assert!(e.contains(&("MESSAGE".into(), vec![b'x'; 10])));
        assert!(!e.iter().any(|(k, _)| k == "CONTAINER_PARTIAL_MESSAGE"));
    }
}
