//! The loading stage: a scenario file is read, decoded, parsed (every TOML error in one
//! pass), its imports and its RDP layer read (the .rdp file or host pool JSON it names),
//! then validated. What comes out is the model the policy engine works on without I/O.

use std::path::Path;

use super::*;
use crate::rdp::{parse_rdp_at, PolicyError, RdpProperties};

/// Most errors one file reports at once.
const MAX_ERRORS: usize = 20;

/// The scenario in `text`, or every error the TOML stage finds in one pass: after each
/// error its line is set aside (blanked, so that line numbers stay) and the text is read
/// again, so that six mistakes are six errors of one run, not six rounds of edit and
/// rerun. A missing key found only after a line was set aside is that line's consequence
/// and not reported again. The RDP properties given inline are checked too, every one.
fn parse_collecting(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let mut errors = Vec::new();
    let mut now = text.to_string();
    let mut blanked: Vec<usize> = Vec::new();
    let outcome = loop {
        match toml::from_str::<Scenario>(&now) {
            Ok(s) => break Some(s),
            Err(e) => {
                let (line, column) = e.span().map_or((1, 1), |r| line_col(&now, r.start));
                let consequence = !blanked.is_empty() && e.message().starts_with("missing field");
                if !consequence {
                    errors.push(parse_error(text, path, line, column, e.message()));
                }
                let Some(at) = e.span().map(|r| r.start) else {
                    break None;
                };
                // Set the offending line aside; a line set aside already, a table header
                // or a consequence ends the pass.
                if consequence || errors.len() >= MAX_ERRORS || blanked.contains(&line) {
                    break None;
                }
                let start = now[..at].rfind('\n').map_or(0, |i| i + 1);
                let end = now[at..].find('\n').map_or(now.len(), |i| at + i);
                if now[start..end].trim_start().starts_with('[') {
                    break None;
                }
                now.replace_range(start..end, "");
                blanked.push(line);
            }
        }
    };
    // Every inline RDP property, with the rest: `audiomod:i:0` and `audiocapturemode:i:7`
    // are two errors.
    if !errors.is_empty() {
        if let Some(props) = toml::from_str::<toml::Table>(&now)
            .ok()
            .and_then(|t| t.get("policy").cloned())
            .and_then(|p| p.get("rdp").cloned())
            .and_then(|r| {
                r.get("properties")
                    .and_then(|v| v.as_str().map(String::from))
            })
        {
            for e in crate::rdp::property_errors(&props) {
                errors.push(ScenarioError::Invalid {
                    path: path.to_path_buf(),
                    key: "policy.rdp.properties".into(),
                    message: e,
                });
            }
        }
    }
    match (outcome, errors.len()) {
        (Some(s), 0) => Ok(s),
        (_, 1) => Err(errors.remove(0)),
        _ => Err(ScenarioError::Several {
            path: path.to_path_buf(),
            errors,
        }),
    }
}

/// One TOML error as the scenario's, at `line`:`column` of `text`, naming the line.
fn parse_error(
    text: &str,
    path: &Path,
    line: usize,
    column: usize,
    message: &str,
) -> ScenarioError {
    // The offending line names the key (and the table header names its section).
    let source = text.lines().nth(line - 1).unwrap_or("").trim();
    // A long line is cut: the error names it, it need not repeat it.
    let source: String = if source.chars().count() > 120 {
        source.chars().take(120).chain("...".chars()).collect()
    } else {
        source.to_string()
    };
    let said = explain(message.trim());
    let message = if source.is_empty() {
        said
    } else {
        format!("`{source}`: {said}")
    };
    ScenarioError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// A TOML or serde message with what to write instead: a duration's form, a number
/// without quotes, a value's expected case.
fn explain(message: &str) -> String {
    // A quoted value is cut after 60 characters: the line is named already.
    let mut out: String = message
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 && part.chars().count() > 60 {
                part.chars().take(60).chain("...".chars()).collect()
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<String>>()
        .join("`");
    if message.ends_with("expected a duration") {
        out.push_str(": write it in quotes with its unit, e.g. \"5s\", \"800ms\", \"2m\"");
    } else if message.ends_with("expected i64") || message.ends_with("expected u32") {
        out.push_str(": write the number without quotes, e.g. `fDisableCam = 1`");
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        let given = rest.split('`').next().unwrap_or("");
        let lower = given.to_lowercase();
        if lower != given && message.contains(&format!("`{lower}`")) {
            let _ = write!(out, "; values are written in lowercase: `{lower}`");
        }
    }
    out
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

impl Scenario {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the file, line and key.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::load_for(path, Purpose::Run)
    }

    /// Reads and validates `path` for `purpose`.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the file, line and key.
    pub fn load_for(path: &Path, purpose: Purpose) -> Result<Scenario, ScenarioError> {
        let bytes = crate::text::read_input(path).map_err(|error| ScenarioError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let text = crate::text::decode(&bytes).map_err(|message| ScenarioError::Encoding {
            path: path.to_path_buf(),
            message: format!("{message}; save the scenario as UTF-8 (in PowerShell: `Set-Content -Encoding utf8`)"),
        })?;
        Scenario::parse_for(&text, path, purpose)
    }

    /// Parses and validates `text` as if read from `path`.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the file, line and key.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::parse_for(text, path, Purpose::Run)
    }

    /// Parses and validates `text` as if read from `path`, for `purpose`.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the file, line and key.
    pub fn parse_for(text: &str, path: &Path, purpose: Purpose) -> Result<Scenario, ScenarioError> {
        let mut s = parse_collecting(text, path)?;
        s.path = path.to_path_buf();
        // Every error past the TOML stage at once: the import, the names, the keys that
        // do not fit together, the rig.
        let mut errors = Vec::new();
        if let Err(e) = s.import_session_host() {
            errors.push(e);
        }
        if let Err((key, message)) = s.policy.session_host.fold_display_names() {
            errors.push(s.invalid(&key, message));
        }
        s.validate(&mut errors);
        // The RDP layer is read unless its table is already wrong (several sources, or
        // none for a product that has one): its file's errors join the others.
        let rdp_table_wrong = errors.iter().any(
            |e| matches!(e, ScenarioError::Invalid { key, .. } if key.starts_with("policy.rdp")),
        );
        if !rdp_table_wrong {
            match s.read_rdp_layer() {
                Ok(rdp) => s.rdp = rdp,
                Err(error) => errors.push(ScenarioError::Rdp {
                    path: path.to_path_buf(),
                    error,
                }),
            }
        }
        if purpose != Purpose::Expect {
            s.validate_rig(text, purpose, &mut errors);
        }
        errors.truncate(MAX_ERRORS);
        match errors.len() {
            0 => Ok(s),
            1 => Err(errors.remove(0)),
            _ => Err(ScenarioError::Several {
                path: path.to_path_buf(),
                errors,
            }),
        }
    }

    /// Reads `policy.session_host.import` into the session host layer.
    fn import_session_host(&mut self) -> Result<(), ScenarioError> {
        const KEY: &str = "policy.session_host.import";
        let Some(file) = self.policy.session_host.import.clone() else {
            return Ok(());
        };
        if self.policy.session_host.from_host {
            return Err(self.invalid(
                KEY,
                "and `from_host = true` both give the whole session host layer: keep one",
            ));
        }
        let imported = crate::import::load_session_host(&self.resolve(&file)).map_err(|error| {
            ScenarioError::Import {
                path: self.path.clone(),
                key: KEY.into(),
                error,
            }
        })?;
        layers::merge_import(&mut self.policy.session_host, imported)
            .map_err(|(key, message)| self.invalid(&key, message))
    }

    /// The RDP layer's properties: inline, from its .rdp file (UTF-8 or UTF-16, as the
    /// Remote Desktop client saves it) or from a host pool's `customRdpProperty`.
    fn read_rdp_layer(&self) -> Result<Option<RdpProperties>, PolicyError> {
        let Some(layer) = &self.policy.rdp else {
            return Ok(None);
        };
        if let Some(json) = &layer.hostpool_json {
            let path = self.resolve(json);
            let pool = crate::import::load_hostpool(&path).map_err(PolicyError::HostPool)?;
            let at = format!("{}:{} customRdpProperty", path.display(), pool.line);
            return parse_rdp_at(&pool.custom_rdp_property, &|_| at.clone()).map(Some);
        }
        match (&layer.properties, &layer.file) {
            (Some(p), _) => parse_rdp_at(p, &|_| "policy.rdp.properties".to_string()).map(Some),
            (None, Some(f)) => {
                let path = self.resolve(f);
                let file = |message: String| PolicyError::File {
                    path: path.display().to_string(),
                    message,
                };
                let bytes = crate::text::read_input(&path).map_err(|e| file(e.to_string()))?;
                let text = crate::text::decode(&bytes).map_err(|m| {
                    file(format!("{m}; save it from the Remote Desktop client again"))
                })?;
                let name = path.display().to_string();
                parse_rdp_at(&text, &|line| format!("{name}:{line}")).map(Some)
            }
            (None, None) => Ok(None),
        }
    }
}
