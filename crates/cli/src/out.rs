//! Everything the command writes to standard output goes through [`print()`] (or `outln!`), so
//! that one rule holds for every subcommand: when the reader of a pipe goes away (`bpfpatch
//! disasm x.o | head -1`), the command stops at once and exits quietly with [`BROKEN_PIPE`].
//! `main` denies `print!` and `println!`, which panic there instead.
//!
//! Output files are written by [`write()`] and [`OutFile`]: replaced whole or not at all.

use anyhow::{Context, Result, bail};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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

/// `println!` through [`print()`]: `outln!("{x}")?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::print(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// An output file being written: a temporary file beside the target (in its directory, so that
/// the final rename is atomic), renamed over the target by [`OutFile::commit`] once written and
/// synced. Dropped uncommitted (an error on the way), it is removed and the target is as it was:
/// `rewrite a.o -o a.o` that fails while writing (disk full, file size limit) leaves `a.o`
/// whole. A target that is not a regular file (`/dev/null`, `/dev/stdout`, a FIFO) has nothing
/// to replace: it is written in place.
#[derive(Debug)]
pub struct OutFile {
    /// The path the user named, for messages.
    target: PathBuf,
    /// The file renamed over: the target, or the file it links to.
    real: PathBuf,
    /// The temporary file; `None` when writing in place.
    tmp: Option<PathBuf>,
    file: File,
    committed: bool,
}

impl OutFile {
    /// Creates the temporary file beside `target`: this is when an unwritable place is found.
    ///
    /// # Errors
    /// `cannot write TARGET: ...`: a missing or read-only directory, a directory as the target.
    pub fn create(target: &Path) -> Result<OutFile> {
        let cannot = || format!("cannot write {}", target.display());
        if let Ok(m) = fs::metadata(target)
            && !m.is_dir()
            && !m.is_file()
        {
            let file = OpenOptions::new().write(true).truncate(true).open(target).with_context(cannot)?;
            let target = target.to_path_buf();
            return Ok(OutFile { real: target.clone(), target, tmp: None, file, committed: false });
        }
        // Through a symbolic link the file it names is replaced, as a plain write would.
        let real = match fs::symlink_metadata(target) {
            Ok(m) if m.file_type().is_symlink() => fs::canonicalize(target).with_context(cannot)?,
            _ => target.to_path_buf(),
        };
        if real.is_dir() {
            bail!("{}: is a directory", cannot());
        }
        let Some(name) = real.file_name() else { bail!("{}: not a file name", cannot()) };
        let dir = match real.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut n = 0u32;
        loop {
            let tmp = dir.join(format!(".{}.bpfpatch-{}-{n}.tmp", name.to_string_lossy(), std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(file) => {
                    return Ok(OutFile { target: target.to_path_buf(), real, tmp: Some(tmp), file, committed: false });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => return Err(anyhow::Error::new(e).context(cannot())),
            }
        }
    }

    /// The path the file is written to (as given).
    #[cfg_attr(not(feature = "bench"), allow(dead_code))]
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The path to write to, for writers that open a path themselves: the temporary file (or
    /// the target, written in place).
    #[cfg_attr(not(feature = "bench"), allow(dead_code))]
    pub fn path(&self) -> &Path {
        self.tmp.as_deref().unwrap_or(&self.target)
    }

    /// Appends `bytes`.
    ///
    /// # Errors
    /// `cannot write TARGET: ...`.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).with_context(|| format!("cannot write {}", self.target.display()))
    }

    /// Syncs the file, gives it the target's permissions (when the target exists) and renames it
    /// over the target; returns the target's path (as given).
    ///
    /// # Errors
    /// `cannot write TARGET: ...`; the temporary file is removed and the target left as it was.
    pub fn commit(mut self) -> Result<PathBuf> {
        let cannot = || format!("cannot write {}", self.target.display());
        let Some(tmp) = self.tmp.clone() else {
            self.committed = true;
            return Ok(self.target.clone());
        };
        self.file.sync_all().with_context(cannot)?;
        if let Ok(m) = fs::metadata(&self.real) {
            fs::set_permissions(&tmp, m.permissions()).with_context(cannot)?;
        }
        fs::rename(&tmp, &self.real).with_context(cannot)?;
        self.committed = true;
        // The rename itself, durable: best effort (not every file system syncs a directory).
        if let Some(dir) = self.real.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(self.target.clone())
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if !self.committed
            && let Some(tmp) = &self.tmp
        {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Replaces `target` with `bytes` whole, or leaves it as it was (see [`OutFile`]).
///
/// # Errors
/// `cannot write TARGET: ...`.
pub fn write(target: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OutFile::create(target)?;
    f.write_all(bytes)?;
    f.commit().map(drop)
}
