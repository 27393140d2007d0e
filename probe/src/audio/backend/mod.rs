//! The audio backend: real devices through cpal (and, on Linux, native PulseAudio record
//! streams), by role:
//!
//! - `host`: connecting to the audio host, the host cache, the device catalogue and the
//!   formats a stream is opened with;
//! - `play`: rendering a signal and playing it on an output;
//! - `capture`: a running input stream (`Capture`) and what reads it whole: `record`
//!   and `hold_input`. Detection while recording is a consumer of a capture's blocks in
//!   `analysis::listen`, not part of the backend.
//!
//! This file holds what the three share: the worker-thread discipline and the stream
//! faults. Every function here is blocking and bounded: it returns within its timeout plus
//! a small margin even when the audio server misbehaves (a stream's setup, life and drop
//! run on a thread of its own that can be abandoned). The agent calls them from
//! `tokio::task::spawn_blocking`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use crate::audio::{AudioError, AudioErrorKind};

mod capture;
mod host;
mod play;

pub(crate) use capture::Capture;
pub use capture::{hold_input, record, record_with};
pub use host::{catalog, host_name};
pub use play::{play, play_rendered};

pub(super) fn err(kind: AudioErrorKind, message: String) -> AudioError {
    AudioError { kind, message }
}

/// Runs on a stream's worker thread once the stream is set up. If the caller was told
/// (`announced`), keeps the stream until the caller drops its stop sender, then drops it
/// here and reports that on `done`; if dropping hangs (a dead server, lab/README.md, "What the audio servers do", 5),
/// only this thread hangs. If the caller had already given up (its start watchdog fired),
/// the stream is abandoned without being dropped.
pub(super) fn hold_stream<S>(
    stream: S,
    announced: bool,
    stop: &mpsc::Receiver<()>,
    done: &mpsc::Sender<()>,
) {
    if !announced {
        std::mem::forget(stream);
        return;
    }
    let _ = stop.recv();
    drop(stream);
    let _ = done.send(());
}

/// Where a stream's error callback reports. It runs on the audio thread, so it only counts
/// or makes one bounded `try_send`, never blocks.
#[derive(Clone)]
pub(super) struct FaultSink {
    xruns: Arc<AtomicU64>,
    failures: mpsc::SyncSender<String>,
}

/// The reading end of a [`FaultSink`].
pub(super) struct Faults {
    xruns: Arc<AtomicU64>,
    failures: mpsc::Receiver<String>,
}

pub(super) fn faults() -> (FaultSink, Faults) {
    let xruns = Arc::new(AtomicU64::new(0));
    let (failures, rx) = mpsc::sync_channel::<String>(8);
    (
        FaultSink {
            xruns: xruns.clone(),
            failures,
        },
        Faults {
            xruns,
            failures: rx,
        },
    )
}

impl FaultSink {
    /// Reports a cpal stream error. An xrun (`ErrorKind::Xrun`) is a glitch every cpal host
    /// recovers from and keeps streaming after (WASAPI flags a capture packet as a data
    /// discontinuity; Wine's winepulse flags them whenever PULSE_LATENCY_MSEC is set): it
    /// is counted in [`StreamHealth::xruns`], not taken for a failed stream.
    pub(super) fn cpal(&self, id: &str, e: &cpal::Error) {
        if e.kind() == cpal::ErrorKind::Xrun {
            self.xruns.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed(format!("device `{id}`: {e}"));
        }
    }

    /// Reports that the stream failed.
    pub(super) fn failed(&self, message: String) {
        let _ = self.failures.try_send(message);
    }
}

impl Faults {
    /// The first failure not yet taken, if any.
    pub(super) fn failure(&self) -> Option<String> {
        self.failures.try_recv().ok()
    }

    /// Xruns reported so far.
    pub(super) fn xruns(&self) -> u64 {
        self.xruns.load(Ordering::Relaxed)
    }
}

pub(super) fn unsupported_format(id: &str, format: cpal::SampleFormat) -> AudioError {
    err(
        AudioErrorKind::UnsupportedFormat,
        format!(
            "device `{id}`: sample format {format} is not supported (f32, i16, i32 and u8 are)"
        ),
    )
}

/// Runs `f` on a worker thread and waits at most `timeout`. A server that stops answering
/// (calls that never return once the daemon is wedged: lab/README.md, "What the audio servers do", 5) leaves the worker blocked;
/// it is abandoned, not joined, so the probe carries on and reports `Stalled`.
pub(super) fn with_watchdog<T: Send + 'static>(
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

/// How long an input stream may take to deliver its first packet (lab/README.md, "What the audio servers do", 1:
/// PulseAudio's input `play()` blocks until then, forever if nothing comes).
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(4);
/// How long stopping a stream may take before its thread is abandoned (pitfall 5).
pub(super) const STOP_TIMEOUT: Duration = Duration::from_secs(1);
/// Poll period of the consumer; bounds how late cancel and the deadline are seen.
pub(crate) const POLL: Duration = Duration::from_millis(10);

pub(super) fn stream_err(id: &str, what: &str, e: impl std::fmt::Display) -> AudioError {
    let text = e.to_string();
    let kind = if text.contains("no longer available")
        || text.contains("not available")
        || text.contains("disconnected")
    {
        AudioErrorKind::DeviceNotAvailable
    } else if text.contains("busy") {
        AudioErrorKind::DeviceBusy
    } else {
        AudioErrorKind::Backend
    };
    err(kind, format!("device `{id}`: {what}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xrun_is_counted_while_any_other_stream_error_is_a_failure() {
        let (sink, faults) = faults();
        sink.cpal("wasapi:mic", &cpal::Error::new(cpal::ErrorKind::Xrun));
        sink.cpal("wasapi:mic", &cpal::Error::new(cpal::ErrorKind::Xrun));
        assert_eq!(faults.xruns(), 2);
        assert_eq!(faults.failure(), None);
        sink.cpal(
            "wasapi:mic",
            &cpal::Error::new(cpal::ErrorKind::DeviceNotAvailable),
        );
        let failure = faults.failure().expect("the failure is reported");
        assert!(failure.starts_with("device `wasapi:mic`: "), "{failure}");
        assert_eq!(faults.xruns(), 2);
    }
}
