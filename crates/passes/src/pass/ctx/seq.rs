//! Context-access conversion (`convert_ctx_accesses`, kernel-patching.md §6.5) driven by a
//! caller-supplied [`CtxLayout`].
//!
//! A layout maps each field of the program's view of the context (offset and size) either to
//! a field of the runtime's context ([`Converter::Direct`]: offset and size there) or to a
//! closure emitting the access code ([`Converter::Custom`]). Rules, as the kernel's:
//! - an access must lie inside one field; a write must cover it exactly and the field must be
//!   writable; a read may be *narrow* (smaller than the field, aligned to its own size);
//! - a narrow read is widened to the whole field before conversion; if the converter read more
//!   than the access (`size < target_size`), the value is shifted (`rsh32`, or `rsh64` for
//!   8-byte fields, by the access's byte offset in the field on a little-endian host, or from the
//!   other end on a big-endian one) and masked (`and32 dst, (1 << size*8) - 1`);
//! - a sign-extending read ends with `movsx64 dst, dst, size*8` (lowered later by `lower-v4`
//!   where v4 is not wanted);
//! - atomics on the context are refused.
//!
//! The optional prologue is code the pass inserts before the first instruction; jumps to
//! instruction 0 skip it (the kernel's `adjust_jmp_off(prog, 0, delta)`).

use crate::emit::Emit;
use crate::emit::ins::{alu, alu32_imm, ldx, st, stx};
use bpfpatch_insn::{AluOp, Endian, Insn, Op, Operand, Reg, Size, Width};
use bpfpatch_patch::PatchBuf;
use std::fmt;
use std::sync::Arc;

/// What a custom converter is asked to emit: the whole-field access, already normalised.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CtxRequest {
    /// `dst = field` (the whole program-view field; narrowing and sign extension are added after).
    Read {
        /// Destination register.
        dst: Reg,
        /// Register holding the context pointer.
        ctx: Reg,
    },
    /// `field = src` (the whole program-view field).
    Write {
        /// Register holding the context pointer.
        ctx: Reg,
        /// Value stored.
        src: Operand,
    },
}

/// A custom converter: the instructions for a request, or a message saying why not.
pub type ConvertFn = dyn Fn(&CtxRequest) -> Result<Vec<Insn>, String> + Send + Sync;

/// How a program-view field is reached at run time.
#[derive(Clone)]
pub enum Converter {
    /// The field is `size` bytes at `off` of the runtime context.
    Direct {
        /// Runtime offset.
        off: i16,
        /// Runtime size.
        size: Size,
    },
    /// Code from a closure; `target_size` is the number of bytes its reads produce (the
    /// kernel's `target_size`, which decides whether narrow reads are shifted and masked).
    Custom {
        /// The converter.
        f: Arc<ConvertFn>,
        /// Bytes a read produces.
        target_size: u8,
    },
}

impl fmt::Debug for Converter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Converter::Direct { off, size } => write!(f, "Direct {{ off: {off}, size: {size:?} }}"),
            Converter::Custom { target_size, .. } => write!(f, "Custom {{ target_size: {target_size} }}"),
        }
    }
}

/// One field of the program's view of the context.
#[derive(Clone, Debug)]
pub struct CtxField {
    /// Name (for messages).
    pub name: String,
    /// Offset in the program's view.
    pub off: u16,
    /// Size in the program's view (1, 2, 4 or 8).
    pub size: u8,
    /// Whether programs may store to it.
    pub writable: bool,
    /// How it is reached at run time.
    pub conv: Converter,
}

/// Why a context access or layout is refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CtxError {
    /// No field covers the access.
    #[error("no context field covers {size} bytes at offset {off}")]
    NoField {
        /// Access offset.
        off: i32,
        /// Access size.
        size: u8,
    },
    /// The access is not aligned to its size, or spills over the end of its field.
    #[error("context access of {size} bytes at offset {off} is not a valid access to field {field}")]
    BadAccess {
        /// The field.
        field: String,
        /// Access offset.
        off: i32,
        /// Access size.
        size: u8,
    },
    /// A store to a read-only field.
    #[error("context field {field} is read-only")]
    ReadOnly {
        /// The field.
        field: String,
    },
    /// A store that does not cover its field exactly.
    #[error("narrow store to context field {field}")]
    NarrowWrite {
        /// The field.
        field: String,
    },
    /// An atomic operation on the context.
    #[error("atomic operation on the context")]
    Atomic,
    /// A custom converter failed or produced nothing.
    #[error("converter of context field {field} failed: {msg}")]
    Converter {
        /// The field.
        field: String,
        /// Its message.
        msg: String,
    },
    /// A layout with overlapping, misaligned or oddly sized fields.
    #[error("bad context layout: {0}")]
    Layout(String),
}

/// A program-view to runtime-view context map, with an optional prologue.
#[derive(Clone, Debug)]
pub struct CtxLayout {
    name: String,
    fields: Vec<CtxField>,
    prologue: Vec<Insn>,
}

impl CtxLayout {
    /// A layout from its fields (any order).
    ///
    /// # Errors
    /// [`CtxError::Layout`] when a field's size is not 1, 2, 4 or 8, its offset is not aligned
    /// to its size, or two fields overlap.
    pub fn new(name: impl Into<String>, mut fields: Vec<CtxField>) -> Result<CtxLayout, CtxError> {
        fields.sort_by_key(|f| f.off);
        for f in &fields {
            if !matches!(f.size, 1 | 2 | 4 | 8) || f.off % u16::from(f.size) != 0 {
                return Err(CtxError::Layout(format!("field {} ({} bytes at {})", f.name, f.size, f.off)));
            }
        }
        for w in fields.windows(2) {
            if let [a, b] = w
                && u32::from(a.off) + u32::from(a.size) > u32::from(b.off)
            {
                return Err(CtxError::Layout(format!("fields {} and {} overlap", a.name, b.name)));
            }
        }
        Ok(CtxLayout { name: name.into(), fields, prologue: Vec::new() })
    }

    /// The layout with a prologue (raw slots, inserted before instruction 0; its jumps must be
    /// local, at most to one past its end).
    #[must_use]
    pub fn with_prologue(mut self, prologue: Vec<Insn>) -> CtxLayout {
        self.prologue = prologue;
        self
    }

    /// The layout's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fields, by offset.
    #[must_use]
    pub fn fields(&self) -> &[CtxField] {
        &self.fields
    }

    /// The prologue (possibly empty).
    #[must_use]
    pub fn prologue(&self) -> &[Insn] {
        &self.prologue
    }

    /// The field covering `[off, off + size)`, if one does.
    #[must_use]
    pub fn field_at(&self, off: i32, size: u8) -> Option<&CtxField> {
        let idx = self.fields.partition_point(|f| i32::from(f.off) + i32::from(f.size) <= off);
        let f = self.fields.get(idx)?;
        let (lo, hi) = (i32::from(f.off), i32::from(f.off) + i32::from(f.size));
        (off >= lo && off + i32::from(size) <= hi).then_some(f)
    }
}

fn run_converter(field: &CtxField, req: &CtxRequest) -> Result<(Vec<Insn>, u8), CtxError> {
    match &field.conv {
        Converter::Direct { off, size } => {
            let op = match *req {
                CtxRequest::Read { dst, ctx } => ldx(*size, dst, ctx, *off),
                CtxRequest::Write { ctx, src: Operand::Reg(s) } => stx(*size, ctx, s, *off),
                CtxRequest::Write { ctx, src: Operand::Imm(i) } => st(*size, ctx, *off, i),
            };
            Ok((op.encode().to_vec(), size.bytes()))
        }
        Converter::Custom { f, target_size } => {
            let insns = f(req).map_err(|msg| CtxError::Converter { field: field.name.clone(), msg })?;
            if insns.is_empty() {
                return Err(CtxError::Converter { field: field.name.clone(), msg: "no instructions".into() });
            }
            Ok((insns, *target_size))
        }
    }
}

/// The conversion of a load or store `op` whose base is the context; `Ok(None)` for other
/// instructions.
///
/// # Errors
/// A [`CtxError`] when the layout does not allow the access.
pub fn convert(layout: &CtxLayout, op: &Op, host: Endian) -> Result<Option<PatchBuf>, CtxError> {
    let mut p = PatchBuf::new();
    match *op {
        Op::Load { size, signed, dst, src, off } => {
            let (off, bytes) = (i32::from(off), size.bytes());
            let field = layout.field_at(off, bytes).ok_or(CtxError::NoField { off, size: bytes })?;
            let narrow = bytes < field.size;
            if off % i32::from(bytes) != 0 || (!narrow && off != i32::from(field.off)) {
                return Err(CtxError::BadAccess { field: field.name.clone(), off, size: bytes });
            }
            let (insns, target) = run_converter(field, &CtxRequest::Read { dst, ctx: src })?;
            p.push_slots(&insns);
            if narrow && bytes < target {
                let size_default = i32::from(field.size);
                let access_off = off & (size_default - 1);
                let byte_shift = match host {
                    Endian::Little => access_off,
                    Endian::Big => size_default - (access_off + i32::from(bytes)),
                };
                let shift = byte_shift * 8;
                let w = if field.size <= 4 { Width::W32 } else { Width::W64 };
                if shift != 0 {
                    p.push_op(&alu(w, AluOp::Rsh, dst, Operand::Imm(shift)));
                }
                #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
                let mask = ((1u64 << (u32::from(bytes) * 8)) - 1) as u32 as i32;
                p.push_op(&alu32_imm(AluOp::And, dst, mask));
            }
            if signed {
                p.push_op(&alu(Width::W64, AluOp::MovSx(bytes * 8), dst, Operand::Reg(dst)));
            }
        }
        Op::Store { size, dst, off, src } => {
            let (off, bytes) = (i32::from(off), size.bytes());
            let field = layout.field_at(off, bytes).ok_or(CtxError::NoField { off, size: bytes })?;
            if off != i32::from(field.off) || bytes != field.size {
                return Err(CtxError::NarrowWrite { field: field.name.clone() });
            }
            if !field.writable {
                return Err(CtxError::ReadOnly { field: field.name.clone() });
            }
            let (insns, _) = run_converter(field, &CtxRequest::Write { ctx: dst, src })?;
            p.push_slots(&insns);
        }
        Op::Atomic { .. } => return Err(CtxError::Atomic),
        _ => return Ok(None),
    }
    Ok(Some(p))
}

/// Size in bytes of the example layout's runtime context.
#[cfg(any(test, feature = "internals"))]
pub const EXAMPLE_RUNTIME_SIZE: usize = 32;
/// Size in bytes of the example layout's program view.
#[cfg(any(test, feature = "internals"))]
pub const EXAMPLE_VIEW_SIZE: usize = 32;
/// Runtime offset of the word the example prologue sets to 1.
#[cfg(any(test, feature = "internals"))]
pub const EXAMPLE_PROLOGUE_FLAG: i16 = 12;

/// The example layout used by the tests: a toy socket-buffer context.
///
/// | program view | runtime | access |
/// |---|---|---|
/// | `u32 len` @0 | `u32` @8 | read |
/// | `u32 mark` @4 | `u32` @0 | read/write |
/// | `u16 protocol` @8 | `u16` @20 | read |
/// | (hole @10..12) | | refused |
/// | `u32 ifindex` @12 | `u16` @16 (narrower at run time, as `bpf_sk_lookup.remote_port`) | read |
/// | `u64 tstamp` @16 | `u64` @24 | read/write |
/// | `u32 wire_len` @24 | custom: runtime `len` + 4 | read |
/// | `u32 cb0` @28 | `u32` @4 | read/write |
///
/// Prologue: `*(u32 *)(r1 + 12) = 1` (a "prologue ran" flag in the runtime context).
#[must_use]
#[cfg(any(test, feature = "internals"))]
pub fn example_layout() -> CtxLayout {
    let direct = |name: &str, off, size, writable, roff, rsize| CtxField {
        name: name.into(),
        off,
        size,
        writable,
        conv: Converter::Direct { off: roff, size: rsize },
    };
    let wire_len: Arc<ConvertFn> = Arc::new(|req: &CtxRequest| match *req {
        CtxRequest::Read { dst, ctx } => {
            let mut v = ldx(Size::W, dst, ctx, 8).encode().to_vec();
            v.extend_from_slice(&alu32_imm(AluOp::Add, dst, 4).encode());
            Ok(v)
        }
        CtxRequest::Write { .. } => Err("wire_len is read-only".into()),
    });
    let fields = vec![
        direct("len", 0, 4, false, 8, Size::W),
        direct("mark", 4, 4, true, 0, Size::W),
        direct("protocol", 8, 2, false, 20, Size::H),
        direct("ifindex", 12, 4, false, 16, Size::H),
        direct("tstamp", 16, 8, true, 24, Size::DW),
        CtxField {
            name: "wire_len".into(),
            off: 24,
            size: 4,
            writable: false,
            conv: Converter::Custom { f: wire_len, target_size: 4 },
        },
        direct("cb0", 28, 4, true, 4, Size::W),
    ];
    let layout = CtxLayout { name: "toy_skb".into(), fields, prologue: Vec::new() };
    layout.with_prologue(st(Size::W, Reg::R1, EXAMPLE_PROLOGUE_FLAG, 1).encode().to_vec())
}
