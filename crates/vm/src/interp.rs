//! The interpreter loop.
//!
//! State of a run: a register file `[u64; 16]` (r0-r10, AX = r11; indices are masked with 15 so
//! every access is in bounds by construction), the instruction index `pc`, the remaining
//! instruction budget, the current frame's `may_goto` budget, and a stack of saved frames
//! (preallocated to the maximum depth, so a call never allocates). Nothing is allocated per
//! executed instruction: the loop only reads the lowered [`LoadedProgram`] and touches the
//! preallocated stack, the caller's memory and the register file.
//!
//! Semantics (RFC 9669 with Linux behaviour, on a machine of [`VmConfig::endian`], little-endian
//! by default: memory accesses are in that order, and `le`/`be` swap only on the other one):
//! - 32-bit ALU operations compute on the low halves and zero-extend the result; 32-bit
//!   immediates are used as `u32` there, and sign-extended to 64 bits in 64-bit operations
//!   (including `div`/`mod`, which then divide unsigned, as the RFC says).
//! - Shift amounts are masked with 31 (32-bit) or 63 (64-bit).
//! - With [`VmConfig::hi32`] = [`Hi32Mode::Randomize`], every 32-bit definition instead leaves
//!   random bits in the upper half of the register it writes (see [`Hi32Mode`] for the list),
//!   and only the kernel-internal zero-extension `BPF_ZEXT_REG` (`mov32 r, r` with `imm = 1`)
//!   clears it: the machine of a JIT that does not zero-extend. Loads from the input area (the
//!   context r1 points to) are the exception, as in the kernel, which leaves context loads alone.
//! - `div` by 0 gives 0; `mod` by 0 leaves dst (32-bit: its low half, zero-extended).
//!   `sdiv` truncates toward zero; `INT_MIN sdiv -1 = INT_MIN`, `INT_MIN smod -1 = 0`;
//!   `smod`'s result has the sign of the dividend. By 0: as `div`/`mod`.
//! - `le16/32` truncate (zero-extend), `le64` is a no-op; `be` and `bswap` swap the low 16/32/64
//!   bits and zero-extend.
//! - `movsx` sign-extends the low 8/16/32 bits of src (32-bit form: to 32 bits, then zero-extends);
//!   `ldxs` (MEMSX) sign-extends the loaded value to 64 bits.
//! - Atomics (W, DW) read-modify-write memory; with `fetch` src receives the old value; `xchg`
//!   stores src and returns the old value in src; `cmpxchg` compares memory with r0 (its low
//!   half for W), stores src on equality, and always loads the old value into r0. 32-bit
//!   variants zero-extend the register they write.
//! - JMP32 compares the low 32 bits (signed conditions as `i32`).
//! - bpf-to-bpf calls push a frame: r6-r9 are saved and restored on `exit`, r10 moves down by
//!   the frame size (plus [`MAY_GOTO_STACK`] for a program loaded with internal forms: the
//!   kernel's room for a `may_goto` count below a full frame), the callee's stack frame is zeroed; r1-r5 are passed as they are. The
//!   register file is shared, so after the call the caller sees whatever the callee left in
//!   r1-r5 (the kernel's verifier forbids reading them after a call, so no valid program can
//!   tell). The main program plus callees may use at most [`VmConfig::max_frames`] frames.
//! - Helper calls pass r1-r5, put the result in r0 and leave r1-r5 unchanged.
//! - `may_goto`: each frame has a loop budget that starts at [`VmConfig::may_goto_budget`]
//!   (the kernel's `BPF_MAX_LOOPS`) when the frame is entered. While it is positive, `may_goto`
//!   decrements it and falls through; once it is 0, `may_goto` jumps. This is the kernel's
//!   counted lowering: `AX = *(fp - depth - 8); if AX == 0 goto target; AX -= 1;
//!   *(fp - depth - 8) = AX`, with the slot set to `BPF_MAX_LOOPS` at each subprogram's entry.
//!   The timed lowering (Linux 6.15+) calls `arch_bpf_timed_may_goto`
//!   ([`bpfpatch_insn::TIMED_MAY_GOTO_HELPER`], with internal forms on) each time its count
//!   runs out; here its time slice is a number of refreshes (see the code), so a loop under
//!   either lowering runs about [`VmConfig::may_goto_budget`] times.
//! - LD_ABS / LD_IND read 1, 2 or 4 bytes big-endian from the packet at offset
//!   `(s32)(src + imm)` (`imm` for LD_ABS) into r0 and set r1-r5 to 0 (the kernel clobbers them);
//!   a negative or out-of-bounds offset returns 0 from the current function, as the kernel's
//!   `bpf_gen_ld_abs` sequence (`r0 = 0; exit`) does. r6 (the context) is not read.
//! - Tail calls always fall through, as a tail call through an empty program-array slot does:
//!   no program array is modelled. `nospec` is a no-op. kfunc calls stop with an error.
//! - An ld_imm64 of a map reference loads its raw 64-bit immediate; `PSEUDO_FUNC` loads a code
//!   address ([`crate::program::CODE_BASE`] + 8 * instruction index) that no access can use.
#![allow(clippy::cast_possible_truncation)] // truncating casts below are the instruction semantics

use crate::error::{ConfigError, RunError};
use crate::helpers::{Helper, HelperReturn, UNWIND_HELPER_ID, Unwind};
use crate::memory::{MEM_BASE, Memory, REGION_SIZE, STACK_TOP};
use crate::program::{Inst, LoadedProgram, NO_INDEX, SwapOp};
use bpfpatch_insn::eval::{alu32, alu64, bswap, cond32, cond64};
use bpfpatch_insn::{AtomicOp, Size, Slot};
use core::fmt;

/// The kernel's `BPF_MAX_LOOPS`: the initial `may_goto` budget of a frame (8 Mi).
pub const BPF_MAX_LOOPS: u64 = 8 * 1024 * 1024;
/// The kernel's `BPF_MAX_TIMED_LOOPS`: the count `arch_bpf_timed_may_goto` hands back while
/// the time slice lasts.
pub const BPF_MAX_TIMED_LOOPS: u64 = 0xffff;
/// The kernel's `MAX_CALL_FRAMES`: the main program and up to 7 nested calls.
pub const MAX_CALL_FRAMES: usize = 8;
/// The kernel's `MAX_BPF_STACK`: stack bytes per frame.
pub const STACK_SIZE: usize = 512;

/// Stack bytes a frame of a program loaded with internal forms has below its
/// [`VmConfig::frame_size`]: the kernel's `stack_depth_extra` for `may_goto` (16 bytes for the
/// timed form's count and timestamp, 8 for the counted form's counter). `do_misc_fixups` puts
/// them below the frame *after* the verifier's 512-byte check, and the JIT allocates them, so a
/// program whose frame is full still gets its count (Linux 6.18 loads and runs it).
pub const MAY_GOTO_STACK: usize = 16;
/// The default instruction budget: large enough for a `may_goto` loop that runs its whole
/// `BPF_MAX_LOOPS` budget with a few instructions per iteration.
pub const DEFAULT_BUDGET: u64 = 100_000_000;

/// Limits of a [`Vm`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub struct VmConfig {
    /// Maximum number of frames (the main program counts as one); a call beyond it is
    /// [`RunError::CallDepth`]. At least 1.
    pub max_frames: usize,
    /// Stack bytes per frame.
    pub frame_size: usize,
    /// Maximum number of instructions one run may execute ([`RunError::Budget`] beyond).
    pub budget: u64,
    /// Initial `may_goto` budget of each frame.
    pub may_goto_budget: u64,
    /// What 32-bit definitions leave in the upper half of their destination.
    pub hi32: Hi32Mode,
    /// The machine's byte order: memory accesses, and `le`/`be` (which swap on the other one).
    /// The program's (`bpfeb` objects run big-endian); little-endian by default.
    pub endian: bpfpatch_insn::Endian,
}

/// What a 32-bit definition leaves in the upper 32 bits of the register it writes.
///
/// The 32-bit definitions are the kernel's (`insn_has_def32`): ALU32 operations (`mov32`,
/// `movsx32` and shifts included), `le`/`be` 16/32, `bswap16/32`, loads of 1, 2 or 4 bytes that
/// do not sign-extend, the register a 32-bit fetching atomic (or `cmpxchg`, r0) writes, and the
/// r0 of `LD_ABS`/`LD_IND`. 64-bit operations, `ld_imm64`, sign-extending loads (`ldxs`),
/// 8-byte loads and helper results are 64-bit definitions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Hi32Mode {
    /// Zero: RFC 9669 semantics, and what a JIT for a zero-extending machine (x86-64, arm64)
    /// does.
    #[default]
    ZeroExtend,
    /// Random bits, as the kernel's `BPF_F_TEST_RND_HI32` puts there: the machine of a JIT that
    /// leaves the upper half alone, so a program whose 64-bit reads of a 32-bit definition are
    /// not preceded by the explicit zero-extension (`BPF_ZEXT_REG`, [`bpfpatch_insn::Op::Zext`],
    /// which always clears the upper half) computes with garbage. The bits come from SplitMix64
    /// seeded with this value at the start of every run (the low 32 bits of each output, in
    /// order of definition), so a run, and a failure reported with its seed, is reproducible.
    Randomize(u64),
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            max_frames: MAX_CALL_FRAMES,
            frame_size: STACK_SIZE,
            budget: DEFAULT_BUDGET,
            may_goto_budget: BPF_MAX_LOOPS,
            hi32: Hi32Mode::ZeroExtend,
            endian: bpfpatch_insn::Endian::Little,
        }
    }
}

impl VmConfig {
    /// This configuration with another instruction budget.
    #[must_use]
    pub const fn with_budget(mut self, budget: u64) -> Self {
        self.budget = budget;
        self
    }

    /// This configuration with another `may_goto` budget per frame.
    #[must_use]
    pub const fn with_may_goto_budget(mut self, budget: u64) -> Self {
        self.may_goto_budget = budget;
        self
    }

    /// This configuration with another maximum number of frames.
    #[must_use]
    pub const fn with_max_frames(mut self, frames: usize) -> Self {
        self.max_frames = frames;
        self
    }

    /// This configuration on a machine of byte order `endian`.
    #[must_use]
    pub const fn with_endian(mut self, endian: bpfpatch_insn::Endian) -> Self {
        self.endian = endian;
        self
    }

    /// This configuration with another treatment of the upper half of 32-bit definitions.
    #[must_use]
    pub const fn with_hi32(mut self, hi32: Hi32Mode) -> Self {
        self.hi32 = hi32;
        self
    }

    /// This configuration with another stack size per frame.
    #[must_use]
    pub const fn with_frame_size(mut self, bytes: usize) -> Self {
        self.frame_size = bytes;
        self
    }
}

/// What a run gives to the program: the input memory area and the packet (both may be empty).
///
/// At entry r1 holds the address of `mem` (0 when it is empty) and r2 its length, as in the
/// conformance vectors; r10 holds the frame pointer; all other registers are 0.
#[derive(Debug, Default)]
pub struct Input<'a> {
    /// The input memory area, read and written in place.
    pub mem: &'a mut [u8],
    /// Packet data for LD_ABS / LD_IND (also addressable at [`crate::memory::PACKET_BASE`]).
    pub packet: &'a mut [u8],
}

impl<'a> Input<'a> {
    /// Input with a memory area and no packet.
    #[must_use]
    pub fn mem(mem: &'a mut [u8]) -> Input<'a> {
        Input { mem, packet: Default::default() }
    }
}

/// The result of a run that ended with `exit` from the main program (or a helper's exit).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RunOutcome {
    /// The value of r0.
    pub r0: u64,
    /// Number of instructions executed (an ld_imm64 counts once).
    pub executed: u64,
}

/// Watches a run instruction by instruction ([`Vm::run_observed`]); closures
/// `FnMut(usize, &[u64; 16])` are observers.
pub trait Observer {
    /// Called before instruction `index` executes (instructions are numbered in program order,
    /// an ld_imm64 counting once, as [`crate::LoadedProgram::len`] counts them) with the register file
    /// at that moment: `regs[0..=10]` are r0-r10, `regs[11]` is AX; the rest are always 0.
    /// The result of the last instruction (`exit`) is the run's [`RunOutcome`].
    fn before(&mut self, index: usize, regs: &[u64; 16]);
}

impl<F: FnMut(usize, &[u64; 16]) + ?Sized> Observer for F {
    #[inline(always)]
    fn before(&mut self, index: usize, regs: &[u64; 16]) {
        self(index, regs);
    }
}

/// The observer of [`Vm::run`]: does nothing, compiled away.
struct Unobserved;

impl Observer for Unobserved {
    #[inline(always)]
    fn before(&mut self, _: usize, _: &[u64; 16]) {}
}

/// The upper halves of 32-bit definitions ([`Hi32Mode`]): a splitmix64 stream, or zeros.
struct Hi32 {
    random: bool,
    state: u64,
}

impl Hi32 {
    fn new(mode: Hi32Mode) -> Hi32 {
        match mode {
            Hi32Mode::ZeroExtend => Hi32 { random: false, state: 0 },
            Hi32Mode::Randomize(seed) => Hi32 { random: true, state: seed },
        }
    }

    /// The register value of a 32-bit load of `v` from `addr`: a load from the context (the
    /// input area r1 points to) is never randomized, as the kernel neither zero-extends nor
    /// randomizes after a context load, whose conversion may widen it
    /// (`opt_subreg_zext_lo32_rnd_hi32`). The region is looked at only in the random mode.
    #[inline(always)]
    fn load32(&mut self, v: u32, addr: u64) -> u64 {
        if self.random && !(MEM_BASE..MEM_BASE + REGION_SIZE).contains(&addr) { self.def32(v) } else { u64::from(v) }
    }

    /// The register value of a 32-bit definition of `v`.
    #[inline(always)]
    fn def32(&mut self, v: u32) -> u64 {
        if self.random {
            self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z << 32) | u64::from(v)
        } else {
            u64::from(v)
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Frame {
    /// Instruction index to continue at in the caller.
    ret: usize,
    /// The caller's r6-r9.
    saved: [u64; 4],
    /// The caller's remaining `may_goto` budget.
    may_goto: u64,
}

type HelperBox<'h> = Box<dyn Helper + 'h>;

/// The interpreter: configuration, registered helpers and the preallocated stack.
///
/// Reusable: each [`Vm::run`] starts from a fresh register file and zeroed stack frames.
pub struct Vm<'h> {
    config: VmConfig,
    /// Registered helpers, sorted by id.
    helpers: Vec<(i32, HelperBox<'h>)>,
    stack: Vec<u8>,
    frames: Vec<Frame>,
}

impl fmt::Debug for Vm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vm")
            .field("config", &self.config)
            .field("helpers", &self.helpers.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[inline(always)]
fn ix(r: u8) -> usize {
    usize::from(r & 15)
}

#[inline(always)]
fn sext(imm: i32) -> u64 {
    i64::from(imm).cast_unsigned()
}

#[inline(always)]
fn swap(op: SwapOp, v: u64) -> u64 {
    match op {
        SwapOp::Trunc16 => u64::from(v as u16),
        SwapOp::Trunc32 => u64::from(v as u32),
        SwapOp::Nop => v,
        SwapOp::Swap16 => bswap(16, v),
        SwapOp::Swap32 => bswap(32, v),
        SwapOp::Swap64 => bswap(64, v),
    }
}

impl<'h> Vm<'h> {
    /// A VM with no helpers.
    ///
    /// # Errors
    /// [`ConfigError`] when `max_frames` is 0 or the stack of all frames exceeds its region.
    pub fn new(config: VmConfig) -> Result<Vm<'h>, ConfigError> {
        if config.max_frames == 0 {
            return Err(ConfigError("max_frames must be at least 1".into()));
        }
        let total = config
            .frame_size
            .checked_add(MAY_GOTO_STACK)
            .and_then(|f| config.max_frames.checked_mul(f))
            .filter(|&t| t as u64 <= REGION_SIZE);
        let Some(total) = total else {
            return Err(ConfigError(format!(
                "{} frames of {} bytes exceed the {REGION_SIZE}-byte stack region",
                config.max_frames, config.frame_size
            )));
        };
        Ok(Vm { config, helpers: Vec::new(), stack: vec![0; total], frames: Vec::with_capacity(config.max_frames) })
    }

    /// A VM with the default configuration and the conformance harness's helper 5 ([`Unwind`]).
    #[must_use]
    pub fn conformance() -> Vm<'h> {
        let mut vm = Vm {
            config: VmConfig::default(),
            helpers: Vec::new(),
            stack: vec![0; MAX_CALL_FRAMES * (STACK_SIZE + MAY_GOTO_STACK)],
            frames: Vec::with_capacity(MAX_CALL_FRAMES),
        };
        vm.register_helper(UNWIND_HELPER_ID, Unwind);
        vm
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    /// Registers `helper` under `id`, replacing any helper registered there before.
    pub fn register_helper(&mut self, id: i32, helper: impl Helper + 'h) {
        match self.helpers.binary_search_by_key(&id, |(k, _)| *k) {
            Ok(i) => {
                if let Some(slot) = self.helpers.get_mut(i) {
                    slot.1 = Box::new(helper);
                }
            }
            Err(i) => self.helpers.insert(i, (id, Box::new(helper))),
        }
    }

    /// Runs `prog` to completion on `input`.
    ///
    /// # Errors
    /// A [`RunError`] naming the slot where the program faulted, ran out of budget, exceeded
    /// the call depth, or called an unknown helper or a kfunc.
    pub fn run(&mut self, prog: &LoadedProgram, input: Input<'_>) -> Result<RunOutcome, RunError> {
        self.exec(prog, input, &mut Unobserved)
    }

    /// [`Vm::run`], calling `observer` before every executed instruction.
    ///
    /// # Errors
    /// As [`Vm::run`].
    pub fn run_observed<O: Observer + ?Sized>(
        &mut self,
        prog: &LoadedProgram,
        input: Input<'_>,
        observer: &mut O,
    ) -> Result<RunOutcome, RunError> {
        self.exec(prog, input, observer)
    }

    #[allow(clippy::too_many_lines)] // one dispatch loop; splitting it would cost speed
    #[inline(always)]
    fn exec<O: Observer + ?Sized>(
        &mut self,
        prog: &LoadedProgram,
        input: Input<'_>,
        observer: &mut O,
    ) -> Result<RunOutcome, RunError> {
        for (what, len) in [("input memory", input.mem.len()), ("packet", input.packet.len())] {
            if len as u64 > REGION_SIZE {
                return Err(RunError::InputTooLarge { what, len, max: REGION_SIZE });
            }
        }
        let Vm { config, helpers, stack, frames } = self;
        let config = *config;
        // The frame stride: internal forms add the kernel's room for a `may_goto` count.
        let extra = if prog.internal() { MAY_GOTO_STACK } else { 0 };
        let fs = (config.frame_size + extra) as u64;
        let insts = prog.insts();
        frames.clear();

        let mut r = [0u64; 16];
        r[1] = if input.mem.is_empty() { 0 } else { MEM_BASE };
        r[2] = input.mem.len() as u64;
        r[10] = STACK_TOP;
        let mut mem = Memory::new(stack, input.mem, input.packet);
        mem.set_live(fs);
        mem.zero_stack(STACK_TOP, fs);

        let mut pc: usize = 0;
        let mut budget = config.budget;
        let mut may_goto = config.may_goto_budget;
        let mut hi = Hi32::new(config.hi32);
        let big = matches!(config.endian, bpfpatch_insn::Endian::Big);
        let slot = |i: usize| -> Slot { prog.slot(i) };

        macro_rules! mem_try {
            ($e:expr, $cur:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(fault) => return Err(RunError::Memory { slot: slot($cur), fault }),
                }
            };
        }
        // Returns from the current frame; ends the run from the main frame.
        macro_rules! exit_frame {
            () => {
                match frames.pop() {
                    None => return Ok(RunOutcome { r0: r[0], executed: config.budget - budget }),
                    Some(f) => {
                        r[6..10].copy_from_slice(&f.saved);
                        may_goto = f.may_goto;
                        pc = f.ret;
                        let depth = frames.len() as u64;
                        r[10] = STACK_TOP - depth * fs;
                        mem.set_live((depth + 1) * fs);
                    }
                }
            };
        }
        macro_rules! call_helper {
            ($id:expr, $cur:expr) => {{
                let id: i32 = $id;
                let Ok(i) = helpers.binary_search_by_key(&id, |(k, _)| *k) else {
                    return Err(RunError::UnknownHelper { slot: slot($cur), id: i64::from(id) });
                };
                let Some((_, h)) = helpers.get_mut(i) else {
                    return Err(RunError::UnknownHelper { slot: slot($cur), id: i64::from(id) });
                };
                match h.call([r[1], r[2], r[3], r[4], r[5]], &mut mem) {
                    Ok(HelperReturn::Value(v)) => r[0] = v,
                    Ok(HelperReturn::Exit(v)) => {
                        return Ok(RunOutcome { r0: v, executed: config.budget - budget });
                    }
                    Err(e) => return Err(RunError::Helper { slot: slot($cur), id, message: e.0 }),
                }
            }};
        }

        loop {
            let cur = pc;
            let Some(&inst) = insts.get(cur) else {
                // Unreachable for a loaded program (the loader guarantees control ends in exit).
                return Err(RunError::PcOutOfRange { index: cur });
            };
            if budget == 0 {
                return Err(RunError::Budget { slot: slot(cur), budget: config.budget });
            }
            budget -= 1;
            observer.before(cur, &r);
            pc += 1;
            match inst {
                Inst::Alu64 { op, dst, src } => {
                    let d = ix(dst);
                    r[d] = alu64(op, r[d], r[ix(src)]);
                }
                Inst::Alu64Imm { op, dst, imm } => {
                    let d = ix(dst);
                    r[d] = alu64(op, r[d], sext(imm));
                }
                Inst::Alu32 { op, dst, src } => {
                    let d = ix(dst);
                    r[d] = hi.def32(alu32(op, r[d] as u32, r[ix(src)] as u32));
                }
                Inst::Alu32Imm { op, dst, imm } => {
                    let d = ix(dst);
                    r[d] = hi.def32(alu32(op, r[d] as u32, imm.cast_unsigned()));
                }
                Inst::Zext { dst } => {
                    let d = ix(dst);
                    r[d] = u64::from(r[d] as u32);
                }
                Inst::Swap { le, be, dst } => {
                    let op = if big { be } else { le };
                    let d = ix(dst);
                    let v = swap(op, r[d]);
                    r[d] = match op {
                        SwapOp::Nop | SwapOp::Swap64 => v,
                        _ => hi.def32(v as u32),
                    };
                }
                Inst::LdImm64 { dst, value } => r[ix(dst)] = value,
                Inst::Load { size, signed, dst, src, off } => {
                    let addr = r[ix(src)].wrapping_add(sext(off.into()));
                    let v = match size {
                        Size::B => {
                            let b = mem_try!(mem.load::<1>(addr), cur);
                            if signed { i64::from(b[0].cast_signed()).cast_unsigned() } else { u64::from(b[0]) }
                        }
                        Size::H => {
                            let b = mem_try!(mem.load::<2>(addr), cur);
                            if signed {
                                i64::from(u16_of(b, big).cast_signed()).cast_unsigned()
                            } else {
                                u64::from(u16_of(b, big))
                            }
                        }
                        Size::W => {
                            let b = mem_try!(mem.load::<4>(addr), cur);
                            if signed {
                                i64::from(u32_of(b, big).cast_signed()).cast_unsigned()
                            } else {
                                u64::from(u32_of(b, big))
                            }
                        }
                        Size::DW => u64_of(mem_try!(mem.load::<8>(addr), cur), big),
                    };
                    let v = if signed || size == Size::DW { v } else { hi.load32(v as u32, addr) };
                    r[ix(dst)] = v;
                }
                Inst::Store { size, dst, src, off } => {
                    let addr = r[ix(dst)].wrapping_add(sext(off.into()));
                    let v = r[ix(src)];
                    mem_try!(store(&mut mem, size, addr, v, big), cur);
                }
                Inst::StoreImm { size, dst, off, imm } => {
                    let addr = r[ix(dst)].wrapping_add(sext(off.into()));
                    mem_try!(store(&mut mem, size, addr, sext(imm), big), cur);
                }
                Inst::Atomic { size, op, dst, src, off } => {
                    let addr = r[ix(dst)].wrapping_add(sext(off.into()));
                    let (old, mask) = if size == Size::W {
                        (u64::from(u32_of(mem_try!(mem.load::<4>(addr), cur), big)), u64::from(u32::MAX))
                    } else {
                        (u64_of(mem_try!(mem.load::<8>(addr), cur), big), u64::MAX)
                    };
                    let s = ix(src);
                    let v = r[s];
                    let (new, fetch_into) = match op {
                        AtomicOp::Add { fetch } => (Some(old.wrapping_add(v)), fetch.then_some(s)),
                        AtomicOp::Or { fetch } => (Some(old | v), fetch.then_some(s)),
                        AtomicOp::And { fetch } => (Some(old & v), fetch.then_some(s)),
                        AtomicOp::Xor { fetch } => (Some(old ^ v), fetch.then_some(s)),
                        AtomicOp::Xchg => (Some(v), Some(s)),
                        AtomicOp::Cmpxchg => ((old == r[0] & mask).then_some(v), Some(0)),
                    };
                    if let Some(new) = new {
                        mem_try!(store(&mut mem, size, addr, new & mask, big), cur);
                    }
                    if let Some(d) = fetch_into {
                        r[d] = if size == Size::W { hi.def32(old as u32) } else { old };
                    }
                }
                Inst::Ja { target } => pc = target as usize,
                Inst::Jmp64 { cond, dst, src, target } => {
                    if cond64(cond, r[ix(dst)], r[ix(src)]) {
                        pc = target as usize;
                    }
                }
                Inst::Jmp64Imm { cond, dst, imm, target } => {
                    if cond64(cond, r[ix(dst)], sext(imm)) {
                        pc = target as usize;
                    }
                }
                Inst::Jmp32 { cond, dst, src, target } => {
                    if cond32(cond, r[ix(dst)] as u32, r[ix(src)] as u32) {
                        pc = target as usize;
                    }
                }
                Inst::Jmp32Imm { cond, dst, imm, target } => {
                    if cond32(cond, r[ix(dst)] as u32, imm.cast_unsigned()) {
                        pc = target as usize;
                    }
                }
                Inst::CallHelper { id } => call_helper!(id, cur),
                Inst::Callx { reg } => {
                    let v = r[ix(reg)].cast_signed();
                    match i32::try_from(v) {
                        Ok(id) => call_helper!(id, cur),
                        Err(_) => return Err(RunError::UnknownHelper { slot: slot(cur), id: v }),
                    }
                }
                Inst::CallLocal { target } => {
                    if frames.len() + 1 >= config.max_frames {
                        return Err(RunError::CallDepth { slot: slot(cur), max: config.max_frames });
                    }
                    // Capacity is max_frames: this push never allocates.
                    frames.push(Frame { ret: pc, saved: [r[6], r[7], r[8], r[9]], may_goto });
                    may_goto = config.may_goto_budget;
                    let depth = frames.len() as u64;
                    r[10] = STACK_TOP - depth * fs;
                    mem.set_live((depth + 1) * fs);
                    mem.zero_stack(r[10], fs);
                    pc = target as usize;
                }
                Inst::Kfunc { btf_id, module } => {
                    return Err(RunError::Kfunc { slot: slot(cur), btf_id, module });
                }
                Inst::Exit => exit_frame!(),
                Inst::MayGoto { target } => {
                    if may_goto == 0 {
                        pc = target as usize;
                    } else {
                        may_goto -= 1;
                    }
                }
                Inst::TimedMayGoto => {
                    // `arch_bpf_timed_may_goto`: AX is the frame offset of the loop's
                    // `{count, timestamp}` pair; the new count goes back in AX, r0-r5 kept.
                    // The clock is the number of refreshes (the timestamp word counts them,
                    // 0 before the first): the slice lasts `may_goto_budget /
                    // BPF_MAX_TIMED_LOOPS` of them, at least one, so a timed loop runs about
                    // as long as a counted one.
                    let at = r[10].wrapping_add(r[11]).wrapping_add(8);
                    let ticks = u64_of(mem_try!(mem.load::<8>(at), cur), big);
                    let slice = (config.may_goto_budget / BPF_MAX_TIMED_LOOPS).max(1);
                    let (ticks, count) = if ticks < slice { (ticks + 1, BPF_MAX_TIMED_LOOPS) } else { (ticks, 0) };
                    mem_try!(store(&mut mem, Size::DW, at, ticks, big), cur);
                    r[11] = count;
                }
                Inst::TailCall | Inst::Nospec => {}
                Inst::LdPacket { size, index, imm } => {
                    let base = if index == NO_INDEX { 0 } else { r[ix(index)] };
                    // The kernel passes the offset to its load helper as an `int`.
                    let off = (base.wrapping_add(sext(imm)) as u32).cast_signed();
                    let n = usize::from(size.bytes());
                    let value = u64::try_from(off)
                        .ok()
                        .and_then(|o| mem.packet_bytes(o, n))
                        .map(|b| b.iter().fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte)));
                    r[1..6].fill(0);
                    match value {
                        Some(v) => r[0] = hi.def32(v as u32),
                        None => {
                            r[0] = 0;
                            exit_frame!();
                        }
                    }
                }
            }
        }
    }
}

/// Stores the low `size` bytes of `v` at `addr`, in the machine's byte order (`big`).
#[inline(always)]
fn store(mem: &mut Memory<'_>, size: Size, addr: u64, v: u64, big: bool) -> Result<(), crate::error::Fault> {
    match size {
        Size::B => mem.store::<1>(addr, [v as u8]),
        Size::H => mem.store::<2>(addr, if big { (v as u16).to_be_bytes() } else { (v as u16).to_le_bytes() }),
        Size::W => mem.store::<4>(addr, if big { (v as u32).to_be_bytes() } else { (v as u32).to_le_bytes() }),
        Size::DW => mem.store::<8>(addr, if big { v.to_be_bytes() } else { v.to_le_bytes() }),
    }
}

/// A 16-bit value from memory in the machine's byte order.
#[inline(always)]
fn u16_of(b: [u8; 2], big: bool) -> u16 {
    if big { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) }
}

/// A 32-bit value from memory in the machine's byte order.
#[inline(always)]
fn u32_of(b: [u8; 4], big: bool) -> u32 {
    if big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
}

/// A 64-bit value from memory in the machine's byte order.
#[inline(always)]
fn u64_of(b: [u8; 8], big: bool) -> u64 {
    if big { u64::from_be_bytes(b) } else { u64::from_le_bytes(b) }
}
