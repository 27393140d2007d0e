//! The parsers' fuzz targets, and a mutation driver that runs them on stable Rust.
//!
//! Each target is a function of arbitrary bytes that must not panic and whose error must
//! name its input. The libFuzzer crates (`probe/fuzz`, `harness/fuzz`) call the same
//! functions under coverage guidance (nightly); [`drive`] feeds them mutated seed files
//! for a few seconds in the normal test suite, so every `make test` fuzzes every parser.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The most bytes a mutated input grows to: parsers are fuzzed, not the allocator.
const MAX_INPUT: usize = 64 * 1024;

/// A small, fast, seeded generator (xorshift64*): the same seed, the same inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next value.
    pub fn step(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value below `n` (0 for `n` = 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.step() % n as u64) as usize
        }
    }
}

/// Changes `data` by one to four mutations: bit flips, interesting bytes and numbers,
/// inserted, deleted, duplicated or swapped ranges, a token of `dictionary` inserted or
/// written over, a splice with `other`, a cut.
pub fn mutate(data: &mut Vec<u8>, other: &[u8], dictionary: &[&[u8]], rng: &mut Rng) {
    const INTERESTING: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, b'\n', b'"', b'=', b'[', b'\\'];
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(11) {
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                data[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.step() as u8).collect();
                data.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                data.drain(at..at + n);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(256));
                let copy = data[at..at + n].to_vec();
                let to = rng.below(len + 1);
                data.splice(to..to, copy);
            }
            5 | 6 if !dictionary.is_empty() => {
                let token = dictionary[rng.below(dictionary.len())];
                let at = rng.below(len + 1);
                if rng.below(2) == 0 || at + token.len() > len {
                    data.splice(at..at, token.iter().copied());
                } else {
                    data[at..at + token.len()].copy_from_slice(token);
                }
            }
            7 if len >= 4 => {
                // A little-endian number at a random place: sizes and counts in headers.
                let at = rng.below(len - 3);
                let value: u32 = [0, 1, 0xffff, 0xffff_ffff, 0x8000_0000, 40_000, 7][rng.below(7)];
                data[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            8 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            9 if len > 0 => data.truncate(rng.below(len)),
            10 if len > 1 => {
                let (a, b) = (rng.below(len), rng.below(len));
                data.swap(a, b);
            }
            _ => data.push(rng.step() as u8),
        }
    }
    data.truncate(MAX_INPUT);
}

/// How long a test drives each target: `EARSHOT_FUZZ_SECS` seconds (a decimal), 2 by
/// default.
pub fn budget() -> Duration {
    let secs = std::env::var("EARSHOT_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

/// What [`drive`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Driven {
    /// Inputs given to the target.
    pub runs: u64,
}

/// Feeds `target` the `seeds` as they are, then mutations of them (see [`mutate`]) until
/// `budget` has passed. A panic is caught: the input that caused it is written to
/// `failures` (`NAME-<n>.bin`) and the panic is raised again naming that file, so that
/// the failure can be replayed.
///
/// # Panics
/// When the target panics (after saving its input), or when there is no seed.
pub fn drive(
    name: &str,
    seeds: &[Vec<u8>],
    dictionary: &[&[u8]],
    budget: Duration,
    failures: &Path,
    mut target: impl FnMut(&[u8]),
) -> Driven {
    assert!(!seeds.is_empty(), "{name}: no seed input");
    let mut rng = Rng::new(name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }));
    let start = Instant::now();
    let mut runs = 0u64;
    let mut one = |input: &[u8], runs: &mut u64| {
        *runs += 1;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(input))) {
            let file = save_failure(failures, name, input);
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "fuzz target {name} panicked after {runs} input(s): {why}; the input is {}",
                file.display()
            );
        }
    };
    for s in seeds {
        one(s, &mut runs);
    }
    while start.elapsed() < budget {
        let mut input = seeds[rng.below(seeds.len())].clone();
        let other = &seeds[rng.below(seeds.len())];
        // A few generations deep: mutations of mutations reach further from the seeds.
        for _ in 0..1 + rng.below(3) {
            mutate(&mut input, other, dictionary, &mut rng);
            one(&input, &mut runs);
        }
    }
    Driven { runs }
}

fn save_failure(dir: &Path, name: &str, input: &[u8]) -> PathBuf {
    let _ = std::fs::create_dir_all(dir);
    let mut n = 0;
    loop {
        let file = dir.join(format!("{name}-{n}.bin"));
        if !file.exists() {
            let _ = std::fs::write(&file, input);
            return file;
        }
        n += 1;
    }
}

/// The fuzz target of the frame decoder and the message parsers: arbitrary bytes as a
/// stream of frames; no input may panic them, and no decoded frame may exceed the cap or
/// the input.
pub fn frame_decoder(data: &[u8]) {
    use crate::proto::frame::{decode, HEADER};
    use crate::proto::msg::{Handshake, Request, Response};
    use crate::proto::{HANDSHAKE_MAX_FRAME, MAX_FRAME};
    for max in [HANDSHAKE_MAX_FRAME, MAX_FRAME] {
        let mut rest = data;
        while let Ok(Some((body, used))) = decode(rest, max) {
            assert!(body.len() <= max && used == body.len() + HEADER && used <= rest.len());
            let _ = serde_json::from_slice::<Handshake>(body);
            let _ = serde_json::from_slice::<Request>(body);
            let _ = serde_json::from_slice::<Response>(body);
            rest = &rest[used..];
        }
    }
}

/// The fuzz target of the protected channel's opener: arbitrary bytes never panic it and
/// never authenticate; a genuine sealed frame altered anywhere is refused as tampering,
/// and opens to exactly what was sealed when left alone.
pub fn sealed_frame(data: &[u8]) {
    use crate::proto::channel::{Chunk, Opener, Payload, Sealer, MAX_SEALED};
    use crate::proto::frame::{decode, HEADER};
    use crate::proto::ProtoError;
    const KEY: [u8; 32] = [0x5a; 32];
    let mut opener = Opener::new(&KEY, "the fuzzer");
    let mut rest = data;
    while let Ok(Some((body, used))) = decode(rest, MAX_SEALED) {
        assert!(body.len() <= MAX_SEALED && used <= rest.len());
        let r = opener.open(body.to_vec());
        assert!(matches!(r, Err(ProtoError::Tampered { .. })));
        rest = &rest[used..];
    }
    // A genuine frame, altered (or not) where the input says.
    let Some((ctl, payload)) = data.split_first_chunk::<3>() else {
        return;
    };
    let mut sealer = Sealer::new(&KEY);
    let chunk = ctl[0] & 1 == 1;
    let frame = if chunk {
        sealer.seal_chunk(7, 4096, payload)
    } else {
        sealer.seal_msg(payload)
    };
    let Ok(frame) = frame else {
        // Only a payload past the frame cap is refused, and fuzz inputs are far below it.
        panic!("a payload of {} bytes was refused", payload.len());
    };
    let mut body = frame[HEADER..].to_vec();
    let at = usize::from(u16::from_be_bytes([ctl[1], ctl[2]])) % body.len();
    let flip = ctl[0] >> 1;
    body[at] ^= flip;
    let r = Opener::new(&KEY, "the fuzzer").open(body);
    if flip == 0 {
        let want = if chunk {
            Payload::Chunk(Chunk {
                id: 7,
                offset: 4096,
                data: payload.to_vec(),
            })
        } else {
            Payload::Msg(payload.to_vec())
        };
        assert_eq!(r.ok(), Some(want));
    } else {
        assert!(matches!(r, Err(ProtoError::Tampered { .. })));
    }
}

/// The fuzz target of `analyze`'s input: `path` (any bytes) opened as a recording, every
/// block decoded and searched for a signature on every channel. No file may panic the
/// reader or the detectors; an error names the file; a recording that opens has a rate
/// and at least one channel, and never more decoded frames than a bound of its size.
/// Returns whether the file opened as a recording (a driver checks that its inputs reach
/// the decoders, not only the header checks).
#[cfg(feature = "formats")]
pub fn analyze_file(path: &Path) -> bool {
    use crate::analysis::ChannelDetectors;
    use crate::recording::RecordingReader;
    use crate::signal::{Direction, Signature};
    let named = |e: &dyn std::fmt::Display| {
        let text = e.to_string();
        assert!(
            text.contains(&path.display().to_string()),
            "an error that does not name the file: {text}"
        );
    };
    let mut reader = match RecordingReader::open(path) {
        Ok(r) => r,
        Err(e) => {
            named(&e);
            return false;
        }
    };
    let info = reader.info().clone();
    assert!(info.sample_rate_hz > 0 && info.channels > 0, "{info:?}");
    let detectors = ChannelDetectors::new(
        &Signature::new(1, Direction::Output),
        info.sample_rate_hz,
        info.channels,
    );
    let mut detectors = detectors.ok();
    // Compressed formats expand: a bound generous enough for any codec here.
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let bound = size.saturating_mul(4096).max(1 << 20);
    loop {
        match reader.next_block() {
            Ok(Some(planes)) => {
                if let Some(d) = detectors.as_mut() {
                    d.push_planar(planes);
                }
            }
            Ok(None) => break,
            Err(e) => {
                named(&e);
                return true;
            }
        }
        assert!(
            reader.frames_read() <= bound,
            "{} frames from {size} bytes",
            reader.frames_read()
        );
    }
    if let Some(d) = detectors.as_mut() {
        let a = d.analysis();
        assert!(a.best.confidence.is_finite(), "{:?}", a.best);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_change_inputs_stay_bounded_and_repeat_for_a_seed() {
        let seed = b"name = \"x\"\nproduct = \"avd\"\n".to_vec();
        let run = |s: u64| {
            let mut rng = Rng::new(s);
            let mut data = seed.clone();
            let mut changed = 0;
            for _ in 0..1000 {
                let before = data.clone();
                mutate(&mut data, &seed, &[b"[policy]"], &mut rng);
                changed += usize::from(before != data);
                assert!(data.len() <= MAX_INPUT);
            }
            (data, changed)
        };
        let (a, changed) = run(7);
        assert!(
            changed > 900,
            "{changed} of 1000 mutations changed the input"
        );
        assert_eq!(run(7).0, a, "the same seed gives the same inputs");
        assert_ne!(run(8).0, a);
    }

    #[test]
    fn a_target_that_panics_is_caught_with_its_input_saved() {
        let dir = tempfile::tempdir().unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            drive(
                "panics-on-z",
                &[b"abc".to_vec()],
                &[b"z"],
                Duration::from_secs(5),
                dir.path(),
                |input| assert!(!input.contains(&b'z'), "found z"),
            )
        }));
        let panic = outcome.expect_err("the driver finds the z");
        let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            text.contains("panics-on-z panicked") && text.contains("found z"),
            "{text}"
        );
        let saved = std::fs::read(dir.path().join("panics-on-z-0.bin")).unwrap();
        assert!(saved.contains(&b'z'));
    }
}
