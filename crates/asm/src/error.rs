//! Assembler errors: every rejection names the 1-based source line and what is wrong.

/// An assembly error: the 1-based line of the source text and what is wrong with it.
///
/// The line is relative to the text given to the assembler; [`crate::datafile::DataFile::program`]
/// rebases it onto the `.data` file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct AsmError {
    /// 1-based line number in the assembled text.
    pub line: usize,
    /// What is wrong.
    pub kind: AsmErrorKind,
}

impl AsmError {
    /// An error on `line`.
    #[must_use]
    pub fn new(line: usize, kind: AsmErrorKind) -> AsmError {
        AsmError { line, kind }
    }
}

/// What is wrong with one source line.
///
/// Messages start with the phrases the conformance suite's negative vectors name
/// ("Invalid register", "Invalid mnemonic", "Invalid number of operands for ...", "Invalid label").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AsmErrorKind {
    /// The mnemonic names no instruction.
    #[error("Invalid mnemonic: {0}")]
    InvalidMnemonic(String),
    /// A register operand is not `r0`..`r10` (or is not a register at all).
    #[error("Invalid register: {0}")]
    InvalidRegister(String),
    /// The instruction has the wrong number of operands.
    #[error("Invalid number of operands for {mnemonic}: expected {expected}, found {found}")]
    OperandCount {
        /// The mnemonic (`lock` for an atomic without its operation).
        mnemonic: String,
        /// How many it takes.
        expected: usize,
        /// How many were given.
        found: usize,
    },
    /// A memory operand is not of the form the syntax requires.
    #[error("Invalid memory operand {text:?}: expected {expected}")]
    BadMemoryOperand {
        /// The operand as written.
        text: String,
        /// The accepted forms.
        expected: &'static str,
    },
    /// A token that should be a number is not one.
    #[error("Invalid number {0:?}")]
    BadNumber(String),
    /// A number does not fit the field it is written to.
    #[error("{what} {text:?} out of range ({min}..={max})")]
    OutOfRange {
        /// The field ("immediate", "offset", "jump offset", ...).
        what: &'static str,
        /// The number as written.
        text: String,
        /// Smallest accepted value.
        min: i128,
        /// Largest accepted value.
        max: i128,
    },
    /// A jump or call names a label that is not defined.
    #[error("Invalid label: {0}")]
    UndefinedLabel(String),
    /// A label is defined twice.
    #[error("Duplicate label {label} (first defined on line {first_line})")]
    DuplicateLabel {
        /// The label.
        label: String,
        /// Where it was first defined.
        first_line: usize,
    },
    /// A label is too far away for the field that must hold the distance.
    #[error("Jump to {label} is {delta} slots away, out of the {what} range")]
    TargetOutOfRange {
        /// The label.
        label: String,
        /// The distance in slots (`target - pc - 1`).
        delta: i64,
        /// The field ("16-bit offset", "32-bit immediate").
        what: &'static str,
    },
    /// An operand has the wrong shape for its position.
    #[error("Invalid operand {text:?}: expected {expected}")]
    BadOperand {
        /// The operand as written.
        text: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// The line does not follow the syntax.
    #[error("Syntax error: {0}")]
    Syntax(String),
}
