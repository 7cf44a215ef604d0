//! Pure rewrite generators: each returns the replacement sequence for one instruction as a
//! [`Patchlet`], matching the kernel's sequences (reference: kernel-patching.md §4, §6, §7).
//!
//! # Targets inside a patchlet
//! A patchlet's jumps are either *local* (to one of its own slots, or to one past its end: the
//! instruction after the patchlet) or *escapes* to the original target of the instruction it
//! replaces (a blinded conditional jump, the `may_goto` counter check, a lowered `gotol`).
//! Local jumps are stored as kernel-style relative offsets in the slots themselves, exactly as
//! the kernel writes them in its `insn_buf`; escapes hold 0 until placed. [`Patchlet::targets`]
//! gives the patching engine both kinds; [`Patchlet::to_kernel`] places escapes as the kernel's
//! array patcher would (`off >= 0 ? off + len - 1 - k : off - k` for an escape at slot `k`), which
//! is what the golden tests compare with the kernel's literal sequences.
//!
//! Invariant (checked by [`Patchlet::check`], asserted in tests for every generator): every slot
//! sequence decodes with kernel-internal forms enabled, local targets stay within `0..=len` and
//! never land on the second slot of an ld_imm64.

pub mod blind;
pub mod ctx;
pub mod fixups;
pub mod ins;
pub mod lower_v4;
pub mod zext;

use bpfpatch_insn::{DecodeOptions, Insn, Op, TargetField, decode};

/// Where a jump of a patchlet goes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Target {
    /// Slot `k` of the patchlet; `k == len` is the instruction after the patchlet.
    Local(usize),
    /// The original target of the instruction the patchlet replaces.
    OrigTarget,
}

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
    #[error("patchlet escapes to the original target, but none was given")]
    NoOrigTarget,
    /// A placed offset does not fit its field.
    #[error("offset {value} does not fit the jump field at patchlet slot {at}")]
    OffsetOverflow {
        /// Slot in the patchlet.
        at: usize,
        /// The offset.
        value: i64,
    },
    /// The frame has no room for the `may_goto` counter.
    #[error("stack depth {depth} leaves no room for the may_goto counter (limit {limit})")]
    StackTooDeep {
        /// Bytes used.
        depth: u32,
        /// Bytes available.
        limit: u32,
    },
    /// A tail-call map size the bound check cannot encode.
    #[error("tail-call map of {max_entries} entries does not fit a 32-bit immediate")]
    TailCallBound {
        /// The map size.
        max_entries: u32,
    },
    /// A context access the layout does not allow.
    #[error(transparent)]
    Ctx(#[from] ctx::CtxError),
}

/// A replacement sequence for one instruction, with its jump targets.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Patchlet {
    insns: Vec<Insn>,
    escapes: Vec<usize>,
}

impl Patchlet {
    /// An empty patchlet.
    #[must_use]
    pub fn new() -> Patchlet {
        Patchlet::default()
    }

    /// Appends an instruction (local jumps carry their kernel-style relative offset).
    pub fn push(&mut self, op: Op) -> &mut Patchlet {
        self.insns.extend_from_slice(&op.encode());
        self
    }

    /// Appends raw slots as they are.
    pub fn push_raw(&mut self, insns: &[Insn]) -> &mut Patchlet {
        self.insns.extend_from_slice(insns);
        self
    }

    /// Appends a jump (or `gotol`) to the original target of the replaced instruction; its
    /// offset field is set to 0 until placed.
    pub fn push_escape(&mut self, op: Op) -> &mut Patchlet {
        let at = self.insns.len();
        let slots = op.encode();
        let mut first = slots.first();
        let _ = first.set_rel_target(0);
        self.insns.push(first);
        self.insns.extend_from_slice(slots.as_slice().get(1..).unwrap_or(&[]));
        self.escapes.push(at);
        self
    }

    /// Appends another patchlet; its local targets shift with it, its escapes stay escapes.
    pub fn append(&mut self, other: &Patchlet) -> &mut Patchlet {
        let base = self.insns.len();
        self.insns.extend_from_slice(&other.insns);
        self.escapes.extend(other.escapes.iter().map(|e| e + base));
        self
    }

    /// The slots (escapes hold offset 0).
    #[must_use]
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Number of slots.
    #[must_use]
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether there is no slot.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Slots that escape to the original target.
    #[must_use]
    pub fn escapes(&self) -> &[usize] {
        &self.escapes
    }

    /// Every slot with a PC-relative field and where it goes.
    ///
    /// Local targets are computed from the stored offsets (`k + off + 1`); a local target outside
    /// `0..=len` is reported as-is (as `Local(usize::MAX)` when negative) so [`Patchlet::check`] can refuse it.
    pub fn targets(&self) -> impl Iterator<Item = (usize, Target)> + '_ {
        self.insns.iter().enumerate().filter_map(move |(k, insn)| {
            if self.escapes.contains(&k) {
                return Some((k, Target::OrigTarget));
            }
            let (_, kind) = insn.target_field()?;
            if kind != bpfpatch_insn::TargetKind::Jump {
                return None;
            }
            let abs = insn.abs_target(k)?;
            Some((k, Target::Local(usize::try_from(abs).unwrap_or(usize::MAX))))
        })
    }

    /// Checks the invariant of the module documentation.
    ///
    /// # Errors
    /// A description of the first violation.
    pub fn check(&self) -> Result<(), String> {
        let mut starts = vec![false; self.insns.len() + 1];
        let mut k = 0;
        while k < self.insns.len() {
            starts[k] = true;
            let (_, n) = decode(&self.insns[k..], DecodeOptions::INTERNAL)
                .map_err(|e| format!("patchlet slot {k} does not decode: {e}"))?;
            k += n;
        }
        starts[self.insns.len()] = true;
        for (k, t) in self.targets() {
            if let Target::Local(t) = t
                && !starts.get(t).copied().unwrap_or(false)
            {
                return Err(format!(
                    "patchlet slot {k}: local target {t} is not an instruction start in 0..={}",
                    self.len()
                ));
            }
        }
        Ok(())
    }

    /// The slots as the kernel's array patcher leaves them when the patchlet replaces an
    /// instruction whose original target is `orig_delta` slots after it (`target = pc + delta + 1`).
    ///
    /// # Errors
    /// [`RewriteError::NoOrigTarget`] if there are escapes but no delta;
    /// [`RewriteError::OffsetOverflow`] if a placed offset does not fit its field.
    pub fn to_kernel(&self, orig_delta: Option<i64>) -> Result<Vec<Insn>, RewriteError> {
        let mut out = self.insns.clone();
        let len = i64::try_from(self.insns.len()).unwrap_or(i64::MAX);
        for &k in &self.escapes {
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
}

/// Whether a slot's target field is the 16-bit `off` (for callers checking ranges).
#[must_use]
pub fn has_short_target(insn: &Insn) -> bool {
    matches!(insn.target_field(), Some((TargetField::Off, _)))
}
