//! Writing a new SIF file: the objects laid out after a descriptor table of fixed capacity
//! (partitions aligned), then the table and the header, in a temporary file renamed at the end.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{
    DataType, Descriptor, Header, DESCRIPTORS_CAPACITY, DESCRIPTORS_OFFSET, DESCRIPTOR_LEN,
    LAUNCH_SCRIPT, PARTITION_ALIGN, PART_PRIMSYS,
};
use crate::{Result, SifError};

/// Where an object's bytes come from when writing.
#[derive(Debug)]
pub enum ObjectData {
    /// In memory.
    Bytes(Vec<u8>),
    /// A whole file (copied with `copy_file_range` where the kernel can).
    File(PathBuf),
}

/// An object to write into a new SIF file.
#[derive(Debug)]
pub struct NewObject {
    /// Its type.
    pub data_type: DataType,
    /// Its name (at most 127 bytes kept).
    pub name: String,
    /// Its bytes.
    pub data: ObjectData,
    /// Partition fields (fs type, partition type, arch code), for partitions.
    pub partition: Option<(i32, i32, [u8; 3])>,
}

/// Write a SIF file at `dest` (via a temporary file in the same directory, renamed at the end,
/// mode 0755 so that it runs as a script). The objects get ids 1, 2, … in group 1.
///
/// Errors: I/O on the temporary or the source files.
pub fn write_sif(dest: &Path, objects: &[NewObject]) -> Result<Header> {
    let now = chrono::Utc::now().timestamp();
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("image"),
        std::process::id()
    ));
    let res = write_sif_to(&tmp, objects, now);
    match res {
        Ok(h) => {
            std::fs::rename(&tmp, dest).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                SifError::io(dest, e)
            })?;
            Ok(h)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn write_sif_to(tmp: &Path, objects: &[NewObject], now: i64) -> Result<Header> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o755)
        .open(tmp)
        .map_err(|e| SifError::io(tmp, e))?;
    let table_len = DESCRIPTORS_CAPACITY * DESCRIPTOR_LEN;
    let data_offset = DESCRIPTORS_OFFSET + table_len;
    let mut pos = data_offset;
    let mut descs = Vec::new();
    let mut arch = *b"00\0";
    for (i, o) in objects.iter().enumerate() {
        let align = if o.partition.is_some() {
            PARTITION_ALIGN
        } else {
            1
        };
        let start = pos.div_ceil(align) * align;
        f.seek(SeekFrom::Start(start))
            .map_err(|e| SifError::io(tmp, e))?;
        let size = match &o.data {
            ObjectData::Bytes(b) => {
                f.write_all(b).map_err(|e| SifError::io(tmp, e))?;
                b.len() as u64
            }
            ObjectData::File(p) => {
                let mut src = File::open(p).map_err(|e| SifError::io(p, e))?;
                std::io::copy(&mut src, &mut f).map_err(|e| SifError::io(tmp, e))?
            }
        };
        if let Some((_, PART_PRIMSYS, a)) = o.partition {
            arch = a;
        }
        descs.push(Descriptor {
            data_type: o.data_type,
            id: u32::try_from(i + 1).expect("few objects"),
            group: 1,
            linked: 0,
            offset: start,
            size,
            size_with_padding: start - pos + size,
            created: now,
            modified: now,
            name: o.name.clone(),
            partition: o.partition,
            signature_hash: None,
        });
        pos = start + size;
    }
    let mut id: [u8; 16] = rand::random();
    id[6] = (id[6] & 0x0f) | 0x40; // UUID version 4
    id[8] = (id[8] & 0x3f) | 0x80; // RFC 4122 variant
    let n = |v: u64| i64::try_from(v).expect("file offsets fit i64");
    let header = Header {
        launch: LAUNCH_SCRIPT.into(),
        arch,
        id,
        created: now,
        modified: now,
        descriptors_free: n(DESCRIPTORS_CAPACITY - descs.len() as u64),
        descriptors_total: n(DESCRIPTORS_CAPACITY),
        descriptors_offset: n(DESCRIPTORS_OFFSET),
        descriptors_size: n(table_len),
        data_offset: n(data_offset),
        data_size: n(pos - data_offset),
    };
    let mut table = vec![0u8; usize::try_from(table_len).expect("small")];
    for (i, d) in descs.iter().enumerate() {
        table[i * 585..(i + 1) * 585].copy_from_slice(&d.encode());
    }
    f.write_all_at(&table, DESCRIPTORS_OFFSET)
        .map_err(|e| SifError::io(tmp, e))?;
    f.write_all_at(&header.encode(), 0)
        .map_err(|e| SifError::io(tmp, e))?;
    f.sync_all().map_err(|e| SifError::io(tmp, e))?;
    Ok(header)
}
