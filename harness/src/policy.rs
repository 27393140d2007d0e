//! The policy engine: from the policy layers of a scenario to what each check must observe.
//!
//! Pure: no I/O beyond reading an .rdp file a scenario names. The rules (Microsoft's audio
//! redirection documentation, summarised in DESIGN.md):
//!
//! - Each product has defaults. Azure Virtual Desktop: Windows blocks nothing, the host pool
//!   plays sound on the local computer (`audiomode:i:0`) and leaves microphone redirection
//!   not configured (off). Windows 365 and Dev Box: playback and recording redirection on,
//!   no host pool properties. Remote Desktop Services: the RDP defaults (play locally,
//!   microphone off).
//! - The most restrictive layer wins: a session host policy that disables a redirection
//!   beats RDP properties that enable it, and so does a client device that disables its
//!   microphone.
//! - `LetAppsAccessMicrophone = 2` (force deny) leaves the redirection in place but denies
//!   apps the microphone.
//!
//! Every decision carries its trail: each layer's say, and which layer decided.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::scenario::{CaptureExpect, OutputExpect, Product, Scenario, Toggle};

/// A policy input that cannot be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// An RDP property that is not `name:type:value`, or whose value is invalid.
    #[error("RDP property `{property}`: {message}")]
    Property {
        /// The property as written.
        property: String,
        /// What is wrong and what was expected.
        message: String,
    },
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// One line per property that was kept but ignored.
    pub warnings: Vec<String>,
}

/// The properties the engine reads, with their valid integer values.
const KNOWN: &[(&str, &[i64])] = &[
    ("audiomode", &[0, 1, 2]),
    ("audiocapturemode", &[0, 1]),
    ("audioqualitymode", &[0, 1, 2]),
];

/// Parses RDP properties as admins paste them (`audiomode:i:0;audiocapturemode:i:1`) or
/// as lines of an .rdp file. Unknown properties are kept with a warning; malformed ones,
/// and known ones with values outside their range, are errors naming the property.
///
/// # Errors
/// [`PolicyError::Property`].
pub fn parse_rdp_properties(text: &str) -> Result<RdpProperties, PolicyError> {
    let mut out = RdpProperties::default();
    // An .rdp file saved by Windows is UTF-16 with a BOM; pasted text may have one too.
    let text = text.trim_start_matches('\u{feff}');
    for raw in text.split([';', '\n', '\r']) {
        let item = raw.trim();
        if item.is_empty() {
            continue;
        }
        let bad = |message: &str| PolicyError::Property {
            property: item.to_string(),
            message: message.to_string(),
        };
        let mut parts = item.splitn(3, ':');
        let (Some(name), Some(kind), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
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
                RdpValue::Int(v) if allowed.contains(v) => {}
                _ => {
                    return Err(bad(&format!(
                        "expected type `i` with one of {}",
                        allowed
                            .iter()
                            .map(i64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            },
            None => out.warnings.push(format!(
                "RDP property `{item}` is not about audio redirection: kept and ignored"
            )),
        }
        if out.values.insert(name.clone(), value).is_some() {
            out.warnings.push(format!(
                "RDP property `{name}` is given more than once: the last one counts"
            ));
        }
    }
    Ok(out)
}

/// Audio playback quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// Dynamic (bandwidth dependent).
    Dynamic,
    /// Medium.
    Medium,
    /// High (uncompressed).
    High,
}

/// One value the engine settled on, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision<T> {
    /// The result.
    pub value: T,
    /// The layer and setting that decided, e.g. "session host policy fDisableCam=1".
    pub decided_by: String,
    /// What every layer said, in order.
    pub trail: Vec<String>,
}

/// What the checks must observe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expectation {
    /// Where output goes.
    pub output: Decision<OutputExpect>,
    /// Whether the microphone reaches the session.
    pub capture: Decision<CaptureExpect>,
    /// Resulting playback quality (reported, not yet checked).
    pub quality: Decision<Quality>,
    /// Ignored inputs and other notes.
    pub warnings: Vec<String>,
    /// Reminders that apply to every rollout.
    pub notes: Vec<String>,
}

/// Rank for "most restrictive": a larger value restricts more.
fn output_rank(o: OutputExpect) -> u8 {
    match o {
        OutputExpect::Client => 0,
        OutputExpect::Session => 1,
        OutputExpect::None => 2,
    }
}

fn output_words(o: OutputExpect) -> &'static str {
    match o {
        OutputExpect::Client => "redirected to the client",
        OutputExpect::Session => "played on the session host",
        OutputExpect::None => "not played",
    }
}

/// The RDP properties of a scenario (inline or from its file), or none.
///
/// # Errors
/// [`PolicyError`] for an unreadable file or a malformed property.
pub fn rdp_of(scenario: &Scenario) -> Result<Option<RdpProperties>, PolicyError> {
    let Some(layer) = &scenario.policy.rdp else {
        return Ok(None);
    };
    let text = match (&layer.properties, &layer.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            let path = scenario.resolve(f);
            let bytes = std::fs::read(&path).map_err(|e| PolicyError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            decode_rdp_file(&bytes)
        }
        (None, None) => return Ok(None),
    };
    parse_rdp_properties(&text).map(Some)
}

/// .rdp files are UTF-16LE with a BOM when saved by Windows, else UTF-8.
fn decode_rdp_file(bytes: &[u8]) -> String {
    if bytes.starts_with(&[0xff, 0xfe]) {
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// Works out the expectation of `scenario`.
///
/// # Errors
/// [`PolicyError`] for unusable RDP properties.
pub fn expect(scenario: &Scenario) -> Result<Expectation, PolicyError> {
    let rdp = rdp_of(scenario)?;
    let mut e = evaluate(scenario, rdp.as_ref());
    if let Some(o) = &scenario.expect {
        let why = o
            .reason
            .clone()
            .unwrap_or_else(|| "the scenario's [expect] section".into());
        if let Some(v) = o.output {
            e.output.trail.push(format!(
                "overridden by [expect]: output {} ({why})",
                output_words(v)
            ));
            e.output.value = v;
            e.output.decided_by = format!("[expect] in the scenario: {why}");
        }
        if let Some(v) = o.capture {
            e.capture
                .trail
                .push(format!("overridden by [expect]: capture {v:?} ({why})"));
            e.capture.value = v;
            e.capture.decided_by = format!("[expect] in the scenario: {why}");
        }
    }
    Ok(e)
}

/// The engine proper, on already parsed RDP properties.
pub fn evaluate(scenario: &Scenario, rdp: Option<&RdpProperties>) -> Expectation {
    let product = scenario.product;
    let host = &scenario.policy.session_host;
    let int = |name: &str| match rdp.and_then(|r| r.values.get(name)) {
        Some(RdpValue::Int(v)) => Some(*v),
        _ => None,
    };
    let rdp_layer = match product {
        Product::Avd => "host pool RDP property",
        _ => "RDP property",
    };

    // Output: each layer proposes; the most restrictive proposal wins, the first layer
    // proposing it is named.
    let mut proposals: Vec<(OutputExpect, String)> = Vec::new();
    let mut trail = Vec::new();
    match host.f_disable_cam {
        Some(f) if f.0 == 1 => {
            proposals.push((
                OutputExpect::None,
                "session host policy fDisableCam=1".into(),
            ));
            trail.push(
                "session host policy fDisableCam=1: audio and video playback redirection is \
                 disabled"
                    .into(),
            );
        }
        Some(_) => {
            trail.push("session host policy fDisableCam=0: playback redirection allowed".into())
        }
        None => trail.push(format!(
            "session host policy fDisableCam not configured: {product} does not block playback \
             redirection"
        )),
    }
    match (product, int("audiomode")) {
        (Product::Windows365 | Product::Devbox, _) => {
            proposals.push((OutputExpect::Client, format!("{product} default")));
            trail.push(format!(
                "{product} default: playback redirection enabled (no host pool properties)"
            ));
        }
        (_, Some(m)) => {
            let v = match m {
                0 => OutputExpect::Client,
                1 => OutputExpect::Session,
                _ => OutputExpect::None,
            };
            proposals.push((v, format!("{rdp_layer} audiomode:i:{m}")));
            trail.push(format!("{rdp_layer} audiomode:i:{m}: {}", output_words(v)));
        }
        (_, None) => {
            proposals.push((
                OutputExpect::Client,
                format!("{product} default audiomode:i:0"),
            ));
            trail.push(format!(
                "{rdp_layer} audiomode not configured: the default plays sound on the local \
                 computer"
            ));
        }
    }
    let (out_value, out_by) = most_restrictive(proposals);
    let output = Decision {
        value: out_value,
        decided_by: out_by,
        trail,
    };

    // Capture: blocked if any layer blocks.
    let mut blockers: Vec<String> = Vec::new();
    let mut enabler: Option<String> = None;
    let mut trail = Vec::new();
    match host.f_disable_audio_capture {
        Some(f) if f.0 == 1 => {
            blockers.push("session host policy fDisableAudioCapture=1".into());
            trail.push(
                "session host policy fDisableAudioCapture=1: audio recording redirection is \
                 disabled"
                    .into(),
            );
        }
        Some(_) => trail.push(
            "session host policy fDisableAudioCapture=0: recording redirection allowed".into(),
        ),
        None => trail.push(format!(
            "session host policy fDisableAudioCapture not configured: {product} does not block \
             recording redirection"
        )),
    }
    match (product, int("audiocapturemode")) {
        (Product::Windows365 | Product::Devbox, _) => {
            enabler = Some(format!("{product} default"));
            trail.push(format!("{product} default: recording redirection enabled"));
        }
        (_, Some(1)) => {
            enabler = Some(format!("{rdp_layer} audiocapturemode:i:1"));
            trail.push(format!(
                "{rdp_layer} audiocapturemode:i:1: the local microphone is redirected"
            ));
        }
        (_, Some(m)) => {
            blockers.push(format!("{rdp_layer} audiocapturemode:i:{m}"));
            trail.push(format!(
                "{rdp_layer} audiocapturemode:i:{m}: microphone redirection disabled"
            ));
        }
        (_, None) => {
            blockers.push(format!(
                "{rdp_layer} audiocapturemode not configured (default 0, off)"
            ));
            trail.push(format!(
                "{rdp_layer} audiocapturemode not configured: the default does not redirect \
                 the microphone"
            ));
        }
    }
    match scenario.policy.client.microphone {
        Some(Toggle::Disabled) => {
            blockers.push("client device: audio input redirection disabled".into());
            trail.push("client device: audio input redirection disabled".into());
        }
        Some(Toggle::Enabled) => {
            trail.push("client device: audio input redirection enabled".into())
        }
        None => {}
    }
    let denied = matches!(host.let_apps_access_microphone, Some(a) if a.0 == 2);
    let capture = if let Some(first) = blockers.first() {
        if denied {
            trail.push(
                "session host privacy LetAppsAccessMicrophone=2 (force deny): moot, the \
                 microphone is not redirected"
                    .into(),
            );
        }
        Decision {
            value: CaptureExpect::Blocked,
            decided_by: first.clone(),
            trail,
        }
    } else if denied {
        trail.push(
            "session host privacy LetAppsAccessMicrophone=2: the microphone is redirected, but \
             apps are denied it"
                .into(),
        );
        Decision {
            value: CaptureExpect::RedirectedAppsDenied,
            decided_by: "session host privacy LetAppsAccessMicrophone=2".into(),
            trail,
        }
    } else {
        Decision {
            value: CaptureExpect::Redirected,
            decided_by: enabler.unwrap_or_else(|| "no layer blocks it".into()),
            trail,
        }
    };

    // Quality: the lower of the policy's limit and the client's request.
    let mut trail = Vec::new();
    let limit = match host.allowed_audio_quality_mode.map(|q| q.0) {
        Some(3) => Quality::Medium,
        Some(7) => Quality::High,
        Some(_) | None => Quality::Dynamic,
    };
    trail.push(format!(
        "session host policy AllowedAudioQualityMode: limit {}",
        format!("{limit:?}").to_lowercase()
    ));
    let asked = match int("audioqualitymode") {
        Some(1) => Quality::Medium,
        Some(2) => Quality::High,
        _ => Quality::Dynamic,
    };
    trail.push(format!(
        "{rdp_layer} audioqualitymode: asks {}",
        format!("{asked:?}").to_lowercase()
    ));
    let unset = host.allowed_audio_quality_mode.is_none() && int("audioqualitymode").is_none();
    let quality = Decision {
        value: limit.min(asked),
        decided_by: if unset {
            "the defaults (dynamic)".into()
        } else if limit < asked {
            "session host policy AllowedAudioQualityMode".into()
        } else {
            format!("{rdp_layer} audioqualitymode")
        },
        trail,
    };

    Expectation {
        output,
        capture,
        quality,
        warnings: rdp.map(|r| r.warnings.clone()).unwrap_or_default(),
        notes: vec![
            "policy takes effect after the session host restarts".into(),
            "Teams and multimedia redirection bypass these settings: keep them out of the test \
             path"
                .into(),
        ],
    }
}

/// The most restrictive proposal; the earliest layer wins a tie (it is listed first).
fn most_restrictive(proposals: Vec<(OutputExpect, String)>) -> (OutputExpect, String) {
    proposals
        .into_iter()
        .reduce(|best, p| {
            if output_rank(p.0) > output_rank(best.0) {
                p
            } else {
                best
            }
        })
        .unwrap_or((OutputExpect::Client, "the RDP default".into()))
}

#[cfg(test)]
mod tests;
