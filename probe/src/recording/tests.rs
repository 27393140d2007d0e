use super::*;
use crate::analysis::{analyze_channels, ChannelDetectors};
use crate::signal::{impair, Direction, Signature};
use crate::wav::{self, Audio, WavEncoding};

/// A stereo recording: the signature of `seed` on channel 2 at 0.5 s, noise on both.
fn stereo(rate: u32, seconds: f64, seed: u64) -> Audio {
    let sig = Signature::new(seed, Direction::Output)
        .render(rate)
        .unwrap();
    let frames = (f64::from(rate) * seconds) as usize;
    let noise = impair::white_noise(frames * 2, 5);
    let mut samples: Vec<f32> = noise.iter().map(|v| v * 0.01).collect();
    let at = rate as usize / 2;
    for (i, v) in sig.iter().enumerate() {
        samples[(at + i) * 2 + 1] += v;
    }
    Audio {
        sample_rate_hz: rate,
        channels: 2,
        samples,
    }
}

fn read_all(path: &Path) -> Result<(RecordingInfo, Vec<Vec<f32>>), RecordingError> {
    let mut r = RecordingReader::open(path)?;
    let mut out = vec![Vec::new(); usize::from(r.info().channels)];
    while let Some(planes) = r.next_block()? {
        for (o, p) in out.iter_mut().zip(planes) {
            o.extend_from_slice(p);
        }
    }
    Ok((r.info().clone(), out))
}

#[test]
fn float_wav_decodes_sample_exact_and_streaming_matches_the_whole_file_analysis() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sig-ch2-16kHz-f32-stereo.wav");
    let audio = stereo(16_000, 3.0, 11);
    wav::write(&path, &audio, WavEncoding::F32).unwrap();
    let (info, planes) = read_all(&path).unwrap();
    assert_eq!((info.sample_rate_hz, info.channels), (16_000, 2));
    assert_eq!(info.declared_frames, Some(audio.frames() as u64));
    assert_eq!(planes[0], audio.channel(0));
    assert_eq!(planes[1], audio.channel(1));

    let sig = Signature::new(11, Direction::Output);
    let whole = analyze_channels(&audio, &sig).unwrap();
    let mut r = RecordingReader::open(&path).unwrap();
    let mut d = ChannelDetectors::new(&sig, 16_000, 2).unwrap();
    while let Some(planes) = r.next_block().unwrap() {
        d.push_planar(planes);
    }
    let mut streamed = d.analysis();
    // Blocks of a different size sum the squares in another order: the RMS may differ
    // in its last bits, every other figure is identical.
    for (s, w) in streamed.channels.iter_mut().zip(&whole.channels) {
        assert!((s.rms_dbfs - w.rms_dbfs).abs() < 1e-9);
        s.rms_dbfs = w.rms_dbfs;
    }
    streamed.best.rms_dbfs = whole.best.rms_dbfs;
    assert_eq!(streamed, whole);
    assert!(streamed.best.detected);
    assert_eq!(streamed.best_channel_number(), 2);
}

/// Constant memory at any length, shown without timing: the reader's block buffers
/// never hold more than one packet, and the detectors' buffers stay under a bound
/// that does not depend on how long the recording is.
#[test]
fn a_long_recording_never_holds_more_than_one_packet_and_bounded_detector_state() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("noise-90s-48kHz-s16-stereo.wav");
    let rate = 48_000;
    let audio = stereo(rate, 90.0, 12);
    wav::write(&path, &audio, WavEncoding::I16).unwrap();
    drop(audio);
    let sig = Signature::new(12, Direction::Output);
    let mut r = RecordingReader::open(&path).unwrap();
    let max_block = r.max_block_frames();
    assert!(
        max_block <= 1152,
        "WAV packets are 1152 frames: {max_block}"
    );
    let reader_bound = 2 * max_block;
    // The input waiting for the decimation filter (< 8192 + taps + one block) and the
    // decimated audio waiting for the next frame (< 16384 + one block), per channel,
    // with Vec's doubling on top, for each speed searched.
    let speeds = 1 + crate::analysis::SPEED_CANDIDATES.len();
    let detector_bound = speeds * 2 * 2 * (8_192 + 512 + 16_384 + 2 * max_block);
    let mut d = ChannelDetectors::new(&sig, rate, 2).unwrap();
    let mut blocks = 0;
    let mut peak = 0;
    while let Some(planes) = r.next_block().unwrap() {
        assert!(planes.iter().all(|p| p.len() <= max_block));
        d.push_planar(planes);
        blocks += 1;
        assert!(
            r.buffered_samples() <= reader_bound,
            "reader holds {} samples after block {blocks}",
            r.buffered_samples()
        );
        peak = peak.max(d.buffered_samples());
        assert!(
            peak <= detector_bound,
            "detectors hold {peak} samples after block {blocks}"
        );
    }
    assert_eq!(r.frames_read(), 90 * u64::from(rate));
    // 90 s stereo is 8.6 M samples; what is held is a few tens of thousands per speed
    // searched.
    assert!(peak * 16 < 90 * rate as usize * 2, "{peak}");
    assert!(d.analysis().best.detected);
}

#[test]
fn an_empty_file_or_an_empty_wav_is_named_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let e = RecordingReader::open(&empty).unwrap_err();
    assert!(matches!(e, RecordingError::Empty { .. }), "{e}");
    assert!(e.to_string().contains("empty.wav holds no audio"), "{e}");

    let no_frames = tmp.path().join("no-frames.wav");
    wav::write(
        &no_frames,
        &Audio::mono(8_000, Vec::new()),
        WavEncoding::I16,
    )
    .unwrap();
    let e = read_all(&no_frames).unwrap_err();
    assert!(matches!(e, RecordingError::Empty { .. }), "{e}");
    assert!(e.to_string().contains("no-frames.wav"), "{e}");
}

#[test]
fn a_truncated_wav_says_how_much_was_read_of_how_much() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("cut.wav");
    let bytes = wav::to_bytes(&Audio::mono(8_000, vec![0.25; 8_000]), WavEncoding::I16).unwrap();
    std::fs::write(&path, &bytes[..44 + 8_000]).unwrap();
    let e = read_all(&path).unwrap_err();
    assert!(matches!(e, RecordingError::Truncated { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("cut.wav ends early (truncated) after 500 ms"),
        "{msg}"
    );
    assert!(msg.contains("of the 1000 ms its header declares"), "{msg}");
}

#[test]
fn a_wav_header_with_absurd_figures_is_refused_before_any_decoder_sees_it() {
    let tmp = tempfile::tempdir().unwrap();
    let good = wav::to_bytes(&Audio::mono(8_000, vec![0.0; 800]), WavEncoding::I16).unwrap();
    for (offset, value, words) in [
        (
            22usize,
            40_000u32.to_le_bytes()[..2].to_vec(),
            "declares 40000 channels",
        ),
        (24, 0u32.to_le_bytes().to_vec(), "sample rate of 0 Hz"),
        (34, 200u16.to_le_bytes().to_vec(), "200 bits per sample"),
    ] {
        let mut bytes = good.clone();
        bytes[offset..offset + value.len()].copy_from_slice(&value);
        let path = tmp.path().join("odd.wav");
        std::fs::write(&path, &bytes).unwrap();
        let e = RecordingReader::open(&path).unwrap_err();
        assert!(
            matches!(e, RecordingError::Damaged { .. }) && e.to_string().contains(words),
            "{e}"
        );
    }
}

#[test]
fn unsupported_files_name_what_they_are_and_what_is_supported() {
    let tmp = tempfile::tempdir().unwrap();
    // A WAV whose format tag says GSM 6.10.
    let mut gsm = wav::to_bytes(&Audio::mono(8_000, vec![0.0; 800]), WavEncoding::I16).unwrap();
    gsm[20] = 0x31;
    let path = tmp.path().join("gsm.wav");
    std::fs::write(&path, &gsm).unwrap();
    let e = RecordingReader::open(&path).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, RecordingError::UnsupportedCodec { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("gsm.wav: WAV with GSM 6.10 (format tag 0x0031) audio is not supported"),
        "{msg}"
    );
    assert!(msg.contains(SUPPORTED), "{msg}");

    let aiff = tmp.path().join("x.aiff");
    std::fs::write(&aiff, b"FORM\0\0\0\x20AIFFCOMM\0\0\0\x12\0\x01").unwrap();
    let msg = RecordingReader::open(&aiff).unwrap_err().to_string();
    assert!(
        msg.contains("x.aiff: AIFF is not supported: expected WAV"),
        "{msg}"
    );

    let text = tmp.path().join("notes.mp3");
    std::fs::write(&text, b"these are not the samples you are looking for").unwrap();
    let msg = RecordingReader::open(&text).unwrap_err().to_string();
    assert!(
        msg.contains("notes.mp3: not a recognised audio file"),
        "{msg}"
    );

    let e = RecordingReader::open(Path::new("/nonexistent/earshot.flac")).unwrap_err();
    assert!(matches!(e, RecordingError::Open { .. }));
    assert!(e.to_string().contains("/nonexistent/earshot.flac"), "{e}");
}

#[test]
fn nan_in_a_float_wav_is_refused_with_channel_and_time() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("nan.wav");
    let mut samples = vec![0.0f32; 2 * 8_000];
    samples[2 * 4_000 + 1] = f32::NAN;
    let audio = Audio {
        sample_rate_hz: 8_000,
        channels: 2,
        samples,
    };
    wav::write(&path, &audio, WavEncoding::F32).unwrap();
    let msg = read_all(&path).unwrap_err().to_string();
    assert!(
        msg.contains("nan.wav: channel 2 has a sample that is not a finite number at 500.0 ms"),
        "{msg}"
    );
}
