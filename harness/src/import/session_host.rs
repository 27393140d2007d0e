//! The session host layer from a registry file: the records of a Registry.pol or a .reg
//! export replayed, in order, onto the four settings earshot knows. Every other entry is
//! ignored and counted.

use std::path::Path;

use super::error::ParseError;
use super::{reg_file, registry_pol, ImportError, Place, RegOp, RegRecord, RegValue};
pub use crate::registry::AppList;

const TERMINAL_SERVICES: &str = r"SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services";
const APP_PRIVACY: &str = r"SOFTWARE\Policies\Microsoft\Windows\AppPrivacy";

/// A session host setting earshot reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Setting {
    /// `fDisableCam`: Allow audio and video playback redirection.
    FDisableCam,
    /// `fDisableAudioCapture`: Allow audio recording redirection.
    FDisableAudioCapture,
    /// `AllowedAudioQualityMode`: Limit audio playback quality.
    AllowedAudioQualityMode,
    /// `LetAppsAccessMicrophone`: Let Windows apps access the microphone.
    LetAppsAccessMicrophone,
}

impl Setting {
    /// Every setting, in the order reports list them.
    pub const ALL: [Setting; 4] = [
        Setting::FDisableCam,
        Setting::FDisableAudioCapture,
        Setting::AllowedAudioQualityMode,
        Setting::LetAppsAccessMicrophone,
    ];

    /// The registry value's name (also the scenario key).
    pub fn name(self) -> &'static str {
        match self {
            Setting::FDisableCam => "fDisableCam",
            Setting::FDisableAudioCapture => "fDisableAudioCapture",
            Setting::AllowedAudioQualityMode => "AllowedAudioQualityMode",
            Setting::LetAppsAccessMicrophone => "LetAppsAccessMicrophone",
        }
    }

    /// The key below HKEY_LOCAL_MACHINE that holds it.
    pub fn key(self) -> &'static str {
        match self {
            Setting::LetAppsAccessMicrophone => APP_PRIVACY,
            _ => TERMINAL_SERVICES,
        }
    }

    /// The name the Group Policy editor shows (also a scenario key).
    pub fn display_name(self) -> &'static str {
        match self {
            Setting::FDisableCam => "Allow audio and video playback redirection",
            Setting::FDisableAudioCapture => "Allow audio recording redirection",
            Setting::AllowedAudioQualityMode => "Limit audio playback quality",
            Setting::LetAppsAccessMicrophone => "Let Windows apps access the microphone",
        }
    }

    /// Checks a DWORD against the setting's values, with the scenario's own messages.
    fn check(self, v: u32) -> Result<(), String> {
        use crate::registry::{AppAccess, Flag, QualityPolicy};
        let v = i64::from(v);
        match self {
            Setting::FDisableCam | Setting::FDisableAudioCapture => Flag::try_from(v).map(drop),
            Setting::AllowedAudioQualityMode => QualityPolicy::try_from(v).map(drop),
            Setting::LetAppsAccessMicrophone => AppAccess::try_from(v).map(drop),
        }
    }

    /// The values, for a message about a value of the wrong type.
    fn values(self) -> &'static str {
        match self {
            Setting::FDisableCam | Setting::FDisableAudioCapture => "0 (allowed) or 1 (blocked)",
            Setting::AllowedAudioQualityMode => "1 (dynamic), 3 (medium) or 7 (high)",
            Setting::LetAppsAccessMicrophone => {
                "0 (user in control), 1 (force allow) or 2 (force deny)"
            }
        }
    }
}

/// What a file says about one per-app list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedList {
    /// Which.
    pub list: AppList,
    /// The package family names after every record of the file; `None`: deleted.
    pub apps: Option<Vec<String>>,
    /// The record that decided it.
    pub place: Place,
}

/// The file format, told from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// A Group Policy object's Registry.pol.
    RegistryPol,
    /// A `reg export` / Registry Editor .reg file.
    RegExport,
}

impl std::fmt::Display for ImportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImportFormat::RegistryPol => "Registry.pol",
            ImportFormat::RegExport => ".reg export",
        })
    }
}

/// What a file says about one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportedSetting {
    /// Which.
    pub setting: Setting,
    /// Its value after every record of the file; `None`: deleted (not configured).
    pub value: Option<u32>,
    /// The record that decided it (the last one that touched it).
    pub place: Place,
}

/// The session host layer as a file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostImport {
    /// The file, as named in messages.
    pub file: String,
    /// Its format.
    pub format: ImportFormat,
    /// The settings the file sets or deletes, in [`Setting::ALL`] order; a setting it
    /// does not mention is absent.
    pub settings: Vec<ImportedSetting>,
    /// The per-app microphone lists the file sets or deletes, in [`AppList::ALL`] order.
    pub lists: Vec<ImportedList>,
    /// Records (entries of a .pol; key, value and deletion lines of a .reg) in the file.
    pub records: usize,
    /// Records that touch none of the four settings and none of the per-app lists.
    pub ignored: usize,
}

impl HostImport {
    /// What the file says about `setting`: `None` if it does not mention it,
    /// `Some(None)` if it deletes it.
    pub fn get(&self, setting: Setting) -> Option<&ImportedSetting> {
        self.settings.iter().find(|s| s.setting == setting)
    }

    /// What the file says about `list`, if it mentions it.
    pub fn list(&self, list: AppList) -> Option<&ImportedList> {
        self.lists.iter().find(|l| l.list == list)
    }

    /// One line for reports: where the layer came from, what was taken, what ignored.
    pub fn summary(&self) -> String {
        let taken: Vec<String> = self
            .settings
            .iter()
            .map(|s| match s.value {
                Some(v) => format!("{}={v} ({})", s.setting.name(), s.place.short()),
                None => format!(
                    "{} deleted, so not configured ({})",
                    s.setting.name(),
                    s.place.short()
                ),
            })
            .chain(self.lists.iter().map(|l| match &l.apps {
                Some(apps) => format!(
                    "{}=[{}] ({})",
                    l.list.name(),
                    apps.join(", "),
                    l.place.short()
                ),
                None => format!("{} deleted ({})", l.list.name(), l.place.short()),
            }))
            .collect();
        format!(
            "session host policy imported from {} ({}): {}; {} of its {} entries ignored (not \
             audio redirection settings earshot reads)",
            self.file,
            self.format,
            if taken.is_empty() {
                "it sets or deletes none of fDisableCam, fDisableAudioCapture, \
                 AllowedAudioQualityMode, LetAppsAccessMicrophone"
                    .to_string()
            } else {
                taken.join(", ")
            },
            self.ignored,
            self.records
        )
    }
}

/// Reads the session host layer from the Registry.pol or .reg file at `path`.
///
/// # Errors
/// [`ImportError`] naming the file, and the entry or line where it is malformed or holds
/// a value of the wrong type or out of range.
pub fn load_session_host(path: &Path) -> Result<HostImport, ImportError> {
    let file = path.display().to_string();
    let bytes = crate::text::read_input(path).map_err(|e| ImportError::Read {
        file: file.clone(),
        message: e.to_string(),
    })?;
    read_session_host(&bytes, &file)
}

/// Reads the session host layer from `bytes`, a Registry.pol or a .reg file (told apart
/// by their first bytes); `file` names it in errors.
///
/// # Errors
/// As [`load_session_host`].
pub fn read_session_host(bytes: &[u8], file: &str) -> Result<HostImport, ImportError> {
    let (format, records) = if registry_pol::looks_like(bytes) {
        let records = registry_pol::parse(bytes).map_err(|e| e.in_file(file))?;
        (ImportFormat::RegistryPol, records)
    } else {
        let text = reg_text(bytes).map_err(|message| ImportError::Format {
            file: file.to_string(),
            message,
        })?;
        if !reg_file::looks_like(&text) {
            return Err(ImportError::Format {
                file: file.to_string(),
                message: neither(bytes, &text),
            });
        }
        let records = reg_file::parse(&text).map_err(|e| e.in_file(file))?;
        (ImportFormat::RegExport, records)
    };
    let mut import = replay(&records).map_err(|e| e.in_file(file))?;
    import.file = file.to_string();
    import.format = format;
    Ok(import)
}

/// The text of a .reg file: UTF-16 or UTF-8 by [`crate::text::decode`], else ANSI (bytes
/// without a UTF-16 byte order mark or zeros that are not UTF-8). ANSI is read as Latin-1, which differs from Windows-1252 only in characters no setting earshot
/// reads contains.
fn reg_text(bytes: &[u8]) -> Result<String, String> {
    match crate::text::decode(bytes) {
        Ok(t) => Ok(t),
        Err(_)
            if !bytes.contains(&0)
                && !bytes.starts_with(&[0xff, 0xfe])
                && !bytes.starts_with(&[0xfe, 0xff]) =>
        {
            Ok(bytes.iter().map(|&b| char::from(b)).collect())
        }
        Err(m) => Err(format!(
            "{m}: expected a Registry.pol (it starts with `PReg`) or a .reg export (its first \
             line is `{}`)",
            reg_file::HEADER
        )),
    }
}

/// Why `bytes` are neither format, with a hint when they look like one of them broken.
fn neither(bytes: &[u8], text: &str) -> String {
    let start = "neither a Registry.pol (it would start with `PReg`) nor a .reg export (its first \
                 line would be `Windows Registry Editor Version 5.00`)";
    if bytes.starts_with(&[b'[', 0]) {
        format!(
            "{start}: it starts like the entries of a Registry.pol without their 8-byte header \
             (PReg, version 1)"
        )
    } else if text.to_ascii_uppercase().contains("[HKEY_") {
        format!(
            "{start}: it has registry keys but its first line is not the header `{}`; export \
             it again with `reg export`",
            reg_file::HEADER
        )
    } else if bytes.is_empty() {
        format!("{start}: the file is empty")
    } else {
        start.to_string()
    }
}

/// Whether `key` is `ancestor` or below it (registry keys compare without regard to case).
fn is_at_or_below(key: &str, ancestor: &str) -> bool {
    let (key, ancestor) = (key.trim_matches('\\'), ancestor.trim_matches('\\'));
    key.len() >= ancestor.len()
        && key.is_char_boundary(ancestor.len())
        && key[..ancestor.len()].eq_ignore_ascii_case(ancestor)
        && (key.len() == ancestor.len() || key.as_bytes()[ancestor.len()] == b'\\')
}

/// Replays `records` onto the four settings.
fn replay(records: &[RegRecord]) -> Result<HostImport, ParseError> {
    let mut state: Vec<ImportedSetting> = Vec::new();
    let mut lists: Vec<ImportedList> = Vec::new();
    let mut ignored = 0;
    for r in records {
        let (touched, listed) = match &r.key {
            None => (vec![], vec![]),
            Some(key) => (
                apply(key, &r.op, r.place)?,
                apply_lists(key, &r.op, r.place)?,
            ),
        };
        if touched.is_empty() && listed.is_empty() {
            ignored += 1;
        }
        for l in listed {
            match lists.iter_mut().find(|x| x.list == l.list) {
                Some(x) => *x = l,
                None => lists.push(l),
            }
        }
        for t in touched {
            match state.iter_mut().find(|s| s.setting == t.setting) {
                Some(s) => *s = t,
                None => state.push(t),
            }
        }
    }
    state.sort_by_key(|s| s.setting);
    lists.sort_by_key(|l| l.list);
    Ok(HostImport {
        file: String::new(),
        format: ImportFormat::RegistryPol,
        settings: state,
        lists,
        records: records.len(),
        ignored,
    })
}

/// What one record does to the settings.
fn apply(key: &str, op: &RegOp, place: Place) -> Result<Vec<ImportedSetting>, ParseError> {
    let in_key = |s: &Setting| key.trim_matches('\\').eq_ignore_ascii_case(s.key());
    let named = |name: &str| {
        Setting::ALL
            .into_iter()
            .find(|s| in_key(s) && s.name().eq_ignore_ascii_case(name))
    };
    let deleted = |s: Setting| ImportedSetting {
        setting: s,
        value: None,
        place,
    };
    Ok(match op {
        RegOp::Set { name, value } => match named(name) {
            Some(s) => vec![ImportedSetting {
                setting: s,
                value: Some(dword(s, value, place)?),
                place,
            }],
            None => vec![],
        },
        RegOp::DeleteValue { name } => named(name).map(deleted).into_iter().collect(),
        RegOp::DeleteValues { names } => {
            names.iter().filter_map(|n| named(n)).map(deleted).collect()
        }
        RegOp::DeleteAllValues => Setting::ALL
            .into_iter()
            .filter(in_key)
            .map(deleted)
            .collect(),
        RegOp::DeleteSubkeys { names } => Setting::ALL
            .into_iter()
            .filter(|s| {
                names
                    .iter()
                    .any(|n| is_at_or_below(s.key(), &format!("{}\\{n}", key.trim_matches('\\'))))
            })
            .map(deleted)
            .collect(),
        RegOp::DeleteKey => Setting::ALL
            .into_iter()
            .filter(|s| is_at_or_below(s.key(), key))
            .map(deleted)
            .collect(),
        RegOp::KeyOnly => vec![],
    })
}

/// What one record does to the per-app lists (all under the app privacy key).
fn apply_lists(key: &str, op: &RegOp, place: Place) -> Result<Vec<ImportedList>, ParseError> {
    let in_key = key.trim_matches('\\').eq_ignore_ascii_case(APP_PRIVACY);
    let named = |name: &str| {
        AppList::ALL
            .into_iter()
            .find(|l| in_key && l.name().eq_ignore_ascii_case(name))
    };
    let deleted = |list: AppList| ImportedList {
        list,
        apps: None,
        place,
    };
    let under = |ancestor: &str| is_at_or_below(APP_PRIVACY, ancestor);
    Ok(match op {
        RegOp::Set { name, value } => match named(name) {
            Some(list) => vec![ImportedList {
                list,
                apps: Some(match value {
                    RegValue::MultiText(items) => items.clone(),
                    // Group Policy writes a one-app list as REG_SZ on some paths.
                    RegValue::Text { text, .. } => vec![text.clone()],
                    other => {
                        return Err(ParseError::new(
                            place,
                            format!(
                                "`{}` is {}: expected a REG_MULTI_SZ of package family names \
                                 (in a .reg file `\"{}\"=hex(7):...`)",
                                list.name(),
                                other.describe(),
                                list.name()
                            ),
                        ))
                    }
                }),
                place,
            }],
            None => vec![],
        },
        RegOp::DeleteValue { name } => named(name).map(deleted).into_iter().collect(),
        RegOp::DeleteValues { names } => {
            names.iter().filter_map(|n| named(n)).map(deleted).collect()
        }
        RegOp::DeleteAllValues if in_key => AppList::ALL.into_iter().map(deleted).collect(),
        RegOp::DeleteSubkeys { names }
            if names
                .iter()
                .any(|n| under(&format!("{}\\{n}", key.trim_matches('\\')))) =>
        {
            AppList::ALL.into_iter().map(deleted).collect()
        }
        RegOp::DeleteKey if under(key) => AppList::ALL.into_iter().map(deleted).collect(),
        _ => vec![],
    })
}

/// The DWORD a setting's value must be, or an error naming what it is instead.
fn dword(setting: Setting, value: &RegValue, place: Place) -> Result<u32, ParseError> {
    let name = setting.name();
    match value {
        RegValue::Dword(v) => setting.check(*v).map(|()| *v).map_err(|m| {
            ParseError::new(place, format!("`{name}` = {v}: {m}"))
        }),
        other => Err(ParseError::new(
            place,
            format!(
                "`{name}` is {}: expected a REG_DWORD, {} (in a .reg file `\"{name}\"=dword:0000000N`)",
                other.describe(),
                setting.values()
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
