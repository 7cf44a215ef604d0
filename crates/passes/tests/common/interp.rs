//! A tiny interpreter for analysis soundness tests: registers, bpf-to-bpf calls with frames,
//! one helper, stack frames and a context area. Not the project's VM: just enough to observe
//! paths, values and addresses.
#![allow(dead_code, clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use bpfpatch_insn::{AtomicOp, CallKind, Insn, LdImm64Kind, Op, Operand, Reg, Size, SwapKind, Width};
use bpfpatch_passes::analysis::eval::{eval_alu, eval_cond};
use bpfpatch_passes::program::{InsnIdx, Program};

pub const CTX_ADDR: u64 = 0x2_0000_0000;
pub const CTX_LEN: usize = 64;
pub const STACK_BASE: u64 = 0x1_0000_0000;
pub const FRAME: u64 = 512;
pub const MAX_FRAMES: usize = 8;

/// What the interpreter observed at one executed instruction.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// Instruction executed.
    Exec(InsnIdx),
    /// Conditional jump at `InsnIdx` taken or not.
    Branch(InsnIdx, bool),
    /// Memory access at `InsnIdx` with the given base register value, in frame `depth`.
    Mem { at: InsnIdx, base: u64, addr: u64, frame_top: u64 },
}

#[derive(Debug)]
pub struct Outcome {
    pub r0: u64,
    pub ctx: Vec<u8>,
    pub steps: usize,
}

pub struct Machine<'a> {
    prog: &'a Program,
    pub regs: [u64; 12],
    stack: Vec<u8>,
    pub ctx: Vec<u8>,
    frames: Vec<(InsnIdx, [u64; 4])>,
    /// Called after every instruction with a 32-bit definition; may return new upper bits.
    pub hi32: Option<Box<dyn FnMut(InsnIdx) -> Option<u32> + 'a>>,
    pub trace: Option<Box<dyn FnMut(Event) + 'a>>,
}

impl<'a> Machine<'a> {
    pub fn new(prog: &'a Program) -> Machine<'a> {
        let mut regs = [0u64; 12];
        regs[1] = CTX_ADDR;
        regs[2] = CTX_LEN as u64;
        regs[10] = STACK_BASE + FRAME;
        let ctx = (0..CTX_LEN).map(|i| (i as u8).wrapping_mul(37).wrapping_add(11)).collect();
        Machine {
            prog,
            regs,
            stack: vec![0; (FRAME as usize) * MAX_FRAMES],
            ctx,
            frames: Vec::new(),
            hi32: None,
            trace: None,
        }
    }

    fn ev(&mut self, e: Event) {
        if let Some(t) = self.trace.as_mut() {
            t(e);
        }
    }

    fn mem(&mut self, addr: u64, len: usize) -> Result<&mut [u8], String> {
        if addr >= STACK_BASE && addr + len as u64 <= STACK_BASE + self.stack.len() as u64 {
            let o = (addr - STACK_BASE) as usize;
            return Ok(&mut self.stack[o..o + len]);
        }
        if addr >= CTX_ADDR && addr + len as u64 <= CTX_ADDR + CTX_LEN as u64 {
            let o = (addr - CTX_ADDR) as usize;
            return Ok(&mut self.ctx[o..o + len]);
        }
        Err(format!("bad address {addr:#x}"))
    }

    fn read(&mut self, addr: u64, size: Size) -> Result<u64, String> {
        let m = self.mem(addr, size.bytes() as usize)?;
        let mut b = [0u8; 8];
        b[..m.len()].copy_from_slice(m);
        Ok(u64::from_le_bytes(b))
    }

    fn write(&mut self, addr: u64, size: Size, v: u64) -> Result<(), String> {
        let n = size.bytes() as usize;
        let m = self.mem(addr, n)?;
        m.copy_from_slice(&v.to_le_bytes()[..n]);
        Ok(())
    }

    fn opnd(&self, s: Operand) -> u64 {
        match s {
            Operand::Reg(r) => self.regs[r.idx()],
            Operand::Imm(i) => i64::from(i) as u64,
        }
    }

    pub fn run(mut self, max_steps: usize) -> Result<Outcome, String> {
        let mut pc = InsnIdx(0);
        let mut steps = 0;
        loop {
            steps += 1;
            if steps > max_steps {
                return Err("step limit".into());
            }
            let op = *self.prog.op(pc);
            self.ev(Event::Exec(pc));
            let mut next = self.prog.next(pc);
            match op {
                Op::Alu { width, op: alu, dst, src } => {
                    let v = eval_alu(width, alu, self.regs[dst.idx()], self.opnd(src));
                    self.regs[dst.idx()] = v;
                }
                Op::Zext { dst } => self.regs[dst.idx()] &= 0xffff_ffff,
                Op::Swap { kind, bits, dst } => {
                    let v = self.regs[dst.idx()];
                    let swapped = match bits {
                        16 => u64::from((v as u16).swap_bytes()),
                        32 => u64::from((v as u32).swap_bytes()),
                        _ => v.swap_bytes(),
                    };
                    let trunc = match bits {
                        16 => v & 0xffff,
                        32 => v & 0xffff_ffff,
                        _ => v,
                    };
                    self.regs[dst.idx()] = match kind {
                        SwapKind::Le => trunc,
                        SwapKind::Be | SwapKind::Bswap => swapped,
                    };
                }
                Op::LdImm64 { dst, kind, lo, hi } => {
                    self.regs[dst.idx()] = if kind == LdImm64Kind::Imm {
                        (u64::from(hi as u32) << 32) | u64::from(lo as u32)
                    } else {
                        0xdead_0000
                    };
                }
                Op::Load { size, signed, dst, src, off } => {
                    let base = self.regs[src.idx()];
                    let addr = base.wrapping_add(i64::from(off) as u64);
                    let top = self.regs[10];
                    self.ev(Event::Mem { at: pc, base, addr, frame_top: top });
                    let mut v = self.read(addr, size)?;
                    if signed {
                        let bits = u32::from(size.bytes()) * 8;
                        v = bpfpatch_passes::analysis::eval::sext(v, bits);
                    }
                    self.regs[dst.idx()] = v;
                }
                Op::Store { size, dst, off, src } => {
                    let base = self.regs[dst.idx()];
                    let addr = base.wrapping_add(i64::from(off) as u64);
                    let top = self.regs[10];
                    self.ev(Event::Mem { at: pc, base, addr, frame_top: top });
                    let v = self.opnd(src);
                    self.write(addr, size, v)?;
                }
                Op::Atomic { size, op: aop, dst, src, off } => {
                    let base = self.regs[dst.idx()];
                    let addr = base.wrapping_add(i64::from(off) as u64);
                    let top = self.regs[10];
                    self.ev(Event::Mem { at: pc, base, addr, frame_top: top });
                    let old = self.read(addr, size)?;
                    let s = self.regs[src.idx()];
                    let w = if size == Size::W { Width::W32 } else { Width::W64 };
                    let new = match aop {
                        AtomicOp::Add { .. } => eval_alu(w, bpfpatch_insn::AluOp::Add, old, s),
                        AtomicOp::Or { .. } => old | s,
                        AtomicOp::And { .. } => old & s,
                        AtomicOp::Xor { .. } => old ^ s,
                        AtomicOp::Xchg => s,
                        AtomicOp::Cmpxchg => {
                            let r0 = self.regs[0];
                            let eq = if size == Size::W { r0 as u32 == old as u32 } else { r0 == old };
                            if eq { s } else { old }
                        }
                    };
                    self.write(addr, size, new)?;
                    if aop == AtomicOp::Cmpxchg {
                        self.regs[0] = old;
                    } else if aop.fetches() {
                        self.regs[src.idx()] = old;
                    }
                }
                Op::Ja { .. } => next = self.prog.target(pc).map(|t| t.0),
                Op::Jump { width, cond, dst, src, .. } => {
                    let taken = eval_cond(width, cond, self.regs[dst.idx()], self.opnd(src));
                    self.ev(Event::Branch(pc, taken));
                    if taken {
                        next = self.prog.target(pc).map(|t| t.0);
                    }
                }
                Op::Call(CallKind::Local(_)) => {
                    if self.frames.len() + 1 >= MAX_FRAMES {
                        return Err("call depth".into());
                    }
                    let ret = self.prog.next(pc).ok_or("call at end")?;
                    self.frames.push((ret, [self.regs[6], self.regs[7], self.regs[8], self.regs[9]]));
                    self.regs[10] += FRAME;
                    next = self.prog.target(pc).map(|t| t.0);
                }
                Op::Call(CallKind::Helper(_)) => {
                    let (a, b) = (self.regs[1], self.regs[2]);
                    self.regs[0] = a.rotate_left(7) ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    for k in 1..6 {
                        self.regs[k] = 0x5a5a_5a5a_0000_0000 | k as u64;
                    }
                }
                Op::Exit => match self.frames.pop() {
                    None => {
                        return Ok(Outcome { r0: self.regs[0], ctx: self.ctx, steps });
                    }
                    Some((ret, saved)) => {
                        self.regs[6..10].copy_from_slice(&saved);
                        self.regs[10] -= FRAME;
                        next = Some(ret);
                    }
                },
                other => return Err(format!("unsupported {other:?}")),
            }
            if op.is_def32()
                && let Some(d) = op.def_reg()
                && let Some(h) = self.hi32.as_mut()
                && let Some(hi) = h(pc)
            {
                let v = self.regs[d.idx()] & 0xffff_ffff;
                self.regs[d.idx()] = v | (u64::from(hi) << 32);
            }
            pc = next.ok_or("fell off the end")?;
        }
    }
}

/// Runs `insns` to completion.
pub fn run(insns: &[Insn]) -> Result<Outcome, String> {
    let prog = Program::decode(insns).map_err(|e| e.to_string())?;
    Machine::new(&prog).run(100_000)
}

pub fn reg(n: u8) -> Reg {
    Reg::new(n).unwrap()
}
