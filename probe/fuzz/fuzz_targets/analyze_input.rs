//! Fuzzes `analyze`'s input ([`earshot_probe::fuzzing::analyze_file`]): the bytes as a
//! recording file, under each extension the reader takes a hint from.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("earshot-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for ext in ["wav", "flac", "ogg", "mp3"] {
        let file = dir.join(format!("input.{ext}"));
        if std::fs::write(&file, data).is_ok() {
            let _ = earshot_probe::fuzzing::analyze_file(&file);
        }
    }
});
