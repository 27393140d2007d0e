//! The session host layer of the policy engine: what a Windows session host's policy
//! (fDisableCam, fDisableAudioCapture) or an xrdp host's xrdp.ini switches say about
//! each direction, as a blocker and the trail lines.

use super::*;

/// What the session host layer says about playback and recording: a blocker's name for
/// each direction, and the trail lines.
pub(super) struct HostLayer {
    pub(super) layer: Layer,
    pub(super) blocks_output: Option<String>,
    pub(super) blocks_capture: Option<String>,
    pub(super) output_trail: Vec<String>,
    pub(super) capture_trail: Vec<String>,
}

pub(super) fn windows_host_layer(scenario: &Scenario) -> HostLayer {
    let product = scenario.product;
    let host = &scenario.policy.session_host;
    let mut l = HostLayer {
        layer: Layer::SessionHostPolicy,
        blocks_output: None,
        blocks_capture: None,
        output_trail: vec![],
        capture_trail: vec![],
    };
    if host.from_host {
        // Until a run connects, the layer is unknown: the expectation shown before is the
        // other layers' say, and the run works it out again from what the host has.
        let note = "session host policy: read from the host when the run connects                     (from_host = true); until then, as if not configured";
        l.output_trail.push(note.into());
        l.capture_trail.push(note.into());
    }
    match host.f_disable_cam {
        Some(f) if f.0 == 1 => {
            l.blocks_output = Some("session host policy fDisableCam=1".into());
            l.output_trail.push(
                "session host policy fDisableCam=1 (\"Allow audio and video playback \
                 redirection\" Disabled): playback redirection is disabled"
                    .into(),
            );
        }
        Some(_) => l.output_trail.push(
            "session host policy fDisableCam=0 (\"Allow audio and video playback redirection\" \
             Enabled): playback redirection allowed"
                .into(),
        ),
        None => l.output_trail.push(format!(
            "session host policy fDisableCam not configured: {product} does not block playback \
             redirection"
        )),
    }
    match host.f_disable_audio_capture {
        Some(f) if f.0 == 1 => {
            l.blocks_capture = Some("session host policy fDisableAudioCapture=1".into());
            l.capture_trail.push(
                "session host policy fDisableAudioCapture=1 (\"Allow audio recording \
                 redirection\" Disabled): recording redirection is disabled"
                    .into(),
            );
        }
        Some(_) => l.capture_trail.push(
            "session host policy fDisableAudioCapture=0 (\"Allow audio recording redirection\" \
             Enabled): recording redirection allowed"
                .into(),
        ),
        None => l.capture_trail.push(format!(
            "session host policy fDisableAudioCapture not configured: {product} does not block \
             recording redirection"
        )),
    }
    l
}

pub(super) fn xrdp_host_layer(x: &XrdpPolicy) -> HostLayer {
    let mut l = HostLayer {
        layer: Layer::XrdpIni,
        blocks_output: None,
        blocks_capture: None,
        output_trail: vec![],
        capture_trail: vec![],
    };
    let on = |v: Option<bool>| v.unwrap_or(true);
    if !on(x.allow_channels) {
        let why = "xrdp.ini allow_channels=false".to_string();
        l.blocks_output = Some(why.clone());
        l.blocks_capture = Some(why);
        l.output_trail
            .push("xrdp.ini [Globals] allow_channels=false: no virtual channel, no sound".into());
        l.capture_trail.push(
            "xrdp.ini [Globals] allow_channels=false: no virtual channel, no microphone".into(),
        );
    } else {
        l.output_trail.push(format!(
            "xrdp.ini [Globals] allow_channels={}: channels allowed",
            if x.allow_channels.is_some() {
                "true"
            } else {
                "not set (true)"
            }
        ));
        l.capture_trail.push(l.output_trail[0].clone());
    }
    if !on(x.xvnc_rdpsnd) {
        l.blocks_output
            .get_or_insert_with(|| "xrdp.ini [Xvnc] channel.rdpsnd=false".to_string());
        l.output_trail.push(
            "xrdp.ini [Xvnc] channel.rdpsnd=false: Xvnc sessions get no sound channel".into(),
        );
    }
    if !on(x.rdpsnd) {
        l.blocks_output
            .get_or_insert_with(|| "xrdp.ini rdpsnd=false".to_string());
        l.output_trail
            .push("xrdp.ini [Channels] rdpsnd=false: the sound channel is off".into());
    } else {
        l.output_trail
            .push("xrdp.ini [Channels] rdpsnd allowed (default true)".into());
    }
    if !on(x.drdynvc) {
        l.blocks_capture
            .get_or_insert_with(|| "xrdp.ini drdynvc=false".to_string());
        l.capture_trail.push(
            "xrdp.ini [Channels] drdynvc=false: no dynamic channels, so no audio input (audin)"
                .into(),
        );
    } else {
        l.capture_trail
            .push("xrdp.ini [Channels] drdynvc allowed (default true)".into());
    }
    l
}
