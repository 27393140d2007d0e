//! Playing: a signal rendered at the output's own rate, on every channel of the output
//! the selector picks, on a stream thread that is abandoned if the server stalls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use cpal::traits::DeviceTrait;

use super::host::{format_of, host_and_catalog, output_device, stream_config};
use super::{
    err, faults, hold_stream, stream_err, unsupported_format, POLL, START_TIMEOUT, STOP_TIMEOUT,
};
use crate::audio::{
    select, AudioError, AudioErrorKind, CancelFlag, DeviceDirection, DeviceInfo, DeviceSelector,
    HostChoice, PlayReport, StreamFormat, StreamHealth,
};
use crate::signal::Signature;
use crate::unix_ms;

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
    let sig = signature.clone();
    play_rendered(
        host,
        device,
        move |rate| {
            sig.render(rate).map_err(|e| AudioError {
                kind: AudioErrorKind::UnsupportedFormat,
                message: format!("the output's rate cannot carry a signature: {e}"),
            })
        },
        cancel,
    )
}

/// How long an output keeps running after the last sample: dropping it earlier discards
/// audio the server has not played yet (lab/README.md, "What the audio servers do", 3).
const PLAY_TAIL: Duration = Duration::from_millis(700);

fn output_stream<T: cpal::SizedSample + Send + 'static>(
    dev: &cpal::Device,
    config: cpal::StreamConfig,
    mono: Vec<f32>,
    pos: Arc<AtomicUsize>,
    conv: fn(f32) -> T,
    silence: T,
    on_err: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error> {
    let channels = usize::from(config.channels.max(1));
    let mut i = 0usize;
    dev.build_output_stream::<T, _, _>(
        config,
        move |out: &mut [T], _| {
            // Real-time path: only reads the pre-rendered signal and one atomic store.
            for frame in out.chunks_mut(channels) {
                let v = mono.get(i).map_or(silence, |&x| conv(x));
                frame.fill(v);
                i += 1;
            }
            pos.store(i.min(mono.len()), Ordering::Release);
        },
        on_err,
        None,
    )
}

/// Plays the mono signal `render(sample_rate)` on every channel of the selected output.
/// The stream lives on its own thread, which is abandoned if the server stalls.
///
/// # Errors
/// [`AudioError`] with its kind; `Stalled` when the stream does not start or progress.
pub fn play_rendered(
    host: HostChoice,
    device: &DeviceSelector,
    render: impl FnOnce(u32) -> Result<Vec<f32>, AudioError> + Send + 'static,
    cancel: &CancelFlag,
) -> Result<PlayReport, AudioError> {
    // The worker sends the signal's length and the unix time just before the stream started.
    type Started = (DeviceInfo, StreamFormat, (usize, f64));
    let (tx, rx) = mpsc::sync_channel::<Result<Started, AudioError>>(1);
    let (fault_sink, faults) = faults();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let pos = Arc::new(AtomicUsize::new(0));
    let pos_cb = pos.clone();
    let selector = device.clone();
    let what = format!("output `{selector}`");
    thread::Builder::new()
        .name("earshot-play".into())
        .spawn(move || {
            let setup =
                || -> Result<(cpal::Stream, DeviceInfo, StreamFormat, (usize, f64)), AudioError> {
                    let (h, cat) = host_and_catalog(host)?;
                    let info = select(&cat, &selector, DeviceDirection::Output)?.clone();
                    let dev = output_device(host, &h, &info)?;
                    let cfg = stream_config(dev.default_output_config(), || {
                        dev.supported_output_configs()
                    })
                    .map_err(|e| stream_err(&info.id, "no default output format", e))?;
                    let format = format_of(&cfg);
                    let mono = render(format.sample_rate_hz)?;
                    let len = mono.len();
                    let id = info.id.clone();
                    let on_err = move |e: cpal::Error| fault_sink.cpal(&id, &e);
                    // BufferSize::Default: Fixed sizes underrun on tunnel sinks (lab/README.md, "What the audio servers do").
                    let config = cfg.config();
                    let stream = match cfg.sample_format() {
                        cpal::SampleFormat::F32 => {
                            output_stream(&dev, config, mono, pos_cb, |x| x, 0.0f32, on_err)
                        }
                        cpal::SampleFormat::I16 => output_stream(
                            &dev,
                            config,
                            mono,
                            pos_cb,
                            |x| (x.clamp(-1.0, 1.0) * 32767.0) as i16,
                            0i16,
                            on_err,
                        ),
                        cpal::SampleFormat::I32 => output_stream(
                            &dev,
                            config,
                            mono,
                            pos_cb,
                            |x| (f64::from(x.clamp(-1.0, 1.0)) * 2_147_483_647.0) as i32,
                            0i32,
                            on_err,
                        ),
                        cpal::SampleFormat::U8 => output_stream(
                            &dev,
                            config,
                            mono,
                            pos_cb,
                            |x| (x.clamp(-1.0, 1.0) * 127.0 + 128.0) as u8,
                            128u8,
                            on_err,
                        ),
                        other => return Err(unsupported_format(&info.id, other)),
                    }
                    .map_err(|e| stream_err(&info.id, "cannot open the output stream", e))?;
                    let started_unix_ms = unix_ms();
                    cpal::traits::StreamTrait::play(&stream)
                        .map_err(|e| stream_err(&info.id, "cannot start the output stream", e))?;
                    Ok((stream, info, format, (len, started_unix_ms)))
                };
            match setup() {
                Ok((stream, info, format, len)) => {
                    let announced = tx.send(Ok((info, format, len))).is_ok();
                    hold_stream(stream, announced, &stop_rx, &done_tx);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
        .map_err(|e| {
            err(
                AudioErrorKind::Backend,
                format!("{what}: cannot start a device thread: {e}"),
            )
        })?;
    let (info, format, (len, started_unix_ms)) = match rx.recv_timeout(START_TIMEOUT) {
        Ok(r) => r?,
        Err(_) => {
            return Err(err(
                AudioErrorKind::Stalled,
                format!(
                    "device stalled: {what} did not start within {} ms",
                    START_TIMEOUT.as_millis()
                ),
            ))
        }
    };
    let started = Instant::now();
    let duration = Duration::from_secs_f64(len as f64 / f64::from(format.sample_rate_hz.max(1)));
    let deadline = duration + Duration::from_secs(3);
    let mut health = StreamHealth::default();
    let mut last = (0usize, Instant::now());
    let result = loop {
        if let Some(e) = faults.failure() {
            break Err(err(
                AudioErrorKind::DeviceNotAvailable,
                format!("stream failed: {e}"),
            ));
        }
        let p = pos.load(Ordering::Acquire);
        if p >= len || cancel.is_cancelled() {
            break Ok(());
        }
        // A stream that stops consuming for 2 s is stalled (a dead server: lab/README.md, "What the audio servers do", 5).
        if p != last.0 {
            last = (p, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(2) || started.elapsed() > deadline {
            break Err(err(
                AudioErrorKind::Stalled,
                format!(
                    "device stalled: `{}` stopped consuming at sample {p} of {len}",
                    info.id
                ),
            ));
        }
        thread::sleep(POLL);
    };
    if result.is_ok() && !cancel.is_cancelled() {
        // The server takes the whole signal into its buffer well before playing it: keep
        // the stream until the signal's wall-clock length has passed, plus the tail.
        let until = duration + PLAY_TAIL;
        while started.elapsed() < until && !cancel.is_cancelled() {
            thread::sleep(POLL);
        }
    }
    drop(stop_tx);
    if done_rx.recv_timeout(STOP_TIMEOUT).is_err() {
        health.stream_errors.push(format!(
            "device stalled: closing `{}` did not finish; its thread was abandoned",
            info.id
        ));
    }
    health.xruns = faults.xruns();
    result?;
    Ok(PlayReport {
        device: info,
        format,
        played_ms: started.elapsed().as_secs_f64() * 1000.0,
        started_unix_ms,
        health,
        output_state: None,
    })
}
