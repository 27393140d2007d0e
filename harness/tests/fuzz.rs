//! The harness's fuzz targets run on stable: each gets mutations of the repository's own
//! scenarios, imports and inventories for a few seconds (`EARSHOT_FUZZ_SECS`, 2 by
//! default). A panic saves its input under the target folder's `fuzz-failures/` and
//! names it; replay it with `harness/fuzz` or by calling the target on the file.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use std::path::{Path, PathBuf};

use earshot_harness::fuzzing;
use earshot_probe::fuzzing::{budget, drive};

fn failures() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file under `dir` (recursively) whose name ends with one of `ends`.
fn files(dir: &Path, ends: &[&str]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if ends.iter().any(|e| p.to_string_lossy().ends_with(e)) {
                out.push(std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn utf16(text: &str) -> Vec<u8> {
    let mut out = vec![0xff, 0xfe];
    out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    out
}

fn run(name: &str, seeds: &[Vec<u8>], dictionary: &[&[u8]], target: fn(&[u8])) {
    assert!(!seeds.is_empty(), "{name}: no seed found");
    let d = drive(name, seeds, dictionary, budget(), &failures(), target);
    assert!(d.runs > seeds.len() as u64, "{name}: {d:?}");
    eprintln!("{name}: {} inputs from {} seeds", d.runs, seeds.len());
}

#[test]
fn scenario_files_never_panic_the_loader() {
    let seeds = files(&repo().join("scenarios"), &[".toml"]);
    let dictionary: [&[u8]; 14] = [
        b"[policy.session_host]\n",
        b"[policy.rdp]\n",
        b"[probes.local]\n",
        b"[probes.remote]\n",
        b"[timeouts]\n",
        b"[continuity]\n",
        b"fDisableCam = 1\n",
        b"properties = \"audiomode:i:0;audiocapturemode:i:1\"\n",
        b"checks = [\"output\", \"capture\", \"continuity\", \"quality\"]\n",
        b"listen = \"5s\"\n",
        b"product = \"xrdp\"\n",
        b"from_host = true\n",
        b"\"\"\"",
        b"'''",
    ];
    run("scenario_toml", &seeds, &dictionary, fuzzing::scenario_toml);
}

#[test]
fn inventories_never_panic_the_reader() {
    let csv = "name,address,local\navd-0,10.0.0.10:7702,\n\"avd,1\",10.0.0.11:7702,10.0.0.2:7701\n";
    let toml =
        "[[host]]\nname = \"avd-0\"\naddress = \"10.0.0.10:7702\"\n\n[[host]]\nname = \"avd-1\"\n";
    let az = "[{\"name\": \"pool/avd-0.contoso.com\", \"status\": \"Available\"},\n \
              {\"name\": \"pool/avd-1.contoso.com\"}]";
    let seeds = vec![
        csv.as_bytes().to_vec(),
        toml.as_bytes().to_vec(),
        az.as_bytes().to_vec(),
        format!("{{\"value\": {az}}}").into_bytes(),
        utf16(csv),
    ];
    run(
        "inventory",
        &seeds,
        &[
            b",",
            b"\"",
            b"[[host]]\n",
            b"name",
            b":7702",
            b"{\"name\": ",
        ],
        fuzzing::inventory,
    );
}

#[test]
fn session_host_imports_never_panic_the_parsers() {
    let mut seeds = files(&repo().join("harness/tests/data/import"), &[".pol", ".reg"]);
    seeds.extend(files(&repo().join("scenarios/import"), &[".pol", ".reg"]));
    run(
        "session_host_import",
        &seeds,
        &[
            b"PReg", b"[\0", b";\0", b"]\0", b"hex(7):", b"dword:", b"\\\r\n",
        ],
        fuzzing::session_host_import,
    );
    // The .reg parser alone: the seeds' bodies behind the header the target writes.
    let bodies: Vec<Vec<u8>> = seeds
        .iter()
        .filter_map(|s| {
            let text = String::from_utf8_lossy(s);
            text.find('[').map(|at| text[at..].as_bytes().to_vec())
        })
        .collect();
    run(
        "reg_file",
        &bodies,
        &[
            b"hex(7):",
            b"hex(2):",
            b"dword:",
            b"=-",
            b",\\\r\n  ",
            b"\"fDisableCam\"=",
        ],
        fuzzing::reg_file,
    );
}

#[test]
fn host_pools_and_rdp_files_never_panic_the_property_parser() {
    let seeds = files(&repo().join("scenarios/import"), &[".json"]);
    run(
        "hostpool_json",
        &seeds,
        &[
            b"\"customRdpProperty\": ",
            b"audiomode:i:",
            b";",
            b"\\u0000",
        ],
        fuzzing::hostpool_json,
    );
    let rdp = "full address:s:avd-0.contoso.com\r\naudiomode:i:0\r\naudiocapturemode:i:1\r\n\
               audioqualitymode:i:2\r\nredirectclipboard:i:1\r\n";
    run(
        "rdp_file",
        &[
            rdp.as_bytes().to_vec(),
            utf16(rdp),
            b"audiomode:i:2;camerastoredirect:s:*".to_vec(),
        ],
        &[
            b"audiomode:i:",
            b"audiocapturemode:i:",
            b":s:",
            b":b:",
            b";",
            b"\r\n",
        ],
        fuzzing::rdp_file,
    );
}
