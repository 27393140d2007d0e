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
    let slug: String = scenario
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() {
                ch.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut name = String::new();
    for ch in slug.trim_matches('-').chars() {
        if !(ch == '-' && name.ends_with('-')) {
            name.push(ch);
        }
    }
    let path = dir.join(format!("{name}-{c}.{extension}"));
    std::fs::write(&path, bytes).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    Ok(path)
}
