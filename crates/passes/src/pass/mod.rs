//! The pass pipeline: create the patch list once, run the chosen passes on it, linearize once.
//!
//! # Order
//! Passes always run in the kernel's order, whatever order they are named in:
//! `dce` (`opt_hard_wire_dead_code_branches`, `opt_remove_dead_code`, `opt_remove_nops`),
//! `ctx` (`convert_ctx_accesses`), `lower-v4` (ours: after `ctx`, which may emit `movsx`, and
//! before `fixups`, so signed division is lowered rather than guarded), `fixups`
//! (`do_misc_fixups`), `zext` / `cmpxchg-zext` / `rnd-hi32` (`opt_subreg_zext_lo32_rnd_hi32`), `blind`
//! (`bpf_jit_blind_constants`, last, at JIT time).
//!
//! # Facts
//! Analyses run once, on the original program ([`crate::analysis`]); each pass states the facts
//! it needs ([`Pass::needs`]) and only those are computed. During the passes a list node gets
//! its original instruction's facts only while it is *pristine*: it carries that instruction's
//! identity (the engine moves it to the last slot of a patch) and still holds the very same
//! instruction. Any other node — inserted code, or an original whose instruction a patch changed
//! — gets the kernel's conservative aux for new slots: `zext_dst = is_def32`, no pointer kind,
//! no reachability fact. Passes that need a fact for such a node either act conservatively
//! (zext) or never meet one (dce runs first; ctx runs before anything inserts loads).
//!
//! # Adding a pass
//! One folder and one line: `pass/NAME/mod.rs` declares the pass's row of the registry, a
//! [`PassDef`] (name, one-line help, [`OutputKind`], the [`Fact`]s it needs, its body, which
//! records patches on the list through `PassCx`), and `pass/NAME/seq.rs` its generators (pure
//! functions returning each replacement as a `PatchBuf`, built with [`crate::emit`]); then one
//! line `Variant => NAME::PASS,` in the `registry!` below, at its place in the run order. The
//! [`Pass`] handle, [`Pass::ORDER`], the command line's names and help, and `all`'s membership
//! by kind follow from that line. `pass/toy/` (registered for the tests only) is the example.
//!
//! # Errors
//! A pass that cannot apply returns a typed [`PassError`] naming the original slot; the list
//! is then discarded. The output always decodes (with kernel-internal forms): it is checked.

pub mod blind;
pub mod ctx;
pub mod dce;
pub mod fixups;
pub mod kernel_dce;
pub mod lower_v4;
#[cfg(test)]
mod toy;
pub mod zext;

use crate::analysis::cfg::{Cfg, CfgError};
use crate::analysis::liveness::Liveness;
use crate::analysis::ptrkind::{CallSite, Entries, PtrKinds};
use crate::analysis::reach::{Model, Reach};
use crate::emit::RewriteError;
use crate::program::InsnIdx;
use blind::seq::{BlindRng, SplitMix64};
use bpfpatch_insn::{DecodeError, DecodeOptions, Endian, Insn, Op, Slot, decode, decode_program};
use bpfpatch_patch::{LinearizeOptions, NodeId, OffsetMap, PatchBuf, PatchList};
use core::fmt;
use ctx::seq::{CtxError, CtxLayout};

/// What a rewritten program is for: the two kinds of output are never mixed up.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum OutputKind {
    /// What a loader hands to the kernel: uapi encodings only (no AX, no internal
    /// zero-extension, no `BPF_TAIL_CALL`, no nospec). Passes: `dce`, `lower-v4`.
    Loadable,
    /// What the kernel makes of a program after verification, as `bpftool prog dump xlated`
    /// shows it: the kernel's own passes (`kernel-dce`, `ctx`, `fixups`, `zext`, `rnd-hi32`, `blind`) and
    /// their internal forms.
    Xlated,
}

impl fmt::Display for OutputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputKind::Loadable => "loadable",
            OutputKind::Xlated => "xlated",
        })
    }
}

/// An analysis result a pass needs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Fact {
    /// Reachability and branch fates (`analysis::reach`).
    Reach,
    /// Reachability as the kernel's verifier sees it (`analysis::reach::Model::Verifier`).
    VerifierReach,
    /// 32-bit subregister liveness (`analysis::liveness`).
    Liveness,
    /// Pointer kinds and stack depths (`analysis::ptrkind`).
    PtrKind,
}

/// Everything the pipeline and the command line know of a pass: one row of the registry.
#[derive(Debug)]
pub(crate) struct PassDef {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it does, in one line (the command line's `--passes` help).
    pub help: &'static str,
    /// The kind of output it makes.
    pub kind: OutputKind,
    /// The facts it reads (only those are computed).
    pub needs: &'static [Fact],
    /// Its body: records its patches on the list.
    pub(crate) run: RunFn,
}

/// A pass's body.
pub(crate) type RunFn = fn(&mut PatchList, &mut PassCx<'_>) -> Result<PassStats, PassError>;

/// Declares the registry: the [`Pass`] handles, their run order ([`Pass::ORDER`]) and their
/// definitions (`Pass::def`), from one line per pass.
macro_rules! registry {
    ($($(#[doc = $doc:literal])* $(#[cfg($cfg:meta)])? $variant:ident => $def:path,)*) => {
        /// One pass of the pipeline: a handle on its row of the registry (its name, help, output
        /// kind and the facts it needs).
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub enum Pass {
            $($(#[doc = $doc])* $(#[cfg($cfg)])? $variant,)*
        }

        impl Pass {
            /// Every pass, in the order they run.
            pub const ORDER: &'static [Pass] = &[$($(#[cfg($cfg)])? Pass::$variant,)*];

            /// The pass's row of the registry.
            #[must_use]
            pub(crate) const fn def(self) -> &'static PassDef {
                match self {
                    $($(#[cfg($cfg)])? Pass::$variant => &$def,)*
                }
            }
        }
    };
}

// The registry: a pass is a folder of this one defining its `PassDef`, and one line here, in
// the order the passes run (the kernel's, see the module documentation).
registry! {
    /// Dead-code elimination with constant branch folding.
    Dce => dce::PASS,
    /// The kernel's dead-code rules, instruction by instruction (`pass/kernel_dce`).
    KernelDce => kernel_dce::PASS,
    /// Context-access conversion with a [`CtxLayout`].
    Ctx => ctx::PASS,
    /// cpu-v4 instructions rewritten into v3 sequences.
    LowerV4 => lower_v4::PASS,
    /// Division guards, `LD_ABS`/`LD_IND` lowering, `may_goto` expansion, tail-call rewrite.
    Fixups => fixups::PASS,
    /// Explicit zero-extension after 32-bit definitions whose upper half is read.
    Zext => zext::ZEXT,
    /// The zero-extension of a 32-bit `cmpxchg`'s r0 that every JIT gets (`zext` does it too).
    CmpxchgZext => zext::CMPXCHG_ZEXT,
    /// Random upper halves after 32-bit definitions whose upper half nobody reads.
    RndHi32 => zext::RND_HI32,
    /// Constant blinding.
    Blind => blind::PASS,
    /// A toy pass for the registry's own test (`ja +0` before every `exit`).
    #[cfg(test)]
    Toy => toy::PASS,
}

impl Pass {
    /// The pass's name on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        self.def().name
    }

    /// What the pass does, in one line.
    #[must_use]
    pub const fn help(self) -> &'static str {
        self.def().help
    }

    /// The pass named `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Pass> {
        Pass::ORDER.iter().copied().find(|p| p.name() == name)
    }

    /// The kind of output the pass makes (see [`OutputKind`]).
    #[must_use]
    pub const fn kind(self) -> OutputKind {
        self.def().kind
    }

    /// The facts the pass reads.
    #[must_use]
    pub const fn needs(self) -> &'static [Fact] {
        self.def().needs
    }
}

impl fmt::Display for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the pipeline could not rewrite a program.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// A pipeline specification names no known pass.
    #[error("unknown pass {name:?} (known: {}, all, kernel)", known_names())]
    UnknownPass {
        /// The name given.
        name: String,
    },
    /// The program cannot be analysed (does not decode, bad targets, jumps between subprograms).
    #[error(transparent)]
    Analysis(#[from] CfgError),
    /// The patching engine refused a request or the linearization.
    #[error("{pass}: {source}")]
    Engine {
        /// The pass (or `linearize`).
        pass: &'static str,
        /// The engine's error.
        source: bpfpatch_patch::Error,
    },
    /// A reachable instruction falls off the end of its subprogram.
    #[error("dce: slot {slot}: control falls off the end of the subprogram")]
    FallsOffEnd {
        /// The instruction.
        slot: Slot,
    },
    /// A pass of the kernel's internal (xlated) form was asked for loadable output.
    #[error("`{pass}` makes the kernel's internal (xlated) form, not a loadable program: ask for it with --xlated")]
    NeedsXlated {
        /// The pass.
        pass: Pass,
    },
    /// The `ctx` pass was requested without a layout.
    #[error("ctx: no context layout given")]
    NoCtxLayout,
    /// A memory access that may or may not use the context pointer.
    #[error("ctx: slot {slot}: cannot tell whether this access uses the context pointer")]
    CtxUnclassified {
        /// The access.
        slot: Slot,
    },
    /// A context access the layout refuses.
    #[error("ctx: slot {slot}: {source}")]
    Ctx {
        /// The access.
        slot: Slot,
        /// Why.
        source: CtxError,
    },
    /// A generator could not produce the rewrite.
    #[error("{pass}: slot {slot}: {source}")]
    Rewrite {
        /// The pass.
        pass: Pass,
        /// The original slot (or the slot of the nearest original, for inserted code).
        slot: Slot,
        /// Why.
        source: RewriteError,
    },
    /// `LD_ABS`/`LD_IND` in a program with bpf-to-bpf calls (its lowering returns with `exit`),
    /// under [`LdAbsPolicy::Refuse`].
    #[error("fixups: slot {slot}: LD_ABS/LD_IND cannot be lowered in a program with bpf-to-bpf calls")]
    LdAbsWithCalls {
        /// The instruction.
        slot: Slot,
    },
    /// A `may_goto` in a subprogram whose stack depth the analysis could not bound.
    #[error("fixups: slot {slot}: stack depth unknown, no room can be reserved for the may_goto counter")]
    StackDepthUnknown {
        /// The `may_goto`.
        slot: Slot,
    },
    /// A pass met an instruction it needs an original fact for, but the node is not original.
    #[error("{pass}: an inserted instruction {op:?} needs facts only original instructions have")]
    NoFacts {
        /// The pass.
        pass: Pass,
        /// The instruction.
        op: Op,
    },
    /// The rewritten program does not decode (a bug: reported, never returned as output).
    #[error("rewritten program does not decode: {0}")]
    Output(DecodeError),
}

/// The registry's pass names, comma-separated.
fn known_names() -> String {
    Pass::ORDER.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
}

impl PassError {
    fn engine(pass: &'static str) -> impl FnOnce(bpfpatch_patch::Error) -> PassError {
        move |source| PassError::Engine { pass, source }
    }
}

/// Options of a pipeline run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Byte order of the machine that runs the result (`bswap` lowering, narrow ctx loads).
    pub host: Endian,
    /// Seed of the random source of `blind` and `rnd-hi32`.
    pub seed: u64,
    /// The context layout of the `ctx` pass.
    pub ctx_layout: Option<CtxLayout>,
    /// Size of the tail-call program array: with it, tail calls get the unprivileged bound check.
    pub tail_call_max_entries: Option<u32>,
    /// Stack bytes the verifier allows a frame (`MAX_BPF_STACK`): a deeper one gets no
    /// `may_goto` count. The count itself goes below it, as the kernel's does.
    pub stack_limit: u32,
    /// Let the linearizer relax out-of-range jumps into `gotol` (cpu v4 targets only).
    pub relax: bool,
    /// Original slots no pass may rewrite, ascending: instructions whose fields a loader fills
    /// in later (an object's relocated map references and calls, CO-RE-relocated field offsets
    /// and type ids). Passes do not see them while they are unchanged, and the analyses take
    /// what they compute as unknown (no branch is folded on a placeholder constant, no stack
    /// offset derived from one); dead-code removal may still delete them when unreachable (the
    /// caller reports the relocation as dropped).
    pub protected: Vec<Slot>,
    /// Extra entry points besides slot 0 (an object section's other programs, functions called
    /// from other sections): they start subprograms that are reached from outside, so dead-code
    /// removal keeps them and the analyses assume unknown values at their entry.
    pub entries: Vec<Slot>,
    /// The [`Options::entries`] that are programs of their own (an object section's other
    /// programs: for libbpf every function symbol of a section other than `.text` is one): r1
    /// holds the context at their entry, so loads through it are context loads (`ctx`
    /// converts them, `zext` skips them). The other entries (functions called from other
    /// sections) get unknown arguments.
    pub program_entries: Vec<Slot>,
    /// Calls into the section from other sections (an object's programs calling `.text`
    /// functions): the [`Options::entries`] slot each calls and what r0..r9 hold there
    /// ([`call_sites`] of the calling section), one record per call site. Their entries start
    /// with the join of what the calls pass, so a load through an argument holding the context
    /// is a context load (`zext` skips it, `ctx` converts it). With any record, the section is
    /// a library: its slot 0 is not a program (r1 is not the context there unless calls pass
    /// it), unless [`Options::program_entries`] names it.
    pub entry_calls: Vec<(Slot, CallSite)>,
    /// What `fixups` does with `LD_ABS`/`LD_IND` in a program with bpf-to-bpf calls.
    pub ld_abs_with_calls: LdAbsPolicy,
    /// Which expansion of `may_goto` `fixups` writes (the target kernel's JIT decides).
    pub may_goto: MayGotoForm,
}

/// The expansion of `may_goto` in the target kernel's `do_misc_fixups`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum MayGotoForm {
    /// Linux 6.15 and later on a JIT with `bpf_jit_supports_timed_may_goto()` (x86-64, arm64):
    /// a 16-byte `{count, timestamp}` pair below the frame, the count starting at
    /// `BPF_MAX_TIMED_LOOPS` and refreshed by a call to `arch_bpf_timed_may_goto` until a time
    /// slice ends; seven instructions per `may_goto`, two stores at each subprogram's entry.
    #[default]
    Timed,
    /// Earlier kernels and other JITs: an 8-byte counter starting at `BPF_MAX_LOOPS`; four
    /// instructions per `may_goto`, one store at each subprogram's entry.
    Counted,
}

/// What `fixups` does with `LD_ABS`/`LD_IND` in a program with bpf-to-bpf calls (more than one
/// subprogram, counting [`Options::entries`]).
///
/// The kernel's lowering (`bpf_gen_ld_abs`) ends its error path with `exit`, which in a callee
/// returns from the callee instead of ending the program, and the kernel refuses such programs
/// ("cannot be mixed with bpf-to-bpf calls"); so the lowering is never applied there.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum LdAbsPolicy {
    /// Fail with [`PassError::LdAbsWithCalls`] (the kernel's answer; `run` and `conformance`).
    #[default]
    Refuse,
    /// Leave the instruction as it is, counted in [`PassStats::skipped`]: for object rewrites,
    /// where the loader, not this rewrite, decides what happens to it.
    Keep,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            host: Endian::Little,
            seed: 0x6270_6670_6174_6368,
            ctx_layout: None,
            tail_call_max_entries: None,
            stack_limit: 512,
            relax: false,
            protected: Vec::new(),
            entries: Vec::new(),
            program_entries: Vec::new(),
            entry_calls: Vec::new(),
            ld_abs_with_calls: LdAbsPolicy::Refuse,
            may_goto: MayGotoForm::Timed,
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PassStats {
    /// Instructions replaced by a patch.
    pub patched: usize,
    /// Instructions inserted before others (prologues, counter initialisation).
    pub prepatched: usize,
    /// Instructions deleted.
    pub deleted: usize,
    /// Instructions rewritten 1:1 in place.
    pub rewritten: usize,
    /// Instructions the pass would rewrite but left as they are because an option says so
    /// (`LD_ABS`/`LD_IND` under [`LdAbsPolicy::Keep`]).
    pub skipped: usize,
}

/// The result of a pipeline run.
#[derive(Clone, Debug)]
pub struct Rewritten {
    /// The new program.
    pub insns: Vec<Insn>,
    /// Old-to-new slot map.
    pub map: OffsetMap,
    /// What each pass did, in run order.
    pub stats: Vec<(Pass, PassStats)>,
}

/// A pipeline: a set of passes (run in [`Pass::ORDER`]).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Pipeline {
    passes: Vec<Pass>,
    auto_lower_v4: bool,
}

impl Pipeline {
    /// The pipeline of mode (b): `dce,fixups,zext,rnd-hi32`, plus `lower-v4` for programs that
    /// use cpu-v4 instructions.
    #[must_use]
    pub fn all() -> Pipeline {
        Pipeline { passes: vec![Pass::Dce, Pass::Fixups, Pass::Zext, Pass::RndHi32], auto_lower_v4: true }
    }

    /// The passes that make sense for `kind`: [`Pipeline::all`] for xlated output, `dce` (plus
    /// `lower-v4` for programs that use cpu-v4 instructions) for loadable output.
    #[must_use]
    pub fn all_of(kind: OutputKind) -> Pipeline {
        match kind {
            OutputKind::Xlated => Pipeline::all(),
            OutputKind::Loadable => Pipeline { passes: vec![Pass::Dce], auto_lower_v4: true },
        }
    }

    /// The kind of output this pipeline makes: xlated as soon as one pass is.
    #[must_use]
    pub fn kind(&self) -> OutputKind {
        if self.passes.iter().any(|p| p.kind() == OutputKind::Xlated) {
            OutputKind::Xlated
        } else {
            OutputKind::Loadable
        }
    }

    /// The pipeline the running kernel applies to a privileged load on x86-64 without
    /// hardening, as far as it rewrites without a context layout: `kernel-dce,fixups,cmpxchg-zext`
    /// (no `lower-v4`: the kernel runs cpu v4 natively; of `opt_subreg_zext_lo32_rnd_hi32`, only
    /// what a JIT that zero-extends gets). Its output is the kernel's xlated image where that
    /// holds no kernel address (`bpfpatch conformance --kernel --xlated-compare`).
    #[must_use]
    pub fn kernel() -> Pipeline {
        Pipeline { passes: vec![Pass::KernelDce, Pass::Fixups, Pass::CmpxchgZext], auto_lower_v4: false }
    }

    /// `--passes LIST [--blind]` for output of `kind`: `all` names [`Pipeline::all_of`] `kind`,
    /// `kernel` names [`Pipeline::kernel`].
    ///
    /// # Errors
    /// [`PassError::UnknownPass`]; [`PassError::NeedsXlated`] for a pass of the xlated kind
    /// (blinding included) when `kind` is loadable.
    pub fn for_output(list: &str, blind: bool, kind: OutputKind) -> Result<Pipeline, PassError> {
        let mut p = Pipeline::default();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty() && *s != "none") {
            if name == "all" {
                let all = Pipeline::all_of(kind);
                p.passes.extend(all.passes);
                p.auto_lower_v4 = true;
                continue;
            }
            if name == "kernel" {
                p.passes.extend(Pipeline::kernel().passes);
                continue;
            }
            p.passes.push(Pass::from_name(name).ok_or_else(|| PassError::UnknownPass { name: name.to_string() })?);
        }
        if blind {
            p.passes.push(Pass::Blind);
        }
        p.passes.sort_unstable();
        p.passes.dedup();
        if kind == OutputKind::Loadable
            && let Some(&pass) = p.passes.iter().find(|q| q.kind() == OutputKind::Xlated)
        {
            return Err(PassError::NeedsXlated { pass });
        }
        Ok(p)
    }

    /// Parses a comma-separated list of pass names; `all` names [`Pipeline::all`]; empty or
    /// `none` is the empty pipeline.
    ///
    /// # Errors
    /// [`PassError::UnknownPass`].
    pub fn parse(spec: &str) -> Result<Pipeline, PassError> {
        // Every pass is allowed in the kernel's internal form.
        Pipeline::for_output(spec, false, OutputKind::Xlated)
    }

    /// `--passes LIST [--blind]`.
    ///
    /// # Errors
    /// As [`Pipeline::parse`].
    pub fn from_cli(list: &str, blind: bool) -> Result<Pipeline, PassError> {
        let p = Pipeline::parse(list)?;
        Ok(if blind { p.with(Pass::Blind) } else { p })
    }

    /// This pipeline with one more pass.
    #[must_use]
    pub fn with(mut self, pass: Pass) -> Pipeline {
        if !self.passes.contains(&pass) {
            self.passes.push(pass);
            self.passes.sort_unstable();
        }
        self
    }

    /// The passes it runs on `insns` (resolving `lower-v4` for `all`), in order.
    #[must_use]
    pub(crate) fn passes_for(&self, prog: &crate::program::DecodedProgram) -> Vec<Pass> {
        let mut v = self.passes.clone();
        if self.auto_lower_v4 && prog.ops().iter().any(lower_v4::seq::uses_v4) {
            v.push(Pass::LowerV4);
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The named passes (without `all`'s automatic `lower-v4`).
    #[must_use]
    pub fn passes(&self) -> &[Pass] {
        &self.passes
    }

    /// Runs the pipeline on `insns` (an empty program gives an empty program).
    ///
    /// # Errors
    /// A [`PassError`] from the analyses, a pass, or the linearization.
    pub fn run(&self, insns: &[Insn], opts: &Options) -> Result<Rewritten, PassError> {
        let mut list = PatchList::new(insns).map_err(PassError::engine("patch list"))?;
        let stats = self.apply(&mut list, insns, opts)?;
        let lin = list.linearize(LinearizeOptions { relax: opts.relax }).map_err(PassError::engine("linearize"))?;
        decode_program(&lin.insns, DecodeOptions::INTERNAL).map_err(PassError::Output)?;
        Ok(Rewritten { insns: lin.insns, map: lin.map, stats })
    }

    /// Runs the passes on `list`, a patch list created from `insns` and not patched yet,
    /// without linearizing it: for callers that linearize with side tables of their own (the
    /// object rewriter). Returns what each pass did. An empty program is left as it is (every
    /// pass reports nothing done).
    ///
    /// # Errors
    /// As [`Pipeline::run`].
    pub fn apply(
        &self,
        list: &mut PatchList,
        insns: &[Insn],
        opts: &Options,
    ) -> Result<Vec<(Pass, PassStats)>, PassError> {
        self.apply_observed(list, insns, opts, &mut |_, _| {})
    }

    /// [`Pipeline::apply`], calling `after` with each pass and the list as that pass left it
    /// (before the next one runs): for callers that attribute each change to its pass
    /// (`bpfpatch rewrite --explain`). Not called for an empty program.
    ///
    /// # Errors
    /// As [`Pipeline::run`].
    pub fn apply_observed(
        &self,
        list: &mut PatchList,
        insns: &[Insn],
        opts: &Options,
        after: &mut dyn FnMut(Pass, &PatchList),
    ) -> Result<Vec<(Pass, PassStats)>, PassError> {
        if insns.is_empty() {
            // No instruction: every pass has nothing to do (an object's empty `.text`).
            return Ok(self.passes.iter().map(|&p| (p, PassStats::default())).collect());
        }
        let cfg = Cfg::with_entries(insns, &opts.entries)?;
        let passes = self.passes_for(cfg.prog());
        let need = |f: Fact| passes.iter().any(|p| p.needs().contains(&f));
        let opaque = opaque(&cfg, opts);
        let mut cx = PassCx {
            reach: need(Fact::Reach).then(|| Reach::analyze_with(&cfg, &opaque)),
            verifier_reach: need(Fact::VerifierReach)
                .then(|| Reach::analyze_model(&cfg, &opaque, Model::Verifier { host: opts.host })),
            live: need(Fact::Liveness).then(|| Liveness::analyze(&cfg)),
            kinds: need(Fact::PtrKind).then(|| ptr_kinds(&cfg, &opaque, opts)),
            cfg: &cfg,
            orig: insns,
            opts,
            rng: SplitMix64::new(opts.seed),
            zext_requested: passes.contains(&Pass::Zext),
            rnd_hi32_requested: passes.contains(&Pass::RndHi32),
        };
        let mut stats = Vec::with_capacity(passes.len());
        for &pass in &passes {
            let s = (pass.def().run)(list, &mut cx)?;
            after(pass, list);
            stats.push((pass, s));
        }
        Ok(stats)
    }
}

/// What r0..r9 hold at the calls leaving the program at slots `at` (calls an object relocates
/// into another section, seen as kfunc calls), by the pointer-kind analysis the passes use
/// with `opts` (`PtrKinds::call_site`): the callee section's [`Options::entry_calls`]. `None`
/// for a slot that is no such call or is never reached.
///
/// # Errors
/// A program the analyses cannot take ([`PassError::Analysis`]).
pub fn call_sites(insns: &[Insn], opts: &Options, at: &[Slot]) -> Result<Vec<Option<CallSite>>, PassError> {
    if insns.is_empty() {
        return Ok(vec![None; at.len()]);
    }
    let cfg = Cfg::with_entries(insns, &opts.entries)?;
    let kinds = ptr_kinds(&cfg, &opaque(&cfg, opts), opts);
    Ok(at.iter().map(|s| cfg.prog().at_slot(s.0).and_then(|i| kinds.call_site(i))).collect())
}

/// Per instruction, whether a loader fills it in later ([`Options::protected`]): the analyses
/// must not rely on what it computes. Empty when nothing is protected.
fn opaque(cfg: &Cfg, opts: &Options) -> Vec<bool> {
    let mut opaque = vec![false; if opts.protected.is_empty() { 0 } else { cfg.prog().len() }];
    for i in opts.protected.iter().filter_map(|s| cfg.prog().at_slot(s.0)) {
        opaque[i.idx()] = true;
    }
    opaque
}

/// The pointer-kind analysis with the entries of `opts` ([`Options::program_entries`],
/// [`Options::entry_calls`]).
fn ptr_kinds(cfg: &Cfg, opaque: &[bool], opts: &Options) -> PtrKinds {
    let programs: Vec<InsnIdx> = opts.program_entries.iter().filter_map(|s| cfg.prog().at_slot(s.0)).collect();
    let calls: Vec<(InsnIdx, CallSite)> =
        opts.entry_calls.iter().filter_map(|(s, r)| Some((cfg.prog().at_slot(s.0)?, *r))).collect();
    PtrKinds::analyze_calls(cfg, opaque, &Entries { programs: &programs, calls: &calls })
}

/// Rewrites `insns` with `pipeline` (the conformance runner's transform hook and `bpfpatch run
/// --passes`): the new program's slots.
///
/// # Errors
/// As [`Pipeline::run`].
pub fn transform(insns: &[Insn], pipeline: &Pipeline, opts: &Options) -> Result<Vec<Insn>, PassError> {
    pipeline.run(insns, opts).map(|r| r.insns)
}

/// State shared by the passes of one run.
pub(crate) struct PassCx<'a> {
    cfg: &'a Cfg,
    orig: &'a [Insn],
    reach: Option<Reach>,
    verifier_reach: Option<Reach>,
    live: Option<Liveness>,
    kinds: Option<PtrKinds>,
    opts: &'a Options,
    rng: SplitMix64,
    zext_requested: bool,
    rnd_hi32_requested: bool,
}

/// A decoded live instruction of the list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item {
    node: NodeId,
    op: Op,
    /// The original instruction, when the node is pristine (see the module documentation).
    orig: Option<InsnIdx>,
    /// The original slot whose identity the node carries, or the nearest one for reporting.
    slot: Slot,
}

impl PassCx<'_> {
    /// The live instructions of `list`, decoded, in program order, taken before any change:
    /// code a pass inserts is not revisited by that pass.
    fn items(&self, list: &mut PatchList) -> Result<Vec<Item>, PassError> {
        let mut out = Vec::with_capacity(list.live_len());
        let mut last_slot = Slot(0);
        let mut cur = list.first_insn();
        while let Some(node) = cur {
            let insn = list.insn(node).unwrap_or_default();
            let hi = if insn.is_ld_imm64() {
                list.cursor_at(node).map_err(PassError::engine("walk"))?.insn_hi().unwrap_or_default()
            } else {
                Insn::default()
            };
            // A pristine node (its original's identity and the very same slots) reuses the op the
            // CFG decoded: the pipeline decodes the program once, and only what passes wrote again.
            let orig = list.origin(node).and_then(|s| {
                let i = self.cfg.prog().at_slot(s.0)?;
                let same =
                    self.orig.get(s.0) == Some(&insn) && (!insn.is_ld_imm64() || self.orig.get(s.0 + 1) == Some(&hi));
                same.then_some(i)
            });
            let op = match orig {
                Some(i) => *self.cfg.prog().op(i),
                None => {
                    decode(&[insn, hi], DecodeOptions::INTERNAL)
                        .map_err(|reason| {
                            PassError::Output(DecodeError::Invalid { slot: last_slot, code: insn.code, reason })
                        })?
                        .0
                }
            };
            if let Some(s) = list.origin(node) {
                last_slot = s;
            }
            let protected = orig.is_some() && self.opts.protected.binary_search(&last_slot).is_ok();
            if !protected {
                out.push(Item { node, op, orig, slot: last_slot });
            }
            cur = list.next_insn(node);
        }
        Ok(out)
    }

    /// Replaces the instruction at `node` by the generated patch `p` (escapes go to its
    /// original target): the list copies its slots once, from the generator's buffer.
    fn patch(&mut self, list: &mut PatchList, node: NodeId, p: &PatchBuf, pass: &'static str) -> Result<(), PassError> {
        list.patch(node, p).map_err(PassError::engine(pass))?;
        Ok(())
    }

    fn next_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfpatch_insn::opcode as c;

    /// The toy pass (pass/toy/ plus its registry line, nothing else) is a pass like any
    /// other: the pipeline parses its name, computes its facts, runs it in registry order, and
    /// its patches land (a `goto +0` before each exit; a jump to an exit still reaches it).
    #[test]
    fn a_registered_pass_runs_from_its_file_and_one_line() {
        assert_eq!(Pass::ORDER.last(), Some(&Pass::Toy));
        assert_eq!(Pass::from_name("toy"), Some(Pass::Toy));
        assert_eq!(Pass::Toy.kind(), OutputKind::Loadable);
        // r0 = 0; if r1 == 0 goto +1; exit; r0 = 1; exit
        let prog = [
            Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 0),
            Insn::new(c::JMP | c::JEQ | c::K, 1, 0, 1, 0),
            Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0),
            Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 1),
            Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0),
        ];
        let pipeline = Pipeline::from_cli("dce,toy", false).unwrap();
        let out = pipeline.run(&prog, &Options::default()).unwrap();
        assert_eq!(out.stats.iter().map(|(p, _)| p.name()).collect::<Vec<_>>(), ["dce", "toy"]);
        assert_eq!(out.stats[1].1.prepatched, 2);
        let ja = Insn::new(c::JMP | c::JA, 0, 0, 0, 0);
        assert_eq!(out.insns.len(), 7);
        assert_eq!((out.insns[2], out.insns[3]), (ja, prog[2]));
        assert_eq!((out.insns[5], out.insns[6]), (ja, prog[4]));
        // The jump still lands on `r0 = 1`, two slots further now.
        assert_eq!(out.insns[1].off, 2, "if r1 == 0 lands on r0 = 1");
    }
}
