//! The writer's layout rule (crates/object/src/write.rs), checked on a hand-built ELF64 object
//! whose layout exercises every branch: a section aligned more than the growth before it, an
//! empty section sharing its offset with the next one, an `SHT_NOBITS` section, hostile
//! alignments (a power of two above 4096, a non-power of two), and a section after the section
//! header table. The expected offsets are derived by hand from the rule in the module docs
//! ("the first offset at or after max(end of the previous, original offset + shift so far) that
//! differs from the original by a multiple of its alignment"), and the section headers of the
//! output are read here with a reader of their own, not with the crate's parser.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

use bpfpatch_insn::{Endian, Insn, opcode, slots_to_bytes};
use bpfpatch_object::{BpfObject, ObjectError, TableMap};

const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_NOBITS: u32 = 8;

/// One section of the hand-built object: name, type, flags, alignment, contents (the size of an
/// `SHT_NOBITS` section is `nobits`), and the offset it is given in the input.
struct Sec {
    name: &'static str,
    ty: u32,
    flags: u64,
    align: u64,
    bytes: Vec<u8>,
    nobits: u64,
    off: u64,
    link: u32,
    info: u32,
    entsize: u64,
}

fn sec(name: &'static str, ty: u32, flags: u64, align: u64, bytes: &[u8], off: u64) -> Sec {
    Sec { name, ty, flags, align, bytes: bytes.to_vec(), nobits: 0, off, link: 0, info: 0, entsize: 0 }
}

/// The four instructions of the program `xdp`: `r0 = 0; r0 += 1; r0 += 2; exit`.
fn prog() -> Vec<Insn> {
    vec![
        Insn::new(opcode::ALU64 | opcode::MOV, 0, 0, 0, 0),
        Insn::new(opcode::ALU64 | opcode::ADD, 0, 0, 0, 1),
        Insn::new(opcode::ALU64 | opcode::ADD, 0, 0, 0, 2),
        Insn::new(opcode::JMP | opcode::EXIT, 0, 0, 0, 0),
    ]
}

/// Section indices of the built object.
const XDP: usize = 1;
const DATA_A: usize = 2;
const EMPTY: usize = 3;
const DATA_B: usize = 4;
const BSS: usize = 5;
const BIG: usize = 6;
const ODD: usize = 7;
const SYMTAB: usize = 8;
const TAIL: usize = 11;
/// The input's section header table offset (right after `.shstrtab`, 8-aligned) and size.
const SHOFF: u64 = 0x118;
const NSEC: u64 = 12;

/// The input object. Layout (offsets in hex):
///
/// | section | offset | size | align |
/// |---|---|---|---|
/// | `xdp` (program) | 40 | 20 | 8 |
/// | `.data.a` | 60 | 4 | 4 |
/// | (gap of 0xee bytes) | 64 | c | |
/// | `.empty` | 70 | 0 | 1 |
/// | `.data.b` | 70 | 10 | 16 |
/// | `.bss` (`SHT_NOBITS`) | 80 | 40 | 8 |
/// | `.big` | 80 | 8 | 8192 (hostile: honoured as 1) |
/// | `.odd` | 88 | 8 | 24 (hostile: honoured as 1) |
/// | `.symtab` | 90 | 30 | 8 |
/// | `.strtab` | c0 | 6 | 1 |
/// | `.shstrtab` | c6 | 4b | 1 |
/// | section headers | 118 | 300 | 8 |
/// | `.tail` | 418 | 8 | 4 |
fn build() -> (Vec<u8>, Vec<Sec>) {
    let e = Endian::Little;
    let mut symtab = vec![0u8; 24];
    symtab.extend(1u32.to_le_bytes()); // st_name: "prog"
    symtab.push(0x12); // STB_GLOBAL, STT_FUNC
    symtab.push(0);
    symtab.extend((XDP as u16).to_le_bytes());
    symtab.extend(0u64.to_le_bytes()); // value
    symtab.extend(32u64.to_le_bytes()); // size
    let mut secs = vec![
        sec("", 0, 0, 0, &[], 0),
        sec("xdp", SHT_PROGBITS, 6, 8, &slots_to_bytes(&prog(), e), 0x40),
        sec(".data.a", SHT_PROGBITS, 3, 4, b"AAAA", 0x60),
        sec(".empty", SHT_PROGBITS, 3, 1, b"", 0x70),
        sec(".data.b", SHT_PROGBITS, 3, 16, &[b'B'; 16], 0x70),
        Sec { nobits: 0x40, ..sec(".bss", SHT_NOBITS, 3, 8, &[], 0x80) },
        sec(".big", SHT_PROGBITS, 3, 8192, b"CCCCCCCC", 0x80),
        sec(".odd", SHT_PROGBITS, 3, 24, b"DDDDDDDD", 0x88),
        Sec { link: 9, info: 1, entsize: 24, ..sec(".symtab", SHT_SYMTAB, 0, 8, &symtab, 0x90) },
        sec(".strtab", SHT_STRTAB, 0, 1, b"\0prog\0", 0xc0),
        sec(".shstrtab", SHT_STRTAB, 0, 1, &[], 0xc6),
        sec(".tail", SHT_PROGBITS, 3, 4, b"TTTTTTTT", SHOFF + NSEC * 64),
    ];
    let mut shstr = vec![0u8];
    let mut names = Vec::new();
    for s in &secs {
        names.push(if s.name.is_empty() { 0 } else { shstr.len() as u32 });
        if !s.name.is_empty() {
            shstr.extend(s.name.as_bytes());
            shstr.push(0);
        }
    }
    secs[10].bytes.clone_from(&shstr);
    assert_eq!(shstr.len(), 0x4b);
    let mut b = vec![0u8; 64];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // ELFCLASS64
    b[5] = 1; // little endian
    b[6] = 1;
    b[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    b[18..20].copy_from_slice(&247u16.to_le_bytes()); // EM_BPF
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[0x28..0x30].copy_from_slice(&SHOFF.to_le_bytes());
    b[0x34..0x36].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    b[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    b[0x3c..0x3e].copy_from_slice(&(NSEC as u16).to_le_bytes());
    b[0x3e..0x40].copy_from_slice(&10u16.to_le_bytes()); // e_shstrndx
    fn put(b: &mut Vec<u8>, off: u64, bytes: &[u8]) {
        let off = off as usize;
        if b.len() < off + bytes.len() {
            b.resize(off + bytes.len(), 0);
        }
        b[off..off + bytes.len()].copy_from_slice(bytes);
    }
    put(&mut b, 0x64, &[0xee; 12]);
    for s in &secs[1..] {
        put(&mut b, s.off, &s.bytes);
    }
    let mut hdrs = Vec::new();
    for (s, name) in secs.iter().zip(&names) {
        hdrs.extend(name.to_le_bytes());
        hdrs.extend(s.ty.to_le_bytes());
        hdrs.extend(s.flags.to_le_bytes());
        hdrs.extend(0u64.to_le_bytes());
        hdrs.extend(s.off.to_le_bytes());
        hdrs.extend((if s.ty == SHT_NOBITS { s.nobits } else { s.bytes.len() as u64 }).to_le_bytes());
        hdrs.extend(s.link.to_le_bytes());
        hdrs.extend(s.info.to_le_bytes());
        hdrs.extend(s.align.to_le_bytes());
        hdrs.extend(s.entsize.to_le_bytes());
    }
    put(&mut b, SHOFF, &hdrs);
    assert_eq!(b.len() as u64, SHOFF + NSEC * 64 + 8);
    (b, secs)
}

/// (offset, size) of every section, read from the output's own section header table.
fn headers(b: &[u8]) -> Vec<(u64, u64)> {
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let shoff = u64_at(0x28) as usize;
    let n = u16::from_le_bytes([b[0x3c], b[0x3d]]) as usize;
    (0..n).map(|i| (u64_at(shoff + i * 64 + 24), u64_at(shoff + i * 64 + 32))).collect()
}

/// Writes `obj` after replacing its program with `new` by `map`, and checks every section
/// landed at `want` (by index) with its original bytes (the program's are `new`, and the
/// function symbol's size is the new program's). Returns the output.
fn check_layout(new: &[Insn], map: &TableMap, want: &[(usize, u64)], want_shoff: u64) -> Vec<u8> {
    let (input, secs) = build();
    let mut obj = BpfObject::parse(&input).unwrap();
    assert_eq!(obj.write().unwrap(), input, "an unchanged write is the input");
    obj.replace_program(0, new.to_vec(), map).unwrap();
    let out = obj.write().unwrap();
    let hdrs = headers(&out);
    assert_eq!(hdrs.len(), secs.len());
    assert_eq!(u64::from_le_bytes(out[0x28..0x30].try_into().unwrap()), want_shoff, "e_shoff");
    for &(i, off) in want {
        assert_eq!(hdrs[i].0, off, "offset of {}", secs[i].name);
        if secs[i].ty == SHT_NOBITS {
            assert_eq!(hdrs[i].1, secs[i].nobits, "size of {}", secs[i].name);
            continue;
        }
        let mut want_bytes = if i == XDP { slots_to_bytes(new, Endian::Little) } else { secs[i].bytes.clone() };
        if i == SYMTAB {
            want_bytes[40..48].copy_from_slice(&(8 * new.len() as u64).to_le_bytes());
        }
        assert_eq!(hdrs[i].1, want_bytes.len() as u64, "size of {}", secs[i].name);
        let at = off as usize;
        assert_eq!(&out[at..at + want_bytes.len()], &want_bytes[..], "bytes of {}", secs[i].name);
    }
    // The output parses, and its program is the new one.
    let re = BpfObject::parse(&out).unwrap();
    assert_eq!(re.programs()[0].insns(), new);
    out
}

/// One instruction inserted at the start: everything after `xdp` shifts by 8, and each item
/// lands as the rule says.
#[test]
fn growth_keeps_alignment_and_places_every_kind_of_section() {
    let old = prog();
    let nop = Insn::new(opcode::JMP | opcode::JA, 0, 0, 0, 0);
    let new = vec![nop, old[0], old[1], old[2], old[3]];
    let map = TableMap { start: vec![0, 2, 3, 4], insn: vec![Some(1), Some(2), Some(3), Some(4)], new_len: 5 };
    let want = [
        (XDP, 0x40),
        // 0x60 + 8, a multiple of 4 away.
        (DATA_A, 0x68),
        // Empty: its place relative to what precedes it (shift 8), before `.data.b` moves.
        (EMPTY, 0x78),
        // 0x70 + 8 = 0x78 is not 16 away from 0x70: the next offset that is, 0x80.
        (DATA_B, 0x80),
        // The shift is now 16 (`.data.b`'s): 0x80 + 16, 8-aligned.
        (BSS, 0x90),
        // Alignment 8192 is honoured as 1 (no padding): 0x80 + 16.
        (BIG, 0x90),
        // Alignment 24 (not a power of two) is honoured as 1: 0x88 + 16.
        (ODD, 0x98),
        (SYMTAB, 0xa0),
        // After the header table, which moved by 16 too.
        (TAIL, SHOFF + 16 + NSEC * 64),
    ];
    let out = check_layout(&new, &map, &want, SHOFF + 16);
    assert_eq!(out[0x6c..0x80], [0; 20], "a gap that changed length is zero-filled");
}

/// One instruction deleted: the shift is how far the previous item *moved* (the program did
/// not), so nothing moves back; the 8 freed bytes become zero padding, and the gap between
/// `.data.a` and `.data.b`, which keeps its length, is copied from the input.
#[test]
fn shrinking_leaves_what_follows_in_place() {
    let old = prog();
    let new = vec![old[0], old[2], old[3]];
    let map = TableMap { start: vec![0, 1, 1, 2], insn: vec![Some(0), None, Some(1), Some(2)], new_len: 3 };
    let want = [
        (XDP, 0x40),
        (DATA_A, 0x60),
        (EMPTY, 0x70),
        (DATA_B, 0x70),
        (BSS, 0x80),
        (BIG, 0x80),
        (ODD, 0x88),
        (SYMTAB, 0x90),
        (TAIL, SHOFF + NSEC * 64),
    ];
    let out = check_layout(&new, &map, &want, SHOFF);
    assert_eq!(out[0x58..0x60], [0; 8], "the freed bytes");
    assert_eq!(out[0x64..0x70], [0xee; 12], "a gap of its original length is copied");
}

/// An ELF32 `SHT_NOBITS` section whose offset no longer fits 32 bits after a growth is a
/// `LayoutOverflow`, not a truncated offset (its size still fits, so the check must look at
/// the offset on its own).
#[test]
fn elf32_offset_past_4_gib_is_an_error() {
    // A minimal ELF32: a 1-instruction program, `.shstrtab`, a `.bss` at 0xffff_fff8.
    let shstr = b"\0xdp\0.shstrtab\0.bss\0";
    let mut b = vec![0u8; 52];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 1; // ELFCLASS32
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&1u16.to_le_bytes());
    b[18..20].copy_from_slice(&247u16.to_le_bytes());
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    let exit = Insn::new(opcode::JMP | opcode::EXIT, 0, 0, 0, 0);
    b.extend(slots_to_bytes(&[exit], Endian::Little)); // 52..60
    b.extend(shstr); // 60..80
    let shoff = b.len() as u32;
    b[0x20..0x24].copy_from_slice(&shoff.to_le_bytes());
    b[0x28..0x2a].copy_from_slice(&52u16.to_le_bytes());
    b[0x2e..0x30].copy_from_slice(&40u16.to_le_bytes());
    b[0x30..0x32].copy_from_slice(&4u16.to_le_bytes());
    b[0x32..0x34].copy_from_slice(&2u16.to_le_bytes());
    // name, type, flags, addr, offset, size, link, info, align, entsize
    let sections: [[u32; 10]; 4] = [
        [0; 10],
        [1, SHT_PROGBITS, 6, 0, 52, 8, 0, 0, 4, 0],
        [5, SHT_STRTAB, 0, 0, 60, shstr.len() as u32, 0, 0, 1, 0],
        [15, SHT_NOBITS, 3, 0, 0xffff_fff8, 16, 0, 0, 8, 0],
    ];
    for s in sections {
        s.iter().for_each(|v| b.extend(v.to_le_bytes()));
    }
    let mut obj = BpfObject::parse(&b).unwrap();
    assert_eq!(obj.write().unwrap(), b, "an unchanged write is the input");
    let map = TableMap { start: vec![0], insn: vec![Some(2)], new_len: 3 };
    let nop = Insn::new(opcode::JMP | opcode::JA, 0, 0, 0, 0);
    obj.replace_program(0, vec![nop, nop, exit], &map).unwrap();
    assert_eq!(obj.write(), Err(ObjectError::LayoutOverflow { what: "file offset" }));
}
