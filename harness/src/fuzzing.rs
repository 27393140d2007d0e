//! The harness's fuzz targets: each a function of arbitrary bytes that must not panic and
//! whose error names its input. `harness/fuzz` runs them under libFuzzer (nightly);
//! `tests/fuzz.rs` drives them with mutated real files on stable in every test run
//! (the driver is `earshot_probe::fuzzing::drive`).

use std::path::Path;

use crate::import::{read_hostpool, read_session_host};
use crate::inventory::Inventory;
use crate::policy::{parse_rdp_properties, property_errors};
use crate::scenario::{Purpose, Scenario};

/// Asserts that the error `text` names `what`.
fn names(text: &str, what: &str) {
    assert!(
        text.contains(what),
        "an error that does not name {what}: {text}"
    );
}

/// A scenario file: decoded as scenarios are (UTF-8 or UTF-16), parsed and validated for
/// a run and for `expect`, and its expectation worked out when it parses. Every error
/// names the file; a parsed scenario has a name and a check.
pub fn scenario_toml(data: &[u8]) {
    const FILE: &str = "fuzz.toml";
    let Ok(text) = crate::text::decode(data) else {
        return;
    };
    for purpose in [Purpose::Run, Purpose::Expect] {
        match Scenario::parse_for(&text, Path::new(FILE), purpose) {
            Ok(s) => {
                assert!(!s.name.trim().is_empty() && !s.checks.is_empty());
                let e = crate::policy::expect(&s);
                assert!(!e.output.trail.is_empty() && !e.capture.trail.is_empty());
            }
            Err(e) => names(&e.to_string(), FILE),
        }
    }
}

/// An inventory file in any of its kinds (TOML, CSV, `az` JSON): a loaded inventory has
/// hosts, each named once; an error names the file.
pub fn inventory(data: &[u8]) {
    for file in ["fuzz.csv", "fuzz.toml", "fuzz.json"] {
        match Inventory::parse(Path::new(file), data) {
            Ok(inv) => {
                assert!(!inv.hosts.is_empty());
                let mut keys: Vec<String> = inv
                    .hosts
                    .iter()
                    .map(|h| crate::inventory::host_key(&h.name))
                    .collect();
                keys.sort();
                keys.dedup();
                assert_eq!(keys.len(), inv.hosts.len(), "a host named twice");
            }
            Err(e) => names(&e.to_string(), file),
        }
    }
}

/// The session host import with arbitrary bytes: the Registry.pol parser when they start
/// with `PReg`, the .reg parser otherwise, then the replay onto the settings earshot
/// reads. A result never has more ignored entries than entries; an error names the file.
pub fn session_host_import(data: &[u8]) {
    match read_session_host(data, "fuzz") {
        Ok(i) => assert!(i.ignored <= i.records, "{} of {}", i.ignored, i.records),
        Err(e) => assert!(e.to_string().starts_with("fuzz: "), "{e}"),
    }
    // The same bytes behind a valid Registry.pol header reach the entry parser.
    let mut pol = b"PReg\x01\x00\x00\x00".to_vec();
    pol.extend_from_slice(data);
    if let Err(e) = read_session_host(&pol, "fuzz") {
        assert!(e.to_string().starts_with("fuzz: "), "{e}");
    }
}

/// A .reg export: the bytes behind the header `reg export` writes, so that the line
/// parser, its continuations and value types are always reached.
pub fn reg_file(data: &[u8]) {
    let mut reg = b"Windows Registry Editor Version 5.00\r\n\r\n".to_vec();
    reg.extend_from_slice(data);
    match read_session_host(&reg, "fuzz.reg") {
        Ok(i) => assert!(i.ignored <= i.records, "{} of {}", i.ignored, i.records),
        Err(e) => assert!(e.to_string().starts_with("fuzz.reg"), "{e}"),
    }
}

/// A host pool's JSON (`az desktopvirtualization hostpool show`), and the RDP property
/// parser on the `customRdpProperty` it finds.
pub fn hostpool_json(data: &[u8]) {
    match read_hostpool(data, "fuzz.json") {
        Ok(pool) => {
            assert!(pool.line >= 1);
            let _ = parse_rdp_properties(&pool.custom_rdp_property);
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.json: "), "{e}"),
    }
}

/// A .rdp file (UTF-16 as the Remote Desktop client saves it, or UTF-8): its properties
/// parsed; every malformed one is listed, and the parser refuses exactly when the list
/// is not empty.
pub fn rdp_file(data: &[u8]) {
    let Ok(text) = crate::text::decode(data) else {
        return;
    };
    let parsed = parse_rdp_properties(&text);
    let errors = property_errors(&text);
    assert_eq!(
        parsed.is_err(),
        !errors.is_empty(),
        "{parsed:?} but {errors:?}"
    );
}
