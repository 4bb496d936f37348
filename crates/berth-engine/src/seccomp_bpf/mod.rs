//! A seccomp filter compiled by berth: the OCI `linux.seccomp` of one container turned into a
//! classic BPF program with the meaning libseccomp gives it (as libcontainer builds it), so the
//! builtin runtime does not compile Docker's ~375-name allow list with libseccomp inside every
//! container's init (about 25 ms per start).
//!
//! Shape of the program: the architecture is checked first (an unknown one is killed, as
//! libseccomp's default bad-arch action), then, per architecture, a binary search over
//! syscall-number ranges (a few comparisons per syscall instead of libseccomp's linear chain)
//! ends in the action or in the argument checks of a conditional rule.
//!
//! Meaning, as libcontainer 0.7 with libseccomp 2.5 gives it:
//! - rules whose action equals the default action are skipped; a name unknown to libseccomp is
//!   skipped; a rule whose argument conditions name one index twice becomes one rule per
//!   condition;
//! - names resolve per architecture (a syscall the architecture lacks is skipped there); on
//!   x86 the socket and SysV IPC calls also match `socketcall`/`ipc` with the call number in
//!   argument 0, as libseccomp multiplexes them;
//! - the conditional rules of one syscall are alternatives; an unconditional rule wins over
//!   them; on 32-bit architectures (x86, x32, arm) only the low 32 bits of arguments and
//!   values are compared;
//! - on x86-64, numbers from `0x40000000` are x32 calls.
//!
//! What this compiler does not express ([`compile`] returns `None`): other architectures,
//! `SCMP_ACT_NOTIFY`, the `wait_killable_recv` flag, and one syscall with rules of different
//! actions. The builtin runtime then hands the spec to libcontainer as before.

use std::collections::{BTreeMap, HashSet};

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

mod codegen;
mod program;
#[cfg(test)]
mod tests;

pub use program::{load, run_filter, FilterFile, SeccompData};

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct SockFilter {
    /// Opcode (`BPF_LD | BPF_W | BPF_ABS`, …).
    pub code: u16,
    /// Forward jump, in instructions, when the condition holds.
    pub jt: u8,
    /// Forward jump, in instructions, when it does not.
    pub jf: u8,
    /// The constant operand.
    pub k: u32,
}

/// A compiled filter: the instructions and the `SECCOMP_FILTER_FLAG_*` bits to load it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// `SECCOMP_FILTER_FLAG_*` bits (TSYNC 1, LOG 2, SPEC_ALLOW 4).
    pub flags: u32,
    /// The instructions, at most 4096.
    pub insns: Vec<SockFilter>,
}

// Classic BPF opcodes.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGT_K: u16 = 0x25;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;

// seccomp return values.
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const BPF_MAXINSNS: usize = 4096;
const EPERM: u32 = 1;

/// An argument condition, after libcontainer's translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cmp {
    index: u32,
    op: LinuxSeccompOperator,
    /// The value compared with (the expected masked value for `MASKED_EQ`).
    datum: u64,
    /// The mask of `MASKED_EQ`.
    mask: u64,
}

/// The rules of one syscall on one architecture.
#[derive(Debug, Clone, Default)]
struct Entry {
    /// Actions of unconditional rules, in order.
    plain: Vec<u32>,
    /// Conditional rules: all conditions must hold.
    cond: Vec<(Vec<Cmp>, u32)>,
}

/// What one syscall number does on one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ret(u32),
    /// Any of these condition lists holding gives the action, else the default.
    Cond(Vec<Vec<Cmp>>, u32),
}

/// One architecture's part of the filter.
#[derive(Debug, Clone)]
struct ArchRules {
    arch: ScmpArch,
    wide: bool,
    rules: BTreeMap<u32, Entry>,
}

/// Whether a program can be compiled for this native architecture.
fn supported_native(native: Arch) -> bool {
    matches!(native, Arch::ScmpArchX86_64 | Arch::ScmpArchAarch64)
}

fn scmp_arch(a: Arch) -> Option<(ScmpArch, bool)> {
    Some(match a {
        Arch::ScmpArchX86_64 => (ScmpArch::X8664, true),
        Arch::ScmpArchX86 => (ScmpArch::X86, false),
        Arch::ScmpArchX32 => (ScmpArch::X32, false),
        Arch::ScmpArchAarch64 => (ScmpArch::Aarch64, true),
        Arch::ScmpArchArm => (ScmpArch::Arm, false),
        _ => return None,
    })
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Option<u32> {
    // libcontainer: errno defaults to EPERM, for TRACE too.
    let data = errno.unwrap_or(EPERM);
    Some(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | (data & 0xffff),
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | (data & 0xffff),
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => return None,
    })
}

/// Compile `sc` for a machine whose native architecture is `native`.
///
/// Returns `None` when the filter uses something this compiler does not express (see the
/// module documentation); the caller then leaves the filter to libseccomp.
pub fn compile(sc: &LinuxSeccomp, native: Arch) -> Option<Program> {
    if !supported_native(native) {
        return None;
    }
    let default = action(sc.default_action(), sc.default_errno_ret())?;
    let mut flags = 0u32;
    for f in sc.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => return None,
        };
    }
    // seccomp_init adds the native architecture; add_arch the listed ones.
    let mut arch_list = vec![native];
    for a in sc.architectures().iter().flatten() {
        if !arch_list.contains(a) {
            arch_list.push(*a);
        }
    }
    let mut arches = Vec::new();
    for a in arch_list {
        let (arch, wide) = scmp_arch(a)?;
        arches.push(ArchRules {
            arch,
            wide,
            rules: BTreeMap::new(),
        });
    }
    for rule in sc.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        // libcontainer: one rule per condition when an index repeats.
        let conds: Vec<Cmp> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| {
                // The runtime spec's MASKED_EQ: `value` is the mask, `valueTwo` the expected
                // value (as runc reads it).
                let masked = a.op() == LinuxSeccompOperator::ScmpCmpMaskedEq;
                Cmp {
                    index: u32::try_from(a.index()).unwrap_or(u32::MAX),
                    op: a.op(),
                    datum: if masked {
                        a.value_two().unwrap_or(0)
                    } else {
                        a.value()
                    },
                    mask: if masked { a.value() } else { 0 },
                }
            })
            .collect();
        if conds.iter().any(|c| c.index > 5) {
            return None;
        }
        let mut seen = HashSet::new();
        let split = !conds.iter().all(|c| seen.insert(c.index));
        let alternatives: Vec<Vec<Cmp>> = if split {
            conds.iter().map(|c| vec![*c]).collect()
        } else {
            vec![conds]
        };
        for name in rule.names() {
            if ScmpSyscall::from_name(name).is_err() {
                continue;
            }
            for ar in &mut arches {
                let Ok(nr) = ScmpSyscall::from_name_by_arch(name, ar.arch) else {
                    continue;
                };
                let nr = i32::from(nr);
                for conds in &alternatives {
                    add_rule(ar, nr, conds, act);
                }
            }
        }
    }
    let mut outcomes = Vec::new();
    for ar in &arches {
        let mut per_nr = BTreeMap::new();
        for (nr, e) in &ar.rules {
            let o = if let Some(first) = e.plain.first() {
                if e.plain.iter().any(|a| a != first) || e.cond.iter().any(|(_, a)| a != first) {
                    return None;
                }
                Outcome::Ret(*first)
            } else {
                let act = e.cond[0].1;
                if e.cond.iter().any(|(_, a)| *a != act) {
                    return None;
                }
                let mut alts: Vec<Vec<Cmp>> = Vec::new();
                for (c, _) in &e.cond {
                    let c = if ar.wide { c.clone() } else { narrow(c) };
                    if !alts.contains(&c) {
                        alts.push(c);
                    }
                }
                Outcome::Cond(alts, act)
            };
            per_nr.insert(*nr, o);
        }
        outcomes.push((ar.arch, ar.wide, per_nr));
    }
    let insns = codegen::generate(&outcomes, default)?;
    Some(Program { flags, insns })
}

/// Only the low 32 bits count on a 32-bit architecture.
fn narrow(c: &[Cmp]) -> Vec<Cmp> {
    c.iter()
        .map(|c| Cmp {
            datum: c.datum & 0xffff_ffff,
            mask: c.mask & 0xffff_ffff,
            ..*c
        })
        .collect()
}

fn add_rule(ar: &mut ArchRules, nr: i32, conds: &[Cmp], act: u32) {
    if ar.arch == ScmpArch::X86 {
        if let Some((mux, call, direct)) = x86_mux(nr) {
            // libseccomp: the multiplexed call with argument 0 = the call number (replacing
            // any condition on argument 0), and the direct syscall when there is one.
            let mut c: Vec<Cmp> = conds.iter().filter(|c| c.index != 0).copied().collect();
            c.insert(
                0,
                Cmp {
                    index: 0,
                    op: LinuxSeccompOperator::ScmpCmpEq,
                    datum: call,
                    mask: 0,
                },
            );
            push(ar, mux, &c, act);
            if let Some(d) = direct {
                push(ar, d, conds, act);
            }
            return;
        }
    }
    let Ok(nr) = u32::try_from(nr) else {
        // A pseudo syscall: this architecture does not have it.
        return;
    };
    push(ar, nr, conds, act);
}

fn push(ar: &mut ArchRules, nr: u32, conds: &[Cmp], act: u32) {
    let e = ar.rules.entry(nr).or_default();
    if conds.is_empty() {
        e.plain.push(act);
    } else {
        e.cond.push((conds.to_vec(), act));
    }
}

/// x86's multiplexed calls: `(socketcall or ipc, call number, direct syscall)` for a resolved
/// number (direct, or libseccomp's pseudo number when x86 has no direct call).
fn x86_mux(nr: i32) -> Option<(u32, u64, Option<u32>)> {
    const SOCKETCALL: u32 = 102;
    const IPC: u32 = 117;
    // Direct socket calls (Linux 4.3+) and their socketcall numbers.
    const SOCK: [(i32, u64); 15] = [
        (359, 1),
        (360, 8),
        (361, 2),
        (362, 3),
        (363, 4),
        (364, 18),
        (365, 15),
        (366, 14),
        (367, 6),
        (368, 7),
        (369, 11),
        (370, 16),
        (371, 12),
        (372, 17),
        (373, 13),
    ];
    const IPCS: [(i32, u64); 10] = [
        (393, 2),
        (394, 3),
        (395, 23),
        (396, 24),
        (397, 21),
        (398, 22),
        (399, 13),
        (400, 11),
        (401, 12),
        (402, 14),
    ];
    // Pseudo numbers whose direct call is outside the ranges above.
    const SOCK_MORE: [(i32, u64); 2] = [(337, 19), (345, 20)];
    let direct = |n: i32| u32::try_from(n).ok();
    if let Some((_, call)) = SOCK.iter().find(|(n, _)| *n == nr) {
        return Some((SOCKETCALL, *call, direct(nr)));
    }
    if let Some((_, call)) = IPCS.iter().find(|(n, _)| *n == nr) {
        return Some((IPC, *call, direct(nr)));
    }
    if (-120..=-100).contains(&nr) {
        let call = u64::from((-nr).unsigned_abs() % 100);
        let d = SOCK
            .iter()
            .chain(SOCK_MORE.iter())
            .find(|(_, c)| *c == call)
            .map(|(n, _)| *n);
        return Some((SOCKETCALL, call, d.and_then(direct)));
    }
    if (-224..=-200).contains(&nr) {
        let call = u64::from((-nr).unsigned_abs() % 200);
        let d = IPCS.iter().find(|(_, c)| *c == call).map(|(n, _)| *n);
        return Some((IPC, call, d.and_then(direct)));
    }
    None
}
