//! Shared support for berth's integration tests (they run as root against a real kernel).
//!
//! * [`TestEnv`]: a unique temporary directory `berth-t-<pid>-<n>` holding the store
//!   (`BERTH_ROOT`) and a scratch area; cleaned up (containers, mounts, files) on drop.
//! * busybox-static based rootfs tarballs, docker-archives and oci-archives.
//! * small builders for hand-made layers and archives.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest as _, Sha256};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Fixed mtime for generated archives (reproducible digests).
pub const MTIME: u64 = 1_700_000_000;
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Applets linked to busybox in the test rootfs.
pub const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "ls", "sleep", "true", "false", "httpd", "wget", "id", "env", "pwd",
    "hostname", "ps", "kill", "mkdir", "touch", "seq", "yes", "head", "dd", "nc", "ip", "ifconfig",
    "route", "rm", "grep", "wc", "stat", "test", "chmod", "ln", "uname", "whoami", "date", "mount",
    "df", "tail", "cut", "sort", "printf", "nslookup", "ping", "top", "free", "readlink",
    "basename", "dirname", "expr", "sync",
];

/// One test's world: a store root plus scratch space, removed on drop.
pub struct TestEnv {
    /// The unique temporary directory (`/tmp/berth-t-<pid>-<n>`).
    pub dir: PathBuf,
    /// The store root passed as `BERTH_ROOT` (`<dir>/root`).
    pub root: PathBuf,
    /// Scratch files (archives, …), outside the store (`<dir>/scratch`).
    pub scratch: PathBuf,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("berth-t-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        let scratch = dir.join("scratch");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        // Own bridge/table names and subnets, so that tests running at the same time (and a
        // real berth on this machine) never share networking state.
        let x = (std::process::id() as usize * 7 + n) % 250;
        std::fs::write(
            root.join("net.conf"),
            format!(
                "prefix = b{:03x}{:02}\nbridge_subnet = 10.219.{x}.0/24\npool = 10.220.{x}.0/24\n",
                std::process::id() % 4096,
                n % 100
            ),
        )
        .unwrap();
        TestEnv { dir, root, scratch }
    }

    /// A path in the scratch area.
    pub fn path(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// A `berth` command with `BERTH_ROOT` set (not yet run).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.args(args)
            .env("BERTH_ROOT", &self.root)
            .env_remove("BERTH_LOG");
        c
    }

    /// Run berth and return its output (whatever the exit status).
    pub fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run the berth binary")
    }

    /// Run berth with `input` on its standard input.
    pub fn berth_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run the berth binary");
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        out
    }

    /// Run berth, assert success, return stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run berth, assert failure, return (exit code, stderr).
    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.berth(args);
        assert!(
            !out.status.success(),
            "berth {args:?} should have failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Load a busybox image tagged `name` (docker-archive); returns its full id.
    pub fn busybox_image(&self, name: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = self.path(&format!("busybox-{n}.tar"));
        busybox_docker_archive(&p, name);
        self.ok(&["load", "-i", p.to_str().unwrap()]);
        let _ = std::fs::remove_file(&p);
        self.ok(&["image", "inspect", "--format", "{{.Id}}", name])
            .trim()
            .to_string()
    }

    /// Relative paths of every file under the store root (sorted), for before/after checks.
    pub fn store_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.sort();
        out
    }
}

fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(p) else { return };
    for e in rd.flatten() {
        let path = e.path();
        out.push(path.strip_prefix(base).unwrap().display().to_string());
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk(base, &path, out);
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Containers first (their monitors and mounts), ignoring errors: `ps` may not exist yet.
        if let Ok(out) = self.cmd(&["ps", "-aq"]).stdin(Stdio::null()).output() {
            if out.status.success() {
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = self
                        .cmd(&["rm", "-f", id])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
        // `run --rm` returns before its monitor has removed the last files: wait for this
        // store's monitors to be gone before deleting the store under them.
        wait_for_processes_using(&self.root);
        // Bridges, nft table, namespaces of this store.
        let _ = self
            .cmd(&["network", "reset"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        unmount_under(&self.dir);
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("warning: cannot remove {}: {e}", self.dir.display());
            }
        }
    }
}

/// Wait (up to 10 s) until no process has `dir` on its command line (berth monitors and
/// supervisors carry their store root there).
pub fn wait_for_processes_using(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let busy = std::fs::read_dir("/proc")
            .map(|rd| {
                rd.flatten().any(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.bytes().all(|b| b.is_ascii_digit())
                        && name != me
                        && std::fs::read(e.path().join("cmdline"))
                            .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                            .unwrap_or(false)
                })
            })
            .unwrap_or(false);
        if !busy || std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Lazily unmount everything mounted at or below `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for p in points {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&p)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Tar, layer and archive builders
// ---------------------------------------------------------------------------------------------

/// `sha256:<hex>` of bytes.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Builds tar archives in memory with fixed metadata.
pub struct TarBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for TarBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TarBuilder {
    pub fn new() -> Self {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
        TarBuilder { b }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(MTIME);
        h.set_size(0);
        h
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.dir_owned(path, mode, 0, 0)
    }

    pub fn dir_owned(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, uid, gid);
        self.b.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.file_owned(path, mode, 0, 0, data)
    }

    pub fn file_owned(
        &mut self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, uid, gid);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    /// A regular file preceded by a PAX header carrying `xattrs` (`SCHILY.xattr.NAME` records,
    /// as GNU tar, Docker and BuildKit write them).
    pub fn file_with_xattrs(
        &mut self,
        path: &str,
        mode: u32,
        data: &[u8],
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        let mut pax = Vec::new();
        for (k, v) in xattrs {
            // "LEN KEY=VALUE\n", LEN counting itself.
            let body = 1 + "SCHILY.xattr.".len() + k.len() + 1 + v.len() + 1;
            let mut len = body + 1;
            while len.to_string().len() + body != len {
                len = len.to_string().len() + body;
            }
            pax.extend_from_slice(format!("{len} SCHILY.xattr.{k}=").as_bytes());
            pax.extend_from_slice(v);
            pax.push(b'\n');
        }
        let mut h = Self::header(tar::EntryType::XHeader, 0o644, 0, 0);
        h.set_size(pax.len() as u64);
        self.b
            .append_data(&mut h, "PaxHeaders/entry", pax.as_slice())
            .unwrap();
        self.file(path, mode, data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    /// A hardlink entry; `mode` is the shared inode's mode (extractors apply it, as Docker's
    /// does, so it must be the target's).
    pub fn hardlink(&mut self, path: &str, target: &str, mode: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Link, mode, 0, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    /// An entry with a raw name written into the header as is (no checks), for hostile tars.
    pub fn raw(
        &mut self,
        kind: tar::EntryType,
        name: &str,
        link: Option<&str>,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Self::header(kind, 0o644, 0, 0);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                old.linkname = [0; 100];
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    /// A char/block device or fifo.
    pub fn node(&mut self, path: &str, kind: tar::EntryType, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(kind, 0o666, 0, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// The busybox rootfs (uncompressed tar bytes).
pub fn busybox_rootfs() -> Vec<u8> {
    let busybox =
        std::fs::read("/bin/busybox").expect("busybox-static must be installed (/bin/busybox)");
    let mut t = TarBuilder::new();
    for d in [
        "bin", "etc", "proc", "sys", "dev", "usr", "usr/bin", "var", "home",
    ] {
        t.dir(d, 0o755);
    }
    t.dir("tmp", 0o1777);
    t.dir("root", 0o700);
    t.dir_owned("home/app", 0o755, 1000, 1000);
    t.file("bin/busybox", 0o755, &busybox);
    for (i, a) in APPLETS.iter().enumerate() {
        // Mix hardlinks and symlinks, as real images do.
        if i % 2 == 0 {
            t.hardlink(&format!("bin/{a}"), "bin/busybox", 0o755);
        } else {
            t.symlink(&format!("bin/{a}"), "busybox");
        }
    }
    t.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    t.file(
        "etc/group",
        0o644,
        b"root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
    );
    t.finish()
}

/// Write the busybox rootfs tar to `path`.
pub fn busybox_rootfs_tar(path: &Path) {
    std::fs::write(path, busybox_rootfs()).unwrap();
}

/// Layer compression for the builders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

/// A layer ready to go into an archive.
#[derive(Debug, Clone)]
pub struct TestLayer {
    /// The blob as stored in the archive (compressed or not).
    pub blob: Vec<u8>,
    pub comp: Comp,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
}

impl TestLayer {
    pub fn new(tar: &[u8], comp: Comp) -> TestLayer {
        let blob = match comp {
            Comp::None => tar.to_vec(),
            Comp::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(tar).unwrap();
                e.finish().unwrap()
            }
            Comp::Zstd => zstd::encode_all(tar, 3).unwrap(),
        };
        TestLayer {
            blob,
            comp,
            diff_id: sha256(tar),
        }
    }

    pub fn digest(&self) -> String {
        sha256(&self.blob)
    }

    pub fn oci_media_type(&self) -> &'static str {
        match self.comp {
            Comp::None => "application/vnd.oci.image.layer.v1.tar",
            Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// `amd64`, `arm64`, … for this host.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// An image config document for these layers.
pub fn image_config(layers: &[TestLayer], cmd: &[&str], extra_env: &[&str]) -> Vec<u8> {
    let mut env = vec![PATH_ENV.to_string()];
    env.extend(extra_env.iter().map(|s| s.to_string()));
    let v = serde_json::json!({
        "architecture": host_arch(),
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": { "Cmd": cmd, "Env": env },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "history": layers.iter().map(|_| serde_json::json!({"created": "2024-01-02T03:04:05Z", "created_by": "berth tests"})).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&v).unwrap()
}

fn append_file(b: &mut tar::Builder<std::fs::File>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_mtime(MTIME);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

/// Write a docker-archive (`docker save` format) with one image.
pub fn write_docker_archive(path: &Path, config: &[u8], layers: &[TestLayer], tags: &[&str]) {
    let f = std::fs::File::create(path).unwrap();
    let mut b = tar::Builder::new(f);
    let cfg_hex = sha256(config)[7..].to_string();
    let cfg_name = format!("{cfg_hex}.json");
    append_file(&mut b, &cfg_name, config);
    let mut names = Vec::new();
    for l in layers {
        let dir = &l.digest()[7..];
        let name = format!("{dir}/layer.tar");
        append_file(&mut b, &format!("{dir}/VERSION"), b"1.0");
        append_file(&mut b, &name, &l.blob);
        names.push(name);
    }
    let manifest = serde_json::json!([{ "Config": cfg_name, "RepoTags": tags, "Layers": names }]);
    append_file(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    b.into_inner().unwrap().sync_all().unwrap();
}

/// Write an oci-archive (OCI image layout in a tar) with one image; `name` goes into the
/// `org.opencontainers.image.ref.name` and `io.containerd.image.name` annotations.
pub fn write_oci_archive(path: &Path, config: &[u8], layers: &[TestLayer], name: Option<&str>) {
    let f = std::fs::File::create(path).unwrap();
    let mut b = tar::Builder::new(f);
    append_file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config),
            "size": config.len(),
        },
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.oci_media_type(),
            "digest": l.digest(),
            "size": l.blob.len(),
        })).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let mut desc = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha256(&manifest),
        "size": manifest.len(),
    });
    if let Some(n) = name {
        desc["annotations"] = serde_json::json!({
            "org.opencontainers.image.ref.name": n,
            "io.containerd.image.name": n,
        });
    }
    let index = serde_json::json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc] });
    append_file(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    let mut seen = std::collections::HashSet::new();
    for (d, data) in std::iter::once((sha256(config), config.to_vec()))
        .chain(std::iter::once((sha256(&manifest), manifest.clone())))
        .chain(layers.iter().map(|l| (l.digest(), l.blob.clone())))
    {
        if seen.insert(d.clone()) {
            append_file(&mut b, &format!("blobs/sha256/{}", &d[7..]), &data);
        }
    }
    b.into_inner().unwrap().sync_all().unwrap();
}

/// A busybox docker-archive tagged `tag` (Cmd ["sh"], Env PATH).
pub fn busybox_docker_archive(path: &Path, tag: &str) {
    let l = TestLayer::new(&busybox_rootfs(), Comp::None);
    let cfg = image_config(std::slice::from_ref(&l), &["sh"], &[]);
    write_docker_archive(path, &cfg, &[l], &[tag]);
}

/// A busybox oci-archive named `tag` (gzip layer; Cmd ["sh"], Env PATH).
pub fn busybox_oci_archive(path: &Path, tag: &str) {
    let l = TestLayer::new(&busybox_rootfs(), Comp::Gzip);
    let cfg = image_config(std::slice::from_ref(&l), &["sh"], &[]);
    write_oci_archive(path, &cfg, &[l], Some(tag));
}
