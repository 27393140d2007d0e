//! Arbitrary and mutated bytes for every parser: an error or a result, never a panic.
//! (`harness/fuzz` runs the same entry points under libFuzzer.)

use super::registry_pol::writer::{entry, file, sz};
use super::{read_hostpool, read_session_host};

/// Files written by real tools (harness/tests/data/import/make-fixtures.sh).
const SAMBA_POL: &[u8] = include_bytes!("../../tests/data/import/samba-gpo-blocks-playback.pol");
const WINE_REG: &[u8] = include_bytes!("../../tests/data/import/wine-reg-export.reg");

/// xorshift64*: a fixed seed, so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four random edits of `seed`: byte changes, cuts, insertions, copies, and
/// extreme 32-bit numbers (where a size or type would be).
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(b.len() + 1);
        let last = b.len().saturating_sub(1);
        match rng.below(7) {
            0 if !b.is_empty() => b[at.min(last)] ^= 1 << rng.below(8),
            1 if !b.is_empty() => b[at.min(last)] = rng.next() as u8,
            2 => b.truncate(at),
            3 => {
                let n = rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at..at, bytes);
            }
            4 if !b.is_empty() => {
                let from = rng.below(b.len());
                let to = (from + rng.below(64)).min(b.len());
                let chunk = b[from..to].to_vec();
                b.splice(at..at, chunk);
            }
            5 if at + 4 <= b.len() => {
                let v = [0, 1, 3, 0x7fff_ffff, u32::MAX][rng.below(5)];
                b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ if at < b.len() => {
                let to = (at + rng.below(16)).min(b.len());
                b.drain(at..to);
            }
            _ => {}
        }
    }
    b
}

#[test]
fn mutated_policy_files_give_an_error_or_a_result_never_a_panic() {
    let reg_utf8 = "Windows Registry Editor Version 5.00\r\n\r\n\
        [HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services]\r\n\
        \"fDisableCam\"=dword:00000001\r\n\"Multi\"=hex(7):41,00,00,00,\\\r\n  00,00\r\n\
        \"x\"=-\r\n[-HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\Windows]\r\n";
    let ts = r"Software\Policies\Microsoft\Windows NT\Terminal Services";
    let hand_made = file(&[
        entry(ts, "fDisableCam", 4, &1u32.to_le_bytes()),
        entry(ts, "**DeleteValues", 1, &sz("fDisableAudioCapture;x")),
        entry(r"Software\Policies", "**DeleteKeys", 1, &sz("Microsoft")),
    ]);
    let seeds: [&[u8]; 4] = [SAMBA_POL, WINE_REG, reg_utf8.as_bytes(), &hand_made];
    let mut rng = Rng(0x5eed_1e55_ea75_0001);
    let (mut ok, mut err) = (0, 0);
    for case in 0..6000 {
        let seed = seeds[case % seeds.len()];
        let bytes = mutate(&mut rng, seed);
        match read_session_host(&bytes, "fuzz.pol") {
            Ok(i) => {
                assert!(i.ignored <= i.records, "case {case}: {i:?}");
                assert!(i.settings.len() <= 4, "case {case}: {i:?}");
                ok += 1;
            }
            Err(e) => {
                let text = e.to_string();
                assert!(
                    text.starts_with("fuzz.pol: ") && text.len() > 12,
                    "case {case}: {text}"
                );
                err += 1;
            }
        }
    }
    // Both outcomes were exercised, so the cases reached past the header checks.
    assert!(ok > 300 && err > 300, "ok {ok}, err {err}");
}

#[test]
fn random_bytes_after_a_valid_header_never_panic() {
    let mut rng = Rng(0x00dd_b17e_5000_0002);
    for case in 0..3000 {
        let mut bytes = if case % 2 == 0 {
            b"PReg\x01\x00\x00\x00".to_vec()
        } else {
            b"Windows Registry Editor Version 5.00\n".to_vec()
        };
        let n = rng.below(200);
        // Mostly the format's own characters, so the parsers get deep.
        let alphabet: &[u8] = if case % 2 == 0 {
            &[b'[', b';', b']', 0, 0, 0, 1, 4, b'A', 0xd8, 0xdc, 0xff]
        } else {
            b"[]\"=-@\\,:;\n\r hexdword(7)01fF\xe9"
        };
        bytes.extend((0..n).map(|_| alphabet[rng.below(alphabet.len())]));
        if let Err(e) = read_session_host(&bytes, "r") {
            assert!(e.to_string().starts_with("r: "), "case {case}: {e}");
        }
    }
}

#[test]
fn mutated_host_pool_json_never_panics() {
    let seed = br#"{"name": "pool", "properties": {"customRdpProperty": "audiomode:i:0;audiocapturemode:i:1;"}, "customRdpProperty": null}"#;
    let mut rng = Rng(0x000a_ce0f_5ade_0003);
    let (mut ok, mut err) = (0, 0);
    for case in 0..3000 {
        let bytes = mutate(&mut rng, seed);
        match read_hostpool(&bytes, "h.json") {
            Ok(p) => {
                assert!(p.line >= 1, "case {case}");
                ok += 1;
            }
            Err(e) => {
                assert!(e.to_string().starts_with("h.json: "), "case {case}: {e}");
                err += 1;
            }
        }
    }
    assert!(ok > 100 && err > 100, "ok {ok}, err {err}");
}
