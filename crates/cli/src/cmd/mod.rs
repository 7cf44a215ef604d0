//! One module per subcommand: its clap arguments (`Args`) and its body (`main`).

#[cfg(feature = "bench")]
pub mod bench;
#[cfg(feature = "bench")]
pub mod bench_linux;
#[cfg(feature = "bench")]
pub mod bench_pipeline;
pub mod check;
pub mod conformance;
pub mod disasm;
pub mod kernel_conformance;
pub mod load;
pub mod rewrite;
pub mod run;
