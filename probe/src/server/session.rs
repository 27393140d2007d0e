//! Is the probe running inside a remote desktop session, and which server serves it?
//!
//! - Windows: `GetSystemMetrics(SM_REMOTESESSION)`; and, because that reads 0 in a
//!   RemoteFX session with a virtual GPU, the process's session id compared with
//!   `HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\GlassSessionId` (the console
//!   session): a different id means remote. The session's protocol
//!   (`WTSQuerySessionInformation` `WTSClientProtocolType`: 0 console, 2 RDP) confirms
//!   either. `SESSIONNAME` (`RDP-Tcp#N`) and `CLIENTNAME` are reported as supporting markers.
//! - Linux: three sources, none of which depends on one server's habits:
//!   1. the login session's own record, as logind keeps it for `loginctl show-session`
//!      (`/run/systemd/sessions/ID`: `REMOTE`, `REMOTE_HOST`, `SERVICE`, `TYPE`, `SEAT`),
//!      read from the file so that no D-Bus and no child process is needed. A graphical
//!      session with `REMOTE=1`, or one opened by a remote desktop service, is remote; one
//!      on a seat with `REMOTE=0` is local. A remote *shell* (`sshd`, `TYPE=tty`) is not a
//!      remote desktop and decides nothing;
//!   2. the server processes that serve this session: xrdp's `xrdp-chansrv` on this
//!      process's X display (or sesman among its ancestors), GNOME Remote Desktop's daemon
//!      running headless or as a remote login's handover for this user, FreeRDP's shadow
//!      server on this display;
//!   3. the variables remote stacks set (`XRDP_SESSION`, `CHROME_REMOTE_DESKTOP_SESSION`, ...).
//!
//!   Any one remote sign makes the session remote; without one, a seat makes it local and
//!   the answer is otherwise `unknown`. Every kind carries what was looked at.
//! - Elsewhere: `unknown`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::proto::msg::{RemoteSession, SessionKind, SessionServer};

/// Environment variables that only a remote desktop session sets, on Linux, and the
/// server each names.
pub const LINUX_MARKERS: &[(&str, SessionServer)] = &[
    ("XRDP_SESSION", SessionServer::Xrdp),
    ("XRDP_SOCKET_PATH", SessionServer::Xrdp),
    ("XRDP_PULSE_SINK_SOCKET", SessionServer::Xrdp),
    ("XRDP_PULSE_SOURCE_SOCKET", SessionServer::Xrdp),
    (
        "CHROME_REMOTE_DESKTOP_SESSION",
        SessionServer::ChromeRemoteDesktop,
    ),
    ("NXSESSIONID", SessionServer::Nx),
    ("X2GO_SESSION", SessionServer::X2go),
];

/// Process names that can serve a session (as `argv[0]`'s file name).
const SERVER_PROCESSES: &[&str] = &[
    "xrdp-chansrv",
    "xrdp-sesman",
    "xrdp-sessvc",
    "xrdp",
    "gnome-remote-desktop-daemon",
    "freerdp-shadow-cli",
    "freerdp-shadow",
    "sshd",
];

/// The kernel keeps 15 bytes of a process's name in `comm`.
const COMM_LEN: usize = 15;

/// How many parents are followed from this process.
const MAX_ANCESTORS: usize = 64;

/// A process that may serve this session, as [`linux_facts`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProcess {
    /// Its process id.
    pub pid: u32,
    /// `argv[0]`'s file name (or the kernel's short name when the command line is hidden).
    pub name: String,
    /// The rest of its command line.
    pub args: Vec<String>,
    /// It is this process's parent, or a parent's parent...
    pub ancestor: bool,
    /// It runs as this process's user.
    pub same_user: bool,
    /// Its `DISPLAY`, when its environment is readable.
    pub display: Option<String>,
}

/// What a Linux process can read about its own session; [`classify_linux`] judges it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinuxFacts {
    /// The marker variables that are set, with their values.
    pub markers: Vec<(String, String)>,
    /// This process's `DISPLAY`.
    pub display: Option<String>,
    /// The login session's id and where it was read (`XDG_SESSION_ID`,
    /// `/proc/self/sessionid`), if any.
    pub session_id: Option<(String, &'static str)>,
    /// logind's record of that session (its keys as written), or why it could not be read.
    pub logind: Option<Result<BTreeMap<String, String>, String>>,
    /// The server processes found: this process's ancestors and its user's.
    pub servers: Vec<ServerProcess>,
}

/// Reads the facts of process `self_pid` from `proc` (normally `/proc`) and logind's
/// records from `sessions` (normally `/run/systemd/sessions`); `env` reads a variable of
/// this process.
pub fn linux_facts(
    proc: &Path,
    sessions: &Path,
    self_pid: u32,
    env: impl Fn(&str) -> Option<String>,
) -> LinuxFacts {
    let markers = LINUX_MARKERS
        .iter()
        .filter_map(|(k, _)| env(k).map(|v| (k.to_string(), v)))
        .collect();
    let session_id = env("XDG_SESSION_ID")
        .filter(|v| !v.is_empty())
        .map(|v| (v, "XDG_SESSION_ID"))
        .or_else(|| {
            let id =
                std::fs::read_to_string(proc.join(self_pid.to_string()).join("sessionid")).ok()?;
            let id = id.trim();
            // 4294967295 (-1): the process belongs to no audit session.
            (!id.is_empty() && id != "4294967295").then(|| (id.to_string(), "/proc/self/sessionid"))
        });
    let logind = session_id.as_ref().map(|(id, _)| {
        if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("session id {id:?} is not a logind id"));
        }
        let path = sessions.join(id);
        std::fs::read_to_string(&path)
            .map(|text| parse_logind_record(&text))
            .map_err(|e| format!("no record at {}: {e}", path.display()))
    });
    let my_uid = uid_of(&proc.join(self_pid.to_string()));
    let ancestors = ancestors(proc, self_pid);
    let mut servers = Vec::new();
    if let Ok(dir) = std::fs::read_dir(proc) {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == self_pid {
                continue;
            }
            let at = entry.path();
            let Ok(comm) = std::fs::read_to_string(at.join("comm")) else {
                continue;
            };
            let comm = comm.trim_end_matches('\n');
            if !SERVER_PROCESSES
                .iter()
                .any(|n| *n == comm || (comm.len() == COMM_LEN && n.starts_with(comm)))
            {
                continue;
            }
            let (name, args) = command_line(&at).unwrap_or_else(|| (comm.to_string(), vec![]));
            if !SERVER_PROCESSES.contains(&name.as_str()) {
                continue;
            }
            let ancestor = ancestors.contains(&pid);
            let same_user = my_uid.is_some() && uid_of(&at) == my_uid;
            // Another user's sshd or xrdp says nothing about this session.
            if !ancestor && !same_user && !name.starts_with("freerdp-shadow") {
                continue;
            }
            servers.push(ServerProcess {
                pid,
                name,
                args,
                ancestor,
                same_user,
                display: environ_var(&at, "DISPLAY"),
            });
        }
    }
    servers.sort_by_key(|p| p.pid);
    LinuxFacts {
        markers,
        display: env("DISPLAY").filter(|d| !d.is_empty()),
        session_id,
        logind,
        servers,
    }
}

/// `KEY=value` lines of a logind session record.
pub fn parse_logind_record(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(unix)]
fn uid_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.uid())
}

#[cfg(not(unix))]
fn uid_of(_path: &Path) -> Option<u32> {
    None
}

/// `argv[0]`'s file name and the other arguments; `None` when the command line is empty
/// (a kernel thread, a zombie) or unreadable.
fn command_line(at: &Path) -> Option<(String, Vec<String>)> {
    let raw = std::fs::read(at.join("cmdline")).ok()?;
    let mut parts = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let first = parts.next()?;
    let name = first.rsplit('/').next().unwrap_or(&first).to_string();
    Some((name, parts.collect()))
}

fn environ_var(at: &Path, key: &str) -> Option<String> {
    let raw = std::fs::read(at.join("environ")).ok()?;
    raw.split(|b| *b == 0).find_map(|kv| {
        let kv = String::from_utf8_lossy(kv);
        kv.strip_prefix(key)
            .and_then(|r| r.strip_prefix('='))
            .map(str::to_string)
    })
}

/// The parent chain of `pid` (its parent first), from each `stat`'s fourth field.
fn ancestors(proc: &Path, pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut at = pid;
    while out.len() < MAX_ANCESTORS {
        let Ok(stat) = std::fs::read_to_string(proc.join(at.to_string()).join("stat")) else {
            break;
        };
        // "pid (name) state ppid ...": the name may hold spaces and parentheses.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            break;
        };
        if ppid <= 1 || out.contains(&ppid) {
            break;
        }
        out.push(ppid);
        at = ppid;
    }
    out
}

/// What one process says about this session.
enum Sign {
    /// It serves this session.
    Serves(SessionServer, String),
    /// It is worth saying, but decides nothing.
    Note(String),
}

fn sign_of(p: &ServerProcess, display: Option<&str>) -> Option<Sign> {
    let same_display = display.is_some() && p.display.as_deref() == display;
    let shown = display.unwrap_or("");
    let with_args = if p.args.is_empty() {
        p.name.clone()
    } else {
        format!("{} {}", p.name, p.args.join(" "))
    };
    let arg = |a: &str| p.args.iter().any(|x| x == a);
    match p.name.as_str() {
        "xrdp-chansrv" if same_display => Some(Sign::Serves(
            SessionServer::Xrdp,
            format!(
                "xrdp-chansrv (pid {}) serves this display (DISPLAY={shown})",
                p.pid
            ),
        )),
        "xrdp-chansrv" | "xrdp-sesman" | "xrdp-sessvc" | "xrdp" if p.ancestor => {
            Some(Sign::Serves(
                SessionServer::Xrdp,
                format!("{} (pid {}) started this process", p.name, p.pid),
            ))
        }
        "gnome-remote-desktop-daemon" if p.same_user && arg("--headless") => Some(Sign::Serves(
            SessionServer::GnomeRemoteDesktop,
            format!(
                "{with_args} (pid {}) runs for this user: a headless remote session",
                p.pid
            ),
        )),
        "gnome-remote-desktop-daemon" if p.same_user && arg("--handover") => Some(Sign::Serves(
            SessionServer::GnomeRemoteDesktop,
            format!(
                "{with_args} (pid {}) runs for this user: a remote login's session",
                p.pid
            ),
        )),
        "gnome-remote-desktop-daemon" if p.same_user => Some(Sign::Note(format!(
            "{with_args} (pid {}) runs for this user: screen sharing of a desktop, not a \
             session of its own",
            p.pid
        ))),
        "freerdp-shadow-cli" | "freerdp-shadow" if same_display => Some(Sign::Serves(
            SessionServer::FreerdpShadow,
            format!(
                "{} (pid {}) shares this display (DISPLAY={shown})",
                p.name, p.pid
            ),
        )),
        "sshd" if p.ancestor => Some(Sign::Note(format!(
            "started over SSH (sshd, pid {}, is among this process's parents): a remote \
             shell, not a remote desktop",
            p.pid
        ))),
        _ => None,
    }
}

/// The server a logind `SERVICE` (the PAM service that opened the session) names.
fn server_of_service(service: &str) -> Option<SessionServer> {
    let s = service.to_ascii_lowercase();
    if s.contains("xrdp") {
        Some(SessionServer::Xrdp)
    } else if s.contains("gnome-remote-desktop") {
        Some(SessionServer::GnomeRemoteDesktop)
    } else if s.contains("freerdp") {
        Some(SessionServer::FreerdpShadow)
    } else {
        None
    }
}

/// Judges Linux facts: any remote sign makes the session remote, a seat without one local,
/// anything else unknown; the evidence lists what was looked at either way.
pub fn classify_linux(facts: &LinuxFacts) -> RemoteSession {
    let mut evidence = Vec::new();
    let mut server = None;
    let mut remote = false;
    let mut local = false;
    for (k, v) in &facts.markers {
        evidence.push(format!("{k}={v}"));
        remote = true;
        let named = LINUX_MARKERS.iter().find(|(m, _)| m == k).map(|(_, s)| *s);
        server = server.or(named);
    }
    let mut served = false;
    for p in &facts.servers {
        match sign_of(p, facts.display.as_deref()) {
            Some(Sign::Serves(s, words)) => {
                evidence.push(words);
                remote = true;
                served = true;
                server = server.or(Some(s));
            }
            Some(Sign::Note(words)) => evidence.push(words),
            None => {}
        }
    }
    match (&facts.session_id, &facts.logind) {
        (None, _) | (_, None) => evidence.push(
            "no login session (XDG_SESSION_ID unset, no audit session in \
             /proc/self/sessionid)"
                .into(),
        ),
        (Some((id, from)), Some(Err(e))) => {
            evidence.push(format!("login session {id} (from {from}): {e}"))
        }
        (Some((id, _)), Some(Ok(record))) => {
            let get = |k: &str| record.get(k).map(String::as_str).unwrap_or("");
            let shown: Vec<String> = ["REMOTE", "REMOTE_HOST", "SERVICE", "TYPE", "SEAT"]
                .iter()
                .filter(|k| !get(k).is_empty())
                .map(|k| format!("{k}={}", get(k)))
                .collect();
            evidence.push(format!("logind session {id}: {}", shown.join(" ")));
            let by_service = server_of_service(get("SERVICE"));
            let graphical = matches!(get("TYPE"), "x11" | "wayland" | "mir");
            // Opened by a remote desktop server's own login, or graphical and remote.
            if by_service.is_some() || (get("REMOTE") == "1" && graphical) {
                remote = true;
                server = server.or(by_service);
            } else if get("REMOTE") != "1" && !get("SEAT").is_empty() {
                local = true;
            }
        }
    }
    if !served && facts.markers.is_empty() {
        evidence.push(match &facts.display {
            Some(d) => format!("no remote desktop server process serves DISPLAY={d}"),
            None => "no remote desktop server process for this user, and no DISPLAY".into(),
        });
    }
    let kind = if remote {
        SessionKind::Remote
    } else if local {
        SessionKind::Local
    } else {
        SessionKind::Unknown
    };
    RemoteSession {
        kind,
        evidence,
        server: if remote { server } else { None },
    }
}

/// Classifies Windows facts: `SM_REMOTESESSION`, the process's and the console (glass)
/// session ids, the session's protocol (`WTSClientProtocolType`: 0 console, 1 ICA, 2 RDP,
/// or why it could not be read) and the `SESSIONNAME`/`CLIENTNAME` variables.
pub fn classify_windows(
    sm_remote: bool,
    session_id: Option<u32>,
    glass_session_id: Option<u32>,
    protocol: Result<u16, String>,
    session_name: Option<String>,
    client_name: Option<String>,
) -> RemoteSession {
    let mut evidence = vec![format!("SM_REMOTESESSION={}", u8::from(sm_remote))];
    let glass_differs = match (session_id, glass_session_id) {
        (Some(s), Some(g)) => {
            evidence.push(format!("session id {s}, GlassSessionId {g}"));
            s != g
        }
        (s, g) => {
            evidence.push(format!(
                "session id {}, GlassSessionId {}",
                s.map_or("unreadable".into(), |v| v.to_string()),
                g.map_or("unreadable".into(), |v| v.to_string())
            ));
            false
        }
    };
    let by_protocol = match protocol {
        Ok(p) => {
            evidence.push(format!(
                "WTSClientProtocolType={p} ({})",
                super::host_config::session_protocol_name(p)
            ));
            p == 2
        }
        Err(e) => {
            evidence.push(format!("WTSClientProtocolType unreadable: {e}"));
            false
        }
    };
    let rdp_name = session_name
        .as_deref()
        .is_some_and(|n| n.to_ascii_uppercase().starts_with("RDP-"));
    if let Some(n) = session_name {
        evidence.push(format!("SESSIONNAME={n}"));
    }
    if let Some(c) = client_name {
        evidence.push(format!("CLIENTNAME={c}"));
    }
    let remote = sm_remote || glass_differs || rdp_name || by_protocol;
    RemoteSession {
        kind: if remote {
            SessionKind::Remote
        } else {
            SessionKind::Local
        },
        evidence,
        server: remote.then_some(SessionServer::WindowsRds),
    }
}

/// Detects the session kind of this process.
pub fn detect() -> RemoteSession {
    #[cfg(windows)]
    {
        windows::detect()
    }
    #[cfg(target_os = "linux")]
    {
        classify_linux(&linux_facts(
            Path::new("/proc"),
            Path::new("/run/systemd/sessions"),
            std::process::id(),
            |k| std::env::var(k).ok(),
        ))
    }
    #[cfg(not(any(windows, target_os = "linux")))]
    {
        RemoteSession {
            kind: SessionKind::Unknown,
            evidence: vec![format!("no detection for {}", std::env::consts::OS)],
            server: None,
        }
    }
}

#[cfg(windows)]
mod windows;

#[cfg(test)]
mod tests;
