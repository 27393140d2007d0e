//! The real [`Handler`]: cpal devices through [`crate::audio::backend`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{base_info, Handler};
use crate::audio::DeviceSelector;
use crate::audio::{
    backend, AudioError, CancelFlag, CaptureOptions, HostChoice, ListenReport, PlayReport,
    RecordReport,
};
use crate::proto::msg::{
    ListenRequest, PlayRequest, PrimedInput, ProbeInfo, RecordRequest, SessionServer,
};
use crate::signal::{continuity, quality, speech, Signature};
use crate::wav::Audio;

/// How long an `info` answer is reused: many clients asking at once share one catalogue
/// query instead of each opening the audio server.
const INFO_CACHE: Duration = Duration::from_secs(2);

/// Serves requests on the devices of one audio host.
pub struct DeviceHandler {
    host: HostChoice,
    max_capture: Duration,
    xrdp_ini: std::path::PathBuf,
    cache: Mutex<Option<(Instant, Catalogue)>>,
    primers: Vec<Primer>,
}

/// How long the primer waits before opening its input again after a failure.
const PRIMER_RETRY: Duration = Duration::from_secs(2);

/// An input held open on its own thread for the probe's life (`--prime-input`), opened
/// again after any failure; dropping it closes the input.
struct Primer {
    device: String,
    state: Arc<Mutex<PrimerState>>,
    cancel: CancelFlag,
}

#[derive(Default)]
struct PrimerState {
    /// Since when the device has delivered audio without a break.
    since: Option<Instant>,
    error: Option<String>,
}

impl Primer {
    fn start(host: HostChoice, device: &str) -> Primer {
        let state = Arc::new(Mutex::new(PrimerState::default()));
        let cancel = CancelFlag::new();
        let selector = DeviceSelector::parse(device);
        let (st, stop) = (Arc::clone(&state), cancel.clone());
        // Open: since now, no error. Closed: no `since`, and the error if there was one
        // (a cancelled hold keeps the last error, which is still the last thing that failed).
        let set = |st: &Mutex<PrimerState>, since: Option<Instant>, error: Option<String>| {
            if let Ok(mut s) = st.lock() {
                s.since = since;
                if since.is_some() {
                    s.error = None;
                } else if error.is_some() {
                    s.error = error;
                }
            }
        };
        let spawned = std::thread::Builder::new()
            .name("earshot-primer".into())
            .spawn(move || {
                while !stop.is_cancelled() {
                    let r = backend::hold_input(host, &selector, &stop, |info| {
                        tracing::info!("holding input `{}` open (--prime-input)", info.id);
                        set(&st, Some(Instant::now()), None);
                    });
                    let error = r.err().map(|e| e.to_string());
                    if let Some(e) = &error {
                        tracing::warn!("--prime-input `{selector}`: {e}; opening it again");
                    }
                    set(&st, None, error);
                    let until = Instant::now() + PRIMER_RETRY;
                    while !stop.is_cancelled() && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            });
        if let Err(e) = spawned {
            set(&state, None, Some(format!("cannot start its thread: {e}")));
        }
        Primer {
            device: device.to_string(),
            state,
            cancel,
        }
    }

    fn status(&self) -> PrimedInput {
        let (open_ms, error) = match self.state.lock() {
            Ok(s) => (
                s.since.map(|t| t.elapsed().as_millis() as u64),
                s.error.clone(),
            ),
            Err(_) => (None, Some("its state was poisoned".into())),
        };
        PrimedInput {
            device: self.device.clone(),
            open_ms,
            error,
            connection_ms: super::rdp_connection::age().map(|d| d.as_millis() as u64),
        }
    }
}

impl Drop for Primer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl DeviceHandler {
    /// A handler on `host`; `max_capture` is reported in `info`.
    pub fn new(host: HostChoice, max_capture: Duration) -> DeviceHandler {
        DeviceHandler {
            host,
            max_capture,
            xrdp_ini: super::xrdp_ini::choose_path(None),
            cache: Mutex::new(None),
            primers: Vec::new(),
        }
    }

    /// Holds the input `device` selects open for the handler's life, reopening it after a
    /// failure: an on-demand microphone path is then open before any listen, and `info`
    /// says for how long, so the harness can prove a blocked capture sooner; a PulseAudio
    /// monitor held open keeps its sink rendering in small blocks, so a listener on it
    /// gets its first audio at once. Call again for more inputs.
    pub fn with_primed_input(mut self, device: &str) -> DeviceHandler {
        self.primers.push(Primer::start(self.host, device));
        self
    }

    /// Reports the xrdp settings of `path` instead of the default (see
    /// [`super::xrdp_ini::choose_path`]).
    pub fn with_xrdp_ini(mut self, path: std::path::PathBuf) -> DeviceHandler {
        self.xrdp_ini = path;
        self
    }

    /// The audio host and its device catalogue: the costly part of `info`.
    fn catalogue(&self) -> Catalogue {
        // A catalogue failure is reported in the answer, not as a failed request: the
        // harness still learns version, OS and session facts. The catalogue first: it finds
        // a server that went away (and says so), where the host's name alone would be the
        // cached connection's.
        let devices = backend::catalog(self.host);
        let host = match &devices {
            Err(e) if e.kind == crate::audio::AudioErrorKind::HostUnavailable => Err(e.clone()),
            _ => backend::host_name(self.host),
        };
        (host, devices)
    }

    /// Plays what `req` asks for: the continuity stream, the quality signal, the speech
    /// reference or the signature.
    fn play_signal(
        &self,
        req: &PlayRequest,
        cancel: &CancelFlag,
    ) -> Result<PlayReport, AudioError> {
        if let Some(ms) = req.continuity_ms {
            let seconds = ms as f64 / 1000.0;
            return backend::play_rendered(
                self.host,
                &req.device,
                move |rate| Ok(continuity::render(rate, seconds)),
                cancel,
            );
        }
        if req.quality {
            return backend::play_rendered(
                self.host,
                &req.device,
                |rate| Ok(quality::render(rate)),
                cancel,
            );
        }
        if req.speech {
            return backend::play_rendered(
                self.host,
                &req.device,
                |rate| {
                    speech::render(rate).map_err(|e| AudioError {
                        kind: crate::audio::AudioErrorKind::UnsupportedFormat,
                        message: format!(
                            "the output's rate cannot carry the speech reference: {e}"
                        ),
                    })
                },
                cancel,
            );
        }
        backend::play(
            self.host,
            &req.device,
            &Signature::new(req.seed, req.direction),
            cancel,
        )
    }
}

/// What `info` reuses for [`INFO_CACHE`]: the audio host and the device catalogue.
type Catalogue = (
    Result<String, crate::audio::AudioError>,
    Result<Vec<crate::audio::DeviceInfo>, crate::audio::AudioError>,
);

impl Handler for DeviceHandler {
    fn info(&self) -> ProbeInfo {
        // Holding the lock while querying makes concurrent callers wait for one query
        // (bounded by the backend's watchdogs) rather than each starting their own. Only
        // the catalogue is reused: the clock, the session and the host's settings are read
        // for every answer, so a policy written a moment ago is seen and the harness's
        // clock offset is never off by the cache's age.
        let (audio_host, devices) = match self.cache.lock() {
            Ok(mut c) => match c.as_ref() {
                Some((at, cat)) if at.elapsed() < INFO_CACHE => cat.clone(),
                _ => {
                    let cat = self.catalogue();
                    *c = Some((Instant::now(), cat.clone()));
                    cat
                }
            },
            Err(_) => self.catalogue(),
        };
        let mut info = base_info(self.max_capture);
        info.audio_host = audio_host;
        info.devices = devices;
        // Host facts only from the stack that serves the session: an xrdp.ini on a machine
        // whose session another server serves (GNOME Remote Desktop, say) is not evidence.
        info.xrdp = (info.session.server == Some(SessionServer::Xrdp))
            .then(|| super::xrdp_ini::read(&self.xrdp_ini))
            .flatten();
        // Windows only: the registry, services and boot time; the redirected endpoints are
        // picked from the catalogue.
        info.host_config = super::host_config::read(&info.devices);
        info.primed_inputs = self.primers.iter().map(Primer::status).collect();
        info.primed_input = info.primed_inputs.first().cloned();
        // Last: the clock as close to the answer as it can be.
        info.now_unix_ms = crate::unix_ms();
        info
    }

    fn play(&self, req: &PlayRequest, cancel: &CancelFlag) -> Result<PlayReport, AudioError> {
        let mut report = self.play_signal(req, cancel)?;
        // How the session's sound settings left it: a muted or silent output is named
        // where nothing arrives.
        report.output_state = output_state(&report.device);
        Ok(report)
    }

    fn record(
        &self,
        req: &RecordRequest,
        cancel: &CancelFlag,
        armed: &(dyn Fn() + Send + Sync),
    ) -> Result<(RecordReport, Option<Audio>), AudioError> {
        let options = CaptureOptions {
            timeout: Duration::from_millis(req.duration_ms),
            keep_audio: req.evidence,
        };
        let (mut report, audio) =
            backend::record_with(self.host, &req.device, &options, cancel, |_| armed())?;
        if req.continuity {
            let (_, r) = continuity::analyze_interleaved(
                &audio.samples,
                audio.channels,
                audio.sample_rate_hz,
            );
            report.continuity = Some(Box::new(r));
        }
        if req.quality {
            let (_, r) =
                quality::analyze_interleaved(&audio.samples, audio.channels, audio.sample_rate_hz);
            report.quality = Some(Box::new(r));
        }
        if req.speech {
            let r =
                speech::analyze_interleaved(&audio.samples, audio.channels, audio.sample_rate_hz);
            report.speech = Some(Box::new(r));
        }
        Ok((report, req.evidence.then_some(audio)))
    }

    fn listen(
        &self,
        req: &ListenRequest,
        cancel: &CancelFlag,
        armed: &(dyn Fn() + Send + Sync),
    ) -> Result<(ListenReport, Option<Audio>), AudioError> {
        let options = CaptureOptions {
            timeout: Duration::from_millis(req.timeout_ms),
            keep_audio: req.evidence,
        };
        crate::analysis::listen::listen_with(
            self.host,
            &req.device,
            &Signature::new(req.seed, req.direction),
            &options,
            cancel,
            |_| armed(),
        )
    }
}

/// The mute and volume of the sink `device` plays on: a `pulseaudio:` sink by its name, a
/// `default` or `pulse` device the server's default sink. Unknown elsewhere.
#[cfg(target_os = "linux")]
fn output_state(device: &crate::audio::DeviceInfo) -> Option<crate::audio::OutputState> {
    let sink = match device.id.strip_prefix("pulseaudio:") {
        Some(name) => Some(name),
        None if ["default", "pulse", "pipewire"]
            .iter()
            .any(|n| device.id.ends_with(n) || device.name == *n) =>
        {
            None
        }
        None => return None,
    };
    // Asked on its own thread and waited for a bounded time: a wedged audio server must
    // not hold the play's reply (the state is a hint, the play already happened).
    let sink = sink.map(str::to_string);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("earshot-sink-state".into())
        .spawn(move || {
            let _ = tx.send(crate::audio::pulse::sink_state(sink.as_deref()));
        })
        .ok()?;
    rx.recv_timeout(OUTPUT_STATE_WAIT)
        .ok()?
        .ok()
        .map(|s| crate::audio::OutputState {
            name: s.name,
            muted: s.muted,
            volume_pct: s.volume * 100.0,
        })
}

/// The longest a play's reply waits for its output's mute and volume.
#[cfg(target_os = "linux")]
const OUTPUT_STATE_WAIT: Duration = Duration::from_millis(500);

#[cfg(not(target_os = "linux"))]
fn output_state(_device: &crate::audio::DeviceInfo) -> Option<crate::audio::OutputState> {
    None
}
