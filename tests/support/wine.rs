//! The Windows probe under Wine in a lab host: a Wine prefix made inside the host's network
//! namespace (`lab/wine prefix`), and `earshot-probe.exe` run there (`lab/wine run`, which
//! sets the prefix, the host's PULSE_SERVER and PULSE_LATENCY_MSEC=100).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};

use crate::{agent_addr, repo_root, Host, Lab, Running};

/// The Windows probe: `$EARSHOT_PROBE_EXE`, else the debug build `make windows` leaves
/// (`make test` runs it before the tests).
pub fn probe_exe() -> PathBuf {
    let exe = std::env::var_os("EARSHOT_PROBE_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            repo_root().join("target/windows/x86_64-pc-windows-gnu/debug/earshot-probe.exe")
        });
    assert!(
        exe.exists(),
        "{} is missing: run `make windows` first (make test does), or point EARSHOT_PROBE_EXE \
         at an earshot-probe.exe",
        exe.display()
    );
    exe
}

/// A lab host with a Wine prefix whose wineserver runs in the host's namespace, so the
/// Windows programs started there use the host's network. `lab/lab down` (the lab's drop)
/// stops the server and removes the prefix.
pub struct WineHost<'a> {
    lab: &'a Lab,
    host: Host,
}

impl Lab {
    /// Makes `host`'s Wine prefix (a copy of lab/wine's cached template, with the stand-in
    /// bcryptprimitives.dll) and starts its wineserver inside the host. `options` go to
    /// `lab/wine prefix` (`--remote-session`).
    pub fn wine(&self, host: Host, options: &[&str]) -> Result<WineHost<'_>> {
        assert!(
            std::path::Path::new("/usr/lib/wine/wine64").exists(),
            "/usr/lib/wine/wine64 is missing: `make windows` installs Wine (wine64)"
        );
        let mut cmd = Command::new(repo_root().join("lab/wine"));
        cmd.args(["prefix", host.name()])
            .args(options)
            .arg("--state-dir")
            .arg(self.state_dir());
        // Through `Running`: the prefix's server and services outlive the command and may
        // hold its output pipes; its output is read for a bounded time after it exits.
        let out = Running::start(cmd).finish(std::time::Duration::from_secs(180));
        if out.code != Some(0) {
            bail!("lab/wine prefix {} failed: {}", host.name(), out.stderr);
        }
        Ok(WineHost { lab: self, host })
    }
}

impl WineHost<'_> {
    /// `PROGRAM ARGS` under Wine in this host: a Windows program's path, or one of Wine's
    /// own (`reg`). `lab/wine run` execs all the way down, so the child's PID is the Windows
    /// process's (a SIGINT to it is a Ctrl-C).
    pub fn command<S: AsRef<OsStr>>(&self, program: impl AsRef<OsStr>, args: &[S]) -> Command {
        let mut cmd = Command::new(repo_root().join("lab/wine"));
        cmd.args(["run", self.host.name(), "--state-dir"])
            .arg(self.lab.state_dir())
            .arg("--")
            .arg(program)
            .args(args);
        cmd
    }

    /// `earshot-probe.exe ARGS` under Wine in this host.
    pub fn probe(&self, args: &[&str]) -> Command {
        self.command(probe_exe(), args)
    }

    /// Starts `earshot-probe.exe serve` on the host's lab address (as [`Lab::serve`]:
    /// the session host on 10.77.0.2:7702) with `token`, and waits until it accepts
    /// connections from the client host. Killed when the returned value drops.
    ///
    /// Once, under a loaded machine, the exe exited with status 1 before listening and said
    /// nothing (Wine's own messages are off: WINEDEBUG=-all), where the probe always says
    /// why it stops: such a start is tried once more, and the first failure is printed.
    pub fn serve(&self, token: &str) -> Result<Running> {
        let addr = agent_addr(self.host);
        let what = format!("the Windows probe in the {} on {addr}", self.host.name());
        let start = || {
            let mut cmd = self.probe(&["--host", "wasapi", "serve", "--listen", addr]);
            cmd.env("EARSHOT_TOKEN", token);
            self.lab.wait_serving(Running::start(cmd), &what, addr)
        };
        match start() {
            Err(e) if e.to_string().ends_with("stderr: ") => {
                eprintln!("{e}; starting it once more");
                std::thread::sleep(std::time::Duration::from_secs(1));
                start()
            }
            r => r,
        }
    }
}
