//! Listening: a consumer of a capture's blocks that runs a signature detector per channel
//! while it records, and stops the moment the signature is complete.

use std::thread;
use std::time::Instant;

use crate::analysis::{best_channel, channel_number, Detector};
use crate::audio::backend::{Capture, POLL};
use crate::audio::{
    AudioError, AudioErrorKind, CancelFlag, CaptureOptions, DeviceInfo, DeviceSelector, HostChoice,
    ListenReport, StreamHealth,
};
use crate::signal::Signature;
use crate::unix_ms;
use crate::wav::Audio;

/// Records from `device` while the detector runs; returns as soon as `signature` is found,
/// or at `options.timeout`. The audio comes back when `options.keep_audio` is set.
///
/// One detector runs per channel (a redirected path may carry the signal on one side only);
/// the reported channel is the first that detected it, else the most confident.
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
    listen_with(host, device, signature, options, cancel, |_| {})
}

/// [`listen`], calling `on_armed` once the device delivers audio: from then on, anything
/// played on the path is heard. A caller that starts the player only then cannot lose the
/// signature's start to a slow stream start (a tunnel source can take ~1 s).
///
/// # Errors
/// As [`listen`].
pub fn listen_with(
    host: HostChoice,
    device: &DeviceSelector,
    signature: &Signature,
    options: &CaptureOptions,
    cancel: &CancelFlag,
    on_armed: impl FnOnce(&DeviceInfo),
) -> Result<(ListenReport, Option<Audio>), AudioError> {
    let started = Instant::now();
    let mut capture = Capture::open(host, device, 4.0)?;
    let (info, format) = (capture.info.clone(), capture.format.clone());
    let channels = usize::from(format.channels.max(1));
    let mut detectors = (0..channels)
        .map(|_| Detector::new(signature, format.sample_rate_hz))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AudioError {
            kind: AudioErrorKind::UnsupportedFormat,
            message: format!("device `{}`: {e}", info.id),
        })?;
    let mut on_armed = Some(on_armed);
    let mut block = Vec::new();
    let mut mono = Vec::new();
    let mut kept = Vec::new();
    let mut found: Option<usize> = None;
    let mut cancelled = false;
    let result = loop {
        block.clear();
        let pulled = capture.pull(&mut block);
        if !block.is_empty() {
            if let Some(f) = on_armed.take() {
                f(&info);
            }
        }
        for (ch, det) in detectors.iter_mut().enumerate() {
            mono.clear();
            mono.extend(block.iter().skip(ch).step_by(channels));
            if det.push(&mono) && found.is_none() {
                found = Some(ch);
            }
        }
        if options.keep_audio {
            kept.extend_from_slice(&block);
        }
        if let Err(e) = pulled {
            break Err(e);
        }
        // The listen lasts `timeout` from the device's first audio, not from the request: a
        // device slow to deliver (the monitor of an idle PulseAudio sink, rendered in 2 s
        // blocks) must not eat the time in which the caller's plays are to be heard, or a
        // silence that proves nothing would end the listen. Until the first audio, the
        // start allowance bounds the wait (`pull`).
        let live = capture
            .armed_ms()
            .map(|ms| started.elapsed().as_secs_f64() * 1000.0 - ms);
        let over = live.is_some_and(|ms| ms >= options.timeout.as_secs_f64() * 1000.0);
        cancelled = found.is_none() && cancel.is_cancelled();
        if found.is_some() || cancelled || over {
            break Ok(());
        }
        thread::sleep(POLL);
    };
    let armed_ms = capture.armed_ms();
    let analyses: Vec<_> = detectors.iter_mut().map(Detector::analysis).collect();
    let channel = best_channel(&analyses).unwrap_or(0);
    let analysis = analyses[channel].clone();
    // When the onset reached this probe, not when it was played into the stream: a
    // source can deliver ahead of the wall clock (a null sink's monitor renders a block
    // at once), and an epoch reckoned from the frame count put onsets before their plays.
    let onset_unix_ms = match (analysis.detected, analysis.onset_ms) {
        (true, Some(onset)) => capture.heard_unix_ms(onset),
        _ => None,
    };
    let health = capture.close(StreamHealth::default());
    result?;
    let report = ListenReport {
        device: info,
        format: format.clone(),
        analysis,
        channel: channel_number(channel),
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        armed_ms,
        onset_unix_ms,
        verdict_unix_ms: unix_ms(),
        stopped_early: found.is_some(),
        cancelled,
        health,
    };
    let audio = options.keep_audio.then_some(Audio {
        sample_rate_hz: format.sample_rate_hz,
        channels: format.channels,
        samples: kept,
    });
    Ok((report, audio))
}
