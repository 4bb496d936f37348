//! Docker's json-file log format, one encoder for every writer in berth (the in-process
//! monitor in `berth-engine` and the static `berth-supervise`): one JSON object per line,
//! `{"log":"…","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`.
//!
//! Output is split into one entry per line (a trailing partial line is its own entry). Text is
//! escaped as a JSON string; bytes that are not UTF-8 become U+FFFD. A UTF-8 sequence split
//! across two reads is not invalid: writers keep the incomplete tail of a read
//! ([`utf8_incomplete_tail`]) and prepend it to the next one, so the character survives.
//!
//! `no_std` and without dependencies, so the static supervisor can use it.

#![no_std]

/// Where encoded bytes go.
pub trait Sink {
    /// Append `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

/// For a UTF-8 lead byte: (sequence length, allowed range of the second byte).
fn utf8_lead(b: u8) -> Option<(usize, u8, u8)> {
    Some(match b {
        0xC2..=0xDF => (2, 0x80, 0xBF),
        0xE0 => (3, 0xA0, 0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (3, 0x80, 0xBF),
        0xED => (3, 0x80, 0x9F),
        0xF0 => (4, 0x90, 0xBF),
        0xF1..=0xF3 => (4, 0x80, 0xBF),
        0xF4 => (4, 0x80, 0x8F),
        _ => return None,
    })
}

/// Length of the valid multi-byte sequence at the start of `s`, or 0 if it is invalid or
/// incomplete.
fn utf8_seq(s: &[u8]) -> usize {
    let Some((need, lo, hi)) = s.first().and_then(|&b| utf8_lead(b)) else {
        return 0;
    };
    if s.len() < need || s[1] < lo || s[1] > hi {
        return 0;
    }
    if s[2..need].iter().all(|&c| (0x80..=0xBF).contains(&c)) {
        need
    } else {
        0
    }
}

/// Number of bytes (0-3) at the end of `s` that begin a valid but incomplete UTF-8 sequence,
/// to be completed by the next read.
pub fn utf8_incomplete_tail(s: &[u8]) -> usize {
    let len = s.len();
    let mut i = len;
    while i > 0 && len - i < 3 {
        i -= 1;
        let b = s[i];
        if b < 0x80 {
            return 0;
        }
        if b >= 0xC0 {
            let Some((need, lo, hi)) = utf8_lead(b) else {
                return 0;
            };
            let have = len - i;
            if have >= need {
                return 0;
            }
            if have >= 2 && (s[i + 1] < lo || s[i + 1] > hi) {
                return 0;
            }
            return have;
        }
    }
    0
}

/// Upper bound of the encoded size of one entry with `text_len` bytes of text (bytes).
pub fn entry_size_bound(text_len: usize) -> usize {
    text_len.saturating_mul(6).saturating_add(96)
}

/// Write `text` escaped as the inside of a JSON string.
pub fn escape<S: Sink + ?Sized>(out: &mut S, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            8 => Some(b"\\b"),
            12 => Some(b"\\f"),
            _ => None,
        };
        if let Some(e) = esc {
            out.put(&text[start..i]);
            out.put(e);
            i += 1;
            start = i;
        } else if b < 0x20 {
            out.put(&text[start..i]);
            out.put(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
            i += 1;
            start = i;
        } else if b >= 0x80 {
            let n = utf8_seq(&text[i..]);
            if n == 0 {
                out.put(&text[start..i]);
                out.put(b"\\ufffd");
                i += 1;
                start = i;
            } else {
                i += n;
            }
        } else {
            i += 1;
        }
    }
    out.put(&text[start..]);
}

/// One log entry for `text` (one line, usually ending in `\n`) of `stream` (`stdout`,
/// `stderr`) at `time` (RFC 3339 with nanoseconds, UTC).
pub fn entry<S: Sink + ?Sized>(out: &mut S, text: &[u8], stream: &[u8], time: &[u8]) {
    out.put(b"{\"log\":\"");
    escape(out, text);
    out.put(b"\",\"stream\":\"");
    out.put(stream);
    out.put(b"\",\"time\":\"");
    out.put(time);
    out.put(b"\"}\n");
}

/// Entries for a chunk of one stream, all with the same `time`: one per line, a trailing
/// partial line is its own entry. The caller has held back an incomplete UTF-8 tail.
pub fn chunk<S: Sink + ?Sized>(out: &mut S, data: &[u8], stream: &[u8], time: &[u8]) {
    let mut start = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            entry(out, &data[start..=i], stream, time);
            start = i + 1;
        }
    }
    if start < data.len() {
        entry(out, &data[start..], stream, time);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;
    use std::vec::Vec;

    use super::*;

    struct V(Vec<u8>);
    impl Sink for V {
        fn put(&mut self, b: &[u8]) {
            self.0.extend_from_slice(b);
        }
    }

    fn enc(data: &[u8]) -> String {
        let mut v = V(Vec::new());
        chunk(&mut v, data, b"stdout", b"T");
        String::from_utf8(v.0).unwrap()
    }

    #[test]
    fn lines_become_entries() {
        assert_eq!(
            enc(b"a\nb"),
            "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"T\"}\n{\"log\":\"b\",\"stream\":\"stdout\",\"time\":\"T\"}\n"
        );
        assert_eq!(enc(b""), "");
    }

    #[test]
    fn escapes_and_invalid_bytes() {
        assert!(enc(b"\"\\\t\x01\x1b").contains(r#""log":"\"\\\t\u0001\u001b""#));
        assert!(enc("é€😀".as_bytes()).contains("é€😀"));
        assert!(enc(b"\xff\xc3").contains(r#"\ufffd\ufffd"#));
        // An overlong encoding and a surrogate are invalid too.
        assert!(enc(b"\xc0\xaf\xed\xa0\x80").matches(r#"\ufffd"#).count() >= 2);
    }

    #[test]
    fn a_sequence_split_across_reads_survives_with_the_tail_carried() {
        let text = "x€y".as_bytes();
        for cut in 1..text.len() {
            let (a, b) = text.split_at(cut);
            let tail = utf8_incomplete_tail(a);
            let mut first = V(Vec::new());
            chunk(&mut first, &a[..a.len() - tail], b"stdout", b"T");
            let mut joined: Vec<u8> = a[a.len() - tail..].to_vec();
            joined.extend_from_slice(b);
            let mut second = V(Vec::new());
            chunk(&mut second, &joined, b"stdout", b"T");
            let all = String::from_utf8([first.0, second.0].concat()).unwrap();
            assert!(!all.contains("fffd"), "cut at {cut}: {all}");
            assert!(all.contains('€') || cut == 0, "cut at {cut}: {all}");
        }
    }

    #[test]
    fn incomplete_tails() {
        assert_eq!(utf8_incomplete_tail(b"abc"), 0);
        assert_eq!(utf8_incomplete_tail(b"a\xe2\x82"), 2);
        assert_eq!(utf8_incomplete_tail(b"a\xe2"), 1);
        assert_eq!(utf8_incomplete_tail("a€".as_bytes()), 0);
        assert_eq!(utf8_incomplete_tail(b"a\xf0\x9f\x98"), 3);
        assert_eq!(utf8_incomplete_tail(b"\xff"), 0);
    }
}
