//! Relocation shapes clang does not emit from C, on the committed tests/data/edges-{el,eb}.o
//! (edges.s, assembled by llvm-mc-19) and byte-patched copies of them: function addresses and
//! calls through global function symbols whose value is not 0, a symbol and an address at the
//! very end of a section, a legacy `maps` section, a data section pointing into code, an
//! `R_BPF_64_32` on an ld_imm64, a relocation on a `call` that is not `R_BPF_64_32`, two
//! relocations on one instruction, and a section ending in half an ld_imm64. Each expected value
//! is worked out by hand from the listing below (`llvm-objdump-19 -d -r`) and the rule named.
//!
//! ```text
//! .text (8 slots)                       xdp (11 slots)                     tc (4 slots)
//! 0 fa: call fb      R_BPF_64_32 fb     0 r1 = fb ll       R_BPF_64_64 fb  0 r0 = 0
//! 1     exit                            2 r2 = text_end ll R_BPF_64_64     1 exit
//! 2 fb: r0 = 2                          4 r3 = fa ll       R_BPF_64_64 fa  2 r1 = mapv ll (maps)
//! 3     exit                            6 call fa          R_BPF_64_32 fa
//! 4 fc: r1 = text_end ll  R_BPF_64_64   7 r4 = mapv ll     R_BPF_64_64 mapv
//! 6     r0 = 0 (.Lfc_body)              9 r0 = 0
//! 7     exit                           10 exit
//! 8 text_end (global, value 64)
//! .data.fp: .quad .Lfc_body (.text+48), fa, .Lxdp_a (xdp+80), .Lxdp_b (xdp+88), R_BPF_64_ABS64
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

mod common;

use bpfpatch_insn::{Endian, Insn, opcode as c};
use bpfpatch_object::{BpfObject, IdentityMap, ObjectError, RelocRole, RewriteError, TableMap, reloc_type};
use common::{Edit, rewrite, verify_moved, verify_reloc_targets};

const OBJECTS: [&str; 2] = ["edges-el.o", "edges-eb.o"];

/// The bytes of one committed object, with field locators for patching them.
#[derive(Clone)]
struct Fx {
    b: Vec<u8>,
    e: Endian,
}

impl Fx {
    fn new(name: &str) -> Fx {
        let b = std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let e = BpfObject::parse(&b).unwrap().endian();
        Fx { b, e }
    }
    fn obj(&self) -> BpfObject {
        BpfObject::parse(&self.b).unwrap()
    }
    fn sec(&self, name: &str) -> usize {
        let o = self.obj();
        (0..o.section_headers().len()).find(|&i| o.section_name(i) == Some(name)).unwrap()
    }
    fn off(&self, name: &str) -> usize {
        self.obj().section_headers()[self.sec(name)].offset as usize
    }
    fn put(&mut self, at: usize, bytes: &[u8]) {
        let mut x = bytes.to_vec();
        if self.e == Endian::Big {
            x.reverse();
        }
        self.b[at..at + x.len()].copy_from_slice(&x);
    }
    fn put32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_le_bytes());
    }
    fn put64(&mut self, at: usize, v: u64) {
        self.put(at, &v.to_le_bytes());
    }
    /// Entry `k` of relocation section `rel` gets type `ty` (ELF64 `r_info` = sym << 32 | type).
    fn set_reloc_type(&mut self, rel: &str, k: usize, ty: u32) -> &mut Fx {
        let at = self.off(rel) + 16 * k + 8 + if self.e == Endian::Big { 4 } else { 0 };
        self.put32(at, ty);
        self
    }
    /// Entry `k` of relocation section `rel` moves to byte `offset` of its section.
    fn set_reloc_offset(&mut self, rel: &str, k: usize, offset: u64) -> &mut Fx {
        let at = self.off(rel) + 16 * k;
        self.put64(at, offset);
        self
    }
    /// The `imm` of slot `slot` of section `sec`.
    fn set_imm(&mut self, sec: &str, slot: usize, imm: i32) -> &mut Fx {
        let at = self.off(sec) + 8 * slot + 4;
        self.put32(at, imm as u32);
        self
    }
    /// `st_value` of symbol `sym`.
    fn set_sym_value(&mut self, sym: usize, v: u64) -> &mut Fx {
        let at = self.off(".symtab") + 24 * sym + 8;
        self.put64(at, v);
        self
    }
    /// `sh_size` of section `sec`.
    fn set_size(&mut self, sec: &str, size: u64) -> &mut Fx {
        let shoff: [u8; 8] = self.b[0x28..0x30].try_into().unwrap();
        let shoff = if self.e == Endian::Big { u64::from_be_bytes(shoff) } else { u64::from_le_bytes(shoff) };
        let at = shoff as usize + 64 * self.sec(sec) + 32;
        self.put64(at, size);
        self
    }
}

fn prog(obj: &BpfObject, name: &str) -> usize {
    obj.program_by_name(name).unwrap().0
}

fn sym(obj: &BpfObject, name: &str) -> usize {
    obj.symbols().iter().position(|s| s.name == name).unwrap()
}

fn rewrite_err(r: Result<bpfpatch_object::RewriteReport, ObjectError>) -> RewriteError {
    match r {
        Err(ObjectError::Rewrite { error, .. }) => error,
        other => panic!("expected a rewrite error, got {other:?}"),
    }
}

/// Rewrites program `pi` with a `ja +0` before every instruction, checks the origin oracles of
/// tests/common (every relocation and symbol on the image of its instruction; every relocated
/// call and address into the section reaching the image of its target) and returns the object.
fn nop_before_all(obj: &BpfObject, pi: usize) -> (BpfObject, bpfpatch_object::RewriteReport) {
    let rw = rewrite(obj, pi, |_, _| Edit::NopBefore).unwrap();
    let mut new = obj.clone();
    let report = new.replace_program(pi, rw.insns.clone(), &rw.map).unwrap();
    verify_moved(obj, &new, pi, &rw, &|_| false).unwrap();
    verify_reloc_targets(obj, &new, pi, &rw, &|_| false).unwrap();
    (new, report)
}

/// The addend of a relocated call or address names its target relative to the symbol
/// (`S / 8 + imm + 1` for a call, `S + imm` for an ld_imm64, libbpf's reading): when the
/// symbol moves with its target the addend stays what it was, whatever the symbol's value,
/// also for an address of the section's end and for an `R_BPF_64_32` on an ld_imm64 (an
/// address, not a call).
#[test]
fn addends_through_function_symbols_stay_with_their_targets() {
    for name in OBJECTS {
        let plain = Fx::new(name);
        let mut r32 = plain.clone();
        r32.set_reloc_type(".relxdp", 2, reloc_type::R_BPF_64_32); // r3 = fa ll
        for fx in [plain, r32] {
            let obj = fx.obj();
            let (text, xdp) = (prog(&obj, ".text"), prog(&obj, "xdp"));
            let (new, report) = nop_before_all(&obj, text);
            // New .text: nop fa:call nop exit nop fb:mov nop exit nop fc:ld(2) nop mov nop exit,
            // 15 slots: start = [0, 2, 4, 6, 8, 10, 11, 13], end 15.
            let value = |n: &str| new.symbols()[sym(&new, n)].value;
            assert_eq!([value("fa"), value("fb"), value("fc"), value("text_end")], [0, 32, 64, 120], "{name}");
            assert_eq!(new.symbols()[sym(&new, "fc")].size, 56, "{name}");
            let imm = |p: usize, s: usize| new.programs()[p].insns()[s].imm;
            // fb at new slot 4, symbol at 32: imm = 4 * 8 - 32 = 0; text_end: 15 * 8 - 120 = 0;
            // fa: 0 - 0 = 0; call fa: 0 - 0 / 8 - 1 = -1.
            assert_eq!([imm(xdp, 0), imm(xdp, 2), imm(xdp, 4), imm(xdp, 6)], [0, 0, 0, -1], "{name}");
            // In .text: call fb (new slot 1): 4 - 32 / 8 - 1 = -1; r1 = text_end (slot 9): 0.
            assert_eq!([imm(text, 1), imm(text, 9)], [-1, 0], "{name}");
            // Foreign references through .text's section symbol: `.quad .Lfc_body` only (`fa`
            // names a function symbol, which moved with its code; .Lxdp_* name xdp's).
            assert_eq!(report.stale_foreign_refs, 1, "{name}");
            // Rewriting xdp itself: its relocations follow their instructions, the `R_BPF_64_32`
            // ld_imm64 included; .Lxdp_a and .Lxdp_b are the two stale references.
            let (_, report) = nop_before_all(&obj, xdp);
            assert_eq!(report.stale_foreign_refs, 2, "{name}");
        }
    }
}

/// The immediates of relocated instructions belong to their relocations: whatever the new image
/// holds there, the object keeps the original addend (a call's `-1`, a map address's `0`).
#[test]
fn relocated_immediates_are_restored_from_the_original() {
    for name in OBJECTS {
        let mut obj = Fx::new(name).obj();
        let xdp = prog(&obj, "xdp");
        let old = obj.programs()[xdp].insns().to_vec();
        let mut new = old.clone();
        new[4].imm = 3; // r3 = fa ll
        new[6].imm = 5; // call fa
        new[7].imm = 9; // r4 = mapv ll
        obj.replace_program(xdp, new, &IdentityMap(old.len())).unwrap();
        assert_eq!(obj.programs()[xdp].insns(), &old[..], "{name}");
    }
}

/// An addend into the rewritten section must name an instruction boundary inside it (or its
/// end); otherwise the rewrite is refused (`RelocTargetOutOfRange`) and the object unchanged.
#[test]
fn addends_off_instruction_boundaries_are_refused() {
    for name in OBJECTS {
        // r1 = fb ll: fb (16) + 4 = 20, not a slot; fb + 64 = 80, past the end (64).
        for (imm, target) in [(4, 20), (64, 80)] {
            let mut fx = Fx::new(name);
            fx.set_imm("xdp", 0, imm);
            let mut obj = fx.obj();
            let text = prog(&obj, ".text");
            let rw = rewrite(&obj, text, |_, _| Edit::NopBefore).unwrap();
            let e = rewrite_err(obj.replace_program(text, rw.insns, &rw.map));
            match e {
                RewriteError::RelocTargetOutOfRange { section, reloc, target_section, target: t } => {
                    assert_eq!(
                        (section.name.as_str(), reloc, target_section.name.as_str(), t),
                        ("xdp", 0, ".text", target)
                    );
                }
                other => panic!("{name}: {other:?}"),
            }
            assert_eq!(obj.write().unwrap(), fx.b, "{name}: a refused rewrite changes nothing");
        }
    }
}

/// A map that keeps only the first slot of a relocated ld_imm64 (the second deleted) leaves a
/// cut instruction: refused as `RelocatedInsnChanged`, for `R_BPF_64_64` and for an
/// `R_BPF_64_32` on an ld_imm64 alike.
#[test]
fn a_relocated_ld_imm64_cut_in_two_is_refused() {
    for name in OBJECTS {
        for (ty, slot, reloc) in [(reloc_type::R_BPF_64_64, 0, 0), (reloc_type::R_BPF_64_32, 4, 2)] {
            let mut fx = Fx::new(name);
            fx.set_reloc_type(".relxdp", reloc, ty);
            let mut obj = fx.obj();
            let xdp = prog(&obj, "xdp");
            let old = obj.programs()[xdp].insns().to_vec();
            // Keep old slots 0..=slot (the first half of the ld_imm64 at `slot`), delete the rest.
            let new_len = slot + 1;
            let start: Vec<usize> = (0..old.len()).map(|s| s.min(new_len)).collect();
            let insn: Vec<Option<usize>> = (0..old.len()).map(|s| (s < new_len).then_some(s)).collect();
            let map = TableMap { start, insn, new_len };
            let e = rewrite_err(obj.replace_program(xdp, old[..new_len].to_vec(), &map));
            assert_eq!(
                e,
                RewriteError::RelocatedInsnChanged { reloc, r_type: ty, old: slot, new: slot, code: 0x18 },
                "{name}"
            );
            assert_eq!(obj.write().unwrap(), fx.b, "{name}");
        }
    }
}

/// A symbol of the rewritten section must start and end on instruction boundaries
/// (`BadSymbol`): here `fc` moved to byte 36.
#[test]
fn a_symbol_off_instruction_boundaries_is_refused() {
    for name in OBJECTS {
        let mut fx = Fx::new(name);
        let fc = sym(&fx.obj(), "fc");
        fx.set_sym_value(fc, 36);
        let mut obj = fx.obj();
        let text = prog(&obj, ".text");
        let n = obj.programs()[text].insns().len();
        let insns = obj.programs()[text].insns().to_vec();
        let e = rewrite_err(obj.replace_program(text, insns, &IdentityMap(n)));
        assert_eq!(e, RewriteError::BadSymbol { symbol: fc as u32, name: "fc".into(), value: 36, size: 32 }, "{name}");
    }
}

fn roles(obj: &BpfObject, section: &str) -> Vec<(usize, RelocRole)> {
    obj.engine_view(prog(obj, section)).unwrap().roles().to_vec()
}

/// The engine view's relocation roles (libbpf's reading): a `call` with `R_BPF_64_32` into its
/// own section through a function symbol is a local call to `S / 8 + imm + 1` (fb: 16 / 8 - 1 +
/// 1 = slot 2); an address of its own section's end names no instruction (an extern address,
/// no target); a map in the legacy `maps` section is a map fd, not a map value.
#[test]
fn view_roles_of_the_edge_shapes() {
    for name in OBJECTS {
        let obj = Fx::new(name).obj();
        assert_eq!(
            roles(&obj, ".text"),
            [(0, RelocRole::LocalCall { target: 2 }), (4, RelocRole::ExternAddr)],
            "{name}"
        );
        assert_eq!(
            roles(&obj, "xdp"),
            [
                (0, RelocRole::ExternAddr),
                (2, RelocRole::ExternAddr),
                (4, RelocRole::ExternAddr),
                (6, RelocRole::ExternCall),
                (7, RelocRole::Data),
            ],
            "{name}"
        );
        let v = obj.engine_view(prog(&obj, "xdp")).unwrap();
        assert_eq!(v.program().insns[7].src(), c::PSEUDO_MAP_FD, "{name}: `maps` holds map definitions");
        let t = obj.engine_view(prog(&obj, ".text")).unwrap();
        assert_eq!(t.program().insns[0].abs_target(0), Some(2), "{name}");
    }
}

/// Roles follow the relocation type and the instruction together: an `R_BPF_64_32` on an
/// ld_imm64 is an address (here of another section: extern), and a `call` whose relocation is
/// not `R_BPF_64_32` (an `R_BPF_64_64`) is neither a call nor an address (`Other`, left as is).
#[test]
fn view_roles_follow_type_and_instruction() {
    for name in OBJECTS {
        let mut fx = Fx::new(name);
        fx.set_reloc_type(".relxdp", 2, reloc_type::R_BPF_64_32).set_reloc_type(".relxdp", 3, reloc_type::R_BPF_64_64);
        let obj = fx.obj();
        let r = roles(&obj, "xdp");
        assert_eq!(r[2], (4, RelocRole::ExternAddr), "{name}");
        assert_eq!(r[3], (6, RelocRole::Other), "{name}");
        let v = obj.engine_view(prog(&obj, "xdp")).unwrap();
        assert_eq!(v.program().insns[6], obj.programs()[prog(&obj, "xdp")].insns()[6], "{name}: `Other` is left as is");
        // The R_BPF_64_64 on the call names no position: rewriting .text, where its symbol is,
        // leaves it alone (no addend to recompute, none to refuse).
        let text = prog(&obj, ".text");
        let (new, _) = nop_before_all(&obj, text);
        assert_eq!(new.programs()[prog(&new, "xdp")].insns()[6].imm, -1, "{name}");
    }
}

/// A section cut in the middle of an ld_imm64 (tc shortened to 24 bytes: slot 2 is the first
/// half alone) holds no ld_imm64 there: its relocation's role is `Other`, not a map.
#[test]
fn a_relocated_half_ld_imm64_at_the_end_is_not_an_address() {
    for name in OBJECTS {
        let mut fx = Fx::new(name);
        fx.set_size("tc", 24);
        let obj = fx.obj();
        assert_eq!(obj.programs()[prog(&obj, "tc")].insns().len(), 3);
        assert_eq!(roles(&obj, "tc"), [(2, RelocRole::Other)], "{name}");
    }
}

/// A second relocation on an instruction already relocated does not change its role: the
/// first one owns it (here `r4 = mapv ll`'s relocation moved onto `call fa`).
#[test]
fn the_first_relocation_on_an_instruction_owns_it() {
    for name in OBJECTS {
        let mut fx = Fx::new(name);
        fx.set_reloc_offset(".relxdp", 4, 6 * 8);
        let obj = fx.obj();
        assert_eq!(
            roles(&obj, "xdp"),
            [
                (0, RelocRole::ExternAddr),
                (2, RelocRole::ExternAddr),
                (4, RelocRole::ExternAddr),
                (6, RelocRole::ExternCall)
            ],
            "{name}"
        );
    }
}

/// A map naming an old slot past the new image is refused (`MapOutOfRange`), never followed.
#[test]
fn a_map_slot_past_the_new_image_is_refused() {
    for name in OBJECTS {
        let mut obj = Fx::new(name).obj();
        let xdp = prog(&obj, "xdp");
        let insns = obj.programs()[xdp].insns().to_vec();
        let n = insns.len();
        let mut insn: Vec<Option<usize>> = (0..n).map(Some).collect();
        insn[0] = Some(n);
        let map = TableMap { start: (0..n).collect(), insn, new_len: n };
        assert_eq!(
            rewrite_err(obj.replace_program(xdp, insns, &map)),
            RewriteError::MapOutOfRange { old: 0, new: n, new_len: n },
            "{name}"
        );
    }
}

#[test]
fn insn_helpers_agree_with_the_listing() {
    // The listing in the module documentation, as the tests above read it.
    let obj = Fx::new(OBJECTS[0]).obj();
    let x = obj.programs()[prog(&obj, "xdp")].insns();
    assert!(x[0].is_ld_imm64() && x[4].is_ld_imm64() && x[7].is_ld_imm64());
    assert_eq!(x[6], Insn::new(c::JMP | c::CALL, 0, 1, 0, -1));
}
