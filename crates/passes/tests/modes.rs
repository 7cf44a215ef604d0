//! The RFC's test matrix on random programs: the VM on the original (a), after the pipeline of
//! mode (b) (`--passes all`), and after (b) plus constant blinding (c) must give the same r0 and
//! the same memory. (a) runs zero-extending 32-bit results as RFC 9669 says; (b) and (c), which
//! have `zext`, run on a machine that leaves random upper halves after 32-bit definitions
//! (`Hi32Mode::Randomize`, the kernel's `BPF_F_TEST_RND_HI32`): whatever `zext` forgets shows. Programs have bounded loops (a counter, some guarded by `may_goto`), calls,
//! helper calls, stack and memory-area accesses, atomics and cpu-v4 forms. Also: `LD_ABS` /
//! `LD_IND` lowering against the VM's own semantics, and `ctx` conversion with the example layout.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bpfpatch_insn::{Insn, decode_program};
use bpfpatch_passes::fuzzing::{MEM_LEN, hi32_mode, vm_program};
use bpfpatch_passes::{Options, Pass, Pipeline, transform};
use bpfpatch_vm::memory::Memory;
use bpfpatch_vm::{HelperError, HelperReturn, Hi32Mode, Input, LoadOptions, LoadedProgram, RunError, Vm, VmConfig};
use common::rand_prog::{Rng, cases};

fn helper1(args: [u64; 5], _m: &mut Memory<'_>) -> Result<HelperReturn, HelperError> {
    Ok(HelperReturn::Value(args[0].rotate_left(13) ^ args[1].wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// Runs `insns` on the VM: r0 and the memory area after the run.
/// Runs `insns` on a machine of byte order `endian` with the given loader and upper-half modes.
fn run_on(
    insns: &[Insn],
    load: LoadOptions,
    mem0: &[u8],
    hi32: Hi32Mode,
    endian: bpfpatch_insn::Endian,
) -> Result<(u64, Vec<u8>), String> {
    let prog = LoadedProgram::load(insns, &load).map_err(|e| format!("load: {e}"))?;
    let mut vm = Vm::new(VmConfig::default().with_hi32(hi32).with_endian(endian)).map_err(|e| e.to_string())?;
    vm.register_helper(1, helper1);
    let mut mem = mem0.to_vec();
    let r0 = vm.run(&prog, Input::mem(&mut mem)).map_err(|e: RunError| format!("run: {e}"))?.r0;
    Ok((r0, mem))
}

fn mem0(seed: u64) -> Vec<u8> {
    let mut rng = Rng::seeded(seed ^ 0x5eed);
    (0..MEM_LEN).map(|_| rng.next() as u8).collect()
}

#[test]
fn three_modes_agree_on_random_programs() {
    let n = cases(3000);
    let (b, c) = (Pipeline::all(), Pipeline::all().with(Pass::Blind));
    let mut ran = 0;
    let mut grew = 0usize;
    let mut shapes = 0usize;
    let mut big = 0usize;
    for seed in 0..n {
        // The generator is the semantic fuzzing oracle's (`bpfpatch_passes::fuzzing`).
        let insns =
            vm_program(&mut bpfpatch_passes::fuzzing::Rng::from_bytes_seeded(&[], seed), 1 + (seed % 3) as usize, 30);
        shifts_read_as_64(&insns, &mut shapes);
        let mem = mem0(seed);
        // Every other program on a big-endian machine, rewritten for it (the passes' host).
        let endian = if seed % 2 == 1 { bpfpatch_insn::Endian::Big } else { bpfpatch_insn::Endian::Little };
        let run = |insns: &[Insn], load, mem: &[u8], hi32| run_on(insns, load, mem, hi32, endian);
        let want = match run(&insns, LoadOptions::default(), &mem, Hi32Mode::ZeroExtend) {
            Ok(v) => v,
            Err(e) if e.starts_with("load") => panic!("seed {seed}: generator made a program the VM rejects: {e}"),
            Err(_) => continue,
        };
        let opts = Options { seed, host: endian, ..Options::default() };
        let out_b = transform(&insns, &b, &opts).unwrap_or_else(|e| panic!("seed {seed}: mode b: {e}"));
        assert!(
            matches!(hi32_mode(&b, seed), Hi32Mode::Randomize(_))
                && matches!(hi32_mode(&c, seed), Hi32Mode::Randomize(_))
        );
        let got_b = run(&out_b, LoadOptions::INTERNAL, &mem, hi32_mode(&b, seed))
            .unwrap_or_else(|e| panic!("seed {seed}: mode b: {e}"));
        assert_eq!(got_b, want, "seed {seed}: mode b differs");
        let out_c = transform(&insns, &c, &opts).unwrap_or_else(|e| panic!("seed {seed}: mode c: {e}"));
        // Blinding's `xor64 dst, dst` for `mov dst, 0` is a read for the loader's uninit check.
        let got_c = run(&out_c, LoadOptions::INTERNAL.with_check_uninit(false), &mem, hi32_mode(&c, seed))
            .unwrap_or_else(|e| panic!("seed {seed}: mode c: {e}"));
        assert_eq!(got_c, want, "seed {seed}: mode c differs");
        decode_program(&out_c, bpfpatch_insn::DecodeOptions::INTERNAL).unwrap();
        ran += 1;
        big += usize::from(endian == bpfpatch_insn::Endian::Big);
        grew += out_c.len() - insns.len().min(out_c.len());
    }
    eprintln!(
        "{ran} of {n} programs ran in three modes; blinding and rnd-hi32 added {grew} slots; \
         {shapes} 32-bit shifts read as 64 bits right after"
    );
    assert!(shapes as u64 >= n, "the generator rarely makes 32-bit shifts read as 64 bits: {shapes}");
    assert!(ran as u64 * 10 >= n * 9, "only {ran} of {n} programs ran");
    assert!(big * 3 >= ran, "too few big-endian programs: {big} of {ran}");
}

/// Counts 32-bit shifts whose destination the next instruction reads as 64 bits (a 64-bit ALU
/// source or shifted register, or an 8-byte store): without `zext` after them, a machine that
/// does not zero-extend computes with garbage.
fn shifts_read_as_64(insns: &[Insn], count: &mut usize) {
    use bpfpatch_insn::{AluOp, Op, Operand, Size, Width};
    let ops: Vec<Op> =
        decode_program(insns, bpfpatch_insn::DecodeOptions::default()).unwrap().into_iter().map(|(_, op)| op).collect();
    for w in ops.windows(2) {
        let Op::Alu { width: Width::W32, op: AluOp::Lsh | AluOp::Rsh | AluOp::Arsh, dst, .. } = w[0] else { continue };
        let read64 = match w[1] {
            Op::Alu { width: Width::W64, op: AluOp::Mov, src, .. } => src == Operand::Reg(dst),
            Op::Alu { width: Width::W64, dst: d, src, .. } => d == dst || src == Operand::Reg(dst),
            Op::Store { size: Size::DW, src, .. } => src == Operand::Reg(dst),
            _ => false,
        };
        *count += usize::from(read64);
    }
}

// ---- LD_ABS / LD_IND: the lowering against the VM's own legacy packet loads ---------------------

fn ld_abs_vm<'h>(hi32: Hi32Mode) -> Vm<'h> {
    use bpfpatch_passes::internals::fixups::{
        HELPER_LD_ABS_B, HELPER_LD_ABS_H, HELPER_LD_ABS_W, ld_abs_helper_bytes, ld_abs_helper_value,
    };
    let mut vm = Vm::new(VmConfig::default().with_hi32(hi32)).unwrap();
    for id in [HELPER_LD_ABS_B, HELPER_LD_ABS_H, HELPER_LD_ABS_W] {
        let bytes = ld_abs_helper_bytes(id).unwrap();
        vm.register_helper(id, move |args: [u64; 5], m: &mut Memory<'_>| -> Result<HelperReturn, HelperError> {
            Ok(HelperReturn::Value(ld_abs_helper_value(m.packet(), bytes, args[1])))
        });
    }
    vm
}

fn run_packet(insns: &[Insn], load: LoadOptions, packet: &[u8], hi32: Hi32Mode) -> u64 {
    let prog = LoadedProgram::load(insns, &load).unwrap();
    let mut pkt = packet.to_vec();
    let mut mem = Vec::new();
    ld_abs_vm(hi32).run(&prog, Input { mem: &mut mem, packet: &mut pkt }).unwrap().r0
}

#[test]
fn ld_abs_lowering_matches_the_interpreter() {
    use bpfpatch_insn::{AluOp, Op, Size};
    use common::*;
    let n = cases(400);
    let mut failed_reads = 0;
    for seed in 0..n {
        let mut rng = Rng::seeded(seed);
        let plen = rng.below_u64(24) as usize;
        let packet: Vec<u8> = (0..plen).map(|_| rng.next() as u8).collect();
        // r6 = ctx, r7 = accumulator, r8 = index; every packet load is folded into r7.
        let mut ops = vec![mov64r(6, 1), mov64(7, 1), mov64(8, rng.below_u64(8) as i32)];
        for _ in 0..1 + rng.below_u64(6) {
            let size = rng.choose(&[Size::B, Size::H, Size::W]);
            let imm = rng.below_u64(30) as i32 - 3;
            let index = if rng.chance(50) { Some(r(8)) } else { None };
            ops.push(Op::LdPacket { size, index, imm });
            ops.push(alu64(AluOp::Mul, 7, 31));
            ops.push(alu64r(AluOp::Add, 7, 0));
            if rng.chance(30) {
                ops.push(alu64(AluOp::Add, 8, rng.below_u64(5) as i32 - 2));
            }
        }
        ops.push(mov64r(0, 7));
        ops.push(exit());
        let insns = enc(&ops);
        let want = run_packet(&insns, LoadOptions::default(), &packet, Hi32Mode::ZeroExtend);
        if want == 0 {
            failed_reads += 1;
        }
        for p in [Pipeline::parse("fixups").unwrap(), Pipeline::all(), Pipeline::all().with(Pass::Blind)] {
            let out = transform(&insns, &p, &Options { seed, ..Options::default() }).unwrap();
            assert!(
                decode_program(&out, bpfpatch_insn::DecodeOptions::INTERNAL)
                    .unwrap()
                    .iter()
                    .all(|(_, op)| !matches!(op, Op::LdPacket { .. }))
            );
            let got = run_packet(&out, LoadOptions::INTERNAL.with_check_uninit(false), &packet, hi32_mode(&p, seed));
            assert_eq!(got, want, "seed {seed} {:?}", p.passes());
        }
    }
    assert!(failed_reads > 0 && failed_reads < n as usize, "both in- and out-of-bounds reads are exercised");
}

// ---- may_goto: the expansions run out when the interpreter's budget does ----------------------

#[test]
fn may_goto_expansion_counts_like_the_interpreter() {
    use common::*;
    // r0 = 0; loop: may_goto +2; r0 += 1; goto loop; exit   (and the same in a callee)
    let ops = [
        mov64(0, 0),
        bpfpatch_insn::Op::MayGoto { off: 2 },
        alu64(bpfpatch_insn::AluOp::Add, 0, 1),
        ja(-3),
        call_local(1),
        exit(),
        mov64(0, 0),
        st(bpfpatch_insn::Size::DW, 10, -16, 7),
        bpfpatch_insn::Op::MayGoto { off: 2 },
        alu64(bpfpatch_insn::AluOp::Add, 0, 1),
        ja(-3),
        exit(),
    ];
    let insns = enc(&ops);
    let big = |insns: &[Insn], load: LoadOptions| {
        let prog = LoadedProgram::load(insns, &load).unwrap();
        let mut vm = Vm::new(bpfpatch_vm::VmConfig::default().with_budget(400_000_000)).unwrap();
        vm.run(&prog, Input::default()).unwrap().r0
    };
    let want = big(&insns, LoadOptions::default());
    assert_eq!(want, 8 * 1024 * 1024);
    let fixups = Pipeline::parse("fixups").unwrap();
    // The counted form: exactly the budget.
    let counted = Options { may_goto: bpfpatch_passes::MayGotoForm::Counted, ..Options::default() };
    let out = transform(&insns, &fixups, &counted).unwrap();
    assert_eq!(out.len(), insns.len() + 2 * 3 + 2, "two 4-slot expansions, one store per subprogram");
    assert_eq!(big(&out, LoadOptions::INTERNAL), want);
    // The timed form (the default): 0xffff iterations, then one per refresh of the count by
    // arch_bpf_timed_may_goto, whose slice the interpreter ends after budget / 0xffff = 128
    // refreshes: 0xffff * 129 iterations, within 1% of the counted budget.
    let out = transform(&insns, &fixups, &Options::default()).unwrap();
    assert_eq!(out.len(), insns.len() + 2 * 6 + 2 * 2, "two 7-slot expansions, two stores per subprogram");
    assert_eq!(big(&out, LoadOptions::INTERNAL), 0xffff * (1 + (8 * 1024 * 1024) / 0xffff));
}

/// The generator's stack accesses (`fuzzing::mem_access`): every one inside the 512-byte frame
/// and aligned to its size; every offset inside an 8-byte slot for every size; and the frame's
/// last slot (fp-512), so that random programs have full frames with a `may_goto` count below
/// them. Without the last, no random program exercises what `tests/data/may-goto/full-frame`
/// pins (a generator that never makes a shape proves nothing about it).
#[test]
fn random_stack_accesses_cover_the_whole_frame() {
    use bpfpatch_insn::opcode as c;
    let mut in_slot = std::collections::BTreeSet::new();
    let mut full = 0usize;
    for seed in 0..500 {
        let insns =
            vm_program(&mut bpfpatch_passes::fuzzing::Rng::from_bytes_seeded(&[], seed), 1 + (seed % 3) as usize, 30);
        let mut i = 0;
        while i < insns.len() {
            let insn = insns[i];
            i += if insn.is_ld_imm64() { 2 } else { 1 };
            let class = insn.code & c::CLASS_MASK;
            let base = match class {
                c::LDX => insn.src(),
                c::ST | c::STX => insn.dst(),
                _ => continue,
            };
            if base != 10 {
                continue;
            }
            let bytes: i16 = match insn.code & c::SIZE_MASK {
                c::W => 4,
                c::H => 2,
                c::B => 1,
                _ => 8,
            };
            let off = insn.off;
            assert!((-512..0).contains(&off) && off % bytes == 0, "seed {seed}: [r10{off:+}] of {bytes} bytes");
            in_slot.insert((bytes, off.rem_euclid(8)));
            full += usize::from(off < -504);
        }
    }
    let want: std::collections::BTreeSet<(i16, i16)> =
        [1i16, 2, 4, 8].iter().flat_map(|&b| (0..8).step_by(b as usize).map(move |o| (b, o))).collect();
    assert_eq!(in_slot, want, "offsets inside a slot, per size");
    assert!(full > 10, "{full} accesses to the frame's last slot");
}
