//! Every file in scenarios/ parses, validates, and gives the expectation its name promises.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use std::path::{Path, PathBuf};

use earshot_harness::policy::expect;
use earshot_harness::scenario::{CaptureExpect as C, OutputExpect as O, Scenario};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// File stem -> (output, capture) the policy engine must derive.
const EXPECTED: &[(&str, O, C)] = &[
    ("avd-defaults", O::Client, C::Blocked),
    ("avd-continuity", O::Client, C::Blocked),
    ("avd-continuity-capture", O::Client, C::Redirected),
    ("avd-quality-high", O::Client, C::Blocked),
    ("avd-quality-medium", O::Client, C::Blocked),
    ("avd-quality-dynamic", O::Client, C::Blocked),
    ("avd-speech", O::Client, C::Blocked),
    ("avd-play-on-remote-computer", O::Session, C::Blocked),
    ("avd-do-not-play", O::None, C::Blocked),
    ("avd-microphone-enabled", O::Client, C::Redirected),
    ("avd-gpo-blocks-playback", O::None, C::Redirected),
    ("avd-gpo-blocks-recording", O::Client, C::Blocked),
    ("windows365-defaults", O::Client, C::Redirected),
    ("devbox-defaults", O::Client, C::Redirected),
    ("client-disables-microphone", O::Client, C::Blocked),
    ("privacy-denies-apps", O::Client, C::Redirected),
    ("rollout-not-in-effect", O::None, C::Blocked),
    ("audiomode-0-capture-0", O::Client, C::Blocked),
    ("audiomode-0-capture-1", O::Client, C::Redirected),
    ("audiomode-1-capture-0", O::Session, C::Blocked),
    ("audiomode-1-capture-1", O::Session, C::Redirected),
    ("audiomode-2-capture-0", O::None, C::Blocked),
    ("audiomode-2-capture-1", O::None, C::Redirected),
    ("server-rdpsnd-off", O::None, C::Redirected),
    ("quality-high", O::Client, C::Blocked),
    ("server-drdynvc-off", O::Client, C::Blocked),
    ("server-channels-off", O::None, C::Blocked),
    ("policy-blocks-playback", O::None, C::Redirected),
    // Before the host's own layer is read (from_host): the RDP properties alone.
    ("policy-from-host", O::Client, C::Redirected),
    ("avd-imported-gpo-blocks-playback", O::None, C::Redirected),
    (
        "avd-imported-reg-export-blocks-recording",
        O::Client,
        C::Blocked,
    ),
    (
        "avd-imported-hostpool-play-on-remote",
        O::Session,
        C::Redirected,
    ),
];

#[test]
fn every_scenario_parses_and_expects_what_its_name_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let all = files(&root);
    assert!(all.len() >= 15, "{all:?}");
    for f in &all {
        let s = Scenario::load(f).unwrap_or_else(|e| panic!("{e}"));
        let e = expect(&s);
        let stem = f.file_stem().unwrap().to_string_lossy();
        let (_, o, c) = EXPECTED
            .iter()
            .find(|(n, _, _)| *n == stem)
            .unwrap_or_else(|| panic!("{}: add it to EXPECTED", f.display()));
        assert_eq!(e.output.value, *o, "{}", f.display());
        assert_eq!(e.capture.value, *c, "{}", f.display());
        if let Some(rest) = stem.strip_prefix("avd-quality-") {
            assert_eq!(e.quality.value.name(), rest, "{}", f.display());
        }
    }
    // Every rule of the documentation has its scenario.
    for (name, _, _) in EXPECTED {
        assert!(
            all.iter()
                .any(|f| f.file_stem().unwrap().to_string_lossy() == *name),
            "no scenario file for {name}"
        );
    }
}
