//! The passes of `bpfpatch rewrite`, run by the object rewriter on each program's patch list
//! ([`bpfpatch_object::Rewriter`]).
//!
//! [`Passes::new`] parses the list with the passes crate's own parser (so names and `all` mean
//! the same as for `run` and `conformance`); [`Passes::run`] runs the pipeline on the list the
//! object rewriter built, with the options of [`object_options`], and records what each pass
//! did per program ([`Passes::stats`]) for the rewrite report.
//!
//! An empty program (an object's empty `.text`) is left as it is: the pipeline has nothing to
//! do on it ([`Pipeline::apply`]).

use crate::provenance::Recorder;
use anyhow::Result;
use bpfpatch_insn::Slot;
use bpfpatch_object::{BpfObject, CrossCall, ProgramInfo};
use bpfpatch_passes::{
    CallSite, CtxLayout, Fact, LdAbsPolicy, MayGotoForm, Options, OutputKind, Pass, PassError, PassStats, Pipeline,
    call_sites, kernel_zext_reg,
};
use bpfpatch_patch::PatchList;
use std::collections::{BTreeSet, HashMap};

/// The names of the passes `--passes LIST [--blind]` selects, in the order they run.
///
/// # Errors
/// An unknown pass name.
pub fn pass_names(list: &str, blind: bool) -> Result<Vec<&'static str>> {
    let pipeline = Pipeline::from_cli(list, blind)?;
    Ok(pipeline.passes().iter().map(|p| p.name()).collect())
}

/// The pipeline options for one program of an object:
/// - the instructions a loader fills in ([`ProgramInfo::patched_at_load`]: ELF- and
///   CO-RE-relocated) are protected: no pass rewrites them or relies on what they compute;
/// - every entry point of the section ([`ProgramInfo::entries`]: function symbols, global code
///   symbols, targets of calls from other sections) is declared, so dead-code removal keeps a
///   section's other programs and the functions other sections call;
/// - `LD_ABS`/`LD_IND` in a program with bpf-to-bpf calls are left as they are
///   ([`LdAbsPolicy::Keep`], reported as skipped): the kernel does not lower them there and an
///   object rewrite has no reason to refuse the whole object for them. `run` and `conformance`
///   keep the default, which refuses them;
/// - the functions of a section other than `.text` are programs (libbpf's rule): the context
///   is in r1 at their entry ([`Options::program_entries`]);
/// - the byte order of the machine that runs the result is the object's (a bpfeb object runs on
///   a big-endian kernel): `bswap` lowers to `le` there, narrow context loads take the
///   big-endian byte offset.
#[must_use]
pub fn object_options(info: &ProgramInfo<'_>) -> Options {
    Options {
        host: info.endian,
        protected: info.patched_at_load().into_iter().map(Slot).collect(),
        entries: info.entries().into_iter().map(Slot).collect(),
        // For libbpf every function of a section other than `.text` is a program.
        program_entries: if info.name == ".text" {
            Vec::new()
        } else {
            info.subprograms.iter().map(|s| Slot(s.start)).collect()
        },
        ld_abs_with_calls: LdAbsPolicy::Keep,
        ..Options::default()
    }
}

/// What the passes did to one program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    /// Index of the program ([`ProgramInfo::index`]).
    pub index: usize,
    /// Per pass, in run order.
    pub stats: Vec<(Pass, PassStats)>,
    /// Which pass made each change ([`Passes::explaining`] only).
    pub provenance: Option<Recorder>,
}

impl ProgramStats {
    /// Instructions the passes left as they were because of an option (see [`PassStats::skipped`]).
    #[must_use]
    pub fn skipped(&self) -> usize {
        self.stats.iter().map(|s| s.1.skipped).sum()
    }
}

/// The pipeline of `--passes LIST [--blind]` and what it did so far.
#[derive(Debug)]
pub struct Passes {
    pipeline: Pipeline,
    ctx_layout: Option<CtxLayout>,
    may_goto: MayGotoForm,
    zext_as_mov32: bool,
    explain: bool,
    done: Vec<ProgramStats>,
    /// Per program index: the calls into it from other sections ([`Passes::for_object`]).
    entry_calls: HashMap<usize, Vec<(Slot, CallSite)>>,
}

impl Passes {
    /// The passes of `--passes LIST [--blind]` for the kernel's internal (xlated) form, where
    /// every pass is allowed: `none` (without `--blind`) patches nothing, so the rewrite is the
    /// identity.
    ///
    /// # Errors
    /// An unknown pass name.
    pub fn new(list: &str, blind: bool) -> Result<Passes> {
        Passes::for_output(list, blind, OutputKind::Xlated)
    }

    /// The passes of `--passes LIST [--blind]` for output of `kind`: `all` is the kind's
    /// ([`Pipeline::all_of`]), and a pass of the xlated kind asked for loadable output is
    /// [`PassError::NeedsXlated`].
    ///
    /// # Errors
    /// An unknown pass name, a pass of the other kind.
    pub fn for_output(list: &str, blind: bool, kind: OutputKind) -> Result<Passes> {
        let list = if list == "none" { "" } else { list };
        Ok(Passes {
            pipeline: Pipeline::for_output(list, blind, kind)?,
            ctx_layout: None,
            may_goto: MayGotoForm::default(),
            zext_as_mov32: false,
            explain: false,
            done: Vec::new(),
            entry_calls: HashMap::new(),
        })
    }

    /// The names of the passes, in the order they run.
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        self.pipeline.passes().iter().map(|p| p.name()).collect()
    }

    /// The same passes, with the context layout the `ctx` pass converts accesses with
    /// (`--ctx-layout FILE`, see [`crate::ctx_layout`]).
    #[must_use]
    pub fn with_ctx_layout(mut self, layout: Option<CtxLayout>) -> Passes {
        self.ctx_layout = layout;
        self
    }

    /// The same passes, with `may_goto` expanded in `form` (`--may-goto`; the default is the
    /// timed form of Linux 6.15+ on x86-64 and arm64).
    #[must_use]
    pub fn with_may_goto(mut self, form: MayGotoForm) -> Passes {
        self.may_goto = form;
        self
    }

    /// The same passes, with each zero-extension `zext` inserts written as the uapi `w = w`
    /// (`mov32` of a register to itself, `imm = 0`) instead of the kernel-internal
    /// `BPF_ZEXT_REG` (`imm = 1`). A test aid (`load --zext-as-mov32`): the result is loadable,
    /// so the running kernel's verifier judges the sites `zext` chose (a zero-extension of a
    /// pointer loaded from the context turns it into a scalar, and the verifier then rejects
    /// the pointer's use). It is not what the kernel does: its JIT zero-extends without a
    /// `mov32`.
    #[must_use]
    pub fn with_zext_as_mov32(mut self, on: bool) -> Passes {
        self.zext_as_mov32 = on;
        self
    }

    /// Reads, before any program of `obj` is rewritten, what every call from one section into
    /// another passes ([`BpfObject::calls_into`], [`bpfpatch_passes::call_sites`] of the calling
    /// program with its [`object_options`]): [`Passes::run`] gives them to the called program
    /// as [`Options::entry_calls`], so a `.text` function a program calls with the context in
    /// an argument sees it as the context (`zext` skips its context loads, as the kernel,
    /// which verifies the function as part of that program, does). A calling program the
    /// analyses cannot take contributes nothing (its own rewrite reports why). Nothing to do for
    /// a pipeline without a pass that reads pointer kinds.
    pub fn for_object(&mut self, obj: &BpfObject) {
        self.entry_calls.clear();
        if !self.pipeline.passes().iter().any(|p| p.needs().contains(&Fact::PtrKind)) {
            return;
        }
        for callee in 0..obj.programs().len() {
            let calls = obj.calls_into(callee);
            let mut records = Vec::with_capacity(calls.len());
            for from in calls.iter().map(|c| c.from).collect::<BTreeSet<_>>() {
                let Ok(view) = obj.engine_view(from) else { continue };
                let sites: Vec<&CrossCall> = calls.iter().filter(|c| c.from == from).collect();
                let at: Vec<Slot> = sites.iter().map(|c| Slot(c.slot)).collect();
                let Ok(regs) = call_sites(&view.program().insns, &object_options(&view.info()), &at) else { continue };
                records.extend(sites.iter().zip(regs).filter_map(|(c, r)| Some((Slot(c.target), r?))));
            }
            if !records.is_empty() {
                self.entry_calls.insert(callee, records);
            }
        }
    }

    /// The same passes, recording which pass made each change ([`ProgramStats::provenance`],
    /// `bpfpatch rewrite --explain`).
    #[must_use]
    pub fn explaining(mut self) -> Passes {
        self.explain = true;
        self
    }

    /// Runs the pipeline on `plist`, the patch list of the program `info` describes, with
    /// [`object_options`] (and, for an object, what [`Passes::for_object`] read: call it
    /// before the object's first program changes, as `rewrite` and `load` do); records what it
    /// did. The empty pipeline touches nothing.
    ///
    /// # Errors
    /// The pipeline's [`bpfpatch_passes::PassError`].
    pub fn run(&mut self, plist: &mut PatchList, info: &ProgramInfo<'_>) -> Result<()> {
        if self.pipeline.passes().is_empty() && !self.explain {
            return Ok(());
        }
        let opts = Options {
            ctx_layout: self.ctx_layout.clone(),
            may_goto: self.may_goto,
            entry_calls: self.entry_calls.get(&info.index).cloned().unwrap_or_default(),
            ..object_options(info)
        };
        let insns = &info.program.insns;
        let (stats, provenance) = if self.pipeline.passes().is_empty() {
            (Ok(Vec::new()), Some(Recorder::new(plist)))
        } else if self.explain {
            let mut rec = Recorder::new(plist);
            let stats = self.pipeline.apply_observed(plist, insns, &opts, &mut |p, l| rec.after(p, l));
            (stats, Some(rec))
        } else {
            (self.pipeline.apply(plist, insns, &opts), None)
        };
        let stats = stats.map_err(with_hint)?;
        if self.zext_as_mov32 {
            let zexts: Vec<_> = plist.iter().filter(|&(_, i)| i == kernel_zext_reg(i.dst_reg())).collect();
            for (node, i) in zexts {
                let mut uapi = i;
                uapi.imm = 0;
                plist.set_insn(node, uapi)?;
            }
        }
        self.done.push(ProgramStats { index: info.index, stats, provenance });
        Ok(())
    }

    /// What the passes did, per program run so far, in run order.
    #[must_use]
    pub fn stats(&self) -> &[ProgramStats] {
        &self.done
    }
}

/// A pass error, with what to do about a missing context layout.
pub fn with_hint(e: PassError) -> anyhow::Error {
    match e {
        PassError::NoCtxLayout => anyhow::anyhow!("{e} (the ctx pass needs --ctx-layout FILE)"),
        e => e.into(),
    }
}
