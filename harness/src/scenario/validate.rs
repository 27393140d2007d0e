//! Validation: every semantic error of a parsed scenario, in the file's order of keys,
//! and the rig a purpose needs.

use super::*;

impl Scenario {
    pub(super) fn invalid(&self, key: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            path: self.path.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Every semantic error of the scenario, in the file's order of keys.
    pub(super) fn validate(&self, errors: &mut Vec<ScenarioError>) {
        if self.name.trim().is_empty() {
            errors.push(self.invalid("name", "must not be empty"));
        }
        if self.checks.is_empty() {
            errors.push(self.invalid(
                "checks",
                "must name at least one of output, capture, continuity, quality, speech",
            ));
        }
        for (i, c) in self.checks.iter().enumerate() {
            if self.checks[..i].contains(c) {
                errors.push(self.invalid("checks", format!("`{c}` is listed twice")));
            }
        }
        let host = &self.policy.session_host;
        let windows_policy_set = host.f_disable_cam.is_some()
            || host.f_disable_audio_capture.is_some()
            || host.allowed_audio_quality_mode.is_some()
            || host.let_apps_access_microphone.is_some()
            || AppList::ALL.iter().any(|l| host.app_list(*l).is_some())
            || host.import.is_some();
        if host.from_host {
            if windows_policy_set {
                errors.push(self.invalid(
                    "policy.session_host.from_host",
                    "takes the whole session host layer from the host: remove the settings \
                     given beside it, or remove from_host to declare them",
                ));
            }
            if self.product == Product::Xrdp {
                errors.push(self.invalid(
                    "policy.session_host.from_host",
                    "reads a Windows session host's policy; an xrdp host's xrdp.ini switches \
                     are reported by the probe and compared with [policy.xrdp] anyway",
                ));
            }
        }
        match (self.product, &self.policy.xrdp) {
            (Product::Xrdp, _) if windows_policy_set => errors.push(self.invalid(
                "policy.session_host",
                "an xrdp host has no Windows policy: give its xrdp.ini channel switches in \
                     [policy.xrdp] (rdpsnd, drdynvc, allow_channels)",
            )),
            (Product::Xrdp, _) | (_, None) => {}
            (p, Some(_)) => errors.push(self.invalid(
                "policy.xrdp",
                format!(
                    "xrdp.ini settings apply to product = \"xrdp\" only; {p} takes \
                         [policy.session_host]"
                ),
            )),
        }
        if let Some(rdp) = &self.policy.rdp {
            let sources = [
                rdp.properties.is_some(),
                rdp.file.is_some(),
                rdp.hostpool_json.is_some(),
            ];
            match (self.product, sources.iter().filter(|s| **s).count()) {
                (Product::Windows365 | Product::Devbox, _) => errors.push(self.invalid(
                    "policy.rdp",
                    format!(
                        "{} has no host pool RDP properties: remove [policy.rdp] (its \
                             playback and recording are set by session host policy)",
                        self.product
                    ),
                )),
                (_, 0) => errors.push(self.invalid(
                    "policy.rdp",
                    "expected `properties = \"audiomode:i:0;...\"`, `file = \"x.rdp\"` or \
                         `hostpool_json = \"hostpool.json\"`",
                )),
                (_, 1) => {}
                _ => errors.push(self.invalid(
                    "policy.rdp",
                    "give one of `properties`, `file` or `hostpool_json`, not several",
                )),
            }
        }
        for (k, d) in [
            ("timeouts.connect", self.timeouts.connect),
            ("timeouts.listen", self.timeouts.listen),
        ] {
            if d.is_zero() || d > Duration::from_secs(120) {
                errors.push(self.invalid(k, "expected a duration above 0 and at most 120s"));
            }
        }
        let c = &self.continuity;
        if c.duration < Duration::from_secs(1) || c.duration > Duration::from_secs(600) {
            errors.push(self.invalid(
                "continuity.duration",
                "expected a duration from 1s to 10min",
            ));
        }
        for (k, v) in [
            ("continuity.max_drift_ppm", c.max_drift_ppm),
            ("continuity.max_level_std_db", c.max_level_std_db),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                errors.push(self.invalid(k, "expected a number of 0 or more"));
            }
        }
        for (k, d) in [
            ("timeouts.latency", self.timeouts.latency),
            ("timeouts.channel_open", self.timeouts.channel_open),
        ] {
            if d > Duration::from_secs(60) {
                errors.push(self.invalid(k, "expected a duration of at most 60s"));
            }
        }
        for (k, d) in [
            ("budgets.output_latency", self.budgets.output_latency),
            ("budgets.capture_latency", self.budgets.capture_latency),
        ] {
            if d.is_some_and(|d| d.is_zero() || d > Duration::from_secs(60)) {
                errors.push(self.invalid(k, "expected a duration above 0 and at most 60s"));
            }
        }
        if let Some(v) = self.budgets.min_mos {
            if !(v.is_finite() && (1.0..=4.64).contains(&v)) {
                errors.push(self.invalid(
                    "budgets.min_mos",
                    format!("{v}: expected a MOS-LQO from 1.0 to 4.64 (e.g. 3.5)"),
                ));
            }
        }
        if let Some(v) = self.budgets.max_speed_error_pct {
            if !(v.is_finite() && (0.0..=10.0).contains(&v)) {
                errors.push(self.invalid(
                    "budgets.max_speed_error_pct",
                    format!("{v}: expected a percentage from 0.0 to 10.0 (e.g. 0.5)"),
                ));
            }
        }
        if let Some(v) = self.budgets.min_level_db {
            if !(v.is_finite() && (-90.0..=0.0).contains(&v)) {
                errors.push(self.invalid(
                    "budgets.min_level_db",
                    format!(
                        "{v}: expected dB below the level played, from -90.0 to 0.0 (e.g. \
                         -20.0: heard at most 20 dB quieter than played)"
                    ),
                ));
            }
        }
    }

    /// What a run needs beyond the policy: both probes reachable with a token, each key
    /// on the probe it belongs to, and the client rig's microphone feed when something
    /// plays into it. `text` is the file's, to tell a key given from one defaulted.
    pub(super) fn validate_rig(
        &self,
        text: &str,
        purpose: Purpose,
        errors: &mut Vec<ScenarioError>,
    ) {
        if self.probes.local.session != SessionRequirement::Remote {
            errors.push(self.invalid(
                "probes.local.session",
                "is for the remote probe (the session it must show); remove it from \
                 [probes.local]",
            ));
        }
        // Keys of the client rig, given for the session's probe: refused, not ignored.
        let given: Option<toml::Table> = toml::from_str(text).ok();
        let remote = given
            .as_ref()
            .and_then(|t| t.get("probes"))
            .and_then(|p| p.get("remote"))
            .and_then(|r| r.as_table());
        for (key, what) in [
            ("mic_feed", "the device that feeds the client's microphone"),
            ("output_loopback", "where the client's output is heard"),
        ] {
            if remote.is_some_and(|r| r.contains_key(key)) {
                errors.push(self.invalid(
                    &format!("probes.remote.{key}"),
                    format!(
                        "is for the client rig ({what}): the session's probe plays on \
                         `output` and records from `input`; move it to [probes.local]"
                    ),
                ));
            }
        }
        for (name, p) in [
            ("local", &self.probes.local),
            ("remote", &self.probes.remote),
        ] {
            let key = format!("probes.{name}");
            match (&p.address, &p.dial_in) {
                (Some(_), Some(_)) => {
                    errors.push(self.invalid(&key, "give either `address` or `dial_in`, not both"))
                }
                (None, None) => errors.push(self.invalid(
                    &key,
                    "expected `address = \"HOST:PORT\"` (the probe serves) or `dial_in = \
                         \"ADDR:PORT\"` (the probe connects to the harness)",
                )),
                _ => {}
            }
            for (k, v) in [("address", &p.address), ("dial_in", &p.dial_in)] {
                if let Some(a) = v {
                    if a.rsplit_once(':')
                        .and_then(|(_, port)| port.parse::<u16>().ok())
                        .is_none()
                    {
                        errors.push(
                            self.invalid(&format!("{key}.{k}"), format!("`{a}` is not HOST:PORT")),
                        );
                    }
                }
            }
            if p.token_file.is_some() && p.token_env.is_some() {
                errors
                    .push(self.invalid(&key, "give either `token_file` or `token_env`, not both"));
            }
            if p.token_file.is_none() && p.token_env.is_none() {
                errors.push(self.invalid(
                    &key,
                    "expected `token_file = \"...\"` or `token_env = \"VAR\"`: probes only talk \
                     after a shared-token handshake",
                ));
            }
        }
        let plays_into_mic = self.checks.contains(&Check::Capture)
            || (self.checks.contains(&Check::Continuity)
                && self.continuity.path == AudioPath::Capture);
        if plays_into_mic && self.probes.local.mic_feed.is_none() && purpose == Purpose::Run {
            errors.push(self.invalid(
                "probes.local.mic_feed",
                "the capture check plays into the client's microphone: name the device that \
                 feeds it (a virtual cable, a null sink whose monitor is the mic, or a speaker \
                 next to the mic)",
            ));
        }
    }
}
