use super::*;

const RATE: u32 = 48_000;

fn analyze(samples: &[f32], rate: u32) -> ContinuityReport {
    let mut a = Analyzer::new(rate);
    a.push(samples);
    a.finish()
}

/// The stream with `f` applied between its render and the analysis.
fn stream(seconds: f64) -> Vec<f32> {
    render(RATE, seconds)
}

fn period_samples(rate: u32) -> f64 {
    f64::from(rate) / TONE_HZ
}

/// `x` and `y` equal modulo one period of the tone at `rate`.
fn same_mod_period(x: f64, y: f64, rate: u32) -> bool {
    let p = period_samples(rate);
    let d = (x - y).rem_euclid(p);
    d.min(p - d) < 0.3
}

#[test]
fn a_clean_stream_has_no_break_no_drift_and_a_steady_level() {
    let r = analyze(&stream(10.0), RATE);
    assert!(r.found);
    assert_eq!(r.events, vec![], "{r:#?}");
    let drift = r.drift_ppm.unwrap();
    assert!(drift.abs() < 2.0, "{drift} ppm");
    let level = r.level_dbfs.unwrap();
    assert!((level - -6.02).abs() < 0.05, "{level} dBFS");
    assert!(r.level_std_db.unwrap() < 0.05, "{r:#?}");
    assert!((r.tone_ms - 10_000.0).abs() < 20.0, "{}", r.tone_ms);
    assert!(r.error_floor_db.unwrap() < -60.0, "{r:#?}");
}

#[test]
fn silence_substituted_is_one_gap_of_its_length_where_it_was_with_no_slip() {
    for gap_ms in [5.0, 10.0, 20.0] {
        let mut s = stream(6.0);
        let at = 3 * RATE as usize;
        let n = (gap_ms * 48.0) as usize;
        s[at..at + n].fill(0.0);
        let r = analyze(&s, RATE);
        assert_eq!(r.events.len(), 1, "{gap_ms} ms: {r:#?}");
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::Gap);
        assert!((e.file_ms - 3000.0).abs() <= 2.5, "{gap_ms} ms: {e:?}");
        assert!((e.length_ms - gap_ms).abs() <= 2.5, "{gap_ms} ms: {e:?}");
        assert!(same_mod_period(e.slip_samples, 0.0, RATE), "{e:?}");
        assert!(e.depth_db < -40.0, "{e:?}");
    }
}

#[test]
fn silence_inserted_is_a_gap_whose_slip_is_its_length_modulo_a_period() {
    let mut s = stream(6.0);
    let at = 2 * RATE as usize;
    let n = 480;
    s.splice(at..at, std::iter::repeat_n(0.0, n));
    let r = analyze(&s, RATE);
    assert_eq!(r.events.len(), 1, "{r:#?}");
    let e = &r.events[0];
    assert_eq!(e.kind, EventKind::Gap);
    assert!((e.length_ms - 10.0).abs() <= 2.5, "{e:?}");
    assert!(same_mod_period(e.slip_samples, n as f64, RATE), "{e:?}");
}

#[test]
fn one_sample_lost_or_repeated_is_one_glitch_at_its_sample_with_its_slip() {
    for (what, slip) in [("lost", -1.0), ("repeated", 1.0)] {
        let mut s = stream(5.0);
        let at = 2 * RATE as usize + 1234;
        if slip < 0.0 {
            s.remove(at);
        } else {
            s.insert(at, s[at]);
        }
        let r = analyze(&s, RATE);
        assert_eq!(r.events.len(), 1, "{what}: {r:#?}");
        let e = &r.events[0];
        assert_eq!(e.kind, EventKind::Glitch, "{what}: {e:?}");
        let want_ms = at as f64 / 48.0;
        assert!(
            (e.file_ms - want_ms).abs() <= 2.0,
            "{what}: {e:?}, want {want_ms}"
        );
        assert!((e.slip_samples - slip).abs() < 0.2, "{what}: {e:?}");
    }
}

#[test]
fn a_click_is_a_glitch_without_slip() {
    let mut s = stream(4.0);
    s[100_000] += 0.3;
    let r = analyze(&s, RATE);
    assert_eq!(r.events.len(), 1, "{r:#?}");
    assert_eq!(r.events[0].kind, EventKind::Glitch);
    assert!(r.events[0].slip_samples.abs() < 0.2, "{r:#?}");
}

#[test]
fn clock_drift_is_measured_in_ppm_with_its_sign() {
    for ppm in [-500.0, 100.0, 500.0] {
        // The tone as a recorder whose clock is off hears it.
        let w = 2.0 * PI * TONE_HZ * (1.0 + ppm * 1e-6) / f64::from(RATE);
        let s: Vec<f32> = (0..10 * RATE as usize)
            .map(|i| (0.5 * (w * i as f64).sin()) as f32)
            .collect();
        let r = analyze(&s, RATE);
        assert_eq!(r.events, vec![], "{ppm}: {r:#?}");
        let d = r.drift_ppm.unwrap();
        assert!((d - ppm).abs() < 2.0, "{ppm}: measured {d}");
    }
}

#[test]
fn a_level_that_wanders_is_unsteady_and_a_limit_says_so() {
    let mut s = stream(6.0);
    for (i, x) in s.iter_mut().enumerate() {
        // ±6 dB, slowly (0.5 Hz).
        let g = 10f64.powf(6.0 / 20.0 * (2.0 * PI * 0.5 * i as f64 / 48_000.0).sin());
        *x = (f64::from(*x) * g * 0.5) as f32;
    }
    let r = analyze(&s, RATE);
    assert_eq!(r.events, vec![], "{r:#?}");
    let why = Limits::default().reasons(&r);
    assert!(
        why.iter().any(|w| w.contains("level unsteady")),
        "{why:?}: {r:#?}"
    );
}

#[test]
fn noise_or_silence_is_no_tone() {
    let mut x: u32 = 1;
    let noise: Vec<f32> = (0..RATE as usize * 2)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (f64::from(x) / f64::from(u32::MAX) - 0.5) as f32 * 0.5
        })
        .collect();
    assert!(!analyze(&noise, RATE).found);
    assert!(!analyze(&vec![0.0; RATE as usize], RATE).found);
}

#[test]
fn blocks_of_any_size_give_the_same_report() {
    let mut s = stream(3.0);
    s[70_000..70_480].fill(0.0);
    let whole = analyze(&s, RATE);
    let mut a = Analyzer::new(RATE);
    for chunk in s.chunks(997) {
        a.push(chunk);
    }
    assert_eq!(a.finish(), whole);
}

#[test]
fn at_8_khz_a_gap_and_a_lost_sample_are_found_too() {
    let mut s = render(8_000, 5.0);
    s[16_000..16_080].fill(0.0);
    s.remove(24_000);
    let r = analyze(&s, 8_000);
    let kinds: Vec<EventKind> = r.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Gap, EventKind::Glitch], "{r:#?}");
    assert!((r.events[0].length_ms - 10.0).abs() <= 2.5, "{r:#?}");
    assert!((r.events[1].slip_samples - -1.0).abs() < 0.2, "{r:#?}");
}

#[test]
fn the_stream_ends_without_an_event_and_leading_silence_is_skipped() {
    let mut s = vec![0.0; 24_000];
    s.extend(stream(2.0));
    s.extend(vec![0.0; 24_000]);
    let r = analyze(&s, RATE);
    assert_eq!(r.events, vec![], "{r:#?}");
    let start = r.tone_start_ms.unwrap();
    assert!((start - 500.0).abs() < 15.0, "{start}");
}

#[test]
fn limits_name_every_reason() {
    let mut r = analyze(&stream(2.0), RATE);
    assert!(Limits::default().reasons(&r).is_empty());
    r.drift_ppm = Some(1500.0);
    r.events.push(Event {
        kind: EventKind::Gap,
        at_ms: 10.0,
        file_ms: 10.0,
        length_ms: 5.0,
        depth_db: -80.0,
        slip_samples: 0.0,
    });
    let why = Limits::default().reasons(&r);
    assert_eq!(why.len(), 2, "{why:?}");
    assert!(why[0].contains("1 gap(s) and 0 glitch(es)"), "{why:?}");
    assert!(why[1].contains("+1500 ppm"), "{why:?}");
}
