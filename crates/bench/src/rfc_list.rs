//! A model of the 2019 RFC's design ("bpf: accelerate insn patching speed", Jiong Wang), for
//! comparison only: a singly linked list with one heap node per instruction
//! (`struct bpf_list_insn { insn; next; orig_idx; flag }`), patching by reusing the node of the
//! patched instruction for `patch[0]` and allocating the rest, and `verifier_linearize_list_insn`:
//! one walk to count, one to build `idx_map[orig] = new`, one to copy instructions and aux and
//! relocate jumps (a jump inside a patch is relocated from the patched instruction's original
//! index, which is how the RFC's blinding keeps the jcc's target), then line info and subprogram
//! starts through `idx_map`, then the list is freed node by node.

use crate::Output;
use crate::workload::{Aux, Workload};
use bpfpatch_insn::Insn;
use bpfpatch_patch::{LineInfo, Subprog};

struct Node {
    insn: Insn,
    /// 1-based original index; 0 for inserted instructions.
    orig_idx: u32,
    patched: bool,
    next: Option<Box<Node>>,
}

/// The list: a head node chain. Dropped iteratively (a recursive drop of 3M boxes would
/// overflow the stack).
struct List {
    head: Option<Box<Node>>,
}

impl Drop for List {
    fn drop(&mut self) {
        let mut cur = self.head.take();
        while let Some(mut n) = cur {
            cur = n.next.take();
        }
    }
}

fn create(insns: &[Insn]) -> List {
    // Build back to front so every node is allocated once and linked without a tail walk.
    let mut head: Option<Box<Node>> = None;
    for (i, insn) in insns.iter().enumerate().rev() {
        let orig_idx = u32::try_from(i + 1).unwrap_or(u32::MAX);
        head = Some(Box::new(Node { insn: *insn, orig_idx, patched: false, next: head }));
    }
    List { head }
}

/// Blinds every site of `w` through the list and linearizes into `out`.
pub fn run(w: &Workload, out: &mut Output) {
    let mut list = create(&w.prog.insns);
    // Patching pass: walk the list; at each site reuse the node for patch[0], insert the rest.
    let mut sites = w.sites.iter().zip(&w.site_patches).peekable();
    let mut link = &mut list.head;
    while let Some(node) = link {
        let orig = node.orig_idx.saturating_sub(1) as usize;
        let mut skip = 0;
        if node.orig_idx != 0
            && let Some((_, p)) = sites.next_if(|&(&s, _)| s as usize == orig)
        {
            node.insn = p.insns[0];
            node.patched = true;
            // Inserting each right after the node, last first, leaves them in order.
            for insn in p.as_slice().iter().skip(1).rev() {
                let rest = node.next.take();
                node.next = Some(Box::new(Node { insn: *insn, orig_idx: 0, patched: true, next: rest }));
            }
            skip = p.len - 1;
        }
        link = &mut node.next;
        for _ in 0..skip {
            match link {
                Some(n) => link = &mut n.next,
                None => break,
            }
        }
    }
    linearize(&list, w, out);
}

fn linearize(list: &List, w: &Workload, out: &mut Output) {
    crate::clear(out);
    // Walk 1: length. Walk 2: idx_map.
    let mut len = 0usize;
    let mut n = list.head.as_deref();
    while let Some(node) = n {
        len += 1;
        n = node.next.as_deref();
    }
    let orig_len = w.prog.insns.len();
    let mut idx_map = vec![0u32; orig_len + 1];
    let mut idx = 0u32;
    n = list.head.as_deref();
    while let Some(node) = n {
        if node.orig_idx != 0 {
            idx_map[node.orig_idx as usize - 1] = idx;
        }
        idx += 1;
        n = node.next.as_deref();
    }
    idx_map[orig_len] = idx;
    // Walk 3: copy instructions and aux, relocate jumps from their (patch's) original index.
    out.insns.reserve(len);
    out.aux.reserve(len);
    let mut cur_orig = 0usize;
    let mut new_idx = 0i64;
    n = list.head.as_deref();
    while let Some(node) = n {
        let mut insn = node.insn;
        if node.orig_idx != 0 {
            cur_orig = node.orig_idx as usize - 1;
        }
        if let Some(delta) = insn.rel_target() {
            let old_target = i64::try_from(cur_orig).unwrap_or(0) + delta + 1;
            let t = usize::try_from(old_target).ok().and_then(|t| idx_map.get(t)).copied().unwrap_or(0);
            let _ = insn.set_rel_target(i64::from(t) - new_idx - 1);
        }
        out.insns.push(insn);
        out.aux.push(if node.orig_idx != 0 && !node.patched {
            w.prog.aux[cur_orig]
        } else {
            // Patched slots lose their aux (the RFC recomputes zext only).
            Aux { seen: true, ..Aux::default() }
        });
        new_idx += 1;
        n = node.next.as_deref();
    }
    let t = &w.prog.tables;
    out.tables.line_info.extend(t.line_info.iter().map(|l| LineInfo { insn_off: idx_map[l.insn_off as usize], ..*l }));
    out.tables.subprogs.extend(t.subprogs.iter().map(|s| Subprog { start: idx_map[s.start as usize], ..*s }));
}
