//! Linear-time list-based patching of eBPF programs, with the verifier's side tables, and a
//! model of the kernel's one-patch-at-a-time algorithm as the test oracle.
//!
//! # Why
//!
//! The kernel patches one instruction at a time: each `bpf_patch_insn_data` moves the whole
//! image, rescans every branch and shifts every side table, so M patches of an N-slot program
//! cost O(N·M) (1M patches took 5100 s in 2019). Jiong Wang's RFC (2019) turned the program into
//! a list, patched the list and linearized once; Andrii Nakryiko and Edward Cree asked for an
//! immutable original index space, several passes over one list, and jumps leaving patch
//! buffers. This crate is that design, completed: O(original + inserted) time and memory.
//!
//! # Model
//!
//! A [`PatchList`] is an arena of *slot nodes* in `Vec`s with `u32` links (no allocation per
//! node). Nodes `0..n` are the original slots (so original slot `i` is always node `i`), node
//! `n` is an end sentinel, nodes created by patches follow. A node id names a **position**:
//! every reference bound to it lands on whatever that position holds when the list is
//! linearized. Targets stay symbolic until then:
//!
//! - a **jump** (conditional, `goto`, `gotol`, `may_goto`) references a node: its *jump group*;
//! - a **call** (bpf-to-bpf), an ld_imm64 **`PSEUDO_FUNC`**, a **subprogram start** and the call
//!   side of a **label** reference a *call group*, which starts as the node itself and is moved
//!   by skipping prepatches and deletions exactly where the kernel moves such references.
//!
//! [`PatchList::linearize`] walks the list once, giving every node the index of the first slot
//! emitted at or after it, then resolves the recorded `(slot, node)` fixups in one pass (cranelift
//! `MachBuffer` style) and returns the instructions with an [`OffsetMap`]. The verification layer
//! ([`PatchList::linearize_program`]) remaps aux data and every side table through that map in
//! the same pass; nothing has a hand-written adjuster.
//!
//! # Targeting rules
//!
//! Each rule matches the kernel where the kernel defines it (the differential test checks this
//! against [`reference`](mod@reference)). In the examples, `jt(i)` is the absolute target of output slot `i`.
//!
//! ```
//! use bpfpatch_insn::{Insn, Slot, opcode as c};
//! use bpfpatch_patch::*;
//! let mov = |d: u8, k: i32| Insn::new(c::ALU64 | c::MOV | c::K, d, 0, 0, k);
//! let ja = |off: i16| Insn::new(c::JMP | c::JA, 0, 0, off, 0);
//! let call = |imm: i32| Insn::new(c::JMP | c::CALL, 0, c::PSEUDO_CALL, 0, imm);
//! let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
//! let jt = |p: &[Insn], i: usize| p[i].abs_target(i).unwrap();
//!
//! // 0: call 3 ; 1: goto 3 ; 2: exit ; 3: r0 = 1 (subprogram) ; 4: exit
//! let prog = [call(2), ja(1), exit, mov(0, 1), exit];
//!
//! // 1. patch: everything that reached the instruction reaches the first slot of its patch;
//! //    its identity (aux, relocations) moves to the last instruction of the patch.
//! let mut l = PatchList::new(&prog)?;
//! l.patch(l.node_of(Slot(3))?, &PatchBuf::from_insns(&[mov(9, 9), mov(0, 1)]))?;
//! let out = l.linearize(LinearizeOptions::default())?;
//! assert_eq!((jt(&out.insns, 0), jt(&out.insns, 1)), (3, 3));
//! assert_eq!(out.map.insn(Slot(3)), Some(Slot(4)));
//!
//! // 2. delete: references land on the first surviving slot after the deleted ones.
//! let jumpy = [ja(1), mov(0, 0), mov(0, 1), exit];
//! let mut l = PatchList::new(&jumpy)?;
//! l.delete(l.node_of(Slot(2))?)?;
//! let out = l.linearize(LinearizeOptions::default())?;
//! assert_eq!(jt(&out.insns, 0), 2); // the exit
//!
//! // 3a. prepatch, LandOnInserted (instrumentation): jumps and calls run the inserted code.
//! let mut l = PatchList::new(&prog)?;
//! l.prepatch(l.node_of(Slot(3))?, &PatchBuf::from_insns(&[mov(8, 8)]), PrepatchMode::LandOnInserted)?;
//! let out = l.linearize(LinearizeOptions::default())?;
//! assert_eq!((jt(&out.insns, 0), jt(&out.insns, 1)), (3, 3));
//!
//! // 3b. prepatch, SkipForJumps (a prologue; the kernel's adjust_jmp_off): calls enter the
//! //     inserted code, jumps keep landing on the instruction.
//! let mut l = PatchList::new(&prog)?;
//! l.prepatch(l.node_of(Slot(3))?, &PatchBuf::from_insns(&[mov(8, 8)]), PrepatchMode::SkipForJumps)?;
//! let out = l.linearize(LinearizeOptions::default())?;
//! assert_eq!((jt(&out.insns, 0), jt(&out.insns, 1)), (3, 4));
//! # Ok::<(), Error>(())
//! ```
//!
//! **Calls.** A jump names a *position*: it lands on the first slot emitted at or after its
//! node, whenever the reference was made. A call (bpf-to-bpf call, ld_imm64 `PSEUDO_FUNC`) names
//! the *instruction its target holds when the reference is made*, and from then on moves as the
//! kernel moves a call (which `adjust_jmp_off` never does):
//!
//! - a skipping prologue inserted at x later is entered by every call made to x before it
//!   (original calls, `Node(x)`/`Orig(x)` calls, labels bound to x, subprogram starts);
//! - a call made *after* that prologue to `Node(x)`, `Orig(x)` or a label bound then lands on
//!   x's instruction, past the prologue (to enter it, target the prologue's node, or
//!   [`Target::Subprog`] when x starts a subprogram); so does a prologue's own call to
//!   [`Target::PastEnd`], and a patch buffer's call to its own slot `k` lands on that slot;
//! - a deleted position cannot be named by a new reference ([`Error::TargetDeleted`]); a
//!   reference made before the deletion lands on the first survivor and moves with it (into a
//!   prologue inserted there later, as the kernel's collapsed index would);
//! - a reference keeps its kind: `OrigTarget` and [`PatchList::set_insn`] refuse to turn a
//!   jump's target into a call's or the reverse.
//!
//! ```
//! use bpfpatch_insn::{Insn, Slot, opcode as c};
//! use bpfpatch_patch::*;
//! let mov = |d: u8, k: i32| Insn::new(c::ALU64 | c::MOV | c::K, d, 0, 0, k);
//! let call = |imm: i32| Insn::new(c::JMP | c::CALL, 0, c::PSEUDO_CALL, 0, imm);
//! let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
//! let jt = |p: &[Insn], i: usize| p[i].abs_target(i).unwrap();
//!
//! // 0: call 2 ; 1: exit ; 2: r0 = 1 (subprogram) ; 3: exit
//! let prog = [call(1), exit, mov(0, 1), exit];
//! let mut l = PatchList::new(&prog)?;
//! let x = l.node_of(Slot(2))?;
//! let before = l.label_at(x)?; // bound before the prologue
//! // A prologue at x whose own call goes past its end: to x's instruction.
//! let mut pro = PatchBuf::new();
//! pro.push(mov(8, 8)).jump_to(call(0), Target::PastEnd);
//! l.prepatch(x, &pro, PrepatchMode::SkipForJumps)?;
//! // New calls made now, at the exit (slot 1): by node, and through the early label.
//! let mut b = PatchBuf::new();
//! b.jump_to(call(0), Target::Node(x)).jump_to(call(0), Target::Label(before)).push(exit);
//! l.patch(l.node_of(Slot(1))?, &b)?;
//! let out = l.linearize(LinearizeOptions::default())?.insns;
//! // 0: call ; 1: call Node(x) ; 2: call label ; 3: exit ; 4: r8 = 8 ; 5: call PastEnd ; 6: r0 = 1
//! assert_eq!(jt(&out, 0), 4); // the original call enters the prologue
//! assert_eq!(jt(&out, 1), 6); // a call made after it lands on x's instruction
//! assert_eq!(jt(&out, 2), 4); // the label took its call landing when bound: the prologue
//! assert_eq!(jt(&out, 5), 6); // the prologue's PastEnd: the instruction
//! // Deleted code cannot be named; references made before the deletion follow the survivor.
//! let prog2 = [call(1), exit, mov(9, 0), mov(0, 1), exit];
//! let mut l = PatchList::new(&prog2)?;
//! let d = l.node_of(Slot(2))?;
//! l.delete(d)?;
//! let mut b = PatchBuf::new();
//! b.jump_to(call(0), Target::Node(d)).push(exit);
//! assert_eq!(l.patch(l.node_of(Slot(1))?, &b), Err(Error::TargetDeleted { index: 0, node: d }));
//! # Ok::<(), Error>(())
//! ```
//!
//! Jumps inside a patch buffer ([`Target`]) are buffer-local by default (the instruction's own
//! offset, as in the kernel, where `len` means one past the end); explicit targets express what
//! the kernel passes compute by hand: [`Target::PastEnd`], [`Target::OrigTarget`] (the patched
//! instruction's target, e.g. blinding's `jcc`, the may_goto guard), [`Target::Orig`] (any
//! original slot), [`Target::Node`], [`Target::Label`] (bound before or after), and
//! [`Target::Subprog`]:
//!
//! ```
//! use bpfpatch_insn::{Insn, Slot, opcode as c};
//! use bpfpatch_patch::*;
//! let jeq = |d: u8, k: i32, off: i16| Insn::new(c::JMP | c::JEQ | c::K, d, 0, off, k);
//! let mov = |d: u8, k: i32| Insn::new(c::ALU64 | c::MOV | c::K, d, 0, 0, k);
//! let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
//! // Constant blinding of `if r1 == 5 goto +1`: the jcc moves to the end of its patch and keeps
//! // its original target; no hand-computed `off - 2`.
//! let prog = [jeq(1, 5, 1), mov(0, 0), exit];
//! let mut l = PatchList::new(&prog)?;
//! let mut b = PatchBuf::new();
//! b.push(mov(11, 5 ^ 0x1234))
//!     .push(Insn::new(c::ALU64 | c::XOR | c::K, 11, 0, 0, 0x1234))
//!     .jump_to(Insn::new(c::JMP | c::JEQ | c::X, 1, 11, 0, 0), Target::OrigTarget);
//! l.patch(l.node_of(Slot(0))?, &b)?;
//! let out = l.linearize(LinearizeOptions::default())?;
//! assert_eq!(out.insns[2].abs_target(2), Some(4)); // the exit
//! # Ok::<(), Error>(())
//! ```
//!
//! Several passes may patch the same list, including nodes inserted by earlier passes; a node
//! inserted by a pass is patched, deleted and targeted like any other. [`PatchList::append`] adds
//! a subprogram at the end (e.g. a hidden exception callback), callable through its
//! [`SubprogId`].
//!
//! **16-bit overflow.** A jump whose delta does not fit `off` is [`Error::JumpOutOfRange`]
//! (naming the new slot and the original one), as the kernel's `-ERANGE`. With
//! [`LinearizeOptions::relax`] (cpu v4) it is relaxed instead: `goto` becomes `gotol` in place; a
//! conditional jump becomes its inverted condition over a `gotol` (2 slots), `jset` and
//! `may_goto`, which have no inverse, become `jcc +1; goto +1; gotol` (3 slots). Growth moves
//! other jumps, so the walk repeats until no jump overflows; relaxations are monotone, so this
//! stops, and it costs nothing when nothing overflows.
//!
//! **Validation.** Every request is validated completely before the list changes: a target
//! outside the program, into an ld_imm64 second slot, an empty buffer, a deleted or unknown
//! node is a typed [`Error`] and the list is untouched. No input panics (property-tested).
//!
//! **Oracles.** [`reference`](mod@reference) models the kernel's patcher and is compared with
//! the engine on random programs and scripts (`tests/differential.rs`); where the kernel has no
//! equivalent (labels, `retarget`, references to and next to deleted code), a deliberately naive
//! absolute-index patcher in the test kit (`bpfpatch-testkit`, `naive`) is, after every request
//! (`tests/naive.rs`). Both run in `cargo test` and under libFuzzer.
//!
//! # Invariants and where they are re-established
//!
//! - *ld_imm64 pairs* (two slots everywhere): checked when a program or buffer is read; patch,
//!   delete and target requests treat the pair as one instruction ([`Error::LdImm64Tail`]).
//! - *Sealed deleted runs*: nothing is inserted between a deleted node and its successor
//!   (`prepatch` with `SkipForJumps` and `append` insert before the deleted run), so jumps to
//!   deleted nodes keep landing where they landed at deletion time.
//! - *Acyclic call groups*: a skipping prepatch moves the current call group to the new code
//!   and gives the node a fresh one; a deletion merges each deleted node's current group into
//!   the group current at the first survivor (a snapshot). Edges always point at groups current
//!   when the edge is made. Resolution is iterative and memoized.
//! - *One identity per original slot*: `patch` moves it to the last buffer instruction, a
//!   landing prepatch to the node that keeps the original instruction.
//! - *Pending patches*: a forward `patch` of an untouched original instruction with a plain
//!   buffer (the shape of blinding and instrumentation) is logged instead of applied: its slots
//!   are kept contiguously and streamed by linearization; any other request applies the log
//!   first, exactly as the patches would have been applied one by one (node ids included), and
//!   queries see through it (O(log pending) for a node of a pending patch).
//!
//! Module notes: [`PatchList`] (the list and its invariants), `linearize` (the walk), the
//! verification layer (side tables, [`AuxHook`]), and [`reference`](mod@reference) (the kernel model).
//!
//! # In-order engine
//!
//! [`InOrder`] is the list's fast path for the shape of every kernel pass (blinding, fixups,
//! instrumentation): requests in ascending original-slot order. It borrows the original
//! [`Program`] (read in place), streams untouched slots straight into a reused
//! [`PatchedProgram`] and writes each patch after them, then resolves its fixups in one pass
//! and remaps every side table through an [`OffsetMap`] filled exactly as the list fills it,
//! with the list's own table code. It supports `patch` (every [`Target`] but `Node` and
//! `Label`) and `delete`/`delete_range`; out-of-order and unsupported requests are typed
//! refusals ([`Error::OutOfOrder`], [`Error::InOrderUnsupported`]), and it does not relax jumps
//! (an overflow is [`Error::JumpOutOfRange`], as the list without relaxation). Its invariants
//! (S1-S6) are in its module documentation; `tests/inorder.rs` requires its results, refusals
//! and output to equal the list's on random programs and in-order scripts, and the kernel
//! reference's on the patch-only subset.
//!
//! # Verification layer
//!
//! Generic over the aux type `A` with an [`AuxHook`]: the patched instruction's aux moves to the
//! last slot of its patch (the hook's `patched` runs, as the kernel recomputes `zext_dst`); new
//! slots get `new_slot(insn, parent)`. Subprogram starts, func_info, line info (the entry at a
//! patch point covers the whole patch; deleted runs: the first survivor keeps the last removed
//! line), subprogram `linfo_idx`, tail-call pokes, insn arrays (deleted: [`INSN_DELETED`]), CO-RE
//! and ELF relocations (they follow the instruction; deleted ones are reported in
//! [`PatchedProgram::dropped`]) are all remapped through the [`OffsetMap`]. A subprogram whose
//! slots were all deleted disappears with its func_info entry, which the RFC left open.
//!
//! # Complexity
//!
//! Building the list: O(n). Each request: O(buffer) (`delete_range`: O(range); inserting before
//! a deleted run walks that run). Linearization: one walk over all nodes plus one pass over the
//! fixups; call groups resolve in amortized O(1) with memoization; each relaxation round is
//! another walk and only happens when a jump overflows. Memory: the list borrows the program
//! and reads its instructions in place (invariant I7), so an original slot costs 17 bytes of
//! list state (links, reference, origin, flags, identity) and no copy of its instruction
//! (`tests/in_place.rs`), 4 more once any original is rewritten in place (the rewrite table),
//! and 8 for its instruction if it is; a node the list makes costs 21 bytes with its
//! instruction (predecessor links, 4 per node, only once a request inserts before a node); a
//! pending patch costs 8 bytes per slot plus 12 (and 4 per jump-class slot). The
//! warm path allocates nothing: [`PatchList::reset_for_program`] (with
//! [`PatchList::recycle`] across programs of different lifetimes), [`PatchCtx`] and
//! [`PatchList::linearize_program_into`] keep every buffer across programs (regalloc2's
//! `run_with_ctx` model).
//!
//! # Names
//!
//! The RFC's API maps to: `bpf_create_list_insn` → [`PatchList::new`], `bpf_patch_list_insn` →
//! [`PatchList::patch`], `bpf_prepatch_list_insn` → [`PatchList::prepatch`],
//! `bpf_linearize_list_insn` → [`PatchList::linearize`], `verifier_linearize_list_insn` →
//! [`PatchList::linearize_program`] (each carries a `doc(alias)`).
#![deny(missing_docs)]

mod append;
mod buf;
mod error;
mod handle;
mod ids;
mod inorder;
mod linearize;
mod list;
mod pending;
mod tables;
#[cfg(any(debug_assertions, feature = "fuzzing"))]
mod validate;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod reference;

pub use buf::{MAX_PATCH_SLOTS, PatchBuf, Target};
pub use error::{Error, Result};
pub use ids::{Label, NodeId, SubprogId};
pub use inorder::{InOrder, InOrderCtx};
pub use linearize::{LinearizeOptions, LinearizeStats, Linearized, OffsetMap, PatchCtx};
pub use list::{Appended, Cursor, MAX_NODES, PatchList, Patched, PrepatchMode};
pub use tables::{
    AuxHook, CoreReloc, CoreRelocData, Dropped, ElfReloc, ElfRelocData, FuncInfo, INSN_DELETED, InsnArrayEntry,
    LineInfo, NoAux, PatchedProgram, PokeDesc, Program, Reloc, SideTables, Subprog,
};
#[cfg(any(debug_assertions, feature = "fuzzing"))]
pub use validate::InvariantViolation;
