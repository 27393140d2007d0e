//! The RDP lab (`lab/rdp`) for the end-to-end tests: brought up from a scenario file, its
//! state read from `lab/rdp status --json`, probes started by `lab/rdp probe`, torn down on
//! drop (also when the test fails).
//!
//! One RDP lab runs per machine (the session user, xrdp's socket dir and the X displays
//! are shared), so the tests that use it take [`RdpLab::lock`] first.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use anyhow::{bail, Context, Result};

use crate::{probe_bin, repo_root};

static ONE_LAB: Mutex<()> = Mutex::new(());

/// A host of the RDP lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RdpHost {
    /// The client: xfreerdp and its PulseAudio daemon (the local probe runs here as root).
    Client,
    /// The session host: xrdp and the session (the remote probe runs as the session user).
    Session,
}

impl RdpHost {
    /// The name `lab/rdp` uses.
    pub fn name(self) -> &'static str {
        match self {
            RdpHost::Client => "client",
            RdpHost::Session => "session",
        }
    }
}

/// The RDP lab in a private state dir.
pub struct RdpLab {
    state: tempfile::TempDir,
}

fn lab_rdp() -> PathBuf {
    repo_root().join("lab/rdp")
}

impl RdpLab {
    /// Serializes the tests that use the RDP lab (one per machine).
    pub fn lock() -> MutexGuard<'static, ()> {
        ONE_LAB.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A lab state dir; nothing runs until [`RdpLab::apply`].
    pub fn new() -> Result<RdpLab> {
        let root = Command::new("id").arg("-u").output()?;
        if String::from_utf8_lossy(&root.stdout).trim() != "0" {
            bail!("the RDP lab needs root (namespaces, xrdp, a session user): run as root, as CI does");
        }
        Ok(RdpLab {
            state: tempfile::Builder::new().prefix("earshot-rdp-").tempdir()?,
        })
    }

    fn lab(&self, args: &[&str]) -> Result<std::process::Output> {
        let out = Command::new(lab_rdp())
            .args(args)
            .arg("--state-dir")
            .arg(self.state.path())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("failed to run lab/rdp {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "lab/rdp {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }

    /// Brings the lab to the state `scenario`'s policy layers describe (the .rdp file and
    /// xrdp.ini). On a running lab only what changed restarts: the client for the .rdp
    /// file, xrdp for xrdp.ini. Returns lab/rdp's account of what it did.
    pub fn apply(&self, scenario: &Path) -> Result<String> {
        self.apply_with(scenario, &[])
    }

    /// As [`RdpLab::apply`], with more `lab/rdp up` options (`--client-sound rate:22050`).
    pub fn apply_with(&self, scenario: &Path, extra: &[&str]) -> Result<String> {
        let file = scenario.to_string_lossy();
        let mut args = vec!["up", "--scenario", &file];
        args.extend_from_slice(extra);
        let out = self.lab(&args)?;
        Ok(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }

    /// `lab/rdp status --json`.
    pub fn status(&self) -> Result<serde_json::Value> {
        let out = Command::new(lab_rdp())
            .args(["status", "--json", "--state-dir"])
            .arg(self.state.path())
            .output()?;
        serde_json::from_slice(&out.stdout).context("lab/rdp status --json printed no JSON")
    }

    /// Starts (or restarts) the probe of `host` with `lab/rdp probe`; returns its JSON.
    /// The session's probe holds its input open (`--prime-input default`), as the README
    /// has it for a session host; the client's holds its loopback and microphone open, so
    /// a listener on them (PulseAudio monitors of idle sinks) gets its first audio at once.
    pub fn probe(&self, host: RdpHost, token: &str) -> Result<serde_json::Value> {
        match host {
            RdpHost::Session => self.probe_with(host, token, &["--prime-input", "default"]),
            RdpHost::Client => self.probe_with(
                host,
                token,
                &[
                    "--prime-input",
                    "speakers.monitor",
                    "--prime-input",
                    "default",
                ],
            ),
        }
    }

    /// [`RdpLab::probe`] with `extra` as the probe's own options (none: a session probe
    /// that opens its input only when asked to listen).
    pub fn probe_with(
        &self,
        host: RdpHost,
        token: &str,
        extra: &[&str],
    ) -> Result<serde_json::Value> {
        let mut cmd = Command::new(lab_rdp());
        cmd.args(["probe", host.name(), "--bin"])
            .arg(probe_bin())
            .arg("--state-dir")
            .arg(self.state.path())
            .env("EARSHOT_TOKEN", token);
        if !extra.is_empty() {
            cmd.arg("--").args(extra);
        }
        let out = cmd.output()?;
        if !out.status.success() {
            bail!(
                "lab/rdp probe {} failed: {}",
                host.name(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout).context("lab/rdp probe printed no JSON")
    }

    /// The network namespace of `host`.
    pub fn netns(&self, host: RdpHost) -> Result<String> {
        self.status()?["hosts"][host.name()]["netns"]
            .as_str()
            .map(str::to_string)
            .context("lab/rdp status has no namespace: is the lab up?")
    }

    /// Kills xfreerdp or xrdp (fault tests).
    pub fn kill(&self, what: &str) -> Result<()> {
        self.lab(&["kill", what]).map(|_| ())
    }

    /// Tears the lab down now.
    pub fn down(&self) -> Result<()> {
        self.lab(&["down"]).map(|_| ())
    }

    /// The state dir.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }
}

impl Drop for RdpLab {
    fn drop(&mut self) {
        let _ = Command::new(lab_rdp())
            .args(["down", "--state-dir"])
            .arg(self.state.path())
            .stderr(Stdio::null())
            .status();
    }
}
