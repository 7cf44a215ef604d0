//! The xlated marker: `mark_xlated` appends one `.bpfpatch.xlated` note section and changes
//! nothing else an index refers to; the `object` crate (an independent reader) finds the note.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bpfpatch_object::BpfObject;
use bpfpatch_object::xlated::{NOTE_OWNER, NT_BPFPATCH_XLATED, RAW_XLATED_MAGIC, XLATED_SECTION, add_raw_marker};
use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
use object::{Object, ObjectSection};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The note of `bytes`, read with the `object` crate: (owner, type) of each note of the section.
fn notes(bytes: &[u8]) -> Vec<(Vec<u8>, u32)> {
    let f = ElfFile64::<object::Endianness>::parse(bytes).unwrap();
    let e = f.endian();
    let sections = f.elf_header().sections(e, bytes).unwrap();
    let mut out = Vec::new();
    for sh in sections.iter() {
        if let Some(mut it) = sh.notes(e, bytes).unwrap() {
            while let Some(n) = it.next().unwrap() {
                out.push((n.name().to_vec(), n.n_type(e).0));
            }
        }
    }
    out
}

#[test]
fn marking_appends_one_note_and_keeps_every_index() {
    for name in ["prog-el.o", "prog-eb.o", "calls-el.o", "calls-eb.o", "ldabs-eb.o"] {
        let bytes = data(name);
        let mut obj = BpfObject::parse(&bytes).unwrap();
        assert!(!obj.is_xlated(), "{name}");
        assert!(notes(&bytes).is_empty(), "{name}");
        obj.mark_xlated();
        assert!(obj.is_xlated(), "{name}");
        let out = obj.write().unwrap();
        let again = BpfObject::parse(&out).unwrap();
        assert!(again.is_xlated(), "{name}");
        // Every section keeps its index, name and contents except the name table, which grows by
        // the new name; the note is the last section.
        let n = obj.section_headers().len();
        assert_eq!(again.section_headers().len(), n + 1, "{name}");
        assert_eq!(again.section_name(n), Some(XLATED_SECTION), "{name}");
        let f0 = ElfFile64::<object::Endianness>::parse(bytes.as_slice()).unwrap();
        let f1 = ElfFile64::<object::Endianness>::parse(out.as_slice()).unwrap();
        for (a, b) in f0.sections().zip(f1.sections()) {
            assert_eq!(a.index(), b.index());
            assert_eq!(a.name().unwrap(), b.name().unwrap(), "{name}");
            if a.kind() != object::SectionKind::Metadata {
                assert_eq!(a.data().unwrap(), b.data().unwrap(), "{name}: {}", a.name().unwrap());
            }
        }
        assert_eq!(notes(&out), vec![(NOTE_OWNER.as_bytes().to_vec(), NT_BPFPATCH_XLATED)], "{name}");
        assert_eq!(
            again.programs().iter().map(|p| p.insns().to_vec()).collect::<Vec<_>>(),
            obj.programs().iter().map(|p| p.insns().to_vec()).collect::<Vec<_>>(),
            "{name}"
        );
        // Marked once: marking a marked object again, or writing it unchanged, is the identity.
        let mut twice = again.clone();
        twice.mark_xlated();
        assert_eq!(twice.write().unwrap(), out, "{name}");
        assert_eq!(again.write().unwrap(), out, "{name}");
    }
}

#[test]
fn the_raw_marker_is_a_slot_no_loader_accepts() {
    // Opcode 0 (`BPF_LD | BPF_W | BPF_IMM`) is not an instruction, in either byte order.
    assert_eq!(RAW_XLATED_MAGIC[0], 0);
    for e in [bpfpatch_insn::Endian::Little, bpfpatch_insn::Endian::Big] {
        let slot = bpfpatch_insn::slots_from_bytes(&RAW_XLATED_MAGIC, e).unwrap();
        let opts = bpfpatch_insn::DecodeOptions::INTERNAL;
        assert!(bpfpatch_insn::decode(&slot, opts).is_err(), "{e:?}");
    }
    let image = [0x95u8, 0, 0, 0, 0, 0, 0, 0];
    let marked = add_raw_marker(&image);
    assert_eq!(&marked[..8], &RAW_XLATED_MAGIC);
    assert_eq!(add_raw_marker(&marked), marked, "marked once");
    assert_eq!(bpfpatch_object::xlated::strip_raw_marker(&marked), Some(&image[..]));
    assert_eq!(bpfpatch_object::xlated::strip_raw_marker(&image), None);
}
