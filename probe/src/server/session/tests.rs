use super::*;
use std::path::PathBuf;

/// A host's `/proc` and logind records in a folder: processes with their parent, command
/// line and environment, and session records.
struct FakeHost {
    dir: tempfile::TempDir,
}

/// The process whose session is asked about.
const ME: u32 = 900;

impl FakeHost {
    fn new() -> FakeHost {
        let h = FakeHost {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(h.sessions()).unwrap();
        h.process(1, 0, &["/sbin/init"], &[]);
        h
    }
    fn proc(&self) -> PathBuf {
        self.dir.path().join("proc")
    }
    fn sessions(&self) -> PathBuf {
        self.dir.path().join("sessions")
    }
    fn process(&self, pid: u32, ppid: u32, argv: &[&str], env: &[(&str, &str)]) {
        let at = self.proc().join(pid.to_string());
        std::fs::create_dir_all(&at).unwrap();
        let base = argv[0].rsplit('/').next().unwrap();
        let comm: String = base.chars().take(COMM_LEN).collect();
        std::fs::write(at.join("comm"), format!("{comm}\n")).unwrap();
        let nul = |items: Vec<String>| items.join("\0") + "\0";
        std::fs::write(
            at.join("cmdline"),
            nul(argv.iter().map(|a| a.to_string()).collect()),
        )
        .unwrap();
        std::fs::write(
            at.join("environ"),
            nul(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        )
        .unwrap();
        std::fs::write(
            at.join("stat"),
            format!("{pid} ({comm}) S {ppid} {pid} {pid} 0 -1"),
        )
        .unwrap();
    }
    fn logind(&self, id: &str, record: &str) {
        std::fs::write(self.sessions().join(id), record).unwrap();
    }
    /// The session of [`ME`] with `env` as its environment.
    fn judge(&self, env: &[(&str, &str)]) -> RemoteSession {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        classify_linux(&linux_facts(&self.proc(), &self.sessions(), ME, |k| {
            env.get(k).cloned()
        }))
    }
}

fn has(r: &RemoteSession, words: &str) -> bool {
    r.evidence.iter().any(|e| e.contains(words))
}

#[test]
fn xrdp_markers_mean_remote_and_are_reported() {
    let h = FakeHost::new();
    h.process(ME, 1, &["earshot-probe"], &[]);
    let r = h.judge(&[("XRDP_SESSION", "1")]);
    assert_eq!(r.kind, SessionKind::Remote);
    assert_eq!(r.server, Some(SessionServer::Xrdp));
    assert_eq!(r.evidence[0], "XRDP_SESSION=1");
}

// Whose process it is comes from the owner of its /proc folder: a Unix fact.
#[cfg(unix)]
#[test]
fn xrdp_chansrv_on_this_display_means_an_xrdp_session_without_any_variable() {
    let h = FakeHost::new();
    h.process(ME, 1, &["earshot-probe"], &[]);
    h.process(40, 1, &["/usr/sbin/xrdp-chansrv"], &[("DISPLAY", ":10")]);
    // Another session's chansrv does not serve this one.
    h.process(41, 1, &["/usr/sbin/xrdp-chansrv"], &[("DISPLAY", ":11")]);
    let r = h.judge(&[("DISPLAY", ":10")]);
    assert_eq!(r.kind, SessionKind::Remote, "{r:?}");
    assert_eq!(r.server, Some(SessionServer::Xrdp));
    assert!(
        has(
            &r,
            "xrdp-chansrv (pid 40) serves this display (DISPLAY=:10)"
        ),
        "{r:?}"
    );
    assert!(!has(&r, "pid 41"), "{r:?}");
    // On display :12 neither serves it.
    let r = h.judge(&[("DISPLAY", ":12")]);
    assert_eq!(r.kind, SessionKind::Unknown, "{r:?}");
    assert!(
        has(&r, "no remote desktop server process serves DISPLAY=:12"),
        "{r:?}"
    );
}

#[test]
fn sesman_among_the_parents_means_xrdp() {
    let h = FakeHost::new();
    h.process(30, 1, &["/usr/sbin/xrdp-sesman", "--nodaemon"], &[]);
    h.process(31, 30, &["/bin/sh", "startwm.sh"], &[]);
    h.process(ME, 31, &["earshot-probe"], &[]);
    let r = h.judge(&[]);
    assert_eq!(r.kind, SessionKind::Remote, "{r:?}");
    assert_eq!(r.server, Some(SessionServer::Xrdp));
    assert!(
        has(&r, "xrdp-sesman (pid 30) started this process"),
        "{r:?}"
    );
}

// Whose process it is comes from the owner of its /proc folder: a Unix fact.
#[cfg(unix)]
#[test]
fn a_headless_gnome_remote_desktop_session_is_remote_and_screen_sharing_is_not() {
    let h = FakeHost::new();
    h.process(ME, 1, &["earshot-probe"], &[]);
    h.process(
        50,
        1,
        &["/usr/libexec/gnome-remote-desktop-daemon", "--headless"],
        &[],
    );
    let r = h.judge(&[("WAYLAND_DISPLAY", "wayland-0")]);
    assert_eq!(r.kind, SessionKind::Remote, "{r:?}");
    assert_eq!(r.server, Some(SessionServer::GnomeRemoteDesktop));
    assert!(has(&r, "--headless (pid 50) runs for this user"), "{r:?}");

    let h = FakeHost::new();
    h.process(ME, 1, &["earshot-probe"], &[]);
    h.process(50, 1, &["/usr/libexec/gnome-remote-desktop-daemon"], &[]);
    h.logind(
        "3",
        "# logind\nREMOTE=0\nSEAT=seat0\nTYPE=wayland\nSERVICE=gdm-password\n",
    );
    let r = h.judge(&[("XDG_SESSION_ID", "3")]);
    assert_eq!(r.kind, SessionKind::Local, "{r:?}");
    assert_eq!(r.server, None);
    assert!(has(&r, "screen sharing of a desktop"), "{r:?}");
    assert!(
        has(
            &r,
            "logind session 3: REMOTE=0 SERVICE=gdm-password TYPE=wayland SEAT=seat0"
        ),
        "{r:?}"
    );
}

#[test]
fn the_freerdp_shadow_server_on_this_display_is_remote() {
    let h = FakeHost::new();
    h.process(ME, 1, &["earshot-probe"], &[]);
    h.process(
        60,
        1,
        &["freerdp-shadow-cli", "/port:3389"],
        &[("DISPLAY", ":0")],
    );
    let r = h.judge(&[("DISPLAY", ":0")]);
    assert_eq!(r.kind, SessionKind::Remote, "{r:?}");
    assert_eq!(r.server, Some(SessionServer::FreerdpShadow));
}

#[test]
fn logind_says_remote_for_a_graphical_remote_session_and_not_for_a_shell() {
    let h = FakeHost::new();
    h.process(ME, 1, &["earshot-probe"], &[]);
    h.logind(
        "7",
        "REMOTE=1\nREMOTE_HOST=10.0.0.5\nSERVICE=xrdp-sesman\nTYPE=x11\n",
    );
    let r = h.judge(&[("XDG_SESSION_ID", "7")]);
    assert_eq!(r.kind, SessionKind::Remote, "{r:?}");
    assert_eq!(r.server, Some(SessionServer::Xrdp));
    assert!(has(&r, "REMOTE_HOST=10.0.0.5"), "{r:?}");

    // An SSH login is remote, but no desktop: it decides nothing.
    let h = FakeHost::new();
    h.process(20, 1, &["sshd: admin@pts/0"], &[]);
    h.process(ME, 20, &["earshot-probe"], &[]);
    h.logind(
        "8",
        "REMOTE=1\nREMOTE_HOST=10.0.0.9\nSERVICE=sshd\nTYPE=tty\n",
    );
    let r = h.judge(&[("XDG_SESSION_ID", "8")]);
    assert_eq!(r.kind, SessionKind::Unknown, "{r:?}");
    assert!(has(&r, "SERVICE=sshd TYPE=tty"), "{r:?}");
}

#[test]
fn the_audit_session_id_finds_the_record_when_the_variable_is_unset() {
    let h = FakeHost::new();
    h.process(ME, 1, &["earshot-probe"], &[]);
    std::fs::write(h.proc().join(ME.to_string()).join("sessionid"), "5").unwrap();
    h.logind("5", "REMOTE=0\nSEAT=seat0\nTYPE=x11\n");
    let r = h.judge(&[]);
    assert_eq!(r.kind, SessionKind::Local, "{r:?}");
    // No session at all: unknown, and it says what it looked at.
    std::fs::write(
        h.proc().join(ME.to_string()).join("sessionid"),
        "4294967295",
    )
    .unwrap();
    let r = h.judge(&[]);
    assert_eq!(r.kind, SessionKind::Unknown, "{r:?}");
    assert!(has(&r, "no login session"), "{r:?}");
    assert!(has(&r, "no remote desktop server process"), "{r:?}");
    // A record that is missing is said, with its path.
    let r = h.judge(&[("XDG_SESSION_ID", "9")]);
    assert!(
        has(&r, "login session 9 (from XDG_SESSION_ID): no record at"),
        "{r:?}"
    );
}

#[test]
fn this_machines_own_session_is_judged_with_evidence() {
    // Whatever this process runs in, the answer names what it looked at.
    let r = detect();
    assert!(!r.evidence.is_empty(), "{r:?}");
}

#[test]
fn windows_remote_by_metric_by_glass_id_by_protocol_or_by_session_name() {
    let local = classify_windows(false, Some(1), Some(1), Ok(0), Some("Console".into()), None);
    assert_eq!(local.kind, SessionKind::Local);
    assert_eq!(local.server, None);
    assert!(local
        .evidence
        .iter()
        .any(|e| e == "WTSClientProtocolType=0 (console)"));
    let metric = classify_windows(true, Some(2), Some(1), Ok(2), None, None);
    assert_eq!(metric.kind, SessionKind::Remote);
    assert_eq!(metric.server, Some(SessionServer::WindowsRds));
    // RemoteFX vGPU: the metric says local, the glass session id says otherwise.
    let glass = classify_windows(false, Some(3), Some(1), Ok(0), None, Some("LAPTOP".into()));
    assert_eq!(glass.kind, SessionKind::Remote);
    assert!(glass.evidence.iter().any(|e| e == "CLIENTNAME=LAPTOP"));
    let protocol = classify_windows(false, Some(1), Some(1), Ok(2), None, None);
    assert_eq!(protocol.kind, SessionKind::Remote);
    let name = classify_windows(
        false,
        None,
        None,
        Err("no WTS".into()),
        Some("RDP-Tcp#4".into()),
        None,
    );
    assert_eq!(name.kind, SessionKind::Remote);
    assert!(name.evidence.iter().any(|e| e.contains("unreadable")));
}
