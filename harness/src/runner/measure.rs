//! Playing on one probe while the other listens: the plays until heard (or until a play
//! proves the silence), the listen, what was heard, and the rig's own proof that it hears.

use super::*;

/// What one direction of a check needs.
pub(super) struct Leg<'a> {
    pub(super) player: &'a Probe,
    pub(super) play_on: &'a str,
    pub(super) listener: &'a Probe,
    pub(super) listen_on: &'a str,
    pub(super) direction: Direction,
    pub(super) seed: u64,
}

/// The outcome of playing on one probe while the other listens.
pub(super) struct Measured {
    pub(super) observation: Observation,
    pub(super) evidence: Option<EvidenceAt>,
    /// For a check that should hear nothing: the plays held against the listen.
    pub(super) proof: Option<SilenceProof>,
    /// The player's output as its sound settings left it after the last play (muted, its
    /// volume), where the player's audio server tells.
    pub(super) output_state: Option<earshot_probe::audio::OutputState>,
}

/// What a failed request on `who` means for the check: the session lacking the endpoint
/// is a finding (`no_device` in the session); a client rig lacking one, and every other
/// failure, is about the side that failed.
pub(super) fn failed(who: &Probe, what: &str, endpoint: &str, e: &ClientError) -> Observation {
    match e.audio() {
        Some(a) if matches!(a.kind, AudioErrorKind::NoDevice | AudioErrorKind::NoMatch) => {
            // "No endpoint" in the session is a finding only from a live audio service.
            let down = (who.side == Side::Session)
                .then(|| audio_service_down(&who.info))
                .flatten();
            match down {
                Some(down) => Observation::Error {
                    side: who.side,
                    detail: format!(
                        "{} probe ({}): audio service unavailable: {down}, so `{endpoint}` \
                         missing proves nothing about the policy; start the service and run \
                         again",
                        who.role, who.info.hostname
                    ),
                },
                None => Observation::NoDevice {
                    side: who.side,
                    endpoint: endpoint.to_string(),
                    detail: format!("{} probe ({}): {}", who.role, who.info.hostname, a.message),
                },
            }
        }
        _ => Observation::Error {
            side: who.side,
            detail: format!("{} probe: {what} on `{endpoint}`: {e}", who.role),
        },
    }
}

/// What the player confirmed: each play's start on the probe's clock (for latency) and
/// its timing on the harness's clock (for a silence's proof).
pub(super) struct Played {
    /// Each play's start as the probe reports it, put on the harness's wall clock.
    pub(super) starts: Vec<f64>,
    /// Each play's request and answer on the harness's monotonic clock.
    pub(super) timings: Vec<PlayTiming>,
    /// When the listener's `armed` note arrived.
    pub(super) armed: Instant,
    /// When the player stopped the listen because a play had proven the silence.
    pub(super) listen_cancelled: Option<Instant>,
    /// The output's mute and volume after the last play.
    pub(super) output_state: Option<earshot_probe::audio::OutputState>,
}

/// Why `info`'s audio service is not up, if the probe showed it down: no audio host
/// (a PulseAudio server that stopped answering), or on Windows the Windows Audio or its
/// Endpoint Builder service in a state other than running. A service whose state could
/// not be read (not installed, unknown) is not taken as down.
pub(super) fn audio_service_down(info: &ProbeInfo) -> Option<String> {
    if let Err(e) = &info.audio_host {
        return Some(e.message.clone());
    }
    const DOWN: &[&str] = &[
        "stopped",
        "stop_pending",
        "start_pending",
        "paused",
        "pause_pending",
        "continue_pending",
    ];
    info.host_config
        .iter()
        .flat_map(|c| &c.services)
        .find(|sv| {
            ["Audiosrv", "AudioEndpointBuilder"]
                .iter()
                .any(|n| sv.name.eq_ignore_ascii_case(n))
                && DOWN.contains(&sv.state.as_str())
        })
        .map(|sv| {
            format!(
                "the {} service ({}) is {}",
                sv.display_name, sv.name, sv.state
            )
        })
}

/// Plays again and again once the listener is armed, until `stop` (the listener is done)
/// or a play fails. Returns every confirmed play, or the first play's error. With
/// `silence`, once a play has proven the silence (see [`SilenceBound::proven_at`]), the
/// listener is stopped: waiting out the rest of its listen would prove nothing more.
pub(super) async fn play_until_heard(
    leg: &Leg<'_>,
    req: &PlayRequest,
    armed: tokio::sync::oneshot::Receiver<()>,
    stop: &CancellationToken,
    cancel_listen: &CancellationToken,
    silence: Option<SilenceBound>,
) -> Option<Result<Played, ClientError>> {
    // A listener that never arms fails on its own (start timeout) and ends the listen.
    if armed.await.is_err() {
        return None;
    }
    let mut played = Played {
        starts: Vec::new(),
        timings: Vec::new(),
        armed: Instant::now(),
        listen_cancelled: None,
        output_state: None,
    };
    while !stop.is_cancelled() {
        let asked = Instant::now();
        match leg.player.client.play_with(req, Job::cancel(stop)).await {
            Ok(r) => {
                played
                    .starts
                    .push(r.started_unix_ms - leg.player.clock_offset_ms);
                let timing = PlayTiming {
                    asked,
                    answered: Instant::now(),
                    played: Duration::from_secs_f64(r.played_ms.max(0.0) / 1000.0),
                };
                played.timings.push(timing);
                played.output_state = r.output_state.clone().or(played.output_state.take());
                if let Some(at) = silence.and_then(|b| b.proven_at(played.armed, &timing)) {
                    tokio::select! {
                        () = tokio::time::sleep_until(at.into()) => {}
                        () = stop.cancelled() => {}
                    }
                    tracing::debug!(
                        "{} -> {}: silence proven {:.2} s after the listener armed",
                        leg.play_on,
                        leg.listen_on,
                        played.armed.elapsed().as_secs_f64()
                    );
                    played.listen_cancelled = Some(Instant::now());
                    cancel_listen.cancel();
                    break;
                }
            }
            Err(e) if played.starts.is_empty() => {
                // Nothing was played: stop listening now rather than at the timeout.
                cancel_listen.cancel();
                return Some(Err(e));
            }
            // A later play failing leaves what was played to be judged.
            Err(_) => break,
        }
    }
    Some(Ok(played))
}

/// How a measurement proves its plays: the bound they are held to, and whether the listen
/// ends as soon as one has proven a silence (a check that should hear nothing).
#[derive(Debug, Clone, Copy)]
pub(super) struct Proof {
    pub(super) bound: SilenceBound,
    pub(super) stop_when_proven: bool,
}

/// Listens on one probe, plays on the other once armed, and returns what was heard. With
/// `proof`, the plays are held against the listen (the measurement's proof), and with
/// `stop_when_proven` the listen ends as soon as one has proven a silence, else at
/// `listen_for`.
pub(super) async fn measure(leg: &Leg<'_>, listen_for: Duration, proof: Option<Proof>) -> Measured {
    let listen_req = ListenRequest {
        device: DeviceSelector::parse(leg.listen_on),
        seed: leg.seed,
        direction: leg.direction,
        timeout_ms: listen_for.as_millis() as u64,
        evidence: true,
    };
    let play_req = PlayRequest {
        continuity_ms: None,
        quality: false,
        device: DeviceSelector::parse(leg.play_on),
        seed: leg.seed,
        direction: leg.direction,
        speech: false,
    };
    let cancel = CancellationToken::new();
    let stop_playing = CancellationToken::new();
    let (armed_tx, armed_rx) = tokio::sync::oneshot::channel();
    // Before the request is sent: the listen's earliest end counts from here.
    let t0 = Instant::now();
    let listening = async {
        let r = leg
            .listener
            .client
            .listen_with(&listen_req, Job::cancel(&cancel).armed(armed_tx))
            .await;
        // Heard (or given up): the player need not keep its stream open for the tail.
        stop_playing.cancel();
        r
    };
    let stop_at = proof.filter(|p| p.stop_when_proven).map(|p| p.bound);
    let playing = play_until_heard(leg, &play_req, armed_rx, &stop_playing, &cancel, stop_at);
    let (heard, played) = tokio::join!(listening, playing);
    tracing::debug!(
        "{} -> {}: {:.2} s, its device delivering after {:?} ms, {} play(s)",
        leg.play_on,
        leg.listen_on,
        t0.elapsed().as_secs_f64(),
        heard.as_ref().ok().and_then(|h| h.report.armed_ms),
        played
            .as_ref()
            .and_then(|p| p.as_ref().ok())
            .map_or(0, |p| p.starts.len())
    );
    let no_evidence = |observation| Measured {
        observation,
        evidence: None,
        proof: None,
        output_state: None,
    };
    match (played, heard) {
        (Some(Err(e)), _) => no_evidence(failed(leg.player, "play", leg.play_on, &e)),
        (_, Err(e)) => no_evidence(failed(leg.listener, "listen", leg.listen_on, &e)),
        (None, Ok(_)) => no_evidence(Observation::Error {
            side: leg.listener.side,
            detail: format!(
                "{} probe: `{}` never delivered audio",
                leg.listener.role, leg.listen_on
            ),
        }),
        (Some(Ok(played)), Ok(heard)) => {
            let r = &heard.report;
            let a = &r.analysis;
            let starts = &played.starts;
            let proof = proof.map(|Proof { bound, .. }| {
                let listen = ListenSpan {
                    asked: t0,
                    armed: played.armed,
                    ran: Duration::from_secs_f64(r.elapsed_ms.max(0.0) / 1000.0),
                    cancelled: played.listen_cancelled.filter(|_| r.cancelled),
                };
                crate::proof::prove(bound, &listen, &played.timings)
            });
            let observation = if a.detected {
                // On the harness's clock: the play heard is the last one started before
                // the onset (a little slack for the onset estimate).
                let onset = r.onset_unix_ms.map(|o| o - leg.listener.clock_offset_ms);
                // The onset is when the signature reached the listener, never before it
                // was played on one clock; across two machines the clocks' offset is known
                // to within half the `info` round trip, so an onset a little before every
                // start is put on the first play, its latency 0 (below what the clocks can
                // tell), never negative.
                let heard_play = onset.and_then(|o| {
                    starts
                        .iter()
                        .enumerate()
                        .rev()
                        .find(|(_, s)| **s <= o + 20.0)
                        .or_else(|| starts.first().map(|s| (0, s)))
                        .map(|(i, s)| (i, (o - s).max(0.0)))
                });
                Observation::Detected {
                    side: leg.listener.side,
                    level_dbfs: a.level_dbfs,
                    latency_ms: heard_play.map(|(_, l)| l),
                    snr_db: a.median_snr_db(),
                    dropouts: a.dropouts.len(),
                    symbols: u32::try_from(a.symbols_matched).unwrap_or(u32::MAX),
                    plays: heard_play.map_or(1, |(i, _)| i as u32 + 1),
                    speed: a.freq_error_ppm.map(|ppm| 1.0 + ppm / 1e6),
                    latencies_ms: vec![],
                }
            } else {
                Observation::not_detected(
                    leg.listener.side,
                    a.rms_dbfs,
                    u32::try_from(a.symbols_matched).unwrap_or(u32::MAX),
                    a.confidence,
                    a.analyzed_ms,
                )
            };
            Measured {
                observation,
                evidence: heard.evidence.map(|handle| EvidenceAt {
                    client: leg.listener.client.clone(),
                    handle,
                }),
                proof,
                output_state: played.output_state,
            }
        }
    }
}

/// The capture check, with its rig proof made from the same plays: while the local probe
/// plays the check's signature into the microphone feed, it also listens on the client's
/// own microphone. The session's absence is then proven by the very sound that did not
/// reach it, at no extra time.
pub(super) async fn measure_capture_with_rig(
    leg: &Leg<'_>,
    listen_for: Duration,
    proof: Option<Proof>,
    local: &Probe,
    rig_input: &str,
) -> (Measured, RigProof) {
    let cancel = CancellationToken::new();
    let rig_req = ListenRequest {
        device: DeviceSelector::parse(rig_input),
        seed: leg.seed,
        direction: leg.direction,
        timeout_ms: listen_for.as_millis() as u64,
        evidence: false,
    };
    let (armed_tx, _armed_rx) = tokio::sync::oneshot::channel();
    let rig = local
        .client
        .listen_with(&rig_req, Job::cancel(&cancel).armed(armed_tx));
    let check = async {
        let m = measure(leg, listen_for, proof).await;
        cancel.cancel();
        m
    };
    let (m, heard) = tokio::join!(check, rig);
    let proof = match heard {
        Ok(h) if h.report.analysis.detected => RigProof::Heard,
        Ok(h) => RigProof::Failed(format!(
            "the client rig cannot hear itself: the local probe played into `{}` and its \
             microphone `{rig_input}` heard {}",
            leg.play_on,
            if h.report.analysis.rms_dbfs > crate::verdict::SILENCE_DBFS {
                "sound, but not the signature"
            } else {
                "nothing"
            }
        )),
        Err(e) => RigProof::Failed(format!(
            "the client rig cannot hear itself: listening on its microphone `{rig_input}` \
             failed: {e}"
        )),
    };
    (m, proof)
}

/// Whether the local rig hears its own signature on `input` when it plays on `output`.
/// How loud `leg`'s input is with nothing played on it, listened to for `listen_for`:
/// the level of whatever sound is there regardless of the check's plays (dBFS), or why
/// the listen failed.
pub(super) async fn quiet_level(leg: &Leg<'_>, listen_for: Duration) -> Result<f64, String> {
    let req = ListenRequest {
        device: DeviceSelector::parse(leg.listen_on),
        // No play carries this seed: only the level matters.
        seed: leg.seed ^ 0x9e37_79b9,
        direction: leg.direction,
        timeout_ms: listen_for.as_millis() as u64,
        evidence: false,
    };
    let cancel = CancellationToken::new();
    let (armed_tx, _armed_rx) = tokio::sync::oneshot::channel();
    match leg
        .listener
        .client
        .listen_with(&req, Job::cancel(&cancel).armed(armed_tx))
        .await
    {
        Ok(heard) => Ok(heard.report.analysis.rms_dbfs),
        Err(e) => Err(format!(
            "the {} probe could not listen on `{}` again: {e}",
            leg.listener.role, leg.listen_on
        )),
    }
}

pub(super) async fn rig_hears_itself(
    local: &Probe,
    output: &str,
    input: &str,
    direction: Direction,
    seed: u64,
    wait: Duration,
) -> RigProof {
    let leg = Leg {
        player: local,
        play_on: output,
        listener: local,
        listen_on: input,
        direction,
        seed,
    };
    let started = Instant::now();
    let observation = measure(&leg, wait, None).await.observation;
    tracing::debug!(
        "the rig's proof ({output} -> {input}) took {:.2} s: {observation:?}",
        started.elapsed().as_secs_f64()
    );
    match observation {
        Observation::Detected { .. } => RigProof::Heard,
        other => RigProof::Failed(format!(
            "the client rig cannot hear itself: the local probe played on `{output}` and \
             heard on `{input}`: {}",
            other.describe()
        )),
    }
}
