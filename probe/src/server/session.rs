//! Is the probe running inside a remote desktop session?
//!
//! - Windows: `GetSystemMetrics(SM_REMOTESESSION)`; and, because that reads 0 in a
//!   RemoteFX session with a virtual GPU, the process's session id compared with
//!   `HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\GlassSessionId` (the console
//!   session): a different id means remote. `SESSIONNAME` (`RDP-Tcp#N`) and `CLIENTNAME`
//!   are reported as supporting markers.
//! - Linux: xrdp sets `XRDP_SESSION` and friends; other remote stacks leave markers too.
//!   Without one the answer is `unknown` (a local X or Wayland session has no positive sign).
//! - Elsewhere: `unknown`.

use crate::proto::msg::{RemoteSession, SessionKind};

/// Environment variables that only a remote desktop session sets, on Linux.
pub const LINUX_MARKERS: &[&str] = &[
    "XRDP_SESSION",
    "XRDP_SOCKET_PATH",
    "XRDP_PULSE_SINK_SOCKET",
    "XRDP_PULSE_SOURCE_SOCKET",
    "CHROME_REMOTE_DESKTOP_SESSION",
    "NXSESSIONID",
    "X2GO_SESSION",
];

/// Classifies a Linux environment (`get` reads a variable).
pub fn classify_linux(get: impl Fn(&str) -> Option<String>) -> RemoteSession {
    let evidence: Vec<String> = LINUX_MARKERS
        .iter()
        .filter_map(|k| get(k).map(|v| format!("{k}={v}")))
        .collect();
    let kind = if evidence.is_empty() {
        SessionKind::Unknown
    } else {
        SessionKind::Remote
    };
    RemoteSession { kind, evidence }
}

/// Classifies Windows facts: `SM_REMOTESESSION`, the process's and the console (glass)
/// session ids, and the `SESSIONNAME`/`CLIENTNAME` variables.
pub fn classify_windows(
    sm_remote: bool,
    session_id: Option<u32>,
    glass_session_id: Option<u32>,
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
    let rdp_name = session_name
        .as_deref()
        .is_some_and(|n| n.to_ascii_uppercase().starts_with("RDP-"));
    if let Some(n) = session_name {
        evidence.push(format!("SESSIONNAME={n}"));
    }
    if let Some(c) = client_name {
        evidence.push(format!("CLIENTNAME={c}"));
    }
    let kind = if sm_remote || glass_differs || rdp_name {
        SessionKind::Remote
    } else {
        SessionKind::Local
    };
    RemoteSession { kind, evidence }
}

/// Detects the session kind of this process.
pub fn detect() -> RemoteSession {
    #[cfg(windows)]
    {
        windows::detect()
    }
    #[cfg(target_os = "linux")]
    {
        classify_linux(|k| std::env::var(k).ok())
    }
    #[cfg(not(any(windows, target_os = "linux")))]
    {
        RemoteSession {
            kind: SessionKind::Unknown,
            evidence: vec![format!("no detection for {}", std::env::consts::OS)],
        }
    }
}

#[cfg(windows)]
mod windows {
    use windows_sys::Win32::System::Registry::{
        RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_REG_DWORD,
    };
    use windows_sys::Win32::System::RemoteDesktop::ProcessIdToSessionId;
    use windows_sys::Win32::System::Threading::GetCurrentProcessId;
    use windows_sys::Win32::UI::WindowsAndMessaging::{GetSystemMetrics, SM_REMOTESESSION};

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(std::iter::once(0)).collect()
    }

    fn glass_session_id() -> Option<u32> {
        let key = wide(r"SYSTEM\CurrentControlSet\Control\Terminal Server");
        let value = wide("GlassSessionId");
        let mut data: u32 = 0;
        let mut size = std::mem::size_of::<u32>() as u32;
        // SAFETY: both strings are NUL-terminated UTF-16 that outlive the call; `data` is a
        // 4-byte buffer and `size` says so; RRF_RT_REG_DWORD makes the API write at most 4.
        let rc = unsafe {
            RegGetValueW(
                HKEY_LOCAL_MACHINE,
                key.as_ptr(),
                value.as_ptr(),
                RRF_RT_REG_DWORD,
                std::ptr::null_mut(),
                (&mut data as *mut u32).cast(),
                &mut size,
            )
        };
        (rc == 0).then_some(data)
    }

    fn session_id() -> Option<u32> {
        let mut id: u32 = 0;
        // SAFETY: `id` is a valid out pointer for the duration of the call.
        let ok = unsafe { ProcessIdToSessionId(GetCurrentProcessId(), &mut id) };
        (ok != 0).then_some(id)
    }

    pub(super) fn detect() -> super::RemoteSession {
        // SAFETY: GetSystemMetrics has no preconditions.
        let sm = unsafe { GetSystemMetrics(SM_REMOTESESSION) } != 0;
        super::classify_windows(
            sm,
            session_id(),
            glass_session_id(),
            std::env::var("SESSIONNAME").ok(),
            std::env::var("CLIENTNAME").ok(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xrdp_markers_mean_remote_and_are_reported() {
        let r = classify_linux(|k| (k == "XRDP_SESSION").then(|| "1".to_string()));
        assert_eq!(r.kind, SessionKind::Remote);
        assert_eq!(r.evidence, vec!["XRDP_SESSION=1".to_string()]);
        let r = classify_linux(|_| None);
        assert_eq!(r.kind, SessionKind::Unknown);
        assert!(r.evidence.is_empty());
    }

    #[test]
    fn windows_remote_by_metric_by_glass_id_or_by_session_name() {
        let local = classify_windows(false, Some(1), Some(1), Some("Console".into()), None);
        assert_eq!(local.kind, SessionKind::Local);
        let metric = classify_windows(true, Some(2), Some(1), None, None);
        assert_eq!(metric.kind, SessionKind::Remote);
        // RemoteFX vGPU: the metric says local, the glass session id says otherwise.
        let glass = classify_windows(false, Some(3), Some(1), None, Some("LAPTOP".into()));
        assert_eq!(glass.kind, SessionKind::Remote);
        assert!(glass.evidence.iter().any(|e| e == "CLIENTNAME=LAPTOP"));
        let name = classify_windows(false, None, None, Some("RDP-Tcp#4".into()), None);
        assert_eq!(name.kind, SessionKind::Remote);
        assert!(name.evidence.iter().any(|e| e.contains("unreadable")));
    }
}
