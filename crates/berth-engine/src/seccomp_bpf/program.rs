//! Running, serialising and loading a compiled [`Program`]: the interpreter the tests compare
//! with libseccomp's programs, the form the builtin bundle keeps, and `seccomp(2)`.

use super::*;

/// `seccomp_data` of one syscall, for [`Program::run`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeccompData {
    /// The syscall number.
    pub nr: u32,
    /// `AUDIT_ARCH_*`.
    pub arch: u32,
    /// The six arguments.
    pub args: [u64; 6],
}

impl Program {
    /// Run the program on `d` as the kernel would; returns the seccomp return value, or
    /// `None` for an instruction seccomp refuses or a jump out of the program.
    pub fn run(&self, d: &SeccompData) -> Option<u32> {
        run_filter(&self.insns, d)
    }

    /// The program as bytes (`struct sock_filter` array, native endianness).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.insns.len() * 8);
        for i in &self.insns {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
        out
    }

    /// Instructions from the bytes of a `struct sock_filter` array; `None` when the length is
    /// not a multiple of 8 or exceeds 4096 instructions.
    pub fn insns_from_bytes(b: &[u8]) -> Option<Vec<SockFilter>> {
        if b.len() % 8 != 0 || b.len() / 8 > BPF_MAXINSNS {
            return None;
        }
        Some(
            b.chunks_exact(8)
                .map(|c| SockFilter {
                    code: u16::from_ne_bytes([c[0], c[1]]),
                    jt: c[2],
                    jf: c[3],
                    k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
                })
                .collect(),
        )
    }
}

/// A compiled filter as the builtin runtime's bundle keeps it (in `init.json`, see
/// [`crate::runtime::builtin_bundle`]; older berth versions wrote it alone to `filter.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterFile {
    /// `SECCOMP_FILTER_FLAG_*` bits.
    pub flags: u32,
    /// The `struct sock_filter` array, hex-encoded.
    pub program: String,
    /// sha256 of the program bytes, hex-encoded; checked when loaded.
    pub sha256: String,
    /// The process's real capabilities, in files written by older berth versions (now in
    /// [`crate::runtime::builtin_bundle::InitSteps`]); read for containers they started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<oci_spec::runtime::LinuxCapabilities>,
}

impl FilterFile {
    /// The file for `prog`.
    pub fn new(prog: &Program, capabilities: Option<oci_spec::runtime::LinuxCapabilities>) -> Self {
        use sha2::Digest;
        let bytes = prog.to_bytes();
        FilterFile {
            flags: prog.flags,
            program: hex(&bytes),
            sha256: hex(&sha2::Sha256::digest(&bytes)),
            capabilities,
        }
    }

    /// The program, checked against its digest; `None` when the file is damaged.
    pub fn program(&self) -> Option<Program> {
        use sha2::Digest;
        let bytes = unhex(&self.program)?;
        if hex(&sha2::Sha256::digest(&bytes)) != self.sha256 {
            return None;
        }
        Some(Program {
            flags: self.flags,
            insns: Program::insns_from_bytes(&bytes)?,
        })
    }
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Load `prog` into the calling thread (`seccomp(SECCOMP_SET_MODE_FILTER)`). Needs
/// `no_new_privs` or `CAP_SYS_ADMIN`.
///
/// Errors: the kernel's (`EACCES` without either, `EINVAL` for a bad program).
pub fn load(prog: &Program) -> std::io::Result<()> {
    let mut filters: Vec<libc::sock_filter> = prog
        .insns
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let len = u16::try_from(filters.len())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        filter: filters.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `filters`, which lives until after the call; the kernel
    // copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(prog.flags),
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A classic-BPF interpreter for seccomp programs (the opcodes seccomp accepts).
pub fn run_filter(insns: &[SockFilter], d: &SeccompData) -> Option<u32> {
    let word = |off: u32| -> Option<u32> {
        Some(match off {
            0 => d.nr,
            4 => d.arch,
            8 | 12 => 0,
            o if (16..64).contains(&o) && o % 4 == 0 => {
                let i = usize::try_from((o - 16) / 8).ok()?;
                let v = d.args[i];
                if (o - 16) % 8 == 0 {
                    u32::try_from(v & 0xffff_ffff).ok()?
                } else {
                    u32::try_from(v >> 32).ok()?
                }
            }
            _ => return None,
        })
    };
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    while pc < insns.len() {
        let i = insns[pc];
        pc += 1;
        let k = i.k;
        match i.code {
            0x20 => a = word(k)?,                                // LD W ABS
            0x00 => a = k,                                       // LD IMM
            0x01 => x = k,                                       // LDX IMM
            0x60 => a = *mem.get(usize::try_from(k).ok()?)?,     // LD MEM
            0x61 => x = *mem.get(usize::try_from(k).ok()?)?,     // LDX MEM
            0x02 => *mem.get_mut(usize::try_from(k).ok()?)? = a, // ST
            0x03 => *mem.get_mut(usize::try_from(k).ok()?)? = x, // STX
            0x54 => a &= k,                                      // AND K
            0x44 => a |= k,                                      // OR K
            0x04 => a = a.wrapping_add(k),                       // ADD K
            0x14 => a = a.wrapping_sub(k),                       // SUB K
            0x74 => a = a.checked_shr(k).unwrap_or(0),           // RSH K
            0x64 => a = a.checked_shl(k).unwrap_or(0),           // LSH K
            0x07 => x = a,                                       // TAX
            0x87 => a = x,                                       // TXA
            0x05 => pc += usize::try_from(k).ok()?,              // JA
            0x15 | 0x25 | 0x35 | 0x45 | 0x1d | 0x2d | 0x3d | 0x4d => {
                let v = if i.code & 0x08 != 0 { x } else { k };
                let t = match i.code & 0xf0 {
                    0x10 => a == v,
                    0x20 => a > v,
                    0x30 => a >= v,
                    _ => a & v != 0,
                };
                pc += usize::from(if t { i.jt } else { i.jf });
            }
            0x06 => return Some(k), // RET K
            0x16 => return Some(a), // RET A
            _ => return None,
        }
    }
    None
}
