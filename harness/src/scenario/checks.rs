//! The checks a scenario lists and the audio path each follows: the model. What a check
//! expects and which layer decided it is `crate::check`'s `Planned`.

use earshot_probe::audio::DeviceDirection;

/// A check the runner can make.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// Sound played in the session comes out of the client.
    Output,
    /// The client's microphone is heard in the session.
    Capture,
    /// Sound played in the session reaches the client whole: a longer stream whose every
    /// sample is accounted for (gaps, glitches, lost or repeated samples, drift, level).
    /// Opt-in; runs after the other checks, on the output path.
    Continuity,
    /// Sound played in the session reaches the client as well as the playback quality
    /// policy allows: a wideband probe signal measured for band edge, SINAD, noise floor
    /// and codec signs, classed, and compared with the expected quality. Opt-in; runs after
    /// the other checks, on the output path.
    Quality,
    /// Speech played in the session reaches the client intelligible: a 4 s speech
    /// reference the probe synthesises, scored as ITU-T P.862.2 wideband MOS-LQO and held
    /// to `[budgets] min_mos`. Opt-in; runs last, on the output path.
    Speech,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Check::Output => "output",
            Check::Capture => "capture",
            Check::Continuity => "continuity",
            Check::Quality => "quality",
            Check::Speech => "speech",
        })
    }
}

impl Check {
    /// The path the check follows unless the scenario moves it (only continuity can be
    /// moved, by `[continuity] path`).
    pub fn default_path(self) -> AudioPath {
        match self {
            Check::Capture => AudioPath::Capture,
            Check::Output | Check::Continuity | Check::Quality | Check::Speech => AudioPath::Output,
        }
    }
}

/// The way sound crosses: the session's output to the client, or the client's microphone
/// to the session. A path has one redirection policy, one set of host settings and one
/// client rig.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AudioPath {
    /// Session output to the client.
    // Reports before the path had its own type named the quality check's path after it.
    #[default]
    #[serde(alias = "quality")]
    Output,
    /// Client microphone to the session.
    Capture,
}

impl std::fmt::Display for AudioPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AudioPath::Output => "output",
            AudioPath::Capture => "capture",
        })
    }
}

impl AudioPath {
    /// The signature check of the path: its rig and its host settings are the path's.
    pub fn check(self) -> Check {
        match self {
            AudioPath::Output => Check::Output,
            AudioPath::Capture => Check::Capture,
        }
    }

    /// The direction of the session's endpoint on the path: the session plays on an
    /// output, or records from an input.
    pub fn session_direction(self) -> DeviceDirection {
        match self {
            AudioPath::Output => DeviceDirection::Output,
            AudioPath::Capture => DeviceDirection::Input,
        }
    }
}
