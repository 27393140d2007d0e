//! The cpal backend: real devices. CONTRACT (filled in by the device work).
//!
//! Every function here is blocking and bounded: it returns within its timeout plus a
//! small margin even when the audio server misbehaves. The agent calls them from
//! `tokio::task::spawn_blocking`.

use crate::audio::{
    AudioError, CancelFlag, CaptureOptions, DeviceInfo, DeviceSelector, HostChoice, ListenReport,
    PlayReport, RecordReport,
};
use crate::signal::Signature;
use crate::wav::Audio;

/// Name of the host that `host` resolves to (e.g. "PulseAudio"), or why none is usable.
///
/// # Errors
/// [`AudioError`] of kind `HostUnavailable`.
pub fn host_name(host: HostChoice) -> Result<String, AudioError> {
    let _ = host;
    todo!("device work")
}

/// Lists every device of the host.
///
/// # Errors
/// [`AudioError`] when the host cannot be reached.
pub fn catalog(host: HostChoice) -> Result<Vec<DeviceInfo>, AudioError> {
    let _ = host;
    todo!("device work")
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
