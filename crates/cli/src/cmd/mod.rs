//! One module per subcommand: its clap arguments (`Args`) and its body (`main`).

pub mod bench;
pub mod conformance;
pub mod disasm;
pub mod run;
