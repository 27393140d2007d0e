//! The audio host: connecting (and what `auto` means), the connections kept, the device
//! catalogue (with WASAPI's loopback entries), and the format a stream is opened with.

use std::sync::Arc;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait};

use super::{err, with_watchdog};
use crate::audio::{
    looks_like_monitor, AudioError, AudioErrorKind, DeviceDirection, DeviceInfo, HostChoice,
    StreamFormat,
};

/// How long a catalogue query may take before the watchdog reports the server stalled.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(5);

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
            // (lab/README.md, "What the audio servers do"), so ask for PulseAudio explicitly first.
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
                                "audio service unavailable: {why}, but no PulseAudio server \
                                 answers ({e}); start the session's audio service \
                                 (PulseAudio or pipewire-pulse) and run again"
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
pub(super) fn output_device(
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
pub(super) fn host_and_catalog(
    host: HostChoice,
) -> Result<(Arc<cpal::Host>, Vec<DeviceInfo>), AudioError> {
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

pub(super) fn format_of(c: &cpal::SupportedStreamConfig) -> StreamFormat {
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
pub(super) fn is_wasapi_loopback(host: &cpal::Host, info: &DeviceInfo) -> bool {
    host.id() == cpal::HostId::Wasapi
        && info.direction == DeviceDirection::Input
        && info.id.ends_with(LOOPBACK_SUFFIX)
}

#[cfg(not(windows))]
pub(super) fn is_wasapi_loopback(_host: &cpal::Host, _info: &DeviceInfo) -> bool {
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

pub(super) fn lookup(host: &cpal::Host, info: &DeviceInfo) -> Result<cpal::Device, AudioError> {
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

/// The device's default format or, where cpal cannot carry the device's own sample format
/// (a PulseAudio sink running µ-law or A-law, as a lab tunnel can), the nearest format cpal
/// offers for it: 32-bit float (else 16-bit), two channels where offered, 48 kHz where in
/// range (else the highest rate); the audio server converts. The default's error stands
/// when nothing is offered.
pub(super) fn stream_config<I>(
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
