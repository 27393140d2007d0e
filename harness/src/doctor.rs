//! `earshot doctor`: whether a rig is ready for a run. The diagnosis (what each probe
//! showed, what the client rig proved, what is wrong and the scenario keys that fix it),
//! its text, and the scenario it writes for the rig it found (`--write`). The probing
//! itself is `runner::doctor`, which fills a [`Diagnosis`].

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::scenario::Scenario;

/// How a finding bears on the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Checked and fine.
    Ok,
    /// Worth knowing, but the rig is ready.
    Note,
    /// The rig is not ready: a run would be inconclusive (or wrong) because of it.
    Problem,
}

impl Status {
    fn mark(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Note => "note",
            Status::Problem => "PROBLEM",
        }
    }
}

/// One thing the doctor checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// How it bears on the run.
    pub status: Status,
    /// What was checked: `tokens`, `local probe`, `rig: output loopback`, ...
    pub topic: String,
    /// What was found.
    pub said: String,
    /// What to do about it (for a note or a problem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    /// A finding without a fix.
    pub fn new(status: Status, topic: impl Into<String>, said: impl Into<String>) -> Finding {
        Finding {
            status,
            topic: topic.into(),
            said: said.into(),
            fix: None,
        }
    }

    /// The finding with what to do about it.
    #[must_use]
    pub fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// A device as a probe listed it, with what it likely is on this rig.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceView {
    /// `output` or `input`.
    pub direction: &'static str,
    /// The probe's id for it.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The host's default for its direction.
    pub is_default: bool,
    /// A monitor (loopback) of an output.
    pub is_monitor: bool,
    /// What it likely is (`loopback of the speakers`, `a virtual cable`, the scenario keys
    /// that select it).
    pub roles: Vec<String>,
}

/// A probe the doctor reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeView {
    /// `local` or `remote`.
    pub role: &'static str,
    /// The address it answered on.
    pub peer: String,
    /// earshot-probe version.
    pub version: String,
    /// Its host name.
    pub host: String,
    /// OS and architecture.
    pub os: String,
    /// Its audio service, or why none is usable.
    pub audio: String,
    /// The session it runs in, in words.
    pub session: String,
    /// The control link's round trip, ms.
    pub rtt_ms: f64,
    /// Its clock minus the harness's, ms.
    pub clock_offset_ms: f64,
    /// Its devices.
    pub devices: Vec<DeviceView>,
    /// Why the devices could not be listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices_error: Option<String>,
}

/// The client rig's keys as the doctor found them working (or as given, when it could not
/// test them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RigKeys {
    /// `probes.local.output`: where the RDP client plays.
    pub output: String,
    /// `probes.local.output_loopback`: where that output is heard.
    pub output_loopback: String,
    /// `probes.local.mic_feed`: what feeds the client's microphone.
    pub mic_feed: Option<String>,
    /// `probes.local.input`: the client's microphone.
    pub input: String,
}

/// What the doctor found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    /// The scenario examined.
    pub scenario: PathBuf,
    /// The probes reached, local first.
    pub probes: Vec<ProbeView>,
    /// Everything checked, in the order checked.
    pub findings: Vec<Finding>,
    /// The client rig's keys that work (those the rig test proved).
    pub rig: RigKeys,
    /// Keys to change in the scenario, as `(key, value)`: the rig's fixes.
    pub keys: Vec<(String, String)>,
}

impl Diagnosis {
    /// Whether the rig is ready: nothing found is a problem.
    pub fn ready(&self) -> bool {
        !self.findings.iter().any(|f| f.status == Status::Problem)
    }

    /// The problems found.
    pub fn problems(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.status == Status::Problem)
    }

    /// The diagnosis as text for a terminal: each probe with its devices, every finding,
    /// then the verdict and the keys to set.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "earshot doctor: {}", self.scenario.display());
        for p in &self.probes {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "{} probe {}: earshot-probe {} on {} ({})",
                p.role, p.peer, p.version, p.host, p.os
            );
            let _ = writeln!(out, "  audio:   {}", p.audio);
            let _ = writeln!(out, "  session: {}", p.session);
            let _ = writeln!(
                out,
                "  link:    round trip {:.0} ms, clock offset {:+.0} ms",
                p.rtt_ms, p.clock_offset_ms
            );
            if let Some(e) = &p.devices_error {
                let _ = writeln!(out, "  devices: cannot be listed: {e}");
            }
            for d in &p.devices {
                let flags = format!(
                    "{}{}",
                    if d.is_default { " [default]" } else { "" },
                    if d.is_monitor { " [monitor]" } else { "" }
                );
                let roles = if d.roles.is_empty() {
                    String::new()
                } else {
                    format!("  <- {}", d.roles.join("; "))
                };
                let _ = writeln!(
                    out,
                    "  {:<6} {}{flags} ({}){roles}",
                    d.direction, d.id, d.name
                );
            }
        }
        let _ = writeln!(out);
        for f in &self.findings {
            let _ = writeln!(out, "{:<7} {}: {}", f.status.mark(), f.topic, f.said);
            if let Some(fix) = &f.fix {
                let _ = writeln!(out, "        fix: {fix}");
            }
        }
        let _ = writeln!(out);
        let problems = self.problems().count();
        if problems == 0 {
            let _ = writeln!(
                out,
                "ready: the rig and both probes are fit for `earshot run`"
            );
        } else {
            let _ = writeln!(
                out,
                "not ready: {problems} problem{} (a run now would be inconclusive or wrong)",
                if problems == 1 { "" } else { "s" }
            );
        }
        if !self.keys.is_empty() {
            let _ = writeln!(out, "scenario keys to use (`--write FILE` writes them):");
            for (k, v) in &self.keys {
                let _ = writeln!(out, "  {k} = {}", toml::Value::String(v.clone()));
            }
        }
        out
    }

    /// A scenario for the rig found: the scenario examined, its client rig keys as the
    /// doctor proved them, its token files as absolute paths (so that the file works from
    /// any folder), and its policy left for the admin to fill in.
    ///
    /// `original` is the examined file's text (its other tables are kept as they were).
    pub fn scenario_toml(&self, s: &Scenario, original: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Written by `earshot doctor` from {}:\n\
             # the client rig's keys as the doctor proved them (the rig heard itself on\n\
             # them), the probes as it reached them.\n\
             #\n\
             # The policy is left for you: add the layers the rollout set, for example\n\
             #   [policy.rdp]\n\
             #   properties = \"audiomode:i:0;audiocapturemode:i:1\"\n\
             # then `earshot expect THIS_FILE` shows what the checks will expect, and\n\
             # `earshot run THIS_FILE` measures it (docs/scenario-reference.md: every key).",
            self.scenario.display()
        );
        let string = |v: &str| toml::Value::String(v.to_string()).to_string();
        let _ = writeln!(out, "name = {}", string(&s.name));
        if let Some(d) = &s.description {
            let _ = writeln!(out, "description = {}", string(d));
        }
        let product = toml::Value::try_from(s.product)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| string("avd"));
        let _ = writeln!(out, "product = {product}");
        let checks: Vec<String> = s.checks.iter().map(|c| string(&c.to_string())).collect();
        let _ = writeln!(out, "checks = [{}]", checks.join(", "));
        for (role, spec) in [("local", &s.probes.local), ("remote", &s.probes.remote)] {
            let _ = writeln!(out, "\n[probes.{role}]");
            if let Some(a) = &spec.address {
                let _ = writeln!(out, "address = {}", string(a));
            }
            if let Some(a) = &spec.dial_in {
                let _ = writeln!(out, "dial_in = {}", string(a));
            }
            if let Some(t) = &spec.token_file {
                let path = s.resolve(t);
                let path = std::path::absolute(&path).unwrap_or(path);
                let _ = writeln!(out, "token_file = {}", string(&path.to_string_lossy()));
            }
            if let Some(v) = &spec.token_env {
                let _ = writeln!(out, "token_env = {}", string(v));
            }
            if let Some(h) = &spec.host {
                let _ = writeln!(out, "host = {}", string(h));
            }
            if role == "local" {
                let _ = writeln!(out, "output = {}", string(&self.rig.output));
                let _ = writeln!(
                    out,
                    "output_loopback = {}",
                    string(&self.rig.output_loopback)
                );
                if let Some(f) = &self.rig.mic_feed {
                    let _ = writeln!(out, "mic_feed = {}", string(f));
                }
                let _ = writeln!(out, "input = {}", string(&self.rig.input));
            } else {
                let _ = writeln!(out, "output = {}", string(&spec.output));
                let _ = writeln!(out, "input = {}", string(&spec.input));
                if spec.session == crate::scenario::SessionRequirement::Any {
                    let _ = writeln!(out, "session = \"any\"");
                }
            }
        }
        // The examined file's other tables, as they were.
        if let Ok(table) = toml::from_str::<toml::Table>(original) {
            for (key, value) in table {
                if matches!(
                    key.as_str(),
                    "name" | "description" | "product" | "checks" | "probes" | "policy"
                ) {
                    continue;
                }
                let mut one = toml::Table::new();
                one.insert(key, value);
                if let Ok(text) = toml::to_string(&one) {
                    let _ = write!(out, "\n{text}");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const DRAFT: &str = r#"
name = "draft"
product = "xrdp"
checks = ["output", "capture"]
[policy.xrdp]
rdpsnd = false
[probes.local]
address = "127.0.0.1:7701"
token_file = "tokens/client"
output_loopback = "Client-Microphone"
[probes.remote]
address = "10.0.0.2:7702"
token_env = "EARSHOT_TOKEN"
input = "xrdp-source"
[timeouts]
latency = "600ms"
"#;

    fn diagnosis(findings: Vec<Finding>) -> Diagnosis {
        Diagnosis {
            scenario: PathBuf::from("/rig/draft.toml"),
            probes: Vec::new(),
            findings,
            rig: RigKeys {
                output: "default".into(),
                output_loopback: "pulseaudio:speakers.monitor".into(),
                mic_feed: Some("CABLE Input \"16ch\"".into()),
                input: "default".into(),
            },
            keys: vec![
                (
                    "probes.local.output_loopback".into(),
                    "pulseaudio:speakers.monitor".into(),
                ),
                (
                    "probes.local.mic_feed".into(),
                    "CABLE Input \"16ch\"".into(),
                ),
            ],
        }
    }

    #[test]
    fn the_written_scenario_carries_the_rig_found_and_leaves_the_policy_out() {
        // A draft without mic_feed is fine for the doctor, not for a run.
        let draft_path = Path::new("/rig/draft.toml");
        let s = Scenario::parse_for(DRAFT, draft_path, crate::scenario::Purpose::Doctor).unwrap();
        assert!(Scenario::parse(DRAFT, draft_path).is_err());
        let d = diagnosis(vec![Finding::new(Status::Ok, "tokens", "fine")]);
        let text = d.scenario_toml(&s, DRAFT);
        assert!(!text.lines().any(|l| l.starts_with("[policy")), "{text}");
        // Written elsewhere, it is a scenario a run accepts, with the keys found.
        let w = Scenario::parse(&text, Path::new("/elsewhere/rig.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            w.probes.local.output_loopback,
            "pulseaudio:speakers.monitor"
        );
        assert_eq!(
            w.probes.local.mic_feed.as_deref(),
            Some("CABLE Input \"16ch\"")
        );
        assert_eq!(w.probes.remote.input, "xrdp-source");
        assert_eq!(w.probes.remote.token_env.as_deref(), Some("EARSHOT_TOKEN"));
        // The token file still names the same file from the new folder.
        assert_eq!(
            w.probes.local.token_file.as_deref(),
            Some(Path::new("/rig/tokens/client"))
        );
        assert_eq!(w.timeouts.latency, std::time::Duration::from_millis(600));
        assert_eq!(w.checks, s.checks);
        assert_eq!(w.product, s.product);
    }

    #[test]
    fn a_problem_makes_the_rig_not_ready_and_the_text_says_the_keys() {
        let ok = diagnosis(vec![
            Finding::new(Status::Ok, "tokens", "fine"),
            Finding::new(Status::Note, "session", "no input held").fix("--prime-input"),
        ]);
        assert!(ok.ready());
        assert!(ok.render().contains("ready: the rig and both probes"));
        let bad = diagnosis(vec![Finding::new(
            Status::Problem,
            "rig: output loopback",
            "silent",
        )
        .fix("probes.local.output_loopback = \"x\"")]);
        assert!(!bad.ready());
        let text = bad.render();
        assert!(
            text.contains("PROBLEM rig: output loopback: silent"),
            "{text}"
        );
        assert!(text.contains("not ready: 1 problem ("), "{text}");
        assert!(
            text.contains("  probes.local.mic_feed = 'CABLE Input \"16ch\"'"),
            "{text}"
        );
    }
}
