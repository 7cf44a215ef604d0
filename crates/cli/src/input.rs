//! Reading a program from the command line: a conformance `.data` file, a raw instruction
//! image (`--raw`, optionally `--big-endian`), or (where a command supports it) an ELF object.

use anyhow::{Context, Result, bail};
use bpfpatch_insn::{Endian, Insn, slots_from_bytes};
use bpfpatch_object::BpfObject;
use std::path::{Path, PathBuf};

/// Options shared by every command that reads one program.
#[derive(Debug, Clone, clap::Args)]
pub struct ProgramArgs {
    /// The program: a conformance `.data` file, an ELF object, or with `--raw` a bare image.
    pub file: PathBuf,
    /// Read FILE as a bare instruction image (8-byte slots, no header).
    #[arg(long)]
    pub raw: bool,
    /// With `--raw`: the image is big-endian.
    #[arg(long, requires = "raw")]
    pub big_endian: bool,
}

/// What kind of file a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bare image.
    Raw(Endian),
    /// A conformance `.data` vector.
    DataFile,
    /// An ELF object.
    Elf,
}

impl ProgramArgs {
    /// The kind of the file: `--raw` wins, then the ELF magic, then `.data` text.
    pub fn kind(&self, bytes: &[u8]) -> Kind {
        detect(self.raw, self.big_endian, bytes)
    }
}

/// The kind of a file's bytes: `raw` wins, then the ELF magic, then `.data` text.
pub fn detect(raw: bool, big_endian: bool, bytes: &[u8]) -> Kind {
    if raw {
        Kind::Raw(if big_endian { Endian::Big } else { Endian::Little })
    } else if bytes.starts_with(b"\x7fELF") {
        Kind::Elf
    } else {
        Kind::DataFile
    }
}

/// Parses an ELF object, naming the file in the error.
pub fn object(bytes: &[u8], path: &Path) -> Result<BpfObject> {
    BpfObject::parse(bytes).with_context(|| path.display().to_string())
}

/// Reads a file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Whether the file is a bare image marked xlated (its first slot is the marker of
/// [`bpfpatch_object::xlated::RAW_XLATED_MAGIC`], written by `rewrite --raw --xlated`).
pub fn raw_xlated(kind: Kind, bytes: &[u8]) -> bool {
    matches!(kind, Kind::Raw(_)) && bpfpatch_object::xlated::strip_raw_marker(bytes).is_some()
}

/// The slots of a raw image (without its xlated marker, see [`raw_xlated`]) or a `.data` file
/// (`-- asm` assembled, else `-- raw`).
pub fn program_slots(kind: Kind, bytes: &[u8], path: &Path) -> Result<Vec<Insn>> {
    match kind {
        Kind::Raw(endian) => {
            let image = bpfpatch_object::xlated::strip_raw_marker(bytes).unwrap_or(bytes);
            Ok(slots_from_bytes(image, endian).with_context(|| path.display().to_string())?)
        }
        Kind::DataFile => {
            let text = std::str::from_utf8(bytes)
                .with_context(|| format!("{}: not UTF-8 text; use --raw for a bare image", path.display()))?;
            let df = bpfpatch_asm::parse_data_file(text).with_context(|| path.display().to_string())?;
            Ok(df.program().with_context(|| path.display().to_string())?)
        }
        Kind::Elf => bail!("{}: ELF objects are not supported by this command", path.display()),
    }
}
