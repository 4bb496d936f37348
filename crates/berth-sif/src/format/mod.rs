//! The SIF container format (Singularity Image Format, version "01"), as Apptainer and
//! SingularityCE read and write it.
//!
//! ```text
//! offset 0      global header, 128 bytes (little endian, packed):
//!               launch script [32] "#!/usr/bin/env run-singularity\n", magic [10] "SIF_MAGIC\0",
//!               version [3] "01\0", arch [3] ("02\0" = amd64), id [16] (UUID),
//!               created, modified, descriptors free, descriptors total, descriptors offset,
//!               descriptors size, data offset, data size (8 × i64)
//! offset 4096   descriptor table: `total` descriptors of 585 bytes each:
//!               data type i32, used u8, id u32, group id u32, linked id u32, offset i64,
//!               size i64, size with padding i64, created i64, modified i64, uid i64, gid i64,
//!               name [128], extra [384] (partition: fs type i32, part type i32, arch [3];
//!               signature: hash type i32, entity [256])
//! data          the objects, partitions aligned to 4096 bytes
//! ```
//!
//! [`Sif::open`] validates everything a reader relies on (magic, version, table bounds, object
//! bounds against the file length, the squashfs superblock of the system partition), so a
//! truncated or corrupted file is refused before anything is mounted.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Result, SifError};

mod write;

pub use write::{write_sif, NewObject, ObjectData};

/// The launch line that makes a SIF file executable through `run-singularity`.
pub const LAUNCH_SCRIPT: &str = "#!/usr/bin/env run-singularity\n";

/// Bytes of the global header.
pub const HEADER_LEN: u64 = 128;

/// Bytes of one descriptor.
pub const DESCRIPTOR_LEN: u64 = 585;

/// Where the descriptor table starts in files berth writes (as sylabs' library does).
pub const DESCRIPTORS_OFFSET: u64 = 4096;

/// Descriptor slots in files berth writes (as sylabs' library does).
pub const DESCRIPTORS_CAPACITY: u64 = 48;

/// Alignment of partition objects, bytes.
pub const PARTITION_ALIGN: u64 = 4096;

/// Largest descriptor table accepted when reading (entries).
const MAX_DESCRIPTORS: u64 = 4096;

/// Largest metadata object (definition file, JSON) read into memory, bytes.
pub const MAX_METADATA: u64 = 16 << 20;

const MAGIC: &[u8; 10] = b"SIF_MAGIC\0";

const VERSION: &[u8; 3] = b"01\0";

const GROUP_MASK: u32 = 0xf000_0000;

const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";

/// Kind of a data object (the descriptor's data type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// The definition file the image was built from (0x4001).
    Deffile,
    /// Environment variables (0x4002).
    EnvVar,
    /// Labels as a JSON object (0x4003).
    Labels,
    /// A file system partition (0x4004).
    Partition,
    /// A signature over other objects (0x4005).
    Signature,
    /// Generic JSON metadata (0x4006).
    GenericJson,
    /// Raw data (0x4007).
    Generic,
    /// Another registered type (cryptographic message, SBOM, OCI blobs …), kept as its number.
    Other(i32),
}

impl DataType {
    /// The number stored in the descriptor.
    pub fn code(self) -> i32 {
        match self {
            DataType::Deffile => 0x4001,
            DataType::EnvVar => 0x4002,
            DataType::Labels => 0x4003,
            DataType::Partition => 0x4004,
            DataType::Signature => 0x4005,
            DataType::GenericJson => 0x4006,
            DataType::Generic => 0x4007,
            DataType::Other(n) => n,
        }
    }

    /// The type for a stored number.
    pub fn from_code(n: i32) -> DataType {
        match n {
            0x4001 => DataType::Deffile,
            0x4002 => DataType::EnvVar,
            0x4003 => DataType::Labels,
            0x4004 => DataType::Partition,
            0x4005 => DataType::Signature,
            0x4006 => DataType::GenericJson,
            0x4007 => DataType::Generic,
            n => DataType::Other(n),
        }
    }

    /// The names siftool prints (`Def.FILE`, `JSON.Labels`, `FS`, …).
    pub fn name(self) -> &'static str {
        match self {
            DataType::Deffile => "Def.FILE",
            DataType::EnvVar => "Env.Vars",
            DataType::Labels => "JSON.Labels",
            DataType::Partition => "FS",
            DataType::Signature => "Signature",
            DataType::GenericJson => "JSON.Generic",
            DataType::Generic => "Generic/Raw",
            DataType::Other(_) => "Unknown",
        }
    }
}

/// File system type of a partition: squashfs.
pub const FS_SQUASH: i32 = 1;

/// Partition type: the primary system partition (the container's root file system).
pub const PART_PRIMSYS: i32 = 2;

/// Partition type: a (non-primary) system partition.
pub const PART_SYSTEM: i32 = 1;

/// SIF's architecture code for this host (`"02"` on x86_64), as stored in headers.
pub fn host_arch_code() -> [u8; 3] {
    let code: &[u8; 2] = match std::env::consts::ARCH {
        "x86" => b"01",
        "x86_64" => b"02",
        "arm" => b"03",
        "aarch64" => b"04",
        "powerpc64" => b"05",
        "s390x" => b"11",
        "riscv64" => b"12",
        _ => b"00",
    };
    [code[0], code[1], 0]
}

/// Go/OCI architecture name of a SIF architecture code (`amd64` for `"02"`).
pub fn arch_name(code: &[u8; 3]) -> &'static str {
    match &code[..2] {
        b"01" => "386",
        b"02" => "amd64",
        b"03" => "arm",
        b"04" => "arm64",
        b"05" => "ppc64",
        b"06" => "ppc64le",
        b"07" => "mips",
        b"08" => "mipsle",
        b"09" => "mips64",
        b"10" => "mips64le",
        b"11" => "s390x",
        b"12" => "riscv64",
        _ => "unknown",
    }
}

/// The global header of a SIF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The launch line (up to 32 bytes; NUL padded on disk).
    pub launch: String,
    /// Architecture code of the primary partition (`"02\0"` = amd64).
    pub arch: [u8; 3],
    /// The image's UUID.
    pub id: [u8; 16],
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub modified: i64,
    /// Unused descriptor slots.
    pub descriptors_free: i64,
    /// Descriptor slots.
    pub descriptors_total: i64,
    /// Byte offset of the descriptor table.
    pub descriptors_offset: i64,
    /// Bytes of the descriptor table.
    pub descriptors_size: i64,
    /// Byte offset of the data section.
    pub data_offset: i64,
    /// Bytes of the data section.
    pub data_size: i64,
}

impl Header {
    /// The id as a UUID string (`8-4-4-4-12` hex).
    pub fn uuid(&self) -> String {
        let h = hex::encode(self.id);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    fn encode(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        let l = self.launch.as_bytes();
        let n = l.len().min(31);
        b[..n].copy_from_slice(&l[..n]);
        b[32..42].copy_from_slice(MAGIC);
        b[42..45].copy_from_slice(VERSION);
        b[45..48].copy_from_slice(&self.arch);
        b[48..64].copy_from_slice(&self.id);
        let nums = [
            self.created,
            self.modified,
            self.descriptors_free,
            self.descriptors_total,
            self.descriptors_offset,
            self.descriptors_size,
            self.data_offset,
            self.data_size,
        ];
        for (i, v) in nums.iter().enumerate() {
            b[64 + i * 8..72 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    fn decode(b: &[u8; 128], path: &Path) -> Result<Header> {
        if &b[32..42] != MAGIC {
            return Err(SifError::Format {
                path: path.to_path_buf(),
                why: "not a SIF image (no SIF_MAGIC in the header)".into(),
            });
        }
        if &b[42..45] != VERSION {
            return Err(SifError::Format {
                path: path.to_path_buf(),
                why: format!(
                    "unsupported SIF version {:?} (berth reads version 01)",
                    String::from_utf8_lossy(&b[42..44])
                ),
            });
        }
        let launch_end = b[..32].iter().position(|&c| c == 0).unwrap_or(32);
        let mut arch = [0u8; 3];
        arch.copy_from_slice(&b[45..48]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[48..64]);
        let n = |i: usize| i64::from_le_bytes(b[64 + i * 8..72 + i * 8].try_into().expect("8"));
        Ok(Header {
            launch: String::from_utf8_lossy(&b[..launch_end]).into_owned(),
            arch,
            id,
            created: n(0),
            modified: n(1),
            descriptors_free: n(2),
            descriptors_total: n(3),
            descriptors_offset: n(4),
            descriptors_size: n(5),
            data_offset: n(6),
            data_size: n(7),
        })
    }
}

/// One used descriptor (a data object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Kind of object.
    pub data_type: DataType,
    /// Object id (1-based).
    pub id: u32,
    /// Group id without the group mask (objects of one image are in group 1).
    pub group: u32,
    /// Id of the object (or group, with the mask) this one refers to; 0 for none.
    pub linked: u32,
    /// Byte offset of the data in the file.
    pub offset: u64,
    /// Bytes of data.
    pub size: u64,
    /// Bytes of data plus the alignment padding before it.
    pub size_with_padding: u64,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub modified: i64,
    /// Object name (may be empty).
    pub name: String,
    /// Partition fields (fs type, partition type, arch code) when the object is a partition.
    pub partition: Option<(i32, i32, [u8; 3])>,
    /// Hash type when the object is a signature.
    pub signature_hash: Option<i32>,
}

impl Descriptor {
    fn decode(b: &[u8]) -> Option<Descriptor> {
        let i32_at = |o: usize| i32::from_le_bytes(b[o..o + 4].try_into().expect("4"));
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4"));
        let i64_at = |o: usize| i64::from_le_bytes(b[o..o + 8].try_into().expect("8"));
        if b[4] == 0 {
            return None;
        }
        let data_type = DataType::from_code(i32_at(0));
        let name_raw = &b[73..201];
        let end = name_raw.iter().position(|&c| c == 0).unwrap_or(128);
        let extra = &b[201..585];
        let partition = (data_type == DataType::Partition).then(|| {
            let e = |o: usize| i32::from_le_bytes(extra[o..o + 4].try_into().expect("4"));
            let mut arch = [0u8; 3];
            arch.copy_from_slice(&extra[8..11]);
            (e(0), e(4), arch)
        });
        let signature_hash = (data_type == DataType::Signature)
            .then(|| i32::from_le_bytes(extra[0..4].try_into().expect("4")));
        Some(Descriptor {
            data_type,
            id: u32_at(5),
            group: u32_at(9) & !GROUP_MASK,
            linked: u32_at(13),
            // Negative values are caught by the bounds check (they become huge).
            offset: u64::from_le_bytes(i64_at(17).to_le_bytes()),
            size: u64::from_le_bytes(i64_at(25).to_le_bytes()),
            size_with_padding: u64::from_le_bytes(i64_at(33).to_le_bytes()),
            created: i64_at(41),
            modified: i64_at(49),
            name: String::from_utf8_lossy(&name_raw[..end]).into_owned(),
            partition,
            signature_hash,
        })
    }

    fn encode(&self) -> [u8; 585] {
        let mut b = [0u8; 585];
        b[0..4].copy_from_slice(&self.data_type.code().to_le_bytes());
        b[4] = 1;
        b[5..9].copy_from_slice(&self.id.to_le_bytes());
        b[9..13].copy_from_slice(&(self.group | GROUP_MASK).to_le_bytes());
        b[13..17].copy_from_slice(&self.linked.to_le_bytes());
        b[17..25].copy_from_slice(&self.offset.to_le_bytes());
        b[25..33].copy_from_slice(&self.size.to_le_bytes());
        b[33..41].copy_from_slice(&self.size_with_padding.to_le_bytes());
        b[41..49].copy_from_slice(&self.created.to_le_bytes());
        b[49..57].copy_from_slice(&self.modified.to_le_bytes());
        // uid, gid: deprecated, zero.
        let name = self.name.as_bytes();
        let n = name.len().min(127);
        b[73..73 + n].copy_from_slice(&name[..n]);
        if let Some((fs, part, arch)) = self.partition {
            b[201..205].copy_from_slice(&fs.to_le_bytes());
            b[205..209].copy_from_slice(&part.to_le_bytes());
            b[209..212].copy_from_slice(&arch);
        }
        if let Some(h) = self.signature_hash {
            b[201..205].copy_from_slice(&h.to_le_bytes());
        }
        b
    }

    /// Whether this is the primary system partition.
    pub fn is_primary_partition(&self) -> bool {
        matches!(self.partition, Some((_, PART_PRIMSYS, _)))
    }
}

/// An opened, validated SIF file.
#[derive(Debug)]
pub struct Sif {
    /// Where it was opened from.
    pub path: PathBuf,
    /// The open file.
    pub file: File,
    /// Bytes in the file.
    pub len: u64,
    /// The global header.
    pub header: Header,
    /// The used descriptors, in table order.
    pub descriptors: Vec<Descriptor>,
}

impl Sif {
    /// Open and validate `path`.
    ///
    /// Errors: [`SifError::Io`] when it cannot be read, [`SifError::Format`] naming what is
    /// wrong (not a SIF, unsupported version, truncated, bad descriptor table, no squashfs system
    /// partition, a partition that is not a complete squashfs).
    pub fn open(path: &Path) -> Result<Sif> {
        let file = File::open(path).map_err(|e| SifError::io(path, e))?;
        let len = file.metadata().map_err(|e| SifError::io(path, e))?.len();
        let bad = |why: String| SifError::Format {
            path: path.to_path_buf(),
            why,
        };
        if len < HEADER_LEN {
            return Err(bad(format!(
                "truncated: {len} bytes is shorter than a SIF header; rebuild or copy it again"
            )));
        }
        let mut hb = [0u8; 128];
        file.read_exact_at(&mut hb, 0)
            .map_err(|e| SifError::io(path, e))?;
        let header = Header::decode(&hb, path)?;
        let total = u64::try_from(header.descriptors_total)
            .ok()
            .filter(|t| *t <= MAX_DESCRIPTORS)
            .ok_or_else(|| {
                bad(format!(
                    "corrupted header: {} descriptors",
                    header.descriptors_total
                ))
            })?;
        let table_off = u64::try_from(header.descriptors_offset)
            .map_err(|_| bad("corrupted header: negative descriptor offset".into()))?;
        let table_len = total * DESCRIPTOR_LEN;
        if u64::try_from(header.descriptors_size).ok() != Some(table_len) {
            return Err(bad(format!(
                "corrupted header: descriptor table of {} bytes for {total} descriptors",
                header.descriptors_size
            )));
        }
        if table_off.checked_add(table_len).is_none_or(|end| end > len) {
            return Err(bad(format!(
                "truncated: the descriptor table ends past the end of the file ({len} bytes); rebuild or copy it again"
            )));
        }
        let mut table = vec![0u8; usize::try_from(table_len).expect("bounded")];
        file.read_exact_at(&mut table, table_off)
            .map_err(|e| SifError::io(path, e))?;
        let mut descriptors = Vec::new();
        for chunk in table.chunks(585) {
            if let Some(d) = Descriptor::decode(chunk) {
                if d.offset.checked_add(d.size).is_none_or(|end| end > len) {
                    return Err(bad(format!(
                        "truncated: object {} ({}) ends at byte {} but the file has {len} bytes; rebuild or copy it again",
                        d.id,
                        d.data_type.name(),
                        d.offset.saturating_add(d.size)
                    )));
                }
                descriptors.push(d);
            }
        }
        let sif = Sif {
            path: path.to_path_buf(),
            file,
            len,
            header,
            descriptors,
        };
        if let Some(p) = sif.primary_partition() {
            sif.check_squashfs(p)?;
        }
        Ok(sif)
    }

    /// The primary system partition, if any.
    pub fn primary_partition(&self) -> Option<&Descriptor> {
        self.descriptors
            .iter()
            .find(|d| d.is_primary_partition())
            .or_else(|| {
                self.descriptors
                    .iter()
                    .find(|d| matches!(d.partition, Some((FS_SQUASH, PART_SYSTEM, _))))
            })
    }

    /// The primary squashfs partition, or an error saying there is none.
    pub fn rootfs_partition(&self) -> Result<&Descriptor> {
        let p = self.primary_partition().ok_or_else(|| SifError::Format {
            path: self.path.clone(),
            why: "no system partition (this SIF holds no container root file system)".into(),
        })?;
        match p.partition {
            Some((FS_SQUASH, _, _)) => Ok(p),
            Some((fs, _, _)) => Err(SifError::Format {
                path: self.path.clone(),
                why: format!(
                    "system partition has file system type {fs}; berth runs squashfs partitions only (encrypted and ext3 images are not supported)"
                ),
            }),
            None => unreachable!("partition descriptor"),
        }
    }

    /// Check that a squashfs partition starts with a squashfs superblock whose `bytes_used` fits.
    fn check_squashfs(&self, d: &Descriptor) -> Result<()> {
        if !matches!(d.partition, Some((FS_SQUASH, _, _))) {
            return Ok(());
        }
        let bad = |why: String| SifError::Format {
            path: self.path.clone(),
            why,
        };
        if d.size < 96 {
            return Err(bad(format!(
                "corrupted: partition {} is {} bytes, too small for squashfs",
                d.id, d.size
            )));
        }
        let mut sb = [0u8; 96];
        self.file
            .read_exact_at(&mut sb, d.offset)
            .map_err(|e| SifError::io(&self.path, e))?;
        if &sb[0..4] != SQUASHFS_MAGIC {
            return Err(bad(format!(
                "corrupted: partition {} does not start with a squashfs superblock",
                d.id
            )));
        }
        let used = u64::from_le_bytes(sb[40..48].try_into().expect("8"));
        if used > d.size {
            return Err(bad(format!(
                "truncated: the squashfs partition needs {used} bytes but has {}; rebuild or copy it again",
                d.size
            )));
        }
        Ok(())
    }

    /// Read a metadata object (at most [`MAX_METADATA`] bytes).
    pub fn read_object(&self, d: &Descriptor) -> Result<Vec<u8>> {
        if d.size > MAX_METADATA {
            return Err(SifError::Format {
                path: self.path.clone(),
                why: format!("object {} is {} bytes, too large to read", d.id, d.size),
            });
        }
        let mut buf = vec![0u8; usize::try_from(d.size).expect("bounded")];
        self.file
            .read_exact_at(&mut buf, d.offset)
            .map_err(|e| SifError::io(&self.path, e))?;
        Ok(buf)
    }

    /// The first object of a type, read.
    pub fn object_of(&self, t: DataType) -> Result<Option<Vec<u8>>> {
        match self.descriptors.iter().find(|d| d.data_type == t) {
            Some(d) => self.read_object(d).map(Some),
            None => Ok(None),
        }
    }

    /// Copy the primary squashfs partition into `dest` (a new file).
    pub fn extract_partition(&self, dest: &Path) -> Result<()> {
        let p = self.rootfs_partition()?;
        let mut out = File::create(dest).map_err(|e| SifError::io(dest, e))?;
        let mut f = &self.file;
        f.seek(SeekFrom::Start(p.offset))
            .map_err(|e| SifError::io(&self.path, e))?;
        let n = std::io::copy(&mut f.take(p.size), &mut out).map_err(|e| SifError::io(dest, e))?;
        if n != p.size {
            return Err(SifError::Format {
                path: self.path.clone(),
                why: "truncated while reading the partition".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
