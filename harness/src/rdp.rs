//! RDP properties (`name:type:value`, as an .rdp file, a host pool's
//! `customRdpProperty` or a scenario's `[policy.rdp] properties` give them): parsed and
//! checked, every malformed or misspelt audio property named with where it is.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A policy input that cannot be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// An RDP property that is not `name:type:value`, or whose value is invalid.
    #[error("{location}: RDP property `{property}`: {message}")]
    Property {
        /// Where: `FILE.rdp:LINE`, or the scenario key holding the properties.
        location: String,
        /// The property as written.
        property: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The host pool JSON could not be used (the error names the file).
    #[error("{0}")]
    HostPool(crate::import::ImportError),
    /// The .rdp file could not be read.
    #[error("{path}: cannot read the .rdp file: {message}")]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// A typed RDP property value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RdpValue {
    /// `i:` integer.
    Int(i64),
    /// `s:` string (also `b:` binary, kept as text).
    Text(String),
}

/// Parsed RDP properties, plus warnings for the ones the engine does not use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RdpProperties {
    /// By lower-case name.
    pub values: BTreeMap<String, RdpValue>,
    /// What deserves a second look (a property given twice).
    pub warnings: Vec<String>,
    /// Properties that are not about audio redirection, as given: kept and ignored,
    /// reported in one line.
    pub ignored: Vec<String>,
}

impl RdpProperties {
    /// The ignored properties in one line, if any.
    pub fn ignored_line(&self) -> Option<String> {
        const SHOWN: usize = 6;
        if self.ignored.is_empty() {
            return None;
        }
        let more = self.ignored.len().saturating_sub(SHOWN);
        let mut names: Vec<&str> = self
            .ignored
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect();
        let more = if more > 0 {
            names.push("...");
            format!(" ({more} more)")
        } else {
            String::new()
        };
        Some(format!(
            "{} RDP propert{} not about audio redirection, ignored: {}{more}",
            self.ignored.len(),
            if self.ignored.len() == 1 { "y" } else { "ies" },
            names.join(", ")
        ))
    }
}

/// The properties the engine reads, with their valid integer values and what they mean.
const KNOWN: &[(&str, &[(i64, &str)])] = &[
    (
        "audiomode",
        &[
            (0, "play on this computer"),
            (1, "play on the remote computer"),
            (2, "do not play"),
        ],
    ),
    (
        "audiocapturemode",
        &[
            (0, "do not record from this computer"),
            (1, "record from this computer"),
        ],
    ),
    (
        "audioqualitymode",
        &[(0, "dynamic"), (1, "medium"), (2, "high")],
    ),
];

/// The number of single-character edits that turn `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The audio property `name` is probably a misspelling of.
fn misspelt_audio_property(name: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .map(|(k, _)| *k)
        .find(|k| *k != name && edit_distance(name, k) <= 2)
}

/// Parses RDP properties as admins paste them (`audiomode:i:0;audiocapturemode:i:1`) or
/// as lines of an .rdp file. Unknown properties are kept with a warning; malformed ones,
/// known ones with values outside their range, and misspellings of an audio property are
/// errors naming the property and where it is.
///
/// # Errors
/// [`PolicyError::Property`].
pub fn parse_rdp_properties(text: &str) -> Result<RdpProperties, PolicyError> {
    parse_rdp_at(text, &|_| "RDP properties".to_string())
}

/// As [`parse_rdp_properties`], naming each item's place with `at(line)` (1-based line of
/// the text).
/// Every malformed property of `text` (inline properties), each in words; empty when all
/// are usable. [`parse_rdp_properties`] stops at the first.
pub fn property_errors(text: &str) -> Vec<String> {
    let mut scratch = RdpProperties::default();
    text.trim_start_matches('\u{feff}')
        .lines()
        .flat_map(|line| line.split(';'))
        .filter_map(|raw| {
            parse_item(raw.trim(), "policy.rdp.properties", &mut scratch)
                .err()
                .map(|e| match e {
                    PolicyError::Property {
                        property, message, ..
                    } => format!("RDP property `{property}`: {message}"),
                    other => other.to_string(),
                })
        })
        .collect()
}

pub(crate) fn parse_rdp_at(
    text: &str,
    at: &dyn Fn(usize) -> String,
) -> Result<RdpProperties, PolicyError> {
    let mut out = RdpProperties::default();
    let text = text.trim_start_matches('\u{feff}');
    for (line_no, line) in text.lines().enumerate() {
        for raw in line.split(';') {
            parse_item(raw.trim(), &at(line_no + 1), &mut out)?;
        }
    }
    Ok(out)
}

fn parse_item(item: &str, location: &str, out: &mut RdpProperties) -> Result<(), PolicyError> {
    if item.is_empty() {
        return Ok(());
    }
    let bad = |message: &str| PolicyError::Property {
        location: location.to_string(),
        property: item.to_string(),
        message: message.to_string(),
    };
    let mut parts = item.splitn(3, ':');
    let (Some(name), Some(kind), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("expected `name:type:value`, e.g. `audiomode:i:0`"));
    };
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(bad("the name is empty: expected `name:type:value`"));
    }
    let value = match kind.trim() {
        "i" => RdpValue::Int(value.trim().parse().map_err(|_| {
            bad(&format!(
                "`{}` is not an integer, as type `i` requires",
                value.trim()
            ))
        })?),
        "s" | "b" => RdpValue::Text(value.to_string()),
        other => {
            return Err(bad(&format!(
                "unknown type `{other}`: expected `i` (integer), `s` (string) or `b` (binary)"
            )))
        }
    };
    match KNOWN.iter().find(|(k, _)| *k == name) {
        Some((_, allowed)) => match &value {
            RdpValue::Int(v) if allowed.iter().any(|(a, _)| a == v) => {}
            _ => {
                let meanings: Vec<String> =
                    allowed.iter().map(|(v, m)| format!("{v} ({m})")).collect();
                return Err(bad(&format!(
                    "expected `{name}:i:N` with N one of {}",
                    meanings.join(", ")
                )));
            }
        },
        None => {
            if let Some(k) = misspelt_audio_property(&name) {
                return Err(bad(&format!(
                    "`{name}` is not an RDP property; did you mean `{k}`?"
                )));
            }
            out.ignored.push(name.clone());
        }
    }
    if out.values.insert(name.clone(), value).is_some() {
        out.warnings.push(format!(
            "RDP property `{name}` is given more than once: the last one counts"
        ));
    }
    Ok(())
}
