//! What can go wrong importing a policy file, and where in the file.

/// Where in an imported file something is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The 8-byte header of a Registry.pol.
    Header,
    /// A Registry.pol entry: its 1-based number and the byte offset where it starts.
    Entry {
        /// 1-based, in file order.
        index: usize,
        /// Offset of its `[` from the start of the file.
        offset: usize,
    },
    /// A 1-based line of a text file (.reg, JSON).
    Line(usize),
}

impl Place {
    /// Without the byte offset: `entry 3`, `line 12`.
    pub fn short(&self) -> String {
        match self {
            Place::Entry { index, .. } => format!("entry {index}"),
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Header => f.write_str("header"),
            Place::Entry { index, offset } => write!(f, "entry {index} (byte offset {offset})"),
            Place::Line(n) => write!(f, "line {n}"),
        }
    }
}

/// A policy file that cannot be imported. Every variant names the file; the message says
/// what was found and what was expected.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    /// The file could not be read.
    #[error("{file}: cannot read it: {message}")]
    Read {
        /// The file.
        file: String,
        /// Why (the I/O error, printed once).
        message: String,
    },
    /// The file as a whole is not what was expected (not a Registry.pol or .reg export,
    /// not text, not JSON of a host pool).
    #[error("{file}: {message}")]
    Format {
        /// The file.
        file: String,
        /// What it is not, and what it should be.
        message: String,
    },
    /// A part of the file is malformed, or holds a value earshot cannot use.
    #[error("{file}: {place}: {message}")]
    Malformed {
        /// The file.
        file: String,
        /// The entry or line.
        place: Place,
        /// What was found and what was expected.
        message: String,
    },
}

/// A parser's error before the file is named: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The entry or line.
    pub place: Place,
    /// What was found and what was expected.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(place: Place, message: impl Into<String>) -> ParseError {
        ParseError {
            place,
            message: message.into(),
        }
    }

    /// This error, in `file`.
    pub fn in_file(self, file: &str) -> ImportError {
        ImportError::Malformed {
            file: file.to_string(),
            place: self.place,
            message: self.message,
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}
