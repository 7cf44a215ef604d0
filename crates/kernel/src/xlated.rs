//! The kernel's encoding of xlated images, and its translation to the user encoding.
//!
//! `bpf_prog_get_info_by_fd` returns the program after the verifier's rewrites, passed through
//! `bpf_insn_prepare_dump` (kernel/bpf/syscall.c). Three things differ from what a loader
//! accepts:
//! - helper calls (`call`, `src = 0`) hold in `imm` the helper's address relative to
//!   `__bpf_call_base` (0 where the reader may not see kernel addresses), not its id; a tail
//!   call shows as `call 12` and the internal `BPF_CALL_ARGS` as a plain call;
//! - bpf-to-bpf calls (`src = BPF_PSEUDO_CALL`) hold, after the JIT has run (`jit_subprogs` in
//!   kernel/bpf/verifier.c), the callee's subprogram index in `imm` and the PC-relative offset
//!   in `off`, where a loader expects the offset in `imm` and `off = 0`;
//! - map references (`ld_imm64`, `src = PSEUDO_MAP_FD`/`PSEUDO_MAP_VALUE`) hold the map's id,
//!   not an fd.
//!
//! [`decodable`] turns the bpf-to-bpf calls back into the user encoding (so the decoder and
//! the disassembler read them) and [`note`] says what the kernel-specific fields held.

use bpfpatch_insn::Insn;

const CALL: u8 = 0x85;
const LD_IMM64: u8 = 0x18;
const PSEUDO_CALL: u8 = 1;
/// Helper ids are small; a larger or negative `imm` of a helper call is an address delta.
const MAX_HELPER_ID: i32 = 1 << 12;

/// Whether `i` is a bpf-to-bpf call in the dump's encoding (offset in `off`).
fn is_xlated_local_call(i: &Insn) -> bool {
    i.code == CALL && i.src() == PSEUDO_CALL
}

/// The image with bpf-to-bpf calls in the user encoding: `imm` = the PC-relative offset the
/// dump keeps in `off`, `off = 0`. Every other slot is unchanged.
#[must_use]
pub fn decodable(xlated: &[Insn]) -> Vec<Insn> {
    xlated
        .iter()
        .map(|i| {
            if is_xlated_local_call(i) {
                let mut j = *i;
                j.imm = i32::from(i.off);
                j.off = 0;
                j
            } else {
                *i
            }
        })
        .collect()
}

/// What the kernel-specific field of slot `i` of a dumped image held, if anything.
#[must_use]
pub fn note(xlated: &[Insn], i: usize) -> Option<String> {
    let s = xlated.get(i)?;
    if is_xlated_local_call(s) {
        return Some(format!("subprog #{}", s.imm));
    }
    if s.code == CALL && s.src() == 0 && !(0..MAX_HELPER_ID).contains(&s.imm) {
        let sign = if s.imm < 0 { '-' } else { '+' };
        return Some(format!("kernel function at __bpf_call_base {sign} {:#x}", s.imm.unsigned_abs()));
    }
    if s.code == LD_IMM64 && matches!(s.src(), 1 | 2) {
        return Some(format!("map id {}", s.imm));
    }
    if s.code == LD_IMM64 && matches!(s.src(), 3 | 4) {
        return Some("kernel address".into());
    }
    None
}

/// The image with the fields that hold kernel addresses or ids cleared, for comparing a kernel
/// dump with a program of ours (`kernel`: the image is a dump, so its bpf-to-bpf calls are
/// first put back into the user encoding): helper calls' `imm`, and both `imm`s of every
/// `ld_imm64` with a non-zero `src` (map ids and values, kernel variables, and function
/// addresses, which the JIT writes into `PSEUDO_FUNC` loads).
#[must_use]
pub fn comparable(image: &[Insn], kernel: bool) -> Vec<Insn> {
    let mut out = if kernel { decodable(image) } else { image.to_vec() };
    let mut i = 0;
    while i < out.len() {
        let s = &mut out[i];
        if s.code == CALL && s.src() == 0 {
            s.imm = 0;
        } else if s.code == LD_IMM64 && s.src() != 0 {
            s.imm = 0;
            if let Some(next) = out.get_mut(i + 1) {
                next.imm = 0;
            }
            i += 1;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_calls_are_put_back() {
        let x = [Insn::new(CALL, 0, 1, 3, 1), Insn::new(CALL, 0, 0, 0, -4096)];
        let d = decodable(&x);
        assert_eq!((d[0].imm, d[0].off), (3, 0));
        assert_eq!(d[1], x[1]);
        assert_eq!(note(&x, 0).as_deref(), Some("subprog #1"));
        assert!(note(&x, 1).is_some_and(|n| n.contains("- 0x1000")));
        assert_eq!(note(&x, 2), None);
        let c = comparable(&x, true);
        assert_eq!((c[0].imm, c[1].imm), (3, 0));
    }
}
