//! The real `earshot-probe serve` / `connect` binary driven through the library client
//! over loopback. No audio server is needed: `info` answers with the catalogue error in
//! its reply when none is reachable.

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
    let mut child = probe()
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
