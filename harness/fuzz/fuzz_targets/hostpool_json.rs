//! Fuzzes the host pool JSON reader, and the RDP property parser on whatever
//! `customRdpProperty` it finds: no input may panic them.
#![no_main]

use earshot_harness::import::read_hostpool;
use earshot_harness::policy::parse_rdp_properties;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match read_hostpool(data, "fuzz.json") {
        Ok(pool) => {
            assert!(pool.line >= 1);
            let _ = parse_rdp_properties(&pool.custom_rdp_property);
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.json: ")),
    }
});
