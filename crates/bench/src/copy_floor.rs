//! The physical lower bound of any patcher: write the same output instructions, aux records and
//! side tables into buffers, with no offset fixups at all (jumps keep their stale offsets).
//!
//! Warm runs reuse the [`Output`]'s buffers; cold runs pass a fresh one.

use crate::Output;
use crate::workload::{Aux, Workload};

/// Produces the blinded program's instructions and tables without fixing any offset.
pub fn run(w: &Workload, out: &mut Output) {
    crate::clear(out);
    let p = &w.prog;
    let extra = w.sites.len() * 3;
    out.insns.reserve(p.insns.len() + extra);
    out.aux.reserve(p.insns.len() + extra);
    let mut sites = w.sites.iter().zip(&w.site_patches).peekable();
    for (i, insn) in p.insns.iter().enumerate() {
        match sites.next_if(|&(&s, _)| s as usize == i).map(|(_, p)| p) {
            Some(patch) => {
                out.insns.extend_from_slice(patch.as_slice());
                out.aux.extend(std::iter::repeat_n(Aux { seen: true, ..Aux::default() }, patch.len - 1));
                out.aux.push(p.aux[i]);
            }
            None => {
                out.insns.push(*insn);
                out.aux.push(p.aux[i]);
            }
        }
    }
    out.tables.line_info.extend_from_slice(&p.tables.line_info);
    out.tables.subprogs.extend_from_slice(&p.tables.subprogs);
}
