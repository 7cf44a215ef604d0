//! One module per subcommand: its clap arguments (`Args`) and its body (`main`).

pub mod bench;
pub mod bench_linux;
pub mod bench_pipeline;
pub mod check;
pub mod conformance;
pub mod disasm;
pub mod kernel_conformance;
pub mod load;
pub mod rewrite;
pub mod run;
