//! A simulated audio world for the runner: fake probes (the real agent server over loopback
//! TCP, with this world as their handler) whose outputs reach inputs along routes. Used by
//! the runner's tests and by the fleet simulation (examples/fleet_sim.rs).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use earshot_probe::analysis::Analysis;
use earshot_probe::audio::{
    self, AudioError, AudioErrorKind, CancelFlag, DeviceDirection, DeviceInfo, ListenReport,
    PlayReport, RecordReport, StreamFormat, StreamHealth,
};
use earshot_probe::proto::auth::Token;
use earshot_probe::proto::msg::{
    ListenRequest, PlayRequest, ProbeInfo, RecordRequest, RemoteSession, SessionKind,
};
use earshot_probe::server::{base_info, Handler, Server, ServerConfig};
use earshot_probe::signal::Direction;
use earshot_probe::wav::Audio;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "runner-test-token-0123456789";

/// How a route carries sound from an output to an input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Carry {
    /// Whole and clean.
    Clean,
    /// Damaged: 10 of 16 symbols stand out, not detected.
    Damaged,
    /// Opens only after the input has been open this long (RDP's on-demand microphone).
    OnDemand(Duration),
    /// Garbled past recognition: sound at -25 dBFS while it plays, 2 of 16 symbols.
    Garbled,
}

/// A sound that reached an input.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub seed: u64,
    pub direction: Direction,
    pub carry: Carry,
    pub at: Instant,
    /// The continuity stream of this length instead of a signature.
    pub stream_ms: Option<u64>,
    /// The quality probe signal instead of a signature.
    pub quality: bool,
    /// The speech reference instead of a signature.
    pub speech: bool,
}

/// A device of a probe: (probe name, device id).
pub type Endpoint = (&'static str, &'static str);

/// Which (probe, output) reaches which (probe, input), and what arrived where.
#[derive(Default)]
pub struct World {
    pub routes: Vec<(Endpoint, Endpoint, Carry)>,
    pub arrivals: Mutex<HashMap<(&'static str, String), Vec<Arrival>>>,
    /// Inputs that hear other sound all the time (at -20 dBFS).
    pub noisy: Vec<(&'static str, &'static str)>,
}

impl World {
    /// A client and a session as the lab wires them: the session's output reaches the
    /// client's loopback and the client's microphone feed reaches the session's microphone
    /// when `redirected` (nothing crosses otherwise), and the client rig always hears
    /// itself (speakers -> their monitor, mic feed -> mic).
    pub fn wired(redirected: bool) -> World {
        let mut routes = vec![
            (
                ("local", "speakers"),
                ("local", "speakers.monitor"),
                Carry::Clean,
            ),
            (("local", "micfeed"), ("local", "mic"), Carry::Clean),
        ];
        if redirected {
            routes.push((
                ("remote", "rdp-sink"),
                ("local", "speakers.monitor"),
                Carry::Clean,
            ));
            routes.push((("local", "micfeed"), ("remote", "rdp-mic"), Carry::Clean));
        }
        World {
            routes,
            ..World::default()
        }
    }
}

/// One fake probe: its catalogue and its faults, in a shared world.
pub struct FakeProbe {
    pub name: &'static str,
    pub world: Arc<World>,
    pub devices: Result<Vec<DeviceInfo>, AudioError>,
    /// Requests on these devices fail with a backend error.
    pub broken: Vec<&'static str>,
    /// Added to every time this probe reports (a clock that is off).
    pub clock_skew_ms: f64,
    /// The xrdp.ini settings it reports, on an xrdp host.
    pub xrdp: Option<earshot_probe::proto::msg::XrdpSettings>,
    /// The registry, services and boot time it reports, on a Windows host.
    pub host_config: Option<earshot_probe::proto::msg::HostConfig>,
    pub primed_input: Option<earshot_probe::proto::msg::PrimedInput>,
    /// When the session's client reconnects: from then on the primed input reports a
    /// connection that young.
    pub reconnects_at: Option<Instant>,
    /// When it started: the primed input's ages grow from what `primed_input` says then.
    pub made: Instant,
    /// The host name it reports, when not its name in the world.
    pub hostname: Option<String>,
    /// The session it shows (default: `remote` for the probe named "remote", else local).
    pub session: Option<SessionKind>,
    /// The server it names as serving its session.
    pub server: Option<earshot_probe::proto::msg::SessionServer>,
}

pub fn dev(id: &str, direction: DeviceDirection, is_default: bool, is_monitor: bool) -> DeviceInfo {
    DeviceInfo {
        id: id.into(),
        name: id.into(),
        direction,
        is_default,
        is_monitor,
        default_format: None,
    }
}

pub fn client_devices() -> Vec<DeviceInfo> {
    vec![
        dev("speakers", DeviceDirection::Output, true, false),
        dev("micfeed", DeviceDirection::Output, false, false),
        dev("speakers.monitor", DeviceDirection::Input, false, true),
        dev("micfeed.monitor", DeviceDirection::Input, false, true),
        dev("mic", DeviceDirection::Input, true, false),
    ]
}

pub fn session_devices(output: bool, input: bool) -> Vec<DeviceInfo> {
    let mut d = vec![];
    if output {
        d.push(dev("rdp-sink", DeviceDirection::Output, true, false));
        d.push(dev("rdp-sink.monitor", DeviceDirection::Input, false, true));
    }
    if input {
        d.push(dev("rdp-mic", DeviceDirection::Input, true, false));
    }
    d
}

pub fn format() -> StreamFormat {
    StreamFormat {
        sample_rate_hz: 48_000,
        channels: 1,
        sample_format: "f32".into(),
    }
}

pub fn analysis(detected: bool, symbols: usize, rms_dbfs: f64, analyzed_ms: f64) -> Analysis {
    Analysis {
        detected,
        confidence: if detected { 0.9 } else { 0.3 },
        symbols_matched: symbols,
        onset_ms: detected.then_some(100.0),
        level_dbfs: detected.then_some(-12.0),
        snr_db_per_symbol: if detected { vec![40.0; 16] } else { vec![] },
        freq_error_ppm: None,
        dropouts: vec![],
        analyzed_ms,
        rms_dbfs,
    }
}

impl FakeProbe {
    /// A probe that works, with its clock right and no xrdp.ini.
    pub fn new(name: &'static str, world: Arc<World>, devices: Vec<DeviceInfo>) -> FakeProbe {
        FakeProbe {
            name,
            world,
            devices: Ok(devices),
            broken: vec![],
            clock_skew_ms: 0.0,
            xrdp: None,
            host_config: None,
            primed_input: None,
            reconnects_at: None,
            made: Instant::now(),
            hostname: None,
            session: None,
            server: None,
        }
    }

    /// This probe, showing a session of `kind`.
    pub fn showing(mut self, kind: SessionKind) -> FakeProbe {
        self.session = Some(kind);
        self
    }

    /// This probe, reporting `host` as its host name.
    pub fn on(mut self, host: &str) -> FakeProbe {
        self.hostname = Some(host.into());
        self
    }

    fn pick(
        &self,
        sel: &audio::DeviceSelector,
        dir: DeviceDirection,
    ) -> Result<DeviceInfo, AudioError> {
        let catalog = self.devices.as_ref().map_err(Clone::clone)?;
        let d = audio::select(catalog, sel, dir)?.clone();
        if self.broken.contains(&d.id.as_str()) {
            return Err(AudioError {
                kind: AudioErrorKind::Backend,
                message: format!("{}: the device failed to start", d.id),
            });
        }
        Ok(d)
    }

    /// What has arrived at this probe's input `device` so far.
    fn arrived_at(&self, device: &str) -> Vec<Arrival> {
        self.world
            .arrivals
            .lock()
            .map(|a| {
                a.get(&(self.name, device.to_string()))
                    .cloned()
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    fn now(&self) -> f64 {
        earshot_probe::unix_ms() + self.clock_skew_ms
    }
}

impl Handler for FakeProbe {
    fn info(&self) -> ProbeInfo {
        let mut i = base_info(Duration::from_secs(60));
        i.hostname = self.hostname.clone().unwrap_or_else(|| self.name.into());
        i.audio_host = Ok("Fake".into());
        i.devices = self.devices.clone();
        i.session = RemoteSession {
            kind: self.session.unwrap_or(if self.name == "remote" {
                SessionKind::Remote
            } else {
                SessionKind::Local
            }),
            evidence: vec![],
            server: self.server,
        };
        i.now_unix_ms = self.now();
        i.xrdp = self.xrdp.clone();
        i.host_config = self.host_config.clone();
        i.primed_input = self.primed_input.clone().map(|mut p| {
            let aged = self.made.elapsed().as_millis() as u64;
            p.open_ms = p.open_ms.map(|ms| ms + aged);
            p.connection_ms = p.connection_ms.map(|ms| ms + aged);
            if let Some(at) = self.reconnects_at.filter(|at| *at <= Instant::now()) {
                let young = at.elapsed().as_millis() as u64;
                p.connection_ms = Some(p.connection_ms.map_or(young, |c| c.min(young)));
            }
            p
        });
        i
    }

    fn play(&self, req: &PlayRequest, cancel: &CancelFlag) -> Result<PlayReport, AudioError> {
        let d = self.pick(&req.device, DeviceDirection::Output)?;
        let started_unix_ms = self.now();
        let now = Instant::now();
        for (from, to, carry) in &self.world.routes {
            if *from == (self.name, d.id.as_str()) {
                if let Ok(mut a) = self.world.arrivals.lock() {
                    a.entry((to.0, to.1.to_string()))
                        .or_default()
                        .push(Arrival {
                            seed: req.seed,
                            direction: req.direction,
                            carry: *carry,
                            at: now,
                            stream_ms: req.continuity_ms,
                            quality: req.quality && req.continuity_ms.is_none(),
                            speech: req.speech && !req.quality && req.continuity_ms.is_none(),
                        });
                }
            }
        }
        // A short signature (the runner's loop plays it again until heard), or the stream.
        let length = match (req.continuity_ms, req.quality || req.speech) {
            (Some(ms), _) => Duration::from_millis(ms),
            (None, true) => req.length(),
            (None, false) => Duration::from_millis(60),
        };
        let t0 = Instant::now();
        while t0.elapsed() < length && !cancel.is_cancelled() {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(PlayReport {
            device: d,
            format: format(),
            played_ms: length.as_secs_f64() * 1000.0,
            started_unix_ms,
            health: StreamHealth::default(),
            output_state: None,
        })
    }

    /// Records what arrived as real audio at 8 kHz: each continuity stream and quality
    /// signal rendered where it arrived (a damaged route loses 20 ms of a stream every
    /// second, and puts coarse noise on a quality signal), analysed by the probe's own
    /// analyses when asked.
    fn record(
        &self,
        req: &RecordRequest,
        cancel: &CancelFlag,
        armed: &(dyn Fn() + Send + Sync),
    ) -> Result<(RecordReport, Option<Audio>), AudioError> {
        use earshot_probe::signal::{continuity, quality, speech};
        const RATE: u32 = 8_000;
        let d = self.pick(&req.device, DeviceDirection::Input)?;
        let opened = Instant::now();
        armed();
        let length = Duration::from_millis(req.duration_ms);
        while opened.elapsed() < length && !cancel.is_cancelled() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let n = (length.as_secs_f64() * f64::from(RATE)) as usize;
        let mut samples = vec![0.0f32; n];
        let arrivals = self.arrived_at(&d.id);
        for a in arrivals.iter().filter(|a| a.at >= opened) {
            let at = (a.at.duration_since(opened).as_secs_f64() * f64::from(RATE)) as usize;
            let mut stream = match (a.stream_ms, a.quality, a.speech) {
                (Some(ms), _, _) => continuity::render(RATE, ms as f64 / 1000.0),
                (None, true, _) => quality::render(RATE),
                (None, false, true) => speech::render(RATE).unwrap_or_default(),
                (None, false, false) => continue,
            };
            if (a.quality || a.speech) && a.carry == Carry::Damaged {
                // Quantized to 5 bits: about 26 dB of noise under the tones.
                stream
                    .iter_mut()
                    .for_each(|x| *x = (*x * 16.0).round() / 16.0);
            } else if a.carry == Carry::Damaged {
                for second in (RATE as usize / 2..stream.len()).step_by(RATE as usize) {
                    let end = (second + 160).min(stream.len());
                    stream[second..end].fill(0.0);
                }
            }
            for (i, x) in stream.into_iter().enumerate() {
                if let Some(slot) = samples.get_mut(at + i) {
                    *slot = x;
                }
            }
        }
        let analysis = req
            .continuity
            .then(|| Box::new(continuity::analyze_interleaved(&samples, 1, RATE).1));
        let measured = req
            .quality
            .then(|| Box::new(quality::analyze_interleaved(&samples, 1, RATE).1));
        let scored = req
            .speech
            .then(|| Box::new(speech::analyze_interleaved(&samples, 1, RATE)));
        let report = RecordReport {
            device: d,
            format: StreamFormat {
                sample_rate_hz: RATE,
                channels: 1,
                sample_format: "f32".into(),
            },
            recorded_ms: length.as_secs_f64() * 1000.0,
            health: StreamHealth::default(),
            continuity: analysis,
            quality: measured,
            speech: scored,
        };
        let audio = req.evidence.then_some(Audio {
            sample_rate_hz: RATE,
            channels: 1,
            samples,
        });
        Ok((report, audio))
    }

    fn listen(
        &self,
        req: &ListenRequest,
        cancel: &CancelFlag,
        armed: &(dyn Fn() + Send + Sync),
    ) -> Result<(ListenReport, Option<Audio>), AudioError> {
        let d = self.pick(&req.device, DeviceDirection::Input)?;
        let opened = Instant::now();
        armed();
        let limit = Duration::from_millis(req.timeout_ms);
        let noisy = self.world.noisy.contains(&(self.name, d.id.as_str()));
        let mut damaged = false;
        let mut garbled = false;
        let mut heard_at = None;
        while opened.elapsed() < limit && !cancel.is_cancelled() {
            let arrivals = self.arrived_at(&d.id);
            for a in arrivals
                .iter()
                .filter(|a| a.seed == req.seed && a.direction == req.direction && a.at >= opened)
            {
                match a.carry {
                    Carry::Clean => heard_at = Some(a.at),
                    Carry::OnDemand(after) if a.at >= opened + after => heard_at = Some(a.at),
                    Carry::OnDemand(_) => {}
                    Carry::Damaged => damaged = true,
                    Carry::Garbled => garbled = true,
                }
            }
            if heard_at.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let listened = opened.elapsed().as_secs_f64() * 1000.0;
        let cancelled = heard_at.is_none() && cancel.is_cancelled();
        let (a, onset) = match heard_at {
            Some(at) => {
                // It arrives 100 ms after it was played, on this probe's clock.
                let ago = at.elapsed().as_secs_f64() * 1000.0;
                (
                    analysis(true, 16, -12.0, listened),
                    Some(self.now() - ago + 100.0),
                )
            }
            None if damaged => (analysis(false, 10, -25.0, listened), None),
            None if noisy => (analysis(false, 1, -20.0, listened), None),
            None if garbled => (analysis(false, 2, -25.0, listened), None),
            None => (analysis(false, 0, -200.0, listened), None),
        };
        let detected = a.detected;
        Ok((
            ListenReport {
                device: d,
                format: format(),
                analysis: a,
                channel: 0,
                elapsed_ms: listened,
                armed_ms: Some(0.0),
                onset_unix_ms: onset,
                verdict_unix_ms: self.now(),
                stopped_early: detected,
                cancelled,
                health: StreamHealth::default(),
            },
            Some(Audio::mono(8000, vec![0.0; 800])),
        ))
    }
}

pub fn token() -> Token {
    Token::new(TOKEN, "test").unwrap()
}

/// A fake probe serving on 127.0.0.1:0 until the returned token is cancelled.
pub async fn serve(p: FakeProbe) -> (String, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = Server::new(
        p,
        ServerConfig {
            tokens: vec![token()],
            ..ServerConfig::default()
        },
    );
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move { server.run(listener, s).await });
    (addr, stop)
}
