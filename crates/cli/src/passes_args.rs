//! `--passes LIST [--blind]`, shared by the commands that rewrite before running.

use anyhow::Result;
use bpfpatch_cli::pipeline::with_hint;
use bpfpatch_insn::Insn;
use bpfpatch_passes::{Options, Pass, Pipeline, transform};
use bpfpatch_vm::{Hi32Mode, VmConfig};
use std::path::PathBuf;

/// The rewriting options of `run` and `conformance`.
#[derive(Debug, Clone, clap::Args)]
pub struct PassArgs {
    /// Rewrite each program with these passes before running it: a comma-separated list of
    /// dce, ctx, lower-v4, fixups, zext, rnd-hi32, blind; `all` is `dce,fixups,zext,rnd-hi32`
    /// (plus lower-v4 for programs that use cpu-v4 instructions); `none` runs the original.
    #[arg(long, value_name = "LIST")]
    pub passes: Option<String>,
    /// Add constant blinding to the pipeline (the RFC's third mode).
    #[arg(long)]
    pub blind: bool,
    /// The context layout of the `ctx` pass: a JSON file of fields (program-view offset and
    /// size, runtime offset and size, writable) and an optional prologue.
    #[arg(long, value_name = "FILE")]
    pub ctx_layout: Option<PathBuf>,
}

impl PassArgs {
    /// The pipeline, or `None` when nothing is to be rewritten.
    pub fn pipeline(&self) -> Result<Option<Pipeline>> {
        let list = self.passes.as_deref().unwrap_or("none");
        if list == "none" && !self.blind {
            return Ok(None);
        }
        let list = if list == "none" { "" } else { list };
        Ok(Some(Pipeline::from_cli(list, self.blind)?))
    }
}

impl PassArgs {
    /// The pass options: the defaults, with the `--ctx-layout` file's layout.
    pub fn options(&self) -> Result<Options> {
        let ctx_layout = self.ctx_layout.as_deref().map(bpfpatch_cli::ctx_layout::read).transpose()?;
        Ok(Options { ctx_layout, ..Options::default() })
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
