//! The checks, and what each one owns: the path it follows, what the policy says it must
//! observe, which layer decided that, and those facts in words.
//!
//! Everything else (the runner, the verdict table, the host facts, the reporters, `expect`)
//! asks a [`Planned`] check rather than working out from the [`Check`] which path it
//! follows and which decision applies: a continuity stream on the capture path follows the
//! microphone's expectation everywhere, because the answer is written once, here.

use crate::policy::{Expectation, Layer};
pub use crate::scenario::{AudioPath, Check};
use crate::scenario::{CaptureExpect, OutputExpect};

/// A check as a scenario plans it: the path it follows and what the policy says it must
/// observe there.
#[derive(Debug, Clone, Copy)]
pub struct Planned<'e> {
    /// The check.
    pub check: Check,
    /// The path it follows.
    pub path: AudioPath,
    expectation: &'e Expectation,
}

impl<'e> Planned<'e> {
    /// `check` on `path`, under `expectation`.
    pub fn new(check: Check, path: AudioPath, expectation: &'e Expectation) -> Planned<'e> {
        Planned {
            check,
            path,
            expectation,
        }
    }

    /// `check` as `scenario` places it, under `expectation`.
    pub fn of(
        scenario: &crate::scenario::Scenario,
        check: Check,
        expectation: &'e Expectation,
    ) -> Planned<'e> {
        Planned::new(check, scenario.path_of(check), expectation)
    }

    /// The whole expectation it is planned under.
    pub fn expectation(&self) -> &'e Expectation {
        self.expectation
    }

    /// Whether the policy redirects the check's path, so that sound must arrive and an
    /// absence fails the check.
    pub fn needs_sound(&self) -> bool {
        match self.path {
            AudioPath::Output => self.expectation.output.value == OutputExpect::Client,
            AudioPath::Capture => self.expectation.capture.value == CaptureExpect::Redirected,
        }
    }

    /// What the check must observe, in words (for tables and causes).
    pub fn expected(&self) -> &'static str {
        let e = self.expectation;
        match (self.check, self.path) {
            (Check::Continuity | Check::Quality | Check::Speech, _) if !self.needs_sound() => {
                "nothing to measure: not redirected"
            }
            (Check::Speech, _) => "speech heard on the client, scored (MOS-LQO)",
            (Check::Continuity, AudioPath::Output) => "heard on the client, whole",
            (Check::Continuity, AudioPath::Capture) => "heard in the session, whole",
            (Check::Quality, _) => "heard on the client as well as the quality policy allows",
            (Check::Output | Check::Capture, AudioPath::Output) => match e.output.value {
                OutputExpect::Client => "heard on the client",
                OutputExpect::Session => "plays in the session, not on the client",
                OutputExpect::None => "not played on the client",
            },
            (Check::Output | Check::Capture, AudioPath::Capture) => match e.capture.value {
                CaptureExpect::Redirected => "microphone heard in the session",
                CaptureExpect::Blocked => "microphone not available in the session",
                CaptureExpect::RedirectedAppsDenied => {
                    "microphone redirected, desktop apps denied it"
                }
            },
        }
    }

    /// The setting that decided what the check must observe, in words: the quality
    /// check's is the quality decision, every other check's its path's.
    pub fn decided_by(&self) -> &'e str {
        let e = self.expectation;
        match (self.check, self.path) {
            (Check::Quality, _) => &e.quality.decided_by,
            (_, AudioPath::Output) => &e.output.decided_by,
            (_, AudioPath::Capture) => &e.capture.decided_by,
        }
    }

    /// The layer that decided, for hints.
    pub fn layer(&self) -> Layer {
        let e = self.expectation;
        match (self.check, self.path) {
            (Check::Quality, _) => e.quality.layer,
            (_, AudioPath::Output) => e.output.layer,
            (_, AudioPath::Capture) => e.capture.layer,
        }
    }

    /// What every layer said about it, in order.
    pub fn trail(&self) -> &'e [String] {
        let e = self.expectation;
        match (self.check, self.path) {
            (Check::Quality, _) => &e.quality.trail,
            (_, AudioPath::Output) => &e.output.trail,
            (_, AudioPath::Capture) => &e.capture.trail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Decision, Quality};

    fn decision<T>(value: T, by: &str) -> Decision<T> {
        Decision {
            value,
            decided_by: by.into(),
            layer: Layer::ProductDefault,
            trail: vec![format!("trail of {by}")],
        }
    }

    fn expectation(output: OutputExpect, capture: CaptureExpect) -> Expectation {
        Expectation {
            output: decision(output, "the output setting"),
            capture: decision(capture, "the capture setting"),
            quality: decision(Quality::High, "the quality setting"),
            warnings: vec![],
            info: vec![],
            notes: vec![],
        }
    }

    #[test]
    fn continuity_on_the_capture_path_follows_the_microphones_expectation_everywhere() {
        let e = expectation(OutputExpect::None, CaptureExpect::Redirected);
        let p = Planned::new(Check::Continuity, AudioPath::Capture, &e);
        assert!(p.needs_sound());
        assert_eq!(p.expected(), "heard in the session, whole");
        assert_eq!(p.decided_by(), "the capture setting");
        assert_eq!(p.trail(), ["trail of the capture setting"]);
        // On the output path, the same check follows output, blocked here.
        let p = Planned::new(Check::Continuity, AudioPath::Output, &e);
        assert!(!p.needs_sound());
        assert_eq!(p.expected(), "nothing to measure: not redirected");
        assert_eq!(p.decided_by(), "the output setting");
    }

    #[test]
    fn every_check_on_its_default_path_says_what_it_expects_and_who_decided() {
        let e = expectation(OutputExpect::Client, CaptureExpect::Blocked);
        let rows = [
            (
                Check::Output,
                "heard on the client",
                "the output setting",
                true,
            ),
            (
                Check::Capture,
                "microphone not available in the session",
                "the capture setting",
                false,
            ),
            (
                Check::Continuity,
                "heard on the client, whole",
                "the output setting",
                true,
            ),
            (
                Check::Quality,
                "heard on the client as well as the quality policy allows",
                "the quality setting",
                true,
            ),
        ];
        for (c, expected, by, needs) in rows {
            let p = Planned::new(c, c.default_path(), &e);
            assert_eq!(p.expected(), expected, "{c}");
            assert_eq!(p.decided_by(), by, "{c}");
            assert_eq!(p.needs_sound(), needs, "{c}");
        }
    }

    #[test]
    fn a_path_reads_back_as_written_and_an_older_reports_quality_path_is_output() {
        for p in [AudioPath::Output, AudioPath::Capture] {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(serde_json::from_str::<AudioPath>(&json).unwrap(), p);
        }
        assert_eq!(
            serde_json::from_str::<AudioPath>("\"quality\"").unwrap(),
            AudioPath::Output
        );
    }
}
