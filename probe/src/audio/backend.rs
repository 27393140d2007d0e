//! The cpal backend: real devices. CONTRACT (filled in by the device work).
//!
//! Every function here is blocking and bounded: it returns within its timeout plus a
//! small margin even when the audio server misbehaves. The agent calls them from
//! `tokio::task::spawn_blocking`.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait};

use crate::audio::{
    looks_like_monitor, AudioError, AudioErrorKind, CancelFlag, CaptureOptions, DeviceDirection,
    DeviceInfo, DeviceSelector, HostChoice, ListenReport, PlayReport, RecordReport, StreamFormat,
};
use crate::signal::Signature;
use crate::wav::Audio;

/// How long a catalogue query may take before the watchdog reports the server stalled.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(5);

fn err(kind: AudioErrorKind, message: String) -> AudioError {
    AudioError { kind, message }
}

/// Runs `f` on a worker thread and waits at most `timeout`. A server that stops answering
/// (lab.md: calls that never return once the daemon is wedged) leaves the worker blocked;
/// it is abandoned, not joined, so the probe carries on and reports `Stalled`.
fn with_watchdog<T: Send + 'static>(
    what: String,
    timeout: Duration,
    f: impl FnOnce() -> Result<T, AudioError> + Send + 'static,
) -> Result<T, AudioError> {
    let (tx, rx) = mpsc::sync_channel(1);
    thread::Builder::new()
        .name("earshot-device".into())
        .spawn(move || {
            // The receiver may be gone after a timeout; nothing to do then.
            let _ = tx.send(f());
        })
        .map_err(|e| {
            err(
                AudioErrorKind::Backend,
                format!("{what}: cannot start a device thread: {e}"),
            )
        })?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => Err(err(
            AudioErrorKind::Stalled,
            format!(
                "device stalled: {what} did not answer within {} ms",
                timeout.as_millis()
            ),
        )),
    }
}

fn host_id(host: HostChoice) -> Result<Option<cpal::HostId>, AudioError> {
    let unavailable = |name: &str| {
        err(
            AudioErrorKind::HostUnavailable,
            format!("audio host `{name}` is not built for this platform"),
        )
    };
    match host {
        HostChoice::Auto => Ok(None),
        #[cfg(target_os = "linux")]
        HostChoice::PulseAudio => Ok(Some(cpal::HostId::PulseAudio)),
        #[cfg(not(target_os = "linux"))]
        HostChoice::PulseAudio => Err(unavailable("pulseaudio")),
        #[cfg(target_os = "linux")]
        HostChoice::Alsa => Ok(Some(cpal::HostId::Alsa)),
        #[cfg(not(target_os = "linux"))]
        HostChoice::Alsa => Err(unavailable("alsa")),
        #[cfg(windows)]
        HostChoice::Wasapi => Ok(Some(cpal::HostId::Wasapi)),
        #[cfg(not(windows))]
        HostChoice::Wasapi => Err(unavailable("wasapi")),
        #[cfg(target_os = "macos")]
        HostChoice::CoreAudio => Ok(Some(cpal::HostId::CoreAudio)),
        #[cfg(not(target_os = "macos"))]
        HostChoice::CoreAudio => Err(unavailable("coreaudio")),
    }
}

/// Opens the host. `Auto` is cpal's default: on Linux its PulseAudio host when a server
/// answers (PULSE_SERVER is read here), else ALSA; WASAPI on Windows; CoreAudio on macOS.
fn open_host(host: HostChoice) -> Result<cpal::Host, AudioError> {
    match host_id(host)? {
        None => {
            // cpal's default_host() silently prefers ALSA when its PulseAudio probe fails
            // (lab.md), so ask for PulseAudio explicitly first.
            #[cfg(target_os = "linux")]
            if let Ok(h) = cpal::host_from_id(cpal::HostId::PulseAudio) {
                return Ok(h);
            }
            Ok(cpal::default_host())
        }
        Some(id) => cpal::host_from_id(id).map_err(|e| {
            err(
                AudioErrorKind::HostUnavailable,
                format!("audio host `{}` is not reachable: {e}", id.name()),
            )
        }),
    }
}

/// Name of the host that `host` resolves to (e.g. "PulseAudio"), or why none is usable.
///
/// # Errors
/// [`AudioError`] of kind `HostUnavailable`.
pub fn host_name(host: HostChoice) -> Result<String, AudioError> {
    with_watchdog(
        format!("opening host {host:?}"),
        CATALOG_TIMEOUT,
        move || Ok(open_host(host)?.id().name().to_string()),
    )
}

fn format_of(c: &cpal::SupportedStreamConfig) -> StreamFormat {
    StreamFormat {
        sample_rate_hz: c.sample_rate(),
        channels: c.channels(),
        sample_format: c.sample_format().to_string(),
    }
}

fn device_id(d: &cpal::Device) -> Option<String> {
    d.id().ok().map(|id| id.to_string())
}

fn list(host: &cpal::Host) -> Result<Vec<DeviceInfo>, AudioError> {
    let hname = host.id().name();
    let devices = host.devices().map_err(|e| {
        err(
            AudioErrorKind::HostUnavailable,
            format!("cannot list the devices of host {hname}: {e}"),
        )
    })?;
    let def_out = host.default_output_device().as_ref().and_then(device_id);
    let def_in = host.default_input_device().as_ref().and_then(device_id);
    let mut out = Vec::new();
    for d in devices {
        let Some(id) = device_id(&d) else { continue };
        let name = d
            .description()
            .map(|x| x.name().to_string())
            .unwrap_or_else(|_| id.clone());
        // A device may do both directions (ALSA `default`): one entry per direction.
        if d.supports_output() {
            out.push(DeviceInfo {
                id: id.clone(),
                name: name.clone(),
                direction: DeviceDirection::Output,
                is_default: def_out.as_deref() == Some(id.as_str()),
                is_monitor: false,
                default_format: d.default_output_config().ok().map(|c| format_of(&c)),
            });
        }
        if d.supports_input() {
            out.push(DeviceInfo {
                is_monitor: looks_like_monitor(&id, &name),
                is_default: def_in.as_deref() == Some(id.as_str()),
                default_format: d.default_input_config().ok().map(|c| format_of(&c)),
                id,
                name,
                direction: DeviceDirection::Input,
            });
        }
    }
    Ok(out)
}

/// Lists every device of the host.
///
/// # Errors
/// [`AudioError`] when the host cannot be reached.
pub fn catalog(host: HostChoice) -> Result<Vec<DeviceInfo>, AudioError> {
    with_watchdog(
        format!("listing devices of host {host:?}"),
        CATALOG_TIMEOUT,
        move || list(&open_host(host)?),
    )
}

/// Plays `signature` on the output device `device` picks, then returns.
///
/// # Errors
/// [`AudioError`] with its kind (`NoDevice` when the host has no output at all).
pub fn play(
    host: HostChoice,
    device: &DeviceSelector,
    signature: &Signature,
    cancel: &CancelFlag,
) -> Result<PlayReport, AudioError> {
    let _ = (host, device, signature, cancel);
    todo!("device work")
}

/// Records from the input device `device` picks for `options.timeout`.
///
/// # Errors
/// [`AudioError`] with its kind (`NoDevice` when the host has no input at all).
pub fn record(
    host: HostChoice,
    device: &DeviceSelector,
    options: &CaptureOptions,
    cancel: &CancelFlag,
) -> Result<(RecordReport, Audio), AudioError> {
    let _ = (host, device, options, cancel);
    todo!("device work")
}

/// Records from `device` while the detector runs; returns as soon as `signature` is found,
/// or at `options.timeout`. The audio comes back when `options.keep_audio` is set.
///
/// # Errors
/// [`AudioError`] with its kind (`NoDevice` when the host has no input at all).
pub fn listen(
    host: HostChoice,
    device: &DeviceSelector,
    signature: &Signature,
    options: &CaptureOptions,
    cancel: &CancelFlag,
) -> Result<(ListenReport, Option<Audio>), AudioError> {
    let _ = (host, device, signature, options, cancel);
    todo!("device work")
}
