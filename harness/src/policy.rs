//! The policy engine: from the policy layers of a scenario to what each check must observe.
//!
//! Pure: the loader has read every file a scenario names (its imports, its .rdp file or
//! host pool JSON), so the expectation is a function of the model alone. The rules
//! (Microsoft's audio redirection documentation, summarised in ARCHITECTURE.md):
//!
//! - Each product has defaults. Azure Virtual Desktop: Windows blocks nothing, the host pool
//!   plays sound on the local computer (`audiomode:i:0`) and leaves microphone redirection
//!   not configured (off). Windows 365 and Dev Box: playback and recording redirection on,
//!   no host pool properties. Remote Desktop Services: the RDP defaults (play locally,
//!   microphone off).
//! - The most restrictive layer wins: a session host policy that disables a redirection
//!   beats RDP properties that enable it, and so does a client device that disables its
//!   microphone.
//! - `LetAppsAccessMicrophone = 2` (force deny) governs Windows (packaged) apps only: the
//!   probe, a desktop app, is not denied by it (the trail says so). The session's
//!   desktop-app microphone consent set to Deny leaves the redirection in place but denies
//!   desktop apps the microphone.
//!
//! - An xrdp session host (`product = "xrdp"`) has no Windows policy: its session host
//!   layer is xrdp.ini's channel switches (`[policy.xrdp]`): `rdpsnd=false` blocks
//!   playback, `drdynvc=false` blocks the microphone (audin is a dynamic channel),
//!   `allow_channels=false` blocks both. Its RDP layer is the client's .rdp file, with the
//!   RDP defaults.
//! - "Limit audio playback quality" (`AllowedAudioQualityMode`, TerminalServer.admx policy
//!   TS_CLIENT_AUDIO_QUALITY): 1 Dynamic, 3 Medium, 7 High. The values are the set of
//!   modes allowed, one bit each (Dynamic 1, Medium 2, High 4), which is why they read 1,
//!   3 and 7. The policy's explain text: "If you disable or do not configure this policy
//!   setting, audio playback quality will be set to Dynamic", and the client's request
//!   (`audioqualitymode`) can only lower what the policy allows. So an unset policy does
//!   not *limit* to a chosen mode, yet leaves Windows at Dynamic; the trail says so.
//!
//! Every decision carries its trail: each layer's say, and which layer decided.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::scenario::{
    CaptureExpect, Consent, OutputExpect, Product, Scenario, Toggle, XrdpPolicy,
};

pub use crate::rdp::{parse_rdp_properties, property_errors, PolicyError, RdpProperties, RdpValue};

/// Audio playback quality.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// Dynamic (bandwidth dependent).
    Dynamic,
    /// Medium.
    Medium,
    /// High (uncompressed).
    High,
}

impl Quality {
    /// The mode in words, for reports.
    pub fn words(self) -> &'static str {
        match self {
            Quality::Dynamic => "dynamic (the server adapts to the bandwidth)",
            Quality::Medium => "medium (a fixed compressed format)",
            Quality::High => "high (uncompressed PCM)",
        }
    }

    /// The mode in one word.
    pub fn name(self) -> &'static str {
        match self {
            Quality::Dynamic => "dynamic",
            Quality::Medium => "medium",
            Quality::High => "high",
        }
    }
}

/// The layer of configuration that decided a value: where an admin changes it, and what
/// makes a change take effect, differ from one layer to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// The session host's policy (Group Policy, Intune, the registry): read by the host.
    SessionHostPolicy,
    /// xrdp.ini on the session host: read when xrdp starts.
    XrdpIni,
    /// An Azure Virtual Desktop host pool's RDP properties: applied at each new connection.
    HostPoolProperties,
    /// The RDP properties of the client's connection (its .rdp file): applied at each new
    /// connection.
    RdpFile,
    /// The client device setting (Intune app configuration of a mobile client).
    ClientDevice,
    /// The session's desktop-app microphone consent (Windows privacy settings).
    DesktopAppConsent,
    /// No layer configured it: the product's default.
    #[default]
    ProductDefault,
    /// The scenario's own `[expect]` section.
    ScenarioExpect,
}

/// One value the engine settled on, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Decision<T> {
    /// The result.
    pub value: T,
    /// The layer and setting that decided, e.g. "session host policy fDisableCam=1".
    pub decided_by: String,
    /// The layer that decided, as a kind: what a cause's hint is derived from.
    #[serde(default)]
    pub layer: Layer,
    /// What every layer said, in order.
    pub trail: Vec<String>,
}

/// What the checks must observe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Expectation {
    /// Where output goes.
    pub output: Decision<OutputExpect>,
    /// Whether the microphone reaches the session.
    pub capture: Decision<CaptureExpect>,
    /// Resulting playback quality (reported, not yet checked).
    pub quality: Decision<Quality>,
    /// What deserves a second look (a property given twice).
    pub warnings: Vec<String>,
    /// What the engine read and left aside, for the record (an import's summary, the RDP
    /// properties that are not about audio): information, not warnings.
    #[serde(default)]
    pub info: Vec<String>,
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

/// Works out the expectation of `scenario`, with its `[expect]` overrides.
pub fn expect(scenario: &Scenario) -> Expectation {
    let mut e = evaluate(scenario);
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
            e.output.layer = Layer::ScenarioExpect;
        }
        if let Some(v) = o.capture {
            e.capture
                .trail
                .push(format!("overridden by [expect]: capture {v:?} ({why})"));
            e.capture.value = v;
            e.capture.decided_by = format!("[expect] in the scenario: {why}");
            e.capture.layer = Layer::ScenarioExpect;
        }
    }
    e
}

mod host_layer;
use host_layer::{windows_host_layer, xrdp_host_layer};

/// The engine proper: the layers' say, before the scenario's `[expect]` overrides.
pub fn evaluate(scenario: &Scenario) -> Expectation {
    let product = scenario.product;
    let rdp = scenario.rdp.as_ref();
    let host = &scenario.policy.session_host;
    let int = |name: &str| match rdp.and_then(|r| r.values.get(name)) {
        Some(RdpValue::Int(v)) => Some(*v),
        _ => None,
    };
    let rdp_layer = match product {
        Product::Avd => "host pool RDP property",
        Product::Xrdp => ".rdp file property",
        _ => "RDP property",
    };
    let rdp_kind = match product {
        Product::Avd => Layer::HostPoolProperties,
        _ => Layer::RdpFile,
    };
    let has_rdp_layer = !matches!(product, Product::Windows365 | Product::Devbox);
    let host_layer = match (&scenario.policy.xrdp, product) {
        (Some(x), Product::Xrdp) => xrdp_host_layer(x),
        (None, Product::Xrdp) => xrdp_host_layer(&XrdpPolicy::default()),
        _ => windows_host_layer(scenario),
    };

    // Output: each layer proposes; the most restrictive proposal wins, the first layer
    // proposing it is named.
    let mut proposals: Vec<(OutputExpect, String, Layer)> = Vec::new();
    let mut trail = host_layer.output_trail;
    if let Some(by) = host_layer.blocks_output {
        proposals.push((OutputExpect::None, by, host_layer.layer));
    }
    match (has_rdp_layer, int("audiomode")) {
        (false, _) => {
            proposals.push((
                OutputExpect::Client,
                format!("{product} default"),
                Layer::ProductDefault,
            ));
            trail.push(format!(
                "{product} default: playback redirection enabled (no host pool properties)"
            ));
        }
        (true, Some(m)) => {
            let v = match m {
                0 => OutputExpect::Client,
                1 => OutputExpect::Session,
                _ => OutputExpect::None,
            };
            proposals.push((v, format!("{rdp_layer} audiomode:i:{m}"), rdp_kind));
            trail.push(format!("{rdp_layer} audiomode:i:{m}: {}", output_words(v)));
        }
        (true, None) => {
            proposals.push((
                OutputExpect::Client,
                format!("{product} default audiomode:i:0"),
                Layer::ProductDefault,
            ));
            trail.push(format!(
                "{rdp_layer} audiomode not configured: the default plays sound on the local \
                 computer"
            ));
        }
    }
    let (out_value, out_by, out_layer) = most_restrictive(proposals);
    let output = Decision {
        value: out_value,
        decided_by: out_by,
        layer: out_layer,
        trail,
    };

    // Capture: blocked if any layer blocks.
    let mut blockers: Vec<(String, Layer)> = host_layer
        .blocks_capture
        .map(|b| (b, host_layer.layer))
        .into_iter()
        .collect();
    let mut enabler: Option<(String, Layer)> = None;
    let mut trail = host_layer.capture_trail;
    match (has_rdp_layer, int("audiocapturemode")) {
        (false, _) => {
            enabler = Some((format!("{product} default"), Layer::ProductDefault));
            trail.push(format!("{product} default: recording redirection enabled"));
        }
        (true, Some(1)) => {
            enabler = Some((format!("{rdp_layer} audiocapturemode:i:1"), rdp_kind));
            trail.push(format!(
                "{rdp_layer} audiocapturemode:i:1: the local microphone is redirected"
            ));
        }
        (true, Some(m)) => {
            blockers.push((format!("{rdp_layer} audiocapturemode:i:{m}"), rdp_kind));
            trail.push(format!(
                "{rdp_layer} audiocapturemode:i:{m}: microphone redirection disabled"
            ));
        }
        (true, None) => {
            blockers.push((
                format!("{rdp_layer} audiocapturemode not configured (default 0, off)"),
                rdp_kind,
            ));
            trail.push(format!(
                "{rdp_layer} audiocapturemode not configured: the default does not redirect \
                 the microphone"
            ));
        }
    }
    const CLIENT_DEVICE: &str = "client device setting (Intune app configuration of Windows \
        App / Remote Desktop on iOS, iPadOS and Android; Windows and macOS clients have no \
        such setting)";
    match scenario.policy.client.microphone {
        Some(Toggle::Disabled) => {
            blockers.push((
                "client device: audio input redirection disabled".into(),
                Layer::ClientDevice,
            ));
            trail.push(format!("{CLIENT_DEVICE}: audio input redirection disabled"));
        }
        Some(Toggle::Enabled) => {
            trail.push(format!("{CLIENT_DEVICE}: audio input redirection enabled"))
        }
        None => {}
    }
    // LetAppsAccessMicrophone governs Windows (packaged) apps only: the probe, a desktop
    // app, records a redirected microphone whatever it says. What can deny a desktop app
    // is the session's desktop-app consent.
    if matches!(host.let_apps_access_microphone, Some(a) if a.0 == 2) {
        trail.push(
            "session host privacy LetAppsAccessMicrophone=2 (force deny): Windows (packaged) \
             apps are denied the microphone; desktop apps, the probe among them, are not \
             governed by it"
                .into(),
        );
    }
    // The per-app lists are reported, apps by name: they govern Windows apps too.
    for list in crate::registry::AppList::ALL {
        if let Some(apps) = host.app_list(list).filter(|a| !a.is_empty()) {
            trail.push(format!(
                "session host privacy {}: Windows (packaged) apps {}: {}; desktop apps, the \
                 probe among them, are in no such list",
                list.name(),
                list.words(),
                apps.join(", ")
            ));
        }
    }
    let denied = host.desktop_apps_microphone == Some(Consent::Deny);
    let capture = if let Some((first, layer)) = blockers.first() {
        if denied {
            trail.push(
                "the session's desktop-app microphone consent is Deny: moot, the microphone \
                 is not redirected"
                    .into(),
            );
        }
        Decision {
            value: CaptureExpect::Blocked,
            decided_by: first.clone(),
            layer: *layer,
            trail,
        }
    } else if denied {
        trail.push(
            "the session's desktop-app microphone consent (\"Let desktop apps access your \
             microphone\") is Deny: the microphone is redirected, but desktop apps are denied it"
                .into(),
        );
        Decision {
            value: CaptureExpect::RedirectedAppsDenied,
            decided_by: "the session's desktop-app microphone consent Deny".into(),
            layer: Layer::DesktopAppConsent,
            trail,
        }
    } else {
        let (decided_by, layer) =
            enabler.unwrap_or_else(|| ("no layer blocks it".into(), Layer::ProductDefault));
        Decision {
            value: CaptureExpect::Redirected,
            decided_by,
            layer,
            trail,
        }
    };

    let quality = quality_decision(scenario, int("audioqualitymode"), rdp_layer, has_rdp_layer);

    Expectation {
        output,
        capture,
        quality,
        warnings: rdp
            .iter()
            .flat_map(|r| r.warnings.iter().cloned())
            .collect(),
        info: host
            .imported
            .iter()
            .map(|i| i.summary())
            .chain(rdp.and_then(RdpProperties::ignored_line))
            .collect(),
        notes: vec![
            "session host policy takes effect after the session host restarts (or \
             `gpupdate /force` and a new sign-in); RDP properties and client settings at the \
             client's next connection"
                .into(),
            "Teams and multimedia redirection bypass these settings: keep them out of the test \
             path"
                .into(),
        ],
    }
}

/// Playback quality: the lower of what the session host allows and what the client asks.
/// Only layers that are set, and that the product has, are named as deciding.
fn quality_decision(
    scenario: &Scenario,
    requested: Option<i64>,
    rdp_layer: &str,
    has_rdp_layer: bool,
) -> Decision<Quality> {
    let product = scenario.product;
    let mut trail = Vec::new();
    let policy = scenario
        .policy
        .session_host
        .allowed_audio_quality_mode
        .map(|q| match q.0 {
            7 => (Quality::High, 7),
            3 => (Quality::Medium, 3),
            _ => (Quality::Dynamic, 1),
        });
    let asked = if has_rdp_layer {
        requested.map(|m| match m {
            2 => Quality::High,
            1 => Quality::Medium,
            _ => Quality::Dynamic,
        })
    } else {
        None
    };
    if product == Product::Xrdp {
        trail.push("xrdp has no quality policy: the client's request and its codecs decide".into());
    } else {
        trail.push(match policy {
            Some((q, v)) => format!(
                "session host policy AllowedAudioQualityMode={v} (\"Limit audio playback \
                 quality\" {}): at most {}",
                q.name(),
                q.name()
            ),
            None => "session host policy AllowedAudioQualityMode not configured: Windows plays \
                     at dynamic quality (TerminalServer.admx)"
                .into(),
        });
    }
    match (has_rdp_layer, asked) {
        (false, _) => trail.push(format!(
            "{product} has no host pool RDP properties: the client app's own quality setting \
             applies"
        )),
        (true, Some(q)) => trail.push(format!(
            "{rdp_layer} audioqualitymode:i:{}: asks for {}",
            requested.unwrap_or(0),
            q.name()
        )),
        (true, None) => trail.push(format!(
            "{rdp_layer} audioqualitymode not configured: the client asks for dynamic"
        )),
    }
    let limit = match (product, policy) {
        (Product::Xrdp, _) => Quality::High,
        (_, Some((q, _))) => q,
        (_, None) => Quality::Dynamic,
    };
    let want = asked.unwrap_or(Quality::Dynamic);
    let value = limit.min(want);
    let rdp_kind = match product {
        Product::Avd => Layer::HostPoolProperties,
        _ => Layer::RdpFile,
    };
    let (decided_by, layer) = match (policy, asked) {
        (None, None) if product == Product::Xrdp => (
            "the client's default request (dynamic)".into(),
            Layer::ProductDefault,
        ),
        (None, None) => ("the defaults (dynamic)".into(), Layer::ProductDefault),
        // The client's request stands when the host allows it.
        (_, Some(_)) if want <= limit => (
            format!("{rdp_layer} audioqualitymode:i:{}", requested.unwrap_or(0)),
            rdp_kind,
        ),
        // Otherwise the host caps it.
        (None, Some(_)) => (
            "session host policy AllowedAudioQualityMode not configured (Windows then plays \
             at dynamic quality)"
                .into(),
            Layer::ProductDefault,
        ),
        (Some((_, v)), Some(_)) => (
            format!("session host policy AllowedAudioQualityMode={v}"),
            Layer::SessionHostPolicy,
        ),
        (Some((_, v)), None) => (
            format!(
                "the client's default request (dynamic), within session host policy \
                 AllowedAudioQualityMode={v}"
            ),
            Layer::ProductDefault,
        ),
    };
    Decision {
        value,
        decided_by,
        layer,
        trail,
    }
}

/// The most restrictive proposal; the earliest layer wins a tie (it is listed first).
fn most_restrictive(
    proposals: Vec<(OutputExpect, String, Layer)>,
) -> (OutputExpect, String, Layer) {
    proposals
        .into_iter()
        .reduce(|best, p| {
            if output_rank(p.0) > output_rank(best.0) {
                p
            } else {
                best
            }
        })
        .unwrap_or((
            OutputExpect::Client,
            "the RDP default".into(),
            Layer::ProductDefault,
        ))
}

#[cfg(test)]
mod tests;
