//! The compiler's verdicts against libseccomp's programs for the same rules.

use std::collections::HashSet;
use std::io::{Read, Seek};

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use oci_spec::runtime::Arch;

use super::*;
use crate::seccomp::Profile;

/// libseccomp's program for `sc`, built as libcontainer 0.7 builds it, with `native` as
/// the filter's native architecture.
fn libseccomp_program(sc: &LinuxSeccomp, native: Arch) -> Vec<SockFilter> {
    let act = |a: LinuxSeccompAction, e: Option<u32>| {
        let e = e.map(|e| i32::try_from(e).unwrap()).unwrap_or(libc::EPERM);
        match a {
            LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
                ScmpAction::KillThread
            }
            LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
            LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
            LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(e),
            LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(u16::try_from(e).unwrap()),
            LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
            LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
            LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        }
    };
    let def = act(sc.default_action(), sc.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(def).unwrap();
    let (n, _) = scmp_arch(native).unwrap();
    ctx.add_arch(n).unwrap();
    if n != ScmpArch::X8664 {
        ctx.remove_arch(ScmpArch::X8664).unwrap();
    }
    for a in sc.architectures().iter().flatten() {
        ctx.add_arch(scmp_arch(*a).unwrap().0).unwrap();
    }
    ctx.set_ctl_nnp(false).unwrap();
    for r in sc.syscalls().iter().flatten() {
        let a = act(r.action(), r.errno_ret());
        if a == def {
            continue;
        }
        for name in r.names() {
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                continue;
            };
            match r.args() {
                Some(args) => {
                    let cmps: Vec<ScmpArgCompare> = args
                        .iter()
                        .map(|x| {
                            let op = match x.op() {
                                LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
                                LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
                                LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                                LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                                LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                                LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
                                LinuxSeccompOperator::ScmpCmpMaskedEq => {
                                    ScmpCompareOp::MaskedEqual(x.value())
                                }
                            };
                            // As the builtin runtime gets it (seccomp::for_libcontainer):
                            // the mask in `value`, the expected value in `valueTwo`.
                            let datum = if x.op() == LinuxSeccompOperator::ScmpCmpMaskedEq {
                                x.value_two().unwrap_or(0)
                            } else {
                                x.value()
                            };
                            ScmpArgCompare::new(u32::try_from(x.index()).unwrap(), op, datum)
                        })
                        .collect();
                    let idx: Vec<u32> = args
                        .iter()
                        .map(|x| u32::try_from(x.index()).unwrap())
                        .collect();
                    let dup = idx.iter().collect::<HashSet<_>>().len() != idx.len();
                    if dup {
                        for c in &cmps {
                            ctx.add_rule_conditional(a, sys, std::slice::from_ref(c))
                                .unwrap();
                        }
                    } else {
                        ctx.add_rule_conditional(a, sys, &cmps).unwrap();
                    }
                }
                None => {
                    ctx.add_rule(a, sys).unwrap();
                }
            }
        }
    }
    let mut f = tempfile::tempfile().unwrap();
    ctx.export_bpf(&f).unwrap();
    f.rewind().unwrap();
    let mut b = Vec::new();
    f.read_to_end(&mut b).unwrap();
    Program::insns_from_bytes(&b).unwrap()
}

/// Syscall inputs: every number with zero arguments, and many argument values for the
/// numbers that rules with conditions name (on any architecture) or that x86
/// multiplexes.
fn inputs(sc: &LinuxSeccomp, arches: &[u32]) -> Vec<SeccompData> {
    let values: [u64; 14] = [
        0,
        1,
        8,
        0x2_0000,
        0x2_0008,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_ffff_ffff,
        0x7E02_0000,
        0x1000_0000, // CLONE_NEWUSER
        0x0002_0000, // CLONE_NEWNS
        0x0001_1200, // a thread's clone flags
        40,
        u64::MAX,
    ];
    let mut interesting: HashSet<u32> = [102, 117].into_iter().collect();
    interesting.extend(359..=373);
    interesting.extend(393..=402);
    for r in sc.syscalls().iter().flatten() {
        if r.args().is_none() {
            continue;
        }
        for n in r.names() {
            for a in [
                ScmpArch::X8664,
                ScmpArch::X86,
                ScmpArch::X32,
                ScmpArch::Aarch64,
                ScmpArch::Arm,
            ] {
                if let Ok(nr) = ScmpSyscall::from_name_by_arch(n, a) {
                    if let Ok(nr) = u32::try_from(i32::from(nr)) {
                        interesting.insert(nr);
                    }
                }
            }
        }
    }
    let mut nrs: Vec<u32> = (0..1100).collect();
    nrs.extend(0x4000_0000..0x4000_0000 + 600);
    nrs.extend([
        0x000f_0000,
        0x000f_0001,
        0x000f_0002,
        0x000f_0005,
        u32::MAX,
        0x3fff_ffff,
    ]);
    let mut out = Vec::new();
    for &arch in arches {
        for &nr in &nrs {
            out.push(SeccompData {
                nr,
                arch,
                args: [0; 6],
            });
            if !interesting.contains(&nr) {
                continue;
            }
            for (i, v) in values.iter().enumerate() {
                for w in values {
                    let mut args = [*v; 6];
                    args[1] = w;
                    args[2] = values[(i + 5) % values.len()];
                    out.push(SeccompData { nr, arch, args });
                }
                for j in 0..6 {
                    let mut args = [0; 6];
                    args[j] = *v;
                    out.push(SeccompData { nr, arch, args });
                }
            }
        }
    }
    out
}

fn same_as_libseccomp(sc: &LinuxSeccomp, native: Arch, arches: &[u32]) -> Program {
    let ours = compile(sc, native).expect("compiles");
    let theirs = libseccomp_program(sc, native);
    for d in inputs(sc, arches) {
        let a = ours.run(&d);
        let b = run_filter(&theirs, &d);
        assert!(a.is_some(), "ours fails on {d:x?}");
        assert_eq!(a, b, "differs from libseccomp on {d:x?}");
    }
    ours
}

const ARCHES: [u32; 5] = [
    AUDIT_ARCH_X86_64,
    AUDIT_ARCH_I386,
    AUDIT_ARCH_AARCH64,
    AUDIT_ARCH_ARM,
    0x1234,
];

fn caps(v: &[&str]) -> HashSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn docker_default_profile_means_what_libseccomp_makes_of_it() {
    let p = Profile::default_profile();
    let def = caps(crate::capabilities::DEFAULT_CAPS);
    let mut admin = def.clone();
    admin.insert("CAP_SYS_ADMIN".into());
    let all = caps(crate::capabilities::ALL_CAPS);
    for c in [&def, &admin, &all, &HashSet::new()] {
        for (native, goarch) in [
            (Arch::ScmpArchX86_64, "amd64"),
            (Arch::ScmpArchAarch64, "arm64"),
        ] {
            let sc = p.to_oci_for(c, Some((native, goarch)), (6, 1)).unwrap();
            let prog = same_as_libseccomp(&sc, native, &ARCHES);
            assert!(prog.insns.len() < 1000, "{} instructions", prog.insns.len());
        }
    }
}

#[test]
fn default_profile_decisions() {
    let p = Profile::default_profile();
    let def = caps(crate::capabilities::DEFAULT_CAPS);
    let sc = p
        .to_oci_for(&def, Some((Arch::ScmpArchX86_64, "amd64")), (6, 1))
        .unwrap();
    let prog = compile(&sc, Arch::ScmpArchX86_64).unwrap();
    let run = |nr: u32, args: [u64; 6]| {
        prog.run(&SeccompData {
            nr,
            arch: AUDIT_ARCH_X86_64,
            args,
        })
        .unwrap()
    };
    let eperm = RET_ERRNO | 1;
    assert_eq!(run(0, [0; 6]), RET_ALLOW); // read
    assert_eq!(run(165, [0; 6]), eperm); // mount
    assert_eq!(run(272, [0; 6]), eperm); // unshare
    assert_eq!(run(250, [0; 6]), eperm); // keyctl
    assert_eq!(run(321, [0; 6]), eperm); // bpf
    assert_eq!(run(425, [0; 6]), eperm); // io_uring_setup
    assert_eq!(run(56, [0x0001_1200, 0, 0, 0, 0, 0]), RET_ALLOW); // clone, a thread
    assert_eq!(run(56, [0x1000_0000, 0, 0, 0, 0, 0]), eperm); // clone(CLONE_NEWUSER)
    assert_eq!(run(435, [0; 6]), RET_ERRNO | 38); // clone3 → ENOSYS
    assert_eq!(run(135, [8, 0, 0, 0, 0, 0]), RET_ALLOW); // personality(PER_LINUX32)
    assert_eq!(run(135, [1, 0, 0, 0, 0, 0]), eperm);
    // i386 reached from x86-64, and an unknown architecture is killed.
    let i386 = SeccompData {
        nr: 102,
        arch: AUDIT_ARCH_I386,
        args: [1, 0, 0, 0, 0, 0],
    };
    assert_eq!(prog.run(&i386), Some(RET_ALLOW));
    let odd = SeccompData {
        arch: 0x1234,
        ..i386
    };
    assert_eq!(prog.run(&odd), Some(RET_KILL_THREAD));
}

#[test]
fn custom_profiles_mean_what_libseccomp_makes_of_them() {
    // Every operator with 64-bit values, repeated indexes, other actions and errnos, no
    // x32 (numbers from 0x40000000 are a bad architecture), x86's multiplexed calls.
    let text = r#"{
      "defaultAction": "SCMP_ACT_ALLOW",
      "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
      "flags": ["SECCOMP_FILTER_FLAG_LOG"],
      "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
         "args": [{"index": 0, "value": 4294967296, "op": "SCMP_CMP_GT"}]},
        {"names": ["write"], "action": "SCMP_ACT_KILL_PROCESS",
         "args": [{"index": 2, "value": 40, "op": "SCMP_CMP_GE"},
                  {"index": 1, "value": 8, "op": "SCMP_CMP_NE"}]},
        {"names": ["open"], "action": "SCMP_ACT_TRAP",
         "args": [{"index": 1, "value": 4294967295, "op": "SCMP_CMP_LT"}]},
        {"names": ["close"], "action": "SCMP_ACT_LOG",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_LE"}]},
        {"names": ["dup"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                  {"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mmap"], "action": "SCMP_ACT_TRACE", "errnoRet": 7,
         "args": [{"index": 3, "value": 18446744069414584320, "valueTwo": 4294967296, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["socket", "accept", "shmget", "semop"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["connect"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "args": [{"index": 2, "value": 16, "op": "SCMP_CMP_EQ"}]},
        {"names": ["getpid", "no_such_call"], "action": "SCMP_ACT_KILL"},
        {"names": ["gettid"], "action": "SCMP_ACT_ALLOW"}
      ]
    }"#;
    let p = Profile::parse("custom.json", text).unwrap();
    let sc = p
        .to_oci_for(
            &HashSet::new(),
            Some((Arch::ScmpArchX86_64, "amd64")),
            (6, 1),
        )
        .unwrap();
    let prog = same_as_libseccomp(&sc, Arch::ScmpArchX86_64, &ARCHES);
    assert_eq!(prog.flags, 2);
    // Errno default, an x32-only architecture list.
    let text = r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
      "architectures": ["SCMP_ARCH_X32"],
      "syscalls": [{"names": ["read", "write", "exit"], "action": "SCMP_ACT_ALLOW"}]}"#;
    let p = Profile::parse("x32.json", text).unwrap();
    let sc = p
        .to_oci_for(
            &HashSet::new(),
            Some((Arch::ScmpArchX86_64, "amd64")),
            (6, 1),
        )
        .unwrap();
    same_as_libseccomp(&sc, Arch::ScmpArchX86_64, &ARCHES);
}

#[test]
fn what_libseccomp_must_handle_is_left_to_it() {
    let text = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
        {"names": ["read"], "action": "SCMP_ACT_LOG", "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]}"#;
    let p = Profile::parse("mixed.json", text).unwrap();
    let sc = p.to_oci_for(&HashSet::new(), None, (6, 1)).unwrap();
    assert!(compile(&sc, Arch::ScmpArchX86_64).is_none());
    let text = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}"#;
    let p = Profile::parse("notify.json", text).unwrap();
    let sc = p.to_oci_for(&HashSet::new(), None, (6, 1)).unwrap();
    assert!(compile(&sc, Arch::ScmpArchX86_64).is_none());
    let sc = Profile::default_profile()
        .to_oci_for(
            &HashSet::new(),
            Some((Arch::ScmpArchS390x, "s390x")),
            (6, 1),
        )
        .unwrap();
    assert!(compile(&sc, Arch::ScmpArchS390x).is_none());
}

#[test]
fn long_jumps_are_laid_out() {
    // Thousands of conditional rules force jumps farther than 255 instructions.
    let mut rules = Vec::new();
    for n in ["read", "write", "openat", "close", "mmap", "fstat"] {
        for v in 0..60 {
            rules.push(format!(
                r#"{{"names": ["{n}"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 1, "value": {v}, "op": "SCMP_CMP_EQ"}}]}}"#
            ));
        }
    }
    let text = format!(
        r#"{{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [{}]}}"#,
        rules.join(",")
    );
    let p = Profile::parse("big.json", &text).unwrap();
    let sc = p
        .to_oci_for(
            &HashSet::new(),
            Some((Arch::ScmpArchX86_64, "amd64")),
            (6, 1),
        )
        .unwrap();
    let prog = same_as_libseccomp(&sc, Arch::ScmpArchX86_64, &[AUDIT_ARCH_X86_64]);
    assert!(prog.insns.len() > 1000, "{}", prog.insns.len());
}
