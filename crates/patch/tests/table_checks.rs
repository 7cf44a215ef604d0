//! The verification layer checks every input table before it runs the engine: a bad table is
//! reported as such whatever the requests, even when linearizing them would fail too.
// Test code: values are small and known; panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bpfpatch_insn::{Insn, Slot};
use bpfpatch_patch::*;
use common::*;

#[test]
fn bad_relocations_are_reported_before_an_engine_error() {
    // The last instruction is patched with a jump past the end: linearizing fails with
    // `TargetPastEnd`; the relocation tables are wrong too, and that is what is reported.
    let insns: Vec<Insn> = vec![mov64(0, 0), mov64(1, 1), exit()];
    let base = Program { insns, aux: vec![0u32; 3], tables: SideTables::default() };
    let mut l = PatchList::for_program(&base).unwrap();
    let mut b = PatchBuf::new();
    b.jump_to(ja(0), Target::PastEnd);
    l.patch(l.node_of(Slot(2)).unwrap(), &b).unwrap();
    let run = |p: &Program<u32>| {
        let mut hook = |_: &Insn, _: Option<&u32>| 0u32;
        l.linearize_program(p, &mut hook, LinearizeOptions::default()).map(drop)
    };
    assert_eq!(run(&base).unwrap_err(), Error::TargetPastEnd { at: Slot(2), orig: Some(Slot(2)) });
    let mut x = base.clone();
    x.tables.core_relocs = vec![Reloc { insn_off: 12, data: CoreRelocData::default() }];
    assert_eq!(run(&x).unwrap_err(), Error::RelocMisaligned { table: "core_relocs", index: 0, offset: 12 });
    let mut x = base.clone();
    x.tables.elf_relocs = vec![
        Reloc { insn_off: 8, data: ElfRelocData::default() },
        Reloc { insn_off: 24, data: ElfRelocData::default() },
    ];
    assert_eq!(run(&x).unwrap_err(), Error::BadTableSlot { table: "elf_relocs", index: 1, slot: 3 });
}

#[test]
fn remap_relocs_checks_its_input_on_its_own() {
    // `OffsetMap::remap_relocs` is public: called directly (no `linearize_program` check before
    // it), a misaligned or out-of-range record is an error naming it, and nothing is output.
    let orig = [mov64(0, 0), mov64(1, 1), exit()];
    let l = PatchList::new(&orig).unwrap();
    let map = l.linearize(LinearizeOptions::default()).unwrap().map;
    let (mut out, mut dropped) = (Vec::new(), Vec::new());
    let at = |off: u64| Reloc { insn_off: off, data: ElfRelocData::default() };
    assert_eq!(
        map.remap_relocs("elf_relocs", &[at(8), at(24)], &mut out, &mut dropped),
        Err(Error::BadTableSlot { table: "elf_relocs", index: 1, slot: 3 })
    );
    assert_eq!(
        map.remap_relocs("elf_relocs", &[at(8), at(20)], &mut out, &mut dropped),
        Err(Error::RelocMisaligned { table: "elf_relocs", index: 1, offset: 20 })
    );
    assert!(out.is_empty() && dropped.is_empty());
    // In range: each record follows its instruction (here, nothing moved).
    map.remap_relocs("elf_relocs", &[at(8), at(16)], &mut out, &mut dropped).unwrap();
    assert_eq!(out.iter().map(|r| r.insn_off).collect::<Vec<_>>(), vec![8, 16]);
}
