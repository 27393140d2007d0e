//! The signature checks (output, capture): how long a check listens, what proves its
//! plays fell inside the listen, and the verdict with its proofs.

use super::*;
use crate::check::{AudioPath, Planned};
use crate::verdict::SessionEndpoint;

/// What proves a play fell inside a check's listen: the path may start carrying sound at
/// any moment up to `opens` after the listener's device delivers audio (an on-demand
/// microphone channel: what is left of `timeouts.channel_open`; an output channel is open
/// already), and a signature that crossed is heard at most `timeouts.latency` after it
/// has played out. An absence decides a check only with such a play: a check that should
/// hear nothing passes on it, one that should hear sound fails on it.
///
/// `settled` is how long the session's microphone request has stood on the current
/// connection (see [`settled_for`]): the channel's opening time counts from then, not from
/// the listen, so only what is left of `timeouts.channel_open` is waited for.
pub(super) fn proof_bound(c: Check, s: &Scenario, settled: Option<Duration>) -> SilenceBound {
    let opens = match s.path_of(c) {
        AudioPath::Output => Duration::ZERO,
        AudioPath::Capture => s
            .timeouts
            .channel_open
            .saturating_sub(settled.unwrap_or(Duration::ZERO)),
    };
    SilenceBound {
        opens,
        latency: s.timeouts.latency,
    }
}

/// How long a check listens at most: `listen` (`timeouts.listen`, or twice that for a
/// second listen) or the check's proof window, whichever is longer, plus `links`, the
/// control links' round trips (a play's request and answer cross the player's link, the
/// `armed` note the listener's): a slow link delays the plays, and must not end the listen
/// before them. Never longer than `most` (what the listener accepts).
///
/// The proof window is how long a fast link's plays take to put one whole inside the
/// listen ([`SilenceBound::proven_at`]): the first play starts within a signature's length
/// of the listener's first audio; each play holds its stream a while past its signature
/// for the server to play it out, so they repeat about every two signatures' lengths, and
/// a whole one starts within that of the path opening. A check that should hear nothing
/// ends as soon as a play has proven the silence; one that should hear sound as soon as it
/// is heard. An absence without a play inside the listen is inconclusive.
pub(super) fn listen_window(
    b: SilenceBound,
    listen: Duration,
    links: Duration,
    most: Duration,
) -> Duration {
    let start = if b.opens.is_zero() {
        Signature::DURATION
    } else {
        b.opens + Signature::DURATION * 2
    };
    ((start + Signature::DURATION + b.latency).max(listen) + links).min(most)
}

/// A wait for an on-demand microphone channel this long or longer is said in the cause:
/// it is where a blocked capture check's time goes on a new connection.
const CHANNEL_WAIT_SAID: Duration = Duration::from_millis(250);

/// The longest listen a check asks for.
pub(super) const MAX_LISTEN: Duration = Duration::from_secs(120);

/// How long the session probe's input `device` has been held open on the current RDP
/// connection (`--prime-input`): the shorter of how long it has delivered audio and how
/// long the connection has stood unchanged. Both are needed: an input held open since
/// before a reconnect proves nothing about the new connection's microphone channel, which
/// opens anew when the session's audio asks for it. `None` when the probe holds another
/// input, none, or cannot tell the connection's age (Windows, a desktop, an older probe):
/// the window then waits the whole `timeouts.channel_open`.
pub(super) fn settled_for(info: &ProbeInfo, device: &str) -> Option<Duration> {
    let held = info
        .primed_inputs
        .iter()
        .chain(&info.primed_input)
        .find(|held| held.device == device)?;
    let ms = held.open_ms?.min(held.connection_ms?);
    Some(Duration::from_millis(ms))
}

/// What a shortened capture window credits less than the session's ages say: the ages
/// are measured at the probe, a moment before the harness has them, and the check after
/// the window compares a second measurement with the first; this much of a difference
/// between the two is the measuring, not a reconnect.
pub(super) const SETTLED_ALLOWANCE: Duration = Duration::from_millis(250);

/// Whether the credit a shortened capture window took still holds after the window: asked
/// again, the session's input and connection have stood unchanged since at least
/// `needed_before` before `window_start`, so no reconnect or reopening fell in or just
/// before the window. The probe measures its answer at some moment before it arrives:
/// taking it as of the arrival asks for the most.
pub(super) async fn settled_through(
    remote: &Probe,
    device: &str,
    window_start: Instant,
    needed_before: Duration,
) -> bool {
    let Ok(info) = remote.client.info().await else {
        return false;
    };
    let Some(settled) = settled_for(&info, device) else {
        return false;
    };
    settled >= window_start.elapsed() + needed_before
}

/// Runs one check and judges it.
pub(super) async fn check(
    c: Check,
    s: &Scenario,
    e: &Expectation,
    (local, remote): (&Probe, &Probe),
    rig_fault: Option<Observation>,
    seed: u64,
) -> CheckOutcome {
    let started_unix_ms = unix_ms();
    let started = Instant::now();
    let local_spec = &s.probes.local;
    let feed = local_spec.mic_feed.as_deref().unwrap_or("default");
    let planned = Planned::of(s, c, e);
    let (leg, rig_out, rig_in) = match planned.path {
        AudioPath::Output => (
            Leg {
                player: remote,
                play_on: &s.probes.remote.output,
                listener: local,
                listen_on: &local_spec.output_loopback,
                direction: Direction::Output,
                seed,
            },
            local_spec.output.as_str(),
            local_spec.output_loopback.as_str(),
        ),
        AudioPath::Capture => (
            Leg {
                player: local,
                play_on: feed,
                listener: remote,
                listen_on: &s.probes.remote.input,
                direction: Direction::Capture,
                seed,
            },
            feed,
            local_spec.input.as_str(),
        ),
    };
    // Capture proves the rig with its own plays (the client's microphone hears the feed);
    // output proves it afterwards, since the check holds the loopback it would listen on.
    let needs = planned.needs_sound();
    let run = |listen_for: Duration, bound: SilenceBound| {
        let leg = &leg;
        // A check that should hear nothing stops listening once a play proves it.
        let proof = Proof {
            bound,
            stop_when_proven: !needs,
        };
        async move {
            match planned.path {
                AudioPath::Capture => {
                    let (m, rig) =
                        measure_capture_with_rig(leg, listen_for, Some(proof), local, rig_in).await;
                    (m, Some(rig))
                }
                AudioPath::Output => (measure(leg, listen_for, Some(proof)).await, None),
            }
        }
    };
    // A blocked capture's window is shorter when the session has held its input open on
    // the current connection for a while (--prime-input); the credit is checked again
    // after the window, and a window it no longer covers is listened to again in full.
    let settled = match planned.path {
        AudioPath::Capture if !needs => settled_for(&remote.info, &s.probes.remote.input)
            .map(|d| d.saturating_sub(SETTLED_ALLOWANCE)),
        _ => None,
    };
    let (bound, full_bound) = (proof_bound(c, s, settled), proof_bound(c, s, None));
    let links = local.rtt + remote.rtt;
    let most = Duration::from_millis(leg.listener.info.max_capture_ms).min(MAX_LISTEN);
    let window = listen_window(bound, s.timeouts.listen, links, most);
    let full_window = listen_window(full_bound, s.timeouts.listen, links, most);
    tracing::debug!(
        "{c}: listen window {:.2} s (whole {:.2} s), credited {settled:?}",
        window.as_secs_f64(),
        full_window.as_secs_f64()
    );
    let mut relistened = None;
    let (m, rig_seen) = match rig_fault {
        Some(observation) => (
            Measured {
                observation,
                evidence: None,
                proof: None,
                output_state: None,
            },
            None,
        ),
        None => {
            let window_start = Instant::now();
            let (m, rig_seen) = run(window, bound).await;
            let credit = settled.unwrap_or_default().min(s.timeouts.channel_open);
            if bound != full_bound
                && m.observation.is_absence()
                && !settled_through(remote, &s.probes.remote.input, window_start, credit).await
            {
                relistened = Some(full_window);
                run(full_window, full_bound).await
            } else {
                (m, rig_seen)
            }
        }
    };
    // A path that should carry sound but brought none may be slow (a starved link, a
    // channel that opens late): before that absence can fail the check, listen once more,
    // twice as long. A fail after a rollout sends an admin hunting; it is worth the wait.
    // Not when the session's output was muted or at 0 %: nothing could arrive, and the
    // cause says so.
    let mut second_listen = None;
    let output_off = m
        .output_state
        .as_ref()
        .is_some_and(|o| o.muted || o.volume_pct < 1.0);
    let (m, rig_seen) = if needs && m.observation.is_absence() && !output_off {
        let longer = listen_window(full_bound, s.timeouts.listen * 2, links, most);
        let (again, rig_again) = run(longer, full_bound).await;
        second_listen = Some(longer);
        match again.observation {
            // A second attempt that failed outright says nothing new: keep the first.
            Observation::Error { .. } | Observation::NoDevice { .. } => (m, rig_seen),
            _ => (again, rig_again),
        }
    } else {
        (m, rig_seen)
    };
    // A latency budget holds every play, not one: with a budget on the path and the
    // signature heard, it is played and heard again, and the median and the worst kept.
    let m = match (&m.observation, s.budgets.latency(planned.path)) {
        (Observation::Detected { .. }, Some(_)) if needs => {
            let mut again = Vec::new();
            for _ in 1..LATENCY_PLAYS {
                again.push(measure(&leg, window, None).await.observation);
            }
            with_latencies(m, &again)
        }
        _ => m,
    };
    // Sound during a blocked check's plays that carries no trace of the signature is
    // unrelated to them only if the input carries the same sound with no play at all:
    // listened to now, as long as the check listened (only when it happens).
    let unrelated_sound = !needs && matches!(m.observation, Observation::Unrecognised { .. });
    let quiet = match &m.observation {
        Observation::Unrecognised { listened_ms, .. } if unrelated_sound => {
            let span = Duration::from_secs_f64(listened_ms.max(1000.0) / 1000.0);
            Some(quiet_level(&leg, span.min(most)).await)
        }
        _ => None,
    };
    // An absence (or an unrelated sound) decides nothing until the rig proves it could
    // have heard.
    let rig = match (m.observation.is_absence() || unrelated_sound, rig_seen) {
        (false, _) => RigProof::NotTried,
        (true, Some(RigProof::Heard)) => RigProof::Heard,
        // The check's plays stop with its window, which can end before the client's own
        // microphone (slower to start than a primed session input) has heard a whole
        // signature: that says nothing about the rig yet. Prove it on its own, as output
        // does, before calling it broken.
        (true, _) => {
            rig_hears_itself(
                local,
                rig_out,
                rig_in,
                leg.direction,
                seed ^ 0x5eed,
                s.timeouts.listen,
            )
            .await
        }
    };
    let endpoint = session_endpoint_seen(remote, &planned, &m.observation).await;
    let mut judgement = judge(&planned, &m.observation, &rig, &endpoint);
    // An absence decides only with its proof: a play confirmed whole inside the listen.
    if let (true, Verdict::Pass | Verdict::Fail, Some(proof)) = (
        m.observation.is_absence(),
        judgement.verdict,
        m.proof.as_ref(),
    ) {
        if !proof.holds() {
            judgement = Judgement {
                verdict: Verdict::Inconclusive,
                cause: format!(
                    "expected {} ({}); observed {}, but {}; so the absence proves nothing: is \
                     the control link to the {} probe slow or congested (a VPN, a satellite \
                     link)? Raise timeouts.listen or run the harness nearer the probes",
                    planned.expected(),
                    planned.decided_by(),
                    m.observation.describe(),
                    proof.shortfall(),
                    leg.player.role,
                ),
            };
        }
    }
    if let Some(quiet) = quiet {
        judgement = crate::verdict::judge_unrelated(
            &planned,
            &m.observation,
            quiet,
            &rig,
            m.proof.as_ref().is_some_and(|p| p.holds()),
        );
    }
    if let Some(full) = relistened {
        judgement.cause = format!(
            "{} (the session's RDP connection or held input changed around the shortened \
             window: listened again, crediting none of its age, for up to {:.2} s)",
            judgement.cause,
            full.as_secs_f64()
        );
    }
    if let Some(longer) = second_listen {
        judgement.cause = format!(
            "{} (after a second listen of {:.0} s)",
            judgement.cause,
            longer.as_secs_f64()
        );
    }
    // Where a proven silence's time went: the wait for an on-demand microphone channel.
    if let (true, Some(proof)) = (m.observation.is_absence(), m.proof.as_ref()) {
        let waited = proof.path_open_ms - proof.armed_ms;
        if proof.holds() && waited >= CHANNEL_WAIT_SAID.as_secs_f64() * 1000.0 {
            judgement.cause = format!(
                "{} (the microphone channel opens on demand: waited {waited:.0} ms for it \
                 before a play could prove anything; a connection that has stood that long \
                 with the session's input held open is credited, see timeouts.channel_open)",
                judgement.cause
            );
        }
    }
    judgement = crate::verdict::hold_to_budgets(judgement, &planned, &m.observation, &s.budgets);
    judgement = crate::verdict::name_a_muted_output(judgement, &planned, m.output_state.as_ref());
    if let Some(fact) = host_fact(s, &remote.info, planned.path) {
        judgement.cause = format!("{} ({fact})", judgement.cause);
    }
    let host = remote
        .info
        .host_config
        .as_ref()
        .filter(|_| s.product != Product::Xrdp)
        .map(|cfg| crate::host::view(&s.policy.session_host, cfg, planned.path, judgement.verdict));
    if let Some(h) = &host {
        judgement = judgement.without_restart_guess();
        judgement.cause = format!("{}; on the session host: {}", judgement.cause, h.cause);
    }
    CheckOutcome {
        check: c,
        observation: m.observation,
        rig,
        judgement,
        silence_proof: m.proof,
        host,
        evidence: m.evidence,
        seed,
        started_unix_ms,
        duration: started.elapsed(),
    }
}

/// What the session showed of its redirected endpoint on the check's path, when it can explain an
/// absence where sound should have arrived: its catalogue at connection and, looked at again
/// now, after the check (an endpoint that came late still counts as there).
async fn session_endpoint_seen(
    remote: &Probe,
    planned: &Planned<'_>,
    observed: &Observation,
) -> SessionEndpoint {
    if !planned.needs_sound() || !observed.is_absence() {
        return SessionEndpoint::Unknown;
    }
    let direction = planned.path.session_direction();
    let now = remote.client.info().await.ok();
    let looks: Vec<&ProbeInfo> = std::iter::once(&remote.info).chain(now.as_ref()).collect();
    crate::verdict::hints::session_endpoint(&looks, direction)
}

/// How many plays a latency budget is held to: the first and two more.
const LATENCY_PLAYS: usize = 3;

/// `m` with the latencies of the plays heard `again` beside its own: its `latency_ms`
/// becomes their median, `latencies_ms` every one. A play not heard again adds nothing.
fn with_latencies(mut m: Measured, again: &[Observation]) -> Measured {
    if let Observation::Detected {
        ref mut latency_ms,
        ref mut latencies_ms,
        ..
    } = m.observation
    {
        let Some(first) = *latency_ms else {
            return m;
        };
        let mut all = vec![first];
        all.extend(again.iter().filter_map(|o| match o {
            Observation::Detected { latency_ms, .. } => *latency_ms,
            _ => None,
        }));
        let mut sorted = all.clone();
        sorted.sort_by(f64::total_cmp);
        *latency_ms = Some(sorted[sorted.len() / 2]);
        *latencies_ms = all;
    }
    m
}
