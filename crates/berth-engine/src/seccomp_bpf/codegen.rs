//! Code generation: symbolic jumps, then layout with long-jump fixes; the per-architecture
//! binary search over syscall numbers and the argument comparisons.

use super::*;

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

pub(super) fn generate(
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
