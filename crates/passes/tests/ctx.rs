//! `ctx` with the example layout: a program run on the program's view of the context must
//! behave like its conversion run on the runtime context (same r0; writable fields written
//! through to the runtime fields; the prologue ran once even though the program jumps back to
//! instruction 0). Accesses go through r1, moved copies and stack spills of it.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bpfpatch_insn::{AluOp, Cond, Endian, Insn, Op, Operand, Size, Width};
use bpfpatch_passes::internals::ctx::{EXAMPLE_PROLOGUE_FLAG, EXAMPLE_RUNTIME_SIZE, EXAMPLE_VIEW_SIZE, example_layout};
use bpfpatch_passes::{Options, PassError, Pipeline, transform};
use bpfpatch_vm::{Input, LoadOptions, LoadedProgram, Vm};
use common::rand_prog::{Rng, cases};
use common::*;

/// (view offset, size, signed, allowed) for every load the example layout permits and that a
/// program-view struct and the runtime struct agree on (the kernel's narrow-load quirk of a
/// 2-byte read of ifindex's upper half, a u16 at run time, is left out on purpose: its bytes
/// 2..4 on a little-endian machine `e`, 0..2 on a big-endian one).
fn loads_for(e: Endian) -> Vec<(i16, Size)> {
    let upper = if e == Endian::Big { 0 } else { 2 };
    let mut v = Vec::new();
    for (off, size) in [(0i16, 4u8), (4, 4), (8, 2), (12, 4), (16, 8), (24, 4), (28, 4)] {
        for s in [Size::B, Size::H, Size::W, Size::DW] {
            let b = i16::from(s.bytes());
            if b > i16::from(size) {
                continue;
            }
            for k in (0..i16::from(size)).step_by(b as usize) {
                if off == 12 && s == Size::H && k == upper {
                    continue;
                }
                v.push((off + k, s));
            }
        }
    }
    v
}

fn get(b: &[u8], off: usize, n: usize) -> u64 {
    let mut x = [0u8; 8];
    x[..n].copy_from_slice(&b[off..off + n]);
    u64::from_le_bytes(x)
}
fn put(b: &mut [u8], off: usize, n: usize, v: u64) {
    b[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
}

/// A random runtime context and the program view it presents.
fn contexts(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let mut rt = vec![0u8; EXAMPLE_RUNTIME_SIZE];
    for b in rt.iter_mut() {
        *b = rng.next() as u8;
    }
    put(&mut rt, 12, 4, 0); // the prologue's flag
    let mut view = vec![0u8; EXAMPLE_VIEW_SIZE];
    put(&mut view, 0, 4, get(&rt, 8, 4)); // len
    put(&mut view, 4, 4, get(&rt, 0, 4)); // mark
    put(&mut view, 8, 2, get(&rt, 20, 2)); // protocol
    put(&mut view, 12, 4, get(&rt, 16, 2)); // ifindex (u16 at run time)
    put(&mut view, 16, 8, get(&rt, 24, 8)); // tstamp
    put(&mut view, 24, 4, (get(&rt, 8, 4) as u32).wrapping_add(4).into()); // wire_len
    put(&mut view, 28, 4, get(&rt, 4, 4)); // cb0
    (rt, view)
}

fn run(insns: &[Insn], load: LoadOptions, ctx: &[u8]) -> (u64, Vec<u8>) {
    run_hi32(insns, load, ctx, bpfpatch_vm::Hi32Mode::ZeroExtend)
}

/// [`run`] on a machine that treats the upper half of 32-bit definitions as `hi32` says.
fn run_hi32(insns: &[Insn], load: LoadOptions, ctx: &[u8], hi32: bpfpatch_vm::Hi32Mode) -> (u64, Vec<u8>) {
    let prog = LoadedProgram::load(insns, &load).unwrap_or_else(|e| panic!("{e}"));
    let mut mem = ctx.to_vec();
    let vm = bpfpatch_vm::VmConfig::default().with_hi32(hi32);
    let r0 = Vm::new(vm).unwrap().run(&prog, Input::mem(&mut mem)).unwrap().r0;
    (r0, mem)
}

fn random_program(rng: &mut Rng) -> Vec<Insn> {
    random_program_for(rng, Endian::Little)
}

/// [`random_program`] with the loads of [`loads_for`] `e`.
fn random_program_for(rng: &mut Rng, e: Endian) -> Vec<Insn> {
    let loads = loads_for(e);
    // r1 ctx, r6 = ctx (moved), r7 = ctx (filled from a spill), r8 accumulator, r9 loop counter.
    let mut ops = vec![
        mov64(9, 2),
        mov64(8, 0),
        // (loop head is instruction 2: the back-edge below jumps to it)
        mov64r(6, 1),
        stx(Size::DW, 10, -16, 1),
        ldx(Size::DW, 7, 10, -16),
    ];
    for _ in 0..4 + rng.below_u64(12) {
        let base = rng.choose(&[1u8, 6, 7]);
        match rng.below_u64(10) {
            0..=6 => {
                let (off, size) = loads[rng.below_u64(loads.len() as u64) as usize];
                let signed = size != Size::DW && rng.chance(25);
                ops.push(Op::Load { size, signed, dst: r(0), src: r(base), off });
                ops.push(alu64(AluOp::Mul, 8, 33));
                ops.push(alu64r(AluOp::Add, 8, 0));
            }
            _ => {
                let (off, size) = rng.choose(&[(4i16, Size::W), (16, Size::DW), (28, Size::W)]);
                if rng.chance(50) {
                    ops.push(stx(size, base, off, 8));
                } else {
                    ops.push(st(size, base, off, rng.next() as i32));
                }
            }
        }
    }
    ops.push(alu64(AluOp::Sub, 9, 1));
    // Back to instruction 2 (jumps to the start of the body must skip a prologue: this one is
    // not at 0, so also check a jump to instruction 0 below).
    let back = -(ops.len() as i16 + 1 - 2);
    ops.push(Op::Jump { width: Width::W64, cond: Cond::Ne, dst: r(9), src: Operand::Imm(0), off: back });
    ops.push(mov64r(0, 8));
    ops.push(exit());
    enc(&ops)
}

#[test]
fn converted_programs_behave_like_the_originals() {
    let opts = Options { ctx_layout: Some(example_layout()), ..Options::default() };
    let p = Pipeline::parse("ctx").unwrap();
    let all = Pipeline::parse("ctx,all,blind").unwrap();
    for seed in 0..cases(500) {
        let mut rng = Rng::seeded(seed);
        let (rt, view) = contexts(&mut rng);
        let insns = random_program(&mut rng);
        let (want, view_after) = run(&insns, LoadOptions::default(), &view);
        for (name, pl) in [("ctx", &p), ("ctx,all,blind", &all)] {
            let out =
                transform(&insns, pl, &Options { seed, ..opts.clone() }).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            // With zext in the pipeline: on a machine that does not zero-extend.
            let hi32 = bpfpatch_passes::fuzzing::hi32_mode(pl, seed);
            let (got, rt_after) = run_hi32(&out, LoadOptions::INTERNAL.with_check_uninit(false), &rt, hi32);
            assert_eq!(got, want, "seed {seed} {name}: r0");
            // writable fields went through; the prologue set its flag; nothing else changed
            assert_eq!(get(&rt_after, 0, 4), get(&view_after, 4, 4), "seed {seed} {name}: mark");
            assert_eq!(get(&rt_after, 24, 8), get(&view_after, 16, 8), "seed {seed} {name}: tstamp");
            assert_eq!(get(&rt_after, 4, 4), get(&view_after, 28, 4), "seed {seed} {name}: cb0");
            assert_eq!(get(&rt_after, EXAMPLE_PROLOGUE_FLAG as usize, 4), 1, "seed {seed} {name}: prologue");
            assert_eq!(&rt_after[8..12], &rt[8..12]);
            assert_eq!(&rt_after[16..24], &rt[16..24]);
        }
    }
}

#[test]
fn jumps_to_instruction_0_skip_the_prologue() {
    // 0: r2 += 1; 1: if r2 < 40 goto 0; 2: r0 = r2; 3: exit  — r2 starts as the area length.
    let insns = enc(&[alu64(AluOp::Add, 2, 1), jmp(Cond::Lt, 2, 40, -2), mov64r(0, 2), exit()]);
    let opts = Options { ctx_layout: Some(example_layout()), ..Options::default() };
    let out = transform(&insns, &Pipeline::parse("ctx").unwrap(), &opts).unwrap();
    let mut want = example_layout().prologue().to_vec();
    want.extend(enc(&[alu64(AluOp::Add, 2, 1), jmp(Cond::Lt, 2, 40, -2), mov64r(0, 2), exit()]));
    assert_eq!(out, want);
    let mut rt = vec![0u8; EXAMPLE_RUNTIME_SIZE];
    rt[12] = 7;
    let (r0, after) = run(&out, LoadOptions::INTERNAL, &rt);
    assert_eq!(r0, 40);
    assert_eq!(get(&after, 12, 4), 1, "the prologue ran once, before the loop");
}

#[test]
fn unclassifiable_and_invalid_accesses_are_errors() {
    let opts = Options { ctx_layout: Some(example_layout()), ..Options::default() };
    let p = Pipeline::parse("ctx").unwrap();
    // r3 is the context on one path and the stack on the other
    let maybe = enc(&[mov64r(3, 1), jmp(Cond::Eq, 2, 0, 1), mov64r(3, 10), ldx(Size::W, 0, 3, -8), exit()]);
    assert!(matches!(transform(&maybe, &p, &opts), Err(PassError::CtxUnclassified { slot }) if slot.0 == 3));
    // a store to a read-only field
    let ro = enc(&[st(Size::W, 1, 0, 5), mov64(0, 0), exit()]);
    assert!(matches!(transform(&ro, &p, &opts), Err(PassError::Ctx { slot, .. }) if slot.0 == 0));
    // no layout
    let ok = enc(&[ldx(Size::W, 0, 1, 0), exit()]);
    assert!(matches!(transform(&ok, &p, &Options::default()), Err(PassError::NoCtxLayout)));
    // modified context pointer
    let modified = enc(&[alu64(AluOp::Add, 1, 4), ldx(Size::W, 0, 1, 0), exit()]);
    assert!(matches!(transform(&modified, &p, &opts), Err(PassError::CtxUnclassified { .. })));
}

/// The fields of the runtime context (offset, size), the prologue's flag included.
const RUNTIME_FIELDS: [(usize, usize); 7] = [(8, 4), (0, 4), (20, 2), (16, 2), (24, 8), (4, 4), (12, 4)];
/// The fields of the program's view (offset, size).
const VIEW_FIELDS: [(usize, usize); 7] = [(0, 4), (4, 4), (8, 2), (12, 4), (16, 8), (24, 4), (28, 4)];

/// `ctx` with every field's bytes reversed: the same values in the other byte order.
fn swapped(ctx: &[u8], fields: &[(usize, usize)]) -> Vec<u8> {
    let mut v = ctx.to_vec();
    for &(off, n) in fields {
        v[off..off + n].reverse();
    }
    v
}

/// [`run_hi32`] on a big-endian machine.
fn run_big(insns: &[Insn], load: LoadOptions, ctx: &[u8], hi32: bpfpatch_vm::Hi32Mode) -> (u64, Vec<u8>) {
    let prog = LoadedProgram::load(insns, &load).unwrap_or_else(|e| panic!("{e}"));
    let mut mem = ctx.to_vec();
    let vm = bpfpatch_vm::VmConfig::default().with_hi32(hi32).with_endian(Endian::Big);
    let r0 = Vm::new(vm).unwrap().run(&prog, Input::mem(&mut mem)).unwrap().r0;
    (r0, mem)
}

/// A 1-byte load of the first byte of a 4-byte field on a big-endian machine (bpfeb) reads the
/// field's most significant byte: the conversion loads the runtime word and shifts it right by
/// 24 (the kernel's `convert_ctx_accesses` with `bpf_ctx_narrow_access_offset` for big-endian),
/// and the converted program returns what the original returns on the view.
#[test]
fn narrow_ctx_loads_of_big_endian_programs_take_the_big_endian_byte() {
    // r0 = *(u8 *)(r1 + 0) (the first byte of `len`); exit
    let insns = enc(&[ldx(Size::B, 0, 1, 0), exit()]);
    let opts = Options { ctx_layout: Some(example_layout()), host: Endian::Big, ..Options::default() };
    let out = transform(&insns, &Pipeline::parse("ctx").unwrap(), &opts).unwrap();
    let mut want = example_layout().prologue().to_vec();
    want.extend(enc(&[ldx(Size::W, 0, 1, 8), alu32(AluOp::Rsh, 0, 24), alu32(AluOp::And, 0, 0xff), exit()]));
    assert_eq!(out, want);
    // len = 0x11223344: the view and the runtime context, big-endian.
    let mut view = vec![0u8; EXAMPLE_VIEW_SIZE];
    view[..4].copy_from_slice(&0x1122_3344u32.to_be_bytes());
    let mut rt = vec![0u8; EXAMPLE_RUNTIME_SIZE];
    rt[8..12].copy_from_slice(&0x1122_3344u32.to_be_bytes());
    let zx = bpfpatch_vm::Hi32Mode::ZeroExtend;
    assert_eq!(run_big(&insns, LoadOptions::default(), &view, zx).0, 0x11);
    assert_eq!(run_big(&out, LoadOptions::INTERNAL, &rt, zx).0, 0x11);
    // The little-endian conversion would read the low byte there.
    let le = transform(&insns, &Pipeline::parse("ctx").unwrap(), &Options { host: Endian::Little, ..opts }).unwrap();
    assert_ne!(le, out);
    assert_eq!(run_big(&le, LoadOptions::INTERNAL, &rt, zx).0, 0x44);
}

/// [`converted_programs_behave_like_the_originals`] on a big-endian machine: the same random
/// programs (every load the layout permits, narrow ones at every byte offset) and contexts
/// holding the same field values in big-endian byte order, converted for a big-endian host.
#[test]
fn converted_programs_behave_like_the_originals_big_endian() {
    let opts = Options { ctx_layout: Some(example_layout()), host: Endian::Big, ..Options::default() };
    let p = Pipeline::parse("ctx").unwrap();
    let all = Pipeline::parse("ctx,all,blind").unwrap();
    for seed in 0..cases(500) {
        let mut rng = Rng::seeded(seed);
        let (rt, view) = contexts(&mut rng);
        let (rt, view) = (swapped(&rt, &RUNTIME_FIELDS), swapped(&view, &VIEW_FIELDS));
        let insns = random_program_for(&mut rng, Endian::Big);
        let zx = bpfpatch_vm::Hi32Mode::ZeroExtend;
        let (want, view_after) = run_big(&insns, LoadOptions::default(), &view, zx);
        let view_after = swapped(&view_after, &VIEW_FIELDS);
        for (name, pl) in [("ctx", &p), ("ctx,all,blind", &all)] {
            let out =
                transform(&insns, pl, &Options { seed, ..opts.clone() }).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let hi32 = bpfpatch_passes::fuzzing::hi32_mode(pl, seed);
            let (got, rt_after) = run_big(&out, LoadOptions::INTERNAL.with_check_uninit(false), &rt, hi32);
            assert_eq!(got, want, "seed {seed} {name}: r0");
            let rt_after = swapped(&rt_after, &RUNTIME_FIELDS);
            assert_eq!(get(&rt_after, 0, 4), get(&view_after, 4, 4), "seed {seed} {name}: mark");
            assert_eq!(get(&rt_after, 24, 8), get(&view_after, 16, 8), "seed {seed} {name}: tstamp");
            assert_eq!(get(&rt_after, 4, 4), get(&view_after, 28, 4), "seed {seed} {name}: cb0");
            assert_eq!(get(&rt_after, EXAMPLE_PROLOGUE_FLAG as usize, 4), 1, "seed {seed} {name}: prologue");
        }
    }
}
