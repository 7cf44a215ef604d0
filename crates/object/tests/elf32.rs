//! ELF32 objects (clang only emits ELF64 for BPF, so these are built by hand here): parsing,
//! byte-exact identity write, and a rewrite moving the relocation and symbols, in both byte
//! orders.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

use bpfpatch_insn::{Endian, Insn, opcode, slots_to_bytes};
use bpfpatch_object::{BpfObject, TableMap, check, reloc_type};

struct W {
    b: Vec<u8>,
    e: Endian,
}

impl W {
    fn u8(&mut self, v: u8) {
        self.b.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.b.extend(if self.e == Endian::Little { v.to_le_bytes() } else { v.to_be_bytes() });
    }
    fn u32(&mut self, v: u32) {
        self.b.extend(if self.e == Endian::Little { v.to_le_bytes() } else { v.to_be_bytes() });
    }
    fn pad(&mut self, a: usize) {
        while !self.b.len().is_multiple_of(a) {
            self.b.push(0);
        }
    }
}

/// `.text` = `r1 = map ll; call 1; r0 = 0; exit` with an `R_BPF_64_64` on the ld_imm64 against
/// an undefined symbol `m`, and a function symbol `f` covering the section.
fn build(e: Endian) -> Vec<u8> {
    let text = [
        Insn::new(opcode::LD_IMM64, 1, 0, 0, 0),
        Insn::new(0, 0, 0, 0, 0),
        Insn::new(opcode::JMP | opcode::CALL, 0, 0, 0, 1),
        Insn::new(opcode::ALU64 | opcode::MOV, 0, 0, 0, 0),
        Insn::new(opcode::JMP | opcode::EXIT, 0, 0, 0, 0),
    ];
    let shstr = b"\0.text\0.rel.text\0.symtab\0.strtab\0.shstrtab\0";
    let strtab = b"\0f\0m\0";
    let mut w = W { b: vec![0; 52], e };
    let text_off = w.b.len();
    w.b.extend(slots_to_bytes(&text, e));
    let rel_off = w.b.len();
    w.u32(0); // r_offset
    w.u32((2 << 8) | reloc_type::R_BPF_64_64); // symbol 2 (`m`)
    let sym_off = w.b.len();
    w.b.extend([0; 16]); // null symbol
    for (name, value, size, info, shndx) in [(1u32, 0u32, 40u32, 0x12u8, 1u16), (3, 0, 0, 0x10, 0)] {
        w.u32(name);
        w.u32(value);
        w.u32(size);
        w.u8(info);
        w.u8(0);
        w.u16(shndx);
    }
    let str_off = w.b.len();
    w.b.extend(strtab);
    let shstr_off = w.b.len();
    w.b.extend(shstr);
    w.pad(4);
    let shoff = w.b.len();
    // name, type, flags, addr, offset, size, link, info, align, entsize
    let sections: [[u32; 10]; 6] = [
        [0; 10],
        [1, 1, 6, 0, text_off as u32, 40, 0, 0, 8, 0],
        [7, 9, 0x40, 0, rel_off as u32, 8, 3, 1, 4, 8],
        [17, 2, 0, 0, sym_off as u32, 48, 4, 1, 4, 16],
        [25, 3, 0, 0, str_off as u32, strtab.len() as u32, 0, 0, 1, 0],
        [33, 3, 0, 0, shstr_off as u32, shstr.len() as u32, 0, 0, 1, 0],
    ];
    for s in sections {
        s.iter().for_each(|&v| w.u32(v));
    }
    let mut h = W { b: Vec::new(), e };
    h.b.extend(b"\x7fELF");
    h.u8(1); // ELFCLASS32
    h.u8(if e == Endian::Little { 1 } else { 2 });
    h.u8(1);
    h.b.resize(16, 0);
    h.u16(1); // ET_REL
    h.u16(247); // EM_BPF
    h.u32(1);
    h.u32(0); // entry
    h.u32(0); // phoff
    h.u32(shoff as u32);
    h.u32(0); // flags
    h.u16(52);
    h.u16(0);
    h.u16(0);
    h.u16(40);
    h.u16(6);
    h.u16(5);
    w.b[..52].copy_from_slice(&h.b);
    w.b
}

#[test]
fn elf32_parse_write_rewrite() {
    for e in [Endian::Little, Endian::Big] {
        let bytes = build(e);
        let mut obj = BpfObject::parse(&bytes).unwrap();
        assert!(!obj.is_64());
        assert_eq!(obj.endian(), e);
        assert_eq!(obj.programs().len(), 1);
        let p = &obj.programs()[0];
        assert_eq!(p.insns()[2], Insn::new(opcode::JMP | opcode::CALL, 0, 0, 0, 1));
        assert_eq!(p.relocs().len(), 1);
        assert_eq!((p.relocs()[0].slot, p.relocs()[0].r_type), (0, reloc_type::R_BPF_64_64));
        assert_eq!(obj.symbols()[p.relocs()[0].symbol as usize].name, "m");
        let subs = obj.subprograms(0);
        assert_eq!((subs[0].name.as_str(), subs[0].start, subs[0].len), ("f", 0, 5));
        assert_eq!(check(&obj), vec![]);
        assert_eq!(obj.write().unwrap(), bytes, "identity");
        // Insert two instructions before the ld_imm64 and delete the mov.
        let old = obj.programs()[0].insns().to_vec();
        let nop = Insn::new(opcode::JMP | opcode::JA, 0, 0, 0, 0);
        let new = vec![nop, nop, old[0], old[1], old[2], old[4]];
        let map =
            TableMap { start: vec![0, 3, 4, 5, 5], insn: vec![Some(2), Some(3), Some(4), None, Some(5)], new_len: 6 };
        obj.replace_program(0, new.clone(), &map).unwrap();
        let out = obj.write().unwrap();
        let re = BpfObject::parse(&out).unwrap();
        assert_eq!(re.programs()[0].insns(), &new[..]);
        assert_eq!(re.programs()[0].relocs()[0].slot, 2);
        let f = &re.symbols()[1];
        assert_eq!((f.name.as_str(), f.value, f.size), ("f", 0, 48));
        assert_eq!(check(&re), vec![]);
        assert_eq!(re.write().unwrap(), out);
    }
}
