//! The cpal backend: real devices. CONTRACT (filled in by the device work).
//!
//! Every function here is blocking and bounded: it returns within its timeout plus a
//! small margin even when the audio server misbehaves. The agent calls them from
//! `tokio::task::spawn_blocking`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait};

use crate::analysis::{best_channel, channel_number, Detector};
use crate::audio::{
    looks_like_monitor, ring, select, AudioError, AudioErrorKind, CancelFlag, CaptureOptions,
    DeviceDirection, DeviceInfo, DeviceSelector, HostChoice, ListenReport, PlayReport,
    RecordReport, StreamFormat, StreamHealth,
};
use crate::signal::Signature;
use crate::unix_ms;
use crate::wav::Audio;

/// How long a catalogue query may take before the watchdog reports the server stalled.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(5);

fn err(kind: AudioErrorKind, message: String) -> AudioError {
    AudioError { kind, message }
}

/// Runs on a stream's worker thread once the stream is set up. If the caller was told
/// (`announced`), keeps the stream until the caller drops its stop sender, then drops it
/// here and reports that on `done`; if dropping hangs (a dead server, lab.md pitfall 5),
/// only this thread hangs. If the caller had already given up (its start watchdog fired),
/// the stream is abandoned without being dropped.
fn hold_stream<S>(stream: S, announced: bool, stop: &mpsc::Receiver<()>, done: &mpsc::Sender<()>) {
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
struct FaultSink {
    xruns: Arc<AtomicU64>,
    failures: mpsc::SyncSender<String>,
}

/// The reading end of a [`FaultSink`].
struct Faults {
    xruns: Arc<AtomicU64>,
    failures: mpsc::Receiver<String>,
}

fn faults() -> (FaultSink, Faults) {
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
    fn cpal(&self, id: &str, e: &cpal::Error) {
        if e.kind() == cpal::ErrorKind::Xrun {
            self.xruns.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed(format!("device `{id}`: {e}"));
        }
    }

    /// Reports that the stream failed.
    fn failed(&self, message: String) {
        let _ = self.failures.try_send(message);
    }
}

impl Faults {
    /// The first failure not yet taken, if any.
    fn failure(&self) -> Option<String> {
        self.failures.try_recv().ok()
    }

    /// Xruns reported so far.
    fn xruns(&self) -> u64 {
        self.xruns.load(Ordering::Relaxed)
    }
}

fn unsupported_format(id: &str, format: cpal::SampleFormat) -> AudioError {
    err(
        AudioErrorKind::UnsupportedFormat,
        format!(
            "device `{id}`: sample format {format} is not supported (f32, i16, i32 and u8 are)"
        ),
    )
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

/// Connects to the host. `Auto` is cpal's default: on Linux its PulseAudio host when a
/// server answers (PULSE_SERVER is read here), else ALSA; WASAPI on Windows; CoreAudio on
/// macOS.
///
/// `Auto` never falls back to ALSA where a PulseAudio server is expected (see
/// [`pulse_expected`]): ALSA without its server lists no devices, and "no device" in a
/// session is a policy finding. A dead audio service must read as a broken rig, so it is
/// [`AudioErrorKind::HostUnavailable`], "audio service unavailable".
fn connect_host(host: HostChoice) -> Result<cpal::Host, AudioError> {
    match host_id(host)? {
        None => {
            // cpal's default_host() silently prefers ALSA when its PulseAudio probe fails
            // (lab.md), so ask for PulseAudio explicitly first.
            #[cfg(target_os = "linux")]
            match cpal::host_from_id(cpal::HostId::PulseAudio) {
                Ok(h) => {
                    PULSE_REACHED.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Ok(h);
                }
                Err(e) => {
                    if let Some(why) = pulse_expected() {
                        return Err(err(
                            AudioErrorKind::HostUnavailable,
                            format!(
                                "audio service unavailable: {why}, but no PulseAudio server                                  answers ({e}); start the session's audio service (PulseAudio                                  or pipewire-pulse) and run again"
                            ),
                        ));
                    }
                }
            }
            Ok(cpal::default_host())
        }
        Some(id) => cpal::host_from_id(id).map_err(|e| {
            err(
                AudioErrorKind::HostUnavailable,
                format!(
                    "audio service unavailable: audio host `{}` is not reachable: {e}",
                    id.name()
                ),
            )
        }),
    }
}

/// Whether this process has reached a PulseAudio server: once it has, a server that stops
/// answering is a dead service, never a reason to fall back to ALSA.
#[cfg(target_os = "linux")]
static PULSE_REACHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Why a PulseAudio server is expected here, if it is: `PULSE_SERVER` names one, the user's
/// runtime folder has its socket, or this process has used one before.
#[cfg(target_os = "linux")]
fn pulse_expected() -> Option<String> {
    if let Some(v) = std::env::var_os("PULSE_SERVER").filter(|v| !v.is_empty()) {
        return Some(format!("PULSE_SERVER is {}", v.to_string_lossy()));
    }
    if PULSE_REACHED.load(std::sync::atomic::Ordering::Relaxed) {
        return Some("this probe reached a PulseAudio server before".into());
    }
    let socket = std::path::Path::new(&std::env::var_os("XDG_RUNTIME_DIR")?).join("pulse/native");
    socket
        .exists()
        .then(|| format!("{} exists", socket.display()))
}

/// The hosts this process is connected to: one per choice, shared, and on PulseAudio one
/// more per output device played on ([`output_device`]). cpal's PulseAudio host runs a
/// protocol thread per connection that never ends (it waits on the socket with no
/// timeout, and dropping the host does not wake it), so a host per operation would leave a
/// server connection behind every time until the server refuses new clients. A host whose
/// server went away is forgotten ([`host_and_catalog`]) and the next use connects afresh.
static HOSTS: std::sync::Mutex<Vec<CachedHost>> = std::sync::Mutex::new(Vec::new());

/// A connected host: the choice it answers, the output device it is kept for (`None`: the
/// shared one), the host.
struct CachedHost {
    choice: HostChoice,
    output: Option<String>,
    host: Arc<cpal::Host>,
}

fn open_host(host: HostChoice) -> Result<Arc<cpal::Host>, AudioError> {
    open_host_for(host, None)
}

fn open_host_for(host: HostChoice, output: Option<&str>) -> Result<Arc<cpal::Host>, AudioError> {
    let mut hosts = HOSTS
        .lock()
        .map_err(|_| err(AudioErrorKind::Backend, "the host cache is poisoned".into()))?;
    if let Some(i) = hosts
        .iter()
        .position(|c| c.choice == host && c.output.as_deref() == output)
    {
        // `Auto` resolved to another host while no PulseAudio server answered: one that
        // answers now (started or restarted since) is taken at the next request.
        #[cfg(target_os = "linux")]
        if host == HostChoice::Auto && hosts[i].host.id() != cpal::HostId::PulseAudio {
            if let Ok(h) = cpal::host_from_id(cpal::HostId::PulseAudio) {
                PULSE_REACHED.store(true, std::sync::atomic::Ordering::Relaxed);
                hosts[i].host = Arc::new(h);
            }
        }
        return Ok(hosts[i].host.clone());
    }
    let h = Arc::new(connect_host(host)?);
    hosts.push(CachedHost {
        choice: host,
        output: output.map(str::to_string),
        host: h.clone(),
    });
    Ok(h)
}

/// Forgets the host kept for `host` and `output` (`None`: the shared one).
fn forget_host(host: HostChoice, output: Option<&str>) {
    if let Ok(mut hosts) = HOSTS.lock() {
        hosts.retain(|c| !(c.choice == host && c.output.as_deref() == output));
    }
}

/// The device to play on `info` with, from `shared` (the host the catalogue came from) or,
/// on PulseAudio, from a connection kept for that output device alone. cpal's PulseAudio
/// host puts every playback stream of a connection in the same sync group (id 0), and
/// PulseAudio refuses a stream synced with one on another sink (PA_ERR_INVALID, "Invalid
/// argument"): through one connection, a play on the speakers while another plays into the
/// microphone feed failed. Own connections also keep a stream from being synced to another
/// one's clock. The connections are bounded by the output devices played on.
fn output_device(
    host: HostChoice,
    shared: &cpal::Host,
    info: &DeviceInfo,
) -> Result<cpal::Device, AudioError> {
    #[cfg(target_os = "linux")]
    if shared.id() == cpal::HostId::PulseAudio {
        let own = open_host_for(host, Some(&info.id))?;
        return match lookup(&own, info) {
            Ok(d) => Ok(d),
            Err(_) => {
                // Its server went away since: connect afresh once.
                forget_host(host, Some(&info.id));
                let own = open_host_for(host, Some(&info.id))?;
                lookup(&own, info)
            }
        };
    }
    let _ = host;
    lookup(shared, info)
}

/// The host and its catalogue; a cached host that no longer answers is replaced once.
fn host_and_catalog(host: HostChoice) -> Result<(Arc<cpal::Host>, Vec<DeviceInfo>), AudioError> {
    let h = open_host(host)?;
    match list(&h) {
        Ok(c) => Ok((h, c)),
        Err(_) => {
            forget_host(host, None);
            let h = open_host(host)?;
            let c = list(&h)?;
            Ok((h, c))
        }
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
    add_wasapi_loopbacks(host, &mut out);
    Ok(out)
}

/// Suffix of the catalogue entries that stand for an output's loopback capture.
#[cfg(windows)]
const LOOPBACK_SUFFIX: &str = ".monitor";

/// WASAPI records what an output device plays (loopback capture) through an input stream
/// opened on the output device itself. The catalogue lists that as an input named like a
/// PulseAudio monitor, `<output id>.monitor`, so `loopback:<output>` selects it the same
/// way on every host.
#[cfg(windows)]
fn add_wasapi_loopbacks(host: &cpal::Host, out: &mut Vec<DeviceInfo>) {
    if host.id() != cpal::HostId::Wasapi {
        return;
    }
    let loopbacks: Vec<DeviceInfo> = out
        .iter()
        .filter(|d| d.direction == DeviceDirection::Output)
        .map(|d| DeviceInfo {
            id: format!("{}{LOOPBACK_SUFFIX}", d.id),
            name: format!("Monitor of {}", d.name),
            direction: DeviceDirection::Input,
            is_default: false,
            is_monitor: true,
            default_format: d.default_format.clone(),
        })
        .collect();
    out.extend(loopbacks);
}

#[cfg(not(windows))]
fn add_wasapi_loopbacks(_host: &cpal::Host, _out: &mut [DeviceInfo]) {}

/// Whether `info` is a WASAPI loopback entry (an output device recorded as an input).
#[cfg(windows)]
fn is_wasapi_loopback(host: &cpal::Host, info: &DeviceInfo) -> bool {
    host.id() == cpal::HostId::Wasapi
        && info.direction == DeviceDirection::Input
        && info.id.ends_with(LOOPBACK_SUFFIX)
}

#[cfg(not(windows))]
fn is_wasapi_loopback(_host: &cpal::Host, _info: &DeviceInfo) -> bool {
    false
}

/// The cpal device id to open for `info`: a WASAPI loopback entry opens its output.
fn open_id<'a>(host: &cpal::Host, info: &'a DeviceInfo) -> &'a str {
    #[cfg(windows)]
    if is_wasapi_loopback(host, info) {
        return info.id.trim_end_matches(LOOPBACK_SUFFIX);
    }
    let _ = host;
    info.id.as_str()
}

/// Lists every device of the host.
///
/// # Errors
/// [`AudioError`] when the host cannot be reached.
pub fn catalog(host: HostChoice) -> Result<Vec<DeviceInfo>, AudioError> {
    with_watchdog(
        format!("listing devices of host {host:?}"),
        CATALOG_TIMEOUT,
        move || host_and_catalog(host).map(|(_, c)| c),
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
/// audio the server has not played yet (lab.md pitfall 3).
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
                    // BufferSize::Default: Fixed sizes underrun on tunnel sinks (lab.md).
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
        // A stream that stops consuming for 2 s is stalled (lab.md: a dead server).
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
    })
}

/// How long an input stream may take to deliver its first packet (lab.md pitfall 1:
/// PulseAudio's input `play()` blocks until then, forever if nothing comes).
const START_TIMEOUT: Duration = Duration::from_secs(4);
/// How long stopping a stream may take before its thread is abandoned (pitfall 5).
const STOP_TIMEOUT: Duration = Duration::from_secs(1);
/// How long past its duration a recording may wait for audio still in the server.
const TAIL_GRACE: Duration = Duration::from_millis(2500);
/// Deliveries a capture remembers for [`Pump::heard_unix_ms`]: 100 minutes of 10 ms
/// fragments, 1.6 MB.
const MAX_DELIVERIES: usize = 600_000;

/// Poll period of the consumer; bounds how late cancel and the deadline are seen.
const POLL: Duration = Duration::from_millis(10);
/// How long an input may deliver nothing before it counts as lost ([`Live::no_audio_limit`]).
/// A native PulseAudio source can pause after its first audio while it re-buffers its far
/// end (a tunnel source attached to an idle stream: seen at over 1.5 s in CI); a server
/// that dies is seen sooner, by the capture's liveness query.
#[cfg(target_os = "linux")]
const NO_AUDIO_NATIVE: Duration = Duration::from_millis(3000);
const NO_AUDIO_OTHER: Duration = Duration::from_millis(4000);

fn lookup(host: &cpal::Host, info: &DeviceInfo) -> Result<cpal::Device, AudioError> {
    let devices = host.devices().map_err(|e| {
        err(
            AudioErrorKind::DeviceNotAvailable,
            format!("device `{}`: cannot list devices: {e}", info.id),
        )
    })?;
    let wanted = open_id(host, info);
    for d in devices {
        if device_id(&d).as_deref() == Some(wanted) {
            return Ok(d);
        }
    }
    Err(err(
        AudioErrorKind::DeviceNotAvailable,
        format!("device `{}` vanished", info.id),
    ))
}

fn stream_err(id: &str, what: &str, e: impl std::fmt::Display) -> AudioError {
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

/// Messages from a capture worker thread to the caller.
enum Worker {
    Started(DeviceInfo, StreamFormat, ring::Consumer, Duration),
    Failed(AudioError),
}

/// A running capture: device, format, the ring's reading end, the stop sender (dropping
/// it stops the stream) and the receiver told when the stream is closed.
/// The last item is how long the stream may deliver nothing before it counts as lost
/// ([`Live::no_audio_limit`]).
type Capture = (
    DeviceInfo,
    StreamFormat,
    ring::Consumer,
    mpsc::Sender<()>,
    mpsc::Receiver<()>,
    Duration,
);

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

/// The device's default format or, where cpal cannot carry the device's own sample format
/// (a PulseAudio sink running µ-law or A-law, as a lab tunnel can), the nearest format cpal
/// offers for it: 32-bit float (else 16-bit), two channels where offered, 48 kHz where in
/// range (else the highest rate); the audio server converts. The default's error stands
/// when nothing is offered.
fn stream_config<I>(
    default: Result<cpal::SupportedStreamConfig, cpal::Error>,
    offered: impl FnOnce() -> Result<I, cpal::Error>,
) -> Result<cpal::SupportedStreamConfig, cpal::Error>
where
    I: Iterator<Item = cpal::SupportedStreamConfigRange>,
{
    let error = match default {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    let Ok(ranges) = offered() else {
        return Err(error);
    };
    let rank = |r: &cpal::SupportedStreamConfigRange| {
        let format = match r.sample_format() {
            cpal::SampleFormat::F32 => 0,
            cpal::SampleFormat::I16 => 1,
            _ => 9,
        };
        (format, u16::from(r.channels() != 2), r.channels())
    };
    let best = ranges.filter(|r| rank(r).0 < 9).min_by_key(|r| rank(r));
    match best {
        Some(r) => Ok(r
            .try_with_sample_rate(48_000)
            .unwrap_or_else(|| r.with_max_sample_rate())),
        None => Err(error),
    }
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
    // BufferSize::Default: Fixed sizes lose input data on PulseAudio (lab.md).
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

/// Opens the input stream on its own thread. The thread owns the stream for its whole
/// life: it is the only place a stalled `play()` or `drop` can block, so the caller can
/// always walk away. Returns the consumer end and a stop sender; dropping the sender
/// stops the stream.
fn start_capture(
    host: HostChoice,
    selector: &DeviceSelector,
    ring_seconds: f64,
    errors: FaultSink,
) -> Result<Capture, AudioError> {
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
        Ok(Worker::Started(info, format, cons, limit)) => {
            Ok((info, format, cons, stop_tx, done_rx, limit))
        }
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
    let opened = Instant::now();
    let (err_tx, err_rx) = faults();
    // Input may arrive in bursts of ~2 s (lab.md): the ring holds 4 s so nothing drops.
    let (info, format, cons, stop, done, quiet) = start_capture(host, device, 4.0, err_tx)?;
    let mut pump = Pump::new(&info, &format, cons, err_rx, opened, quiet);
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
        if let Err(e) = pump.pull(&mut samples) {
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
    stop_capture(stop, &done, &info.id, &mut health);
    samples.truncate(wanted);
    let health = pump.health(health);
    result?;
    let frames = samples.len() / usize::from(format.channels.max(1));
    let report = RecordReport {
        continuity: None,
        quality: None,
        recorded_ms: frames as f64 * 1000.0 / f64::from(format.sample_rate_hz.max(1)),
        device: info,
        format: format.clone(),
        health,
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
    let opened = Instant::now();
    let (err_tx, err_rx) = faults();
    let (info, format, cons, stop, done, quiet) = start_capture(host, device, 4.0, err_tx)?;
    let mut pump = Pump::new(&info, &format, cons, err_rx, opened, quiet);
    let mut on_audio = Some(on_audio);
    let mut block = Vec::new();
    let result = loop {
        block.clear();
        match pump.pull(&mut block) {
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
    let mut health = StreamHealth::default();
    stop_capture(stop, &done, &info.id, &mut health);
    result
}

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
    let (err_tx, err_rx) = faults();
    let (info, format, cons, stop, done, quiet) = start_capture(host, device, 4.0, err_tx)?;
    let mut pump = Pump::new(&info, &format, cons, err_rx, started, quiet);
    let channels = usize::from(format.channels.max(1));
    let mut detectors = (0..channels)
        .map(|_| Detector::new(signature, format.sample_rate_hz))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            err(
                AudioErrorKind::UnsupportedFormat,
                format!("device `{}`: {e}", info.id),
            )
        })?;
    let mut on_armed = Some(on_armed);
    let mut block = Vec::new();
    let mut mono = Vec::new();
    let mut kept = Vec::new();
    let mut health = StreamHealth::default();
    let mut found: Option<usize> = None;
    let mut cancelled = false;
    let result = loop {
        block.clear();
        let pulled = pump.pull(&mut block);
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
        let live = pump
            .armed_ms
            .map(|ms| started.elapsed().as_secs_f64() * 1000.0 - ms);
        let over = live.is_some_and(|ms| ms >= options.timeout.as_secs_f64() * 1000.0);
        cancelled = found.is_none() && cancel.is_cancelled();
        if found.is_some() || cancelled || over {
            break Ok(());
        }
        thread::sleep(POLL);
    };
    stop_capture(stop, &done, &info.id, &mut health);
    let health = pump.health(health);
    result?;
    let analyses: Vec<_> = detectors.iter_mut().map(Detector::analysis).collect();
    let channel = best_channel(&analyses).unwrap_or(0);
    let analysis = analyses[channel].clone();
    // When the onset reached this probe, not when it was played into the stream: a
    // source can deliver ahead of the wall clock (a null sink's monitor renders a block
    // at once), and an epoch reckoned from the frame count put onsets before their plays.
    let onset_unix_ms = match (analysis.detected, analysis.onset_ms) {
        (true, Some(onset)) => pump.heard_unix_ms(onset),
        _ => None,
    };
    let report = ListenReport {
        device: info,
        format: format.clone(),
        analysis,
        channel: channel_number(channel),
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        armed_ms: pump.armed_ms,
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
