//! `check`: each corruption of the committed test object (both byte orders) yields exactly the
//! expected finding; the clean objects yield none.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

use bpfpatch_insn::{Endian, Reason};
use bpfpatch_object::{BpfObject, Finding, FindingKind, InfoKind, check};

const OBJECTS: [(&str, Endian); 2] = [("prog-el.o", Endian::Little), ("prog-eb.o", Endian::Big)];

struct Fx {
    b: Vec<u8>,
    obj: BpfObject,
    e: Endian,
}

impl Fx {
    fn new(name: &str, e: Endian) -> Fx {
        let b = std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let obj = BpfObject::parse(&b).unwrap();
        assert_eq!(check(&obj), vec![]);
        Fx { b, obj, e }
    }
    fn sec(&self, name: &str) -> usize {
        (0..self.obj.section_headers().len()).find(|&i| self.obj.section_name(i) == Some(name)).unwrap()
    }
    fn off(&self, name: &str) -> usize {
        self.obj.section_headers()[self.sec(name)].offset as usize
    }
    fn u32_at(&self, at: usize) -> u32 {
        let x: [u8; 4] = self.b[at..at + 4].try_into().unwrap();
        if self.e == Endian::Little { u32::from_le_bytes(x) } else { u32::from_be_bytes(x) }
    }
    fn put32(b: &mut [u8], at: usize, v: u32, e: Endian) {
        let x = if e == Endian::Little { v.to_le_bytes() } else { v.to_be_bytes() };
        b[at..at + 4].copy_from_slice(&x);
    }
    /// Byte offset of field `f` (1 = regs, 2 = off, 4 = imm) of slot `slot` of section `sec`.
    fn insn(&self, sec: &str, slot: usize, f: usize) -> usize {
        self.off(sec) + slot * 8 + f
    }
    fn set_off(&self, b: &mut [u8], sec: &str, slot: usize, v: i16) {
        let x = if self.e == Endian::Little { v.to_le_bytes() } else { v.to_be_bytes() };
        let at = self.insn(sec, slot, 2);
        b[at..at + 2].copy_from_slice(&x);
    }
    fn set_imm(&self, b: &mut [u8], sec: &str, slot: usize, v: i32) {
        Fx::put32(b, self.insn(sec, slot, 4), v.cast_unsigned(), self.e);
    }
    /// Start of `.BTF.ext` area `k` (0 func, 1 line, 2 core): its record size field.
    fn area(&self, k: usize) -> usize {
        let x = self.off(".BTF.ext");
        x + self.u32_at(x + 4) as usize + self.u32_at(x + 8 + 8 * k) as usize
    }
    /// Findings after `f` patches the bytes.
    fn findings(&self, f: impl FnOnce(&mut Vec<u8>)) -> Vec<Finding> {
        let mut b = self.b.clone();
        f(&mut b);
        check(&BpfObject::parse(&b).unwrap())
    }
    fn one(&self, f: impl FnOnce(&mut Vec<u8>)) -> (String, FindingKind) {
        let v = self.findings(f);
        assert_eq!(v.len(), 1, "{v:?}");
        (v[0].section.name.clone(), v[0].kind.clone())
    }
}

#[test]
fn instruction_findings() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let (s, k) = fx.one(|b| b[fx.insn("xdp", 0, 0)] = 0xff);
        assert_eq!((s.as_str(), k), ("xdp", FindingKind::Decode { slot: 0, reason: Reason::UnknownOpcode }));
        // xdp slot 8 is `if w1 <= w2 goto +3`; slots 5-6 are an ld_imm64.
        let (_, k) = fx.one(|b| fx.set_off(b, "xdp", 8, 100));
        assert_eq!(k, FindingKind::TargetOutOfRange { slot: 8, target: 109 });
        let (_, k) = fx.one(|b| fx.set_off(b, "xdp", 8, -3));
        assert_eq!(k, FindingKind::TargetInsideLdImm64 { slot: 8, target: 6 });
        // .text slot 7 jumps inside `bump` (0..20); send it into `mix` (20..34).
        let (s, k) = fx.one(|b| fx.set_off(b, ".text", 7, 17));
        assert_eq!((s.as_str(), k), (".text", FindingKind::JumpOutOfSubprogram { slot: 7, target: 25 }));
        // .text slot 16 is a pc-relative call to `mix` (20).
        let (_, k) = fx.one(|b| fx.set_imm(b, ".text", 16, 4));
        assert_eq!(k, FindingKind::CallNotToSubprogram { slot: 16, target: 21 });
    }
}

#[test]
fn relocation_and_symbol_findings() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let rel = fx.off(".relxdp");
        let put64 = |b: &mut [u8], at: usize, v: u64| {
            let x = if e == Endian::Little { v.to_le_bytes() } else { v.to_be_bytes() };
            b[at..at + 8].copy_from_slice(&x);
        };
        // R_BPF_64_64 of `limit` moved from the ld_imm64 (5) to a load (7), then onto its second slot.
        let (_, k) = fx.one(|b| put64(b, rel, 7 * 8));
        assert_eq!(k, FindingKind::RelocWrongInsn { reloc: 0, slot: 7, r_type: 1, code: 0x61 });
        let (_, k) = fx.one(|b| put64(b, rel, 6 * 8));
        assert_eq!(k, FindingKind::RelocWrongInsn { reloc: 0, slot: 6, r_type: 1, code: 0 });
        // A data relocation type in code.
        let (_, k) = fx.one(|b| put64(b, rel + 8, (u64::from(fx.obj.programs()[1].relocs()[0].symbol) << 32) | 2));
        assert_eq!(k, FindingKind::RelocWrongInsn { reloc: 0, slot: 5, r_type: 2, code: 0x18 });
        // tc slot 11 calls .text + (0x13 + 1) * 8 = `mix`; one slot further is no subprogram.
        let (s, k) = fx.one(|b| fx.set_imm(b, "tc", 11, 0x14));
        assert_eq!((s.as_str(), k), ("tc", FindingKind::RelocBadTarget { reloc: 1, slot: 11, target: 21 * 8 }));
        // xdp's callback address (.text + 0x110) moved into the middle of an ld_imm64 of bump.
        let (_, k) = fx.one(|b| fx.set_imm(b, "xdp", 15, 4 * 8));
        assert_eq!(k, FindingKind::RelocBadTarget { reloc: 2, slot: 15, target: 32 });
        // `mix`'s size no longer whole instructions.
        let (si, sym) = fx.obj.symbols().iter().enumerate().find(|(_, s)| s.name == "mix").unwrap();
        let at = fx.off(".symtab") + si * 24 + 16;
        let (_, k) = fx.one(|b| put64(b, at, 100));
        assert_eq!(
            k,
            FindingKind::BadFuncSymbol { symbol: si as u32, name: "mix".into(), value: sym.value, size: 100 }
        );
    }
}

#[test]
fn btf_ext_findings() {
    for (name, e) in OBJECTS {
        let fx = Fx::new(name, e);
        let text = fx.obj.program_by_name(".text").unwrap().0;
        let (fa, la) = (fx.area(0), fx.area(1));
        let ext = fx.obj.btf_ext().unwrap();
        assert_eq!(ext.func_info().blocks[0].sec_name.as_deref(), Some(".text"));
        assert_eq!(ext.line_info().blocks[0].sec_name.as_deref(), Some(".text"));
        let li = fx.obj.line_info(text);
        let rec = |i: usize| la + 12 + i * 16; // insn_off of line record i of block 0
        let last = li.len() - 1;
        let (s, k) = fx.one(|b| Fx::put32(b, rec(last), 8000, e));
        assert_eq!(
            (s.as_str(), k),
            (".text", FindingKind::RecordOutOfRange { kind: InfoKind::LineInfo, record: last, slot: 1000 })
        );
        // Slot 11 is the second slot of the ld_imm64 at 10: move the record just around it there.
        let i = (1..last).find(|&i| li[i - 1].insn_off < 88 && li[i + 1].insn_off > 88).unwrap();
        let (_, k) = fx.one(|b| Fx::put32(b, rec(i), 11 * 8, e));
        assert_eq!(k, FindingKind::RecordNotOnInsn { kind: InfoKind::LineInfo, record: i, slot: 11 });
        let (s2, s1) = (li[2].insn_off / 8, li[1].insn_off / 8);
        let (_, k) = fx.one(|b| Fx::put32(b, rec(0), li[2].insn_off, e));
        assert_eq!(
            k,
            FindingKind::RecordUnsorted { kind: InfoKind::LineInfo, record: 1, slot: s1 as usize, prev: s2 as usize }
        );
        // func_info of `mix` (record 1 of the .text block, at 160) moved one slot.
        let (_, k) = fx.one(|b| Fx::put32(b, fa + 12 + 8, 168, e));
        assert_eq!(k, FindingKind::FuncInfoNotOnSubprogram { record: 1, slot: 21 });
        // A block naming a section that is no program (the empty string).
        let v = fx.findings(|b| Fx::put32(b, fa + 4, 0, e));
        assert!(
            v.iter().any(|f| f.section.name == ".BTF.ext"
                && f.kind
                    == FindingKind::OrphanBlock {
                        kind: InfoKind::FuncInfo,
                        sec_name_off: 0,
                        name: Some(String::new())
                    }),
            "{v:?}"
        );
        // Displayed findings name the section.
        assert!(v[0].to_string().starts_with("section "), "{}", v[0]);
        // The CO-RE record on `tc` slot 4 (`r2 = *(u32 *)(r2 + 0x4)`): on a jump (nothing a
        // loader can patch, and any rewrite moves its offset) it is a finding (fuzz finding).
        assert_eq!(fx.obj.core_relos(fx.obj.program_by_name("tc").unwrap().0)[0].insn_off, 32);
        let at = fx.insn("tc", 4, 0);
        let dst_only = if e == Endian::Little { 0x02 } else { 0x20 }; // r2, no source register
        let jump = |code: u8| move |b: &mut Vec<u8>| b[at..at + 2].copy_from_slice(&[code, dst_only]);
        let (s, k) = fx.one(jump(0x55)); // `if r2 != 0x0 goto +0x4`
        assert_eq!((s.as_str(), k), ("tc", FindingKind::CoreReloWrongInsn { record: 0, slot: 4, code: 0x55 }));
        let (_, k) = fx.one(jump(0x56)); // `if w2 != 0x0 goto +0x4`, as the fuzzer found it
        assert_eq!(k, FindingKind::CoreReloWrongInsn { record: 0, slot: 4, code: 0x56 });
    }
}
