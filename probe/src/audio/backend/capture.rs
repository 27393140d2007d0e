//! Capturing: a running input stream ([`Capture`]) on a thread of its own, the pump that
//! drains its ring (watching for failures, xruns and silence, and timing each delivery),
//! and the two consumers that take it whole: `record` and `hold_input`.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use cpal::traits::DeviceTrait;

use super::host::{format_of, host_and_catalog, is_wasapi_loopback, lookup, stream_config};
use super::{
    err, faults, hold_stream, stream_err, unsupported_format, FaultSink, Faults, POLL,
    START_TIMEOUT, STOP_TIMEOUT,
};
use crate::audio::{
    ring, select, AudioError, AudioErrorKind, CancelFlag, CaptureOptions, DeviceDirection,
    DeviceInfo, DeviceSelector, HostChoice, RecordReport, StreamFormat, StreamHealth,
};
use crate::unix_ms;
use crate::wav::Audio;

/// How long past its duration a recording may wait for audio still in the server.
const TAIL_GRACE: Duration = Duration::from_millis(2500);
/// Deliveries a capture remembers for [`Pump::heard_unix_ms`]: 100 minutes of 10 ms
/// fragments, 1.6 MB.
const MAX_DELIVERIES: usize = 600_000;

/// How long an input may deliver nothing before it counts as lost ([`Live::no_audio_limit`]).
/// A native PulseAudio source can pause after its first audio while it re-buffers its far
/// end (a tunnel source attached to an idle stream: seen at over 1.5 s in CI); a server
/// that dies is seen sooner, by the capture's liveness query.
#[cfg(target_os = "linux")]
const NO_AUDIO_NATIVE: Duration = Duration::from_millis(3000);
const NO_AUDIO_OTHER: Duration = Duration::from_millis(4000);

/// Messages from a capture worker thread to the caller.
enum Worker {
    Started(DeviceInfo, StreamFormat, ring::Consumer, Duration),
    Failed(AudioError),
}

/// A running capture: the device, its format, and the pump reading the ring the stream
/// thread fills. [`Capture::close`] stops the stream (bounded) and gives its health.
pub(crate) struct Capture {
    /// The device the selector picked.
    pub(crate) info: DeviceInfo,
    /// The format it delivers.
    pub(crate) format: StreamFormat,
    pump: Pump,
    /// Dropping it stops the stream.
    stop: mpsc::Sender<()>,
    /// Told when the stream is closed.
    done: mpsc::Receiver<()>,
}

impl Capture {
    /// Appends what arrived to `out`; an error when the device failed or went quiet.
    pub(crate) fn pull(&mut self, out: &mut Vec<f32>) -> Result<usize, AudioError> {
        self.pump.pull(out)
    }

    /// When the device first delivered audio, ms after it was asked to open.
    pub(crate) fn armed_ms(&self) -> Option<f64> {
        self.pump.armed_ms
    }

    /// When the delivery carrying the frame at `ms` into the stream arrived (unix ms).
    pub(crate) fn heard_unix_ms(&self, ms: f64) -> Option<f64> {
        self.pump.heard_unix_ms(ms)
    }

    /// Stops the stream, waiting a bounded time, and returns its health with the notes
    /// `health` already holds.
    pub(crate) fn close(self, mut health: StreamHealth) -> StreamHealth {
        stop_capture(self.stop, &self.done, &self.info.id, &mut health);
        self.pump.health(health)
    }
}

/// The stream a capture worker owns: cpal's, or (PulseAudio) a native record stream with a
/// short fragment (see [`crate::audio::pulse`] for why cpal's buffer settings do not fit).
#[allow(dead_code)] // held only to be dropped on the worker thread
enum Live {
    Cpal(cpal::Stream),
    #[cfg(target_os = "linux")]
    Pulse(crate::audio::pulse::Capture),
}

impl Live {
    /// How long the stream may deliver nothing before it counts as lost: native PulseAudio
    /// streams deliver every 10 ms; cpal's hosts may batch (its PulseAudio default: ~2 s).
    fn no_audio_limit(&self) -> Duration {
        match self {
            Live::Cpal(_) => NO_AUDIO_OTHER,
            #[cfg(target_os = "linux")]
            Live::Pulse(_) => NO_AUDIO_NATIVE,
        }
    }
}

/// Fragment of native PulseAudio record streams: how often audio reaches the detector.
#[cfg(target_os = "linux")]
const PULSE_FRAGMENT_MS: u32 = 10;

/// Opens a native PulseAudio record stream for a `pulseaudio:` device.
#[cfg(target_os = "linux")]
fn open_pulse(
    info: &DeviceInfo,
    ring_seconds: f64,
    errors: FaultSink,
) -> Option<Result<(Live, StreamFormat, ring::Consumer), AudioError>> {
    let source = info.id.strip_prefix("pulseaudio:")?;
    let format = info.default_format.clone()?;
    let cap =
        (f64::from(format.sample_rate_hz) * f64::from(format.channels) * ring_seconds) as usize;
    let (mut prod, cons) = ring::ring(cap);
    let opened = crate::audio::pulse::Capture::open_with_errors(
        source,
        PULSE_FRAGMENT_MS,
        move |d| prod.push_with(d, |x| x),
        move |e| errors.failed(e),
    );
    Some(opened.map(|c| {
        let format = StreamFormat {
            sample_rate_hz: c.sample_rate_hz(),
            channels: c.channels(),
            sample_format: "f32".into(),
        };
        (Live::Pulse(c), format, cons)
    }))
}

/// Opens a cpal input stream (every host but PulseAudio).
fn open_cpal(
    dev: &cpal::Device,
    info: &DeviceInfo,
    loopback: bool,
    ring_seconds: f64,
    errors: FaultSink,
) -> Result<(Live, StreamFormat, ring::Consumer), AudioError> {
    // Loopback capture records in the output's own format.
    let cfg = if loopback {
        stream_config(dev.default_output_config(), || {
            dev.supported_output_configs()
        })
        .map_err(|e| stream_err(&info.id, "no default format for loopback capture", e))?
    } else {
        stream_config(dev.default_input_config(), || dev.supported_input_configs())
            .map_err(|e| stream_err(&info.id, "no default input format", e))?
    };
    let format = format_of(&cfg);
    let cap =
        (f64::from(format.sample_rate_hz) * f64::from(format.channels) * ring_seconds) as usize;
    let (mut prod, cons) = ring::ring(cap);
    // BufferSize::Default: Fixed sizes lose input data on PulseAudio (lab/README.md, "What the audio servers do").
    let config: cpal::StreamConfig = cfg.config();
    let id = info.id.clone();
    let on_err = move |e: cpal::Error| errors.cpal(&id, &e);
    let stream = match cfg.sample_format() {
        cpal::SampleFormat::F32 => dev.build_input_stream::<f32, _, _>(
            config,
            move |d, _| prod.push_with(d, |x| x),
            on_err,
            None,
        ),
        cpal::SampleFormat::I16 => dev.build_input_stream::<i16, _, _>(
            config,
            move |d, _| prod.push_with(d, |x| f32::from(x) / 32768.0),
            on_err,
            None,
        ),
        cpal::SampleFormat::I32 => dev.build_input_stream::<i32, _, _>(
            config,
            move |d, _| prod.push_with(d, |x| x as f32 / 2_147_483_648.0),
            on_err,
            None,
        ),
        cpal::SampleFormat::U8 => dev.build_input_stream::<u8, _, _>(
            config,
            move |d, _| prod.push_with(d, |x| (f32::from(x) - 128.0) / 128.0),
            on_err,
            None,
        ),
        other => return Err(unsupported_format(&info.id, other)),
    }
    .map_err(|e| stream_err(&info.id, "cannot open the input stream", e))?;
    cpal::traits::StreamTrait::play(&stream)
        .map_err(|e| stream_err(&info.id, "cannot start the input stream", e))?;
    Ok((Live::Cpal(stream), format, cons))
}

impl Capture {
    /// Opens the input `selector` picks, its stream on a thread of its own. The thread owns
    /// the stream for its whole life: it is the only place a stalled `play()` or `drop`
    /// can block, so the caller can always walk away. `ring_seconds` of audio wait in the
    /// ring between pulls.
    ///
    /// # Errors
    /// [`AudioError`] with its kind; `Stalled` when the device does not start in time.
    pub(crate) fn open(
        host: HostChoice,
        selector: &DeviceSelector,
        ring_seconds: f64,
    ) -> Result<Capture, AudioError> {
        let opened = Instant::now();
        let (errors, faults) = faults();
        let (tx, rx) = mpsc::sync_channel::<Worker>(1);
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let selector = selector.clone();
        let what = format!("input `{selector}`");
        thread::Builder::new()
            .name("earshot-capture".into())
            .spawn(move || {
                let setup =
                    || -> Result<(Live, DeviceInfo, StreamFormat, ring::Consumer), AudioError> {
                        let (h, cat) = host_and_catalog(host)?;
                        let info = select(&cat, &selector, DeviceDirection::Input)?.clone();
                        #[cfg(target_os = "linux")]
                        if h.id() == cpal::HostId::PulseAudio {
                            if let Some(opened) = open_pulse(&info, ring_seconds, errors.clone()) {
                                let (live, format, cons) = opened?;
                                return Ok((live, info, format, cons));
                            }
                        }
                        let dev = lookup(&h, &info)?;
                        let loopback = is_wasapi_loopback(&h, &info);
                        let (live, format, cons) =
                            open_cpal(&dev, &info, loopback, ring_seconds, errors)?;
                        Ok((live, info, format, cons))
                    };
                match setup() {
                    Ok((stream, info, format, cons)) => {
                        let limit = stream.no_audio_limit();
                        let announced = tx.send(Worker::Started(info, format, cons, limit)).is_ok();
                        hold_stream(stream, announced, &stop_rx, &done_tx);
                    }
                    Err(e) => {
                        let _ = tx.send(Worker::Failed(e));
                    }
                }
            })
            .map_err(|e| {
                err(
                    AudioErrorKind::Backend,
                    format!("{what}: cannot start a device thread: {e}"),
                )
            })?;
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Worker::Started(info, format, cons, limit)) => Ok(Capture {
                pump: Pump::new(&info, &format, cons, faults, opened, limit),
                info,
                format,
                stop: stop_tx,
                done: done_rx,
            }),
            Ok(Worker::Failed(e)) => Err(e),
            Err(_) => Err(err(
                AudioErrorKind::Stalled,
                format!(
                    "device stalled: {what} delivered nothing within {} ms",
                    START_TIMEOUT.as_millis()
                ),
            )),
        }
    }
}

/// Stops a capture worker and waits a bounded time; a hung drop is noted, not waited out.
fn stop_capture(
    stop: mpsc::Sender<()>,
    done: &mpsc::Receiver<()>,
    id: &str,
    health: &mut StreamHealth,
) {
    drop(stop);
    if done.recv_timeout(STOP_TIMEOUT).is_err() {
        health.stream_errors.push(format!(
            "device stalled: closing `{id}` did not finish; its thread was abandoned"
        ));
    }
}

/// Reads a running capture: drains the ring, watches for errors and silence from the
/// device, and estimates when each sample reached the device.
struct Pump {
    id: String,
    rate: f64,
    channels: usize,
    cons: ring::Consumer,
    errors: Faults,
    no_audio: Duration,
    opened: Instant,
    last_audio: Instant,
    frames: u64,
    /// Each delivery: the frames delivered so far after it, and when it arrived (unix ms).
    /// A frame was heard when the delivery carrying it arrived: never before it was
    /// captured, late by at most one delivery (10 ms on a native PulseAudio stream).
    deliveries: Vec<(u64, f64)>,
    armed_ms: Option<f64>,
    dropped_seen: u64,
    xruns: u64,
}

impl Pump {
    fn new(
        info: &DeviceInfo,
        format: &StreamFormat,
        cons: ring::Consumer,
        errors: Faults,
        opened: Instant,
        no_audio: Duration,
    ) -> Pump {
        Pump {
            id: info.id.clone(),
            rate: f64::from(format.sample_rate_hz.max(1)),
            channels: usize::from(format.channels.max(1)),
            cons,
            errors,
            no_audio,
            opened,
            last_audio: Instant::now(),
            frames: 0,
            deliveries: Vec::new(),
            armed_ms: None,
            dropped_seen: 0,
            xruns: 0,
        }
    }

    /// Appends what arrived to `out`; an error when the device failed or went quiet.
    fn pull(&mut self, out: &mut Vec<f32>) -> Result<usize, AudioError> {
        let n = self.cons.drain_into(out);
        if n > 0 {
            let now = Instant::now();
            self.last_audio = now;
            self.armed_ms
                .get_or_insert(now.duration_since(self.opened).as_secs_f64() * 1000.0);
            self.frames += (n / self.channels) as u64;
            let arrived = unix_ms();
            if self.deliveries.len() < MAX_DELIVERIES {
                self.deliveries.push((self.frames, arrived));
            }
        }
        let dropped = self.cons.dropped();
        if dropped > self.dropped_seen {
            self.dropped_seen = dropped;
            self.xruns += 1;
        }
        if let Some(e) = self.errors.failure() {
            return Err(err(
                AudioErrorKind::DeviceNotAvailable,
                format!("the input stream failed: {e}"),
            ));
        }
        // A source can take a while to deliver its first audio (a tunnel reconnects to the
        // far server on resume): until then the start allowance applies.
        let quiet = self.last_audio.elapsed();
        let limit = if self.armed_ms.is_some() {
            self.no_audio
        } else {
            START_TIMEOUT
        };
        if quiet >= limit {
            return Err(err(
                AudioErrorKind::DeviceNotAvailable,
                format!(
                    "device `{}` delivered no audio for {} ms: the audio server stopped or the \
                     device was lost",
                    self.id,
                    quiet.as_millis()
                ),
            ));
        }
        Ok(n)
    }

    /// When the delivery carrying the frame at `ms` into the stream arrived (unix ms);
    /// `None` past what was recorded.
    fn heard_unix_ms(&self, ms: f64) -> Option<f64> {
        let frame = (ms.max(0.0) * self.rate / 1000.0) as u64;
        let i = self
            .deliveries
            .partition_point(|(after, _)| *after <= frame);
        self.deliveries.get(i).map(|(_, at)| *at)
    }

    fn health(&self, mut health: StreamHealth) -> StreamHealth {
        health.dropped_samples = self.dropped_seen;
        health.xruns = self.xruns + self.errors.xruns();
        health
    }
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
    record_with(host, device, options, cancel, |_| {})
}

/// [`record`], calling `on_armed` once the device delivers audio. The recording holds
/// `options.timeout` of audio counted from its first sample, so a player started at
/// `on_armed` is recorded from its start however long the device took to open.
///
/// # Errors
/// As [`record`].
pub fn record_with(
    host: HostChoice,
    device: &DeviceSelector,
    options: &CaptureOptions,
    cancel: &CancelFlag,
    on_armed: impl FnOnce(&DeviceInfo),
) -> Result<(RecordReport, Audio), AudioError> {
    // Input may arrive in bursts of ~2 s (lab/README.md, "What the audio servers do"): the ring holds 4 s so nothing drops.
    let mut capture = Capture::open(host, device, 4.0)?;
    let (info, format) = (capture.info.clone(), capture.format.clone());
    let started = Instant::now();
    let wanted = (options.timeout.as_secs_f64() * f64::from(format.sample_rate_hz)) as usize
        * usize::from(format.channels);
    let mut samples = Vec::with_capacity(wanted);
    let mut health = StreamHealth::default();
    let mut on_armed = Some(on_armed);
    // The recording's time runs from its first audio; until then the pump's start
    // allowance bounds the wait.
    let mut first_audio: Option<Instant> = None;
    let result = loop {
        if let Err(e) = capture.pull(&mut samples) {
            break Err(e);
        }
        if !samples.is_empty() && first_audio.is_none() {
            first_audio = Some(Instant::now());
            if let Some(f) = on_armed.take() {
                f(&info);
            }
        }
        if cancel.is_cancelled() || samples.len() >= wanted {
            break Ok(());
        }
        // Audio of the last moments can arrive after the wall-clock deadline (batched
        // hosts): wait a bounded grace.
        let since = first_audio.unwrap_or(started);
        if since.elapsed() >= options.timeout + TAIL_GRACE {
            health.stream_errors.push(format!(
                "device `{}` delivered only {} of {} samples in time",
                info.id,
                samples.len(),
                wanted
            ));
            break Ok(());
        }
        thread::sleep(POLL);
    };
    let health = capture.close(health);
    samples.truncate(wanted);
    result?;
    let frames = samples.len() / usize::from(format.channels.max(1));
    let report = RecordReport {
        continuity: None,
        quality: None,
        recorded_ms: frames as f64 * 1000.0 / f64::from(format.sample_rate_hz.max(1)),
        device: info,
        format: format.clone(),
        health,
        speech: None,
    };
    let audio = Audio {
        sample_rate_hz: format.sample_rate_hz,
        channels: format.channels,
        samples,
    };
    Ok((report, audio))
}

/// Holds the input `device` picks open, discarding what it delivers, until `cancel` is
/// set: a path that opens only once something records (RDP's microphone channel, 1.5-2 s
/// of zeros first) is then open when a listen starts. `on_audio` is called when the
/// device first delivers.
///
/// # Errors
/// [`AudioError`] when the device cannot be opened, fails, or goes quiet.
pub fn hold_input(
    host: HostChoice,
    device: &DeviceSelector,
    cancel: &CancelFlag,
    on_audio: impl FnOnce(&DeviceInfo),
) -> Result<(), AudioError> {
    let mut capture = Capture::open(host, device, 4.0)?;
    let info = capture.info.clone();
    let mut on_audio = Some(on_audio);
    let mut block = Vec::new();
    let result = loop {
        block.clear();
        match capture.pull(&mut block) {
            Err(e) => break Err(e),
            Ok(n) if n > 0 => {
                if let Some(f) = on_audio.take() {
                    f(&info);
                }
            }
            Ok(_) => {}
        }
        if cancel.is_cancelled() {
            break Ok(());
        }
        // The ring holds 4 s: a slow poll loses nothing that matters and costs nothing.
        thread::sleep(POLL * 5);
    };
    capture.close(StreamHealth::default());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_with_xruns_keeps_delivering_and_counts_them_in_its_health() {
        let info = DeviceInfo {
            id: "wasapi:mic".into(),
            name: "PulseAudio".into(),
            direction: DeviceDirection::Input,
            is_default: true,
            is_monitor: false,
            default_format: None,
        };
        let format = StreamFormat {
            sample_rate_hz: 48_000,
            channels: 1,
            sample_format: "f32".into(),
        };
        let (mut prod, cons) = ring::ring(4800);
        let (sink, faults) = faults();
        let mut pump = Pump::new(&info, &format, cons, faults, Instant::now(), NO_AUDIO_OTHER);
        let mut out = Vec::new();
        prod.push_with(&[0.5f32; 480], |x| x);
        sink.cpal(&info.id, &cpal::Error::new(cpal::ErrorKind::Xrun));
        prod.push_with(&[0.25f32; 480], |x| x);
        assert_eq!(pump.pull(&mut out), Ok(960));
        assert_eq!(pump.health(StreamHealth::default()).xruns, 1);
        sink.cpal(&info.id, &cpal::Error::new(cpal::ErrorKind::BackendError));
        let failed = pump
            .pull(&mut out)
            .expect_err("a backend error ends the capture");
        assert_eq!(failed.kind, AudioErrorKind::DeviceNotAvailable);
    }
}
