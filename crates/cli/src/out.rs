//! Everything the command writes to standard output goes through [`print`] (or [`outln!`]), so
//! that one rule holds for every subcommand: when the reader of a pipe goes away (`bpfpatch
//! disasm x.o | head -1`), the command stops at once and exits quietly with [`BROKEN_PIPE`].
//! `main` denies `print!` and `println!`, which panic there instead.

use std::io::{self, Write};

/// The exit status of a command whose standard output was closed under it: `EX_IOERR` (74)
/// without a message, what llvm-objdump-19 does (LLVM's handler for a write on a pipe with no
/// reader). Not 0: the output was cut short, and a script with `set -o pipefail` should know.
pub const BROKEN_PIPE: u8 = 74;

/// The error of a write to a standard output nobody reads any more; `main` exits quietly with
/// [`BROKEN_PIPE`] on it.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// The error of a failed write to standard output: [`StdoutClosed`] for a broken pipe.
pub fn stdout_error(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(e).context("cannot write to standard output")
    }
}

/// Whether `e` is (or was caused by) [`StdoutClosed`].
pub fn is_stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<StdoutClosed>())
}

/// Writes `text` to standard output and flushes it.
///
/// # Errors
/// [`stdout_error`].
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(stdout_error)
}

/// `println!` through [`print`]: `outln!("{x}")?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::print(&format!("{}\n", format_args!($($arg)*)))
    };
}
