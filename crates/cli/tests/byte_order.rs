//! Byte order comes from the program: a big-endian (bpfeb) image or object is rewritten for a
//! big-endian machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use bpfpatch_insn::{Endian, Insn, opcode as c, slots_from_bytes, slots_to_bytes};

fn temp_dir(test: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("bpfpatch-cli-endian-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `lower-v4` turns `bswap16` into the swap of the machine that runs the result: `be16` on a
/// little-endian one, `le16` on a big-endian one (where `be16` is a no-op).
#[test]
fn lower_v4_lowers_bswap_for_the_programs_byte_order() {
    let dir = temp_dir("bswap");
    let bswap16 = Insn::new(c::ALU64 | c::END, 1, 0, 0, 16); // BPF_ALU64 | BPF_END (TO_LE bit 0): bswap
    let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
    for (endian, flag, want) in [(Endian::Little, None, c::TO_BE), (Endian::Big, Some("--big-endian"), c::TO_LE)] {
        let input = dir.join(format!("{endian:?}.bin"));
        let output = dir.join(format!("{endian:?}.out"));
        std::fs::write(&input, slots_to_bytes(&[bswap16, exit], endian)).unwrap();
        let mut cmd = Command::cargo_bin("bpfpatch").unwrap();
        cmd.args(["rewrite", "--raw", "--passes", "lower-v4"]).arg(&input).arg("-o").arg(&output);
        if let Some(f) = flag {
            cmd.arg(f);
        }
        cmd.assert().success();
        let out = slots_from_bytes(&std::fs::read(&output).unwrap(), endian).unwrap();
        assert_eq!(out[0], Insn::new(c::ALU | c::END | want, 1, 0, 0, 16), "{endian:?}");
    }
}

/// The same C program built for bpfel and bpfeb gives its C answer on each in `run`, before
/// and after the passes: a byte of a stored word is the first in memory (0x44 little-endian,
/// 0x11 big-endian), and `__builtin_bswap32` (cpu v4 `bswap`, lowered by `lower-v4` for the
/// program's byte order) is the same value on both.
#[test]
fn run_gives_the_c_answer_in_both_byte_orders() {
    if !bpfpatch_testkit::require_tool("clang-19") {
        return;
    }
    let dir = temp_dir("c");
    let src = dir.join("endian.c");
    std::fs::write(
        &src,
        "__attribute__((section(\"socket\"), used)) int prog(void *ctx)\n{\n\tvolatile unsigned int x = 0x11223344;\n\
         \tunsigned char b0 = *(volatile unsigned char *)&x;\n\tunsigned int s = __builtin_bswap32(x);\n\
         \treturn (s >> 24) + b0;\n}\n",
    )
    .unwrap();
    for (target, want) in [("bpfel", "0x88\n"), ("bpfeb", "0x55\n")] {
        let obj = dir.join(format!("endian-{target}.o"));
        let ok = std::process::Command::new("clang-19")
            .args(["-target", target, "-O2", "-mcpu=v4", "-c"])
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .unwrap()
            .success();
        assert!(ok, "clang-19 -target {target}");
        // Every pass alone (but ctx, which needs a layout: its own test below), all, all with blinding.
        let each = ["dce", "kernel-dce", "lower-v4", "fixups", "zext", "rnd-hi32"].map(|p| vec!["--passes", p]);
        let whole =
            [vec![], vec!["--passes", "all"], vec!["--passes", "all", "--blind"], vec!["--passes", "none", "--blind"]];
        for passes in each.iter().chain(&whole) {
            Command::cargo_bin("bpfpatch")
                .unwrap()
                .args(["run", "--section", "socket"])
                .args(passes)
                .arg(&obj)
                .assert()
                .success()
                .stdout(want);
        }
    }
}

/// `ctx` on a big-endian image: a 1-byte load of the first byte of a 4-byte context field
/// (`len`) reads the runtime word's most significant byte (`w0 >>= 0x18`), as the kernel's
/// `convert_ctx_accesses` does on bpfeb; little-endian it is the low byte (no shift). (That the
/// conversion runs to the original's answer on a big-endian machine: the passes crate's
/// `ctx` tests.)
#[test]
fn ctx_narrow_loads_take_the_programs_byte_offset() {
    let dir = temp_dir("ctx");
    let layout = concat!(env!("CARGO_MANIFEST_DIR"), "/../../doc/ctx-layout.json");
    let load = Insn::new(c::LDX | c::MEM | c::B, 0, 1, 0, 0); // r0 = *(u8 *)(r1 + 0)
    let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
    for (endian, flag, want) in [
        (Endian::Little, None, "1: r0 = *(u32 *)(r1 + 0x8)\n2: w0 &= 0xff\n3: exit\n"),
        (Endian::Big, Some("--big-endian"), "1: r0 = *(u32 *)(r1 + 0x8)\n2: w0 >>= 0x18\n3: w0 &= 0xff\n4: exit\n"),
    ] {
        let input = dir.join(format!("{endian:?}.bin"));
        let output = dir.join(format!("{endian:?}.out"));
        std::fs::write(&input, slots_to_bytes(&[load, exit], endian)).unwrap();
        let mut cmd = Command::cargo_bin("bpfpatch").unwrap();
        cmd.args(["rewrite", "--raw", "--xlated", "--passes", "ctx", "--ctx-layout", layout]);
        cmd.arg(&input).arg("-o").arg(&output).args(flag);
        cmd.assert().success();
        let mut cmd = Command::cargo_bin("bpfpatch").unwrap();
        cmd.args(["disasm", "--raw"]).args(flag).arg(&output);
        let text = String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap();
        // Slot 0 is the layout's prologue.
        assert!(text.starts_with("0: *(u32 *)(r1 + 0xc) = 0x1\n"), "{endian:?}:\n{text}");
        assert!(text.ends_with(want), "{endian:?}:\n{text}");
    }
}
