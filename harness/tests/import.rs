//! Policy layers imported from files written by real tools (Samba's Registry.pol encoder,
//! Wine's `reg export`; harness/tests/data/import/make-fixtures.sh), and what a scenario
//! that imports them says when something does not fit.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

use std::path::{Path, PathBuf};
use std::process::Command;

use earshot_harness::import::{load_session_host, ImportFormat, Setting};
use earshot_harness::policy::expect;
use earshot_harness::scenario::{CaptureExpect, OutputExpect, Scenario};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/import")
        .join(name)
}

fn values(file: &str) -> Vec<(Setting, Option<u32>)> {
    let i = load_session_host(&data(file)).unwrap_or_else(|e| panic!("{e}"));
    i.settings.iter().map(|s| (s.setting, s.value)).collect()
}

#[test]
fn a_registry_pol_written_by_samba_gives_the_four_settings_and_counts_the_rest() {
    let i = load_session_host(&data("samba-gpo-blocks-playback.pol")).unwrap();
    assert_eq!(i.format, ImportFormat::RegistryPol);
    assert_eq!(
        values("samba-gpo-blocks-playback.pol"),
        [
            (Setting::FDisableCam, Some(1)),
            (Setting::FDisableAudioCapture, Some(0)),
            (Setting::AllowedAudioQualityMode, None),
            (Setting::LetAppsAccessMicrophone, Some(2)),
        ]
    );
    // The two per-app lists (an empty User in control one, a Force Allow of two apps) are
    // read too.
    assert_eq!((i.records, i.ignored), (12, 6));
    assert_eq!(
        i.list(earshot_harness::import::AppList::ForceAllow)
            .and_then(|l| l.apps.clone()),
        Some(vec![
            "Microsoft.WindowsSoundRecorder_8wekyb3d8bbwe".to_string(),
            "Contoso.Dictation_1234".to_string()
        ])
    );
}

#[test]
fn a_reg_export_written_by_wine_reg_is_read_from_utf16() {
    let path = data("wine-reg-export.reg");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        &bytes[..2],
        [0xff, 0xfe],
        "reg export writes UTF-16LE with a BOM"
    );
    let i = load_session_host(&path).unwrap();
    assert_eq!(i.format, ImportFormat::RegExport);
    assert_eq!(
        values("wine-reg-export.reg"),
        [
            (Setting::FDisableAudioCapture, Some(1)),
            (Setting::AllowedAudioQualityMode, Some(3)),
            (Setting::LetAppsAccessMicrophone, Some(0)),
        ]
    );
}

#[test]
fn a_string_where_a_dword_belongs_names_the_file_the_entry_and_the_values() {
    let e = load_session_host(&data("samba-string-where-dword.pol"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("samba-string-where-dword.pol: entry 2 (byte offset "),
        "{e}"
    );
    assert!(
        e.contains("`fDisableAudioCapture` is REG_SZ \"1\": expected a REG_DWORD, 0 (allowed) or 1 (blocked)"),
        "{e}"
    );
}

#[test]
fn a_value_out_of_range_in_a_reg_export_names_its_line() {
    let e = load_session_host(&data("wine-quality-out-of-range.reg"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("wine-quality-out-of-range.reg: line 4: `AllowedAudioQualityMode` = 2: "),
        "{e}"
    );
    assert!(
        e.contains("expected 1 (dynamic), 3 (medium) or 7 (high)"),
        "{e}"
    );
}

const PROBES: &str = "[probes.local]\naddress = \"127.0.0.1:9\"\ntoken_env = \"X\"\n\
mic_feed = \"micfeed\"\n[probes.remote]\naddress = \"127.0.0.1:9\"\ntoken_env = \"X\"\n";

/// A scenario in a fresh folder beside copies of the fixtures.
fn scenario_in(dir: &Path, product: &str, policy: &str) -> PathBuf {
    for f in [
        "samba-gpo-blocks-playback.pol",
        "samba-string-where-dword.pol",
        "wine-reg-export.reg",
    ] {
        std::fs::copy(data(f), dir.join(f)).unwrap();
    }
    let path = dir.join("s.toml");
    std::fs::write(
        &path,
        format!("name = \"t\"\nproduct = \"{product}\"\n{policy}\n{PROBES}"),
    )
    .unwrap();
    path
}

fn load_error(product: &str, policy: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_in(dir.path(), product, policy);
    match Scenario::load(&path) {
        Ok(s) => panic!("{} loaded: {:?}", path.display(), expect(&s)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_imported_layer_decides_like_a_typed_one() {
    let dir = tempfile::tempdir().unwrap();
    let typed = scenario_in(
        dir.path(),
        "avd",
        "[policy.session_host]\nfDisableCam = 1\nfDisableAudioCapture = 0\n\
         LetAppsAccessMicrophone = 2\n\
         LetAppsAccessMicrophone_UserInControlOfTheseApps = []\n\
         LetAppsAccessMicrophone_ForceAllowTheseApps = \
         [\"Microsoft.WindowsSoundRecorder_8wekyb3d8bbwe\", \"Contoso.Dictation_1234\"]\n\
         [policy.rdp]\nproperties = \"audiocapturemode:i:1\"",
    );
    let typed = expect(&Scenario::load(&typed).unwrap());
    let imported = scenario_in(
        dir.path(),
        "avd",
        "[policy.session_host]\nimport = \"samba-gpo-blocks-playback.pol\"\n\
         [policy.rdp]\nproperties = \"audiocapturemode:i:1\"",
    );
    let imported = expect(&Scenario::load(&imported).unwrap());
    assert_eq!(imported.output, typed.output);
    assert_eq!(imported.capture, typed.capture);
    assert_eq!(imported.quality, typed.quality);
    assert_eq!(imported.output.value, OutputExpect::None);
    // LetAppsAccessMicrophone=2 denies Windows packaged apps, not the probe.
    assert_eq!(imported.capture.value, CaptureExpect::Redirected);
    // The import is information, not a warning.
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    let w = &imported.info[0];
    assert!(
        w.contains("samba-gpo-blocks-playback.pol (Registry.pol)"),
        "{w}"
    );
    assert!(w.contains("6 of its 12 entries ignored"), "{w}");
}

#[test]
fn a_setting_in_the_file_and_in_the_table_names_both() {
    let e = load_error(
        "avd",
        "[policy.session_host]\nimport = \"samba-gpo-blocks-playback.pol\"\nfDisableCam = 0",
    );
    assert!(
        e.contains("s.toml: policy.session_host.fDisableCam: is given here and in the imported"),
        "{e}"
    );
    assert!(
        e.contains("samba-gpo-blocks-playback.pol (entry 3, fDisableCam=1)"),
        "{e}"
    );
    let e = load_error(
        "avd",
        "[policy.session_host]\nimport = \"samba-gpo-blocks-playback.pol\"\n\
         \"Limit audio playback quality\" = \"High\"",
    );
    assert!(
        e.contains("policy.session_host.\"Limit audio playback quality\": is given here"),
        "{e}"
    );
    assert!(e.contains("AllowedAudioQualityMode deleted"), "{e}");
}

#[test]
fn import_and_from_host_together_are_refused() {
    let e = load_error(
        "avd",
        "[policy.session_host]\nimport = \"wine-reg-export.reg\"\nfrom_host = true",
    );
    assert!(
        e.contains("policy.session_host.import: and `from_host = true`"),
        "{e}"
    );
}

#[test]
fn an_import_on_an_xrdp_host_is_refused() {
    let e = load_error(
        "xrdp",
        "[policy.session_host]\nimport = \"wine-reg-export.reg\"",
    );
    assert!(e.contains("an xrdp host has no Windows policy"), "{e}");
}

#[test]
fn an_unusable_import_names_the_scenario_the_key_and_the_file() {
    let e = load_error(
        "avd",
        "[policy.session_host]\nimport = \"samba-string-where-dword.pol\"",
    );
    assert!(e.contains("s.toml: policy.session_host.import: "), "{e}");
    assert!(e.contains("samba-string-where-dword.pol: entry 2"), "{e}");
    let e = load_error("avd", "[policy.session_host]\nimport = \"missing.pol\"");
    assert!(e.contains("missing.pol: cannot read it"), "{e}");
}

#[test]
fn the_rdp_layer_takes_one_source() {
    let e = load_error(
        "avd",
        "[policy.rdp]\nproperties = \"audiomode:i:0\"\nhostpool_json = \"h.json\"",
    );
    assert!(
        e.contains("policy.rdp: give one of `properties`, `file` or `hostpool_json`"),
        "{e}"
    );
    let e = load_error("windows365", "[policy.rdp]\nhostpool_json = \"h.json\"");
    assert!(
        e.contains("Windows 365 has no host pool RDP properties"),
        "{e}"
    );
}

#[test]
fn host_pool_json_errors_name_the_file_and_where() {
    for (json, needle) in [
        ("{\"name\": \"p\"}", "h.json: no `customRdpProperty` field"),
        (
            "{\n\"name\": \"p\",\n\"customRdpProperty\": \"audiomode:i:7;\"\n}",
            "h.json:3 customRdpProperty: RDP property `audiomode:i:7`",
        ),
        ("{\"customRdpProperty\": ", "h.json: line 1: not JSON"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("h.json"), json).unwrap();
        let path = scenario_in(
            dir.path(),
            "avd",
            "[policy.rdp]\nhostpool_json = \"h.json\"",
        );
        let e = Scenario::load(&path).unwrap_err().to_string();
        assert!(e.contains(needle), "{json}: {e}");
    }
}

#[test]
fn earshot_expect_refuses_a_truncated_registry_pol_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_in(
        dir.path(),
        "avd",
        "[policy.session_host]\nimport = \"cut.pol\"",
    );
    let bytes = std::fs::read(data("samba-gpo-blocks-playback.pol")).unwrap();
    std::fs::write(dir.path().join("cut.pol"), &bytes[..bytes.len() - 3]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_earshot"))
        .arg("expect")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("cut.pol: entry 12 (byte offset "), "{e}");
    assert!(
        e.contains("truncated") || e.contains("runs past the end"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
}
