//! The runner in-process, without the lab: two fake probes (the real agent server over
//! loopback TCP, with a simulated audio world as its handler), scenarios in temp dirs,
//! `runner::run` called directly. Every row of the verdict table is driven through the
//! whole runner: expectation × observation × side, the rig's self-test, evidence, latency
//! across clocks, connection failures and a probe that dials in.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use earshot_harness::report::{Event, Run};
use earshot_harness::runner::{self, RunOptions};
use earshot_harness::scenario::Check;
use earshot_harness::verdict::Verdict;
use earshot_probe::audio::{AudioError, AudioErrorKind, DeviceDirection, DeviceInfo};
use earshot_probe::proto::msg::SessionKind;
use earshot_probe::server::{Server, ServerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod sim;
use sim::*;

/// Every test of the runner in-process, in one module: `make test` runs them apart, many
/// at once (each spends its time waiting on simulated audio, not on a core).
mod in_process {
    use super::*;

    /// A client and a session in one world.
    struct Rig {
        world: World,
        local_devices: Result<Vec<DeviceInfo>, AudioError>,
        remote_devices: Vec<DeviceInfo>,
        local_broken: Vec<&'static str>,
        remote_broken: Vec<&'static str>,
        remote_skew_ms: f64,
        remote_xrdp: Option<earshot_probe::proto::msg::XrdpSettings>,
        remote_host_config: Option<earshot_probe::proto::msg::HostConfig>,
        /// What the remote probe says it holds open (`--prime-input`).
        remote_primed: Option<earshot_probe::proto::msg::PrimedInput>,
        /// The session's client reconnects this long after the probes start.
        remote_reconnects_after: Option<Duration>,
        /// The scenario's `[timeouts]` table.
        timeouts: &'static str,
        /// The session probe's control link delays every byte this long (to the probe, back).
        remote_link: Option<(Duration, Duration)>,
        /// The server the session probe names as serving its session.
        remote_server: Option<earshot_probe::proto::msg::SessionServer>,
        /// A signal stops the run this long after it starts; the scenario is given twice.
        interrupt_after: Option<Duration>,
    }

    /// Short waits for the fake world: a listen that should hear sound lasts 800 ms; one that
    /// should not until a play proves it (latency 300 ms; an on-demand microphone channel
    /// opens within 500 ms).
    const QUICK: &str =
        "connect = \"2s\"\nlisten = \"800ms\"\nlatency = \"300ms\"\nchannel_open = \"500ms\"";

    impl Rig {
        /// Both directions redirected, the client's loopback and mic wired as in the lab.
        fn redirected() -> Rig {
            Rig {
                world: World::wired(true),
                local_devices: Ok(client_devices()),
                remote_devices: session_devices(true, true),
                local_broken: vec![],
                remote_broken: vec![],
                remote_skew_ms: 0.0,
                remote_xrdp: None,
                remote_host_config: None,
                remote_primed: None,
                remote_reconnects_after: None,
                timeouts: QUICK,
                remote_link: None,
                remote_server: None,
                interrupt_after: None,
            }
        }

        /// Nothing crosses from session to client or back.
        fn blocked() -> Rig {
            let mut r = Rig::redirected();
            r.world.routes.retain(|(from, to, _)| from.0 == to.0);
            r
        }

        fn route(
            mut self,
            from: (&'static str, &'static str),
            to: (&'static str, &'static str),
            carry: Carry,
        ) -> Rig {
            self.world
                .routes
                .retain(|(f, t, _)| !(*f == from && *t == to));
            self.world.routes.push((from, to, carry));
            self
        }

        fn unroute(mut self, from: (&'static str, &'static str)) -> Rig {
            self.world.routes.retain(|(f, _, _)| *f != from);
            self
        }

        /// Runs `policy` (TOML policy sections) with the given product against this rig.
        async fn run(self, product: &str, policy: &str) -> Outcome {
            self.run_with(product, policy, "", None).await
        }

        async fn run_with(
            self,
            product: &str,
            policy: &str,
            local_extra: &str,
            evidence: Option<PathBuf>,
        ) -> Outcome {
            let world = Arc::new(self.world);
            let (local, stop_l) = serve(FakeProbe {
                name: "local",
                world: world.clone(),
                devices: self.local_devices,
                broken: self.local_broken,
                clock_skew_ms: 0.0,
                xrdp: None,
                host_config: None,
                primed_input: None,
                reconnects_at: None,
                made: std::time::Instant::now(),
                hostname: None,
                session: None,
                server: None,
            })
            .await;
            let (remote, stop_r) = serve(FakeProbe {
                name: "remote",
                world,
                devices: Ok(self.remote_devices),
                broken: self.remote_broken,
                clock_skew_ms: self.remote_skew_ms,
                xrdp: self.remote_xrdp,
                host_config: self.remote_host_config,
                primed_input: self.remote_primed,
                reconnects_at: self
                    .remote_reconnects_after
                    .map(|after| std::time::Instant::now() + after),
                made: std::time::Instant::now(),
                hostname: None,
                session: None,
                server: self.remote_server,
            })
            .await;
            let remote = match self.remote_link {
                Some((to_probe, from_probe)) => slow_link(remote, to_probe, from_probe).await,
                None => remote,
            };
            let dir = tempfile::tempdir().unwrap();
            let file = write_scenario_timed(
                dir.path(),
                product,
                policy,
                &format!("address = \"{local}\"\n{local_extra}"),
                &format!("address = \"{remote}\""),
                self.timeouts,
            );
            let out = match self.interrupt_after {
                Some(after) => run_interrupted(&[file.clone(), file], evidence, after).await,
                None => run_files(&[file], evidence).await,
            };
            stop_l.cancel();
            stop_r.cancel();
            out
        }
    }

    fn write_scenario(
        dir: &Path,
        product: &str,
        policy: &str,
        local: &str,
        remote: &str,
    ) -> PathBuf {
        write_scenario_timed(dir, product, policy, local, remote, QUICK)
    }

    fn write_scenario_timed(
        dir: &Path,
        product: &str,
        policy: &str,
        local: &str,
        remote: &str,
        timeouts: &str,
    ) -> PathBuf {
        std::fs::write(dir.join("token"), TOKEN).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join("token"), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        let text = format!(
            "name = \"in-process\"\nproduct = \"{product}\"\n{policy}\n\
         [timeouts]\n{timeouts}\n\
         [probes.local]\n{local}\ntoken_file = \"token\"\noutput_loopback = \"speakers.monitor\"\n\
         mic_feed = \"micfeed\"\n\
         [probes.remote]\n{remote}\ntoken_file = \"token\"\n"
        );
        let file = dir.join("s.toml");
        std::fs::write(&file, text).unwrap();
        file
    }

    /// What a run gave: the run and every event.
    struct Outcome {
        run: Run,
        events: Vec<String>,
        /// Each check's verdict as the reporters saw it come: the check and when (from the
        /// run's start).
        given: Vec<(Check, Duration)>,
    }

    /// A sink that keeps every event in words and when each verdict came.
    fn recorder<'a>(
        events: &'a mut Vec<String>,
        given: &'a mut Vec<(Check, Duration)>,
    ) -> impl FnMut(&Event, &Run) + 'a {
        let start = std::time::Instant::now();
        move |e: &Event, _: &Run| {
            if let Event::CheckFinished(c) = e {
                given.push((c.check, start.elapsed()));
            }
            events.push(format!("{e:?}"));
        }
    }

    impl Outcome {
        fn verdicts(&self) -> Vec<Verdict> {
            self.run.scenarios[0]
                .checks
                .iter()
                .map(|c| c.verdict)
                .collect()
        }

        fn cause(&self, i: usize) -> &str {
            &self.run.scenarios[0].checks[i].cause
        }

        fn kinds(&self) -> Vec<&'static str> {
            self.run.scenarios[0]
                .checks
                .iter()
                .map(|c| c.observation.kind())
                .collect()
        }
    }

    async fn run_files(files: &[PathBuf], evidence: Option<PathBuf>) -> Outcome {
        let prepared = runner::prepare(files).unwrap_or_else(|e| panic!("{e:?}"));
        let (mut events, mut given) = (Vec::new(), Vec::new());
        let mut sink = recorder(&mut events, &mut given);
        let run = tokio::time::timeout(
            Duration::from_secs(90),
            runner::run(
                &prepared,
                &RunOptions {
                    evidence_dir: evidence,
                    seed: Some(42),
                    ..RunOptions::default()
                },
                &mut sink,
            ),
        )
        .await
        .expect("the runner finishes within its bounds");
        drop(sink);
        Outcome { run, events, given }
    }

    /// Runs `files`, pulling the run's interrupt as SIGINT would, `after` its start.
    async fn run_interrupted(
        files: &[PathBuf],
        evidence: Option<PathBuf>,
        after: Duration,
    ) -> Outcome {
        let prepared = runner::prepare(files).unwrap_or_else(|e| panic!("{e:?}"));
        let (mut events, mut given) = (Vec::new(), Vec::new());
        let mut sink = recorder(&mut events, &mut given);
        let interrupt = runner::Interrupt::new();
        let pull = interrupt.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            pull.pull("SIGINT (Ctrl-C)", 130);
        });
        let run = tokio::time::timeout(
            Duration::from_secs(30),
            runner::run(
                &prepared,
                &RunOptions {
                    evidence_dir: evidence,
                    seed: Some(42),
                    interrupt,
                    ..RunOptions::default()
                },
                &mut sink,
            ),
        )
        .await
        .expect("an interrupted run ends at once");
        drop(sink);
        Outcome { run, events, given }
    }

    #[tokio::test]
    async fn an_interrupted_run_keeps_the_decided_checks_and_says_so_everywhere() {
        // Output crosses at once; the microphone does not, so the capture check is still
        // listening (a redirected path that brings nothing listens twice) when SIGINT comes.
        let mut rig = Rig::redirected();
        rig.world
            .routes
            .retain(|(from, to, _)| !(from.0 == "local" && to.0 == "remote"));
        rig.interrupt_after = Some(Duration::from_millis(1500));
        let started = std::time::Instant::now();
        let o = rig.run("avd", REDIRECT_BOTH).await;
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(o.verdicts(), [Pass, Inconclusive], "{}", o.cause(1));
        assert!(
            o.cause(1)
                .starts_with("interrupted by SIGINT (Ctrl-C) before the check finished"),
            "{}",
            o.cause(1)
        );
        // The second scenario never started; the run says so, and exits 130.
        assert_eq!(o.run.scenarios.len(), 1);
        let i = o
            .run
            .interrupted
            .as_ref()
            .expect("the run is marked interrupted");
        assert_eq!(
            (i.signal.as_str(), i.exit_code, i.not_started),
            ("SIGINT (Ctrl-C)", 130, 1)
        );
        assert_eq!(o.run.exit_code(), 130);
        // Every artifact: the terminal's closing words, the page's headline, JUnit, JSON.
        assert!(
            o.run.tally().words().contains("INTERRUPTED"),
            "{}",
            o.run.tally().words()
        );
        let page = earshot_harness::report::html_report(&o.run, &mut HashMap::new());
        assert!(
            page.contains("INTERRUPTED by SIGINT (Ctrl-C)"),
            "headline missing"
        );
        let xml = earshot_harness::report::junit_xml(&o.run).unwrap();
        assert!(xml.contains("interrupted by SIGINT (Ctrl-C)"), "{xml}");
        let json = serde_json::to_value(&o.run).unwrap();
        assert_eq!(json["interrupted"]["exit_code"], 130);
        assert_eq!(json["scenarios"][0]["checks"][0]["verdict"], "pass");
    }

    const REDIRECT_BOTH: &str = "[policy.rdp]\nproperties = \"audiomode:i:0;audiocapturemode:i:1\"";
    const BLOCK_BOTH: &str = "[policy.session_host]\nfDisableCam = 1\nfDisableAudioCapture = 1";

    use Verdict::{Fail, Inconclusive, Pass};

    #[tokio::test]
    async fn redirected_and_expected_redirected_pass_with_latency_across_skewed_clocks() {
        let mut rig = Rig::redirected();
        // The session host's clock is 5 s ahead: the info round trip takes it out.
        rig.remote_skew_ms = 5000.0;
        let o = rig.run("avd", REDIRECT_BOTH).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(0));
        assert_eq!(o.kinds(), ["detected", "detected"]);
        let c = &o.run.scenarios[0].checks[0];
        let earshot_harness::verdict::Observation::Detected {
            latency_ms, plays, ..
        } = c.observation
        else {
            panic!("{:?}", c.observation)
        };
        let l = latency_ms.unwrap();
        assert!((50.0..400.0).contains(&l), "latency {l} ms");
        assert_eq!(plays, 1);
        assert_eq!(o.run.exit_code(), 0);
    }

    #[tokio::test]
    async fn blocked_and_expected_redirected_fail_once_the_rig_hears_itself() {
        let o = Rig::blocked().run("avd", REDIRECT_BOTH).await;
        assert_eq!(o.verdicts(), [Fail, Fail]);
        assert_eq!(o.kinds(), ["silent", "silent"]);
        assert!(
            o.cause(0).contains("rig heard its own test signature"),
            "{}",
            o.cause(0)
        );
        assert!(o.run.scenarios[0].checks[0].rig_proof.is_some());
        assert_eq!(o.run.exit_code(), 1);
    }

    #[tokio::test]
    async fn redirected_but_expected_blocked_fail_as_not_in_effect() {
        let o = Rig::redirected().run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts(), [Fail, Fail]);
        assert!(o.cause(0).contains("not in effect"), "{}", o.cause(0));
    }

    #[tokio::test]
    async fn a_session_that_never_had_a_redirected_microphone_is_named_as_such() {
        use earshot_probe::proto::msg::SessionServer;
        // A Windows session host whose session shows its redirected speaker but never a
        // redirected microphone: the server, not the client's microphone, is the place to look.
        let mut rig = Rig::blocked();
        rig.remote_server = Some(SessionServer::WindowsRds);
        rig.remote_devices = vec![
            sim::dev(
                "Speakers (Remote Audio)",
                DeviceDirection::Output,
                true,
                false,
            ),
            sim::dev("Stereo Mix", DeviceDirection::Input, true, false),
        ];
        let o = rig.run("avd", REDIRECT_BOTH).await;
        assert_eq!(o.verdicts()[1], Fail, "{}", o.cause(1));
        assert!(
            o.cause(1).contains(
                "the session has no redirected microphone (no `Remote Audio` input at any time): \
             the server (Remote Desktop Services) may not support microphone redirection, or \
             its channel is off"
            ),
            "{}",
            o.cause(1)
        );
        assert!(!o.cause(1).contains("muted"), "{}", o.cause(1));
        // The hint comes from the layer that said "redirect": the host pool's properties.
        assert!(
            o.cause(1).contains("refresh the workspace"),
            "{}",
            o.cause(1)
        );
    }

    #[tokio::test]
    async fn blocked_and_expected_blocked_pass_once_the_rig_hears_itself() {
        let o = Rig::blocked().run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(0));
        assert!(o.cause(1).contains("absence is real"), "{}", o.cause(1));
    }

    #[tokio::test]
    async fn a_client_rig_without_its_loopback_never_passes_a_blocked_scenario() {
        // The regression this runner was rebuilt for: no usable device on the client used to
        // read as "not redirected" and pass.
        let mut rig = Rig::blocked();
        rig.local_devices = Ok(client_devices()
            .into_iter()
            .filter(|d| d.id != "speakers.monitor")
            .collect());
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts(), [Inconclusive, Pass], "{}", o.cause(0));
        assert!(
            o.cause(0)
                .contains("client rig has no usable `speakers.monitor`"),
            "{}",
            o.cause(0)
        );
        let warned = o.run.scenarios[0].warnings.join("\n");
        assert!(warned.contains("output check cannot be made"), "{warned}");
        assert_eq!(o.run.exit_code(), 2);
    }

    #[tokio::test]
    async fn a_client_rig_without_any_audio_is_inconclusive_whatever_the_policy() {
        for policy in [BLOCK_BOTH, REDIRECT_BOTH] {
            let mut rig = Rig::redirected();
            rig.local_devices = Err(AudioError {
                kind: AudioErrorKind::HostUnavailable,
                message: "no PulseAudio server".into(),
            });
            let o = rig.run("avd", policy).await;
            assert_eq!(
                o.verdicts(),
                [Inconclusive, Inconclusive],
                "{policy}: {}",
                o.cause(0)
            );
            assert!(
                o.cause(0).contains("error on the client rig"),
                "{}",
                o.cause(0)
            );
        }
    }

    #[tokio::test]
    async fn a_rig_that_cannot_hear_itself_makes_every_absence_inconclusive() {
        for policy in [BLOCK_BOTH, REDIRECT_BOTH] {
            let rig = Rig::blocked()
                .unroute(("local", "speakers"))
                .unroute(("local", "micfeed"));
            let o = rig.run("avd", policy).await;
            assert_eq!(
                o.verdicts(),
                [Inconclusive, Inconclusive],
                "{policy}: {}",
                o.cause(0)
            );
            assert!(o.cause(0).contains("cannot hear itself"), "{}", o.cause(0));
        }
    }

    #[tokio::test]
    async fn a_broken_client_device_is_the_rig_and_a_broken_session_device_too() {
        let mut rig = Rig::redirected();
        rig.local_broken = vec!["micfeed"];
        rig.remote_broken = vec!["rdp-sink"];
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts(), [Inconclusive, Inconclusive]);
        assert_eq!(o.kinds(), ["error", "error"]);
        assert!(
            o.cause(0).contains("error on the session"),
            "{}",
            o.cause(0)
        );
        assert!(
            o.cause(1).contains("error on the client rig"),
            "{}",
            o.cause(1)
        );
    }

    #[tokio::test]
    async fn a_session_without_endpoints_is_a_finding() {
        let mut rig = Rig::blocked();
        rig.remote_devices = session_devices(false, false);
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts(), [Pass, Pass]);
        assert_eq!(o.kinds(), ["no_device", "no_device"]);
        let mut rig = Rig::blocked();
        rig.remote_devices = session_devices(false, false);
        let o = rig.run("avd", REDIRECT_BOTH).await;
        assert_eq!(o.verdicts(), [Fail, Fail]);
        assert!(
            o.cause(1).contains("session has no microphone"),
            "{}",
            o.cause(1)
        );
    }

    #[tokio::test]
    async fn a_damaged_path_is_degraded_not_blocked() {
        let rig = Rig::redirected().route(
            ("remote", "rdp-sink"),
            ("local", "speakers.monitor"),
            Carry::Damaged,
        );
        let o = rig.run("avd", REDIRECT_BOTH).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(0));
        assert_eq!(o.kinds()[0], "degraded");
        let rig = Rig::redirected().route(
            ("remote", "rdp-sink"),
            ("local", "speakers.monitor"),
            Carry::Damaged,
        );
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts()[0], Fail, "{}", o.cause(0));
    }

    #[tokio::test]
    async fn other_sound_on_the_loopback_is_unrecognised_and_never_a_verdict() {
        let mut rig = Rig::blocked();
        rig.world.noisy = vec![("local", "speakers.monitor")];
        let o = rig.run("avd", REDIRECT_BOTH).await;
        assert_eq!(o.kinds()[0], "unrecognised");
        assert_eq!(o.verdicts()[0], Inconclusive, "{}", o.cause(0));
        // Under a blocked policy, sound that is on the input with no play at all (the same
        // level, listened to again without plays) is unrelated to the plays: not redirected.
        let mut rig = Rig::blocked();
        rig.world.noisy = vec![("local", "speakers.monitor")];
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts()[0], Pass, "{}", o.cause(0));
        assert!(
            o.cause(0)
                .contains("the same sound is on the input with no play at all (-20 dBFS"),
            "{}",
            o.cause(0)
        );
        assert!(o.run.scenarios[0].checks[0].rig_proof.is_some());
    }

    #[tokio::test]
    async fn sound_that_comes_only_with_the_plays_is_never_taken_for_unrelated() {
        // The blocked path leaks the signature garbled past recognition: sound during the
        // plays, none without them. It may be the signature: no proof of silence.
        let rig = Rig::blocked().route(
            ("remote", "rdp-sink"),
            ("local", "speakers.monitor"),
            Carry::Garbled,
        );
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.kinds()[0], "unrecognised");
        assert_eq!(o.verdicts()[0], Inconclusive, "{}", o.cause(0));
        assert!(
            o.cause(0).contains("it came with the plays") && o.cause(0).contains("-25 dBFS"),
            "{}",
            o.cause(0)
        );
    }

    #[tokio::test]
    async fn an_on_demand_microphone_is_heard_on_a_later_play() {
        let rig = Rig::redirected().route(
            ("local", "micfeed"),
            ("remote", "rdp-mic"),
            Carry::OnDemand(Duration::from_millis(300)),
        );
        let o = rig.run("avd", REDIRECT_BOTH).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(1));
        let earshot_harness::verdict::Observation::Detected { plays, .. } =
            o.run.scenarios[0].checks[1].observation
        else {
            panic!()
        };
        assert!(plays > 1, "plays {plays}");
    }

    #[tokio::test]
    async fn evidence_is_kept_for_anything_but_a_clean_pass() {
        let dir = tempfile::tempdir().unwrap();
        let ev = dir.path().join("evidence");
        let o = Rig::redirected()
            .run_with("avd", BLOCK_BOTH, "", Some(ev.clone()))
            .await;
        assert_eq!(o.verdicts(), [Fail, Fail]);
        let kept = std::fs::read_dir(&ev).unwrap().count();
        assert_eq!(kept, 2);
        let ev2 = dir.path().join("clean");
        let o = Rig::redirected()
            .run_with("avd", REDIRECT_BOTH, "", Some(ev2.clone()))
            .await;
        assert_eq!(o.verdicts(), [Pass, Pass]);
        assert!(!ev2.exists() || std::fs::read_dir(&ev2).unwrap().count() == 0);
    }

    #[tokio::test]
    async fn an_unreachable_probe_is_a_setup_error_naming_what_to_check() {
        let dir = tempfile::tempdir().unwrap();
        // A port with nothing behind it.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let file = write_scenario(
            dir.path(),
            "avd",
            "",
            &format!("address = \"{free}\""),
            &format!("address = \"{free}\""),
        );
        let o = run_files(&[file], None).await;
        let s = &o.run.scenarios[0];
        let e = s.error.as_deref().unwrap();
        assert!(
            e.contains("local probe") && e.contains("earshot-probe serve"),
            "{e}"
        );
        assert_eq!(s.verdict(), Inconclusive);
        assert_eq!(o.run.exit_code(), 2);
    }

    #[tokio::test]
    async fn a_probe_that_dials_in_is_told_what_to_start_and_waited_for() {
        let world = Arc::new(Rig::redirected().world);
        let (local, stop_l) = serve(FakeProbe::new("local", world.clone(), client_devices())).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let file = write_scenario(
            dir.path(),
            "avd",
            REDIRECT_BOTH,
            &format!("address = \"{local}\""),
            &format!("dial_in = \"127.0.0.1:{port}\""),
        );
        // The remote probe dials in a little later, as a probe started at logon would.
        let stop = dial_in(
            FakeProbe::new("remote", world, session_devices(true, true)),
            port,
            Duration::from_millis(300),
        );
        let o = run_files(&[file], None).await;
        let waited = o
            .events
            .iter()
            .find(|e| e.contains("Waiting"))
            .expect("a waiting event");
        assert!(
            waited.contains(&format!("127.0.0.1:{port}"))
                && waited.contains("earshot-probe connect"),
            "{waited}"
        );
        assert_eq!(o.verdicts(), [Pass, Pass]);
        stop.cancel();
        stop_l.cancel();
    }

    #[tokio::test]
    async fn every_scenario_is_checked_before_any_probe_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let good = write_scenario(
            dir.path(),
            "avd",
            "",
            "address = \"127.0.0.1:1\"",
            "address = \"127.0.0.1:1\"",
        );
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "name = \"bad\"\nproduct = \"avd\"\n[policy.rdp]\nproperties = \"audiomode:i:7\"\n[probes.local]\naddress = \"a:1\"\ntoken_file = \"t\"\nmic_feed = \"m\"\n[probes.remote]\naddress = \"b:2\"\ntoken_file = \"t\"\n").unwrap();
        let errors = runner::prepare(&[good, bad]).unwrap_err();
        assert_eq!(errors.len(), 1);
        let e = errors[0].to_string();
        assert!(
            e.contains("bad.toml")
                && e.contains("audiomode:i:7")
                && e.contains("0 (play on this computer)"),
            "{e}"
        );
    }

    /// Stops the fake probes it holds when dropped.
    struct Serving(Vec<CancellationToken>);

    impl Drop for Serving {
        fn drop(&mut self) {
            self.0.iter().for_each(CancellationToken::cancel);
        }
    }

    /// A working local probe and a remote one (`remote` may change it) in `world`, serving:
    /// their addresses, and what stops both.
    async fn serve_pair(
        world: Arc<World>,
        remote: impl FnOnce(FakeProbe) -> FakeProbe,
    ) -> (String, String, Serving) {
        let (local, stop_l) = serve(FakeProbe::new("local", world.clone(), client_devices())).await;
        let (remote, stop_r) = serve(remote(FakeProbe::new(
            "remote",
            world,
            session_devices(true, true),
        )))
        .await;
        (local, remote, Serving(vec![stop_l, stop_r]))
    }

    /// What a relay does to the probe's frames after the first few.
    #[derive(Clone, Copy)]
    enum Meddle {
        /// Passes them on as they are.
        Nothing,
        /// Flips one bit in each.
        Tamper,
        /// Holds each this long (whole and in order).
        Delay(Duration),
    }

    /// A TCP relay in front of `upstream` that sees every byte. After `clean_frames` frames
    /// from the probe have passed, it does `meddle` to each later frame. Returns its address
    /// and everything the probe sent through it.
    async fn relay(
        upstream: String,
        clean_frames: usize,
        meddle: Meddle,
    ) -> (String, Arc<Mutex<Vec<u8>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let (mut dr, mut dw) = down.split();
                    let (mut ur, mut uw) = up.split();
                    let to_probe = tokio::io::copy(&mut dr, &mut uw);
                    let from_probe = async {
                        let mut n = 0usize;
                        loop {
                            let mut len = [0u8; 4];
                            if ur.read_exact(&mut len).await.is_err() {
                                break;
                            }
                            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                            if ur.read_exact(&mut body).await.is_err() {
                                break;
                            }
                            if let Ok(mut s) = seen.lock() {
                                s.extend_from_slice(&body);
                            }
                            n += 1;
                            match meddle {
                                Meddle::Tamper if n > clean_frames && !body.is_empty() => {
                                    let i = body.len() / 2;
                                    body[i] ^= 0x10;
                                }
                                Meddle::Delay(d) if n > clean_frames => tokio::time::sleep(d).await,
                                _ => {}
                            }
                            if dw.write_all(&len).await.is_err()
                                || dw.write_all(&body).await.is_err()
                            {
                                break;
                            }
                        }
                    };
                    tokio::select! { _ = to_probe => {}, _ = from_probe => {} }
                });
            }
        });
        (addr, seen)
    }

    async fn run_through_relay(tamper: bool) -> (Outcome, Vec<u8>) {
        let rig = Rig::redirected();
        let world = Arc::new(rig.world);
        let (local, remote, _serving) = serve_pair(world, |p| p).await;
        // Handshake (challenge, welcome) and the info reply pass untouched; every later reply
        // of the session host's probe is altered on the way.
        let meddle = if tamper {
            Meddle::Tamper
        } else {
            Meddle::Nothing
        };
        let (via, seen) = relay(remote, 3, meddle).await;
        let dir = tempfile::tempdir().unwrap();
        let file = write_scenario(
            dir.path(),
            "avd",
            BLOCK_BOTH,
            &format!("address = \"{local}\""),
            &format!("address = \"{via}\""),
        );
        let o = run_files(&[file], None).await;
        let bytes = seen.lock().unwrap().clone();
        (o, bytes)
    }

    #[tokio::test]
    async fn a_reply_altered_on_the_wire_is_inconclusive_never_a_pass() {
        // Both directions are redirected and the policy blocks both: the honest verdicts are
        // fail. An attacker flipping bits in the session host's replies (say, to turn a
        // `detected` into a `silent`) gets neither a pass nor a forged fail.
        let (o, _) = run_through_relay(true).await;
        for (i, v) in o.verdicts().iter().enumerate() {
            assert_ne!(*v, Pass, "{}", o.cause(i));
        }
        let capture = &o.run.scenarios[0].checks[1];
        assert_eq!(capture.verdict, Inconclusive, "{}", capture.cause);
        assert!(capture.cause.contains("tampered"), "{}", capture.cause);
    }

    #[tokio::test]
    async fn a_passive_observer_sees_no_plaintext_of_a_whole_run() {
        let (o, bytes) = run_through_relay(false).await;
        assert_eq!(o.verdicts(), [Fail, Fail], "{}", o.cause(0));
        assert!(bytes.len() > 1000, "the relay saw {} bytes", bytes.len());
        let text = String::from_utf8_lossy(&bytes);
        for needle in [
            "hostname", "rdp-sink", "rdp-mic", "remote", "detected", "fLaC", "RIFF",
        ] {
            assert!(
                !text.contains(needle),
                "`{needle}` crossed the wire in clear"
            );
        }
    }

    #[tokio::test]
    async fn a_path_slower_than_the_listen_is_confirmed_by_a_second_listen_not_failed() {
        // The microphone opens only after 3.5 s, beyond the first listen (its proof window,
        // 2.96 s, being longer than timeouts.listen, 2 s): the first listen hears nothing, the
        // second (twice as long) hears it.
        let mut rig = Rig::redirected().route(
            ("local", "micfeed"),
            ("remote", "rdp-mic"),
            Carry::OnDemand(Duration::from_millis(3500)),
        );
        rig.timeouts =
            "connect = \"2s\"\nlisten = \"2s\"\nlatency = \"300ms\"\nchannel_open = \"500ms\"";
        let o = rig.run("avd", REDIRECT_BOTH).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(1));
        assert!(
            o.cause(1).contains("after a second listen of 4 s"),
            "{}",
            o.cause(1)
        );
    }

    #[tokio::test]
    async fn an_xrdp_host_without_the_rolled_out_switch_is_named_as_such() {
        let mut rig = Rig::redirected();
        rig.remote_xrdp = Some(earshot_probe::proto::msg::XrdpSettings {
            path: "/etc/xrdp/xrdp.ini".into(),
            rdpsnd: Some(true),
            ..Default::default()
        });
        let o = rig
        .run(
            "xrdp",
            "[policy.xrdp]\nrdpsnd = false\n[policy.rdp]\nproperties = \"audiomode:i:0;audiocapturemode:i:1\"",
        )
        .await;
        assert_eq!(o.verdicts(), [Fail, Pass], "{}", o.cause(0));
        assert!(
        o.cause(0).contains(
            "rdpsnd=true where the scenario says rdpsnd=false: the setting did not reach this host"
        ),
        "{}",
        o.cause(0)
    );
        let hosts = &o.run.scenarios[0].probes[1].host_settings;
        assert!(hosts[0].contains("/etc/xrdp/xrdp.ini"), "{hosts:?}");
    }

    #[tokio::test]
    async fn an_xrdp_ini_on_the_host_is_no_cause_in_an_avd_scenario() {
        let mut rig = Rig::redirected();
        rig.remote_xrdp = Some(earshot_probe::proto::msg::XrdpSettings {
            path: "/etc/xrdp/xrdp.ini".into(),
            rdpsnd: Some(true),
            ..Default::default()
        });
        let o = rig
            .run("avd", "[policy.rdp]\nproperties = \"audiocapturemode:i:1\"")
            .await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(1));
        for i in [0, 1] {
            assert!(!o.cause(i).contains("xrdp.ini"), "{}", o.cause(i));
        }
        // The host's facts stay in the probe's summary.
        let hosts = &o.run.scenarios[0].probes[1].host_settings;
        assert!(hosts[0].contains("/etc/xrdp/xrdp.ini"), "{hosts:?}");
    }

    /// A Windows session host whose policy key holds `cam` and `capture` (None: absent),
    /// written `written_after_boot_ms` after its boot (negative: before).
    fn windows_host(
        cam: Option<u32>,
        capture: Option<u32>,
        written_after_boot_ms: f64,
    ) -> earshot_probe::proto::msg::HostConfig {
        use earshot_probe::proto::msg::{HostConfig, RegistryData, RegistryValue};
        let boot = earshot_probe::unix_ms() - 86_400_000.0;
        let v = |name: &str, d: Option<u32>| RegistryValue {
            key: earshot_harness::host::POLICY_KEY.into(),
            name: name.into(),
            data: d.map_or(RegistryData::Absent, |value| RegistryData::Dword { value }),
            key_written_unix_ms: Some(boot + written_after_boot_ms),
        };
        HostConfig {
            boot_unix_ms: Some(boot),
            values: vec![v("fDisableCam", cam), v("fDisableAudioCapture", capture)],
            ..HostConfig::default()
        }
    }

    #[tokio::test]
    async fn a_windows_host_says_why_a_blocked_rollout_still_redirects() {
        // Written after boot: restart.
        let mut rig = Rig::redirected();
        rig.remote_host_config = Some(windows_host(Some(1), Some(1), 3_600_000.0));
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts(), [Fail, Fail], "{}", o.cause(0));
        for i in 0..2 {
            assert!(o.cause(i).contains("restart the host"), "{}", o.cause(i));
            // The host's facts replace the judge's guess.
            assert!(!o.cause(i).contains("restarted since"), "{}", o.cause(i));
        }
        let host = o.run.scenarios[0].checks[0]
            .host
            .as_ref()
            .expect("host view");
        assert_eq!(host.facts[0].setting, "fDisableCam");
        assert_eq!(host.facts[0].rolled_out, Some(1));
        assert_eq!(host.facts[0].host_value, Some(1));
        assert_eq!(host.facts[0].written_after_boot, Some(true));
        let lines = &o.run.scenarios[0].probes[1].host_settings;
        assert!(lines.iter().any(|l| l.starts_with("booted ")), "{lines:?}");

        // Not on the host: the profile did not apply.
        let mut rig = Rig::redirected();
        rig.remote_host_config = Some(windows_host(None, None, -3_600_000.0));
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts(), [Fail, Fail], "{}", o.cause(0));
        assert!(
            o.cause(0)
                .contains("fDisableCam is absent on the host where the scenario says 1"),
            "{}",
            o.cause(0)
        );
        assert!(o.cause(0).contains("did not apply"), "{}", o.cause(0));

        // On the host since before boot: look elsewhere.
        let mut rig = Rig::redirected();
        rig.remote_host_config = Some(windows_host(Some(1), Some(1), -3_600_000.0));
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts(), [Fail, Fail], "{}", o.cause(0));
        assert!(
            o.cause(0).contains("behaviour still differs"),
            "{}",
            o.cause(0)
        );

        // In effect and blocked: the pass states what the host has.
        let mut rig = Rig::blocked();
        rig.remote_host_config = Some(windows_host(Some(1), Some(1), 3_600_000.0));
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(0));
        assert!(
            o.cause(0).contains("the host has fDisableCam=1"),
            "{}",
            o.cause(0)
        );
    }

    #[tokio::test]
    async fn a_session_host_layer_taken_from_the_host() {
        let from_host = format!("[policy.session_host]\nfrom_host = true\n{REDIRECT_BOTH}");
        let from_host = from_host.as_str();
        // The host blocks output and allows capture; the rig redirects both.
        let mut rig = Rig::redirected();
        rig.remote_host_config = Some(windows_host(Some(1), Some(0), -3_600_000.0));
        let o = rig.run("avd", from_host).await;
        let s = &o.run.scenarios[0];
        let e = s.expectation.as_ref().expect("expectation");
        assert_eq!(
            e.output.decided_by, "session host policy fDisableCam=1",
            "{e:?}"
        );
        assert_eq!(o.verdicts(), [Fail, Pass], "{}", o.cause(0));
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("taken from the host: fDisableCam=1, fDisableAudioCapture=0")),
            "{:?}",
            s.warnings
        );

        // A probe that cannot read a Windows host's policy: nothing to judge against.
        let o = Rig::redirected().run("avd", from_host).await;
        let s = &o.run.scenarios[0];
        assert!(s.checks.is_empty());
        let error = s.error.as_deref().unwrap_or_default();
        assert!(error.contains("reported no host policy"), "{error}");
    }

    /// The check's own duration, ms.
    fn check_ms(o: &Outcome, i: usize) -> f64 {
        o.run.scenarios[0].checks[i].duration_ms
    }

    #[tokio::test]
    async fn a_blocked_direction_is_proven_silent_within_its_window_not_the_listen_timeout() {
        // listen 20 s, latency 200 ms, channel open 500 ms: output is proven silent once its
        // first play (started as the listener armed) has played out, 720 ms + 200 ms = 0.92 s;
        // capture once a play started after the channel could have opened has, 0.5 s later.
        // Their windows, had the plays not proven it sooner, were 1.64 s and 2.86 s.
        let mut rig = Rig::blocked();
        rig.timeouts =
            "connect = \"2s\"\nlisten = \"20s\"\nlatency = \"200ms\"\nchannel_open = \"500ms\"";
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(
            o.verdicts(),
            [Pass, Pass],
            "{} / {}",
            o.cause(0),
            o.cause(1)
        );
        let (output, capture) = (check_ms(&o, 0), check_ms(&o, 1));
        assert!(
            (920.0..1600.0).contains(&output),
            "output check took {output} ms"
        );
        assert!(
            (1420.0..2800.0).contains(&capture),
            "capture check took {capture} ms"
        );
    }

    /// The remote probe holds its input open (--prime-input) and has for 10 s; the connection
    /// has stood unchanged for `connection_ms` as far as the host shows (None: it cannot tell).
    fn primed(connection_ms: Option<u64>) -> Option<earshot_probe::proto::msg::PrimedInput> {
        Some(earshot_probe::proto::msg::PrimedInput {
            device: "default".into(),
            open_ms: Some(10_000),
            error: None,
            connection_ms,
        })
    }

    /// Timeouts of the primed tests: a blocked capture is proven silent by a play that started
    /// once the channel could have opened, 2.5 s + 720 ms + 200 ms = 3.42 s after the listen;
    /// with the channel's opening credited, by the first play, 0.92 s.
    const PRIMED_TIMEOUTS: &str =
        "connect = \"2s\"\nlisten = \"20s\"\nlatency = \"200ms\"\nchannel_open = \"2500ms\"";

    #[tokio::test]
    async fn a_session_input_held_open_on_an_unknown_connection_does_not_shorten_the_window() {
        // Held open for 10 s, but the host cannot say when its client last connected: a
        // client that reconnected brings a new microphone channel, so the input's age proves
        // nothing and a blocked capture is listened to for its whole 3.42 s.
        let mut rig = Rig::blocked();
        rig.timeouts = PRIMED_TIMEOUTS;
        rig.remote_primed = primed(None);
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(1));
        let capture = check_ms(&o, 1);
        assert!(
            (3420.0..4800.0).contains(&capture),
            "capture check took {capture} ms"
        );
        // Where the time went is said: the whole 2.5 s waited for the channel.
        assert!(
            o.cause(1)
                .contains("the microphone channel opens on demand: waited 2500 ms"),
            "{}",
            o.cause(1)
        );
        assert!(!o.cause(0).contains("on demand"), "{}", o.cause(0));
    }

    #[tokio::test]
    async fn a_session_input_held_open_on_a_settled_connection_shortens_the_blocked_window() {
        // Held open for 10 s on a connection that has stood for 10 s: the microphone channel
        // has had its 2.5 s to open, so silence is proven by the first play: 720 ms + 200 ms.
        let mut rig = Rig::blocked();
        rig.timeouts = PRIMED_TIMEOUTS;
        rig.remote_primed = primed(Some(10_000));
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(1));
        let capture = check_ms(&o, 1);
        assert!(
            (920.0..1600.0).contains(&capture),
            "capture check took {capture} ms"
        );
        assert!(!o.cause(1).contains("listened again"), "{}", o.cause(1));
        assert!(!o.cause(1).contains("waited"), "{}", o.cause(1));
        // A connection 1 s old is credited 0.75 s of the 2.5 s (a quarter second is kept for
        // the measuring): 1.75 s + 0.92 s.
        let mut rig = Rig::blocked();
        rig.timeouts = PRIMED_TIMEOUTS;
        rig.remote_primed = primed(Some(1_000));
        let o = rig.run("avd", BLOCK_BOTH).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(1));
        let capture = check_ms(&o, 1);
        assert!(
            (2670.0..3400.0).contains(&capture),
            "capture check took {capture} ms"
        );
    }

    #[tokio::test]
    async fn a_reconnect_during_a_shortened_window_is_listened_to_in_full_and_not_passed() {
        // The policy says capture is blocked, but the client's microphone reaches the session.
        // The connection had stood for 10 s when the check began, so the window was shortened;
        // then the client reconnected 0.8 s in, and its new microphone channel opens 2 s after
        // a listen starts: the shortened window heard nothing. Asked again after the window,
        // the probe reports the young connection: the check listens again in full, hears the
        // microphone and fails, saying why it listened twice.
        let mut rig = Rig::redirected().route(
            ("local", "micfeed"),
            ("remote", "rdp-mic"),
            Carry::OnDemand(Duration::from_millis(2000)),
        );
        rig.timeouts = PRIMED_TIMEOUTS;
        rig.remote_primed = primed(Some(10_000));
        rig.remote_reconnects_after = Some(Duration::from_millis(800));
        let o = rig
            .run("avd", "[policy.session_host]\nfDisableAudioCapture = 1")
            .await;
        assert_eq!(o.verdicts()[1], Fail, "{}", o.cause(1));
        assert!(o.cause(1).contains("detected"), "{}", o.cause(1));
        assert!(o.cause(1).contains("listened again"), "{}", o.cause(1));
    }

    #[tokio::test]
    async fn a_blocked_capture_carried_by_a_late_on_demand_channel_is_heard_not_passed() {
        // The policy says capture is blocked, but the client's microphone reaches the session
        // once its channel opens, 1.5 s after the session starts recording: the capture
        // window (2.5 s + 2 × 720 ms + 1 s by default) still hears it.
        let mut rig = Rig::redirected().route(
            ("local", "micfeed"),
            ("remote", "rdp-mic"),
            Carry::OnDemand(Duration::from_millis(1500)),
        );
        rig.timeouts = "connect = \"2s\"\nlisten = \"20s\"";
        let o = rig
            .run("avd", "[policy.session_host]\nfDisableAudioCapture = 1")
            .await;
        assert_eq!(o.verdicts()[1], Fail, "{}", o.cause(1));
        assert!(o.cause(1).contains("detected"), "{}", o.cause(1));
        assert!(
            check_ms(&o, 1) < 5000.0,
            "capture check took {} ms",
            check_ms(&o, 1)
        );
    }

    /// Output redirected and the continuity check asked for, with a 2 s stream.
    const CONTINUITY: &str =
        "checks = [\"output\", \"continuity\"]\n[continuity]\nduration = \"2s\"\n";

    #[tokio::test]
    async fn a_whole_stream_passes_continuity_with_its_figures() {
        let o = Rig::redirected().run("avd", CONTINUITY).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(1));
        let c = &o.run.scenarios[0].checks[1];
        assert_eq!(c.check, Check::Continuity);
        assert!(o.cause(1).contains("arrived whole"), "{}", o.cause(1));
        assert!(
            o.cause(1).contains("0 gap(s), 0 glitch(es)"),
            "{}",
            o.cause(1)
        );
        // The output verdict reached the reporters when it was decided, not with the
        // continuity verdict after the 2 s stream.
        let [(Check::Output, output), (Check::Continuity, continuity)] = o.given[..] else {
            panic!("{:?}", o.given);
        };
        assert!(
            continuity - output >= Duration::from_millis(1500),
            "{:?}",
            o.given
        );
    }

    #[tokio::test]
    async fn a_stream_that_loses_audio_fails_continuity_with_each_gap_and_what_to_check() {
        let rig = Rig::redirected().route(
            ("remote", "rdp-sink"),
            ("local", "speakers.monitor"),
            Carry::Damaged,
        );
        let o = rig.run("avd", CONTINUITY).await;
        // The signature is damaged too: the output check has its own verdict; continuity
        // fails on the gaps it measured (20 ms at 0.5 s and 1.5 s into the stream).
        assert_eq!(o.verdicts()[1], Fail, "{}", o.cause(1));
        let cause = o.cause(1);
        assert!(cause.contains("2 gap(s)"), "{cause}");
        // 20 ms each, at 0.5 s and 1.5 s into the stream (±5 ms: the start is found within
        // its fade), lengths to ±2.5 ms.
        let earshot_harness::verdict::Observation::Continuity { breaks, .. } =
            &o.run.scenarios[0].checks[1].observation
        else {
            panic!("not a continuity observation: {cause}");
        };
        for (b, at) in breaks.iter().zip([500.0, 1500.0]) {
            assert_eq!(b.kind, "gap", "{breaks:?}");
            assert!((b.at_ms - at).abs() <= 5.0, "{breaks:?}");
            assert!((b.length_ms - 20.0).abs() <= 2.5, "{breaks:?}");
        }
        assert!(cause.contains("stutter"), "{cause}");
    }

    #[tokio::test]
    async fn continuity_where_output_is_blocked_is_inconclusive_and_says_to_remove_it() {
        let o = Rig::blocked()
            .run(
                "avd",
                &format!("{CONTINUITY}[policy.session_host]\nfDisableCam = 1\n"),
            )
            .await;
        assert_eq!(o.verdicts(), [Pass, Inconclusive], "{}", o.cause(1));
        assert!(o.cause(1).contains("remove continuity"), "{}", o.cause(1));
    }

    #[tokio::test]
    async fn continuity_on_the_capture_path_is_recorded_in_the_session() {
        let policy = format!(
            "{}path = \"capture\"\n[policy.rdp]\nproperties = \"audiocapturemode:i:1\"\n",
            CONTINUITY.replace("\"output\", \"continuity\"", "\"capture\", \"continuity\"")
        );
        let o = Rig::redirected().run("avd", &policy).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(1));
        // The cause and the record say the same expectation: it is written once.
        assert!(
            o.cause(1)
                .starts_with("expected heard in the session, whole (host pool RDP property"),
            "{}",
            o.cause(1)
        );
        let c = &o.run.scenarios[0].checks[1];
        assert_eq!(
            c.observation.side().to_string(),
            "the session",
            "{:?}",
            c.observation
        );
        // Every artifact shows the capture path's expectation and the layer that decided it
        // (they once showed the output path's).
        assert_eq!(c.path, Some(earshot_harness::check::AudioPath::Capture));
        assert_eq!(c.expected, "heard in the session, whole");
        assert!(
            c.decided_by.contains("audiocapturemode:i:1"),
            "{}",
            c.decided_by
        );
        // The AVD default does not redirect the microphone: nothing to measure.
        let policy = CONTINUITY
            .replace("\"output\", \"continuity\"", "\"capture\", \"continuity\"")
            + "path = \"capture\"\n";
        let o = Rig::redirected().run("avd", &policy).await;
        assert_eq!(o.verdicts()[1], Inconclusive, "{}", o.cause(1));
        assert!(
            o.cause(1).contains("the capture check proves the block"),
            "{}",
            o.cause(1)
        );
    }

    /// Output redirected and the quality check asked for.
    const QUALITY: &str = "checks = [\"output\", \"quality\"]\n";

    #[tokio::test]
    async fn an_8k_path_meets_dynamic_quality_and_fails_high_with_its_band_edge() {
        // The fake world records at 8 kHz: the band stops at 3.4 kHz, the low class.
        let o = Rig::redirected().run("avd", QUALITY).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(1));
        let c = &o.run.scenarios[0].checks[1];
        assert_eq!(c.check, Check::Quality);
        assert!(
            o.cause(1).contains("low quality, band to 3391 Hz"),
            "{}",
            o.cause(1)
        );
        assert!(
            o.cause(1)
                .contains("meets dynamic (the server adapts to the bandwidth) quality"),
            "{}",
            o.cause(1)
        );
        assert!(c.decided_by.contains("defaults"), "{}", c.decided_by);
        let high = format!(
        "{QUALITY}[policy.session_host]\nAllowedAudioQualityMode = 7\n[policy.rdp]\nproperties = \"audioqualitymode:i:2\"\n"
    );
        let o = Rig::redirected().run("avd", &high).await;
        assert_eq!(o.verdicts(), [Pass, Fail], "{}", o.cause(1));
        let cause = o.cause(1);
        assert!(cause.starts_with("expected high quality"), "{cause}");
        assert!(cause.contains("so high class or better"), "{cause}");
        assert!(cause.contains("nothing above 3391 Hz arrives"), "{cause}");
        assert!(cause.contains("audioqualitymode"), "{cause}");
        let decided = &o.run.scenarios[0].checks[1].decided_by;
        assert!(
            decided.contains("audioqualitymode") || decided.contains("AllowedAudioQualityMode"),
            "{decided}"
        );
    }

    #[tokio::test]
    async fn a_noisy_path_fails_medium_quality_on_its_sinad() {
        let rig = Rig::redirected().route(
            ("remote", "rdp-sink"),
            ("local", "speakers.monitor"),
            Carry::Damaged,
        );
        let medium = format!(
        "{QUALITY}[policy.session_host]\nAllowedAudioQualityMode = 3\n[policy.rdp]\nproperties = \"audioqualitymode:i:1\"\n"
    );
        let o = rig.run("avd", &medium).await;
        assert_eq!(o.verdicts()[1], Fail, "{}", o.cause(1));
        assert!(
            o.cause(1).contains("noise and distortion only"),
            "{}",
            o.cause(1)
        );
        let earshot_harness::verdict::Observation::Quality {
            sinad_db,
            codec_signs,
            ..
        } = &o.run.scenarios[0].checks[1].observation
        else {
            panic!("not a quality observation: {}", o.cause(1));
        };
        assert!(sinad_db.is_some_and(|x| x < 20.0), "{sinad_db:?}");
        assert!(
            codec_signs.iter().any(|c| c == "band_limited"),
            "{codec_signs:?}"
        );
    }

    #[tokio::test]
    async fn quality_where_output_is_blocked_is_inconclusive_and_says_to_remove_it() {
        let o = Rig::blocked()
            .run(
                "avd",
                &format!("{QUALITY}[policy.session_host]\nfDisableCam = 1\n"),
            )
            .await;
        assert_eq!(o.verdicts(), [Pass, Inconclusive], "{}", o.cause(1));
        assert!(o.cause(1).contains("remove quality"), "{}", o.cause(1));
    }

    #[tokio::test]
    async fn a_latency_budget_hears_the_signature_three_times_and_holds_the_worst() {
        let policy = "checks = [\"output\"]\n[budgets]\noutput_latency = \"5s\"\n";
        let o = Rig::redirected().run("avd", policy).await;
        assert_eq!(o.verdicts(), [Pass], "{}", o.cause(0));
        let earshot_harness::verdict::Observation::Detected {
            latency_ms,
            latencies_ms,
            ..
        } = &o.run.scenarios[0].checks[0].observation
        else {
            panic!("not detected: {}", o.cause(0));
        };
        assert_eq!(latencies_ms.len(), 3, "{latencies_ms:?}");
        let mut sorted = latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(*latency_ms, Some(sorted[1]), "the median");
        // Without a budget, one play is enough.
        let o = Rig::redirected()
            .run("avd", "checks = [\"output\"]\n")
            .await;
        let earshot_harness::verdict::Observation::Detected { latencies_ms, .. } =
            &o.run.scenarios[0].checks[0].observation
        else {
            panic!("not detected: {}", o.cause(0));
        };
        assert!(latencies_ms.is_empty(), "{latencies_ms:?}");
    }

    /// Output redirected and the speech check asked for.
    const SPEECH: &str = "checks = [\"output\", \"speech\"]\n";

    #[tokio::test]
    async fn speech_is_scored_held_to_min_mos_and_a_blocked_path_has_none() {
        // The fake world records at 8 kHz: a narrowband path, about 2.5 in wideband MOS.
        let o = Rig::redirected().run("avd", SPEECH).await;
        assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(1));
        let c = &o.run.scenarios[0].checks[1];
        assert_eq!(c.check, Check::Speech);
        let earshot_harness::verdict::Observation::Speech { mos_lqo, .. } = &c.observation else {
            panic!("not a speech observation: {}", o.cause(1));
        };
        let mos = mos_lqo.expect("scored");
        assert!((1.5..3.5).contains(&mos), "{mos}");
        let o = Rig::redirected()
            .run("avd", &format!("{SPEECH}[budgets]\nmin_mos = 4.0\n"))
            .await;
        assert_eq!(o.verdicts(), [Pass, Fail], "{}", o.cause(1));
        assert!(o.cause(1).contains("hard to understand"), "{}", o.cause(1));
        let o = Rig::blocked()
            .run(
                "avd",
                &format!("{SPEECH}[policy.session_host]\nfDisableCam = 1\n"),
            )
            .await;
        assert_eq!(o.verdicts(), [Pass, Inconclusive], "{}", o.cause(1));
        assert!(o.cause(1).contains("remove speech"), "{}", o.cause(1));
    }

    /// `p` as a probe that dials the harness on 127.0.0.1:`port` after `delay`, as a probe
    /// started at logon would; stopped by the returned token.
    fn dial_in(p: FakeProbe, port: u16, delay: Duration) -> CancellationToken {
        let server = Server::new(
            p,
            ServerConfig {
                tokens: vec![token()],
                ..ServerConfig::default()
            },
        );
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = server
                .serve_dialed(&format!("127.0.0.1:{port}"), Duration::from_secs(2), &s)
                .await;
        });
        stop
    }

    #[tokio::test]
    async fn a_fleet_run_gives_each_host_its_own_verdict_and_names_the_hosts_it_could_not_reach() {
        let mut stops = Vec::new();
        let mut hosts = String::new();
        // avd-0: reached by address, its own rig, redirected. avd-1: the same, but nothing
        // crosses (the policy expects redirection: it fails).
        for (name, rig) in [("avd-0", Rig::redirected()), ("avd-1", Rig::blocked())] {
            let world = Arc::new(rig.world);
            let (l, sl) = serve(FakeProbe::new("local", world.clone(), client_devices())).await;
            let (r, sr) =
                serve(FakeProbe::new("remote", world, session_devices(true, true)).on(name)).await;
            stops.extend([sl, sr]);
            let _ = write!(
                hosts,
                "[[host]]\nname = \"{name}\"\naddress = \"{r}\"\nlocal = \"{l}\"\n"
            );
        }
        // avd-2: dials in (as AVD-2.contoso.com), its own rig. avd-3: never dials in.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let world = Arc::new(Rig::redirected().world);
        let (l, sl) = serve(FakeProbe::new("local", world.clone(), client_devices())).await;
        stops.push(sl);
        stops.push(dial_in(
            FakeProbe::new("remote", world, session_devices(true, true)).on("AVD-2"),
            port,
            Duration::from_millis(200),
        ));
        let _ = write!(
            hosts,
            "[[host]]\nname = \"avd-2.contoso.com\"\nlocal = \"{l}\"\n"
        );
        hosts += "[[host]]\nname = \"avd-3\"\n";
        // avd-4: its address leads to a probe on another host.
        let world = Arc::new(Rig::redirected().world);
        let (l, sl) = serve(FakeProbe::new("local", world.clone(), client_devices())).await;
        let (r, sr) =
            serve(FakeProbe::new("remote", world, session_devices(true, true)).on("intruder"))
                .await;
        stops.extend([sl, sr]);
        let _ = write!(
            hosts,
            "[[host]]\nname = \"avd-4\"\naddress = \"{r}\"\nlocal = \"{l}\"\n"
        );
        // avd-5 and avd-6 share the scenario's client rig (they take turns on it).
        let shared = Arc::new(Rig::redirected().world);
        let (shared_local, sl) =
            serve(FakeProbe::new("local", shared.clone(), client_devices())).await;
        stops.push(sl);
        for name in ["avd-5", "avd-6"] {
            let (r, sr) = serve(
                FakeProbe::new("remote", shared.clone(), session_devices(true, true)).on(name),
            )
            .await;
            stops.push(sr);
            let _ = write!(hosts, "[[host]]\nname = \"{name}\"\naddress = \"{r}\"\n");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = write_scenario(
            dir.path(),
            "avd",
            REDIRECT_BOTH,
            &format!("address = \"{shared_local}\""),
            &format!("dial_in = \"127.0.0.1:{port}\""),
        );
        let inventory = dir.path().join("hosts.toml");
        std::fs::write(&inventory, hosts).unwrap();
        let inv = earshot_harness::inventory::Inventory::load(&inventory).unwrap();
        let prepared = runner::prepare(&[file]).unwrap();
        let mut progress = Vec::new();
        let mut sink = |e: &Event, _: &Run| {
            if let Event::Progress { host, done, total } = e {
                progress.push((host.clone(), *done, *total));
            }
        };
        let run = tokio::time::timeout(
            Duration::from_secs(30),
            runner::run(
                &prepared,
                &RunOptions {
                    evidence_dir: None,
                    seed: Some(7),
                    fleet: Some(runner::Fleet {
                        inventory: inventory.clone(),
                        hosts: inv.hosts.clone(),
                        concurrency: 4,
                        shard: earshot_harness::inventory::Shard::ALL,
                    }),
                    ..RunOptions::default()
                },
                &mut sink,
            ),
        )
        .await
        .expect("a fleet run ends within its bounds");
        for s in stops {
            s.cancel();
        }
        let by_host: HashMap<String, &earshot_harness::report::ScenarioRecord> = run
            .scenarios
            .iter()
            .map(|s| (s.host.clone().expect("every record names its host"), s))
            .collect();
        assert_eq!(by_host.len(), 7, "{:?}", by_host.keys());
        let verdicts =
            |h: &str| -> Vec<Verdict> { by_host[h].checks.iter().map(|c| c.verdict).collect() };
        assert_eq!(verdicts("avd-0"), [Pass, Pass]);
        assert_eq!(verdicts("avd-1"), [Fail, Fail]);
        assert_eq!(verdicts("avd-2.contoso.com"), [Pass, Pass]);
        assert_eq!(verdicts("avd-5"), [Pass, Pass]);
        assert_eq!(verdicts("avd-6"), [Pass, Pass]);
        let never = by_host["avd-3"];
        assert_eq!(never.verdict(), Inconclusive);
        let e = never.error.as_deref().unwrap();
        assert!(e.contains("avd-3 never dialed in"), "{e}");
        let other = by_host["avd-4"];
        assert_eq!(other.verdict(), Inconclusive);
        let e = other.error.as_deref().unwrap();
        assert!(
            e.contains("runs on host `intruder`") && e.contains("avd-4"),
            "{e}"
        );
        assert!(other.checks.is_empty());
        // A progress event after each host, counting up to the whole.
        assert_eq!(progress.len(), 7);
        assert_eq!(
            progress.iter().map(|p| p.1).collect::<Vec<_>>(),
            (1..=7).collect::<Vec<_>>()
        );
        assert!(progress.iter().all(|p| p.2 == 7));
        assert_eq!(run.exit_code(), 1);
        // The summary names every host, and counts per check.
        let table = earshot_harness::report::summary_table(&run);
        for h in ["avd-0", "avd-1", "avd-3", "avd-4", "avd-6"] {
            assert!(table.contains(h), "{table}");
        }
        assert!(table.contains("7 hosts, per check"), "{table}");
    }

    /// A TCP relay in front of `upstream` that delays every byte by `to_probe` on its way to
    /// the probe and by `from_probe` on its way back, keeping their order: a slow, congested
    /// control link (a VPN, a satellite hop) that leaves the audio path alone.
    async fn slow_link(upstream: String, to_probe: Duration, from_probe: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                tokio::spawn(delayed(dr, uw, to_probe));
                tokio::spawn(delayed(ur, dw, from_probe));
            }
        });
        addr
    }

    async fn delayed(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        delay: Duration,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        let writer = tokio::spawn(async move {
            while let Some((at, bytes)) = rx.recv().await {
                tokio::time::sleep_until(at + delay).await;
                if to.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = to.shutdown().await;
        });
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            if tx
                .send((tokio::time::Instant::now(), buf[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
        drop(tx);
        let _ = writer.await;
    }

    /// Timeouts for a slow control link: connecting takes a few round trips.
    const SLOW: &str = "connect = \"30s\"\nlisten = \"800ms\"";

    fn over_slow_link(mut rig: Rig, to_probe_ms: u64, from_probe_ms: u64) -> Rig {
        rig.timeouts = SLOW;
        rig.remote_link = Some((
            Duration::from_millis(to_probe_ms),
            Duration::from_millis(from_probe_ms),
        ));
        rig
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_blocked_policy_on_an_open_path_never_passes_over_a_slow_control_link() {
        // Both directions are redirected and the policy blocks both: the honest verdicts are
        // fail. A slow link to the session's probe once ended the silence window before the
        // plays had even started, and both checks passed.
        let cases: Vec<(u64, u64)> = vec![
            (500, 500),
            (1000, 1000),
            (2000, 0),
            (0, 2000),
            (2000, 2000),
            (5000, 0),
            (0, 5000),
        ];
        let runs = cases.iter().map(|&(to, from)| async move {
            let o = over_slow_link(Rig::redirected(), to, from)
                .run("avd", BLOCK_BOTH)
                .await;
            ((to, from), o)
        });
        for ((to, from), o) in futures::future::join_all(runs).await {
            for (i, v) in o.verdicts().iter().enumerate() {
                assert_ne!(*v, Pass, "delay {to}/{from} ms, check {i}: {}", o.cause(i));
            }
            assert_ne!(o.run.exit_code(), 0, "delay {to}/{from} ms");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn over_a_2_s_control_link_a_redirected_path_passes_and_a_blocked_one_passes_with_its_proof(
    ) {
        let redirected = over_slow_link(Rig::redirected(), 2000, 2000).run("avd", REDIRECT_BOTH);
        let blocked = over_slow_link(Rig::blocked(), 2000, 2000).run("avd", BLOCK_BOTH);
        let (redirected, blocked) = tokio::join!(redirected, blocked);
        assert_eq!(
            redirected.verdicts(),
            [Pass, Pass],
            "{} / {}",
            redirected.cause(0),
            redirected.cause(1)
        );
        assert_eq!(
            blocked.verdicts(),
            [Pass, Pass],
            "{} / {}",
            blocked.cause(0),
            blocked.cause(1)
        );
        // The proof is in the report: a play confirmed whole inside the listen, and the
        // session probe's round trip (4 s) measured on its plays' requests... for output,
        // where the session plays.
        let output = &blocked.run.scenarios[0].checks[0];
        let proof = output
            .silence_proof
            .as_ref()
            .expect("a silence carries its proof");
        let i = proof.proven_by.expect("proven");
        let play = &proof.plays[i];
        assert!(
            play.inside && play.heard_by_ms <= proof.listened_until_ms,
            "{proof:?}"
        );
        assert!(
            (3900.0..6000.0).contains(&proof.control_rtt_ms),
            "round trip {} ms",
            proof.control_rtt_ms
        );
        let json = serde_json::to_value(output).unwrap();
        assert!(json["silence_proof"]["plays"].is_array(), "{json}");
    }

    #[tokio::test]
    async fn a_silence_the_plays_could_not_reach_is_inconclusive_with_the_round_trip() {
        // The session's plays are confirmed too late: the listen is bounded (latency 200 ms,
        // listen 300 ms) while every play's answer takes 1.5 s to come back, and the bound
        // counts the round trip measured when connecting, which this link hides (it delays
        // only the replies after the handshake and the `info` answer).
        let rig = Rig::blocked();
        let world = Arc::new(rig.world);
        let (local, remote, _serving) = serve_pair(world, |p| p).await;
        let (via, _) = relay(remote, 3, Meddle::Delay(Duration::from_millis(1500))).await;
        let dir = tempfile::tempdir().unwrap();
        let file = write_scenario_timed(
            dir.path(),
            "avd",
            "[policy.session_host]\nfDisableCam = 1",
            &format!("address = \"{local}\""),
            &format!("address = \"{via}\""),
            "connect = \"5s\"\nlisten = \"300ms\"\nlatency = \"200ms\"",
        );
        let o = run_files(&[file], None).await;
        let output = &o.run.scenarios[0].checks[0];
        assert_eq!(output.verdict, Inconclusive, "{}", output.cause);
        assert!(
            output
                .cause
                .contains("could not prove a play inside the listen (control round trip"),
            "{}",
            output.cause
        );
        let proof = output.silence_proof.as_ref().unwrap();
        assert_eq!(proof.proven_by, None, "{proof:?}");
    }

    #[tokio::test]
    async fn two_addresses_that_reach_one_probe_are_inconclusive_never_a_verdict() {
        // An admin's typo: the remote address reaches the client's own probe (here through a
        // relay, so the two addresses differ as they would on a real network).
        let rig = Rig::redirected();
        let world = Arc::new(rig.world);
        let (local, stop) = serve(FakeProbe::new("local", world, client_devices())).await;
        let (via, _) = relay(local.clone(), usize::MAX, Meddle::Nothing).await;
        let dir = tempfile::tempdir().unwrap();
        let file = write_scenario(
            dir.path(),
            "avd",
            BLOCK_BOTH,
            &format!("address = \"{local}\""),
            &format!("address = \"{via}\""),
        );
        let o = run_files(&[file], None).await;
        stop.cancel();
        let s = &o.run.scenarios[0];
        assert!(s.checks.is_empty(), "{:?}", s.checks);
        let why = s.error.as_deref().unwrap_or_default();
        assert!(why.contains("both addresses reach one probe"), "{why}");
        assert_eq!(o.run.exit_code(), 2);
    }

    #[tokio::test]
    async fn a_remote_probe_on_another_host_than_the_scenario_names_is_inconclusive() {
        let rig = Rig::redirected();
        let world = Arc::new(rig.world);
        let (local, remote, _serving) = serve_pair(world, |p| p).await;
        let dir = tempfile::tempdir().unwrap();
        let file = write_scenario(
            dir.path(),
            "avd",
            BLOCK_BOTH,
            &format!("address = \"{local}\""),
            &format!("address = \"{remote}\"\nhost = \"avd-host-7\""),
        );
        let o = run_files(&[file], None).await;
        let why = o.run.scenarios[0].error.as_deref().unwrap_or_default();
        assert!(
            why.contains("runs on `remote`")
                && why.contains("probes.remote.host says `avd-host-7`"),
            "{why}"
        );
        assert_eq!(o.run.exit_code(), 2);
    }

    #[tokio::test]
    async fn escape_codes_from_a_probe_never_reach_the_report() {
        // A fake probe names itself with escape sequences that would rewrite a terminal line
        // into a forged verdict.
        let rig = Rig::redirected();
        let world = Arc::new(rig.world);
        let forged = "host\u{1b}[2K\r\u{1b}[32m  output   PASS\u{1b}[0m";
        let (local, remote, _serving) = serve_pair(world, |p| p.on(forged)).await;
        let dir = tempfile::tempdir().unwrap();
        let file = write_scenario(
            dir.path(),
            "avd",
            REDIRECT_BOTH,
            &format!("address = \"{local}\""),
            &format!("address = \"{remote}\""),
        );
        let o = run_files(&[file], None).await;
        // JSON writes an escape character as \u001b, Debug as \u{1b}.
        let json = serde_json::to_string(&o.run).unwrap();
        assert!(json.contains("output   PASS"), "the name is shown: {json}");
        assert!(!json.contains("\\u001b"), "{json}");
        for e in &o.events {
            assert!(!e.contains("\\u{1b}"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_remote_probe_that_shows_no_remote_session_is_inconclusive_unless_any_will_do() {
        for (kind, words) in [
            (SessionKind::Local, "the console"),
            (SessionKind::Unknown, "kind unknown"),
        ] {
            let world = Arc::new(Rig::redirected().world);
            let (local, remote, _serving) = serve_pair(world, |p| p.showing(kind)).await;
            let dir = tempfile::tempdir().unwrap();
            let run = |extra: &str| {
                write_scenario(
                    dir.path(),
                    "avd",
                    REDIRECT_BOTH,
                    &format!("address = \"{local}\""),
                    &format!("address = \"{remote}\"\n{extra}"),
                )
            };
            let o = run_files(&[run("")], None).await;
            let s = &o.run.scenarios[0];
            let why = s.error.as_deref().unwrap_or_default();
            assert!(s.checks.is_empty(), "{:?}", s.checks);
            assert!(
                why.contains("shows no remote desktop session") && why.contains(words),
                "{why}"
            );
            assert_eq!(o.run.exit_code(), 2);
            // A lab without RDP says any session will do: the checks run, and the report says
            // what they are about.
            let o = run_files(&[run("session = \"any\"")], None).await;
            assert_eq!(o.verdicts(), [Pass, Pass], "{}", o.cause(0));
            let warned = o.run.scenarios[0]
                .warnings
                .iter()
                .any(|w| w.contains("not an RDP session"));
            assert!(warned, "{:?}", o.run.scenarios[0].warnings);
        }
    }

    #[tokio::test]
    async fn a_probe_with_another_token_is_named_as_such_once_never_as_a_firewall() {
        let world = Arc::new(Rig::redirected().world);
        let (local, remote, _serving) = serve_pair(world, |p| p).await;
        let dir = tempfile::tempdir().unwrap();
        // The scenario's remote token is not the probes'.
        let file = write_scenario(
            dir.path(),
            "avd",
            BLOCK_BOTH,
            &format!("address = \"{local}\""),
            &format!("address = \"{remote}\"\ntoken_env = \"EARSHOT_TEST_OTHER_TOKEN\""),
        );
        let text = std::fs::read_to_string(&file).unwrap().replace(
            "token_env = \"EARSHOT_TEST_OTHER_TOKEN\"\ntoken_file = \"token\"\n",
            "",
        );
        let other = dir.path().join("other");
        std::fs::write(&other, "another-token-0123456789abcdef\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let text = text.replace(
            &format!("address = \"{remote}\"\n"),
            &format!("address = \"{remote}\"\ntoken_file = \"other\"\n"),
        );
        std::fs::write(&file, text).unwrap();
        let o = run_files(&[file], None).await;
        let e = o.run.scenarios[0].error.as_deref().unwrap_or_default();
        assert!(
            e.contains("remote probe") && e.contains("another token"),
            "{e}"
        );
        assert_eq!(e.matches("authentication failed").count(), 1, "{e}");
        assert!(!e.contains("firewall"), "{e}");
        assert_eq!(o.run.exit_code(), 2);
    }

    #[tokio::test]
    async fn a_token_bound_to_the_client_role_is_refused_for_the_session_probe() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_scenario(
            dir.path(),
            "avd",
            BLOCK_BOTH,
            "address = \"127.0.0.1:9\"",
            "address = \"127.0.0.1:9\"",
        );
        // Both probes' token file holds a token made with `token new --role client`.
        std::fs::write(
            dir.path().join("token"),
            "earshot-client-0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        // A configuration error, found with the rest before any probe is touched.
        let Err(errors) = runner::prepare(&[file]) else {
            panic!("a token bound to the other role is refused before the run");
        };
        let e = errors[0].to_string();
        assert!(
            e.contains("s.toml: probes.remote")
                && e.contains("bound to the client role")
                && e.contains("give it a `session` token"),
            "{e}"
        );
    }
}
