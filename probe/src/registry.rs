//! The Windows registry as earshot meets it on both sides: the keys where Group Policy,
//! Intune and the RDP listener keep the settings that gate audio redirection (the probe
//! reads them on a session host; the harness names them in its reports and reads them
//! from Registry.pol and .reg files), and the registry's value types.

/// The Remote Desktop Services policies (Group Policy / Intune): `fDisableCam` (playback
/// redirection), `fDisableAudioCapture` (recording redirection), `AllowedAudioQualityMode`.
pub const TS_POLICY_KEY: &str = r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services";

/// The RDP listener's own settings: `fDisableCam`, `fDisableAudioCapture`, and
/// `AudioEnumeratorDll` (the DLL that makes the session's "Remote Audio" endpoints,
/// `rdpendp.dll` on a stock host). The policy key above wins over these.
pub const RDP_TCP_KEY: &str =
    r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp";

/// App privacy policy: `LetAppsAccessMicrophone` (0 user in control, 1 force allow,
/// 2 force deny). It governs Windows (packaged) apps.
pub const APP_PRIVACY_KEY: &str = r"HKLM\SOFTWARE\Policies\Microsoft\Windows\AppPrivacy";

/// Microphone consent for the whole machine: `Value` is REG_SZ `Allow` or `Deny`.
pub const MIC_CONSENT_MACHINE_KEY: &str = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\CapabilityAccessManager\ConsentStore\microphone";

/// Microphone consent for desktop (non-packaged) apps, such as the probe, machine-wide.
pub const MIC_CONSENT_MACHINE_DESKTOP_KEY: &str = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\CapabilityAccessManager\ConsentStore\microphone\NonPackaged";

/// Microphone consent of the session's user.
pub const MIC_CONSENT_USER_KEY: &str = r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\CapabilityAccessManager\ConsentStore\microphone";

/// Microphone consent of the session's user for desktop apps ("Let desktop apps access
/// your microphone").
pub const MIC_CONSENT_USER_DESKTOP_KEY: &str = r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\CapabilityAccessManager\ConsentStore\microphone\NonPackaged";

// The registry's type numbers (winnt.h), here so decoding builds and is tested everywhere.
/// `REG_NONE` (winnt.h).
pub const REG_NONE: u32 = 0;
/// `REG_SZ` (winnt.h).
pub const REG_SZ: u32 = 1;
/// `REG_EXPAND_SZ` (winnt.h).
pub const REG_EXPAND_SZ: u32 = 2;
/// `REG_BINARY` (winnt.h).
pub const REG_BINARY: u32 = 3;
/// `REG_DWORD` (winnt.h).
pub const REG_DWORD: u32 = 4;
/// `REG_DWORD_BIG_ENDIAN` (winnt.h).
pub const REG_DWORD_BIG_ENDIAN: u32 = 5;
/// `REG_LINK` (winnt.h).
pub const REG_LINK: u32 = 6;
/// `REG_MULTI_SZ` (winnt.h).
pub const REG_MULTI_SZ: u32 = 7;
/// `REG_RESOURCE_LIST` (winnt.h).
pub const REG_RESOURCE_LIST: u32 = 8;
/// `REG_FULL_RESOURCE_DESCRIPTOR` (winnt.h).
pub const REG_FULL_RESOURCE_DESCRIPTOR: u32 = 9;
/// `REG_RESOURCE_REQUIREMENTS_LIST` (winnt.h).
pub const REG_RESOURCE_REQUIREMENTS_LIST: u32 = 10;
/// `REG_QWORD` (winnt.h).
pub const REG_QWORD: u32 = 11;

/// The name of a registry type, e.g. `REG_SZ`; `type N` for a number Windows does not
/// define.
pub fn reg_type_name(reg_type: u32) -> String {
    let name = match reg_type {
        REG_NONE => "REG_NONE",
        REG_SZ => "REG_SZ",
        REG_EXPAND_SZ => "REG_EXPAND_SZ",
        REG_BINARY => "REG_BINARY",
        REG_DWORD => "REG_DWORD",
        REG_DWORD_BIG_ENDIAN => "REG_DWORD_BIG_ENDIAN",
        REG_LINK => "REG_LINK",
        REG_MULTI_SZ => "REG_MULTI_SZ",
        REG_RESOURCE_LIST => "REG_RESOURCE_LIST",
        REG_FULL_RESOURCE_DESCRIPTOR => "REG_FULL_RESOURCE_DESCRIPTOR",
        REG_RESOURCE_REQUIREMENTS_LIST => "REG_RESOURCE_REQUIREMENTS_LIST",
        REG_QWORD => "REG_QWORD",
        other => return format!("type {other}"),
    };
    name.to_string()
}
