//! The machine's byte order (`VmConfig::endian`): memory accesses in that order, and `le`/`be`
//! swapping only on the other one (`bswap` always).
#![allow(clippy::unwrap_used)]

use bpfpatch_insn::{Endian, Insn, opcode as c};
use bpfpatch_vm::{Input, LoadOptions, LoadedProgram, Vm, VmConfig};

fn run(insns: &[Insn], endian: Endian) -> u64 {
    let prog = LoadedProgram::load(insns, &LoadOptions::default()).unwrap();
    let mut vm = Vm::new(VmConfig::default().with_endian(endian)).unwrap();
    vm.run(&prog, Input::default()).unwrap().r0
}

#[test]
fn memory_and_swaps_follow_the_machines_byte_order() {
    let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
    // *(u32 *)(r10 - 4) = 0x11223344; r0 = *(u8 *)(r10 - 4)
    let first_byte = [
        Insn::new(c::ST | c::MEM | c::W, 10, 0, -4, 0x1122_3344),
        Insn::new(c::LDX | c::MEM | c::B, 0, 10, -4, 0),
        exit,
    ];
    assert_eq!(run(&first_byte, Endian::Little), 0x44);
    assert_eq!(run(&first_byte, Endian::Big), 0x11);
    // A word stored and loaded back is the same value on both.
    let word = [
        Insn::new(c::ST | c::MEM | c::W, 10, 0, -4, 0x1122_3344),
        Insn::new(c::LDX | c::MEM | c::W, 0, 10, -4, 0),
        exit,
    ];
    assert_eq!((run(&word, Endian::Little), run(&word, Endian::Big)), (0x1122_3344, 0x1122_3344));
    // r0 = 0x1122; le16 / be16 / bswap16 r0
    let mov = Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 0x1122);
    let le16 = [mov, Insn::new(c::ALU | c::END | c::TO_LE, 0, 0, 0, 16), exit];
    let be16 = [mov, Insn::new(c::ALU | c::END | c::TO_BE, 0, 0, 0, 16), exit];
    let bswap16 = [mov, Insn::new(c::ALU64 | c::END, 0, 0, 0, 16), exit];
    assert_eq!((run(&le16, Endian::Little), run(&le16, Endian::Big)), (0x1122, 0x2211));
    assert_eq!((run(&be16, Endian::Little), run(&be16, Endian::Big)), (0x2211, 0x1122));
    assert_eq!((run(&bswap16, Endian::Little), run(&bswap16, Endian::Big)), (0x2211, 0x2211));
}
