use super::*;

fn lead(rate: u32, ms: u32, mut body: Vec<f32>) -> Vec<f32> {
    let mut v = vec![0.0; (rate as usize * ms as usize) / 1000];
    v.append(&mut body);
    v.resize(v.len() + rate as usize / 4, 0.0);
    v
}

/// A windowed-sinc low-pass (Blackman, 511 taps) at `cut_hz`.
fn low_pass(x: &[f32], rate: u32, cut_hz: f64) -> Vec<f32> {
    let taps = 511usize;
    let fc = cut_hz / f64::from(rate);
    let m = (taps - 1) as f64;
    let h: Vec<f64> = (0..taps)
        .map(|i| {
            let t = i as f64 - m / 2.0;
            let sinc = if t == 0.0 {
                2.0 * fc
            } else {
                (2.0 * PI * fc * t).sin() / (PI * t)
            };
            let w = 0.42 - 0.5 * (2.0 * PI * i as f64 / m).cos()
                + 0.08 * (4.0 * PI * i as f64 / m).cos();
            sinc * w
        })
        .collect();
    (0..x.len())
        .map(|n| {
            h.iter()
                .enumerate()
                .filter(|(k, _)| *k <= n)
                .map(|(k, c)| c * f64::from(x[n - k]))
                .sum::<f64>() as f32
        })
        .collect()
}

/// G.711 µ-law, encoded and decoded (the continuous law, quantized to 8 bits).
fn mu_law(x: &[f32]) -> Vec<f32> {
    let mu = 255.0f64;
    x.iter()
        .map(|&s| {
            let s = f64::from(s).clamp(-1.0, 1.0);
            let y = s.signum() * (1.0 + mu * s.abs()).ln() / (1.0 + mu).ln();
            let q = (y * 127.0).round() / 127.0;
            (q.signum() * ((1.0 + mu).powf(q.abs()) - 1.0) / mu) as f32
        })
        .collect()
}

fn noise(len: usize, amplitude: f64, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * amplitude as f32
        })
        .collect()
}

#[test]
fn a_clean_copy_is_high_with_every_tone_the_played_level_and_the_step() {
    for rate in [44_100, 48_000, 96_000] {
        let r = analyze(&lead(rate, 300, render(rate)), rate);
        assert!(r.found, "{rate}: {r:?}");
        assert_eq!(r.class, QualityClass::High, "{rate}: {}", r.summary());
        assert_eq!(r.band_edge_hz, Some(18979.0));
        assert_eq!(r.rate_class, Some(RateClass::Fullband));
        assert!(r.holes_hz.is_empty());
        assert!(r.sinad_db.unwrap() > 80.0, "{rate}: {}", r.summary());
        assert!(r.gain_db.unwrap().abs() < 0.5, "{rate}: {}", r.summary());
        assert!(
            (r.step_db.unwrap() - STEP_DB).abs() < 0.5,
            "{rate}: {}",
            r.summary()
        );
        assert!(r.digital_silence);
        assert!(r.codec_signs.is_empty(), "{rate}: {}", r.summary());
        let at = r.at_ms.unwrap();
        assert!((250.0..=300.0).contains(&at), "{rate}: found at {at} ms");
    }
}

#[test]
fn the_signal_stays_under_full_scale_and_as_long_as_documented() {
    let s = render(48_000);
    assert_eq!(s.len(), 48 * duration_ms() as usize);
    let peak = s.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
    assert!(peak < 0.7, "peak {peak}");
}

#[test]
fn gain_and_a_quiet_path_are_measured() {
    let rate = 48_000;
    let quiet: Vec<f32> = render(rate).iter().map(|s| s * 0.316).collect();
    let r = analyze(&lead(rate, 200, quiet), rate);
    assert!((r.gain_db.unwrap() + 10.0).abs() < 0.5, "{}", r.summary());
    assert_eq!(r.class, QualityClass::High);
}

#[test]
fn band_limits_are_the_rate_classes() {
    let rate = 48_000;
    let clean = lead(rate, 200, render(rate));
    for (cut, class, rate_class, edge) in [
        (3_800.0, QualityClass::Low, RateClass::Rate8k, 3391.0),
        (7_500.0, QualityClass::Medium, RateClass::Rate16k, 6791.0),
        (10_800.0, QualityClass::Medium, RateClass::Rate22k, 10009.0),
        (15_500.0, QualityClass::Medium, RateClass::Rate32k, 13999.0),
    ] {
        let r = analyze(&low_pass(&clean, rate, cut), rate);
        assert_eq!(r.class, class, "{cut}: {}", r.summary());
        assert_eq!(r.rate_class, Some(rate_class), "{cut}: {}", r.summary());
        assert_eq!(r.band_edge_hz, Some(edge), "{cut}");
        assert!(r.codec_signs.contains(&CodecSign::BandLimited));
        assert!(r.holes_hz.is_empty(), "{cut}: {:?}", r.holes_hz);
        assert!(r.sinad_db.unwrap() > 50.0, "{cut}: {}", r.summary());
    }
}

#[test]
fn mu_law_is_fullband_but_noisy_under_the_signal() {
    let rate = 48_000;
    let r = analyze(&mu_law(&lead(rate, 200, render(rate))), rate);
    assert_eq!(r.band_edge_hz, Some(18979.0), "{}", r.summary());
    let sinad = r.sinad_db.unwrap();
    assert!((25.0..45.0).contains(&sinad), "{}", r.summary());
    assert_eq!(r.class, QualityClass::Medium, "{}", r.summary());
    assert!(
        r.codec_signs.contains(&CodecSign::NoiseUnderSignal),
        "{}",
        r.summary()
    );
}

#[test]
fn a_missing_band_is_a_hole() {
    let rate = 48_000;
    let n = rate as usize * FULL_MS as usize / 1000;
    // The full part again with 5519 Hz taken out, then silence and the step as played.
    let mut s = render(rate);
    let w = 2.0 * PI * TONES_HZ[9] / f64::from(rate);
    let fade = (FADE_MS / 1000.0 * f64::from(rate)) as usize;
    for (i, x) in s[..n].iter_mut().enumerate() {
        let edge = i.min(n - 1 - i);
        let g = if edge < fade {
            0.5 - 0.5 * (PI * edge as f64 / fade as f64).cos()
        } else {
            1.0
        };
        *x -=
            (TONE_AMPLITUDE * g * (w * i as f64 + schroeder_phase(9, TONES_HZ.len())).sin()) as f32;
    }
    let r = analyze(&lead(rate, 100, s), rate);
    assert_eq!(r.holes_hz, vec![TONES_HZ[9]], "{}", r.summary());
    assert!(r.codec_signs.contains(&CodecSign::SpectralHoles));
    assert_eq!(r.class, QualityClass::Medium, "{}", r.summary());
    assert!(!r.tones[9].carried);
}

#[test]
fn a_compressor_shows_in_the_step() {
    let rate = 48_000;
    let n_full = rate as usize * (FULL_MS + SILENCE_MS) as usize / 1000;
    let mut s = render(rate);
    s[n_full..].iter_mut().for_each(|x| *x *= 3.16);
    let r = analyze(&lead(rate, 100, s), rate);
    assert!((r.step_db.unwrap() + 10.0).abs() < 0.5, "{}", r.summary());
    assert!(r.codec_signs.contains(&CodecSign::LevelChanged));
}

#[test]
fn background_noise_sets_the_floor_and_the_sinad() {
    let rate = 48_000;
    let clean = lead(rate, 200, render(rate));
    // White noise at -60 dBFS RMS (peak amplitude a of uniform noise: RMS a / sqrt 3).
    let a = 1e-3 * 3f64.sqrt() / 2f64.sqrt();
    let hiss = noise(clean.len(), a, 7);
    let noisy: Vec<f32> = clean.iter().zip(&hiss).map(|(s, n)| s + n).collect();
    let r = analyze(&noisy, rate);
    let floor = r.noise_floor_dbfs.unwrap();
    assert!((floor + 60.0).abs() < 1.0, "{}", r.summary());
    assert!(!r.digital_silence);
    // Tones at -26 dBFS each, 17 of them: -13.7 dBFS against -60: about 46 dB.
    let sinad = r.sinad_db.unwrap();
    assert!((sinad - 46.3).abs() < 2.0, "{}", r.summary());
    assert!(
        !r.codec_signs.contains(&CodecSign::NoiseUnderSignal),
        "{}",
        r.summary()
    );
}

#[test]
fn silence_noise_and_a_signature_are_not_the_signal() {
    let rate = 48_000;
    let sig = crate::signal::Signature::new(42, crate::signal::Direction::Output)
        .render(rate)
        .unwrap();
    for (what, x) in [
        ("silence", vec![0.0; rate as usize * 2]),
        ("noise", noise(rate as usize * 2, 0.3, 3)),
        ("signature", lead(rate, 100, sig)),
        ("too short", vec![0.1; 100]),
    ] {
        let r = analyze(&x, rate);
        assert!(!r.found, "{what}: {}", r.summary());
        assert_eq!(r.class, QualityClass::Poor);
    }
}

#[test]
fn an_8k_recording_is_measured_for_what_it_can_hold() {
    // Played at 8 kHz (the tones above 4 kHz cannot exist there).
    let r = analyze(&lead(8_000, 200, render(8_000)), 8_000);
    assert!(r.found, "{}", r.summary());
    assert_eq!(r.band_edge_hz, Some(3391.0));
    assert_eq!(r.class, QualityClass::Low);
}

#[test]
fn the_best_channel_is_the_one_with_the_signal() {
    let rate = 48_000;
    let s = lead(rate, 100, render(rate));
    let interleaved: Vec<f32> = s.iter().flat_map(|&x| [0.0, x]).collect();
    let (ch, r) = analyze_interleaved(&interleaved, 2, rate);
    assert_eq!(ch, 1);
    assert_eq!(r.class, QualityClass::High);
}

#[test]
fn the_report_round_trips_as_json() {
    let rate = 48_000;
    let r = analyze(&lead(rate, 100, render(rate)), rate);
    let text = serde_json::to_string(&r).unwrap();
    let back: QualityReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back.class, r.class);
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
    assert!(text.contains("\"class\":\"high\""), "{text}");
}

/// `x` played at `speed` times its rate (linear interpolation; 0.5 doubles its length).
fn at_speed(x: &[f32], speed: f64) -> Vec<f32> {
    let n = (x.len() as f64 / speed) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 * speed;
            let k = t as usize;
            let f = (t - k as f64) as f32;
            let a = x.get(k).copied().unwrap_or(0.0);
            let b = x.get(k + 1).copied().unwrap_or(0.0);
            a + (b - a) * f
        })
        .collect()
}

#[test]
fn a_signal_at_half_or_twice_its_speed_is_found_and_said_poor() {
    let rate = 48_000;
    let clean = lead(rate, 200, render(rate));
    for speed in [0.5, 2.0] {
        // Twice the speed needs the recording at twice the rate to keep the top tones.
        let (x, r_hz) = if speed > 1.0 {
            (at_speed(&lead(96_000, 200, render(96_000)), speed), 96_000)
        } else {
            (at_speed(&clean, speed), rate)
        };
        let r = analyze(&x, r_hz);
        assert!(r.found, "{speed}: {}", r.summary());
        assert_eq!(r.speed, Some(speed), "{}", r.summary());
        assert_eq!(r.class, QualityClass::Poor, "{}", r.summary());
        assert_eq!(r.codec_signs[0], CodecSign::WrongSpeed, "{}", r.summary());
        assert!(r.summary().contains(&format!("arrived at {speed}× speed")));
    }
    // At its own speed, no speed is reported.
    assert_eq!(analyze(&clean, rate).speed, None);
}
