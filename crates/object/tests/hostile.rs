//! Hostile input: each corruption of the committed test objects (both byte orders) gives the
//! exact typed error, never a panic; a bounded property test mutates bytes at random.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::cast_possible_truncation)]

use bpfpatch_insn::Endian;
use bpfpatch_object::{
    BpfObject, BtfError, BtfExtError, FindingKind, IdentityMap, InfoKind, ObjectError, SectionRef, check,
};
use proptest::prelude::*;

const OBJECTS: [(&str, Endian); 2] = [("prog-el.o", Endian::Little), ("prog-eb.o", Endian::Big)];

fn load(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn put32(b: &mut [u8], at: usize, v: u32, e: Endian) {
    let x = if e == Endian::Little { v.to_le_bytes() } else { v.to_be_bytes() };
    b[at..at + 4].copy_from_slice(&x);
}

fn put64(b: &mut [u8], at: usize, v: u64, e: Endian) {
    let x = if e == Endian::Little { v.to_le_bytes() } else { v.to_be_bytes() };
    b[at..at + 8].copy_from_slice(&x);
}

fn get32(b: &[u8], at: usize, e: Endian) -> u32 {
    let x: [u8; 4] = b[at..at + 4].try_into().unwrap();
    if e == Endian::Little { u32::from_le_bytes(x) } else { u32::from_be_bytes(x) }
}

/// Test fixture: the bytes, their parse, and field locators.
struct Fx {
    b: Vec<u8>,
    obj: BpfObject,
    e: Endian,
}

impl Fx {
    fn new(name: &str, e: Endian) -> Fx {
        let b = load(name);
        let obj = BpfObject::parse(&b).unwrap();
        Fx { b, obj, e }
    }
    fn sec(&self, name: &str) -> usize {
        (0..self.obj.section_headers().len()).find(|&i| self.obj.section_name(i) == Some(name)).unwrap()
    }
    fn off(&self, name: &str) -> usize {
        self.obj.section_headers()[self.sec(name)].offset as usize
    }
    /// Absolute offset of a 64-bit section header field (`sh_offset` = 24, `sh_size` = 32,
    /// `sh_entsize` = 56).
    fn sh(&self, name: &str, field: usize) -> usize {
        let shoff = u64::from_le_bytes(self.b[0x28..0x30].try_into().unwrap());
        let shoff = if self.e == Endian::Big { shoff.swap_bytes() } else { shoff };
        shoff as usize + self.sec(name) * 64 + field
    }
    fn parse_with(&self, f: impl FnOnce(&mut Vec<u8>, &Fx)) -> Result<BpfObject, ObjectError> {
        let mut b = self.b.clone();
        f(&mut b, self);
        BpfObject::parse(&b)
    }
    /// Offset of `.BTF.ext` area `k`'s start (where its record size is).
    fn area(&self, k: usize) -> usize {
        let x = self.off(".BTF.ext");
        let hdr = get32(&self.b, x + 4, self.e) as usize;
        x + hdr + get32(&self.b, x + 8 + 8 * k, self.e) as usize
    }
}

fn btf_ext_err(r: Result<BpfObject, ObjectError>) -> BtfExtError {
    match r {
        Err(ObjectError::BtfExt { section, error }) => {
            assert_eq!(section.name, ".BTF.ext");
            error
        }
        other => panic!("expected a .BTF.ext error, got {other:?}"),
    }
}

#[test]
fn truncated_files() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let len = fx.b.len();
        assert!(matches!(
            BpfObject::parse(&fx.b[..len / 2]),
            Err(ObjectError::Truncated { what: "section header table", file_len, .. }) if file_len == (len / 2) as u64
        ));
        assert!(matches!(BpfObject::parse(&fx.b[..4]), Err(ObjectError::Truncated { what: "ELF identification", .. })));
        assert!(matches!(BpfObject::parse(&[]), Err(ObjectError::Truncated { what: "ELF identification", .. })));
        assert!(matches!(BpfObject::parse(&fx.b[..40]), Err(ObjectError::Elf { context: "header", .. })));
        assert!(matches!(BpfObject::parse(b"not an elf file at all"), Err(ObjectError::Elf { context: "header", .. })));
    }
}

#[test]
fn not_bpf() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let r = fx.parse_with(|b, _| {
            let m = if e == Endian::Little { 62u16.to_le_bytes() } else { 62u16.to_be_bytes() };
            b[18..20].copy_from_slice(&m);
        });
        assert_eq!(r.unwrap_err(), ObjectError::NotBpf { machine: 62 });
    }
}

#[test]
fn section_contents_past_end() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let len = fx.b.len() as u64;
        let r = fx.parse_with(|b, fx| put64(b, fx.sh("xdp", 24), len, e));
        match r {
            Err(ObjectError::SectionOutOfBounds { section, offset, file_len, .. }) => {
                assert_eq!((section.name.as_str(), section.index, offset, file_len), ("xdp", fx.sec("xdp"), len, len));
            }
            other => panic!("{other:?}"),
        }
        let r = fx.parse_with(|b, fx| put64(b, fx.sh(".BTF", 32), len, e));
        assert!(matches!(r, Err(ObjectError::SectionOutOfBounds { section, .. }) if section.name == ".BTF"));
        let r = fx.parse_with(|b, fx| put64(b, fx.sh("xdp", 24), u64::MAX - 4, e));
        assert!(matches!(r, Err(ObjectError::SectionOutOfBounds { .. })));
    }
}

#[test]
fn text_not_whole_instructions() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let size = fx.obj.section_headers()[fx.sec("tc")].size;
        let r = fx.parse_with(|b, fx| put64(b, fx.sh("tc", 32), size - 4, e));
        assert!(matches!(r, Err(ObjectError::TextSize { section, size: s }) if section.name == "tc" && s == size - 4));
    }
}

#[test]
fn bad_relocations() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let rel = fx.off(".relxdp");
        let size = fx.obj.section_headers()[fx.sec("xdp")].size;
        let r = fx.parse_with(|b, _| put64(b, rel + 16, size, e));
        assert_eq!(
            r.unwrap_err(),
            ObjectError::RelocOutOfRange { section: fx.obj.section_ref(fx.sec("xdp")), index: 1, offset: size, size }
        );
        let r = fx.parse_with(|b, _| put64(b, rel + 16, 84, e));
        assert_eq!(
            r.unwrap_err(),
            ObjectError::RelocUnaligned { section: fx.obj.section_ref(fx.sec("xdp")), index: 1, offset: 84 }
        );
        let r = fx.parse_with(|b, _| put64(b, rel + 8, (9999 << 32) | 1, e));
        let n = fx.obj.symbols().len();
        assert_eq!(
            r.unwrap_err(),
            ObjectError::RelocSymbol { section: fx.obj.section_ref(fx.sec("xdp")), index: 0, symbol: 9999, count: n }
        );
        let r = fx.parse_with(|b, fx| put64(b, fx.sh(".relxdp", 56), 12, e));
        assert!(matches!(r, Err(ObjectError::BadTable { section, entsize: 12, .. }) if section.name == ".relxdp"));
        let r = fx.parse_with(|b, fx| put64(b, fx.sh(".relxdp", 32), 40, e));
        assert!(matches!(r, Err(ObjectError::BadTable { size: 40, .. })));
    }
}

#[test]
fn bad_btf() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let x = fx.off(".BTF");
        let btf_err = |r: Result<BpfObject, ObjectError>| match r {
            Err(ObjectError::Btf { section, error }) if section.name == ".BTF" => error,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            btf_err(fx.parse_with(|b, _| b[x..x + 2].copy_from_slice(&[0x12, 0x34]))),
            BtfError::BadMagic { magic: 0x3412 }
        );
        let len = fx.obj.section_headers()[fx.sec(".BTF")].size;
        let e1 = btf_err(fx.parse_with(|b, _| put32(b, x + 20, 0xffff_fff0, e)));
        assert!(matches!(e1, BtfError::AreaOutOfBounds { what: "string", len: l, .. } if l == len));
        assert_eq!(btf_err(fx.parse_with(|b, fx| put64(b, fx.sh(".BTF", 32), 10, e))), BtfError::TooShort { len: 10 });
        assert_eq!(btf_err(fx.parse_with(|b, _| put32(b, x + 4, 12, e))), BtfError::BadHeaderLen { hdr_len: 12, len });
        let btf = fx.obj.btf().unwrap();
        assert!(matches!(btf.string(u32::MAX), Err(BtfError::BadString { offset: u32::MAX, .. })));
    }
}

#[test]
fn bad_btf_ext() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let x = fx.off(".BTF.ext");
        let len = fx.obj.section_headers()[fx.sec(".BTF.ext")].size;
        let (fa, la) = (fx.area(0), fx.area(1));
        let err = |f: &dyn Fn(&mut Vec<u8>)| btf_ext_err(fx.parse_with(|b, _| f(b)));
        assert_eq!(err(&|b| b[x + 2] = 2), BtfExtError::BadVersion { version: 2 });
        assert_eq!(
            err(&|b| b[x] = 0),
            BtfExtError::BadMagic { magic: if e == Endian::Little { 0xeb00 } else { 0x9f00 } }
        );
        assert_eq!(err(&|b| put32(b, x + 4, 1000, e)), BtfExtError::BadHeaderLen { hdr_len: 1000, len });
        assert_eq!(err(&|b| put32(b, x + 4, 16, e)), BtfExtError::BadHeaderLen { hdr_len: 16, len });
        for size in [7, 4, 0] {
            assert_eq!(
                err(&|b| put32(b, fa, size, e)),
                BtfExtError::BadRecordSize { kind: InfoKind::FuncInfo, size, offset: fa as u64 - x as u64 }
            );
        }
        assert_eq!(
            err(&|b| put32(b, la, 12, e)),
            BtfExtError::BadRecordSize { kind: InfoKind::LineInfo, size: 12, offset: la as u64 - x as u64 }
        );
        assert!(matches!(
            err(&|b| put32(b, x + 20, 0x7fff_0000, e)),
            BtfExtError::AreaOutOfBounds { kind: InfoKind::LineInfo, size: 0x7fff_0000, .. }
        ));
        assert!(matches!(
            err(&|b| put32(b, x + 24, 0xffff_ffff, e)),
            BtfExtError::AreaOutOfBounds { kind: InfoKind::CoreRelo, .. }
        ));
        // First func_info block: num_info 0, then absurdly large.
        let rel = fa as u64 - x as u64;
        assert_eq!(
            err(&|b| put32(b, fa + 8, 0, e)),
            BtfExtError::EmptyBlock { kind: InfoKind::FuncInfo, block: 0, offset: rel + 4 }
        );
        assert!(matches!(
            err(&|b| put32(b, fa + 8, 1_000_000, e)),
            BtfExtError::BlockOverrun { kind: InfoKind::FuncInfo, block: 0, num: 1_000_000, rec_size: 8, .. }
        ));
        // First line_info record's insn_off unaligned.
        let lrel = la as u64 - x as u64;
        assert_eq!(
            err(&|b| put32(b, la + 12, 4, e)),
            BtfExtError::UnalignedInsnOff {
                kind: InfoKind::LineInfo,
                block: 0,
                record: 0,
                offset: lrel + 12,
                insn_off: 4
            }
        );
        // Section cut inside the header, and inside an area.
        assert_eq!(
            btf_ext_err(fx.parse_with(|b, fx| put64(b, fx.sh(".BTF.ext", 32), 6, e))),
            BtfExtError::Truncated { what: "header", offset: 0, need: 8, len: 6 }
        );
        let cut = btf_ext_err(fx.parse_with(|b, fx| put64(b, fx.sh(".BTF.ext", 32), lrel + 10, e)));
        assert!(matches!(cut, BtfExtError::AreaOutOfBounds { kind: InfoKind::LineInfo, .. }), "{cut:?}");
    }
}

/// A `.rel.BTF.ext` entry not on a record is kept while `.BTF.ext` is copied, and refused with a
/// typed error when it has to be re-encoded.
/// `.BTF` / `.BTF.ext` whose header says the section has no contents (`SHT_NULL`, `SHT_NOBITS`):
/// refused, since the writer would not keep bytes the model read (a fuzz finding: the rewrite
/// wrote an object whose `.BTF.ext` header pointed at other data).
#[test]
fn btf_sections_without_contents() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        for (sec, what) in [(".BTF.ext", "BTF.ext"), (".BTF", "BTF")] {
            for sh_type in [0u32, 8] {
                let r = fx.parse_with(|b, fx| put32(b, fx.sh(sec, 4), sh_type, e));
                assert_eq!(
                    r.unwrap_err(),
                    ObjectError::NoContents { section: fx.obj.section_ref(fx.sec(sec)), sh_type, what },
                    "{name} {sec} type {sh_type}"
                );
            }
            // Executable, or a relocation table: two owners of the same bytes.
            let h = fx.obj.section_headers()[fx.sec(sec)].clone();
            let flags = h.flags | 0x4;
            let r = fx.parse_with(|b, fx| {
                put64(b, fx.sh(sec, 8), flags, e);
                put64(b, fx.sh(sec, 32), h.size / 8 * 8, e); // whole instructions, else TextSize
            });
            assert_eq!(
                r.unwrap_err(),
                ObjectError::NotBtfData { section: fx.obj.section_ref(fx.sec(sec)), sh_type: 1, flags, what }
            );
            let r = fx.parse_with(|b, fx| put32(b, fx.sh(sec, 4), 9, e));
            assert!(
                matches!(r, Err(ObjectError::NotBtfData { sh_type: 9, .. }) | Err(ObjectError::BadTable { .. })),
                "{r:?}"
            );
        }
    }
}

/// Sections sharing bytes with each other, with the ELF header or with the section header
/// table; a section 0 that is not `SHT_NULL` (fuzz findings: the writer lays every section out
/// on its own, so an overlap multiplied the output and broke the unchanged-write identity).
#[test]
fn overlapping_sections() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let text = fx.obj.section_headers()[fx.sec(".text")].clone();
        let r = fx.parse_with(|b, fx| put64(b, fx.sh("xdp", 24), text.offset + 8, e));
        let xdp = fx.obj.section_headers()[fx.sec("xdp")].size;
        assert_eq!(
            r.unwrap_err(),
            ObjectError::Overlap {
                section: fx.obj.section_ref(fx.sec("xdp")),
                offset: text.offset + 8,
                size: xdp,
                other: fx.obj.section_ref(fx.sec(".text")).to_string()
            },
            "{name}"
        );
        let r = fx.parse_with(|b, fx| put64(b, fx.sh(".text", 24), 8, e));
        let err = r.unwrap_err();
        assert_eq!(
            err,
            ObjectError::Overlap {
                section: fx.obj.section_ref(fx.sec(".text")),
                offset: 8,
                size: text.size,
                other: "the ELF header".into()
            }
        );
        assert_eq!(
            err.to_string(),
            format!("section 2 `.text`: contents at 0x8+{:#x} overlap the ELF header", text.size)
        );
        let shoff = u64::from_le_bytes(fx.b[0x28..0x30].try_into().unwrap());
        let shoff = if e == Endian::Big { shoff.swap_bytes() } else { shoff };
        let r = fx.parse_with(|b, fx| put64(b, fx.sh("license", 24), shoff, e));
        assert!(
            matches!(&r, Err(ObjectError::Overlap { section, other, .. }) if section.name == "license" && other == "the section header table"),
            "{r:?}"
        );
        // Section 0 must be SHT_NULL.
        let r = fx.parse_with(|b, _| put32(b, shoff as usize + 4, 1, e));
        assert_eq!(
            r.unwrap_err(),
            ObjectError::Elf { context: "section headers", message: "section 0 has type 1 (must be SHT_NULL)".into() }
        );
        // Empty sections may sit anywhere, even inside another one.
        let inside = fx.off(".BTF") as u64 + 8;
        let ok = fx.parse_with(|b, fx| {
            put64(b, fx.sh("license", 24), inside, e);
            put64(b, fx.sh("license", 32), 0, e);
        });
        assert!(ok.is_ok(), "{ok:?}");
    }
}

/// The string table of section names (and of symbol names; `.strtab` is both in clang objects)
/// must be `SHT_STRTAB`: the writer copies it verbatim, and an inactive (`SHT_NULL`) one was left
/// behind by a rewrite, so the output's section names pointed at other bytes (fuzz finding).
#[test]
fn string_tables_must_be_strtab() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        for sh_type in [0u32, 1] {
            let r = fx.parse_with(|b, fx| put32(b, fx.sh(".strtab", 4), sh_type, e));
            assert_eq!(
                r.unwrap_err(),
                ObjectError::NotStringTable {
                    section: fx.obj.section_ref(fx.sec(".strtab")),
                    sh_type,
                    what: "section names"
                },
                "{name}"
            );
        }
        // The symbol table's names: point its sh_link at `license` (PROGBITS).
        let r = fx.parse_with(|b, fx| put32(b, fx.sh(".symtab", 40), fx.sec("license") as u32, e));
        assert_eq!(
            r.unwrap_err(),
            ObjectError::NotStringTable {
                section: fx.obj.section_ref(fx.sec("license")),
                sh_type: 1,
                what: "symbol names"
            }
        );
    }
}

/// Two program sections of one name in an object with `.BTF.ext`, whose blocks are matched to
/// sections by name: refused (fuzz finding: rewriting one moved the other's line info).
#[test]
fn duplicate_program_section_names() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let name_off = |b: &[u8], sec: &str| get32(b, fx.sh(sec, 0), e);
        let r = fx.parse_with(|b, fx| {
            let xdp = name_off(b, "xdp");
            put32(b, fx.sh("tc", 0), xdp, e);
        });
        let (tc, xdp) = (fx.sec("tc"), fx.sec("xdp"));
        let later = tc.max(xdp);
        assert_eq!(
            r.unwrap_err(),
            ObjectError::Duplicate {
                section: SectionRef { index: later, name: "xdp".into() },
                what: "program section name (.BTF.ext records are matched to sections by name)"
            },
            "{name}"
        );
    }
}

/// A program section of more than 1,000,000 instructions (the kernel's
/// `BPF_COMPLEXITY_LIMIT_INSNS`): refused from its header, before anything is read.
#[test]
fn program_over_the_kernel_limit() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let slots = bpfpatch_insn::MAX_PROGRAM_SLOTS as u64 + 1;
        // Append the section's bytes to the file and point the header at them.
        let r = fx.parse_with(|b, fx| {
            let at = b.len() as u64;
            b.resize(b.len() + 8 * slots as usize, 0);
            put64(b, fx.sh("xdp", 24), at, e);
            put64(b, fx.sh("xdp", 32), 8 * slots, e);
        });
        let err = r.unwrap_err();
        assert_eq!(
            err,
            ObjectError::ProgramTooLarge {
                section: fx.obj.section_ref(fx.sec("xdp")),
                slots,
                limit: bpfpatch_insn::MAX_PROGRAM_SLOTS
            }
        );
        assert!(
            err.to_string().ends_with("xdp`: 1000001 instructions, more than a program may have (1000000)"),
            "{err}"
        );
    }
}

/// Two `.rel.BTF.ext` entries on the same record: the record carries the first; the second is
/// unattached (its place after a rewrite is unknown), so `check` names it and a rewrite that
/// re-encodes `.BTF.ext` refuses, instead of keeping one and silently dropping the other.
#[test]
fn a_second_btf_ext_relocation_on_one_record_is_unattached() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let rel = fx.off(".rel.BTF.ext");
        let mut b = fx.b.clone();
        let first: [u8; 8] = b[rel..rel + 8].try_into().unwrap();
        b[rel + 16..rel + 24].copy_from_slice(&first);
        let offset = if e == Endian::Big { u64::from_be_bytes(first) } else { u64::from_le_bytes(first) };
        let mut obj = BpfObject::parse(&b).unwrap();
        assert_eq!(obj.write().unwrap(), b, "copied as is");
        let findings: Vec<_> = check(&obj).into_iter().map(|f| f.kind).collect();
        assert_eq!(findings, [FindingKind::UnattachedBtfExtReloc { reloc: 1, offset }], "{name}");
        let insns = obj.programs()[0].insns().to_vec();
        let n = insns.len();
        obj.replace_program(0, insns, &IdentityMap(n)).unwrap();
        match obj.write() {
            Err(ObjectError::BtfExt { error: BtfExtError::UnattachedReloc { index: 1, offset: o }, .. })
                if o == offset => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn unattached_btf_ext_relocation() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let rel = fx.off(".rel.BTF.ext");
        let mut b = fx.b.clone();
        put64(&mut b, rel, 1, e);
        let mut obj = BpfObject::parse(&b).unwrap();
        assert_eq!(obj.write().unwrap(), b, "copied as is");
        // `check` names what a rewrite would refuse, so a clean object is a rewritable one
        // (found by the object_pipeline fuzz oracle).
        let findings: Vec<_> = check(&obj).into_iter().map(|f| (f.section.name.clone(), f.kind)).collect();
        assert_eq!(
            findings,
            [(".BTF.ext".to_string(), FindingKind::UnattachedBtfExtReloc { reloc: 0, offset: 1 })],
            "{name}"
        );
        let insns = obj.programs()[0].insns().to_vec();
        let n = insns.len();
        obj.replace_program(0, insns, &IdentityMap(n)).unwrap();
        match obj.write() {
            Err(ObjectError::BtfExt { error: BtfExtError::UnattachedReloc { index: 0, offset: 1 }, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}

/// A CO-RE record whose `insn_off` is its section's end (no instruction there) parses, and the
/// engine view's `patched_at_load` (the passes' protected set) lists old slots only: the record
/// protects nothing, rather than a slot `n` that is not in the program.
#[test]
fn a_core_record_at_the_section_end_protects_no_slot() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        // The first block of the CO-RE area: record size, {sec_name_off, num_info}, then the
        // first record, whose first field is insn_off.
        let at = fx.area(2) + 12;
        let old = get32(&fx.b, at, e);
        let p = (0..fx.obj.programs().len())
            .find(|&p| fx.obj.core_relos(p).first().is_some_and(|c| c.insn_off == old))
            .unwrap();
        let n = fx.obj.programs()[p].insns().len();
        let obj = fx.parse_with(|b, _| put32(b, at, (n * 8) as u32, e)).unwrap();
        assert!(obj.core_relos(p).iter().any(|c| c.insn_off as usize == n * 8), "{name}: the record moved");
        let view = obj.engine_view(p).unwrap();
        let protected = view.info().patched_at_load();
        assert!(!protected.is_empty() && protected.iter().all(|&s| s < n), "{name}: {protected:?} of {n}");
    }
}

/// The engine takes a program's `.BTF.ext` records as its side tables only when they are well
/// formed for it (`EngineView`'s completeness: func_info one per subprogram at its start,
/// line_info strictly increasing on instruction starts inside the program, CO-RE records
/// inside it); otherwise the write-back moves them with the object's own adjuster. So on each
/// malformed shape below the rewrite (a nop before every instruction) succeeds and gives exactly
/// what the adjuster path (`Rewriter::by_adjuster`) gives, or, for a record past the end, both
/// refuse it the same way: taking such records as tables would make the engine refuse them or
/// rewrite them differently.
#[test]
fn malformed_records_are_moved_by_the_adjuster() {
    use bpfpatch_object::{ProgramInfo, RewriteOptions, Rewriter};
    use bpfpatch_patch::{PatchBuf, PatchList, PrepatchMode};
    let mut pass = |list: &mut PatchList, _: &ProgramInfo<'_>| {
        let nop = PatchBuf::from_insns(&[bpfpatch_insn::Insn::new(0x05, 0, 0, 0, 0)]);
        let nodes: Vec<_> = list.iter().map(|(n, _)| n).collect();
        for n in nodes {
            list.prepatch(n, &nop, PrepatchMode::LandOnInserted)?;
        }
        Ok::<(), bpfpatch_patch::Error>(())
    };
    let (mut rewritten, mut on_tail) = (0, 0);
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        // Record k of the first block of area `a` (record size `size`): its insn_off.
        let rec = |a: usize, size: usize, k: usize| fx.area(a) + 12 + size * k;
        let block_prog = |first_off: u32, of: &dyn Fn(usize) -> Option<u32>| {
            (0..fx.obj.programs().len()).find(|&p| of(p) == Some(first_off)).unwrap()
        };
        let li0 = get32(&fx.b, rec(1, 16, 0), e);
        let lp = block_prog(li0, &|p| fx.obj.line_info(p).first().map(|l| l.insn_off));
        let ln = fx.obj.programs()[lp].insns().len() as u32;
        let co0 = get32(&fx.b, rec(2, 16, 0), e);
        let cp = block_prog(co0, &|p| fx.obj.core_relos(p).first().map(|c| c.insn_off));
        let cn = fx.obj.programs()[cp].insns().len() as u32;
        let fi0 = get32(&fx.b, rec(0, 8, 0), e);
        // (shape, where, new insn_off, whether the rewrite succeeds: a record past the end has
        // no instruction to move to, and the object refuses it)
        let mut cases: Vec<(&str, usize, u32, bool)> = vec![
            ("line_info past the end", rec(1, 16, 1), ln * 8, false),
            ("line_info not increasing", rec(1, 16, 1), li0, true),
            ("CO-RE record at the end", rec(2, 16, 0), cn * 8, false),
            ("func_info off its subprogram", rec(0, 8, 0), fi0 + 8, true),
        ];
        // A line_info record on an ld_imm64's second slot, still in increasing order.
        let offs: Vec<u32> = fx.obj.line_info(lp).iter().map(|l| l.insn_off).collect();
        let insns = fx.obj.programs()[lp].insns();
        let tail = (1..offs.len()).find_map(|k| {
            let (lo, hi) = (offs[k - 1], offs.get(k + 1).copied().unwrap_or(ln * 8));
            (0..insns.len().saturating_sub(1))
                .filter(|&t| insns[t].is_ld_imm64())
                .map(|t| (t as u32 + 1) * 8)
                .find(|&o| lo < o && o < hi)
                .map(|o| (k, o))
        });
        if let Some((k, o)) = tail {
            cases.push(("line_info on an ld_imm64's second slot", rec(1, 16, k), o, true));
            on_tail += 1;
        }
        // A function symbol at the section's end (`st_value` = its size, empty): no subprogram starts
        // there (nor is `is_start` read past the program).
        let sym = fx.obj.subprograms(lp)[0].symbol as usize;
        let st_value = fx.off(".symtab") + 24 * sym + 8;
        let mut shapes: Vec<(&str, Vec<u8>, bool)> = vec![(
            "function symbol at the end",
            {
                let mut b = fx.b.clone();
                put64(&mut b, st_value, u64::from(ln) * 8, e);
                put64(&mut b, st_value + 8, 0, e);
                b
            },
            true,
        )];
        for (what, at, v, ok) in cases {
            let mut b = fx.b.clone();
            put32(&mut b, at, v, e);
            shapes.push((what, b, ok));
        }
        for (what, b, ok) in shapes {
            let mut a = BpfObject::parse(&b).unwrap_or_else(|err| panic!("{name}: {what}: {err}"));
            let mut o = a.clone();
            let engine = Rewriter::new(RewriteOptions { relax: true }).rewrite_object(&mut a, &mut pass);
            let adjuster =
                Rewriter::new(RewriteOptions { relax: true }).by_adjuster().rewrite_object(&mut o, &mut pass);
            assert_eq!(engine.is_ok(), ok, "{name}: {what}: {:?}", engine.as_ref().err());
            match (&engine, &adjuster) {
                (Ok(x), Ok(y)) => {
                    let objects =
                        |r: &[bpfpatch_object::ProgramReport]| r.iter().map(|r| r.object.clone()).collect::<Vec<_>>();
                    assert_eq!(objects(x), objects(y), "{name}: {what}: reports");
                    assert!(
                        a.write().unwrap() == o.write().unwrap(),
                        "{name}: {what}: the paths wrote different objects"
                    );
                    rewritten += 1;
                }
                // A record past the end has no instruction to move to: the adjuster refuses it.
                (Err(x), Err(y)) => {
                    let (x, y) = (x.to_string(), y.to_string());
                    assert!(x == y && x.contains("is outside the section"), "{name}: {what}: {x} / {y}");
                }
                (x, y) => panic!("{name}: {what}: engine {:?}, adjuster {:?}", x.as_ref().err(), y.as_ref().err()),
            }
        }
    }
    assert!(rewritten >= 4 && on_tail == 2, "shapes rewritten: {rewritten}; ld_imm64 cases: {on_tail}");
}

fn cases() -> u32 {
    std::env::var("BPFPATCH_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Random byte mutations (biased towards the section headers, `.BTF.ext`, relocations and
    /// code) never make
    /// parse, check, write or an identity rewrite panic; whatever parses writes and re-parses.
    #[test]
    fn mutations_never_panic(
        which in 0usize..2,
        edits in prop::collection::vec((0usize..5, any::<u32>(), any::<u8>()), 1..8),
    ) {
        let fx = Fx::new(OBJECTS[which].0, OBJECTS[which].1);
        let mut b = fx.b.clone();
        let shoff = fx.sh(".strtab", 0) - fx.sec(".strtab") * 64;
        let (x, xl) = (fx.off(".BTF.ext"), fx.obj.section_headers()[fx.sec(".BTF.ext")].size as usize);
        for (region, pos, val) in edits {
            let at = match region {
                0 => pos as usize % b.len(),
                1 => shoff + pos as usize % (b.len() - shoff),
                2 => x + pos as usize % xl,
                3 => fx.off(".relxdp") + pos as usize % 64,
                _ => fx.off(".text") + pos as usize % 344,
            };
            b[at] = val;
        }
        if let Ok(mut obj) = BpfObject::parse(&b) {
            let _ = bpfpatch_object::check(&obj);
            if let Ok(out) = obj.write() {
                prop_assert!(BpfObject::parse(&out).is_ok());
            }
            for pi in 0..obj.programs().len() {
                let insns = obj.programs()[pi].insns().to_vec();
                let n = insns.len();
                let _ = obj.replace_program(pi, insns, &IdentityMap(n));
            }
            let _ = obj.write();
        }
    }
}
