//! The json-file log: buffered entries (encoded by `berth-jsonlog`) and size-based rotation.

use crate::*;

// The encoding itself is `berth-jsonlog`, shared with the in-process monitor.

pub(crate) const LOG_BUF: usize = 64 * 1024;

/// Size-based rotation of the log file (see the crate documentation).
pub(crate) struct Rotate {
    pub(crate) max_size: u64,
    pub(crate) max_file: u64,
    pub(crate) compress: bool,
    pub(crate) path: &'static [u8],
    /// Bytes in the current file.
    pub(crate) written: u64,
    /// BERTH_EXE and the environment, for the compressor.
    pub(crate) exe: *const u8,
    pub(crate) envp: *const *const u8,
    /// The compressor started by the last rotation while it runs (0: none). The next rotation
    /// waits for it: renaming `PATH` over a `PATH.1` it is still reading would let it unlink
    /// the newer file and keep the older contents.
    pub(crate) compressor: i32,
}

/// `PATH` or `PATH.N` or `PATH.N.gz`, NUL-terminated, in `buf`; false if too long.
pub(crate) fn log_name(buf: &mut [u8; PATH_MAX], path: &[u8], n: u64, gz: bool) -> bool {
    let mut num = [0u8; 24];
    let digits = fmt_u64(n, &mut num);
    let need = path.len() + 1 + digits.len() + 3 + 1;
    if need > PATH_MAX {
        return false;
    }
    buf[..path.len()].copy_from_slice(path);
    let mut at = path.len();
    if n > 0 {
        buf[at] = b'.';
        at += 1;
        buf[at..at + digits.len()].copy_from_slice(digits);
        at += digits.len();
        if gz {
            buf[at..at + 3].copy_from_slice(b".gz");
            at += 3;
        }
    }
    buf[at] = 0;
    true
}

impl Rotate {
    /// Rotates the file behind `fd` (see the crate documentation).
    pub(crate) fn rotate(&mut self, fd: i32) {
        self.written = 0;
        if self.compressor > 0 {
            wait_blocking(self.compressor);
            self.compressor = 0;
        }
        if self.max_file < 2 {
            // SAFETY: ftruncate on our own descriptor; O_APPEND writes continue at the new end.
            unsafe {
                syscall(nr::FTRUNCATE, fd as usize, 0, 0, 0);
            }
            return;
        }
        let mut a = [0u8; PATH_MAX];
        let mut b = [0u8; PATH_MAX];
        // PATH.1 … PATH.(MAX_FILE-1) are kept: shift them up by one, the oldest is replaced.
        let mut i = self.max_file - 2;
        while i >= 1 {
            for gz in [false, true] {
                if log_name(&mut a, self.path, i, gz) && log_name(&mut b, self.path, i + 1, gz) {
                    // SAFETY: both are NUL-terminated paths in local buffers.
                    unsafe {
                        sys_rename(a.as_ptr(), b.as_ptr());
                    }
                }
            }
            i -= 1;
        }
        // With one rotated file kept, an earlier PATH.1.gz would shadow the new PATH.1.
        if log_name(&mut a, self.path, 1, true) {
            // SAFETY: NUL-terminated path in a local buffer.
            unsafe {
                sys_unlink(a.as_ptr());
            }
        }
        if !(log_name(&mut a, self.path, 0, false) && log_name(&mut b, self.path, 1, false)) {
            return;
        }
        // SAFETY: NUL-terminated paths in local buffers.
        unsafe {
            sys_rename(a.as_ptr(), b.as_ptr());
        }
        // SAFETY: NUL-terminated path; integer flags and mode.
        let nfd = unsafe { sys_open(a.as_ptr(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640) };
        if nfd >= 0 {
            // dup2 over our own log descriptor (dup2 leaves it without FD_CLOEXEC).
            sys_dup2(nfd as usize, fd as usize);
            close(nfd as i32);
        }
        if self.compress {
            self.spawn_compressor();
        }
    }

    pub(crate) fn spawn_compressor(&mut self) {
        // SAFETY: this process is single-threaded.
        let pid = unsafe { sys_fork() };
        if pid != 0 {
            // Reaped in Sup::reap, or waited for by the next rotation.
            self.compressor = if pid > 0 { pid as i32 } else { 0 };
            return;
        }
        child_setup();
        let mut p = [0u8; PATH_MAX];
        if !log_name(&mut p, self.path, 0, false) {
            exit(125);
        }
        let args: [*const u8; 4] = [
            self.exe,
            c"__compress-log".as_ptr().cast(),
            p.as_ptr(),
            core::ptr::null(),
        ];
        // SAFETY: NUL-terminated strings in NULL-terminated vectors.
        unsafe {
            syscall(
                nr::EXECVE,
                self.exe as usize,
                args.as_ptr() as usize,
                self.envp as usize,
                0,
            );
        }
        exit(127)
    }
}

/// Parses `MAX_SIZE:MAX_FILE:COMPRESS:PATH`; the current size comes from the file.
pub(crate) fn parse_rotate(
    v: &'static [u8],
    fd: i32,
    exe: *const u8,
    envp: *const *const u8,
) -> Option<Rotate> {
    let mut it = v.splitn(4, |&c| c == b':');
    let max_size = parse_int(it.next()?).filter(|&x| x > 0)? as u64;
    let max_file = parse_int(it.next()?).filter(|&x| x > 0)? as u64;
    let compress = it.next()? == b"1";
    let path = it.next()?;
    if path.first() != Some(&b'/') {
        return None;
    }
    // SAFETY: lseek on our own descriptor; no memory involved.
    let size = unsafe { syscall(nr::LSEEK, fd as usize, 0, SEEK_END, 0) };
    Some(Rotate {
        max_size,
        max_file,
        compress,
        path,
        written: size.max(0) as u64,
        exe,
        envp,
        compressor: 0,
    })
}

/// Buffered writer of json-file log lines.
pub(crate) struct Log {
    pub(crate) fd: i32,
    pub(crate) len: usize,
    pub(crate) buf: &'static mut [u8; LOG_BUF],
    pub(crate) rotate: Option<Rotate>,
}

impl Log {
    pub(crate) fn flush(&mut self) {
        if self.len > 0 {
            if let Some(r) = self.rotate.as_mut() {
                if r.written >= r.max_size {
                    r.rotate(self.fd);
                }
                r.written += self.len as u64;
            }
            // A failing log write (disk full, …) loses log data but must not stop us.
            write_all(self.fd, &self.buf[..self.len]);
            self.len = 0;
        }
    }

    pub(crate) fn byte(&mut self, b: u8) {
        if self.len == LOG_BUF {
            self.flush();
        }
        self.buf[self.len] = b;
        self.len += 1;
    }

    pub(crate) fn bytes(&mut self, s: &[u8]) {
        for &b in s {
            self.byte(b);
        }
    }

    /// Logs a chunk of one stream: one entry per line, a trailing partial line is its own.
    pub(crate) fn chunk(&mut self, data: &[u8], stream: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut time = [0u8; 30];
        rfc3339_now(&mut time);
        for line in data.split_inclusive(|&b| b == b'\n') {
            // Keep entries whole in one write() where possible.
            if self.len > 0 && LOG_BUF - self.len < berth_jsonlog::entry_size_bound(line.len()) {
                self.flush();
            }
            berth_jsonlog::entry(self, line, stream, &time);
        }
        self.flush();
    }
}

impl berth_jsonlog::Sink for Log {
    fn put(&mut self, bytes: &[u8]) {
        self.bytes(bytes);
    }
}
