//! `--passes LIST [--blind]`, shared by the commands that rewrite before running.

use anyhow::Result;
use bpfpatch_insn::Insn;
use bpfpatch_passes::{Options, Pipeline, transform};

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

/// The transform hook of the runner for a pipeline.
pub fn hook(pipeline: &Pipeline) -> impl Fn(&[Insn]) -> Result<Vec<Insn>, String> + '_ {
    let opts = Options::default();
    move |insns: &[Insn]| transform(insns, pipeline, &opts).map_err(|e| e.to_string())
}
