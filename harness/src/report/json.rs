//! The JSON report: the whole [`Run`], rewritten after every event.

use std::path::PathBuf;

use super::{write_atomically, Event, ReportError, Reporter, Run};

/// The JSON Schema of the report (draft 2020-12), generated from the types.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Run);
    serde_json::to_value(schema).unwrap_or_default()
}

/// The JSON report, rewritten after every event.
pub struct JsonReporter {
    path: PathBuf,
}

impl JsonReporter {
    /// Writes to `path`.
    pub fn new(path: PathBuf) -> JsonReporter {
        JsonReporter { path }
    }
}

impl Reporter for JsonReporter {
    fn event(&mut self, _event: &Event, run: &Run) -> Result<(), ReportError> {
        let text = serde_json::to_vec_pretty(run).map_err(|e| ReportError::Render {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        write_atomically(&self.path, &text)
    }
}
