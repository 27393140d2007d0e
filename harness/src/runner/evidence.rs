//! The recordings kept as evidence: fetched after the verdict, on a budget of their own,
//! and written as they came.

use super::*;

/// A recording left on the listening probe, fetched only once the verdict is out and says
/// it is kept.
#[derive(Debug, Clone)]
pub struct EvidenceAt {
    pub(super) client: AuthedClient,
    pub(super) handle: EvidenceHandle,
}

/// Time budget of one evidence fetch, separate from the check's: a starved link delays
/// the evidence, never the verdict.
pub const EVIDENCE_FETCH_BUDGET: Duration = Duration::from_secs(60);

/// Fetches a recording from its probe within [`EVIDENCE_FETCH_BUDGET`], telling `progress`
/// how far it got, and writes it as is (FLAC, or WAV beyond 8 channels).
pub(super) async fn keep_evidence(
    dir: &Path,
    scenario: &str,
    c: Check,
    at: &EvidenceAt,
    mut progress: impl FnMut(u64, u64) + Send,
) -> Result<PathBuf, String> {
    let evidence = at
        .client
        .fetch_evidence(&at.handle, EVIDENCE_FETCH_BUDGET, |p| {
            progress(p.received, p.total)
        })
        .await
        .map_err(|e| format!("fetching it from the probe: {e}"))?;
    write_evidence(
        dir,
        scenario,
        c,
        evidence.format.extension(),
        &evidence.bytes,
    )
}

pub(super) fn write_evidence(
    dir: &Path,
    scenario: &str,
    c: Check,
    extension: &str,
    bytes: &[u8],
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    let name = slug(scenario);
    // Never over another file: names that slug alike, or an earlier run's, get a number.
    let mut path = dir.join(format!("{name}-{c}.{extension}"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.join(format!("{name}-{c}-{n}.{extension}"));
    }
    // Written whole under a temporary name, then renamed: a full disk leaves no truncated
    // file under the final name.
    let part = dir.join(format!(".{name}-{c}-{n}.{extension}.part"));
    let written = std::fs::write(&part, bytes).and_then(|()| std::fs::rename(&part, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(format!("{}: cannot write: {e}", path.display()));
    }
    Ok(path)
}

/// A scenario's name as a file name: letters and digits (of any script) in lower case,
/// runs of anything else as one `-`; `scenario` when nothing is left.
pub(super) fn slug(name: &str) -> String {
    let mut out = String::new();
    for ch in name.chars() {
        if ch.is_alphanumeric() {
            out.extend(ch.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "scenario".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_slug_alike_never_overwrite_each_other() {
        assert_eq!(slug("AVD: GPO blocks playback!"), "avd-gpo-blocks-playback");
        assert_eq!(slug("Прод: звук"), "прод-звук");
        assert_eq!(slug("***"), "scenario");
        let dir = tempfile::tempdir().unwrap();
        let a = write_evidence(dir.path(), "AVD: x", Check::Output, "flac", b"one").unwrap();
        let b = write_evidence(dir.path(), "avd x", Check::Output, "flac", b"two").unwrap();
        assert_ne!(a, b);
        assert_eq!(std::fs::read(&a).unwrap(), b"one");
        assert_eq!(std::fs::read(&b).unwrap(), b"two");
        assert!(b.ends_with("avd-x-output-2.flac"), "{}", b.display());
        // Nothing half-written is left beside them.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
