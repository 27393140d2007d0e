//! The runner: connects to both probes, runs preflight, then the checks, and emits events.
//! It never formats; reporters do.
//!
//! Every wait is bounded: connecting (the scenario's `timeouts.connect`), each request (the
//! probe client's own timeouts: the job's duration plus a margin), and the whole check. A
//! probe that dies or hangs makes the check `inconclusive`, never a hang.
//!
//! A check plays on one probe while the other listens. The player starts only once the
//! listener's device delivers audio ("armed"), and plays the signature again and again
//! until the listener hears it or gives up: real RDP opens the microphone channel only
//! when something records, so the first second or two of a capture path can be zeros, and
//! a single play would be lost in them.
//!
//! Attribution: whatever fails on the client rig (the local probe's loopback, microphone
//! feed or microphone, or the local probe itself) is about the rig, never a finding about
//! the session. Preflight resolves the local endpoints against the local probe's catalogue
//! and says at once which check cannot be made. When a check hears nothing, the rig tests
//! itself before the absence decides anything, whether the policy wanted sound or
//! silence: the local probe plays a rig signature and must hear it on the same input.
//!
//! # Layout
//!
//! - this file: loading the scenarios, the run loop, a scenario's run once connected.
//! - `runner/probes.rs`: connecting, who each probe is, whether they are the ones the scenario
//!   names, preflight.
//! - `runner/measure.rs`: playing on one probe while the other listens; the rig's own proof.
//! - `runner/signature.rs`: the output and capture checks: listen length, proof, verdict.
//! - `runner/stream.rs`: the continuity and quality checks.
//! - `runner/evidence.rs`: recordings fetched after the verdict.
//! - `runner/fleet.rs`: one run over many session hosts.
//! - `runner/doctor.rs`: `earshot doctor`'s examination of a rig, no checks run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use earshot_probe::audio::{self, AudioErrorKind, DeviceDirection, DeviceSelector};
use earshot_probe::proto::auth::Token;
use earshot_probe::proto::client::{
    AuthedClient, Client, ClientConfig, ClientError, EvidenceHandle, Job, ProbeListener,
};
use earshot_probe::proto::msg::{
    ListenRequest, PlayRequest, ProbeInfo, RecordRequest, SessionKind,
};
use earshot_probe::proto::token::TokenRole;
use earshot_probe::signal::{Direction, Signature};
use earshot_probe::unix_ms;
use tokio_util::sync::CancellationToken;

use crate::check::AudioPath;
use crate::policy::{self, Expectation};
use crate::proof::{ListenSpan, PlayTiming, SilenceBound, SilenceProof};
use crate::report::{CheckRecord, Event, ProbeSummary, Run, ScenarioRecord};
use crate::scenario::{Check, ProbeSpec, Product, Scenario, ScenarioError, SessionRequirement};
use crate::verdict::{judge, Judgement, Observation, RigProof, Side, Verdict};

mod doctor;
mod evidence;
mod fleet;
mod measure;
mod probes;
mod signature;
mod stream;

pub use doctor::diagnose;
use evidence::keep_evidence;
pub use evidence::{EvidenceAt, EVIDENCE_FETCH_BUDGET};
pub use fleet::Fleet;
use measure::*;
mod interrupt;
pub use interrupt::{watch_signals, Interrupt, Pulled};
use probes::*;
use signature::*;
use stream::*;

/// How a run is done.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where evidence recordings go (FLAC, created when needed); none keeps no evidence.
    pub evidence_dir: Option<PathBuf>,
    /// Base seed of the signatures; each check adds its index. Random when None.
    pub seed: Option<u64>,
    /// Every scenario against each of these session hosts (`--inventory`); none: against
    /// the scenario's own remote probe.
    pub fleet: Option<Fleet>,
    /// The stop switch a signal handler pulls (see [`Interrupt`]).
    pub interrupt: Interrupt,
}

/// Why a scenario could not be run at all (before or while reaching its probes).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The scenario file is unusable.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// No usable token for a probe.
    #[error("{}: probes.{role}: {message}", path.display())]
    Token {
        /// The scenario file.
        path: PathBuf,
        /// `local` or `remote`.
        role: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// A probe could not be reached, did not dial in, or failed the handshake.
    #[error("{role} probe: {error}; {hint}")]
    Connect {
        /// `local` or `remote`.
        role: &'static str,
        /// The client's error.
        error: ClientError,
        /// What to check.
        hint: String,
    },
    /// A probe connected but did not describe itself.
    #[error("{role} probe: info: {error}")]
    Info {
        /// `local` or `remote`.
        role: &'static str,
        /// The client's error.
        error: ClientError,
    },
}

/// A scenario that loaded and whose expectation is known: ready to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The scenario.
    pub scenario: Scenario,
    /// What the policy engine worked out.
    pub expectation: Expectation,
}

/// Loads and validates every scenario file, collecting every error, so a run touches no
/// probe until all its scenarios are known good.
///
/// # Errors
/// Every file's [`SetupError`], in order.
pub fn prepare(files: &[PathBuf]) -> Result<Vec<Prepared>, Vec<SetupError>> {
    prepare_for(files, crate::scenario::Purpose::Run)
}

/// [`prepare`] for `purpose`: `expect` needs the policy layers only, not the probes.
///
/// # Errors
/// Every file's [`SetupError`], in order.
pub fn prepare_for(
    files: &[PathBuf],
    purpose: crate::scenario::Purpose,
) -> Result<Vec<Prepared>, Vec<SetupError>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match prepare_one(file, purpose) {
            Ok(p) => ok.push(p),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

fn prepare_one(file: &Path, purpose: crate::scenario::Purpose) -> Result<Prepared, SetupError> {
    let scenario = Scenario::load_for(file, purpose)?;
    let expectation = policy::expect(&scenario);
    if purpose == crate::scenario::Purpose::Run {
        // The tokens are part of the configuration: a missing, unreadable or too open
        // token file is refused with the rest, before any probe is touched.
        for (spec, role) in [
            (&scenario.probes.local, "local"),
            (&scenario.probes.remote, "remote"),
        ] {
            token_for(&scenario, spec, role)?;
        }
    }
    Ok(Prepared {
        scenario,
        expectation,
    })
}

/// One check's result, before it becomes a report record.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// Which check.
    pub check: Check,
    /// What was observed.
    pub observation: Observation,
    /// What the rig proved, when an absence needed it.
    pub rig: RigProof,
    /// The verdict and its cause.
    pub judgement: Judgement,
    /// For a check that should hear nothing: its plays held against its listen.
    pub silence_proof: Option<SilenceProof>,
    /// What the session host has for this check (a Windows host's policy, as its probe
    /// read it).
    pub host: Option<crate::host::HostView>,
    /// Where the recording waits on the listening probe, when it kept one.
    pub evidence: Option<EvidenceAt>,
    /// The seed of the signature.
    pub seed: u64,
    /// When the check started (unix ms, harness clock).
    pub started_unix_ms: f64,
    /// How long it took.
    pub duration: Duration,
}

/// Runs every prepared scenario in turn, feeding `sink` every event (after applying it to
/// the run). Returns the finished run.
pub async fn run(
    scenarios: &[Prepared],
    options: &RunOptions,
    sink: &mut dyn FnMut(&Event, &Run),
) -> Run {
    let mut run = Run::new();
    let base_seed = options.seed.unwrap_or_else(|| {
        // Unique per run: a stale recording of an earlier run can never match.
        (unix_ms() * 1000.0) as u64 ^ u64::from(std::process::id()).rotate_left(32)
    });
    let not_started = if let Some(fleet) = &options.fleet {
        fleet::run(scenarios, options, fleet, base_seed, &mut run, sink).await
    } else {
        let mut not_started = 0;
        for (si, p) in scenarios.iter().enumerate() {
            if options.interrupt.is_pulled() {
                not_started = scenarios.len() - si;
                break;
            }
            let mut emit = |e: Event| {
                run.apply(&e);
                sink(&e, &run);
            };
            run_scenario(
                p,
                options,
                base_seed.wrapping_add(si as u64 * 16),
                &mut emit,
            )
            .await;
        }
        not_started
    };
    if let Some(p) = options.interrupt.cause() {
        let e = Event::Interrupted(crate::report::Interruption {
            signal: p.signal,
            exit_code: p.exit_code,
            at_unix_ms: p.at_unix_ms,
            not_started,
        });
        run.apply(&e);
        sink(&e, &run);
    }
    run
}

/// The words of a check or a wait that a signal cut short.
fn interrupted_words(interrupt: &Interrupt, what: &str) -> String {
    let signal = interrupt
        .cause()
        .map_or_else(|| "a signal".to_string(), |p| p.signal);
    format!("interrupted by {signal} {what}: nothing is concluded from it")
}

async fn run_scenario(p: &Prepared, options: &RunOptions, seed: u64, emit: &mut dyn FnMut(Event)) {
    let (s, expectation) = (&p.scenario, &p.expectation);
    emit(Event::ScenarioStarted(record(s, expectation)));
    let connected = tokio::select! {
        c = connect_both(s, emit) => Some(c),
        () = options.interrupt.pulled() => None,
    };
    let Some(connected) = connected else {
        emit(Event::ScenarioError(interrupted_words(
            &options.interrupt,
            "while reaching the probes",
        )));
        emit(Event::ScenarioFinished);
        return;
    };
    let (local, remote) = match connected {
        (Ok(l), Ok(r)) => (l, r),
        (l, r) => {
            let why: Vec<String> = [l.err(), r.err()]
                .into_iter()
                .flatten()
                .map(|e| e.to_string())
                .collect();
            emit(Event::ScenarioError(why.join("; ")));
            emit(Event::ScenarioFinished);
            return;
        }
    };
    run_connected(s, expectation, (local, remote), options, seed, emit).await;
}

/// A scenario's run once both probes answered: preflight, the checks, the evidence.
async fn run_connected(
    s: &Scenario,
    expectation: &Expectation,
    (local, remote): (Probe, Probe),
    options: &RunOptions,
    seed: u64,
    emit: &mut dyn FnMut(Event),
) {
    // A session host layer taken from the host: the expectation follows what it has.
    let from_host = match session_layer_from_host(s, &remote) {
        Ok(None) => None,
        Ok(Some((taken, notes))) => {
            for n in notes {
                emit(Event::Warning(n));
            }
            emit(Event::Expectation(taken.1.clone()));
            Some(taken)
        }
        Err(why) => {
            emit(Event::ScenarioError(why));
            emit(Event::ScenarioFinished);
            return;
        }
    };
    let (s, expectation) = match &from_host {
        Some((scenario, e)) => (scenario, e),
        None => (s, expectation),
    };
    if let Some(why) = wrong_probes(s, &local, &remote) {
        emit(Event::ScenarioError(why));
        emit(Event::ScenarioFinished);
        return;
    }
    let mut warnings = preflight_warnings(&local, &remote);
    // Resolved once: the warning now, the check's inconclusive observation later.
    let rig_faults: Vec<(Check, Observation)> = s
        .checks
        .iter()
        .filter_map(|c| {
            // Continuity and quality need the rig of their path.
            rig_preflight(s, &local, s.path_of(*c)).map(|o| (*c, o))
        })
        .collect();
    for (c, o) in &rig_faults {
        warnings.push(format!(
            "the {c} check cannot be made: {}; it will be inconclusive",
            o.describe()
        ));
    }
    emit(Event::Preflight {
        probes: vec![summary(&local), summary(&remote)],
        warnings,
    });
    // The checks use disjoint devices and disjoint tone alphabets: they run together.
    // Each verdict is given as soon as it and the checks listed before it are decided
    // (the reports are rewritten after each, so a long continuity check never holds the
    // output and capture verdicts back); the evidence is fetched after them all.
    let (done, mut decided) = tokio::sync::mpsc::unbounded_channel();
    let checks = run_checks(
        s,
        expectation,
        (&local, &remote),
        &rig_faults,
        seed,
        &options.interrupt,
        done,
    );
    let mut to_fetch = Vec::new();
    let give = async {
        let mut waiting: Vec<CheckOutcome> = Vec::new();
        let mut given = 0;
        while let Some(o) = decided.recv().await {
            waiting.push(o);
            while let Some(at) = s
                .checks
                .get(given)
                .and_then(|next| waiting.iter().position(|o| o.check == *next))
            {
                let o = waiting.swap_remove(at);
                given_check(s, expectation, o, given, options, &mut to_fetch, emit);
                given += 1;
            }
        }
        // None is left waiting unless a check of the list gave no outcome: in its order.
        waiting.sort_by_key(|o| s.checks.iter().position(|c| *c == o.check));
        for o in waiting {
            given_check(s, expectation, o, given, options, &mut to_fetch, emit);
            given += 1;
        }
    };
    tokio::join!(checks, give);
    for (index, check, dir, at) in to_fetch {
        if options.interrupt.is_pulled() {
            emit(Event::Evidence {
                index,
                outcome: Err(format!(
                    "the {check} evidence was not fetched: {}; the verdict stands",
                    interrupted_words(&options.interrupt, "before it was fetched")
                )),
            });
            continue;
        }
        let started = Instant::now();
        let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (r, t) = (received.clone(), total.clone());
        let fetch = keep_evidence(&dir, &s.name, check, &at, move |got, of| {
            r.store(got, std::sync::atomic::Ordering::Relaxed);
            t.store(of, std::sync::atomic::Ordering::Relaxed);
        });
        tokio::pin!(fetch);
        // Progress while a slow link carries it.
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.tick().await;
        let kept = loop {
            tokio::select! {
                r = &mut fetch => break r.map_err(|e| e.to_string()),
                () = options.interrupt.pulled() => break Err(interrupted_words(
                    &options.interrupt,
                    "while it was fetched",
                )),
                _ = tick.tick() => emit(Event::Waiting(format!(
                    "fetching the {check} evidence: {} of {} kB after {:.0} s (verdict already \
                     given)",
                    received.load(std::sync::atomic::Ordering::Relaxed) / 1000,
                    total.load(std::sync::atomic::Ordering::Relaxed) / 1000,
                    started.elapsed().as_secs_f64()
                ))),
            }
        };
        emit(Event::Evidence {
            index,
            outcome: kept.map_err(|e| {
                format!(
                    "the {check} evidence was not kept after {:.1} s: {e}; the verdict stands",
                    started.elapsed().as_secs_f64()
                )
            }),
        });
    }
    emit(Event::ScenarioFinished);
}

/// Gives check outcome `o`, the `index`-th of its scenario: its record to `emit`, and its
/// recording to `to_fetch` when evidence is kept and the check was not a clean pass.
fn given_check(
    s: &Scenario,
    expectation: &Expectation,
    o: CheckOutcome,
    index: usize,
    options: &RunOptions,
    to_fetch: &mut Vec<(usize, Check, PathBuf, EvidenceAt)>,
    emit: &mut dyn FnMut(Event),
) {
    // A clean pass keeps no evidence; a degraded pass does.
    let clean_pass = o.judgement.verdict == crate::verdict::Verdict::Pass
        && !matches!(
            o.observation,
            Observation::Detected { dropouts: 1.., .. } | Observation::Degraded { .. }
        );
    if let (Some(dir), Some(at), false) = (&options.evidence_dir, &o.evidence, clean_pass) {
        to_fetch.push((index, o.check, dir.clone(), at.clone()));
    }
    let planned = crate::check::Planned::of(s, o.check, expectation);
    emit(Event::CheckFinished(CheckRecord {
        check: o.check,
        path: Some(planned.path),
        expected: planned.expected().into(),
        decided_by: planned.decided_by().to_string(),
        observation: o.observation,
        rig_proof: match o.rig {
            RigProof::NotTried => None,
            RigProof::Heard => Some("the rig heard its own test signature".into()),
            RigProof::Failed(why) => Some(why),
        },
        verdict: o.judgement.verdict,
        cause: o.judgement.cause,
        silence_proof: o.silence_proof,
        host: o.host,
        seed: o.seed,
        evidence: None,
        evidence_error: None,
        started_unix_ms: o.started_unix_ms,
        duration_ms: o.duration.as_secs_f64() * 1000.0,
    }));
}

/// Runs the scenario's checks, output and capture together, then the stream checks one
/// at a time, sending each outcome to `done` as it is decided.
async fn run_checks(
    s: &Scenario,
    e: &Expectation,
    probes: (&Probe, &Probe),
    rig_faults: &[(Check, Observation)],
    seed: u64,
    interrupt: &Interrupt,
    done: tokio::sync::mpsc::UnboundedSender<CheckOutcome>,
) {
    let fault_for = |c: Check| {
        rig_faults
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, o)| o.clone())
    };
    // A receiver gone is a run that no longer listens: nothing is left to give to.
    let give = |o: CheckOutcome| drop(done.send(o));
    let one = |c: Check, seed: u64| async move {
        if s.checks.contains(&c) {
            let fut = check(c, s, e, probes, fault_for(c), seed);
            give(guarded(c, seed, interrupt, fut).await);
        }
    };
    tokio::join!(
        one(Check::Output, seed),
        one(Check::Capture, seed.wrapping_add(1))
    );
    // Continuity, quality and speech hold their path's devices: after the others, one at a
    // time.
    if s.checks.contains(&Check::Continuity) {
        let fault = fault_for(Check::Continuity);
        let seed = seed.wrapping_add(2);
        let fut = continuity_check(s, e, probes, fault, seed);
        give(guarded(Check::Continuity, seed, interrupt, fut).await);
    }
    if s.checks.contains(&Check::Quality) {
        let fault = fault_for(Check::Quality);
        let seed = seed.wrapping_add(3);
        let fut = quality_check(s, e, probes, fault, seed);
        give(guarded(Check::Quality, seed, interrupt, fut).await);
    }
    if s.checks.contains(&Check::Speech) {
        let fault = fault_for(Check::Speech);
        let seed = seed.wrapping_add(4);
        let fut = speech_check(s, e, probes, fault, seed);
        give(guarded(Check::Speech, seed, interrupt, fut).await);
    }
}

/// Check `c` as `fut` makes it, unless a signal cuts it short: it then ends inconclusive,
/// while a check decided before the signal keeps its verdict. Dropping a check's future
/// drops its requests; the probes stop their plays and listens when the run closes their
/// connections.
async fn guarded(
    c: Check,
    seed: u64,
    interrupt: &Interrupt,
    fut: impl std::future::Future<Output = CheckOutcome>,
) -> CheckOutcome {
    let started_unix_ms = unix_ms();
    let started = Instant::now();
    tokio::select! {
        o = fut => o,
        () = interrupt.pulled() => CheckOutcome {
            check: c,
            observation: Observation::Error {
                side: Side::Client,
                detail: interrupted_words(interrupt, "before the check finished"),
            },
            rig: RigProof::NotTried,
            judgement: Judgement {
                verdict: Verdict::Inconclusive,
                cause: interrupted_words(interrupt, "before the check finished"),
            },
            silence_proof: None,
            host: None,
            evidence: None,
            seed,
            started_unix_ms,
            duration: started.elapsed(),
        },
    }
}

fn record(s: &Scenario, e: &Expectation) -> ScenarioRecord {
    ScenarioRecord {
        name: s.name.clone(),
        file: s.path.clone(),
        product: Some(s.product),
        expectation: Some(e.clone()),
        probes: vec![],
        warnings: vec![],
        checks: vec![],
        error: None,
        host: None,
        started_unix_ms: unix_ms(),
        finished_unix_ms: None,
    }
}
