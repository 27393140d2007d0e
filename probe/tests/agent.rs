//! The real `earshot-probe serve` / `connect` binary driven through the library client
//! over loopback. No audio server is needed: `info` answers with the catalogue error in
//! its reply when none is reachable.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use earshot_probe::audio::DeviceSelector;
use earshot_probe::proto::auth::Token;
use earshot_probe::proto::client::{Client, ClientConfig, ProbeListener};
use earshot_probe::proto::msg::ListenRequest;
use earshot_probe::proto::ProtoError;
use earshot_probe::signal::Direction;

const TOKEN: &str = "integration-token-0123456789";

fn token_file(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("token");
    std::fs::write(&p, format!("{TOKEN}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    p
}

fn probe() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("earshot-probe"));
    c.env_remove("EARSHOT_TOKEN").env("EARSHOT_LOG", "warn");
    c
}

/// Kills the child if a test fails midway.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reap {
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(
                t0.elapsed() < within,
                "the probe did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[cfg(unix)]
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }
}

/// Starts `serve` on an ephemeral loopback port and returns it with its address.
fn serve(token: &Path) -> (Reap, String) {
    serve_with(token, None)
}

/// As [`serve`], with the probe pointed at a PulseAudio server.
fn serve_with(token: &Path, pulse_server: Option<&str>) -> (Reap, String) {
    let mut cmd = probe();
    if let Some(ps) = pulse_server {
        cmd.env("PULSE_SERVER", ps);
    }
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(token)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reap = Reap(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("serve prints its address");
    let addr = line
        .trim()
        .strip_prefix("earshot-probe: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (reap, addr)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn serve_answers_info_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path());
    // Signalled on Unix only; elsewhere it is just held, so the probe lives to the end.
    #[cfg_attr(not(unix), allow(unused_mut, unused_variables))]
    let (mut p, addr) = serve(&tf);
    let token = Token::new(TOKEN, "test").unwrap();
    rt().block_on(async {
        let c = Client::connect(&addr, Some(&token), &ClientConfig::default())
            .await
            .unwrap();
        let info = c.info().await.unwrap();
        assert_eq!(info.probe_version, earshot_probe::VERSION);
        assert_eq!(info.os, std::env::consts::OS);
        assert!(!info.hostname.is_empty());
        assert_eq!(info.max_capture_ms, 60_000);
        // With or without an audio server, the catalogue is either a list or a typed error.
        match &info.devices {
            Ok(list) => eprintln!("catalogue: {} devices", list.len()),
            Err(e) => eprintln!("catalogue error ({:?}): {}", e.kind, e.message),
        }
        // A device request travels through the real handler: a report or a typed audio error.
        let req = ListenRequest {
            device: DeviceSelector::parse("no-such-device-xyz"),
            seed: 1,
            direction: Direction::Output,
            timeout_ms: 500,
            evidence: false,
        };
        let e = c.listen(&req).await.unwrap_err();
        assert!(e.audio().is_some(), "expected a device error, got {e}");

        let wrong = Token::new("wrong-token-0123456789", "test").unwrap();
        let e = Client::connect(&addr, Some(&wrong), &ClientConfig::default())
            .await
            .unwrap_err();
        assert!(matches!(e.proto(), Some(ProtoError::AuthFailed(_))), "{e}");
    });
    #[cfg(unix)]
    {
        p.signal("-TERM");
        let status = p.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}

#[cfg(unix)]
#[test]
fn sigint_also_exits_0_and_the_port_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut p, addr) = serve(&token_file(dir.path()));
    p.signal("-INT");
    assert_eq!(p.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(std::net::TcpStream::connect(&addr).is_err());
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let out = probe()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0.0.0.0") && err.contains("without a token"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn serve_refuses_a_token_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path());
    std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = probe()
        .args(["serve", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&tf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&tf.display().to_string()) && err.contains("0640"),
        "{err}"
    );
}

#[test]
fn connect_dials_the_harness_and_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path());
    let token = Token::new(TOKEN, "test").unwrap();
    rt().block_on(async {
        let pl = ProbeListener::bind("127.0.0.1:0", Some(token), ClientConfig::default())
            .await
            .unwrap();
        let addr = pl.local_addr().unwrap().to_string();
        let child = probe()
            .args(["connect", &addr, "--token-file"])
            .arg(&tf)
            .spawn()
            .unwrap();
        let mut p = Reap(child);
        let c = pl.accept(Duration::from_secs(20)).await.unwrap();
        let info = c.info().await.unwrap();
        assert_eq!(
            info.protocol_version,
            earshot_probe::proto::PROTOCOL_VERSION
        );
        drop(c);
        // The harness hung up: the probe's job is done, exit 0.
        assert_eq!(p.wait_exit(Duration::from_secs(10)).code(), Some(0));
    });
}

/// A probe started at logon with `--keep-dialing` waits for a harness that is not there
/// yet, survives a harness with the wrong token, serves one run after another, and stops
/// on Ctrl-C.
#[cfg(unix)]
#[test]
fn connect_keep_dialing_serves_run_after_run_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path());
    let token = Token::new(TOKEN, "test").unwrap();
    let wrong = Token::new("some-other-token-0123456789", "test").unwrap();
    // A port nobody listens on yet: the first dials are refused.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let child = probe()
        .args([
            "connect",
            &addr,
            "--retry-secs",
            "0.2",
            "--keep-dialing",
            "--token-file",
        ])
        .arg(&tf)
        .spawn()
        .unwrap();
    let mut p = Reap(child);
    rt().block_on(async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            p.0.try_wait().unwrap().is_none(),
            "refused dials past --retry-secs must not end a --keep-dialing probe"
        );
        let impostor = ProbeListener::bind(&addr, Some(wrong), ClientConfig::default())
            .await
            .unwrap();
        assert!(impostor.accept(Duration::from_secs(3)).await.is_err());
        drop(impostor);
        let pl = ProbeListener::bind(&addr, Some(token), ClientConfig::default())
            .await
            .unwrap();
        for run in 0..2 {
            let c = pl
                .accept(Duration::from_secs(20))
                .await
                .unwrap_or_else(|e| panic!("run {run}: {e}"));
            c.info().await.unwrap();
            drop(c);
            assert!(
                p.0.try_wait().unwrap().is_none(),
                "run {run} ended the probe"
            );
        }
    });
    p.signal("-INT");
    assert_eq!(p.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

/// The two-host lab (lab/lab: two PulseAudio daemons in network namespaces joined by veth;
/// needs root, as CI has) brought up in a private state dir and torn down on drop.
#[cfg(target_os = "linux")]
struct Lab(tempfile::TempDir);

#[cfg(target_os = "linux")]
impl Lab {
    fn up(args: &[&str]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = Command::new(root.join("lab/lab"))
            .arg("up")
            .args(args)
            .arg("--state-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lab/lab up failed (the lab needs root and pulseaudio: `make deps`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Lab(dir)
    }

    fn pulse(&self, host: &str) -> String {
        format!("unix:{}/{host}/native", self.0.path().display())
    }
}

#[cfg(target_os = "linux")]
impl Drop for Lab {
    fn drop(&mut self) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let _ = Command::new(root.join("lab/lab"))
            .arg("down")
            .arg("--state-dir")
            .arg(self.0.path())
            .output();
    }
}

/// Real probes on the lab's two hosts, each driven through its agent over loopback; the
/// audio crosses the veth link through the lab's redirection tunnels.
#[cfg(target_os = "linux")]
#[test]
fn lab_redirection_is_proven_through_two_agents() {
    use earshot_probe::proto::msg::{ErrorCode, PlayRequest};
    let lab = Lab::up(&["--output", "client", "--capture", "redirected"]);
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path());
    let (mut client_probe, client_addr) = serve_with(&tf, Some(&lab.pulse("client")));
    let (_session_probe, session_addr) = serve_with(&tf, Some(&lab.pulse("session")));
    let token = Token::new(TOKEN, "test").unwrap();
    rt().block_on(async {
        let cfg = ClientConfig::default();
        let client = Client::connect(&client_addr, Some(&token), &cfg)
            .await
            .unwrap();
        let session = Client::connect(&session_addr, Some(&token), &cfg)
            .await
            .unwrap();
        let info = client.info().await.unwrap();
        let devices = info.devices.expect("the client host's catalogue");
        assert!(
            devices.iter().any(|d| d.id.ends_with("speakers.monitor")),
            "{devices:?}"
        );
        assert_eq!(info.audio_host.as_deref(), Ok("PulseAudio"));

        // Output: the session plays on its default (the tunnel to the client's speakers),
        // the client hears it on its speakers' loopback. Evidence is fetched after the verdict.
        let listen = ListenRequest {
            device: DeviceSelector::parse("loopback:speakers"),
            seed: 4101,
            direction: Direction::Output,
            timeout_ms: 10_000,
            evidence: true,
        };
        let heard = tokio::spawn({
            let client = client.clone();
            async move { client.listen(&listen).await }
        });
        tokio::time::sleep(Duration::from_millis(700)).await;
        let play = PlayRequest {
            continuity_ms: None,
            quality: false,
            device: DeviceSelector::Default,
            seed: 4101,
            direction: Direction::Output,
            speech: false,
        };
        session.play(&play).await.unwrap();
        let heard = heard.await.unwrap().unwrap();
        assert!(heard.report.analysis.detected, "{:?}", heard.report);
        let handle = heard.evidence.expect("evidence");
        assert!(
            handle.evidence.duration_ms() > 500.0,
            "{} ms",
            handle.evidence.duration_ms()
        );
        let ev = client
            .fetch_evidence(&handle, Duration::from_secs(20), |_| {})
            .await
            .unwrap();
        let flac = claxon::FlacReader::new(std::io::Cursor::new(&ev.bytes)).unwrap();
        assert_eq!(
            flac.streaminfo().samples,
            Some(handle.evidence.frames),
            "the FLAC file holds the whole recording"
        );

        // Capture: the client plays into its microphone feed, the session records it.
        let listen = ListenRequest {
            device: DeviceSelector::Default,
            seed: 4102,
            direction: Direction::Capture,
            timeout_ms: 10_000,
            evidence: false,
        };
        let heard = tokio::spawn({
            let session = session.clone();
            async move { session.listen(&listen).await }
        });
        tokio::time::sleep(Duration::from_millis(700)).await;
        let play = PlayRequest {
            continuity_ms: None,
            quality: false,
            device: DeviceSelector::parse("micfeed"),
            seed: 4102,
            direction: Direction::Capture,
            speech: false,
        };
        client.play(&play).await.unwrap();
        let heard = heard.await.unwrap().unwrap();
        assert!(heard.report.analysis.detected, "{:?}", heard.report);

        // SIGTERM mid-listen: the request in flight is answered, the probe exits 0.
        let listen = ListenRequest {
            device: DeviceSelector::parse("loopback:speakers"),
            seed: 4103,
            direction: Direction::Output,
            timeout_ms: 20_000,
            evidence: false,
        };
        let pending = tokio::spawn({
            let client = client.clone();
            async move { client.listen(&listen).await }
        });
        tokio::time::sleep(Duration::from_millis(700)).await;
        client_probe.signal("-TERM");
        let e = tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .expect("answered within 5 s")
            .unwrap()
            .unwrap_err();
        assert_eq!(
            e.remote().map(|r| r.code),
            Some(ErrorCode::ShuttingDown),
            "{e}"
        );
    });
    assert_eq!(
        client_probe.wait_exit(Duration::from_secs(10)).code(),
        Some(0)
    );
}

#[cfg(unix)]
#[test]
fn token_new_then_serve_accepts_every_token_of_every_file_and_never_logs_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh-token");
    let out = probe().args(["token", "new"]).arg(&fresh).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = std::fs::read_to_string(&fresh).unwrap();
    let new_token = text.trim().to_string();
    assert_eq!(new_token.len(), 64, "256 bits in hex");
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&new_token));
    // Never overwritten.
    let again = probe().args(["token", "new"]).arg(&fresh).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("fresh-token") && !err.contains(&new_token),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&fresh).unwrap(), text);

    // Rotation: the old file holds two lines, the fresh one comes as a second file.
    let old = dir.path().join("old-tokens");
    std::fs::write(&old, format!("{TOKEN}\nsecond-old-token-0123456789\n")).unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = dir.path().join("probe.log");
    let mut child = probe()
        .env("EARSHOT_LOG", "debug")
        .args(["serve", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&old)
        .arg("--token-file")
        .arg(&fresh)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut p = Reap(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("earshot-probe: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    rt().block_on(async {
        for t in [TOKEN, "second-old-token-0123456789", new_token.as_str()] {
            let token = Token::new(t, "test").unwrap();
            let c = Client::connect(&addr, Some(&token), &ClientConfig::default())
                .await
                .unwrap();
            c.info().await.unwrap();
        }
        let wrong = Token::new("wrong-token-0123456789", "test").unwrap();
        let e = Client::connect(&addr, Some(&wrong), &ClientConfig::default())
            .await
            .unwrap_err();
        assert!(matches!(e.proto(), Some(ProtoError::AuthFailed(_))), "{e}");
    });
    p.signal("-TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("3 token(s) accepted"), "{logged}");
    for t in [TOKEN, "second-old-token", &new_token] {
        assert!(!logged.contains(t), "a token in the log: {logged}");
    }
}
