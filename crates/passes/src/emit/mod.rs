//! What every pass's generators share (each pass's own are in its folder, `pass/NAME/seq.rs`).
//! A generator is a pure function returning the replacement sequence for one instruction as a
//! [`PatchBuf`], the patch the pass hands to the list as it is, matching the kernel's sequences
//! (reference: kernel-patching.md §4, §6, §7). Here: the builder methods they use ([`Emit`]),
//! the instruction constructors ([`ins`]), their error ([`RewriteError`]), and the invariant
//! check and kernel placement the golden tests apply to every generator ([`check`], [`to_kernel`]).
//!
//! # Targets inside a generated patch
//! A generator's jumps are either *local* (to one of its own slots, or to one past its end: the
//! instruction after the patch) or *escapes* to the original target of the instruction it
//! replaces (a blinded conditional jump, the `may_goto` counter check, a lowered `gotol`).
//! Local jumps are the buffer's default: kernel-style relative offsets in the slots themselves,
//! exactly as the kernel writes them in its `insn_buf`. Escapes are the explicit target
//! [`Target::OrigTarget`] ([`Emit::escape`]); their offset field holds 0 until placed.
//! [`targets`] lists both kinds; [`to_kernel`] places escapes as the kernel's array patcher would
//! (`off >= 0 ? off + len - 1 - k : off - k` for an escape at slot `k`), which is what the golden
//! tests compare with the kernel's literal sequences.
//!
//! Invariant (checked by [`check`], asserted in tests for every generator): every slot sequence
//! decodes with kernel-internal forms enabled, local targets stay within `0..=len` and never land
//! on the second slot of an ld_imm64, and the only explicit target is [`Target::OrigTarget`].

pub mod ins;

#[cfg(any(test, feature = "internals"))]
use bpfpatch_insn::{DecodeOptions, TargetKind, decode};
use bpfpatch_insn::{Insn, Op};
use bpfpatch_patch::{PatchBuf, Target};

/// Why a rewrite cannot be generated.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum RewriteError {
    /// A `gotol` whose distance does not fit the 16-bit `goto`.
    #[error("gotol offset {delta} does not fit a 16-bit goto")]
    GotolOutOfRange {
        /// The original relative offset.
        delta: i32,
    },
    /// An escape needs the original target but the instruction has none.
    #[error("the patch escapes to the original target, but none was given")]
    NoOrigTarget,
    /// A placed offset does not fit its field.
    #[error("offset {value} does not fit the jump field at patch slot {at}")]
    OffsetOverflow {
        /// Slot in the patch.
        at: usize,
        /// The offset.
        value: i64,
    },
    /// The frame is deeper than the verifier allows: no count goes below it.
    #[error(
        "stack depth {depth} is above the verifier's limit of {limit} bytes: no room below it for the may_goto count"
    )]
    StackTooDeep {
        /// Bytes used.
        depth: u32,
        /// Bytes the verifier allows a frame.
        limit: u32,
    },
    /// A tail-call map size the bound check cannot encode.
    #[error("tail-call map of {max_entries} entries does not fit a 32-bit immediate")]
    TailCallBound {
        /// The map size.
        max_entries: u32,
    },
}

/// What the generators add to a [`PatchBuf`] beyond its own builders.
pub trait Emit {
    /// Appends a jump (or `gotol`) to the original target of the replaced instruction
    /// ([`Target::OrigTarget`]); its offset field is set to 0 until placed.
    fn escape(&mut self, op: Op) -> &mut PatchBuf;

    /// Appends raw slots as they are (local jumps carry their relative offsets).
    fn push_slots(&mut self, insns: &[Insn]) -> &mut PatchBuf;

    /// Appends another generated patch: its local targets shift with it (they are relative),
    /// its escapes stay escapes (every explicit target is copied as it is: generators give
    /// only [`Target::OrigTarget`], which means the same wherever it sits).
    fn append(&mut self, other: &PatchBuf) -> &mut PatchBuf;
}

impl Emit for PatchBuf {
    fn escape(&mut self, op: Op) -> &mut PatchBuf {
        let slots = op.encode();
        let mut first = slots.first();
        let _ = first.set_rel_target(0);
        self.jump_to(first, Target::OrigTarget);
        self.push_slots(slots.as_slice().get(1..).unwrap_or(&[]))
    }

    fn push_slots(&mut self, insns: &[Insn]) -> &mut PatchBuf {
        for &insn in insns {
            self.push(insn);
        }
        self
    }

    fn append(&mut self, other: &PatchBuf) -> &mut PatchBuf {
        for (k, insn) in other.insns().enumerate() {
            match other.target(k) {
                Some(t) => self.jump_to(insn, t),
                None => self.push(insn),
            };
        }
        self
    }
}

/// Every slot of `p` with a jump target and where it goes: explicit targets as given
/// ([`Target::OrigTarget`] for escapes), local ones as [`Target::Local`] computed from the stored
/// offsets (`k + off + 1`). A local target outside `0..=len` is reported as-is (as
/// `Local(u32::MAX)` when negative or beyond `u32`) so [`check`] can refuse it.
#[cfg(any(test, feature = "internals"))]
pub fn targets(p: &PatchBuf) -> impl Iterator<Item = (usize, Target)> + '_ {
    p.insns().enumerate().filter_map(move |(k, insn)| {
        if let Some(t) = p.target(k) {
            return Some((k, t));
        }
        let (_, kind) = insn.target_field()?;
        if kind != TargetKind::Jump {
            return None;
        }
        let abs = insn.abs_target(k)?;
        Some((k, Target::Local(u32::try_from(abs).unwrap_or(u32::MAX))))
    })
}

/// Checks the invariant of the module documentation on a generated patch.
///
/// # Errors
/// A description of the first violation.
#[cfg(any(test, feature = "internals"))]
pub fn check(p: &PatchBuf) -> Result<(), String> {
    let insns: Vec<Insn> = p.insns().collect();
    let mut starts = vec![false; insns.len() + 1];
    let mut k = 0;
    while k < insns.len() {
        starts[k] = true;
        let (_, n) =
            decode(&insns[k..], DecodeOptions::INTERNAL).map_err(|e| format!("patch slot {k} does not decode: {e}"))?;
        k += n;
    }
    starts[insns.len()] = true;
    for (k, t) in targets(p) {
        match t {
            Target::OrigTarget => {}
            Target::Local(t) if usize::try_from(t).ok().and_then(|t| starts.get(t).copied()).unwrap_or(false) => {}
            Target::Local(t) => {
                return Err(format!(
                    "patch slot {k}: local target {t} is not an instruction start in 0..={}",
                    insns.len()
                ));
            }
            other => return Err(format!("patch slot {k}: explicit target {other:?} (only escapes are explicit)")),
        }
    }
    Ok(())
}

/// The slots of `p` as the kernel's array patcher leaves them when `p` replaces an instruction
/// whose original target is `orig_delta` slots after it (`target = pc + delta + 1`).
///
/// # Errors
/// [`RewriteError::NoOrigTarget`] if there are escapes but no delta;
/// [`RewriteError::OffsetOverflow`] if a placed offset does not fit its field.
#[cfg(any(test, feature = "internals"))]
pub fn to_kernel(p: &PatchBuf, orig_delta: Option<i64>) -> Result<Vec<Insn>, RewriteError> {
    let mut out: Vec<Insn> = p.insns().collect();
    let len = i64::try_from(out.len()).unwrap_or(i64::MAX);
    for k in (0..out.len()).filter(|&k| p.target(k) == Some(Target::OrigTarget)) {
        let d = orig_delta.ok_or(RewriteError::NoOrigTarget)?;
        let ki = i64::try_from(k).unwrap_or(i64::MAX);
        let value = if d >= 0 { d + len - 1 - ki } else { d - ki };
        let ok = out.get_mut(k).is_some_and(|s| s.set_rel_target(value));
        if !ok {
            return Err(RewriteError::OffsetOverflow { at: k, value });
        }
    }
    Ok(out)
}
