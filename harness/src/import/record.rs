//! The registry operations both file formats are read into.

use super::Place;

/// One thing a registry file tells Windows to do. Records apply in file order: a later
/// one overrides an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegRecord {
    /// Where in the file.
    pub place: Place,
    /// The key, below `HKEY_LOCAL_MACHINE`, as written (registry keys compare without
    /// regard to case). A Registry.pol names no hive: the GPO's `Machine` file applies to
    /// HKLM. `None`: a key of another hive (a .reg export of HKEY_CURRENT_USER).
    pub key: Option<String>,
    /// What to do there.
    pub op: RegOp,
}

/// What a record does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegOp {
    /// Sets a value.
    Set {
        /// The value's name (empty: the key's default value).
        name: String,
        /// Its type and data.
        value: RegValue,
    },
    /// Deletes one value (`**del.NAME` in a .pol, `"NAME"=-` in a .reg).
    DeleteValue {
        /// The value's name.
        name: String,
    },
    /// Deletes every value of the key (`**DelVals.`).
    DeleteAllValues,
    /// Deletes the named values of the key (`**DeleteValues`, names separated by `;`).
    DeleteValues {
        /// The values' names.
        names: Vec<String>,
    },
    /// Deletes the named subkeys of the key with everything below them (`**DeleteKeys`).
    DeleteSubkeys {
        /// Subkey names, relative to the record's key.
        names: Vec<String>,
    },
    /// Deletes the key with everything below it (`[-KEY]` in a .reg).
    DeleteKey,
    /// Touches no value: creates the key (an empty value name with REG_NONE) or sets its
    /// security (`**SecureKey`).
    KeyOnly,
}

/// A value's type and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegValue {
    /// REG_DWORD (4), four bytes little-endian.
    Dword(u32),
    /// REG_SZ (1) or REG_EXPAND_SZ (2).
    Text {
        /// 1 or 2.
        type_code: u32,
        /// The string, without its terminating NUL.
        text: String,
    },
    /// REG_MULTI_SZ (7): its strings, in order, without the empty one that ends the list.
    MultiText(Vec<String>),
    /// Anything else, or a DWORD whose data is not four bytes: kept as its type and size.
    Other {
        /// The type, as in WinNT.h.
        type_code: u32,
        /// Bytes of data.
        len: usize,
    },
}

impl RegValue {
    /// The value in words for messages: `REG_DWORD 1`, `REG_SZ "1"`, `REG_BINARY (3 bytes)`.
    pub fn describe(&self) -> String {
        match self {
            RegValue::Dword(v) => format!("REG_DWORD {v}"),
            RegValue::Text { type_code, text } => {
                let shown: String = text.chars().take(40).collect();
                let more = if shown.len() < text.len() { "..." } else { "" };
                format!("{} {shown:?}{more}", reg_type_name(*type_code))
            }
            RegValue::MultiText(items) => {
                let shown: Vec<String> = items.iter().take(4).map(|i| format!("{i:?}")).collect();
                let more = if items.len() > 4 { ", ..." } else { "" };
                format!("REG_MULTI_SZ [{}{more}]", shown.join(", "))
            }
            RegValue::Other { type_code, len } => {
                format!("{} ({len} bytes of data)", reg_type_name(*type_code))
            }
        }
    }
}

/// The strings of REG_MULTI_SZ data: UTF-16LE (`utf16`) or single bytes, each ended by a
/// NUL, the list by an empty one; `None` for UTF-16 that does not decode.
pub(crate) fn multi_sz(data: &[u8], utf16: bool) -> Option<Vec<String>> {
    let text = if utf16 {
        if !data.len().is_multiple_of(2) {
            return None;
        }
        let units = data
            .chunks_exact(2)
            .map(|u| u16::from_le_bytes([u[0], u[1]]));
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .ok()?
    } else {
        data.iter().map(|&b| char::from(b)).collect()
    };
    Some(
        text.split('\0')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// A registry type's name (WinNT.h), or `type N` for one without a name: the probe's,
/// so that a .reg file and a host's registry name types alike.
pub use earshot_probe::registry::reg_type_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_describe_themselves_with_their_type() {
        assert_eq!(RegValue::Dword(7).describe(), "REG_DWORD 7");
        assert_eq!(
            RegValue::Text {
                type_code: 1,
                text: "1".into()
            }
            .describe(),
            "REG_SZ \"1\""
        );
        assert_eq!(
            RegValue::Other {
                type_code: 4,
                len: 2
            }
            .describe(),
            "REG_DWORD (2 bytes of data)"
        );
        assert_eq!(reg_type_name(99), "type 99");
        let long = RegValue::Text {
            type_code: 2,
            text: "x".repeat(100),
        }
        .describe();
        assert!(
            long.starts_with("REG_EXPAND_SZ \"xxx") && long.ends_with("\"..."),
            "{long}"
        );
    }
}
