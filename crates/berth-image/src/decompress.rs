//! Compression of whole archives and root filesystem tars (`berth load`, `berth import`),
//! detected by content as Docker does (its `archive.DetectCompression`): gzip, bzip2, xz and
//! zstd, from files or standard input.
//!
//! Crates: `flate2` (zlib-rs) and `zstd` as for layers; `bzip2` (0.6, the pure-Rust
//! `libbz2-rs-sys` port of libbzip2, maintained by the Trifecta Tech Foundation) and `liblzma`
//! (the maintained fork of `xz2`, bundling xz-utils' liblzma).

use std::io::{self, Read};

/// A compression format of an archive stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCompression {
    /// Not compressed (or not a format berth knows: the tar reader then says what is wrong).
    None,
    /// gzip (`1f 8b`); concatenated members are read as one stream.
    Gzip,
    /// bzip2 (`BZh`); concatenated streams are read as one.
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`); concatenated streams are read as one.
    Xz,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

/// Bytes [`StreamCompression::detect`] needs to decide (fewer only for shorter streams).
pub const MAGIC_LEN: usize = 6;

impl StreamCompression {
    /// The format named by a stream's first bytes (at least [`MAGIC_LEN`] of them when the
    /// stream has that many).
    pub fn detect(head: &[u8]) -> StreamCompression {
        if head.starts_with(&[0x1f, 0x8b]) {
            StreamCompression::Gzip
        } else if head.starts_with(b"BZh") {
            StreamCompression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            StreamCompression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            StreamCompression::Zstd
        } else {
            StreamCompression::None
        }
    }

    /// `none`, `gzip`, `bzip2`, `xz` or `zstd`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamCompression::None => "none",
            StreamCompression::Gzip => "gzip",
            StreamCompression::Bzip2 => "bzip2",
            StreamCompression::Xz => "xz",
            StreamCompression::Zstd => "zstd",
        }
    }

    /// The layer compression with the same name, for formats layers may keep (none, gzip,
    /// zstd); `None` for bzip2 and xz, which OCI layers do not use.
    pub fn as_layer(self) -> Option<crate::Compression> {
        match self {
            StreamCompression::None => Some(crate::Compression::None),
            StreamCompression::Gzip => Some(crate::Compression::Gzip),
            StreamCompression::Zstd => Some(crate::Compression::Zstd),
            StreamCompression::Bzip2 | StreamCompression::Xz => None,
        }
    }

    /// A reader that decompresses `r` (which starts at the magic bytes).
    ///
    /// # Errors
    /// The decoder's setup error (zstd only).
    pub fn decoder<'a>(self, r: Box<dyn Read + 'a>) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            StreamCompression::None => r,
            StreamCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            StreamCompression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(r)),
            StreamCompression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(r)),
            StreamCompression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }
}

impl std::fmt::Display for StreamCompression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Read the first bytes of `r` and return the format they name and a reader that yields the
/// whole stream again (the bytes read included), still compressed.
///
/// # Errors
/// Read errors of `r`.
pub fn sniff<'a>(mut r: Box<dyn Read + 'a>) -> io::Result<(StreamCompression, Box<dyn Read + 'a>)> {
    let mut head = Vec::with_capacity(MAGIC_LEN);
    (&mut r).take(MAGIC_LEN as u64).read_to_end(&mut head)?;
    let comp = StreamCompression::detect(&head);
    Ok((comp, Box::new(io::Cursor::new(head).chain(r))))
}

/// Detect the format of `r` and return a reader of its decompressed content.
///
/// # Errors
/// Read errors of `r`, decoder setup errors.
pub fn decompressed<'a>(
    r: Box<dyn Read + 'a>,
) -> io::Result<(StreamCompression, Box<dyn Read + 'a>)> {
    let (comp, r) = sniff(r)?;
    Ok((comp, comp.decoder(r)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// `data` compressed in `comp` (two concatenated streams when `twice`).
    pub(crate) fn compress(data: &[u8], comp: StreamCompression) -> Vec<u8> {
        match comp {
            StreamCompression::None => data.to_vec(),
            StreamCompression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            StreamCompression::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            StreamCompression::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            StreamCompression::Zstd => zstd::encode_all(data, 1).unwrap(),
        }
    }

    const ALL: [StreamCompression; 5] = [
        StreamCompression::None,
        StreamCompression::Gzip,
        StreamCompression::Bzip2,
        StreamCompression::Xz,
        StreamCompression::Zstd,
    ];

    #[test]
    fn detects_and_decompresses_every_format() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for comp in ALL {
            let blob = compress(&data, comp);
            assert_eq!(StreamCompression::detect(&blob), comp, "{comp}");
            let (got, mut r) = decompressed(Box::new(&blob[..])).unwrap();
            assert_eq!(got, comp);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert!(out == data, "{comp}: content differs");
            // Concatenated streams read as one (as `cat a.xz b.xz` and pigz/pbzip2 write).
            if comp != StreamCompression::None {
                let mut two = blob.clone();
                two.extend_from_slice(&compress(b"tail", comp));
                let (_, mut r) = decompressed(Box::new(&two[..])).unwrap();
                let mut out = Vec::new();
                r.read_to_end(&mut out).unwrap();
                assert_eq!(out.len(), data.len() + 4, "{comp}");
                assert!(out.ends_with(b"tail"));
            }
        }
    }

    #[test]
    fn short_and_plain_streams() {
        for head in [&b""[..], b"B", b"BZ", b"\xfd7z", b"ustar", b"\x1f"] {
            assert_eq!(StreamCompression::detect(head), StreamCompression::None);
        }
        let (c, mut r) = decompressed(Box::new(&b"ab"[..])).unwrap();
        assert_eq!(c, StreamCompression::None);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "ab");
        // A truncated compressed stream is a read error, not silent short data.
        let data = vec![7u8; 100_000];
        for comp in [
            StreamCompression::Gzip,
            StreamCompression::Bzip2,
            StreamCompression::Xz,
        ] {
            let blob = compress(&data, comp);
            let (_, mut r) = decompressed(Box::new(&blob[..blob.len() / 2])).unwrap();
            let mut out = Vec::new();
            assert!(r.read_to_end(&mut out).is_err(), "{comp}");
        }
    }
}
