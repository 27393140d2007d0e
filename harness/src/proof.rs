//! The proof a silence carries: which plays the playing probe confirmed, and that one of
//! them fell whole inside the listen.
//!
//! A check that should hear nothing passes on an absence only when the absence is proven:
//! a signature was played where the path could have carried it, and the listener was
//! still listening when it would have arrived. Without that, "nothing heard" may only mean
//! the listen ended before the play began (a control link delayed by seconds: the play's
//! request was still on its way when the listen gave up), and a blocked policy that did
//! not apply would pass.
//!
//! Every instant here is on the harness's monotonic clock, bounded by when a request left
//! and when its answer arrived. Neither probe's wall clock is used; a probe's own
//! durations (how long a play ran, how long a listen ran) are, since they come from its
//! monotonic clock:
//!
//! - a listen began no later than its `armed` progress note arrived, and ran at least
//!   until its request was sent plus the time it says it ran (it began after the request
//!   left), or until the harness's cancel was sent, when it says the cancel stopped it
//!   (it was then still listening when the cancel arrived);
//! - a play began no earlier than its request was sent, and no later than its answer
//!   arrived less the time it says it ran; its signature had played out
//!   [`Signature::DURATION`] after that, and was heard at most the latency allowance later
//!   had it crossed.
//!
//! So a play asked after the path could carry sound, whose latest hearing falls before the
//! listen's earliest end, proves the silence.

use std::time::{Duration, Instant};

use earshot_probe::signal::Signature;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What proves a silence: the path carries sound at the latest `opens` after the
/// listener's device delivers audio, and a signature that crossed it is heard at most
/// `latency` after it has played out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceBound {
    /// When the path can carry sound at the latest, from the listener's first audio (0 for
    /// an output channel, open already; what is left of `timeouts.channel_open` for an
    /// on-demand microphone channel).
    pub opens: Duration,
    /// The latency allowance (`timeouts.latency`).
    pub latency: Duration,
}

impl SilenceBound {
    /// When `play` has proven the silence, given when its listener was armed: once a
    /// signature that crossed would have been heard; `None` for a play asked before the
    /// path could carry sound.
    pub fn proven_at(&self, armed: Instant, play: &PlayTiming) -> Option<Instant> {
        (play.asked >= armed + self.opens).then(|| play.heard_by(self.latency))
    }
}

/// One play the playing probe confirmed, on the harness's monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayTiming {
    /// When its request was sent.
    pub asked: Instant,
    /// When its answer arrived.
    pub answered: Instant,
    /// How long the probe says it played (its monotonic clock).
    pub played: Duration,
}

impl PlayTiming {
    /// The latest the play can have started: its answer less its running time, never
    /// before it was asked (a probe claiming more running time than the round trip is
    /// taken from the request).
    pub fn started_by(&self) -> Instant {
        self.answered
            .checked_sub(self.played)
            .unwrap_or(self.asked)
            .max(self.asked)
    }

    /// The control link's share of the play's round trip: the wait less its running time.
    pub fn round_trip(&self) -> Duration {
        self.answered
            .saturating_duration_since(self.asked)
            .saturating_sub(self.played)
    }

    /// When a signature of this play that crossed the path was heard at the latest.
    pub fn heard_by(&self, latency: Duration) -> Instant {
        self.started_by() + Signature::DURATION + latency
    }
}

/// What a listen covered, on the harness's monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenSpan {
    /// When its request was sent.
    pub asked: Instant,
    /// When its `armed` note arrived: its device delivered audio before then.
    pub armed: Instant,
    /// How long the probe says it ran, from the request's arrival.
    pub ran: Duration,
    /// When the harness sent its cancel, if the probe says the cancel stopped it.
    pub cancelled: Option<Instant>,
}

impl ListenSpan {
    /// The earliest the listen can have ended.
    pub fn until(&self) -> Instant {
        let ran = self.asked + self.ran;
        self.cancelled.map_or(ran, |c| c.max(ran))
    }
}

/// A silence's proof as reported: every figure in ms from the listen's request, on the
/// harness's monotonic clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SilenceProof {
    /// The plays the playing probe confirmed, in order.
    pub plays: Vec<ProvenPlay>,
    /// When the listener said its device delivered audio: the listen began no later.
    pub armed_ms: f64,
    /// The listen ran at least until then.
    pub listened_until_ms: f64,
    /// The path could carry sound from then at the latest: a play asked earlier proves
    /// nothing (an on-demand microphone channel may still have been closed).
    pub path_open_ms: f64,
    /// The signature's length.
    pub signature_ms: f64,
    /// The latency allowance: a signature that crossed is heard this long after it played
    /// out, at the latest.
    pub latency_allowance_ms: f64,
    /// The first play proven inside the listen (an index into `plays`); none: the silence
    /// is not proven.
    pub proven_by: Option<usize>,
    /// The longest control round trip of the player's requests (the wait for a play's
    /// answer less its running time).
    pub control_rtt_ms: f64,
}

/// One confirmed play in a [`SilenceProof`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProvenPlay {
    /// When its request was sent: it began no earlier.
    pub asked_ms: f64,
    /// When its answer arrived.
    pub answered_ms: f64,
    /// How long the probe says it played.
    pub played_ms: f64,
    /// When its signature, had it crossed, was heard at the latest.
    pub heard_by_ms: f64,
    /// Whether it fell whole inside the listen, after the path could carry sound.
    pub inside: bool,
}

impl SilenceProof {
    /// Whether the silence is proven.
    pub fn holds(&self) -> bool {
        self.proven_by.is_some()
    }

    /// Why the silence is not proven, in words with the figures.
    pub fn shortfall(&self) -> String {
        let plays = match self.plays.len() {
            0 => "no play was confirmed".to_string(),
            n => {
                let last = &self.plays[n - 1];
                format!(
                    "{n} play(s) confirmed, the last asked at {:.0} ms and answered at {:.0} ms, \
                     heard by {:.0} ms had it crossed",
                    last.asked_ms, last.answered_ms, last.heard_by_ms
                )
            }
        };
        format!(
            "could not prove a play inside the listen (control round trip {:.0} ms): the \
             listen ran until {:.0} ms, {plays}",
            self.control_rtt_ms, self.listened_until_ms
        )
    }
}

/// The longest control round trip of `plays`, ms.
fn plays_rtt_ms(plays: &[PlayTiming]) -> f64 {
    plays
        .iter()
        .map(PlayTiming::round_trip)
        .max()
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

fn ms_since(origin: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(origin).as_secs_f64() * 1000.0
}

/// Holds the confirmed plays `timings` against `listen` under `bound`.
pub fn prove(bound: SilenceBound, listen: &ListenSpan, timings: &[PlayTiming]) -> SilenceProof {
    let origin = listen.asked;
    let until = listen.until();
    let plays: Vec<ProvenPlay> = timings
        .iter()
        .map(|p| ProvenPlay {
            asked_ms: ms_since(origin, p.asked),
            answered_ms: ms_since(origin, p.answered),
            played_ms: p.played.as_secs_f64() * 1000.0,
            heard_by_ms: ms_since(origin, p.heard_by(bound.latency)),
            inside: bound
                .proven_at(listen.armed, p)
                .is_some_and(|at| at <= until),
        })
        .collect();
    SilenceProof {
        proven_by: plays.iter().position(|p| p.inside),
        plays,
        armed_ms: ms_since(origin, listen.armed),
        listened_until_ms: ms_since(origin, until),
        path_open_ms: ms_since(origin, listen.armed + bound.opens),
        signature_ms: Signature::DURATION.as_secs_f64() * 1000.0,
        latency_allowance_ms: bound.latency.as_secs_f64() * 1000.0,
        control_rtt_ms: plays_rtt_ms(timings),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn bound(opens: u64) -> SilenceBound {
        SilenceBound {
            opens: MS(opens),
            latency: MS(500),
        }
    }

    fn play(t0: Instant, asked: u64, answered: u64, played: u64) -> PlayTiming {
        PlayTiming {
            asked: t0 + MS(asked),
            answered: t0 + MS(answered),
            played: MS(played),
        }
    }

    fn listen(t0: Instant, armed: u64, ran: u64, cancelled: Option<u64>) -> ListenSpan {
        ListenSpan {
            asked: t0,
            armed: t0 + MS(armed),
            ran: MS(ran),
            cancelled: cancelled.map(|c| t0 + MS(c)),
        }
    }

    #[test]
    fn a_play_heard_by_before_the_listen_ended_proves_the_silence() {
        let t0 = Instant::now();
        // Asked at 100 ms, answered at 1550 after 1420 ms of playing: started by 130 ms,
        // heard by 130 + 720 + 500 = 1350 ms; the listen was cancelled at 1400 ms.
        let p = prove(
            bound(0),
            &listen(t0, 50, 1300, Some(1400)),
            &[play(t0, 100, 1550, 1420)],
        );
        assert_eq!(p.proven_by, Some(0), "{p:?}");
        assert!((p.plays[0].heard_by_ms - 1350.0).abs() < 1.0, "{p:?}");
        assert!(p.holds());
    }

    #[test]
    fn a_listen_that_ended_before_the_play_could_be_heard_proves_nothing() {
        // The control link delays the play by 2 s each way: asked at 100 ms, it starts at
        // 2.1 s and its answer arrives at 5.5 s; the listen ran 2 s.
        let t0 = Instant::now();
        let p = prove(
            bound(0),
            &listen(t0, 50, 2000, None),
            &[play(t0, 100, 5520, 1420)],
        );
        assert_eq!(p.proven_by, None, "{p:?}");
        assert!(!p.holds());
        let why = p.shortfall();
        assert!(
            why.contains("could not prove a play inside the listen") && why.contains("2000 ms"),
            "{why}"
        );
    }

    #[test]
    fn no_play_at_all_proves_nothing() {
        let t0 = Instant::now();
        let p = prove(bound(0), &listen(t0, 50, 2000, None), &[]);
        assert!(!p.holds());
        assert!(
            p.shortfall().contains("no play was confirmed"),
            "{}",
            p.shortfall()
        );
    }

    #[test]
    fn a_play_asked_before_the_path_could_open_proves_nothing_a_later_one_does() {
        let t0 = Instant::now();
        let p = prove(
            bound(1000),
            &listen(t0, 100, 10_000, None),
            &[play(t0, 200, 1650, 1420), play(t0, 1700, 3150, 1420)],
        );
        assert!(!p.plays[0].inside);
        assert_eq!(p.proven_by, Some(1), "{p:?}");
        assert!((p.path_open_ms - 1100.0).abs() < 1.0);
    }

    #[test]
    fn a_cancel_counts_only_when_the_probe_says_it_stopped_the_listen() {
        let t0 = Instant::now();
        // The probe ran 1 s by its own clock; the cancel was sent at 3 s but the listen
        // had already timed out: only the probe's 1 s counts.
        let timed_out = prove(
            bound(0),
            &listen(t0, 50, 1000, None),
            &[play(t0, 100, 1550, 1420)],
        );
        assert!(!timed_out.holds());
        let cancelled = prove(
            bound(0),
            &listen(t0, 50, 1000, Some(3000)),
            &[play(t0, 100, 1550, 1420)],
        );
        assert!(cancelled.holds());
    }

    #[test]
    fn a_probe_claiming_more_running_time_than_the_round_trip_is_taken_from_the_request() {
        let t0 = Instant::now();
        let p = play(t0, 1000, 1500, 60_000);
        assert_eq!(p.started_by(), t0 + MS(1000));
        assert_eq!(p.round_trip(), Duration::ZERO);
        let honest = play(t0, 1000, 2500, 1420);
        assert_eq!(honest.round_trip(), MS(80));
    }

    #[test]
    fn a_play_proves_a_silence_only_once_it_was_asked_after_the_path_could_open() {
        let b = SilenceBound {
            opens: MS(1000),
            latency: MS(600),
        };
        let armed = Instant::now();
        // Asked before the path could carry sound: it proves nothing, whatever it took.
        assert_eq!(b.proven_at(armed, &play(armed, 999, 2500, 1420)), None);
        // Asked at 1 s, answered at 2.5 s after running 1.42 s: it started by 1.08 s, its
        // signature played out by 1.8 s, and would have been heard by 2.4 s.
        assert_eq!(
            b.proven_at(armed, &play(armed, 1000, 2500, 1420)),
            Some(armed + MS(1080) + Signature::DURATION + MS(600))
        );
        // A running time longer than the round trip: taken from its asking.
        assert_eq!(
            bound(0).proven_at(armed, &play(armed, 50, 900, 5000)),
            Some(armed + MS(50) + Signature::DURATION + MS(500))
        );
    }
}
