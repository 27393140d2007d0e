//! The xrdp channel settings of this host, read from its `xrdp.ini`.
//!
//! On an xrdp session host the switches that decide whether audio may cross RDP live in
//! xrdp.ini: `[Globals] allow_channels` (every virtual channel), `[Channels] rdpsnd`
//! (output), `[Channels] drdynvc` (the dynamic channels, among them audin: capture), and a
//! per-backend `channel.rdpsnd` under `[Xvnc]` / `[Xorg]`. The remote probe reports what
//! the file says, so a verdict can rest on "the server has rdpsnd=false" as a fact.
//!
//! The file is read the way xrdp 0.9 reads it: `;` and `#` start comment lines, section
//! and key names match without regard to case, values are trimmed, a key given twice
//! takes its last value, and a value is true when it is `1`, `true`, `yes` or `on` (any
//! case). A key that is absent stays `None`: xrdp's default for every one of these is true.

use std::path::{Path, PathBuf};

use crate::proto::msg::XrdpSettings;

/// Where xrdp keeps its configuration on Debian and upstream builds.
pub const DEFAULT_PATH: &str = "/etc/xrdp/xrdp.ini";

/// Environment variable that names another xrdp.ini (`--xrdp-ini` wins over it).
pub const PATH_ENV: &str = "EARSHOT_XRDP_INI";

/// The xrdp.ini to read: `flag`, else `$EARSHOT_XRDP_INI`, else [`DEFAULT_PATH`].
pub fn choose_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(PATH_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

/// Reads `path`.
///
/// # Returns
/// `None` when the file does not exist (no xrdp on this host); the settings, or the
/// reason they could not be read in [`XrdpSettings::error`], otherwise.
pub fn read(path: &Path) -> Option<XrdpSettings> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            return Some(XrdpSettings {
                path: path.display().to_string(),
                error: Some(format!("cannot read {}: {e}", path.display())),
                ..XrdpSettings::default()
            })
        }
    };
    let modified_unix_ms = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64() * 1000.0);
    Some(XrdpSettings {
        path: path.display().to_string(),
        modified_unix_ms,
        ..parse(&text)
    })
}

/// The channel switches in xrdp.ini text (path and time left empty).
pub fn parse(text: &str) -> XrdpSettings {
    let mut s = XrdpSettings::default();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = Some(truthy(value.trim()));
        match (section.as_str(), key.as_str()) {
            ("globals", "allow_channels") => s.allow_channels = value,
            ("channels", "rdpsnd") => s.rdpsnd = value,
            ("channels", "drdynvc") => s.drdynvc = value,
            ("xvnc", "channel.rdpsnd") => s.xvnc_rdpsnd = value,
            ("xorg", "channel.rdpsnd") => s.xorg_rdpsnd = value,
            _ => {}
        }
    }
    s
}

fn truthy(v: &str) -> bool {
    ["1", "true", "yes", "on"]
        .iter()
        .any(|t| v.eq_ignore_ascii_case(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debian_default_file_allows_every_channel() {
        let s = parse(
            "[Globals]\n; comment\nini_version=1\nallow_channels=true\n\n[Channels]\n\
             rdpdr=true\nrdpsnd=true\ndrdynvc=true\n\n[Xvnc]\nname=Xvnc\nlib=libvnc.so\n",
        );
        assert_eq!(s.allow_channels, Some(true));
        assert_eq!(s.rdpsnd, Some(true));
        assert_eq!(s.drdynvc, Some(true));
        assert_eq!(s.xvnc_rdpsnd, None, "absent: xrdp's default (true)");
        assert_eq!(s.xorg_rdpsnd, None);
    }

    #[test]
    fn switches_read_as_xrdp_reads_them() {
        let s = parse(
            "[globals]\nALLOW_CHANNELS = Yes\n[CHANNELS]\nrdpsnd=false\nrdpsnd = 0\n\
             drdynvc=off\n#drdynvc=true\n;rdpsnd=true\n[Xvnc]\nchannel.rdpsnd=false\n\
             [Xorg]\nchannel.rdpsnd=1\n",
        );
        assert_eq!(s.allow_channels, Some(true));
        assert_eq!(
            s.rdpsnd,
            Some(false),
            "the last value wins; comments are skipped"
        );
        assert_eq!(s.drdynvc, Some(false));
        assert_eq!(s.xvnc_rdpsnd, Some(false));
        assert_eq!(s.xorg_rdpsnd, Some(true));
    }

    #[test]
    fn a_key_in_another_section_is_not_the_switch() {
        let s =
            parse("[Xvnc]\nrdpsnd=false\nallow_channels=false\n[Channels]\nchannel.rdpsnd=false\n");
        assert_eq!(s, XrdpSettings::default());
    }

    #[test]
    fn a_missing_file_is_no_xrdp_and_an_unreadable_one_says_why() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("xrdp.ini")), None);
        let f = dir.path().join("xrdp.ini");
        std::fs::write(&f, "[Channels]\nrdpsnd=false\n").unwrap();
        let s = read(&f).unwrap();
        assert_eq!(s.rdpsnd, Some(false));
        assert_eq!(s.path, f.display().to_string());
        assert!(s.modified_unix_ms.unwrap() > 1.6e12);
        assert_eq!(s.error, None);
        // A directory where the file should be cannot be read as one.
        let s = read(dir.path()).unwrap();
        assert!(s.error.unwrap().contains("cannot read"));
    }

    #[test]
    fn the_flag_wins_over_the_default() {
        assert_eq!(
            choose_path(Some(Path::new("/srv/xrdp.ini"))),
            PathBuf::from("/srv/xrdp.ini")
        );
    }
}
