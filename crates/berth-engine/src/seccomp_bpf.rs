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
    let insns = generate(&outcomes, default)?;
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

// ---- code generation: symbolic jumps, then layout with long-jump fixes ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Next,
    Label(usize),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Plain(SockFilter),
    Jump {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Ja(usize),
    Label(usize),
}

#[derive(Default)]
struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }
    fn place(&mut self, l: usize) {
        self.ops.push(Op::Label(l));
    }
    fn ld(&mut self, off: u32) {
        self.ops.push(Op::Plain(SockFilter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: off,
        }));
    }
    fn and(&mut self, k: u32) {
        self.ops.push(Op::Plain(SockFilter {
            code: BPF_ALU_AND_K,
            jt: 0,
            jf: 0,
            k,
        }));
    }
    fn ret(&mut self, k: u32) {
        self.ops.push(Op::Plain(SockFilter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k,
        }));
    }
    fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.ops.push(Op::Jump { code, k, jt, jf });
    }
    fn ja(&mut self, l: usize) {
        self.ops.push(Op::Ja(l));
    }

    /// Lay out: a conditional jump farther than 255 instructions goes through `JA`s placed
    /// just after it. `None` when the program exceeds 4096 instructions.
    fn finish(mut self) -> Option<Vec<SockFilter>> {
        loop {
            let pos = positions(&self.ops, self.labels);
            let mut far_at = None;
            let mut at = 0usize;
            for (i, op) in self.ops.iter().enumerate() {
                match op {
                    Op::Label(_) => continue,
                    Op::Jump { jt, jf, .. } => {
                        let far = |t: &Target| matches!(t, Target::Label(l) if pos[*l].saturating_sub(at + 1) > 255);
                        if far(jt) || far(jf) {
                            far_at = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
            let Some(i) = far_at else { break };
            let Op::Jump { code, k, jt, jf } = self.ops[i] else {
                unreachable!("far_at is a jump")
            };
            let pos_of = |t: Target| match t {
                Target::Label(l) => Some(pos[l]),
                Target::Next => None,
            };
            let here = count(&self.ops[..i]);
            let is_far = |t: Target| pos_of(t).is_some_and(|p| p.saturating_sub(here + 1) > 255);
            let after = self.label();
            let mut tail = Vec::new();
            let mut route = |t: Target, asm: &mut Asm| -> Target {
                if is_far(t) {
                    let l = asm.label();
                    tail.push(Op::Label(l));
                    tail.push(Op::Ja(label_of(t)));
                    Target::Label(l)
                } else if t == Target::Next {
                    Target::Label(after)
                } else {
                    t
                }
            };
            let njt = route(jt, &mut self);
            let njf = route(jf, &mut self);
            tail.insert(
                0,
                Op::Jump {
                    code,
                    k,
                    jt: njt,
                    jf: njf,
                },
            );
            tail.push(Op::Label(after));
            self.ops.splice(i..=i, tail);
        }
        let pos = positions(&self.ops, self.labels);
        let mut insns = Vec::new();
        for op in &self.ops {
            let at = insns.len();
            let rel = |t: Target| -> Option<u8> {
                match t {
                    Target::Next => Some(0),
                    Target::Label(l) => u8::try_from(pos[l].checked_sub(at + 1)?).ok(),
                }
            };
            match *op {
                Op::Plain(f) => insns.push(f),
                Op::Jump { code, k, jt, jf } => insns.push(SockFilter {
                    code,
                    jt: rel(jt)?,
                    jf: rel(jf)?,
                    k,
                }),
                Op::Ja(l) => insns.push(SockFilter {
                    code: BPF_JMP_JA,
                    jt: 0,
                    jf: 0,
                    k: u32::try_from(pos[l].checked_sub(at + 1)?).ok()?,
                }),
                Op::Label(_) => {}
            }
        }
        (insns.len() <= BPF_MAXINSNS).then_some(insns)
    }
}

fn label_of(t: Target) -> usize {
    match t {
        Target::Label(l) => l,
        Target::Next => unreachable!("a near target is never expanded"),
    }
}

fn count(ops: &[Op]) -> usize {
    ops.iter().filter(|o| !matches!(o, Op::Label(_))).count()
}

/// Position (instruction index) of every label; all jumps go forward.
fn positions(ops: &[Op], labels: usize) -> Vec<usize> {
    let mut pos = vec![0usize; labels];
    let mut at = 0;
    for op in ops {
        match op {
            Op::Label(l) => pos[*l] = at,
            _ => at += 1,
        }
    }
    pos
}

fn audit_arch(a: ScmpArch) -> u32 {
    match a {
        ScmpArch::X8664 | ScmpArch::X32 => AUDIT_ARCH_X86_64,
        ScmpArch::X86 => AUDIT_ARCH_I386,
        ScmpArch::Aarch64 => AUDIT_ARCH_AARCH64,
        _ => AUDIT_ARCH_ARM,
    }
}

fn generate(
    arches: &[(ScmpArch, bool, BTreeMap<u32, Outcome>)],
    default: u32,
) -> Option<Vec<SockFilter>> {
    let mut asm = Asm::default();
    let bad = asm.label();
    let dflt = asm.label();
    let has = |a: ScmpArch| arches.iter().find(|x| x.0 == a);
    asm.ld(OFF_ARCH);
    let mut done: Vec<ScmpArch> = Vec::new();
    for (arch, _, _) in arches {
        if done.contains(arch) || *arch == ScmpArch::X32 && has(ScmpArch::X8664).is_some() {
            continue;
        }
        done.push(*arch);
        let next = asm.label();
        asm.jump(
            BPF_JMP_JEQ_K,
            audit_arch(*arch),
            Target::Next,
            Target::Label(next),
        );
        asm.ld(OFF_NR);
        if matches!(arch, ScmpArch::X8664 | ScmpArch::X32) {
            let x64 = has(ScmpArch::X8664);
            let x32 = has(ScmpArch::X32);
            let l32 = asm.label();
            match (x64, x32) {
                (Some((_, wide, rules)), None) => {
                    // x32 numbers (from 0x40000000) are a bad architecture, except -1 (a
                    // tracer skipping the call), as libseccomp filters x86-64.
                    let t = asm.label();
                    asm.jump(
                        BPF_JMP_JGE_K,
                        X32_SYSCALL_BIT,
                        Target::Next,
                        Target::Label(t),
                    );
                    asm.jump(
                        BPF_JMP_JEQ_K,
                        u32::MAX,
                        Target::Label(t),
                        Target::Label(bad),
                    );
                    asm.place(t);
                    tree(&mut asm, rules, *wide, default, dflt, 0, u32::MAX);
                }
                (x64, Some((_, wide32, rules32))) => {
                    // Numbers from 0x40000000 are x32 calls.
                    let lo = if x64.is_some() {
                        Target::Next
                    } else {
                        Target::Label(bad)
                    };
                    asm.jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, Target::Label(l32), lo);
                    if let Some((_, wide, rules)) = x64 {
                        tree(
                            &mut asm,
                            rules,
                            *wide,
                            default,
                            dflt,
                            0,
                            X32_SYSCALL_BIT - 1,
                        );
                    }
                    asm.place(l32);
                    tree(
                        &mut asm,
                        rules32,
                        *wide32,
                        default,
                        dflt,
                        X32_SYSCALL_BIT,
                        u32::MAX,
                    );
                }
                (None, None) => unreachable!("one of them is in the list"),
            }
        } else {
            let (_, wide, rules) = has(*arch)?;
            tree(&mut asm, rules, *wide, default, dflt, 0, u32::MAX);
        }
        asm.place(next);
    }
    asm.place(bad);
    asm.ret(RET_KILL_THREAD);
    asm.place(dflt);
    asm.ret(default);
    asm.finish()
}

/// Emit a search over `rules` for numbers in `lo..=hi` (the accumulator holds the number).
fn tree(
    asm: &mut Asm,
    rules: &BTreeMap<u32, Outcome>,
    wide: bool,
    default: u32,
    dflt: usize,
    lo: u32,
    hi: u32,
) {
    // Partition lo..=hi into runs of equal outcome; a conditional outcome is its own run.
    let mut runs: Vec<(u32, Option<&Outcome>)> = Vec::new();
    let mut cursor = u64::from(lo);
    let mut last: Option<(u32, &Outcome)> = None;
    for (nr, o) in rules.range(lo..=hi) {
        if u64::from(*nr) > cursor {
            runs.push((u32::try_from(cursor).unwrap_or(u32::MAX), None));
            last = None;
        }
        let merge = matches!(o, Outcome::Ret(_))
            && matches!(last, Some((end, p)) if u64::from(end) + 1 == u64::from(*nr) && p == o);
        if !merge {
            runs.push((*nr, Some(o)));
        }
        last = Some((*nr, o));
        cursor = u64::from(*nr) + 1;
    }
    if cursor <= u64::from(hi) {
        runs.push((u32::try_from(cursor).unwrap_or(u32::MAX), None));
    }
    search(asm, &runs, wide, default, dflt);
}

/// Binary search over runs given by their first number (the accumulator holds the number).
fn search(asm: &mut Asm, runs: &[(u32, Option<&Outcome>)], wide: bool, default: u32, dflt: usize) {
    if runs.len() == 1 {
        leaf(asm, runs[0].1, wide, default, dflt);
        return;
    }
    let mid = runs.len() / 2;
    let right = asm.label();
    asm.jump(
        BPF_JMP_JGE_K,
        runs[mid].0,
        Target::Label(right),
        Target::Next,
    );
    search(asm, &runs[..mid], wide, default, dflt);
    asm.place(right);
    search(asm, &runs[mid..], wide, default, dflt);
}

fn leaf(asm: &mut Asm, o: Option<&Outcome>, wide: bool, default: u32, dflt: usize) {
    match o {
        None => asm.ja(dflt),
        Some(Outcome::Ret(a)) => {
            if *a == default {
                asm.ja(dflt);
            } else {
                asm.ret(*a);
            }
        }
        Some(Outcome::Cond(alts, act)) => {
            for conds in alts {
                let fail = asm.label();
                for c in conds {
                    cmp(asm, c, wide, fail);
                }
                asm.ret(*act);
                asm.place(fail);
            }
            asm.ja(dflt);
        }
    }
}

/// Emit one argument condition: fall through when it holds, jump to `fail` otherwise.
fn cmp(asm: &mut Asm, c: &Cmp, wide: bool, fail: usize) {
    let lo_off = OFF_ARGS + 8 * c.index;
    let hi_off = lo_off + 4;
    let split = |v: u64| -> (u32, u32) {
        (
            u32::try_from(v >> 32).unwrap_or(0),
            u32::try_from(v & 0xffff_ffff).unwrap_or(0),
        )
    };
    let (dhi, dlo) = split(c.datum);
    let (mhi, mlo) = split(c.mask);
    let f = Target::Label(fail);
    let n = Target::Next;
    let pass = asm.label();
    let p = Target::Label(pass);
    use LinuxSeccompOperator as O;
    match c.op {
        O::ScmpCmpEq | O::ScmpCmpMaskedEq => {
            let masked = c.op == O::ScmpCmpMaskedEq;
            if wide {
                asm.ld(hi_off);
                if masked {
                    asm.and(mhi);
                }
                asm.jump(BPF_JMP_JEQ_K, dhi, n, f);
            }
            asm.ld(lo_off);
            if masked {
                asm.and(mlo);
            }
            asm.jump(BPF_JMP_JEQ_K, dlo, n, f);
        }
        O::ScmpCmpNe => {
            if wide {
                asm.ld(hi_off);
                asm.jump(BPF_JMP_JEQ_K, dhi, n, p);
            }
            asm.ld(lo_off);
            asm.jump(BPF_JMP_JEQ_K, dlo, f, n);
        }
        O::ScmpCmpGt | O::ScmpCmpGe | O::ScmpCmpLt | O::ScmpCmpLe => {
            // GT/GE pass when greater; LT/LE are their negations (LT = !GE, LE = !GT).
            let (code, invert) = match c.op {
                O::ScmpCmpGt => (BPF_JMP_JGT_K, false),
                O::ScmpCmpGe => (BPF_JMP_JGE_K, false),
                O::ScmpCmpLt => (BPF_JMP_JGE_K, true),
                _ => (BPF_JMP_JGT_K, true),
            };
            let (yes, no) = if invert { (f, p) } else { (p, f) };
            if wide {
                asm.ld(hi_off);
                asm.jump(BPF_JMP_JGT_K, dhi, yes, n);
                asm.jump(BPF_JMP_JEQ_K, dhi, n, no);
            }
            asm.ld(lo_off);
            asm.jump(code, dlo, yes, no);
        }
    }
    asm.place(pass);
}

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

/// A compiled filter as the builtin runtime's bundle keeps it (`filter.json`), with what the
/// container init must do around loading it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterFile {
    /// `SECCOMP_FILTER_FLAG_*` bits.
    pub flags: u32,
    /// The `struct sock_filter` array, hex-encoded.
    pub program: String,
    /// sha256 of the program bytes, hex-encoded; checked when loaded.
    pub sha256: String,
    /// The process's real capabilities, dropped to after loading the filter when the runtime
    /// was told to keep `CAP_SYS_ADMIN`/`CAP_SETPCAP` for loading it (no `no_new_privs`);
    /// `None` when the runtime sets the capabilities itself.
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

#[cfg(test)]
mod tests {
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
}
