//! The verdict table, row by row, and the rules that hold across it.
//!
//! Size: over 800 lines because the table has that many rows; the helpers at the top
//! build every observation and expectation the rows share.

use super::*;
use crate::policy::Layer;
use crate::scenario::Check;

fn d<T>(value: T, by: &str) -> Decision<T> {
    layered(value, by, Layer::ProductDefault)
}

fn layered<T>(value: T, by: &str, layer: Layer) -> Decision<T> {
    Decision {
        value,
        decided_by: by.into(),
        layer,
        trail: vec![],
    }
}

fn detected(dropouts: usize) -> Observation {
    Observation::Detected {
        side: Side::Client,
        level_dbfs: Some(-12.0),
        latency_ms: Some(104.0),
        snr_db: Some(50.0),
        dropouts,
        symbols: 16,
        plays: 1,
        speed: None,
        latencies_ms: vec![],
    }
}

fn degraded() -> Observation {
    Observation::not_detected(Side::Client, -20.0, 11, 0.46, 5000.0)
}

fn unrecognised() -> Observation {
    Observation::not_detected(Side::Client, -20.0, 2, 0.2, 5000.0)
}

fn silent() -> Observation {
    Observation::not_detected(Side::Client, -120.0, 0, 0.0, 5000.0)
}

fn no_device(side: Side) -> Observation {
    Observation::NoDevice {
        side,
        endpoint: "default".into(),
        detail: "the host has no output device".into(),
    }
}

fn error(side: Side) -> Observation {
    Observation::Error {
        side,
        detail: "remote probe: connection refused".into(),
    }
}

/// Every observation the runner can make, by name.
fn all_observations() -> Vec<(&'static str, Observation)> {
    vec![
        ("detected", detected(0)),
        ("detected+dropouts", detected(2)),
        ("degraded", degraded()),
        ("unrecognised", unrecognised()),
        ("silent", silent()),
        ("no_device/session", no_device(Side::Session)),
        ("no_device/client", no_device(Side::Client)),
        ("error/session", error(Side::Session)),
        ("error/client", error(Side::Client)),
    ]
}

/// Judges as the runner does: `check` on its default path under these two decisions.
fn judge(
    check: crate::scenario::Check,
    output: &Decision<OutputExpect>,
    capture: &Decision<CaptureExpect>,
    observed: &Observation,
    rig: &RigProof,
    endpoint: &SessionEndpoint,
) -> Judgement {
    let e = crate::policy::Expectation {
        output: output.clone(),
        capture: capture.clone(),
        quality: d(Quality::Dynamic, "the quality default"),
        warnings: vec![],
        info: vec![],
        notes: vec![],
    };
    super::judge(
        &crate::check::Planned::new(check, check.default_path(), &e),
        observed,
        rig,
        endpoint,
    )
}

fn judge_output(exp: OutputExpect, obs: &Observation, rig: &RigProof) -> Judgement {
    judge(
        Check::Output,
        &d(exp, "policy X"),
        &d(CaptureExpect::Blocked, "y"),
        obs,
        rig,
        &SessionEndpoint::Unknown,
    )
}

fn judge_capture(exp: CaptureExpect, obs: &Observation, rig: &RigProof) -> Judgement {
    judge(
        Check::Capture,
        &d(OutputExpect::Client, "y"),
        &d(exp, "policy X"),
        obs,
        rig,
        &SessionEndpoint::Unknown,
    )
}

#[test]
fn the_observations_classify_by_trace_and_level() {
    assert_eq!(degraded().kind(), "degraded");
    assert_eq!(unrecognised().kind(), "unrecognised");
    assert_eq!(silent().kind(), "silent");
    let kinds: Vec<&str> = all_observations().iter().map(|(_, o)| o.kind()).collect();
    for k in kinds {
        assert!(OBSERVATION_KINDS.contains(&k), "{k}");
    }
}

#[test]
fn output_table_with_a_proven_rig() {
    use OutputExpect::*;
    use Verdict::*;
    let rows: [(OutputExpect, &[Verdict; 9]); 3] = [
        // detected, +dropouts, degraded, unrecognised, silent, nodev/s, nodev/c, err/s, err/c
        (
            Client,
            &[
                Pass,
                Pass,
                Pass,
                Inconclusive,
                Fail,
                Fail,
                Inconclusive,
                Inconclusive,
                Inconclusive,
            ],
        ),
        (
            Session,
            &[
                Fail,
                Fail,
                Fail,
                Inconclusive,
                Pass,
                Pass,
                Inconclusive,
                Inconclusive,
                Inconclusive,
            ],
        ),
        (
            None,
            &[
                Fail,
                Fail,
                Fail,
                Inconclusive,
                Pass,
                Pass,
                Inconclusive,
                Inconclusive,
                Inconclusive,
            ],
        ),
    ];
    for (exp, want) in rows {
        for ((name, obs), want) in all_observations().iter().zip(want) {
            let j = judge_output(exp, obs, &RigProof::Heard);
            assert_eq!(j.verdict, *want, "{exp:?} / {name}: {}", j.cause);
            assert!(j.cause.contains("policy X"), "{}", j.cause);
        }
    }
}

#[test]
fn capture_table_with_a_proven_rig() {
    use CaptureExpect::*;
    use Verdict::*;
    let rows: [(CaptureExpect, &[Verdict; 9]); 3] = [
        // detected, +dropouts, degraded, unrecognised, silent, nodev/s, nodev/c, err/s, err/c
        (
            Redirected,
            &[
                Pass,
                Pass,
                Pass,
                Inconclusive,
                Fail,
                Fail,
                Inconclusive,
                Inconclusive,
                Inconclusive,
            ],
        ),
        (
            Blocked,
            &[
                Fail,
                Fail,
                Fail,
                Inconclusive,
                Pass,
                Pass,
                Inconclusive,
                Inconclusive,
                Inconclusive,
            ],
        ),
        (
            RedirectedAppsDenied,
            &[
                Fail,
                Fail,
                Fail,
                Inconclusive,
                Pass,
                Fail,
                Inconclusive,
                Inconclusive,
                Inconclusive,
            ],
        ),
    ];
    for (exp, want) in rows {
        for ((name, obs), want) in all_observations().iter().zip(want) {
            let j = judge_capture(exp, obs, &RigProof::Heard);
            assert_eq!(j.verdict, *want, "{exp:?} / {name}: {}", j.cause);
        }
    }
}

#[test]
fn no_client_rig_fault_is_ever_a_pass_or_a_fail() {
    for rig in [
        RigProof::Heard,
        RigProof::NotTried,
        RigProof::Failed("x".into()),
    ] {
        for obs in [
            no_device(Side::Client),
            error(Side::Client),
            error(Side::Session),
        ] {
            for exp in [
                OutputExpect::Client,
                OutputExpect::Session,
                OutputExpect::None,
            ] {
                let j = judge_output(exp, &obs, &rig);
                assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.cause);
            }
            for exp in [
                CaptureExpect::Redirected,
                CaptureExpect::Blocked,
                CaptureExpect::RedirectedAppsDenied,
            ] {
                let j = judge_capture(exp, &obs, &rig);
                assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.cause);
            }
        }
    }
}

#[test]
fn an_absence_decides_nothing_unless_the_rig_heard_itself() {
    let failed = RigProof::Failed("the rig cannot hear itself on `loopback:speakers`".into());
    for obs in [silent(), unrecognised()] {
        for rig in [&failed, &RigProof::NotTried] {
            for exp in [
                OutputExpect::Client,
                OutputExpect::Session,
                OutputExpect::None,
            ] {
                let j = judge_output(exp, &obs, rig);
                assert_eq!(j.verdict, Verdict::Inconclusive, "{exp:?}: {}", j.cause);
            }
            for exp in [CaptureExpect::Redirected, CaptureExpect::Blocked] {
                let j = judge_capture(exp, &obs, rig);
                assert_eq!(j.verdict, Verdict::Inconclusive, "{exp:?}: {}", j.cause);
            }
        }
    }
    let j = judge_output(OutputExpect::None, &silent(), &failed);
    assert!(j.cause.contains("loopback:speakers"), "{}", j.cause);
}

#[test]
fn what_was_heard_needs_no_rig_proof() {
    for rig in [RigProof::NotTried, RigProof::Failed("x".into())] {
        assert_eq!(
            judge_output(OutputExpect::Client, &detected(0), &rig).verdict,
            Verdict::Pass
        );
        assert_eq!(
            judge_output(OutputExpect::None, &detected(0), &rig).verdict,
            Verdict::Fail
        );
        assert_eq!(
            judge_capture(CaptureExpect::Blocked, &no_device(Side::Session), &rig).verdict,
            Verdict::Pass
        );
    }
}

#[test]
fn a_starved_path_is_degraded_not_blocked() {
    let j = judge_output(OutputExpect::Client, &degraded(), &RigProof::NotTried);
    assert_eq!(j.verdict, Verdict::Pass, "{}", j.cause);
    assert!(
        j.cause.contains("degraded") && j.cause.contains("11/16"),
        "{}",
        j.cause
    );
}

#[test]
fn a_client_rig_without_a_device_names_the_endpoint() {
    let j = judge_output(
        OutputExpect::None,
        &Observation::NoDevice {
            side: Side::Client,
            endpoint: "loopback:speakers".into(),
            detail: "no output device matches `speakers`".into(),
        },
        &RigProof::NotTried,
    );
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert!(
        j.cause
            .contains("client rig has no usable `loopback:speakers`"),
        "{}",
        j.cause
    );
}

#[test]
fn a_rollout_not_in_effect_says_so_with_figures() {
    let j = judge(
        Check::Output,
        &layered(
            OutputExpect::None,
            "session host policy fDisableCam=1",
            Layer::SessionHostPolicy,
        ),
        &d(CaptureExpect::Blocked, "x"),
        &detected(0),
        &RigProof::NotTried,
        &SessionEndpoint::Unknown,
    );
    assert_eq!(j.verdict, Verdict::Fail);
    assert!(
        j.cause.starts_with(
            "expected not played on the client (session host policy fDisableCam=1); observed \
             detected at -12 dBFS after 104 ms, SNR 50 dB, 16/16 symbols: the policy is not in \
             effect: session host policy fDisableCam=1 has not taken effect on the session \
             host: confirm it arrived (`gpresult /r`"
        ),
        "{}",
        j.cause
    );
    assert!(j.cause.ends_with(RESTART_HINT), "{}", j.cause);
}

#[test]
fn the_hint_comes_from_the_layer_that_decided_never_a_restart_for_a_client_setting() {
    // A client whose .rdp file says "do not play" (audiomode:i:2) but plays: the file and a
    // new connection, not a session host restart.
    let rdp = judge(
        Check::Output,
        &layered(
            OutputExpect::None,
            ".rdp file property audiomode:i:2",
            Layer::RdpFile,
        ),
        &d(CaptureExpect::Blocked, "x"),
        &detected(0),
        &RigProof::NotTried,
        &SessionEndpoint::Unknown,
    );
    assert_eq!(rdp.verdict, Verdict::Fail);
    assert!(
        rdp.cause
            .contains("the client reads its .rdp file when it connects"),
        "{}",
        rdp.cause
    );
    assert!(!rdp.cause.contains("restarted"), "{}", rdp.cause);
    // Each blocking layer, on a capture that was heard anyway.
    for (layer, words) in [
        (
            Layer::HostPoolProperties,
            "refresh the workspace in the client",
        ),
        (Layer::ClientDevice, "app configuration policy assigned"),
        (Layer::XrdpIni, "systemctl restart xrdp"),
        (Layer::SessionHostPolicy, RESTART_HINT),
    ] {
        let j = judge(
            Check::Capture,
            &d(OutputExpect::Client, "y"),
            &layered(CaptureExpect::Blocked, "the blocker", layer),
            &detected(0),
            &RigProof::NotTried,
            &SessionEndpoint::Unknown,
        );
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(j.cause.contains(words), "{layer:?}: {}", j.cause);
        assert_eq!(
            j.cause.contains(RESTART_HINT),
            layer == Layer::SessionHostPolicy
        );
    }
}

#[test]
fn a_silent_capture_says_whether_the_session_ever_had_a_redirected_microphone() {
    use earshot_probe::proto::msg::SessionServer;
    let judge_with = |endpoint: SessionEndpoint| {
        judge(
            Check::Capture,
            &d(OutputExpect::Client, "y"),
            &layered(
                CaptureExpect::Redirected,
                ".rdp file property audiocapturemode:i:1",
                Layer::RdpFile,
            ),
            &silent(),
            &RigProof::Heard,
            &endpoint,
        )
    };
    let never = judge_with(SessionEndpoint::Never {
        server: SessionServer::GnomeRemoteDesktop,
        looked_for: "remote desktop",
    });
    assert_eq!(never.verdict, Verdict::Fail);
    assert!(
        never.cause.contains(
            "the session has no redirected microphone (no `remote desktop` input at any \
             time): the server (GNOME Remote Desktop) may not support microphone \
             redirection, or its channel is off"
        ),
        "{}",
        never.cause
    );
    assert!(!never.cause.contains("muted"), "{}", never.cause);
    let there = judge_with(SessionEndpoint::Present {
        name: "Microphone (Remote Audio)".into(),
        always_there: false,
    });
    assert!(there.cause.contains("stayed silent"), "{}", there.cause);
    assert!(there.cause.contains("muted"), "{}", there.cause);
    // Where the server's naming is unknown, the old question stands.
    let unknown = judge_with(SessionEndpoint::Unknown);
    assert!(
        unknown.cause.contains("or is it muted?"),
        "{}",
        unknown.cause
    );
}

fn quality(class: &str, edge: f64, sinad: f64, speed: Option<f64>) -> Observation {
    Observation::Quality {
        side: Side::Client,
        found: true,
        class: class.into(),
        rate_class: Some("44.1 kHz or more (fullband)".into()),
        band_edge_hz: Some(edge),
        first_missing_hz: None,
        holes_hz: vec![],
        sinad_db: Some(sinad),
        noise_floor_dbfs: None,
        gain_db: Some(0.0),
        step_db: Some(-20.0),
        codec_signs: vec![],
        speed,
    }
}

#[test]
fn quality_meets_or_misses_the_least_class_of_the_expected_quality() {
    let out = d(OutputExpect::Client, "defaults");
    for (q, class, want) in [
        (Quality::High, "high", Verdict::Pass),
        (Quality::High, "medium", Verdict::Fail),
        (Quality::Medium, "high", Verdict::Pass),
        (Quality::Medium, "medium", Verdict::Pass),
        (Quality::Medium, "low", Verdict::Fail),
        (Quality::Dynamic, "low", Verdict::Pass),
        (Quality::Dynamic, "poor", Verdict::Fail),
    ] {
        let j = judge_quality(&out, &d(q, "policy"), &quality(class, 18979.0, 70.0, None));
        assert_eq!(j.verdict, want, "{q:?} {class}: {}", j.cause);
    }
    // Not found, blocked output, an error: inconclusive, never a pass.
    let mut not_found = quality("poor", 0.0, 0.0, None);
    if let Observation::Quality { found, .. } = &mut not_found {
        *found = false;
    }
    let q = d(Quality::Dynamic, "defaults");
    for (o, obs) in [
        (OutputExpect::Client, not_found),
        (OutputExpect::None, quality("high", 18979.0, 80.0, None)),
        (OutputExpect::Client, error(Side::Session)),
    ] {
        let j = judge_quality(&d(o, "policy"), &q, &obs);
        assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.cause);
    }
}

#[test]
fn audio_at_the_wrong_speed_fails_quality_and_says_why() {
    let j = judge_quality(
        &d(OutputExpect::Client, "defaults"),
        &d(Quality::Dynamic, "defaults"),
        &quality("poor", 18979.0, 75.0, Some(0.5)),
    );
    assert_eq!(j.verdict, Verdict::Fail, "{}", j.cause);
    assert!(j.cause.contains("arrived at 0.5× speed"), "{}", j.cause);
    assert!(
        j.cause.contains("slowed down, lower in pitch"),
        "{}",
        j.cause
    );
    assert!(!j.cause.contains("nothing above"), "{}", j.cause);
}

#[test]
fn unrelated_sound_passes_only_with_the_same_level_without_plays_the_rig_and_a_proven_play() {
    let e = crate::policy::Expectation {
        output: d(OutputExpect::None, "session host policy fDisableCam=1"),
        capture: d(CaptureExpect::Blocked, "x"),
        quality: d(Quality::Dynamic, "q"),
        warnings: vec![],
        info: vec![],
        notes: vec![],
    };
    let p = crate::check::Planned::new(Check::Output, crate::check::AudioPath::Output, &e);
    let heard = Observation::not_detected(Side::Client, -30.0, 2, 0.2, 5000.0);
    let v = |quiet: Result<f64, String>, rig: RigProof, proven: bool| {
        judge_unrelated(&p, &heard, quiet, &rig, proven).verdict
    };
    assert_eq!(v(Ok(-31.0), RigProof::Heard, true), Verdict::Pass);
    // Louder with the plays than without: it came with them.
    assert_eq!(v(Ok(-40.0), RigProof::Heard, true), Verdict::Inconclusive);
    // Silent without the plays: it came with them.
    assert_eq!(v(Ok(-120.0), RigProof::Heard, true), Verdict::Inconclusive);
    assert_eq!(
        v(Ok(-31.0), RigProof::Failed("no loopback".into()), true),
        Verdict::Inconclusive
    );
    assert_eq!(
        v(Ok(-31.0), RigProof::NotTried, true),
        Verdict::Inconclusive
    );
    assert_eq!(v(Ok(-31.0), RigProof::Heard, false), Verdict::Inconclusive);
    assert_eq!(
        v(Err("gone".into()), RigProof::Heard, true),
        Verdict::Inconclusive
    );
}

/// `observed` judged as an output or capture check that expects sound, then held to
/// `budgets`.
fn budgeted(check: Check, observed: &Observation, budgets: &crate::scenario::Budgets) -> Judgement {
    let e = crate::policy::Expectation {
        output: d(OutputExpect::Client, "policy X"),
        capture: d(CaptureExpect::Redirected, "policy Y"),
        quality: d(Quality::Dynamic, "the quality default"),
        warnings: vec![],
        info: vec![],
        notes: vec![],
    };
    let p = crate::check::Planned::new(check, check.default_path(), &e);
    let j = super::judge(&p, observed, &RigProof::NotTried, &SessionEndpoint::Unknown);
    hold_to_budgets(j, &p, observed, budgets)
}

fn heard(latency_ms: Option<f64>, level_dbfs: Option<f64>) -> Observation {
    heard_at(latency_ms, level_dbfs, Some(1.0))
}

fn heard_at(latency_ms: Option<f64>, level_dbfs: Option<f64>, speed: Option<f64>) -> Observation {
    Observation::Detected {
        side: Side::Client,
        level_dbfs,
        latency_ms,
        snr_db: Some(50.0),
        dropouts: 0,
        symbols: 16,
        plays: 1,
        speed,
        latencies_ms: vec![],
    }
}

#[test]
fn a_redirected_path_outside_its_budgets_fails_late_or_quiet_and_inside_passes() {
    use std::time::Duration;
    let budgets = crate::scenario::Budgets {
        output_latency: Some(Duration::from_millis(400)),
        capture_latency: Some(Duration::from_millis(150)),
        min_level_db: Some(-20.0),
        max_speed_error_pct: Some(0.5),
        min_mos: None,
    };
    // Within: a pass, its cause untouched.
    let j = budgeted(Check::Output, &heard(Some(250.0), Some(-9.0)), &budgets);
    assert_eq!(j.verdict, Verdict::Pass, "{}", j.cause);
    assert!(!j.cause.contains("budget"), "{}", j.cause);
    // Late on output (400 ms budget), and on capture by its own budget.
    let j = budgeted(Check::Output, &heard(Some(550.0), Some(-9.0)), &budgets);
    assert_eq!(j.verdict, Verdict::Fail);
    assert!(
        j.cause.contains(
            "redirected but late: heard 550 ms after the play, over the 400 ms of \
             budgets.output_latency"
        ),
        "{}",
        j.cause
    );
    let j = budgeted(Check::Capture, &heard(Some(250.0), Some(-9.0)), &budgets);
    assert_eq!(j.verdict, Verdict::Fail);
    assert!(j.cause.contains("budgets.capture_latency"), "{}", j.cause);
    // Quiet: 43 dB below the -9 dBFS played.
    let j = budgeted(Check::Output, &heard(Some(250.0), Some(-52.0)), &budgets);
    assert_eq!(j.verdict, Verdict::Fail);
    assert!(
        j.cause
            .contains("redirected but quiet: heard 43 dB below what was played")
            && j.cause
                .contains("is the session's or the client's volume turned down"),
        "{}",
        j.cause
    );
    // Both at once: both said.
    let j = budgeted(Check::Output, &heard(Some(900.0), Some(-60.0)), &budgets);
    assert!(
        j.cause.contains("late") && j.cause.contains("quiet"),
        "{}",
        j.cause
    );
    // Nothing measured: still a pass, saying which budget it was not held to.
    let j = budgeted(Check::Output, &heard(None, None), &budgets);
    assert_eq!(j.verdict, Verdict::Pass);
    assert!(
        j.cause
            .contains("not held to budgets.output_latency (no latency was measured)"),
        "{}",
        j.cause
    );
    // Speed: 2 % fast is outside a 0.5 % budget, and said in the observation anyway;
    // 0.3 % is within it and not said.
    let fast = heard_at(Some(250.0), Some(-9.0), Some(1.02));
    assert!(
        fast.describe().contains(", at 1.0200× speed"),
        "{}",
        fast.describe()
    );
    let j = budgeted(Check::Output, &fast, &budgets);
    assert_eq!(j.verdict, Verdict::Fail);
    assert!(
        j.cause.contains(
            "redirected at the wrong speed: it arrived at 1.0200× the speed played (2.00 % fast)"
        ),
        "{}",
        j.cause
    );
    let near = heard_at(Some(250.0), Some(-9.0), Some(0.997));
    assert!(!near.describe().contains("speed"), "{}", near.describe());
    assert_eq!(
        budgeted(Check::Output, &near, &budgets).verdict,
        Verdict::Pass
    );
    // Without budgets, and for anything but a pass, nothing changes.
    let none = crate::scenario::Budgets::default();
    let j = budgeted(Check::Output, &heard(Some(5000.0), Some(-80.0)), &none);
    assert_eq!(j.verdict, Verdict::Pass);
    let blocked = judge_output(
        OutputExpect::None,
        &heard(Some(900.0), Some(-60.0)),
        &RigProof::NotTried,
    );
    let p_e = crate::policy::Expectation {
        output: d(OutputExpect::None, "policy X"),
        capture: d(CaptureExpect::Blocked, "y"),
        quality: d(Quality::Dynamic, "q"),
        warnings: vec![],
        info: vec![],
        notes: vec![],
    };
    let p = crate::check::Planned::new(Check::Output, crate::check::AudioPath::Output, &p_e);
    let held = hold_to_budgets(
        blocked.clone(),
        &p,
        &heard(Some(900.0), Some(-60.0)),
        &budgets,
    );
    assert_eq!(held, blocked);
}

#[test]
fn a_speech_score_is_held_to_min_mos_and_reported_without_it() {
    let redirected = d(crate::scenario::OutputExpect::Client, "AVD default");
    let blocked = d(crate::scenario::OutputExpect::None, "fDisableCam=1");
    let heard = |mos: Option<f64>| Observation::Speech {
        side: Side::Client,
        mos_lqo: mos,
        method: "ITU-T P.862.2 (wideband PESQ) MOS-LQO".into(),
        level_db: mos.map(|_| -0.4),
        reason: mos
            .is_none()
            .then(|| "the recording is silent (-200 dBFS RMS)".into()),
    };
    let j = judge_speech(&redirected, Some(3.5), &heard(Some(2.1)));
    assert_eq!(j.verdict, Verdict::Fail, "{}", j.cause);
    assert!(
        j.cause.contains("hard to understand") && j.cause.contains("2.10"),
        "{}",
        j.cause
    );
    assert!(j.cause.contains("budgets.min_mos"), "{}", j.cause);
    let j = judge_speech(&redirected, Some(3.5), &heard(Some(4.4)));
    assert_eq!(j.verdict, Verdict::Pass, "{}", j.cause);
    let j = judge_speech(&redirected, None, &heard(Some(2.1)));
    assert_eq!(j.verdict, Verdict::Pass, "{}", j.cause);
    assert!(j.cause.contains("2.10"), "{}", j.cause);
    // Nothing scored is never a pass, and a blocked policy leaves nothing to score.
    let j = judge_speech(&redirected, Some(3.5), &heard(None));
    assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.cause);
    let j = judge_speech(&blocked, Some(3.5), &heard(Some(4.4)));
    assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.cause);
    assert_eq!(
        heard(Some(4.4)).describe(),
        "speech scored MOS-LQO 4.40, heard -0.4 dB from the level played"
    );
}

#[test]
fn a_muted_or_silent_session_output_is_named_first_and_a_turned_down_one_beside() {
    let e = crate::policy::Expectation {
        output: d(OutputExpect::Client, "policy X"),
        capture: d(CaptureExpect::Redirected, "policy Y"),
        quality: d(Quality::Dynamic, "the quality default"),
        warnings: vec![],
        info: vec![],
        notes: vec![],
    };
    let p = crate::check::Planned::new(Check::Output, AudioPath::Output, &e);
    let failed = Judgement {
        verdict: Verdict::Fail,
        cause: "expected heard on the client; observed silent".into(),
    };
    let state = |muted, volume_pct| earshot_probe::audio::OutputState {
        name: "xrdp-sink".into(),
        muted,
        volume_pct,
    };
    let j = name_a_muted_output(failed.clone(), &p, Some(&state(true, 100.0)));
    assert!(
        j.cause
            .starts_with("the session's output `xrdp-sink` is muted")
            && j.cause.contains("observed silent"),
        "{}",
        j.cause
    );
    let j = name_a_muted_output(failed.clone(), &p, Some(&state(false, 0.0)));
    assert!(j.cause.contains("is at 0 % volume"), "{}", j.cause);
    let j = name_a_muted_output(failed.clone(), &p, Some(&state(false, 30.0)));
    assert!(
        j.cause.starts_with("expected") && j.cause.ends_with("is at 30 % volume)"),
        "{}",
        j.cause
    );
    // A pass, a full volume or no state leave the judgement alone.
    assert_eq!(name_a_muted_output(failed.clone(), &p, None), failed);
    assert_eq!(
        name_a_muted_output(failed.clone(), &p, Some(&state(false, 100.0))),
        failed
    );
    let passed = Judgement {
        verdict: Verdict::Pass,
        cause: "heard".into(),
    };
    assert_eq!(
        name_a_muted_output(passed.clone(), &p, Some(&state(true, 100.0))),
        passed
    );
}

#[test]
fn a_latency_budget_holds_the_worst_of_every_play() {
    let budgets = crate::scenario::Budgets {
        output_latency: Some(std::time::Duration::from_millis(400)),
        capture_latency: None,
        min_level_db: None,
        max_speed_error_pct: None,
        min_mos: None,
    };
    let mut o = heard(Some(260.0), Some(-9.0));
    if let Observation::Detected { latencies_ms, .. } = &mut o {
        *latencies_ms = vec![250.0, 520.0, 260.0];
    }
    assert_eq!(
        o.describe().split(',').next().unwrap(),
        "detected at -9 dBFS after 260 ms (median of 3 plays"
    );
    assert!(o.describe().contains("worst 520 ms)"), "{}", o.describe());
    let j = budgeted(Check::Output, &o, &budgets);
    assert_eq!(j.verdict, Verdict::Fail, "{}", j.cause);
    assert!(
        j.cause
            .contains("heard 520 ms after the play (the worst of 3 plays; median 260 ms)"),
        "{}",
        j.cause
    );
    if let Observation::Detected { latencies_ms, .. } = &mut o {
        *latencies_ms = vec![250.0, 300.0, 260.0];
    }
    assert_eq!(budgeted(Check::Output, &o, &budgets).verdict, Verdict::Pass);
}
