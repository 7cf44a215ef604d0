//! The conformance runner: runs `.data` test vectors and judges each one.
//!
//! A file goes through: read → parse ([`bpfpatch_asm::parse_data_file`]) → program
//! (`-- asm` assembled, else `-- raw`) → loader ([`LoadedProgram::load`], user options: no
//! kernel-internal forms) → optional transform ([`ConformanceOptions::transform`], whose output is
//! loaded again with [`LoadOptions::INTERNAL`], since rewritten programs may carry AX and other
//! internal forms) → run on a fresh [`Vm`] with helper 5 ([`crate::Unwind`]), r1 = the `-- mem`
//! area, r2 = its length. The first stage that fails ends the file with a [`FileError`].
//!
//! Judging ([`judge`]):
//! - A **positive** file (any file not directly inside a folder named `negative`) with
//!   `-- result` passes when it returns exactly that r0; with `-- error` it passes when it is
//!   rejected — it fails to parse or assemble, the loader rejects it, or it faults at run time
//!   (the upstream harness counts any error from the runtime). A positive file with neither
//!   section fails.
//! - A **negative** file (directly inside a folder named `negative`) is expected to fail: it
//!   passes when it fails to parse or assemble, is rejected by the loader, faults, or returns an
//!   r0 different from its `-- result` (e.g. `incorrect_return_value_high_bits.data`). It fails
//!   when it returns its `-- result`, or runs to completion although it has no `-- result`.
//! - In both, an unreadable file, a transform error or a transformed program the loader rejects
//!   is a failure: a rewrite must never break a program.
//!
//! Paths: each file given is run; each directory given contributes the `.data` files directly
//! inside it (not recursively), in name order. [`run_conformance`] reports every file to a
//! callback and returns the [`Summary`] (`N passed, M failed`).

use crate::error::{LoadError, RunError};
use crate::helpers::{UNWIND_HELPER_ID, Unwind};
use crate::interp::{Input, Vm, VmConfig};
use crate::program::LoadedProgram;
use crate::verify::LoadOptions;
use bpfpatch_asm::{DataFile, DataFileError, parse_data_file};
use bpfpatch_insn::Insn;
use core::fmt;
use std::path::{Path, PathBuf};

/// A program rewrite applied before running (e.g. `--passes LIST [--blind]`): the loaded
/// program's slots in, the rewritten slots out, or a message.
pub type Transform<'a> = &'a dyn Fn(&[Insn]) -> Result<Vec<Insn>, String>;

/// Options of the runner. Construct with `ConformanceOptions::default()` and set fields.
#[derive(Clone, Copy, Default)]
#[non_exhaustive]
pub struct ConformanceOptions<'a> {
    /// Rewrite applied to each program after the loader accepted it; the result is loaded with
    /// kernel-internal forms allowed and must behave the same.
    pub transform: Option<Transform<'a>>,
    /// Limits of the interpreter.
    pub vm: VmConfig,
    /// Load with the Linux profile ([`LoadOptions::linux`]): the verdicts of the running kernel,
    /// which rejects constant shifts out of range and `callx`.
    pub linux: bool,
}

impl fmt::Debug for ConformanceOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConformanceOptions")
            .field("transform", &self.transform.map(|_| "<fn>"))
            .field("vm", &self.vm)
            .field("linux", &self.linux)
            .finish()
    }
}

impl<'a> ConformanceOptions<'a> {
    /// These options with a transform.
    #[must_use]
    pub fn with_transform(mut self, transform: Transform<'a>) -> Self {
        self.transform = Some(transform);
        self
    }

    /// These options with the Linux loader profile on or off.
    #[must_use]
    pub fn with_linux(mut self, linux: bool) -> Self {
        self.linux = linux;
        self
    }

    /// These options with another interpreter configuration.
    #[must_use]
    pub fn with_vm(mut self, vm: VmConfig) -> Self {
        self.vm = vm;
        self
    }
}

/// Why a `.data` file did not run to completion.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(String),
    /// The file does not parse, its `-- asm` does not assemble, or it has no program.
    #[error("rejected by the parser: {0}")]
    Parse(DataFileError),
    /// The loader rejected the program.
    #[error("rejected by the loader: {0}")]
    Load(LoadError),
    /// The transform failed.
    #[error("transform failed: {0}")]
    Transform(String),
    /// The loader rejected the transformed program.
    #[error("transformed program rejected by the loader: {0}")]
    TransformedLoad(LoadError),
    /// The program faulted.
    #[error("fault at run time: {0}")]
    Run(RunError),
    /// The interpreter configuration is invalid.
    #[error("{0}")]
    Config(crate::error::ConfigError),
}

// The inner errors are part of the message, not `source()`s, so that error-chain printers
// (anyhow's `{:#}`) do not repeat them.
impl From<DataFileError> for FileError {
    fn from(e: DataFileError) -> Self {
        FileError::Parse(e)
    }
}

impl From<LoadError> for FileError {
    fn from(e: LoadError) -> Self {
        FileError::Load(e)
    }
}

impl From<RunError> for FileError {
    fn from(e: RunError) -> Self {
        FileError::Run(e)
    }
}

impl From<crate::error::ConfigError> for FileError {
    fn from(e: crate::error::ConfigError) -> Self {
        FileError::Config(e)
    }
}

impl FileError {
    /// Whether this counts as the program being rejected (parser, loader, run-time fault), as
    /// opposed to a failure of the harness or of the transform.
    #[must_use]
    pub fn is_rejection(&self) -> bool {
        matches!(self, FileError::Parse(_) | FileError::Load(_) | FileError::Run(_))
    }
}

/// What a file's sections say should happen.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Expectation {
    /// `-- result`: r0 at exit.
    Returns(u64),
    /// `-- error`: the program must be rejected.
    Rejected,
    /// Neither section (or the file could not be parsed).
    Unspecified,
}

impl Expectation {
    fn of(df: &DataFile) -> Expectation {
        match (df.error.is_some(), df.result) {
            (true, _) => Expectation::Rejected,
            (false, Some(v)) => Expectation::Returns(v),
            (false, None) => Expectation::Unspecified,
        }
    }
}

/// Whether a file passed, and if not why.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Status {
    /// As expected.
    Passed,
    /// Not as expected; the reason.
    Failed(String),
}

/// The outcome of one file.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FileOutcome {
    /// The file.
    pub path: PathBuf,
    /// Whether it is a negative vector (directly inside a folder named `negative`).
    pub negative: bool,
    /// What its sections expect.
    pub expected: Expectation,
    /// What happened: r0, or the stage that stopped it.
    pub observed: Result<u64, FileError>,
    /// The verdict.
    pub status: Status,
}

impl FileOutcome {
    /// Whether the file passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }
}

impl fmt::Display for FileOutcome {
    /// `PASS path` or `FAIL path: reason`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.status {
            Status::Passed => write!(f, "PASS {}", self.path.display()),
            Status::Failed(why) => write!(f, "FAIL {}: {why}", self.path.display()),
        }
    }
}

/// Counts of a conformance run.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Summary {
    /// Files that passed.
    pub passed: usize,
    /// Files that failed.
    pub failed: usize,
}

impl Summary {
    /// Whether nothing failed (the command's exit status is 0 exactly then).
    #[must_use]
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

impl fmt::Display for Summary {
    /// `N passed, M failed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

/// Whether `path` is a negative vector: its parent folder is named `negative`.
#[must_use]
pub fn is_negative(path: &Path) -> bool {
    path.parent().and_then(Path::file_name).is_some_and(|n| n == "negative")
}

/// Judges a file from what its sections expect and what happened.
#[must_use]
pub fn judge(negative: bool, expected: Expectation, observed: &Result<u64, FileError>) -> Status {
    let fail = |s: String| Status::Failed(s);
    match observed {
        Err(e) if !e.is_rejection() => fail(e.to_string()),
        Err(e) => match (negative, expected) {
            (true, _) | (false, Expectation::Rejected) => Status::Passed,
            (false, _) => fail(e.to_string()),
        },
        Ok(r0) => match (negative, expected) {
            (false, Expectation::Returns(want)) if *r0 == want => Status::Passed,
            (false, Expectation::Returns(want)) => fail(format!("expected r0 = {want:#x}, got {r0:#x}")),
            (true, Expectation::Returns(want)) if *r0 != want => Status::Passed,
            (true, Expectation::Returns(_)) => {
                fail(format!("negative vector returned its `-- result` {r0:#x}; it must not run correctly"))
            }
            (_, Expectation::Rejected) => fail(format!("expected rejection, but the program returned {r0:#x}")),
            (_, Expectation::Unspecified) => {
                fail(format!("no `-- result` or `-- error` to check against (returned {r0:#x})"))
            }
        },
    }
}

/// Runs a parsed vector: load, transform, run. r0 or the stage that stopped it.
///
/// # Errors
/// The first failing stage.
pub fn run_parsed(df: &DataFile, opts: &ConformanceOptions<'_>) -> Result<u64, FileError> {
    let slots = df.program()?;
    let mut prog = LoadedProgram::load(&slots, &LoadOptions::default().with_linux(opts.linux))?;
    if let Some(transform) = opts.transform {
        let rewritten = transform(&slots).map_err(FileError::Transform)?;
        prog = LoadedProgram::load(&rewritten, &LoadOptions::INTERNAL.with_linux(opts.linux))
            .map_err(FileError::TransformedLoad)?;
    }
    let mut vm = Vm::new(opts.vm)?;
    vm.register_helper(UNWIND_HELPER_ID, Unwind);
    let mut mem = df.mem.clone();
    Ok(vm.run(&prog, Input::mem(&mut mem))?.r0)
}

fn read(path: &Path) -> Result<DataFile, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError::Io(format!("{}: {e}", path.display())))?;
    Ok(parse_data_file(&text)?)
}

/// Runs one `.data` file (the `bpfpatch run FILE.data` command): r0 at exit.
///
/// # Errors
/// The stage that stopped it: unreadable, unparsable, rejected by the loader, transform
/// failure, or a run-time fault.
pub fn run_data_file(path: &Path, opts: &ConformanceOptions<'_>) -> Result<u64, FileError> {
    run_parsed(&read(path)?, opts)
}

/// Runs and judges one file.
#[must_use]
pub fn check_file(path: &Path, opts: &ConformanceOptions<'_>) -> FileOutcome {
    let negative = is_negative(path);
    let (expected, observed) = match read(path) {
        Ok(df) => (Expectation::of(&df), run_parsed(&df, opts)),
        Err(e) => (Expectation::Unspecified, Err(e)),
    };
    let status = judge(negative, expected, &observed);
    FileOutcome { path: path.to_path_buf(), negative, expected, observed, status }
}

/// The files to run for `paths`: files as given, directories expanded to the `.data` files
/// directly inside them, in name order. Unreadable directories and missing paths are kept as
/// they are, so that running them reports the error.
#[must_use]
pub fn collect_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(entries) => {
                    let mut files: Vec<PathBuf> = entries
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "data"))
                        .collect();
                    files.sort();
                    out.extend(files);
                }
                Err(_) => out.push(p.clone()),
            }
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// Runs every file of `paths` (see [`collect_files`]), reports each outcome to `on_result`,
/// and returns the counts.
pub fn run_conformance(
    paths: &[PathBuf],
    opts: &ConformanceOptions<'_>,
    mut on_result: impl FnMut(&FileOutcome),
) -> Summary {
    let mut summary = Summary::default();
    for file in collect_files(paths) {
        let outcome = check_file(&file, opts);
        if outcome.passed() {
            summary.passed += 1;
        } else {
            summary.failed += 1;
        }
        on_result(&outcome);
    }
    summary
}

/// The `bpfpatch conformance PATH...` command body: runs the files, writes one `FAIL` line per
/// failure and then the line `N passed, M failed` to `out`. The command exits 0 exactly when
/// [`Summary::ok`].
///
/// # Errors
/// An error writing to `out`.
pub fn conformance_report(
    paths: &[PathBuf],
    opts: &ConformanceOptions<'_>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<Summary> {
    let mut write_err = Ok(());
    let summary = run_conformance(paths, opts, |o| {
        if !o.passed() && write_err.is_ok() {
            write_err = writeln!(out, "{o}");
        }
    });
    write_err?;
    writeln!(out, "{summary}")?;
    Ok(summary)
}
