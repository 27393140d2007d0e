use windows_sys::Win32::System::Registry::{RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_REG_DWORD};
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
        super::super::host_config::session_protocol(),
        std::env::var("SESSIONNAME").ok(),
        std::env::var("CLIENTNAME").ok(),
    )
}
