//! The registry values the session host layer is made of, checked as Windows reads them:
//! the DWORD settings of Terminal Services and app privacy, and the per-app microphone
//! lists. The scenario's `[policy.session_host]` table and the Registry.pol / .reg imports
//! both read them through these types, with the same messages.

use serde::Deserialize;

/// A registry DWORD that is 0 or 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Flag(pub u32);

impl TryFrom<i64> for Flag {
    type Error = String;
    fn try_from(v: i64) -> Result<Flag, String> {
        match v {
            0 | 1 => Ok(Flag(v as u32)),
            _ => Err(format!(
                "{v} is not a valid value: expected 0 (allowed) or 1 (blocked)"
            )),
        }
    }
}

/// `AllowedAudioQualityMode`: 1 dynamic, 3 medium, 7 high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct QualityPolicy(pub u32);

impl TryFrom<i64> for QualityPolicy {
    type Error = String;
    fn try_from(v: i64) -> Result<QualityPolicy, String> {
        match v {
            1 | 3 | 7 => Ok(QualityPolicy(v as u32)),
            _ => Err(format!(
                "{v} is not a valid value: expected 1 (dynamic), 3 (medium) or 7 (high)"
            )),
        }
    }
}

/// `LetAppsAccessMicrophone`: 0 user in control, 1 force allow, 2 force deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct AppAccess(pub u32);

impl TryFrom<i64> for AppAccess {
    type Error = String;
    fn try_from(v: i64) -> Result<AppAccess, String> {
        match v {
            0..=2 => Ok(AppAccess(v as u32)),
            _ => Err(format!(
                "{v} is not a valid value: expected 0 (user in control), 1 (force allow) or 2 \
                 (force deny)"
            )),
        }
    }
}

/// A per-app list of "Let Windows apps access the microphone": package family names whose
/// access the list decides, whatever `LetAppsAccessMicrophone` sets as the default. Like
/// that default, the lists govern Windows (packaged) apps only: the probe, a desktop app,
/// is in none of them. They are read so that a report says which apps the policy denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AppList {
    /// `LetAppsAccessMicrophone_ForceAllowTheseApps`.
    ForceAllow,
    /// `LetAppsAccessMicrophone_ForceDenyTheseApps`.
    ForceDeny,
    /// `LetAppsAccessMicrophone_UserInControlOfTheseApps`.
    UserInControl,
}

impl AppList {
    /// Every list, in the order reports give them.
    pub const ALL: [AppList; 3] = [
        AppList::ForceAllow,
        AppList::ForceDeny,
        AppList::UserInControl,
    ];

    /// The registry value's name (also the scenario key).
    pub fn name(self) -> &'static str {
        match self {
            AppList::ForceAllow => "LetAppsAccessMicrophone_ForceAllowTheseApps",
            AppList::ForceDeny => "LetAppsAccessMicrophone_ForceDenyTheseApps",
            AppList::UserInControl => "LetAppsAccessMicrophone_UserInControlOfTheseApps",
        }
    }

    /// What the list does to the apps it names, in words.
    pub fn words(self) -> &'static str {
        match self {
            AppList::ForceAllow => "always allowed the microphone",
            AppList::ForceDeny => "denied the microphone",
            AppList::UserInControl => "left to the user's choice",
        }
    }
}
