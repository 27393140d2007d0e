//! The real [`Handler`]: cpal devices through [`crate::audio::backend`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{base_info, Handler};
use crate::audio::{
    backend, AudioError, CancelFlag, CaptureOptions, HostChoice, ListenReport, PlayReport,
    RecordReport,
};
use crate::proto::msg::{ListenRequest, PlayRequest, ProbeInfo, RecordRequest};
use crate::signal::Signature;
use crate::wav::Audio;

/// How long an `info` answer is reused: many clients asking at once share one catalogue
/// query instead of each opening the audio server.
const INFO_CACHE: Duration = Duration::from_secs(2);

/// Serves requests on the devices of one audio host.
pub struct DeviceHandler {
    host: HostChoice,
    max_capture: Duration,
    xrdp_ini: std::path::PathBuf,
    cache: Mutex<Option<(Instant, ProbeInfo)>>,
}

impl DeviceHandler {
    /// A handler on `host`; `max_capture` is reported in `info`.
    pub fn new(host: HostChoice, max_capture: Duration) -> DeviceHandler {
        DeviceHandler {
            host,
            max_capture,
            xrdp_ini: super::xrdp_ini::choose_path(None),
            cache: Mutex::new(None),
        }
    }

    /// Reports the xrdp settings of `path` instead of the default (see
    /// [`super::xrdp_ini::choose_path`]).
    pub fn with_xrdp_ini(mut self, path: std::path::PathBuf) -> DeviceHandler {
        self.xrdp_ini = path;
        self
    }

    fn fresh_info(&self) -> ProbeInfo {
        let mut info = base_info(self.max_capture);
        info.audio_host = backend::host_name(self.host);
        // A catalogue failure is reported in the answer, not as a failed request: the
        // harness still learns version, OS and session facts.
        info.devices = backend::catalog(self.host);
        info.xrdp = super::xrdp_ini::read(&self.xrdp_ini);
        // Windows only: the registry, services and boot time; the redirected endpoints are
        // picked from the catalogue just listed.
        info.host_config = super::host_config::read(&info.devices);
        info
    }
}

impl Handler for DeviceHandler {
    fn info(&self) -> ProbeInfo {
        // Holding the lock while querying makes concurrent callers wait for one query
        // (bounded by the backend's watchdogs) rather than each starting their own.
        match self.cache.lock() {
            Ok(mut c) => {
                if let Some((at, info)) = c.as_ref() {
                    if at.elapsed() < INFO_CACHE {
                        return info.clone();
                    }
                }
                let info = self.fresh_info();
                *c = Some((Instant::now(), info.clone()));
                info
            }
            Err(_) => self.fresh_info(),
        }
    }

    fn play(&self, req: &PlayRequest, cancel: &CancelFlag) -> Result<PlayReport, AudioError> {
        backend::play(
            self.host,
            &req.device,
            &Signature::new(req.seed, req.direction),
            cancel,
        )
    }

    fn record(
        &self,
        req: &RecordRequest,
        cancel: &CancelFlag,
    ) -> Result<(RecordReport, Option<Audio>), AudioError> {
        let options = CaptureOptions {
            timeout: Duration::from_millis(req.duration_ms),
            keep_audio: req.evidence,
        };
        let (report, audio) = backend::record(self.host, &req.device, &options, cancel)?;
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
        backend::listen_with(
            self.host,
            &req.device,
            &Signature::new(req.seed, req.direction),
            &options,
            cancel,
            |_| armed(),
        )
    }
}
