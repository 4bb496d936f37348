//! Runs the real `berth-supervise` binary: a forked "monitor" process blocks the supervised
//! signals, becomes a subreaper, forks the container init (`sh -c CMD`) and execs
//! berth-supervise, whose BERTH_EXE is a shell script that records how it was exec'd.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SUP: &str = env!("CARGO_BIN_EXE_berth-supervise");
const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut f = [0; 2];
    // SAFETY: `f` has room for two fds.
    assert_eq!(unsafe { libc::pipe2(f.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two fresh fds that nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(f[0]), OwnedFd::from_raw_fd(f[1])) }
}

fn pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (0, 0);
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid out-pointers; name and termios are NULL.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(r, 0);
    for fd in [m, s] {
        // SAFETY: fd is open.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: openpty returned two fresh fds.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

fn tmpdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("berth-supervise-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// A BERTH_EXE that records argv[0], its args, its open fds and one env var.
fn fake_berth(dir: &Path) -> PathBuf {
    let p = dir.join("berth");
    fs::write(
        &p,
        "#!/bin/sh\n\
         d=$(dirname \"$0\")\n\
         printf '%s\\n' \"$0\" \"$@\" > \"$d/args\"\n\
         ls /proc/$$/fd > \"$d/fds\"\n\
         printf '%s' \"$TESTVAR\" > \"$d/env\"\n\
         exit 0\n",
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[derive(Default)]
struct Spec<'a> {
    cmd: &'a str,
    flags: u32,
    extra: &'a [&'a str],
    /// The container gets a pty (its master becomes OUT_FD).
    tty: bool,
    /// The supervisor's fds 0, 1, 2 (default /dev/null).
    stdio: [Option<RawFd>; 3],
    /// Don't pass an IN_FD.
    no_stdin_pipe: bool,
    exe: Option<&'a str>,
}

struct Running {
    pid: libc::pid_t,
    dir: PathBuf,
    start: Instant,
    /// Read end of the sync pipe (fd 3 of the supervisor), kept open like berth's CLI.
    _sync_r: OwnedFd,
}

impl Running {
    fn wait(&self) -> i32 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
        assert_eq!(r, self.pid);
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        libc::WEXITSTATUS(status)
    }
    fn args(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("args"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
    fn fds(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("fds"))
            .unwrap()
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect()
    }
    fn log(&self) -> Vec<serde_json::Value> {
        let text = fs::read(self.dir.join("log")).unwrap();
        assert!(text.is_empty() || text.ends_with(b"\n"));
        let today = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d"])
            .output()
            .unwrap()
            .stdout;
        let today = String::from_utf8(today).unwrap();
        text.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_slice(l)
                    .unwrap_or_else(|e| panic!("bad line {:?}: {e}", String::from_utf8_lossy(l)));
                check_time(v["time"].as_str().unwrap(), today.trim());
                assert_eq!(v.as_object().unwrap().len(), 3);
                v
            })
            .collect()
    }
    /// (stream, log) pairs.
    fn entries(&self) -> Vec<(String, String)> {
        self.log()
            .iter()
            .map(|v| {
                (
                    v["stream"].as_str().unwrap().to_owned(),
                    v["log"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
    fn status_field(&self, key: &str) -> Option<String> {
        let s = fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        s.lines()
            .find(|l| l.starts_with(key))
            .map(|l| l[key.len()..].trim().to_owned())
    }
    /// Waits until the forked process has exec'd berth-supervise and it is polling.
    fn wait_supervising(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let comm = fs::read_to_string(format!("/proc/{}/comm", self.pid)).unwrap_or_default();
            if comm.trim() == "berth-supervise" {
                let wchan =
                    fs::read_to_string(format!("/proc/{}/wchan", self.pid)).unwrap_or_default();
                if wchan.contains("poll") || wchan == "0" || wchan.is_empty() {
                    std::thread::sleep(Duration::from_millis(50));
                    return;
                }
            }
            assert!(Instant::now() < deadline, "supervisor did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn check_time(t: &str, today: &str) {
    // 2026-11-22T00:33:00.123456789Z
    let b = t.as_bytes();
    assert_eq!(b.len(), 30, "{t}");
    for (i, &c) in b.iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(c, b'-'),
            10 => assert_eq!(c, b'T'),
            13 | 16 => assert_eq!(c, b':'),
            19 => assert_eq!(c, b'.'),
            29 => assert_eq!(c, b'Z'),
            _ => assert!(c.is_ascii_digit(), "{t}"),
        }
    }
    // Same date as the system's `date -u` (may straddle midnight, but rarely).
    assert_eq!(&t[..10], today, "{t}");
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Moves `fd` above 200 (CLOEXEC) so that dup2 onto small numbers cannot clobber it.
fn high(fd: RawFd) -> RawFd {
    // SAFETY: plain fcntl on an open fd.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 200) };
    assert!(r >= 0);
    r
}

fn spawn(dir: &Path, spec: &Spec) -> Running {
    let exe = match spec.exe {
        Some(e) => PathBuf::from(e),
        None => fake_berth(dir),
    };
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
        .unwrap();
    let devnull = fs::File::open("/dev/null").unwrap();
    let (sync_r, sync_w) = pipe();
    let (out_r, out_w) = if spec.tty { pty(24, 80) } else { pipe() };
    let (err_r, err_w) = pipe();
    let (in_r, in_w) = pipe();

    // Everything the children need, prepared before fork (only async-signal-safe calls
    // after it). All fds are CLOEXEC; each child dup2()s what it keeps.
    let sh = cstr("/bin/sh");
    let sh_argv_s = [cstr("sh"), cstr("-c"), cstr(spec.cmd)];
    let sh_argv: Vec<*const libc::c_char> = sh_argv_s
        .iter()
        .map(|c| c.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let env_s = [cstr("TESTVAR=hello"), cstr("PATH=/usr/bin:/bin")];
    let envp: Vec<*const libc::c_char> = env_s
        .iter()
        .map(|c| c.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let (err_arg, in_arg) = (
        if spec.tty { "-1" } else { "22" },
        if spec.tty || spec.no_stdin_pipe {
            "-1"
        } else {
            "23"
        },
    );
    let mut sup_args_s = vec![
        cstr(SUP),
        cstr(exe.to_str().unwrap()),
        cstr("/var/lib/berth test"),
        cstr(ID),
        cstr("PIDPLACEHOLDER"),
        cstr("20"),
        cstr("21"),
        cstr(err_arg),
        cstr(in_arg),
        cstr(&spec.flags.to_string()),
    ];
    sup_args_s.extend(spec.extra.iter().map(|s| cstr(s)));
    let mut sup_argv: Vec<*const libc::c_char> = sup_args_s
        .iter()
        .map(|c| c.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let sup_path = cstr(SUP);
    let stdio: Vec<RawFd> = spec
        .stdio
        .iter()
        .map(|s| high(s.unwrap_or(devnull.as_raw_fd())))
        .collect();
    let moves = [
        (high(sync_w.as_raw_fd()), 3),
        (high(log.as_raw_fd()), 20),
        (high(out_r.as_raw_fd()), 21),
        (high(err_r.as_raw_fd()), 22),
        (high(in_w.as_raw_fd()), 23),
    ];
    let (c_in, c_out, c_err) = (in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd());
    // SAFETY: sigset_t is plain data; all-zero is a valid (empty) value.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in [
            libc::SIGCHLD,
            libc::SIGWINCH,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
        ] {
            libc::sigaddset(&mut set, s);
        }
    }

    // SAFETY: the children only make async-signal-safe calls on memory prepared above.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
            let init = libc::fork();
            if init == 0 {
                libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                if spec.tty {
                    libc::setsid();
                    libc::ioctl(c_out, libc::TIOCSCTTY, 0);
                    libc::dup2(c_out, 0);
                    libc::dup2(c_out, 1);
                    libc::dup2(c_out, 2);
                } else {
                    libc::dup2(c_in, 0);
                    libc::dup2(c_out, 1);
                    libc::dup2(c_err, 2);
                }
                libc::execve(sh.as_ptr(), sh_argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
            for (i, &fd) in (0..).zip(stdio.iter()) {
                libc::dup2(fd, i);
            }
            for (from, to) in moves {
                libc::dup2(from, to);
            }
            // PID as decimal, without allocating.
            let mut buf = [0u8; 16];
            let mut digits = [0u8; 12];
            let (mut v, mut n) = (init.unsigned_abs(), 0);
            loop {
                digits[n] = b'0' + (v % 10) as u8;
                n += 1;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            for i in 0..n {
                buf[i] = digits[n - 1 - i];
            }
            sup_argv[4] = buf.as_ptr().cast();
            libc::execve(sup_path.as_ptr(), sup_argv.as_ptr(), envp.as_ptr());
            libc::_exit(126);
        }
    }
    for fd in stdio.iter().chain(moves.iter().map(|(f, _)| f)) {
        // SAFETY: closing our own temporary duplicates.
        unsafe { libc::close(*fd) };
    }
    Running {
        pid,
        dir: dir.to_owned(),
        start: Instant::now(),
        _sync_r: sync_r,
    }
}

fn read_all(fd: OwnedFd) -> String {
    let mut f = fs::File::from(fd);
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    s
}

fn expect_args(r: &Running, code: &str, flags: &str, extra: &[&str]) {
    let mut want = vec![
        r.dir.join("berth").to_str().unwrap().to_owned(),
        "--root".into(),
        "/var/lib/berth test".into(),
        "__monitor".into(),
        ID.into(),
        "--exited".into(),
        code.into(),
        "--flags".into(),
        flags.into(),
    ];
    want.extend(extra.iter().map(|s| s.to_string()));
    assert_eq!(r.args(), want);
}

#[test]
fn logs_streams_and_execs_back() {
    let dir = tmpdir("basic");
    let r = spawn(
        &dir,
        &Spec {
            cmd: "echo out; echo err >&2; printf 'two\\nlines'; exit 3",
            extra: &["x y", "--z", ""],
            ..Default::default()
        },
    );
    assert_eq!(r.wait(), 0);
    expect_args(&r, "3", "0", &["x y", "--z", ""]);
    let mut e = r.entries();
    e.sort();
    assert_eq!(
        e,
        [
            ("stderr".into(), "err\n".into()),
            ("stdout".into(), "lines".into()),
            ("stdout".into(), "out\n".into()),
            ("stdout".into(), "two\n".into()),
        ]
    );
    // fds 0-3 survive the exec back; the supervisor's own fds do not.
    let fds = r.fds();
    for fd in 0..=3 {
        assert!(fds.contains(&fd), "{fds:?}");
    }
    for fd in 20..=23 {
        assert!(!fds.contains(&fd), "{fds:?}");
    }
    assert_eq!(fs::read_to_string(dir.join("env")).unwrap(), "hello");
}

#[test]
fn escapes_json_and_replaces_invalid_utf8() {
    let dir = tmpdir("escape");
    let r = spawn(
        &dir,
        &Spec {
            cmd: r#"printf 'a"b\\c\t\001\010\014\r\n\377x\303\251\342\202\254\360\237\230\200 \355\240\200 end'"#,
            ..Default::default()
        },
    );
    assert_eq!(r.wait(), 0);
    expect_args(&r, "0", "0", &[]);
    let e = r.entries();
    let logs: Vec<&str> = e.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        logs,
        [
            "a\"b\\c\t\u{1}\u{8}\u{c}\r\n",
            "\u{fffd}xé€😀 \u{fffd}\u{fffd}\u{fffd} end"
        ]
    );
}

#[test]
fn utf8_split_across_writes() {
    let dir = tmpdir("split");
    // The two halves of "é" arrive in separate reads.
    let r = spawn(
        &dir,
        &Spec {
            cmd: r"printf 'a\303'; sleep 0.3; printf '\251b\n'",
            ..Default::default()
        },
    );
    assert_eq!(r.wait(), 0);
    let all: String = r.entries().iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(all, "aéb\n");
}

#[test]
fn forwards_sigterm_and_reports_signal_exit_and_rss() {
    let dir = tmpdir("sigterm");
    let r = spawn(
        &dir,
        &Spec {
            cmd: "echo started; exec sleep 100",
            ..Default::default()
        },
    );
    r.wait_supervising();
    // Wait until the container has written its line (and is therefore running `sleep`).
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::read(dir.join("log")).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no output");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let rss = r.status_field("VmRSS:").unwrap();
    eprintln!("berth-supervise VmRSS while supervising sleep: {rss}");
    let kib: u64 = rss.trim_end_matches("kB").trim().parse().unwrap();
    assert!(kib < 1024, "VmRSS {rss}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(r.pid, libc::SIGTERM) };
    assert_eq!(r.wait(), 0);
    expect_args(&r, &(128 + libc::SIGTERM).to_string(), "0", &[]);
    assert_eq!(r.entries(), [("stdout".into(), "started\n".into())]);
}

#[test]
fn drain_is_bounded_when_a_grandchild_keeps_the_pipe() {
    let dir = tmpdir("drain");
    let r = spawn(
        &dir,
        &Spec {
            cmd: "(sleep 3; echo late) & echo early; exit 7",
            ..Default::default()
        },
    );
    assert_eq!(r.wait(), 0);
    let took = r.start.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
    expect_args(&r, "7", "0", &[]);
    assert_eq!(r.entries(), [("stdout".into(), "early\n".into())]);
}

#[test]
fn attached_with_stdin() {
    let dir = tmpdir("attached");
    let (stdin_r, stdin_w) = pipe();
    let (stdout_r, stdout_w) = pipe();
    let (stderr_r, stderr_w) = pipe();
    let r = spawn(
        &dir,
        &Spec {
            cmd: "cat; echo done >&2",
            flags: 1 | 2,
            stdio: [
                Some(stdin_r.as_raw_fd()),
                Some(stdout_w.as_raw_fd()),
                Some(stderr_w.as_raw_fd()),
            ],
            ..Default::default()
        },
    );
    drop((stdin_r, stdout_w, stderr_w));
    let mut w = fs::File::from(stdin_w);
    w.write_all(b"hello\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    w.write_all(b"world\n").unwrap();
    drop(w); // EOF: stdin forwarding ends, the container's stdin is closed
    assert_eq!(r.wait(), 0);
    // Attached kept, stdin cleared.
    expect_args(&r, "0", "1", &[]);
    assert_eq!(read_all(stdout_r), "hello\nworld\n");
    assert_eq!(read_all(stderr_r), "done\n");
    let all: Vec<(String, String)> = r.entries();
    assert!(all.contains(&("stderr".into(), "done\n".into())), "{all:?}");
    let out: String = all
        .iter()
        .filter(|(s, _)| s == "stdout")
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(out, "hello\nworld\n");
}

#[test]
fn attached_cli_gone_clears_flag_but_keeps_logging() {
    let dir = tmpdir("gone");
    let (stdout_r, stdout_w) = pipe();
    let r = spawn(
        &dir,
        &Spec {
            cmd: "sleep 0.2; echo a; echo b >&2",
            flags: 1,
            stdio: [None, Some(stdout_w.as_raw_fd()), Some(stdout_w.as_raw_fd())],
            ..Default::default()
        },
    );
    drop((stdout_r, stdout_w)); // the CLI went away: writes get EPIPE
    assert_eq!(r.wait(), 0);
    expect_args(&r, "0", "0", &[]);
    let mut e = r.entries();
    e.sort();
    assert_eq!(
        e,
        [
            ("stderr".into(), "b\n".into()),
            ("stdout".into(), "a\n".into())
        ]
    );
}

#[test]
fn tty_output_and_winsize() {
    let dir = tmpdir("tty");
    // The supervisor's fd 0 is a terminal of 33x77; SIGWINCH copies that to the container.
    let (cli_m, cli_s) = pty(33, 77);
    let r = spawn(
        &dir,
        &Spec {
            cmd: "echo tty; stty size; sleep 1; stty size; exit 5",
            flags: 4,
            tty: true,
            stdio: [Some(cli_s.as_raw_fd()), None, None],
            ..Default::default()
        },
    );
    r.wait_supervising();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(r.pid, libc::SIGWINCH) };
    assert_eq!(r.wait(), 0);
    drop(cli_m);
    expect_args(&r, "5", "4", &[]);
    let fds = r.fds();
    assert!(!fds.contains(&20) && !fds.contains(&21), "{fds:?}");
    let out: String = r
        .entries()
        .iter()
        .inspect(|(s, _)| assert_eq!(s, "stdout"))
        .map(|(_, l)| l.clone())
        .collect();
    // The first `stty size` normally sees 24 80, unless the machine is slow to start it.
    assert!(out.starts_with("tty\r\n"), "{out:?}");
    assert!(out.ends_with("\r\n33 77\r\n"), "{out:?}");
}

#[test]
fn tty_stdin_goes_to_master() {
    let dir = tmpdir("ttyin");
    let (stdin_r, stdin_w) = pipe();
    let r = spawn(
        &dir,
        &Spec {
            cmd: "stty -echo; read line; echo \"got $line\"",
            flags: 2 | 4,
            tty: true,
            stdio: [Some(stdin_r.as_raw_fd()), None, None],
            ..Default::default()
        },
    );
    drop(stdin_r);
    let mut w = fs::File::from(stdin_w);
    std::thread::sleep(Duration::from_millis(200));
    w.write_all(b"ping\n").unwrap();
    assert_eq!(r.wait(), 0);
    drop(w);
    // stdin (fd 0) never hit EOF: flag kept.
    expect_args(&r, "0", "6", &[]);
    let out: String = r.entries().iter().map(|(_, l)| l.clone()).collect();
    assert!(out.ends_with("got ping\r\n"), "{out:?}");
}

#[test]
fn exec_failure_is_logged() {
    let dir = tmpdir("execfail");
    let r = spawn(
        &dir,
        &Spec {
            cmd: "exit 0",
            exe: Some("/nonexistent/berth"),
            ..Default::default()
        },
    );
    assert_eq!(r.wait(), 125);
    assert_eq!(
        r.entries(),
        [(
            "stderr".into(),
            "berth-supervise: cannot exec /nonexistent/berth: errno 2\n".into()
        )]
    );
}

#[test]
fn bad_arguments() {
    for args in [
        &["/bin/true", "/root"][..],
        &["rel", "/r", ID, "1", "20", "21", "22", "23", "0"],
        &["/bin/true", "/r", ID, "x", "20", "21", "22", "23", "0"],
        &["/bin/true", "/r", ID, "1", "20", "21", "22", "23", "z"],
        &["/bin/true", "/r", ID, "1", "-5", "21", "22", "23", "0"],
    ] {
        let out = std::process::Command::new(SUP).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with("berth-supervise: ") && err.contains("usage"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1);
    }
}

#[test]
fn bulk_output_is_complete() {
    let dir = tmpdir("bulk");
    let r = spawn(
        &dir,
        &Spec {
            cmd: "seq 1 100000; head -c 300000 /dev/urandom >&2",
            ..Default::default()
        },
    );
    assert_eq!(r.wait(), 0);
    let e = r.entries(); // every line parses as JSON
    let out: String = e
        .iter()
        .filter(|(s, _)| s == "stdout")
        .map(|(_, l)| l.as_str())
        .collect();
    let want: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(out, want);
    // A line split across two reads is logged as two entries (like Docker's partial lines).
    assert!(e.iter().filter(|(s, _)| s == "stdout").count() >= 100_000);
    let err_bytes: usize = e
        .iter()
        .filter(|(s, _)| s == "stderr")
        .map(|(_, l)| l.chars().count())
        .sum();
    // Each random byte becomes at most one character (U+FFFD or itself), valid multi-byte
    // sequences fewer.
    assert!(err_bytes > 100_000 && err_bytes <= 300_000, "{err_bytes}");
}
