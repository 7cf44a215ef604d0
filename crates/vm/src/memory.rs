//! The virtual address space the program sees.
//!
//! Pointers are plain `u64` values in a fake address space; no host address ever reaches a
//! register, and every access is translated and bounds-checked here. Regions:
//!
//! | region | addresses | contents |
//! |---|---|---|
//! | input memory (`-- mem`) | `MEM_BASE ..+ len` | read/write; r1 points here, r2 holds its length |
//! | packet | `PACKET_BASE ..+ len` | read/write; what LD_ABS/LD_IND read (big-endian) |
//! | stack | `STACK_TOP - frames * frame_size .. STACK_TOP` | frame `k` (0 = main) owns `[STACK_TOP - (k+1) * frame_size, STACK_TOP - k * frame_size)`; its r10 is the upper end (`frame_size` is [`crate::VmConfig::frame_size`], plus [`crate::MAY_GOTO_STACK`] for a program loaded with internal forms) |
//!
//! Only the stacks of live frames (the current one and its callers) are accessible: a callee may
//! use a pointer into its caller's frame, as in the kernel, but nothing below its own frame.
//! Each region is at most [`REGION_SIZE`] bytes, so regions never overlap, and address 0 lies in
//! none of them. Multi-byte values are little-endian (the machine modelled is little-endian).

use crate::error::{Access, Fault, Place};

/// Start of the input memory area (`r1` at entry when the area is not empty).
pub const MEM_BASE: u64 = 0x1_0000_0000;
/// Start of the packet data read by LD_ABS / LD_IND.
pub const PACKET_BASE: u64 = 0x2_0000_0000;
/// One past the top of the stack: r10 of the main frame.
pub const STACK_TOP: u64 = 0x4_0000_0000;
/// Maximum size of each region (memory, packet, the whole stack).
pub const REGION_SIZE: u64 = 0x1_0000_0000;

/// The memory of one run: the stack of the live frames, the input memory and the packet.
///
/// Helpers receive it to read and write through program pointers.
#[derive(Debug)]
pub struct Memory<'a> {
    /// The whole stack buffer; covers `[STACK_TOP - stack.len(), STACK_TOP)`.
    stack: &'a mut [u8],
    /// Lowest accessible stack address (bottom of the current frame).
    live_low: u64,
    /// `STACK_TOP - live_low`.
    live_len: u64,
    /// Index in `stack` of `live_low`.
    live_off: u64,
    mem: &'a mut [u8],
    packet: &'a mut [u8],
}

/// Offset of `addr` in a region `[base, base + region_len)` if `len` bytes fit there.
#[inline(always)]
fn offset_in(addr: u64, base: u64, region_len: u64, len: u64) -> Option<u64> {
    let o = addr.wrapping_sub(base);
    (region_len >= len && o <= region_len - len).then_some(o)
}

fn as_index(v: u64) -> usize {
    // Offsets are bounded by slice lengths, which fit usize.
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl<'a> Memory<'a> {
    /// Memory over a stack buffer (its top is [`STACK_TOP`]), input memory and packet. No stack
    /// byte is accessible until [`Memory::set_live`] says how many frames are live.
    pub(crate) fn new(stack: &'a mut [u8], mem: &'a mut [u8], packet: &'a mut [u8]) -> Memory<'a> {
        let mut m = Memory { stack, live_low: STACK_TOP, live_len: 0, live_off: 0, mem, packet };
        m.set_live(0);
        m
    }

    /// Makes the top `bytes` of the stack accessible (the frames of the current call chain).
    pub(crate) fn set_live(&mut self, bytes: u64) {
        let total = self.stack.len() as u64;
        let bytes = bytes.min(total);
        self.live_len = bytes;
        self.live_low = STACK_TOP - bytes;
        self.live_off = total - bytes;
    }

    /// Zeroes `len` stack bytes below the address `top` (a new frame), as far as they exist.
    pub(crate) fn zero_stack(&mut self, top: u64, len: u64) {
        let total = self.stack.len() as u64;
        let base = STACK_TOP - total;
        let hi = top.saturating_sub(base).min(total);
        let lo = hi.saturating_sub(len);
        if let Some(s) = self.stack.get_mut(as_index(lo)..as_index(hi)) {
            s.fill(0);
        }
    }

    /// The bytes `[addr, addr + len)` if they lie inside one accessible region.
    #[inline(always)]
    fn slice_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let l = len as u64;
        if let Some(o) = offset_in(addr, self.live_low, self.live_len, l) {
            let i = as_index(self.live_off + o);
            return self.stack.get_mut(i..i + len);
        }
        if let Some(o) = offset_in(addr, MEM_BASE, self.mem.len() as u64, l) {
            let i = as_index(o);
            return self.mem.get_mut(i..i + len);
        }
        if let Some(o) = offset_in(addr, PACKET_BASE, self.packet.len() as u64, l) {
            let i = as_index(o);
            return self.packet.get_mut(i..i + len);
        }
        None
    }

    /// Where `addr` lies, for an error message.
    fn place(&self, addr: u64) -> Place {
        let within = |base: u64| addr.checked_sub(base).filter(|&o| o < REGION_SIZE);
        if let Some(offset) = within(MEM_BASE) {
            return Place::Mem { offset, len: self.mem.len() as u64 };
        }
        if let Some(offset) = within(PACKET_BASE) {
            return Place::Packet { offset, len: self.packet.len() as u64 };
        }
        if (STACK_TOP - REGION_SIZE..=STACK_TOP).contains(&addr) {
            return Place::DeadStack { below_fp: self.live_low.saturating_sub(addr) };
        }
        Place::Unmapped
    }

    fn fault(&self, addr: u64, size: usize, access: Access) -> Fault {
        Fault { addr, size, access, place: self.place(addr) }
    }

    /// Reads `N` bytes at `addr`.
    #[inline(always)]
    pub(crate) fn load<const N: usize>(&mut self, addr: u64) -> Result<[u8; N], Fault> {
        match self.slice_mut(addr, N) {
            Some(s) => {
                let mut b = [0u8; N];
                b.copy_from_slice(s);
                Ok(b)
            }
            None => Err(self.fault(addr, N, Access::Read)),
        }
    }

    /// Writes `N` bytes at `addr`.
    #[inline(always)]
    pub(crate) fn store<const N: usize>(&mut self, addr: u64, bytes: [u8; N]) -> Result<(), Fault> {
        match self.slice_mut(addr, N) {
            Some(s) => {
                s.copy_from_slice(&bytes);
                Ok(())
            }
            None => Err(self.fault(addr, N, Access::Write)),
        }
    }

    /// Copies `buf.len()` bytes from the program address `addr` into `buf`.
    ///
    /// # Errors
    /// A [`Fault`] when the range is not inside one accessible region.
    pub fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let n = buf.len();
        match self.slice_mut(addr, n) {
            Some(s) => {
                buf.copy_from_slice(s);
                Ok(())
            }
            None => Err(self.fault(addr, n, Access::Read)),
        }
    }

    /// Copies `data` to the program address `addr`.
    ///
    /// # Errors
    /// A [`Fault`] when the range is not inside one accessible region.
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        match self.slice_mut(addr, data.len()) {
            Some(s) => {
                s.copy_from_slice(data);
                Ok(())
            }
            None => Err(self.fault(addr, data.len(), Access::Write)),
        }
    }

    /// The packet bytes `[offset, offset + len)`, if inside the packet (for LD_ABS / LD_IND).
    pub(crate) fn packet_bytes(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let o = offset_in(offset, 0, self.packet.len() as u64, len as u64)?;
        let i = as_index(o);
        self.packet.get(i..i + len)
    }

    /// The input memory area.
    #[must_use]
    pub fn mem(&self) -> &[u8] {
        self.mem
    }

    /// The packet.
    #[must_use]
    pub fn packet(&self) -> &[u8] {
        self.packet
    }
}
