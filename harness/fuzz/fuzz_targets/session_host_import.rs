//! Fuzzes the session host import with arbitrary bytes: the Registry.pol parser when they
//! start with `PReg`, the .reg parser otherwise, then the replay onto the four settings.
//! No input may panic them; a result never has more settings than earshot reads, nor
//! more ignored entries than entries; an error names the file.
#![no_main]

use earshot_harness::import::read_session_host;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match read_session_host(data, "fuzz") {
        Ok(i) => assert!(i.settings.len() <= 4 && i.ignored <= i.records),
        Err(e) => assert!(e.to_string().starts_with("fuzz: ")),
    }
    // The same bytes behind a valid Registry.pol header reach the entry parser.
    let mut pol = b"PReg\x01\x00\x00\x00".to_vec();
    pol.extend_from_slice(data);
    if let Err(e) = read_session_host(&pol, "fuzz") {
        assert!(e.to_string().starts_with("fuzz: "));
    }
});
