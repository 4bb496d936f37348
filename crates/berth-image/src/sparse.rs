//! GNU sparse files stored in PAX form (formats 0.0, 0.1 and 1.0), which GNU tar writes with
//! `--format=posix -S` and Go's `archive/tar` (Docker's and Podman's extractor) reads.
//!
//! The `tar` crate reads the old GNU sparse form (type `S`) itself, but passes a PAX sparse
//! file through as a regular file named `GNUSparseFile.NNN/NAME` whose data is the packed
//! chunks (and, in 1.0, the map in front of them). This module recognises the PAX records,
//! reads the map, and writes the chunks at their offsets, leaving holes between them.
//!
//! The records (as Go reads them):
//! * 0.0: `GNU.sparse.size`, `GNU.sparse.numblocks`, then repeated `GNU.sparse.offset` and
//!   `GNU.sparse.numbytes` pairs;
//! * 0.1: `GNU.sparse.size`, `GNU.sparse.numblocks`, `GNU.sparse.map` = `off,len,off,len…`;
//! * 1.0: `GNU.sparse.major=1`, `GNU.sparse.minor=0`, `GNU.sparse.name`,
//!   `GNU.sparse.realsize`; the map is at the start of the data: decimal numbers one per line
//!   (count, then offset and length pairs), padded with NULs to a 512-byte block.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use crate::{ImageError, Result};

/// Largest logical size of a sparse file (bytes): a bound on what a layer can ask for.
pub const MAX_SPARSE_SIZE: u64 = 1 << 40;
/// Most chunks in one sparse map.
const MAX_CHUNKS: u64 = 1 << 20;

/// A PAX GNU sparse entry's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparse {
    /// The real file name (`GNU.sparse.name`), replacing `GNUSparseFile.NNN/NAME`.
    pub name: Option<Vec<u8>>,
    /// The logical file size in bytes.
    pub real_size: u64,
    /// The chunk map `(offset, length)` in bytes; `None` until read from the data (1.0).
    pub map: Option<Vec<(u64, u64)>>,
}

fn err(entry: &str, why: impl Into<String>) -> ImageError {
    ImageError::Entry {
        entry: entry.to_string(),
        why: why.into(),
    }
}

/// The sparse description of an entry from its PAX records (`key`, `value`, in order), or
/// `None` for an entry that is not a PAX sparse file. Unknown sparse versions are refused.
pub fn from_pax(records: &[(String, Vec<u8>)], shown: &str) -> Result<Option<Sparse>> {
    let get = |k: &str| {
        records
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let major = get("GNU.sparse.major");
    let minor = get("GNU.sparse.minor");
    let v1 = match (major.as_deref(), minor.as_deref()) {
        (Some("0"), Some("0" | "1")) => false,
        (Some("1"), Some("0")) => true,
        (None, None) => {
            if get("GNU.sparse.map").is_none() && get("GNU.sparse.offset").is_none() {
                return Ok(None);
            }
            false
        }
        (a, b) => {
            return Err(err(
                shown,
                format!(
                    "GNU sparse format {}.{} is not supported (0.0, 0.1 and 1.0 are)",
                    a.unwrap_or("?"),
                    b.unwrap_or("?")
                ),
            ))
        }
    };
    let name = records
        .iter()
        .rev()
        .find(|(k, _)| k == "GNU.sparse.name")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty());
    let size = get("GNU.sparse.size")
        .or_else(|| get("GNU.sparse.realsize"))
        .ok_or_else(|| err(shown, "GNU sparse file without its size record"))?;
    let real_size = number(&size, shown)?;
    if real_size > MAX_SPARSE_SIZE {
        return Err(err(
            shown,
            format!("sparse file of {real_size} bytes is larger than the 1 TiB berth accepts"),
        ));
    }
    let map = if v1 {
        None
    } else if let Some(m) = get("GNU.sparse.map") {
        let nums = m
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| number(s, shown))
            .collect::<Result<Vec<u64>>>()?;
        Some(pairs(&nums, shown)?)
    } else {
        // 0.0: the repeated offset/numbytes records, in order.
        let mut nums = Vec::new();
        for (k, v) in records {
            if k == "GNU.sparse.offset" || k == "GNU.sparse.numbytes" {
                nums.push(number(&String::from_utf8_lossy(v), shown)?);
            }
        }
        Some(pairs(&nums, shown)?)
    };
    if let (Some(map), Some(n)) = (&map, get("GNU.sparse.numblocks")) {
        if usize::try_from(number(&n, shown)?).ok() != Some(map.len()) {
            return Err(err(shown, "GNU sparse map does not have numblocks entries"));
        }
    }
    Ok(Some(Sparse {
        name,
        real_size,
        map,
    }))
}

fn number(s: &str, shown: &str) -> Result<u64> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| err(shown, format!("bad number {s:?} in a GNU sparse header")))
}

fn pairs(nums: &[u64], shown: &str) -> Result<Vec<(u64, u64)>> {
    if nums.len() % 2 != 0 {
        return Err(err(shown, "GNU sparse map has an odd number of values"));
    }
    Ok(nums.chunks(2).map(|c| (c[0], c[1])).collect())
}

/// Read the 1.0 map from the start of the entry's data; returns it and the bytes consumed
/// (the map and its padding to 512 bytes).
pub fn read_map_v1(r: &mut dyn Read, shown: &str) -> Result<(Vec<(u64, u64)>, u64)> {
    let mut consumed = 0u64;
    let mut block = [0u8; 512];
    let mut text: Vec<u8> = Vec::new();
    let mut line_values: Vec<u64> = Vec::new();
    let mut want: Option<u64> = None;
    loop {
        r.read_exact(&mut block)
            .map_err(|e| err(shown, format!("cannot read the GNU sparse map: {e}")))?;
        consumed += 512;
        text.extend_from_slice(&block);
        // Parse complete lines.
        while let Some(nl) = text.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = text.drain(..=nl).collect();
            let s = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            let v = number(&s, shown)?;
            match want {
                None => {
                    if v > MAX_CHUNKS {
                        return Err(err(
                            shown,
                            format!("GNU sparse map of {v} chunks is too large"),
                        ));
                    }
                    want = Some(v * 2);
                }
                Some(_) => line_values.push(v),
            }
            if let Some(w) = want {
                if u64::try_from(line_values.len()).unwrap_or(u64::MAX) == w {
                    return Ok((pairs(&line_values, shown)?, consumed));
                }
            }
        }
        if text.len() > 64 {
            return Err(err(shown, "GNU sparse map has an overlong line"));
        }
    }
}

/// Check a map as Go does: chunks in order, not overlapping, inside `real_size`.
pub fn validate(map: &[(u64, u64)], real_size: u64, shown: &str) -> Result<()> {
    let mut end = 0u64;
    for &(off, len) in map {
        let stop = off
            .checked_add(len)
            .ok_or_else(|| err(shown, "GNU sparse chunk overflows"))?;
        if off < end || stop > real_size {
            return Err(err(
                shown,
                "GNU sparse map has chunks out of order, overlapping, or past the file's end",
            ));
        }
        end = stop;
    }
    Ok(())
}

/// Write the chunks of `r` (the data after any map, `data_len` bytes) at their offsets in
/// `f`, then give `f` its logical size. Holes stay holes.
pub fn write(
    r: &mut dyn Read,
    f: &mut File,
    map: &[(u64, u64)],
    real_size: u64,
    data_len: u64,
    buf: &mut [u8],
    shown: &str,
) -> Result<()> {
    validate(map, real_size, shown)?;
    let total: u64 = map.iter().map(|(_, l)| *l).sum();
    if total != data_len {
        return Err(err(
            shown,
            format!("GNU sparse map covers {total} bytes but the entry holds {data_len}"),
        ));
    }
    for &(off, len) in map {
        f.seek(SeekFrom::Start(off))
            .map_err(|e| err(shown, format!("cannot seek in file: {e}")))?;
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            r.read_exact(&mut buf[..n]).map_err(|e| {
                ImageError::Layer(format!(
                    "cannot read the content of entry {shown:?}: {e}; the layer is corrupt or truncated"
                ))
            })?;
            f.write_all(&buf[..n])
                .map_err(|e| err(shown, format!("cannot write file: {e}")))?;
            left -= n as u64;
        }
    }
    f.set_len(real_size)
        .map_err(|e| err(shown, format!("cannot set the file's size: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(k: &str, v: &str) -> (String, Vec<u8>) {
        (k.to_string(), v.as_bytes().to_vec())
    }

    #[test]
    fn versions() {
        assert_eq!(from_pax(&[rec("path", "x")], "x").unwrap(), None);
        let s = from_pax(
            &[
                rec("GNU.sparse.major", "0"),
                rec("GNU.sparse.minor", "1"),
                rec("GNU.sparse.name", "f"),
                rec("GNU.sparse.size", "100"),
                rec("GNU.sparse.numblocks", "2"),
                rec("GNU.sparse.map", "0,10,50,5"),
            ],
            "x",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.map, Some(vec![(0, 10), (50, 5)]));
        assert_eq!(s.name.as_deref(), Some(&b"f"[..]));
        let s = from_pax(
            &[
                rec("GNU.sparse.size", "100"),
                rec("GNU.sparse.numblocks", "2"),
                rec("GNU.sparse.offset", "0"),
                rec("GNU.sparse.numbytes", "10"),
                rec("GNU.sparse.offset", "90"),
                rec("GNU.sparse.numbytes", "10"),
            ],
            "x",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.map, Some(vec![(0, 10), (90, 10)]));
        let s = from_pax(
            &[
                rec("GNU.sparse.major", "1"),
                rec("GNU.sparse.minor", "0"),
                rec("GNU.sparse.realsize", "4096"),
            ],
            "x",
        )
        .unwrap()
        .unwrap();
        assert_eq!((s.map, s.real_size), (None, 4096));
        assert!(from_pax(
            &[rec("GNU.sparse.major", "2"), rec("GNU.sparse.minor", "0")],
            "x"
        )
        .is_err());
    }

    #[test]
    fn v1_map_and_bad_maps() {
        let mut data = b"2\n0\n10\n100\n5\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(&[7u8; 15]);
        let mut r = &data[..];
        let (map, used) = read_map_v1(&mut r, "x").unwrap();
        assert_eq!(map, vec![(0, 10), (100, 5)]);
        assert_eq!(used, 512);
        assert!(validate(&map, 105, "x").is_ok());
        assert!(validate(&map, 104, "x").is_err());
        assert!(validate(&[(10, 5), (0, 1)], 100, "x").is_err());
        assert!(validate(&[(0, 5), (3, 1)], 100, "x").is_err());
    }
}
