//! `--passes LIST [--blind]`: the passes on the command line, from the passes crate's registry
//! ([`Pass::ORDER`], each with its name, one-line help and output kind),
//! the help and the checks of a list made from it (for `run`, `conformance` and `rewrite`), and
//! the arguments of the commands that rewrite before running.

use anyhow::Result;
use bpfpatch_cli::pipeline::with_hint;
use bpfpatch_insn::Insn;
use bpfpatch_passes::{MayGotoForm, Options, Pass, Pipeline, transform};
use bpfpatch_vm::{Hi32Mode, VmConfig};
use std::fmt::Write as _;
use std::path::PathBuf;

/// The passes of `all`, comma-separated.
fn all_list() -> String {
    Pipeline::all().passes().iter().map(|p| p.name()).collect::<Vec<_>>().join(",")
}

/// The long help of `--passes`: `what` the list is for, one line per pass of the registry, then
/// `all` and `none` (`none`: what the command does without passes).
pub fn help(what: &str, none: &str) -> String {
    let mut s = format!(
        "{what}: a comma-separated list, each name at most once (they run in this order whatever the order \
         given):"
    );
    for pass in Pass::ORDER {
        let does = pass.help();
        let kind = if pass.kind() == bpfpatch_passes::OutputKind::Xlated { " [xlated]" } else { "" };
        let _ = write!(s, "\n  {:<10} {does}{kind}", pass.name());
    }
    let _ = write!(
        s,
        "\n  {:<10} the passes of the output kind, plus lower-v4 for programs that use cpu-v4 instructions: \
         dce for loadable output (rewrite without --xlated, load, conformance --kernel), {} for the kernel's \
         internal form (rewrite --xlated, run, conformance)",
        "all",
        all_list()
    );
    let _ = write!(
        s,
        "\n  {:<10} what the running kernel applies to a privileged load (kernel-dce,fixups,cmpxchg-zext) [xlated]",
        "kernel"
    );
    let _ = write!(s, "\n  {:<10} {none}", "none");
    s
}

/// Checks a `--passes` list as clap parses it, so that a bad one is a usage error (exit 2):
/// known names, `all` or `none`, none of them empty or twice (nor a pass of `all` beside it),
/// `none` alone.
///
/// # Errors
/// What is wrong with the list, in words.
pub fn parse_list(list: &str) -> Result<String, String> {
    let names: Vec<&str> = list.split(',').map(str::trim).collect();
    let known = || {
        let mut v: Vec<&str> = Pass::ORDER.iter().map(|p| p.name()).collect();
        v.extend(["all", "kernel", "none"]);
        v.join(", ")
    };
    for (k, name) in names.iter().enumerate() {
        if name.is_empty() {
            return Err("empty pass name (the list is NAME,NAME,...)".into());
        }
        if !matches!(*name, "all" | "kernel" | "none") && Pass::from_name(name).is_none() {
            return Err(format!("unknown pass `{name}` (known: {})", known()));
        }
        if names[..k].contains(name) {
            return Err(format!("`{name}` is named twice"));
        }
    }
    if names.len() > 1 && names.contains(&"none") {
        return Err("`none` runs no pass: it cannot be combined with others".into());
    }
    if names.contains(&"all")
        && let Some(p) = Pipeline::all().passes().iter().find(|p| names.contains(&p.name()))
    {
        return Err(format!("`{p}` is already in `all` ({})", all_list()));
    }
    Ok(list.to_string())
}

/// `--passes LIST [--blind]`: the passes of every command that rewrites before running (`run`,
/// `conformance`, and `load`, whose output is loadable: it takes no option of the xlated passes).
#[derive(Debug, Clone, clap::Args)]
pub struct PassList {
    /// Rewrite each program with these passes before running it (a comma-separated list; see
    /// --help).
    #[arg(long, value_name = "LIST", value_parser = parse_list, long_help = help("Rewrite each program with these passes before running it", "run the original program"))]
    pub passes: Option<String>,
    /// Add constant blinding to the pipeline (the RFC's third mode).
    #[arg(long)]
    pub blind: bool,
}

/// The rewriting options of `run` and `conformance`: the passes, and the options of the kernel's
/// xlated passes (`ctx`, `fixups`).
#[derive(Debug, Clone, clap::Args)]
pub struct PassArgs {
    #[command(flatten)]
    pub list: PassList,
    /// The context layout of the `ctx` pass: a JSON file of fields (program-view offset and
    /// size, runtime offset and size, writable) and an optional prologue.
    #[arg(long, value_name = "FILE")]
    pub ctx_layout: Option<PathBuf>,
    /// How `fixups` expands `may_goto`: as the target kernel's JIT does.
    #[arg(long, value_enum, value_name = "FORM", default_value_t = MayGoto::Timed)]
    pub may_goto: MayGoto,
}

/// `--may-goto`: the `may_goto` expansion of the target kernel ([`MayGotoForm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MayGoto {
    /// Linux 6.15+ on x86-64 and arm64: a 16-byte count and timestamp, 7 instructions, a call
    /// of arch_bpf_timed_may_goto when the count runs out.
    Timed,
    /// Earlier kernels and other JITs: an 8-byte counter of BPF_MAX_LOOPS, 4 instructions.
    Counted,
}

impl From<MayGoto> for MayGotoForm {
    fn from(m: MayGoto) -> MayGotoForm {
        match m {
            MayGoto::Timed => MayGotoForm::Timed,
            MayGoto::Counted => MayGotoForm::Counted,
        }
    }
}

impl PassArgs {
    /// The pipeline for output of `kind` (`all` is the kind's; a pass of the xlated kind asked
    /// for loadable output is a usage error), or `None` when nothing is to be rewritten.
    pub fn pipeline_for(&self, kind: bpfpatch_passes::OutputKind) -> Result<Option<Pipeline>> {
        let Some(list) = self.list.selected() else { return Ok(None) };
        Ok(Some(Pipeline::for_output(list, self.list.blind, kind)?))
    }

    /// The pipeline, or `None` when nothing is to be rewritten.
    pub fn pipeline(&self) -> Result<Option<Pipeline>> {
        let Some(list) = self.list.selected() else { return Ok(None) };
        Ok(Some(Pipeline::from_cli(list, self.list.blind)?))
    }
}

impl PassList {
    /// The pass list to build a pipeline from (`none` read as no pass), or `None` when nothing
    /// is to be rewritten (`none`, or no `--passes`, without `--blind`).
    fn selected(&self) -> Option<&str> {
        match (self.passes.as_deref().unwrap_or("none"), self.blind) {
            ("none", false) => None,
            ("none", true) => Some(""),
            (list, _) => Some(list),
        }
    }
}

impl PassArgs {
    /// The pass options: the defaults, with the `--ctx-layout` file's layout and `--may-goto`'s
    /// form.
    pub fn options(&self) -> Result<Options> {
        let ctx_layout = self.ctx_layout.as_deref().map(bpfpatch_cli::ctx_layout::read).transpose()?;
        Ok(Options { ctx_layout, may_goto: self.may_goto.into(), ..Options::default() })
    }
}

/// The transform hook of the runner for a pipeline run with `opts`.
pub fn hook<'a>(pipeline: &'a Pipeline, opts: &'a Options) -> impl Fn(&[Insn]) -> Result<Vec<Insn>, String> + 'a {
    move |insns: &[Insn]| transform(insns, pipeline, opts).map_err(|e| format!("{:#}", with_hint(e)))
}

/// The interpreter configuration for programs rewritten by `pipeline` with `opts`. `zext` makes
/// a program correct on a machine that does not zero-extend 32-bit results, so a pipeline with
/// `zext` runs on one: random upper halves after every 32-bit definition
/// ([`Hi32Mode::Randomize`], seeded with the pass seed), only the explicit zero-extensions clear
/// them. Without a pipeline or without `zext`: the default, zero-extending machine.
pub fn vm_config(pipeline: Option<&Pipeline>, opts: &Options) -> VmConfig {
    let zext = pipeline.is_some_and(|p| p.passes().contains(&Pass::Zext));
    VmConfig::default().with_hi32(if zext { Hi32Mode::Randomize(opts.seed) } else { Hi32Mode::ZeroExtend })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The help has one line per pass of the registry, in run order, with its help and kind.
    #[test]
    fn the_help_lists_every_pass_in_order() {
        let h = help("X", "nothing");
        assert!(h.starts_with("X: ") && h.ends_with("nothing"), "{h}");
        let lines: Vec<&str> = h.lines().skip(1).take(Pass::ORDER.len()).collect();
        assert_eq!(lines.len(), Pass::ORDER.len(), "{h}");
        for (line, pass) in lines.iter().zip(Pass::ORDER) {
            assert!(line.trim_start().starts_with(pass.name()) && line.contains(pass.help()), "{line}");
            assert_eq!(line.ends_with("[xlated]"), pass.kind() == bpfpatch_passes::OutputKind::Xlated, "{line}");
        }
        // The `all` line names the passes of `all`, comma-separated in run order.
        let all = h.lines().find(|l| l.trim_start().starts_with("all ")).expect("an `all` line");
        let names: Vec<&str> = Pipeline::all().passes().iter().map(|p| p.name()).collect();
        assert!(names.len() > 1 && all.contains(&names.join(",")), "{all}");
    }

    /// `--may-goto` and `--ctx-layout` reach the pass options (timed and none by default), and a pipeline with `zext` runs
    /// on a machine with random upper halves seeded by the pass seed; one without on the
    /// zero-extending machine.
    #[test]
    fn options_and_vm_config_follow_the_arguments() {
        let mut a =
            PassArgs { list: PassList { passes: None, blind: false }, ctx_layout: None, may_goto: MayGoto::Timed };
        assert_eq!(a.options().unwrap().may_goto, MayGotoForm::Timed);
        a.may_goto = MayGoto::Counted;
        assert_eq!(a.options().unwrap().may_goto, MayGotoForm::Counted);
        assert!(a.options().unwrap().ctx_layout.is_none());
        a.ctx_layout = Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../doc/ctx-layout.json")));
        assert!(a.options().unwrap().ctx_layout.is_some(), "--ctx-layout reaches the options");
        a.ctx_layout = Some(PathBuf::from("/nonexistent/ctx-layout.json"));
        assert!(a.options().is_err(), "an unreadable layout is an error");
        let opts = Options { seed: 77, ..Options::default() };
        let zext = Pipeline::from_cli("zext", false).unwrap();
        let dce = Pipeline::from_cli("dce", false).unwrap();
        assert_eq!(vm_config(Some(&zext), &opts).hi32, Hi32Mode::Randomize(77));
        assert_eq!(vm_config(Some(&dce), &opts).hi32, Hi32Mode::ZeroExtend);
        assert_eq!(vm_config(None, &opts).hi32, Hi32Mode::ZeroExtend);
    }

    /// `none` and no `--passes` mean no rewrite unless `--blind` is given, which alone makes a
    /// pipeline of `blind`; a list makes its passes, with `blind` added by `--blind`; both
    /// builders agree.
    #[test]
    fn no_passes_without_blind_is_no_pipeline() {
        let args = |passes: Option<&str>, blind: bool| PassArgs {
            list: PassList { passes: passes.map(str::to_string), blind },
            ctx_layout: None,
            may_goto: MayGoto::Timed,
        };
        let kind = bpfpatch_passes::OutputKind::Xlated;
        let names = |p: Option<Pipeline>| p.map(|p| p.passes().iter().map(|x| x.name()).collect::<Vec<_>>());
        for (passes, blind, want) in [
            (None, false, None),
            (Some("none"), false, None),
            (None, true, Some(vec!["blind"])),
            (Some("none"), true, Some(vec!["blind"])),
            (Some("dce"), false, Some(vec!["dce"])),
            (Some("dce"), true, Some(vec!["dce", "blind"])),
        ] {
            let a = args(passes, blind);
            assert_eq!(names(a.pipeline().unwrap()), want, "{passes:?} blind={blind}");
            assert_eq!(names(a.pipeline_for(kind).unwrap()), want, "{passes:?} blind={blind}");
        }
    }

    #[test]
    fn lists() {
        for ok in ["none", "all", "all,blind", "all,lower-v4", "dce, zext", "ctx,dce"] {
            assert_eq!(parse_list(ok), Ok(ok.to_string()), "{ok}");
        }
        for bad in ["", "dce,", "dce,dce", "none,dce", "dce,none", "none,none", "all,all", "all,zext", "bogus"] {
            assert!(parse_list(bad).is_err(), "{bad}");
        }
    }
}
