//! The stream checks (continuity, quality, speech): a long stream, a wideband probe signal
//! or the speech reference recorded on the other side and analysed there.

use super::*;
use crate::check::{AudioPath, Planned};

/// How long the recorder runs, from its first audio, before the continuity stream starts
/// (from the request, with a probe that cannot say when its device delivers: longer than a
/// tunnel source takes to deliver its first audio, about 1 s).
pub(super) const STREAM_LEAD: Duration = Duration::from_millis(1500);
/// Recording after the stream's end, beyond the path's latency allowance.
pub(super) const STREAM_TAIL: Duration = Duration::from_millis(1500);
/// Less of the stream than played, beyond this, is a stream cut short.
pub(super) const STREAM_CUT: Duration = Duration::from_millis(300);

/// The continuity check: one side plays the continuity stream on its path (output: the
/// session's output, recorded on the client's loopback; capture: the client's microphone
/// feed, recorded on the session's input), the recording probe accounts for every sample,
/// and the scenario's `[continuity]` limits judge it. Runs alone, after the other checks:
/// it holds the devices of the check of its path.
pub(super) async fn continuity_check(
    s: &Scenario,
    e: &Expectation,
    (local, remote): (&Probe, &Probe),
    rig_fault: Option<Observation>,
    seed: u64,
) -> CheckOutcome {
    let began = (unix_ms(), Instant::now());
    let (observation, reasons, evidence) =
        measure_continuity(s, e, (local, remote), rig_fault).await;
    let planned = Planned::of(s, Check::Continuity, e);
    let judgement = crate::verdict::judge_continuity(&planned, &observation, &reasons);
    let check = (Check::Continuity, seed);
    outcome(
        check,
        s,
        e,
        remote,
        began,
        (observation, judgement, evidence),
    )
}

/// A stream check's outcome with what an xrdp host has for its path added to the cause.
pub(super) fn with_host_fact(
    mut o: CheckOutcome,
    s: &Scenario,
    remote: &ProbeInfo,
    path: AudioPath,
) -> CheckOutcome {
    if let Some(fact) = host_fact(s, remote, path) {
        o.judgement.cause = format!("{} ({fact})", o.judgement.cause);
    }
    o
}

/// One stream check's play and recording: who plays what where, who records where.
pub(super) struct StreamLeg<'a> {
    /// The stream in words ("continuity stream", "quality probe signal").
    pub(super) what: &'static str,
    /// The probe feature it needs on both sides.
    pub(super) feature: &'static str,
    pub(super) player: &'a Probe,
    pub(super) play: PlayRequest,
    pub(super) recorder: &'a Probe,
    pub(super) record: RecordRequest,
    /// How long the recorder runs before the play starts, from its first audio.
    pub(super) lead: Duration,
    /// How long the play lasts.
    pub(super) length: Duration,
    /// The scenario key that sets the length, for the error that says it is too long.
    pub(super) length_key: &'static str,
}

/// Plays and records one stream. `Err` is the observation that ends the check, with the
/// recording where there is one.
pub(super) async fn play_and_record(
    leg: &StreamLeg<'_>,
) -> Result<
    (earshot_probe::audio::RecordReport, Option<EvidenceAt>),
    (Observation, Option<EvidenceAt>),
> {
    let (player, recorder) = (leg.player, leg.recorder);
    for p in [player, recorder] {
        if !p.info.features.iter().any(|f| f == leg.feature) {
            return Err((
                Observation::Error {
                    side: p.side,
                    detail: format!(
                        "the {} probe (earshot-probe {} on {}) cannot play or analyse the {}: \
                         it offers [{}], this harness needs `{}`; update it to the build of \
                         this harness (earshot {})",
                        p.role,
                        p.info.probe_version,
                        p.info.hostname,
                        leg.what,
                        p.info.features.join(", "),
                        leg.feature,
                        earshot_probe::VERSION
                    ),
                },
                None,
            ));
        }
    }
    let record = Duration::from_millis(leg.record.duration_ms);
    for (p, needs, what) in [(recorder, record, "record"), (player, leg.length, "play")] {
        if needs.as_millis() as u64 > p.info.max_capture_ms {
            return Err((
                Observation::Error {
                    side: p.side,
                    detail: format!(
                        "the {} needs the {} probe to {what} for {:.1} s; it accepts at most \
                         {:.1} s: start it with --max-capture-secs {}, or shorten {}",
                        leg.what,
                        p.role,
                        needs.as_secs_f64(),
                        p.info.max_capture_ms as f64 / 1000.0,
                        needs.as_secs() + 1,
                        leg.length_key
                    ),
                },
                None,
            ));
        }
    }
    let (play_on, record_on) = (leg.play.device.to_string(), leg.record.device.to_string());
    // The lead runs from the moment the recorder's device delivers audio (a first stream
    // on a client's audio server can take a second to open, and a signal played before
    // would be lost); a probe that cannot say so gets the lead from the request.
    let says_armed = recorder
        .info
        .features
        .iter()
        .any(|f| f == earshot_probe::proto::msg::RECORD_ARMED);
    let (armed_tx, armed_rx) = tokio::sync::oneshot::channel();
    let never = CancellationToken::new();
    let recording = recorder
        .client
        .record_with(&leg.record, Job::cancel(&never).armed(armed_tx));
    let playing = async {
        // Dropped unsent: the recording ended (failed) before its device delivered.
        if says_armed && armed_rx.await.is_err() {
            return None;
        }
        tokio::time::sleep(leg.lead).await;
        Some(player.client.play(&leg.play).await)
    };
    let (recorded, played) = tokio::join!(recording, playing);
    let recorded = match (played, recorded) {
        (Some(Err(e)), _) => return Err((failed(player, "play", &play_on, &e), None)),
        (_, Err(e)) => return Err((failed(recorder, "record", &record_on, &e), None)),
        (None, Ok(_)) => {
            return Err((
                Observation::Error {
                    side: recorder.side,
                    detail: format!(
                        "the {} probe's recording of `{record_on}` ended before its device \
                         delivered any audio, so the {} was not played",
                        recorder.role, leg.what
                    ),
                },
                None,
            ))
        }
        (Some(Ok(_)), Ok(r)) => r,
    };
    let evidence = recorded.evidence.map(|handle| EvidenceAt {
        client: recorder.client.clone(),
        handle,
    });
    // Audio the recorder itself lost (its ring overflowed, the device reported an xrun)
    // would read as damage done by the path: the recording rig's fault, not the session's.
    let health = &recorded.report.health;
    if health.dropped_samples > 0 || health.xruns > 0 {
        return Err((
            Observation::Error {
                side: recorder.side,
                detail: format!(
                    "the {} probe's recording of `{record_on}` itself lost audio ({} samples \
                     dropped, {} xruns): what it heard cannot be put on the path; run again on \
                     a less loaded machine",
                    recorder.role, health.dropped_samples, health.xruns
                ),
            },
            evidence,
        ));
    }
    Ok((recorded.report, evidence))
}

/// The error observation of a probe that recorded but did not analyse what it was asked.
/// How long the recorder of the continuity stream on `path` records before the stream
/// starts: a capture path's waits for the on-demand microphone channel.
fn stream_lead(s: &Scenario, path: AudioPath) -> Duration {
    match path {
        AudioPath::Capture => STREAM_LEAD.max(s.timeouts.channel_open + Duration::from_millis(500)),
        AudioPath::Output => STREAM_LEAD,
    }
}

/// How long the recorder of `s`'s continuity stream on `path` records: its lead, the
/// stream, the path's latency and a tail. The probe that records must allow it
/// (`--max-capture-secs`).
pub(super) fn continuity_record_length(s: &Scenario, path: AudioPath) -> Duration {
    stream_lead(s, path) + s.continuity.duration + s.timeouts.latency + STREAM_TAIL
}

pub(super) fn no_analysis(recorder: &Probe, what: &str) -> Observation {
    Observation::Error {
        side: recorder.side,
        detail: format!(
            "the {} probe recorded but returned no {what} analysis",
            recorder.role
        ),
    }
}

/// What the continuity check observed, the limits it broke and where its recording waits.
pub(super) async fn measure_continuity(
    s: &Scenario,
    e: &Expectation,
    (local, remote): (&Probe, &Probe),
    rig_fault: Option<Observation>,
) -> (Observation, Vec<String>, Option<EvidenceAt>) {
    let nothing = |o: Observation| (o, Vec::new(), None);
    let planned = Planned::of(s, Check::Continuity, e);
    let path = planned.path;
    if !planned.needs_sound() {
        return nothing(Observation::Error {
            side: Side::Session,
            detail: format!("not measured: the policy does not redirect {path}"),
        });
    }
    if let Some(fault) = rig_fault {
        return nothing(fault);
    }
    let feed = s.probes.local.mic_feed.as_deref().unwrap_or("default");
    // (player, its device, recorder, its device); a capture path's recorder waits for the
    // on-demand microphone channel before the stream starts.
    let (player, play_on, recorder, record_on, lead) = match path {
        AudioPath::Capture => (
            local,
            feed,
            remote,
            s.probes.remote.input.as_str(),
            stream_lead(s, path),
        ),
        AudioPath::Output => (
            remote,
            s.probes.remote.output.as_str(),
            local,
            s.probes.local.output_loopback.as_str(),
            stream_lead(s, path),
        ),
    };
    let stream = s.continuity.duration;
    let record = continuity_record_length(s, path);
    debug_assert_eq!(record, lead + stream + s.timeouts.latency + STREAM_TAIL);
    let leg = StreamLeg {
        what: "continuity stream",
        feature: earshot_probe::signal::continuity::FEATURE,
        player,
        play: PlayRequest {
            device: DeviceSelector::parse(play_on),
            seed: 0,
            direction: match path {
                AudioPath::Capture => Direction::Capture,
                AudioPath::Output => Direction::Output,
            },
            continuity_ms: Some(stream.as_millis() as u64),
            quality: false,
            speech: false,
        },
        recorder,
        record: RecordRequest {
            device: DeviceSelector::parse(record_on),
            duration_ms: record.as_millis() as u64,
            evidence: true,
            continuity: true,
            quality: false,
            speech: false,
        },
        lead,
        length: stream,
        length_key: "continuity.duration",
    };
    let (report, evidence) = match play_and_record(&leg).await {
        Ok(r) => r,
        Err((o, evidence)) => return (o, Vec::new(), evidence),
    };
    let Some(c) = report.continuity else {
        return (no_analysis(recorder, "continuity"), Vec::new(), evidence);
    };
    let played_ms = stream.as_secs_f64() * 1000.0;
    let mut reasons = if c.found {
        s.continuity.limits().reasons(&c)
    } else {
        Vec::new()
    };
    if c.found && c.tone_ms + STREAM_CUT.as_secs_f64() * 1000.0 < played_ms {
        reasons.push(format!(
            "only {:.1} s of the {:.1} s stream arrived: it stopped or started late",
            c.tone_ms / 1000.0,
            played_ms / 1000.0
        ));
    }
    use earshot_probe::signal::continuity::EventKind;
    let observation = Observation::Continuity {
        side: recorder.side,
        found: c.found,
        played_ms,
        heard_ms: c.tone_ms,
        gaps: c.count(EventKind::Gap),
        glitches: c.count(EventKind::Glitch),
        breaks: c
            .events
            .iter()
            .take(20)
            .map(|b| crate::verdict::Break {
                kind: match b.kind {
                    EventKind::Gap => "gap".into(),
                    EventKind::Glitch => "glitch".into(),
                },
                at_ms: b.at_ms,
                length_ms: b.length_ms,
                slip_samples: b.slip_samples,
            })
            .collect(),
        drift_ppm: c.drift_ppm,
        level_dbfs: c.level_dbfs,
        level_std_db: c.level_std_db,
        error_floor_db: c.error_floor_db,
    };
    (observation, reasons, evidence)
}

/// How long the client's recorder runs, from its first audio, before the quality signal
/// plays; the analysis needs only half of the signal's first part. The recording then lasts
/// the signal and the path's latency allowance, no more: the check's whole time is the
/// recorder's start, this lead, 1.15 s and `timeouts.latency`.
pub(super) const QUALITY_LEAD: Duration = Duration::from_millis(300);

/// The quality check: the session plays the quality probe signal on its output, the client
/// records it on its loopback and measures it, and the class is judged against the quality
/// the policy allows. Runs after the output and capture checks: it holds their devices.
pub(super) async fn quality_check(
    s: &Scenario,
    e: &Expectation,
    (local, remote): (&Probe, &Probe),
    rig_fault: Option<Observation>,
    seed: u64,
) -> CheckOutcome {
    let measure = || measure_quality(s, (local, remote));
    let judge = |o: &Observation| crate::verdict::judge_quality(&e.output, &e.quality, o);
    let check = (Check::Quality, seed);
    output_stream_check(check, s, e, remote, rig_fault, measure, judge).await
}

/// A check of the output path that plays one signal in the session and measures what the
/// client recorded of it (quality, speech): nothing to measure where the policy does not
/// redirect output, the rig's fault where the client rig cannot record, else `measure`;
/// then `judge`.
async fn output_stream_check<F>(
    (c, seed): (Check, u64),
    s: &Scenario,
    e: &Expectation,
    remote: &Probe,
    rig_fault: Option<Observation>,
    measure: impl FnOnce() -> F,
    judge: impl FnOnce(&Observation) -> crate::verdict::Judgement,
) -> CheckOutcome
where
    F: std::future::Future<Output = (Observation, Option<EvidenceAt>)>,
{
    let began = (unix_ms(), Instant::now());
    let planned = Planned::of(s, c, e);
    let (observation, evidence) = if !planned.needs_sound() {
        (
            Observation::Error {
                side: Side::Session,
                detail: "not measured: the policy does not redirect output".into(),
            },
            None,
        )
    } else if let Some(fault) = rig_fault {
        (fault, None)
    } else {
        measure().await
    };
    let judgement = judge(&observation);
    outcome(
        (c, seed),
        s,
        e,
        remote,
        began,
        (observation, judgement, evidence),
    )
}

/// A stream check's outcome, with what an xrdp host has for its path added to the cause.
fn outcome(
    (c, seed): (Check, u64),
    s: &Scenario,
    e: &Expectation,
    remote: &Probe,
    (started_unix_ms, started): (f64, Instant),
    (observation, judgement, evidence): (
        Observation,
        crate::verdict::Judgement,
        Option<EvidenceAt>,
    ),
) -> CheckOutcome {
    let planned = Planned::of(s, c, e);
    let outcome = CheckOutcome {
        check: c,
        observation,
        rig: RigProof::NotTried,
        judgement,
        silence_proof: None,
        host: None,
        evidence,
        seed,
        started_unix_ms,
        duration: started.elapsed(),
    };
    with_host_fact(outcome, s, &remote.info, planned.path)
}

/// What the quality check observed, and where its recording waits.
pub(super) async fn measure_quality(
    s: &Scenario,
    (local, remote): (&Probe, &Probe),
) -> (Observation, Option<EvidenceAt>) {
    use earshot_probe::signal::quality;
    let length = Duration::from_millis(u64::from(quality::duration_ms()));
    let leg = output_leg(
        s,
        (local, remote),
        ("quality probe signal", quality::FEATURE),
        length,
    )
    .with(|play, record| (play.quality, record.quality) = (true, true));
    let (report, evidence) = match play_and_record(&leg).await {
        Ok(r) => r,
        Err(ended) => return ended,
    };
    let Some(q) = report.quality else {
        return (no_analysis(local, "quality"), evidence);
    };
    let observation = Observation::Quality {
        side: local.side,
        found: q.found,
        class: q.class.words().into(),
        rate_class: q.rate_class.map(|r| r.words().into()),
        band_edge_hz: q.band_edge_hz,
        first_missing_hz: q.first_missing_hz,
        holes_hz: q.holes_hz.clone(),
        sinad_db: q.sinad_db,
        noise_floor_dbfs: (!q.digital_silence).then_some(q.noise_floor_dbfs).flatten(),
        gain_db: q.gain_db,
        step_db: q.step_db,
        codec_signs: q
            .codec_signs
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| c.words().into())
            })
            .collect(),
        speed: q.speed,
    };
    (observation, evidence)
}

/// The speech check: the session plays the speech reference on its output, the client
/// records it on its loopback and scores it (MOS-LQO), held to `[budgets] min_mos`. Runs
/// last: it holds the output path's devices for the reference's 4 s and more.
pub(super) async fn speech_check(
    s: &Scenario,
    e: &Expectation,
    (local, remote): (&Probe, &Probe),
    rig_fault: Option<Observation>,
    seed: u64,
) -> CheckOutcome {
    let measure = || measure_speech(s, (local, remote));
    let judge = |o: &Observation| crate::verdict::judge_speech(&e.output, s.budgets.min_mos, o);
    let check = (Check::Speech, seed);
    output_stream_check(check, s, e, remote, rig_fault, measure, judge).await
}

/// What the speech check observed, and where its recording waits.
pub(super) async fn measure_speech(
    s: &Scenario,
    (local, remote): (&Probe, &Probe),
) -> (Observation, Option<EvidenceAt>) {
    use earshot_probe::signal::speech;
    let length = Duration::from_millis(u64::from(speech::DURATION_MS));
    let leg = output_leg(
        s,
        (local, remote),
        ("speech reference", speech::FEATURE),
        length,
    )
    .with(|play, record| (play.speech, record.speech) = (true, true));
    let (report, evidence) = match play_and_record(&leg).await {
        Ok(r) => r,
        Err(ended) => return ended,
    };
    let Some(r) = report.speech else {
        return (no_analysis(local, "speech"), evidence);
    };
    let observation = Observation::Speech {
        side: local.side,
        mos_lqo: r.score.as_ref().map(|s| s.mos_lqo),
        method: speech::METHOD.into(),
        level_db: r.score.as_ref().map(|s| s.level_db),
        reason: r.error.clone(),
    };
    (observation, evidence)
}

/// The leg of a signal the session plays on its output and the client records on its
/// loopback, from [`QUALITY_LEAD`] before the play to the path's latency allowance after
/// it: `what` and the probe `feature` it needs, `length` its play. The caller says which
/// signal with [`StreamLeg::with`].
fn output_leg<'a>(
    s: &Scenario,
    (local, remote): (&'a Probe, &'a Probe),
    (what, feature): (&'static str, &'static str),
    length: Duration,
) -> StreamLeg<'a> {
    let record = QUALITY_LEAD + length + s.timeouts.latency;
    StreamLeg {
        what,
        feature,
        player: remote,
        play: PlayRequest {
            device: DeviceSelector::parse(&s.probes.remote.output),
            seed: 0,
            direction: Direction::Output,
            continuity_ms: None,
            quality: false,
            speech: false,
        },
        recorder: local,
        record: RecordRequest {
            device: DeviceSelector::parse(&s.probes.local.output_loopback),
            duration_ms: record.as_millis() as u64,
            evidence: true,
            continuity: false,
            quality: false,
            speech: false,
        },
        lead: QUALITY_LEAD,
        length,
        length_key: "timeouts.latency",
    }
}

impl StreamLeg<'_> {
    /// The leg with its play and record requests set by `set` (which signal, which
    /// analysis).
    fn with(mut self, set: impl FnOnce(&mut PlayRequest, &mut RecordRequest)) -> Self {
        set(&mut self.play, &mut self.record);
        self
    }
}
