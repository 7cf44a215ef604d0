//! How many times the rewrite path copies a program's instructions into a buffer of its own
//! (#15 item 1; doc/DESIGN.md, "Copies and decodes on the rewrite path"): a counting allocator
//! counts the allocations of exactly one instruction vector's size while a warm [`Rewriter`]
//! rewrites a program with a pass that changes nothing (so the old and new programs have the
//! same size). Each allocation it sees is one named in the design note.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bpfpatch_insn::Insn;
use bpfpatch_object::{BpfObject, ProgramInfo, RewriteOptions, Rewriter};
use bpfpatch_patch::PatchList;
use bpfpatch_testkit::alloc::Counting;
use std::convert::Infallible;

#[global_allocator]
static COUNTING: Counting = Counting;

fn nothing(_: &mut PatchList, _: &ProgramInfo<'_>) -> Result<(), Infallible> {
    Ok(())
}

/// The allocations of `n` instructions' size made by `f`.
fn count(n: usize, f: impl FnOnce()) -> usize {
    bpfpatch_testkit::alloc::count(n * size_of::<Insn>(), f).1.of_size
}

#[test]
fn rewrite_copies_instructions_as_the_design_note_says() {
    let path = format!("{}/tests/data/calls-el.o", env!("CARGO_MANIFEST_DIR"));
    let obj = BpfObject::parse(&std::fs::read(path).unwrap()).unwrap();
    let prog = obj.program_by_name(".text").unwrap().0;
    let n = obj.programs()[prog].insns().len();
    let mut rw = Rewriter::new(RewriteOptions { relax: true });
    let mut o = obj.clone();
    rw.rewrite_program_report(&mut o, prog, &mut nothing).unwrap(); // warm: the engine's scratch
    let mut o = obj.clone();
    let report = count(n, || {
        rw.rewrite_program_report(&mut o, prog, &mut nothing).unwrap();
    });
    // The linearized program, which moves into the object. The engine view takes the object's
    // instructions and gives them back (`take_engine_view`); before: a copy of them
    // (`engine_view`), and before #15 also the view's copy of the original and the
    // write-back's copy. The patch list reads the program in place (I7; its copy was `n + 1`
    // slots, the sentinel's included, so not counted here: `crates/patch/tests/in_place.rs`
    // holds that no list allocation is of the program's instruction size).
    assert_eq!(report, 1, "{n} slots: allocations of the program's size");
    let mut o = obj.clone();
    let keep = count(n, || {
        rw.rewrite_program(&mut o, prog, &mut nothing).unwrap();
    });
    // `rewrite_program` hands back the instructions as they are in the object: one copy more.
    assert_eq!(keep, 2, "{n} slots: allocations of the program's size");
    // `engine_view` leaves the object whole: its program is a copy.
    let view = count(n, || {
        let _ = o.engine_view(prog).unwrap();
    });
    assert_eq!(view, 1, "{n} slots: allocations of the program's size");
}
