//! PulseAudio capture with a chosen fragment size: lossless and prompt.
//!
//! cpal's PulseAudio host offers two buffer settings for input, and neither fits a probe
//! that must stop the moment a signature is complete:
//!
//! - `BufferSize::Default` leaves every buffer attribute to the server, which then hands
//!   audio over in fragments of up to ~2 s: the verdict waits for the next fragment.
//! - `BufferSize::Fixed(n)` sets the fragment to `n` frames but also caps the server-side
//!   queue (`maxlength`) at the same `n` frames, so any burst (a tunnel's pre-roll, a
//!   scheduling hiccup) overflows the queue and is silently dropped.
//!
//! The two attributes are independent in the protocol: a small `fragsize` with the largest
//! `maxlength` is both prompt and lossless. This module opens such a record stream with the
//! same pure-Rust protocol client that cpal uses, and feeds f32 samples to a callback.
//! `capture_chunks` (probe/examples) measures the three settings; BENCHMARKS.md has the
//! figures.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use futures::executor::block_on;
use pulseaudio::protocol;

use crate::audio::{AudioError, AudioErrorKind};

/// How often the liveness thread asks the server for the stream's timing: a dead server
/// shows up as an error here within this period plus the round trip.
const LIVENESS_PERIOD: Duration = Duration::from_millis(200);

fn err(kind: AudioErrorKind, message: String) -> AudioError {
    AudioError { kind, message }
}

/// The process's one connection to the PulseAudio server for native record streams.
///
/// The `pulseaudio` crate's connection runs a protocol thread that ends only when the
/// server closes the socket: a connection per stream would leave a thread and a server
/// connection behind after every listen (PulseAudio serves a bounded number of native
/// clients), and each would log a "Client disconnected" error when the server goes. One
/// shared connection carries every stream instead; a connection the server closed is
/// replaced at the next stream.
static SHARED: std::sync::Mutex<Option<pulseaudio::Client>> = std::sync::Mutex::new(None);

/// The shared connection; a new one when `fresh` (the last one failed) or when there is
/// none yet.
fn shared_client(fresh: bool) -> Result<pulseaudio::Client, AudioError> {
    let mut slot = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if fresh {
        *slot = None;
    }
    if let Some(c) = slot.as_ref() {
        return Ok(c.clone());
    }
    let client = pulseaudio::Client::from_env(c"earshot-probe").map_err(|e| {
        err(
            AudioErrorKind::HostUnavailable,
            format!("no PulseAudio server answers (PULSE_SERVER / XDG_RUNTIME_DIR): {e}"),
        )
    })?;
    *slot = Some(client.clone());
    Ok(client)
}

/// A running record stream. Dropping it deletes the stream (without waiting for the server).
pub struct Capture {
    stream: Option<pulseaudio::RecordStream>,
    // The shared connection, kept as long as the stream even if another replaces it.
    _client: pulseaudio::Client,
    rate: u32,
    channels: u16,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Opens the source named `source` (PulseAudio's name, e.g. `speakers.monitor`) at its
    /// own rate and channel count as f32, with fragments of `fragment_ms`. `on_data` runs on
    /// the protocol thread for every fragment: it must not block.
    ///
    /// # Errors
    /// [`AudioError`]: `HostUnavailable` when no server answers, `DeviceNotAvailable` when
    /// the source is gone, `Backend` for anything else the server refuses.
    pub fn open(
        source: &str,
        fragment_ms: u32,
        on_data: impl FnMut(&[f32]) + Send + 'static,
    ) -> Result<Capture, AudioError> {
        Capture::open_with_errors(source, fragment_ms, on_data, |_| {})
    }

    /// [`Capture::open`], with `on_error` told (once) when the connection fails while the
    /// stream runs.
    ///
    /// # Errors
    /// As [`Capture::open`].
    pub fn open_with_errors(
        source: &str,
        fragment_ms: u32,
        mut on_data: impl FnMut(&[f32]) + Send + 'static,
        on_error: impl FnOnce(String) + Send + 'static,
    ) -> Result<Capture, AudioError> {
        let name = CString::new(source).map_err(|_| {
            err(
                AudioErrorKind::NoMatch,
                format!("source name `{source}` contains a NUL byte"),
            )
        })?;
        // The shared connection may be one the server has closed since (a restarted
        // server): asked again on a new one before the source counts as missing.
        let mut client = shared_client(false)?;
        let info = match block_on(client.source_info_by_name(name.clone())) {
            Ok(info) => info,
            Err(_) => {
                client = shared_client(true)?;
                block_on(client.source_info_by_name(name)).map_err(|e| {
                    err(
                        AudioErrorKind::DeviceNotAvailable,
                        format!("source `{source}` is not on the server: {e}"),
                    )
                })?
            }
        };
        let spec = protocol::SampleSpec {
            format: protocol::SampleFormat::Float32Le,
            channels: info.sample_spec.channels.max(1),
            sample_rate: info.sample_spec.sample_rate,
        };
        let frame_bytes = 4 * u32::from(spec.channels);
        let fragment = (spec.sample_rate / 1000).max(1) * fragment_ms.max(1) * frame_bytes;
        let params = protocol::RecordStreamParams {
            sample_spec: spec,
            channel_map: info.channel_map,
            source_index: Some(info.index),
            buffer_attr: protocol::stream::BufferAttr {
                // The largest queue the server allows: a burst is kept, never dropped.
                max_length: u32::MAX,
                fragment_size: fragment,
                ..Default::default()
            },
            flags: protocol::stream::StreamFlags {
                // Let the server lower the source's latency to match the fragment.
                adjust_latency: true,
                ..Default::default()
            },
            ..Default::default()
        };
        // Converted in stack-sized pieces: nothing allocates on the protocol thread.
        let sink = move |bytes: &[u8]| {
            let mut buf = [0f32; 1024];
            for piece in bytes.chunks(buf.len() * 4) {
                let mut n = 0;
                for (slot, b) in buf.iter_mut().zip(piece.chunks_exact(4)) {
                    *slot = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    n += 1;
                }
                on_data(&buf[..n]);
            }
        };
        let stream = block_on(client.create_record_stream(params, sink)).map_err(|e| {
            err(
                AudioErrorKind::Backend,
                format!("source `{source}`: the server refused a record stream: {e}"),
            )
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let (watch, flag) = (stream.clone(), stop.clone());
        let what = source.to_owned();
        // A dead server ends the protocol thread; the next timing query then fails. If the
        // query itself hangs, the caller's progress watchdog sees the missing audio.
        thread::Builder::new()
            .name("earshot-pa-liveness".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    if let Err(e) = block_on(watch.timing_info()) {
                        if !flag.load(Ordering::Acquire) {
                            on_error(format!(
                                "source `{what}`: connection to the server lost: {e}"
                            ));
                        }
                        return;
                    }
                    thread::sleep(LIVENESS_PERIOD);
                }
            })
            .map_err(|e| {
                err(
                    AudioErrorKind::Backend,
                    format!("source `{source}`: cannot start a thread: {e}"),
                )
            })?;
        Ok(Capture {
            stream: Some(stream),
            _client: client,
            rate: spec.sample_rate,
            channels: u16::from(spec.channels),
            stop,
        })
    }

    /// Samples per second per channel.
    pub fn sample_rate_hz(&self) -> u32 {
        self.rate
    }

    /// Interleaved channels per frame.
    pub fn channels(&self) -> u16 {
        self.channels
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Deleting sends the command without waiting for the answer.
        drop(self.stream.take());
    }
}

/// How a sink leaves what is played on it, as the session's sound settings show it.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkState {
    /// The sink's name.
    pub name: String,
    /// Muted.
    pub muted: bool,
    /// The loudest channel's volume, 1.0 for 100 % (pactl's percentage / 100).
    pub volume: f64,
}

/// The state of sink `name`, or of the server's default sink (what a client playing on
/// `default` reaches) when `None`.
///
/// # Errors
/// [`AudioError`] when no server answers or the sink is not there.
pub fn sink_state(name: Option<&str>) -> Result<SinkState, AudioError> {
    let client = shared_client(false)?;
    let name = match name {
        Some(n) => CString::new(n).map_err(|_| {
            err(
                AudioErrorKind::NoMatch,
                format!("sink name `{n}` contains a NUL byte"),
            )
        })?,
        None => block_on(client.server_info())
            .ok()
            .and_then(|i| i.default_sink_name)
            .ok_or_else(|| {
                err(
                    AudioErrorKind::NoMatch,
                    "the server has no default sink".into(),
                )
            })?,
    };
    let info = block_on(client.sink_info_by_name(name.clone())).map_err(|e| {
        err(
            AudioErrorKind::DeviceNotAvailable,
            format!(
                "sink `{}` is not on the server: {e}",
                name.to_string_lossy()
            ),
        )
    })?;
    let volume = info
        .cvolume
        .channels()
        .iter()
        .map(|v| f64::from(v.as_u32()) / f64::from(pulseaudio::protocol::Volume::NORM.as_u32()))
        .fold(0.0, f64::max);
    Ok(SinkState {
        name: name.to_string_lossy().into_owned(),
        muted: info.muted,
        volume,
    })
}
