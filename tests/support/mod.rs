//! Shared support for the end-to-end tests: a lab per test (torn down on drop, also when
//! the test fails), and playing/recording on a lab host with PulseAudio's own tools.
//!
//! The lab needs root (network namespaces) and PulseAudio; `make test` installs the
//! packages and CI runs as root. Without them a test fails and says what is missing.

pub mod rdp;
pub mod wine;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// The `earshot-probe` binary: `$EARSHOT_PROBE_BIN`, else the workspace's debug build
/// (`make test` builds it before the tests run).
pub fn probe_bin() -> PathBuf {
    let bin = std::env::var_os("EARSHOT_PROBE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug/earshot-probe"));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p earshot-probe` first (make test does)",
        bin.display()
    );
    bin
}

/// What a finished probe command left: exit code, stdout, stderr, and how long it ran.
#[derive(Debug)]
pub struct Finished {
    /// The exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl Finished {
    /// Standard output parsed as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// A started probe command whose output is captured as it comes (so a test can wait for
/// a line, e.g. the listener's "listening on").
pub struct Running {
    child: std::process::Child,
    started: std::time::Instant,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(
    mut from: impl std::io::Read + Send + 'static,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    std::thread::JoinHandle<()>,
) {
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let into = buf.clone();
    let handle = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            into.lock()
                .expect("output buffer")
                .extend_from_slice(&chunk[..n]);
        }
    });
    (buf, handle)
}

impl Running {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `cmd` with its output captured.
    pub fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the probe starts");
        let (stdout, a) = collect(child.stdout.take().expect("piped stdout"));
        let (stderr, b) = collect(child.stderr.take().expect("piped stderr"));
        Running {
            child,
            started: std::time::Instant::now(),
            stdout,
            stderr,
            readers: vec![a, b],
        }
    }

    /// How long since it was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits at most `limit` until stderr contains `text`; false if it did not (the process
    /// may have exited).
    pub fn wait_for_stderr(&mut self, text: &str, limit: Duration) -> bool {
        let until = std::time::Instant::now() + limit;
        while std::time::Instant::now() < until {
            if String::from_utf8_lossy(&self.stderr.lock().expect("stderr")).contains(text) {
                return true;
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(50));
                return String::from_utf8_lossy(&self.stderr.lock().expect("stderr"))
                    .contains(text);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Waits until a probe started with `serve` is ready: it has printed its listening line
    /// and `reachable` answers true. A cold start of a debug build on a loaded machine can
    /// take seconds, so the limit is generous; a probe that exits meanwhile fails at once
    /// with its status and stderr, and a probe that never becomes reachable fails with what
    /// it printed.
    pub fn wait_ready(
        &mut self,
        what: &str,
        limit: Duration,
        mut reachable: impl FnMut() -> bool,
    ) -> Result<()> {
        let until = std::time::Instant::now() + limit;
        let stderr =
            |r: &Running| String::from_utf8_lossy(&r.stderr.lock().expect("stderr")).into_owned();
        while std::time::Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                // The reader thread may not have taken the last words yet: give it 1 s.
                for _ in 0..20 {
                    std::thread::sleep(Duration::from_millis(50));
                    if !stderr(self).is_empty() {
                        break;
                    }
                }
                bail!(
                    "{what} exited before it was ready ({status}); stderr: {}",
                    stderr(self)
                );
            }
            let listening = String::from_utf8_lossy(&self.stdout.lock().expect("stdout"))
                .contains("listening on");
            if listening && reachable() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{what} was not ready within {limit:?} (listening line printed: {}); stderr: {}",
            String::from_utf8_lossy(&self.stdout.lock().expect("stdout")).contains("listening on"),
            stderr(self)
        )
    }

    /// Waits until `limit` after its start for it to exit; a probe still running then is a
    /// hang: it is killed and the test fails.
    pub fn finish(mut self, limit: Duration) -> Finished {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait on the probe") {
                break status;
            }
            if self.started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the probe hung: still running after {limit:?}; stderr: {}",
                    String::from_utf8_lossy(&self.stderr.lock().expect("stderr"))
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        // The output ends when every writer closes its end of the pipes; a process the child
        // started and left running (Wine's services, which inherit the first Windows
        // program's standard handles) may never close it. What arrived within a moment of
        // the exit is the output; a reader still blocked then is left behind.
        let drained = std::time::Instant::now() + Duration::from_secs(2);
        while self.readers.iter().any(|r| !r.is_finished()) && std::time::Instant::now() < drained {
            std::thread::sleep(Duration::from_millis(10));
        }
        for r in self.readers.drain(..) {
            if r.is_finished() {
                let _ = r.join();
            }
        }
        let text = |b: &std::sync::Mutex<Vec<u8>>| {
            String::from_utf8_lossy(&b.lock().expect("output")).into_owned()
        };
        Finished {
            code: status.code(),
            signal: std::os::unix::process::ExitStatusExt::signal(&status),
            stdout: text(&self.stdout),
            stderr: text(&self.stderr),
            elapsed,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that panics before `finish` must not leave a probe behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How long a probe started by a test may take to listen.
const PROBE_READY: Duration = Duration::from_secs(30);

/// A lab brought up in a private state dir; `Drop` tears it down.
pub struct Lab {
    state: tempfile::TempDir,
}

/// A host of the lab.
#[derive(Clone, Copy, Debug)]
pub enum Host {
    /// The client (the user's machine).
    Client,
    /// The session host.
    Session,
}

impl Host {
    fn name(self) -> &'static str {
        match self {
            Host::Client => "client",
            Host::Session => "session",
        }
    }
}

fn require_environment() {
    let root = Command::new("id").arg("-u").output();
    let is_root = matches!(root, Ok(ref o) if String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(
        is_root,
        "the lab tests need root (network namespaces): run `make test` as root, as CI does"
    );
    for tool in ["pulseaudio", "pactl", "paplay", "parecord", "ip"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is missing: `make deps` installs the lab's packages"
        );
    }
}

impl Lab {
    /// Brings a lab up with `args` (as for `lab/lab up`).
    pub fn up(args: &[&str]) -> Result<Lab> {
        require_environment();
        let state = tempfile::Builder::new().prefix("earshot-lab-").tempdir()?;
        let out = Command::new(repo_root().join("lab/lab"))
            .arg("up")
            .args(args)
            .arg("--state-dir")
            .arg(state.path())
            .output()
            .context("failed to run lab/lab up")?;
        let lab = Lab { state };
        if !out.status.success() {
            bail!(
                "lab/lab up {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(lab)
    }

    /// The PULSE_SERVER value that reaches `host`.
    pub fn pulse_server(&self, host: Host) -> String {
        format!(
            "unix:{}/{}/native",
            self.state.path().display(),
            host.name()
        )
    }

    /// Runs `pactl` on `host` and returns its output.
    pub fn pactl(&self, host: Host, args: &[&str]) -> Result<String> {
        let out = Command::new("timeout")
            .arg("5")
            .arg("pactl")
            .args(args)
            .env("PULSE_SERVER", self.pulse_server(host))
            .output()?;
        if !out.status.success() {
            bail!("pactl {} on the {} failed", args.join(" "), host.name());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Names in `pactl list short sinks|sources` on `host`.
    pub fn list(&self, host: Host, what: &str) -> Result<Vec<String>> {
        Ok(self
            .pactl(host, &["list", "short", what])?
            .lines()
            .filter_map(|l| l.split('\t').nth(1).map(str::to_string))
            .collect())
    }

    /// Kills one host's daemon (failure tests).
    pub fn kill(&self, host: Host) -> Result<()> {
        let st = Command::new(repo_root().join("lab/lab"))
            .args(["kill", host.name(), "--state-dir"])
            .arg(self.state.path())
            .status()?;
        if !st.success() {
            bail!("lab/lab kill {} failed", host.name());
        }
        Ok(())
    }

    /// Starts a killed host's daemon again from its configuration (its tunnels are not
    /// restored: for a lab brought up with nothing redirected).
    pub fn restart(&self, host: Host) -> Result<()> {
        let st = Command::new(repo_root().join("lab/lab"))
            .args(["restart", host.name(), "--state-dir"])
            .arg(self.state.path())
            .status()?;
        if !st.success() {
            bail!("lab/lab restart {} failed", host.name());
        }
        Ok(())
    }

    /// Records `seconds` from `source` on `record_host` while `file` plays on `sink` of
    /// `play_host`, `lead_ms` after the recording starts. The recording asks for 20 ms of
    /// latency: a PulseAudio source left to choose delivers in chunks of up to 2 s, and what
    /// is still buffered when the recorder stops is lost.
    #[allow(clippy::too_many_arguments)]
    pub fn play_and_record(
        &self,
        play_host: Host,
        sink: Option<&str>,
        file: &Path,
        record_host: Host,
        source: &str,
        seconds: u32,
        lead_ms: u64,
        out: &Path,
    ) -> Result<()> {
        let mut rec = Command::new("timeout")
            .arg(seconds.to_string())
            .args([
                "parecord",
                "--latency-msec=20",
                "--file-format=wav",
                "-d",
                source,
            ])
            .arg(out)
            .env("PULSE_SERVER", self.pulse_server(record_host))
            .stderr(Stdio::piped())
            .spawn()
            .context("failed to start parecord")?;
        std::thread::sleep(Duration::from_millis(lead_ms));
        let mut play = Command::new("timeout");
        play.arg("10").arg("paplay");
        if let Some(s) = sink {
            play.args(["-d", s]);
        }
        let played = play
            .arg(file)
            .env("PULSE_SERVER", self.pulse_server(play_host))
            .status()
            .context("failed to run paplay")?;
        let recorded = rec.wait()?;
        // timeout's 124 is the normal end of a fixed-length recording.
        if !played.success() {
            bail!("paplay on the {} failed: {played}", play_host.name());
        }
        if !(recorded.success() || recorded.code() == Some(124)) {
            bail!("parecord on the {} failed: {recorded}", record_host.name());
        }
        Ok(())
    }

    /// The lab's state, from `lab/lab status --json`.
    pub fn status(&self) -> Result<serde_json::Value> {
        let out = Command::new("timeout")
            .arg("30")
            .arg(repo_root().join("lab/lab"))
            .args(["status", "--json", "--state-dir"])
            .arg(self.state.path())
            .output()?;
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "lab/lab status --json printed no JSON (exit {:?}): {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The lab's network namespaces (client, session), from its status.
    pub fn namespaces(&self) -> Result<Vec<String>> {
        let status = self.status()?;
        [Host::Client, Host::Session]
            .into_iter()
            .map(|h| host_field(&status, h, "netns"))
            .collect()
    }

    /// An `earshot-probe` command pointed at `host`'s audio server.
    pub fn probe(&self, host: Host) -> Command {
        let mut c = Command::new(probe_bin());
        c.env("PULSE_SERVER", self.pulse_server(host))
            .arg("--host")
            .arg("pulseaudio");
        c
    }

    /// The state dir.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// The network namespace of `host`.
    pub fn netns(&self, host: Host) -> Result<String> {
        let ns = self.namespaces()?;
        let want = format!("-{}", host.name());
        ns.into_iter()
            .find(|n| n.ends_with(&want))
            .with_context(|| format!("the lab has no {} namespace", host.name()))
    }

    /// Starts `earshot-probe serve` inside `host`'s namespace on its lab address
    /// (client 10.77.0.1:7701, session 10.77.0.2:7702) with `token`, and waits until it
    /// accepts connections. Killed when the returned value drops.
    pub fn serve(&self, host: Host, token: &str) -> Result<Running> {
        let ns = self.netns(host)?;
        let addr = agent_addr(host);
        // nsenter execs the probe itself (no wrapper process), so killing the child kills
        // the probe.
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{ns}"))
            .arg(probe_bin())
            .args(["--host", "pulseaudio", "serve", "--listen", addr])
            .env("PULSE_SERVER", self.pulse_server(host))
            .env("EARSHOT_TOKEN", token);
        self.wait_serving(
            Running::start(cmd),
            &format!("the {} probe on {addr}", host.name()),
            addr,
        )
    }

    /// Waits until `running`, a probe started with `serve` on `addr` (a lab address), has
    /// printed its listening line and a TCP connect from the client namespace succeeds.
    pub fn wait_serving(&self, mut running: Running, what: &str, addr: &str) -> Result<Running> {
        let (ip, port) = addr.split_once(':').context("address")?;
        let client_ns = self.netns(Host::Client)?;
        running.wait_ready(what, PROBE_READY, || {
            Command::new("ip")
                .args(["netns", "exec", &client_ns, "bash", "-c"])
                .arg(format!("exec 3<>/dev/tcp/{ip}/{port}"))
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })?;
        Ok(running)
    }

    /// The address of `host` on the lab's management network (reachable from the root
    /// namespace), from the lab's status.
    pub fn mgmt_ip(&self, host: Host) -> Result<String> {
        host_field(&self.status()?, host, "mgmt_address")
    }

    /// Starts `earshot-probe serve` inside `host`'s namespace on all its addresses, port
    /// `port`, and waits until the root namespace reaches it over the management network.
    /// Returns the probe and the address to dial.
    pub fn serve_mgmt(&self, host: Host, port: u16, token: &str) -> Result<(Running, String)> {
        self.serve_mgmt_with(host, port, token, &[])
    }

    /// [`Lab::serve_mgmt`] with `extra` options for `serve` (e.g. `--prime-input`).
    pub fn serve_mgmt_with(
        &self,
        host: Host,
        port: u16,
        token: &str,
        extra: &[&str],
    ) -> Result<(Running, String)> {
        let ns = self.netns(host)?;
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{ns}"))
            .arg(probe_bin())
            .args(["--host", "pulseaudio", "serve", "--listen"])
            .arg(format!("0.0.0.0:{port}"))
            .args(extra)
            .env("PULSE_SERVER", self.pulse_server(host))
            .env("EARSHOT_TOKEN", token);
        let mut running = Running::start(cmd);
        let addr = format!("{}:{port}", self.mgmt_ip(host)?);
        let sock: std::net::SocketAddr = addr.parse()?;
        running.wait_ready(
            &format!("the {} probe on {addr} (management network)", host.name()),
            PROBE_READY,
            || std::net::TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_ok(),
        )?;
        Ok((running, addr))
    }

    /// A probe command inside `host`'s namespace that reports `name` as its host name: its
    /// own UTS namespace (`unshare --uts`) with that name, as a session host of that name
    /// would have. The shell execs the probe, so the child is the probe.
    fn probe_named(&self, host: Host, name: &str, token: &str, args: &[&str]) -> Result<Command> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.netns(host)?))
            .args([
                "unshare",
                "--uts",
                "--",
                "sh",
                "-c",
                "hostname \"$0\" && exec \"$@\"",
            ])
            .arg(name)
            .arg(probe_bin())
            .args(["--host", "pulseaudio"])
            .args(args)
            .env("PULSE_SERVER", self.pulse_server(host))
            .env("EARSHOT_TOKEN", token);
        Ok(cmd)
    }

    /// [`Lab::serve_mgmt`] for a probe that reports `name` as its host name.
    pub fn serve_mgmt_named(
        &self,
        host: Host,
        port: u16,
        token: &str,
        name: &str,
    ) -> Result<(Running, String)> {
        let listen = format!("0.0.0.0:{port}");
        let cmd = self.probe_named(host, name, token, &["serve", "--listen", &listen])?;
        let mut running = Running::start(cmd);
        let addr = format!("{}:{port}", self.mgmt_ip(host)?);
        let sock: std::net::SocketAddr = addr.parse()?;
        running.wait_ready(
            &format!("the {} probe of {name} on {addr}", host.name()),
            PROBE_READY,
            || std::net::TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_ok(),
        )?;
        Ok((running, addr))
    }

    /// A probe in `host`'s namespace, reporting host name `name`, that dials the harness at
    /// `port` of the root namespace over the management network and keeps dialing.
    pub fn dial_named(&self, host: Host, port: u16, token: &str, name: &str) -> Result<Running> {
        let ip = self.mgmt_ip(host)?;
        let (net, last) = ip.rsplit_once('.').context("management address")?;
        // The root namespace's end of the host's /30 is one below the host's address.
        let gateway = format!("{net}.{}", last.parse::<u8>()? - 1);
        let cmd = self.probe_named(
            host,
            name,
            token,
            &["connect", "--keep-dialing", &format!("{gateway}:{port}")],
        )?;
        Ok(Running::start(cmd))
    }

    /// A command that runs `program` inside `host`'s namespace (nsenter: no wrapper
    /// process, so the child is the program).
    pub fn in_netns(&self, host: Host, program: &Path) -> Result<Command> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.netns(host)?))
            .arg(program);
        Ok(cmd)
    }
}

/// `hosts.<host>.<key>` of a lab's status (`lab/lab status --json`), a string.
fn host_field(status: &serde_json::Value, host: Host, key: &str) -> Result<String> {
    let name = host.name();
    status["hosts"][name][key]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("lab/lab status --json: no hosts.{name}.{key}"))
}

/// The lab address a host's probe serves on.
pub fn agent_addr(host: Host) -> &'static str {
    match host {
        Host::Client => "10.77.0.1:7701",
        Host::Session => "10.77.0.2:7702",
    }
}

/// Waits, at most `limit`, for an `earshot run` that writes its JSON report to `json`;
/// returns how it ended and the report. A run that left no readable report fails the test
/// with what it printed.
pub fn finish_with_report(
    running: Running,
    limit: Duration,
    json: &Path,
) -> (Finished, serde_json::Value) {
    let r = running.finish(limit);
    let report = std::fs::read(json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("no JSON report at {}: {r:?}", json.display()));
    (r, report)
}

/// The `earshot` binary: `$EARSHOT_BIN`, else the workspace's debug build.
pub fn harness_bin() -> PathBuf {
    let bin = std::env::var_os("EARSHOT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug/earshot"));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p earshot-harness` first (make test does)",
        bin.display()
    );
    bin
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("lab/lab"))
            .args(["down", "--state-dir"])
            .arg(self.state.path())
            .stderr(Stdio::null())
            .status();
    }
}
