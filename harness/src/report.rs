//! Reports: the runner emits [`Event`]s; reporters turn them into a terminal table, a JSON
//! document, a JUnit XML file and a self-contained HTML page. The runner never formats.
//!
//! The file reporters rewrite their whole file after every event (to a temporary file,
//! then renamed over the old one), so a crash or a kill loses nothing already measured.
//! The JSON format is described by a JSON Schema generated from these types
//! ([`json_schema`], committed as `docs/report.schema.json`).

mod events;
pub(crate) mod html;
mod json;
mod junit;
pub mod merge;
pub mod records;
mod terminal;

pub use events::{
    CheckRecord, Event, Interruption, ProbeSummary, Run, ScenarioRecord, Tally, SCHEMA_VERSION,
};
pub use html::{render as html_report, HtmlReporter};
pub use json::{json_schema, JsonReporter};
pub use junit::{junit_xml, JunitReporter};
pub use records::{ndjson, prometheus, RenderedReporter};
pub use terminal::{closing, expectation_text, summary_table, TerminalReporter};

use std::io::Write;
use std::path::{Path, PathBuf};

/// A report that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing the file failed.
    #[error("cannot write the report {}: {error}", path.display())]
    Write {
        /// The report file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Rendering failed.
    #[error("cannot render the report {}: {message}", path.display())]
    Render {
        /// The report file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The terminal went away (a closed pipe): the caller stops writing to it.
    #[error("standard output is closed")]
    Closed,
    /// Writing to the terminal failed otherwise.
    #[error("cannot write to the terminal: {0}")]
    Terminal(std::io::Error),
}

/// Consumes events.
pub trait Reporter {
    /// Handles one event; `run` already includes it.
    ///
    /// # Errors
    /// [`ReportError`] naming the file.
    fn event(&mut self, event: &Event, run: &Run) -> Result<(), ReportError>;

    /// The run is over.
    ///
    /// # Errors
    /// [`ReportError`] naming the file.
    fn finish(&mut self, _run: &Run) -> Result<(), ReportError> {
        Ok(())
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a reader (or
/// a crash) never sees half a report.
///
/// # Errors
/// [`ReportError::Write`] naming `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let err = |error| ReportError::Write {
        path: path.to_path_buf(),
        error,
    };
    let tmp = path.with_extension("partial");
    {
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

/// Why a report cannot be written where an option says. Each names the option and the path
/// and says what to give instead.
#[derive(Debug, thiserror::Error)]
pub enum OutputPathError {
    /// The path is a folder.
    #[error("{option} {}: is a folder; give a file name, e.g. {}", path.display(), example.display())]
    IsFolder {
        /// `--json`, `--junit`, ...
        option: String,
        /// As given.
        path: PathBuf,
        /// A file name in that folder.
        example: PathBuf,
    },
    /// A path above the report is a file.
    #[error("{option} {}: {} is a file, not a folder", path.display(), file.display())]
    UnderAFile {
        /// `--json`, `--junit`, ...
        option: String,
        /// As given.
        path: PathBuf,
        /// The file in the way.
        file: PathBuf,
    },
    /// The nearest existing folder refuses a new file.
    #[error("{option} {}: cannot write in {} ({error}); give a folder you can write to", path.display(), folder.display())]
    NotWritable {
        /// `--json`, `--junit`, ...
        option: String,
        /// As given.
        path: PathBuf,
        /// The folder tried.
        folder: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The report's folder could not be made.
    #[error("{option} {}: cannot create its folder: {error}", path.display())]
    NoFolder {
        /// `--json`, `--junit`, ...
        option: String,
        /// As given.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Checks, before anything runs, that a report can be written at `path`: not a folder,
/// its folder creatable. Creates nothing: the caller makes the folder when it writes.
///
/// # Errors
/// What is wrong, naming the path and the option.
pub fn check_output_path(option: &str, path: &Path) -> Result<(), OutputPathError> {
    if path.is_dir() {
        return Err(OutputPathError::IsFolder {
            option: option.into(),
            path: path.into(),
            example: path.join(match option {
                "--junit" => "junit.xml",
                "--html" => "report.html",
                "--prom" => "earshot.prom",
                "--ndjson" => "checks.ndjson",
                "--write" => "rig.toml",
                _ => "report.json",
            }),
        });
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The nearest folder that exists: the report's own, or the one its folders will be
    // made in. Nothing is created here (a refused run leaves nothing behind); whether it
    // can be written is tried, not assumed.
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(up) => existing = up,
            None => {
                existing = Path::new(".");
                break;
            }
        }
    }
    if !existing.is_dir() {
        return Err(OutputPathError::UnderAFile {
            option: option.into(),
            path: path.into(),
            file: existing.into(),
        });
    }
    let probe = existing.join(format!(".earshot-write-test-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(error) => Err(OutputPathError::NotWritable {
            option: option.into(),
            path: path.into(),
            folder: existing.into(),
            error,
        }),
    }
}

/// Makes the folders of a report path that passed [`check_output_path`], once the run
/// is known to start.
///
/// # Errors
/// The folder that could not be made, and why.
pub fn make_output_folders(option: &str, path: &Path) -> Result<(), OutputPathError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|error| OutputPathError::NoFolder {
            option: option.into(),
            path: path.into(),
            error,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
