//! `Registry.pol`, the registry half of a Group Policy object
//! (`SYSVOL\<domain>\Policies\{GUID}\Machine\Registry.pol`, or a GPO backup's
//! `DomainSysvol\GPO\Machine\registry.pol`).
//!
//! The format (Microsoft's "Registry Policy File Format"; [MS-GPREG] 2.2.1): an 8-byte
//! header, the signature `PReg` (0x67655250 little-endian) and the version 1 as a 32-bit
//! little-endian number, then entries one after another, nothing between them:
//!
//! ```text
//! [ key NUL ; value NUL ; type ; size ; data ]
//! ```
//!
//! `[`, `;` and `]` are UTF-16LE characters (two bytes each), `key` and `value` UTF-16LE
//! strings ending in a NUL character, `type` and `size` 32-bit little-endian numbers and
//! `data` exactly `size` bytes. Files the Group Policy editor writes also hold entries
//! that only create a key (an empty value name, REG_NONE, size 0) and deletions: a value
//! named `**del.NAME` (REG_SZ, data a space) deletes NAME; `**DelVals.` every value of the
//! key; `**DeleteValues` and `**DeleteKeys` the values and subkeys listed in their data,
//! separated by `;`. `**SecureKey` sets the key's security and `**soft.NAME` sets NAME
//! only where it has no value yet (read here as setting it).
//!
//! The parser checks every length against the bytes that remain before it uses it, so a
//! truncated or hostile file is an error naming the entry and byte offset, never a panic
//! or a large allocation.

use super::error::ParseError;
use super::{Place, RegOp, RegRecord, RegValue};

/// The first four bytes of every Registry.pol.
pub const SIGNATURE: &[u8; 4] = b"PReg";
/// The only version of the format.
pub const VERSION: u32 = 1;

/// Whether `bytes` start like a Registry.pol (its signature).
pub fn looks_like(bytes: &[u8]) -> bool {
    bytes.starts_with(SIGNATURE)
}

/// Parses a whole Registry.pol into its records, in file order.
///
/// # Errors
/// [`ParseError`] at the header or at the entry (number and byte offset) that is
/// malformed: a missing or wrong signature, another version, a file cut short, an odd
/// number of bytes where UTF-16 text is expected, text that is not UTF-16, a size that
/// runs past the end of the file, a missing `[`, `;` or `]`.
pub fn parse(bytes: &[u8]) -> Result<Vec<RegRecord>, ParseError> {
    let header = |m: String| ParseError::new(Place::Header, m);
    if !looks_like(bytes) {
        let hint = if bytes.starts_with(&[b'[', 0]) {
            ": the file starts with an entry; the 8-byte header (PReg, version 1) is missing"
        } else {
            ""
        };
        return Err(header(format!(
            "expected the signature `PReg` (bytes 50 52 65 67) that every Registry.pol starts \
             with{hint}"
        )));
    }
    let Some(version) = bytes.get(4..8) else {
        return Err(header(format!(
            "the file ends after {} bytes, inside the 8-byte header (PReg, then the version 1 \
             as 4 bytes little-endian)",
            bytes.len()
        )));
    };
    let version = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
    if version != VERSION {
        return Err(header(format!(
            "version {version}: only version {VERSION} of the Registry.pol format exists \
             (bytes 01 00 00 00 after PReg)"
        )));
    }
    let mut cursor = Cursor {
        bytes,
        pos: 8,
        place: Place::Header,
    };
    let mut records = Vec::new();
    let mut index = 0;
    while cursor.pos < bytes.len() {
        index += 1;
        cursor.place = Place::Entry {
            index,
            offset: cursor.pos,
        };
        records.push(cursor.entry()?);
    }
    Ok(records)
}

/// Reads entries; `place` names the entry being read.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    place: Place,
}

const OPEN: u16 = b'[' as u16;
const SEMICOLON: u16 = b';' as u16;
const CLOSE: u16 = b']' as u16;

impl Cursor<'_> {
    fn error(&self, message: String) -> ParseError {
        ParseError::new(self.place, message)
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn entry(&mut self) -> Result<RegRecord, ParseError> {
        self.punctuation(OPEN, "at the start of the entry")?;
        let key = self.string("key")?;
        self.punctuation(SEMICOLON, "after the key")?;
        let value = self.string("value name")?;
        self.punctuation(SEMICOLON, "after the value name")?;
        let type_code = self.u32("type")?;
        self.punctuation(SEMICOLON, "after the type")?;
        let size = self.u32("size")?;
        self.punctuation(SEMICOLON, "after the size")?;
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > self.remaining() {
            return Err(self.error(format!(
                "the data size {size} runs past the end of the file: {} bytes remain after \
                 byte offset {} (a truncated file, or a corrupt size)",
                self.remaining(),
                self.pos
            )));
        }
        let data = &self.bytes[self.pos..self.pos + size];
        self.pos += size;
        self.punctuation(CLOSE, "after the data (is the size right?)")?;
        let op = self.op(value, type_code, data)?;
        Ok(RegRecord {
            place: self.place,
            key: Some(key),
            op,
        })
    }

    fn punctuation(&mut self, expected: u16, where_: &str) -> Result<(), ParseError> {
        let c = char::from_u32(u32::from(expected)).unwrap_or('?');
        match self.bytes.get(self.pos..self.pos + 2) {
            Some(&[lo, hi]) if u16::from_le_bytes([lo, hi]) == expected => {
                self.pos += 2;
                Ok(())
            }
            Some(&[lo, hi]) => Err(self.error(format!(
                "expected `{c}` (UTF-16LE {:02x} 00) {where_} at byte offset {}, found bytes \
                 {lo:02x} {hi:02x}",
                expected, self.pos
            ))),
            _ => Err(self.error(format!(
                "the file ends at byte offset {} where `{c}` was expected {where_} (truncated{})",
                self.bytes.len(),
                if self.remaining() == 1 {
                    ", or an odd number of bytes"
                } else {
                    ""
                }
            ))),
        }
    }

    fn u32(&mut self, field: &str) -> Result<u32, ParseError> {
        match self.bytes.get(self.pos..self.pos + 4) {
            Some(&[a, b, c, d]) => {
                self.pos += 4;
                Ok(u32::from_le_bytes([a, b, c, d]))
            }
            _ => Err(self.error(format!(
                "the file ends at byte offset {} inside the {field} (4 bytes little-endian; \
                 truncated)",
                self.bytes.len()
            ))),
        }
    }

    /// A NUL-terminated UTF-16LE string.
    fn string(&mut self, field: &str) -> Result<String, ParseError> {
        let start = self.pos;
        let rest = &self.bytes[start..];
        let Some(units) = rest
            .chunks_exact(2)
            .position(|u| u == [0, 0])
            .map(|n| &rest[..2 * n])
        else {
            let odd = if rest.len() % 2 == 1 {
                "; an odd number of bytes remain, so the file is cut inside a UTF-16 character"
            } else {
                ""
            };
            return Err(self.error(format!(
                "the {field} starting at byte offset {start} runs to the end of the file without \
                 its terminating NUL (truncated{odd})"
            )));
        };
        self.pos += units.len() + 2;
        decode_utf16(units).map_err(|unit| {
            self.error(format!(
                "the {field} starting at byte offset {start} is not valid UTF-16LE (unpaired \
                 surrogate {unit:#06x})"
            ))
        })
    }

    fn op(&self, value: String, type_code: u32, data: &[u8]) -> Result<RegOp, ParseError> {
        let lower = value.to_ascii_lowercase();
        let list = |what: &str| -> Result<Vec<String>, ParseError> {
            let text = data_text(data).ok_or_else(|| {
                self.error(format!(
                    "`{value}` lists the {what} to delete as UTF-16LE text, but its {} bytes \
                     of data are not",
                    data.len()
                ))
            })?;
            Ok(text
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect())
        };
        Ok(if lower.starts_with("**del.") {
            RegOp::DeleteValue {
                name: value["**del.".len()..].to_string(),
            }
        } else if lower.starts_with("**delvals") {
            RegOp::DeleteAllValues
        } else if lower == "**deletevalues" {
            RegOp::DeleteValues {
                names: list("values")?,
            }
        } else if lower == "**deletekeys" {
            RegOp::DeleteSubkeys {
                names: list("keys")?,
            }
        } else if lower.starts_with("**securekey") || (value.is_empty() && type_code == 0) {
            RegOp::KeyOnly
        } else if lower.starts_with("**soft.") {
            RegOp::Set {
                name: value["**soft.".len()..].to_string(),
                value: decode_value(type_code, data),
            }
        } else {
            RegOp::Set {
                name: value,
                value: decode_value(type_code, data),
            }
        })
    }
}

/// UTF-16LE units to a string, or the first unpaired surrogate.
fn decode_utf16(bytes: &[u8]) -> Result<String, u16> {
    char::decode_utf16(
        bytes
            .chunks_exact(2)
            .map(|u| u16::from_le_bytes([u[0], u[1]])),
    )
    .collect::<Result<String, _>>()
    .map_err(|e| e.unpaired_surrogate())
}

/// String data: UTF-16LE, an even number of bytes, without its trailing NULs.
fn data_text(data: &[u8]) -> Option<String> {
    if !data.len().is_multiple_of(2) {
        return None;
    }
    decode_utf16(data)
        .ok()
        .map(|s| s.trim_end_matches('\0').to_string())
}

fn decode_value(type_code: u32, data: &[u8]) -> RegValue {
    match (type_code, data) {
        (4, &[a, b, c, d]) => RegValue::Dword(u32::from_le_bytes([a, b, c, d])),
        (1 | 2, _) => match data_text(data) {
            Some(text) => RegValue::Text { type_code, text },
            None => RegValue::Other {
                type_code,
                len: data.len(),
            },
        },
        (7, _) => match super::record::multi_sz(data, true) {
            Some(items) => RegValue::MultiText(items),
            None => RegValue::Other {
                type_code,
                len: data.len(),
            },
        },
        _ => RegValue::Other {
            type_code,
            len: data.len(),
        },
    }
}

/// A Registry.pol writer for the tests, byte for byte as the format says.
#[cfg(test)]
pub(crate) mod writer {
    /// One entry.
    pub(crate) fn entry(key: &str, value: &str, type_code: u32, data: &[u8]) -> Vec<u8> {
        let utf16 = |s: &str| -> Vec<u8> {
            s.encode_utf16()
                .chain([0])
                .flat_map(u16::to_le_bytes)
                .collect()
        };
        let mut out = vec![b'[', 0];
        out.extend(utf16(key));
        out.extend([b';', 0]);
        out.extend(utf16(value));
        out.extend([b';', 0]);
        out.extend(type_code.to_le_bytes());
        out.extend([b';', 0]);
        out.extend((data.len() as u32).to_le_bytes());
        out.extend([b';', 0]);
        out.extend(data);
        out.extend([b']', 0]);
        out
    }

    /// REG_SZ data: UTF-16LE with its NUL.
    pub(crate) fn sz(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect()
    }

    /// A whole file: the header, then `entries`.
    pub(crate) fn file(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"PReg\x01\x00\x00\x00".to_vec();
        for e in entries {
            out.extend(e);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::writer::{entry, file, sz};
    use super::*;

    const TS: &str = r"Software\Policies\Microsoft\Windows NT\Terminal Services";

    #[test]
    fn a_header_alone_is_an_empty_policy() {
        assert_eq!(parse(b"PReg\x01\x00\x00\x00").unwrap(), vec![]);
    }

    #[test]
    fn values_deletions_and_key_entries_are_read_in_order() {
        let bytes = file(&[
            entry(r"Software\Policies\Microsoft\Windows", "", 0, &[]),
            entry(TS, "fDisableCam", 4, &1u32.to_le_bytes()),
            entry(TS, "**del.AllowedAudioQualityMode", 1, &sz(" ")),
            entry(TS, "SecurityLayer", 1, &sz("2")),
            entry(TS, "**DelVals.", 1, &sz(" ")),
            entry(
                TS,
                "**DeleteValues",
                1,
                &sz("fDisableCam;fDisableAudioCapture;"),
            ),
            entry(r"Software\Policies", "**DeleteKeys", 1, &sz("A;B")),
            entry(TS, "**soft.fDisableAudioCapture", 4, &0u32.to_le_bytes()),
            entry(TS, "Blob", 3, &[1, 2, 3]),
        ]);
        let r = parse(&bytes).unwrap();
        let ops: Vec<&RegOp> = r.iter().map(|r| &r.op).collect();
        assert_eq!(
            ops,
            [
                &RegOp::KeyOnly,
                &RegOp::Set {
                    name: "fDisableCam".into(),
                    value: RegValue::Dword(1)
                },
                &RegOp::DeleteValue {
                    name: "AllowedAudioQualityMode".into()
                },
                &RegOp::Set {
                    name: "SecurityLayer".into(),
                    value: RegValue::Text {
                        type_code: 1,
                        text: "2".into()
                    }
                },
                &RegOp::DeleteAllValues,
                &RegOp::DeleteValues {
                    names: vec!["fDisableCam".into(), "fDisableAudioCapture".into()]
                },
                &RegOp::DeleteSubkeys {
                    names: vec!["A".into(), "B".into()]
                },
                &RegOp::Set {
                    name: "fDisableAudioCapture".into(),
                    value: RegValue::Dword(0)
                },
                &RegOp::Set {
                    name: "Blob".into(),
                    value: RegValue::Other {
                        type_code: 3,
                        len: 3
                    }
                },
            ]
        );
        assert_eq!(r[1].key.as_deref(), Some(TS));
        assert_eq!(
            r[1].place,
            Place::Entry {
                index: 2,
                offset: 8 + entry(r"Software\Policies\Microsoft\Windows", "", 0, &[]).len()
            }
        );
    }

    fn error(bytes: &[u8]) -> String {
        parse(bytes).unwrap_err().to_string()
    }

    #[test]
    fn a_missing_or_short_header_is_named() {
        assert!(error(b"").contains("signature `PReg`"));
        assert!(error(b"PReg\x01").contains("ends after 5 bytes, inside the 8-byte header"));
        let headless = entry(TS, "fDisableCam", 4, &1u32.to_le_bytes());
        let e = error(&headless);
        assert!(
            e.starts_with("header: ") && e.contains("header (PReg, version 1) is missing"),
            "{e}"
        );
    }

    #[test]
    fn another_version_is_refused() {
        let e = error(b"PReg\x02\x00\x00\x00");
        assert!(
            e.contains("version 2") && e.contains("only version 1"),
            "{e}"
        );
    }

    #[test]
    fn every_cut_of_a_valid_file_is_an_error_naming_the_entry() {
        let bytes = file(&[
            entry(TS, "fDisableCam", 4, &1u32.to_le_bytes()),
            entry(TS, "fDisableAudioCapture", 4, &0u32.to_le_bytes()),
        ]);
        let second = 8 + entry(TS, "fDisableCam", 4, &1u32.to_le_bytes()).len();
        for len in 9..bytes.len() {
            if len == second {
                // A cut between entries leaves a shorter, valid file.
                assert_eq!(parse(&bytes[..len]).unwrap().len(), 1);
                continue;
            }
            let e = error(&bytes[..len]);
            let n = if len < second { 1 } else { 2 };
            assert!(e.starts_with(&format!("entry {n} ")), "cut at {len}: {e}");
            assert!(
                e.contains("truncated") || e.contains("runs past"),
                "cut at {len}: {e}"
            );
        }
    }

    #[test]
    fn an_odd_byte_count_inside_a_string_is_named() {
        let mut bytes = file(&[]);
        bytes.extend([b'[', 0, b'S', 0, b'o']);
        let e = error(&bytes);
        assert!(
            e.contains("key") && e.contains("odd number of bytes"),
            "{e}"
        );
    }

    #[test]
    fn a_size_past_the_end_is_named_with_what_remains() {
        let mut e = entry(TS, "fDisableCam", 4, &1u32.to_le_bytes());
        // The size field sits 4 + 2 bytes before the data's `;` and data (4) and `]` (2).
        let size_at = e.len() - 2 - 4 - 2 - 4;
        e[size_at..size_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let msg = error(&file(&[e]));
        assert!(msg.contains(&format!("data size {}", u32::MAX)), "{msg}");
        assert!(msg.contains("6 bytes remain"), "{msg}");
    }

    #[test]
    fn a_wrong_size_that_fits_is_caught_at_the_closing_bracket() {
        let mut e = entry(TS, "fDisableCam", 4, &1u32.to_le_bytes());
        let size_at = e.len() - 2 - 4 - 2 - 4;
        e[size_at..size_at + 4].copy_from_slice(&2u32.to_le_bytes());
        let msg = error(&file(&[e]));
        assert!(
            msg.contains("expected `]`") && msg.contains("is the size right"),
            "{msg}"
        );
    }

    #[test]
    fn text_that_is_not_utf16_is_named() {
        let mut bytes = file(&[]);
        bytes.extend([b'[', 0, 0x00, 0xd8, b'x', 0, 0, 0]);
        let e = error(&bytes);
        assert!(
            e.contains("not valid UTF-16LE") && e.contains("0xd800"),
            "{e}"
        );
    }

    #[test]
    fn missing_punctuation_names_what_was_found() {
        let mut e = entry(TS, "fDisableCam", 4, &1u32.to_le_bytes());
        e[0] = b'{';
        let msg = error(&file(&[e]));
        assert!(
            msg.contains("expected `[`") && msg.contains("found bytes 7b 00"),
            "{msg}"
        );
    }
}
