//! `.reg` files as `reg export` and the Registry Editor write them: UTF-16LE with a byte
//! order mark under the header `Windows Registry Editor Version 5.00`, or ANSI under
//! `REGEDIT4` (UTF-8 is read too).
//!
//! ```text
//! Windows Registry Editor Version 5.00
//!
//! [HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services]
//! "fDisableCam"=dword:00000001
//! "SecurityLayer"="2"
//! "Blob"=hex:01,02,\
//!   03
//! "Gone"=-
//!
//! [-HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Old]
//! ```
//!
//! A `[KEY]` line opens a key, `[-KEY]` deletes it with everything below it; the lines
//! after a key set its values (`@` is the default value) or delete them (`=-`). Data is a
//! quoted string (REG_SZ, `\\` and `\"` escaped), `dword:` and eight hex digits, or
//! `hex:` / `hex(T):` and comma-separated bytes of type T, continued over lines ending in
//! `\`. Lines starting with `;` are comments.

use super::error::ParseError;
use super::{Place, RegOp, RegRecord, RegValue};

/// The first line of a .reg file from Windows 2000 on.
pub const HEADER: &str = "Windows Registry Editor Version 5.00";
/// The first line of an older (ANSI) .reg file.
pub const HEADER_V4: &str = "REGEDIT4";

/// The first line that is not blank, with its 1-based number.
fn first_line(text: &str) -> Option<(usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            (
                i + 1,
                l.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}'),
            )
        })
        .find(|(_, l)| !l.is_empty())
}

/// Whether `text` starts like a .reg file (its header line).
pub fn looks_like(text: &str) -> bool {
    matches!(first_line(text), Some((_, l)) if is_header(l))
}

fn is_header(line: &str) -> bool {
    line.eq_ignore_ascii_case(HEADER) || line.eq_ignore_ascii_case(HEADER_V4)
}

/// Parses a whole .reg file into its records, in file order.
///
/// # Errors
/// [`ParseError`] at the line that is malformed: no header, a value outside a key, an
/// unterminated quote or key, data that is not a string, `dword:`, `hex:` or `-`.
pub fn parse(text: &str) -> Result<Vec<RegRecord>, ParseError> {
    match first_line(text) {
        Some((_, l)) if is_header(l) => {}
        Some((n, _)) => {
            return Err(ParseError::new(
                Place::Line(n),
                format!(
                    "expected the header `{HEADER}` (or `{HEADER_V4}`) as the first line, as \
                     `reg export` writes it"
                ),
            ))
        }
        None => {
            return Err(ParseError::new(
                Place::Line(1),
                format!("the file is empty: expected the header `{HEADER}`"),
            ))
        }
    }
    let utf16_strings =
        !matches!(first_line(text), Some((_, l)) if l.eq_ignore_ascii_case(HEADER_V4));
    let mut records = Vec::new();
    // The key the value lines apply to: None before the first key line; Some(None) for a
    // key of another hive.
    let mut key: Option<Option<String>> = None;
    let mut header_seen = false;
    for (number, line) in logical_lines(text) {
        let place = Place::Line(number);
        let bad = |m: String| ParseError::new(place, m);
        let line = line.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if !header_seen {
            header_seen = true;
            continue;
        }
        if let Some(inner) = line.strip_prefix('[') {
            let Some(inner) = inner.strip_suffix(']') else {
                return Err(bad(
                    "a key line must end with `]`: expected `[HKEY_LOCAL_MACHINE\\...]`".into(),
                ));
            };
            let (delete, path) = match inner.strip_prefix('-') {
                Some(p) => (true, p),
                None => (false, inner),
            };
            let below_hklm = local_machine_path(path.trim());
            if delete {
                records.push(RegRecord {
                    place,
                    key: below_hklm,
                    op: RegOp::DeleteKey,
                });
                key = None;
            } else {
                records.push(RegRecord {
                    place,
                    key: below_hklm.clone(),
                    op: RegOp::KeyOnly,
                });
                key = Some(below_hklm);
            }
            continue;
        }
        if !(line.starts_with('"') || line.starts_with('@')) {
            return Err(bad(
                "expected a `[KEY]` line, a `\"NAME\"=DATA` or `@=DATA` value line, a `;` \
                 comment or a blank line"
                    .into(),
            ));
        }
        let Some(current) = &key else {
            return Err(bad(
                "a value line before any `[KEY]` line (or after a `[-KEY]` deletion): the key \
                 it belongs to is missing"
                    .into(),
            ));
        };
        let (name, rest) = if let Some(rest) = line.strip_prefix('@') {
            (String::new(), rest)
        } else {
            quoted(line).ok_or_else(|| {
                bad(
                    "the value name's closing `\"` is missing (escape `\"` inside it as `\\\"`)"
                        .into(),
                )
            })?
        };
        let Some(data) = rest.trim_start().strip_prefix('=') else {
            return Err(bad(format!("expected `=` after the value name `{name}`")));
        };
        let op = value_op(name, data.trim(), utf16_strings).map_err(bad)?;
        records.push(RegRecord {
            place,
            key: current.clone(),
            op,
        });
    }
    Ok(records)
}

/// The path below HKEY_LOCAL_MACHINE, or None for another hive.
fn local_machine_path(path: &str) -> Option<String> {
    let (hive, rest) = path.split_once('\\').unwrap_or((path, ""));
    (hive.eq_ignore_ascii_case("HKEY_LOCAL_MACHINE") || hive.eq_ignore_ascii_case("HKLM"))
        .then(|| rest.trim_end_matches('\\').to_string())
}

/// Lines with their 1-based numbers, hex data continued over lines ending in `\` joined.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    // Whether the logical line being built is hex data (decided once, on its first line:
    // asking the joined line again for every continuation would be quadratic).
    let mut hex = false;
    let mut open = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        match out.last_mut() {
            Some((_, joined)) if open => joined.push_str(line.trim_start()),
            _ => {
                hex = line.to_ascii_lowercase().contains("=hex");
                out.push((i + 1, line.to_string()));
            }
        }
        open = false;
        if let Some((_, l)) = out.last_mut() {
            if hex && l.ends_with('\\') {
                l.pop();
                open = true;
            }
        }
    }
    out
}

/// A quoted string at the start of `s` (`\\` and `\"` escaped), and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &body[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

fn value_op(name: String, data: &str, utf16_strings: bool) -> Result<RegOp, String> {
    if data == "-" {
        return Ok(RegOp::DeleteValue { name });
    }
    let value = if data.starts_with('"') {
        let Some((text, rest)) = quoted(data) else {
            return Err(format!("the string of `{name}` has no closing `\"`"));
        };
        if !rest.trim().is_empty() {
            return Err(format!(
                "unexpected `{}` after the string of `{name}`",
                rest.trim()
            ));
        }
        RegValue::Text { type_code: 1, text }
    } else if let Some(hex) = strip_prefix_ci(data, "dword:") {
        let hex = hex.trim();
        if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`{name}`: `dword:{hex}` is not a DWORD: expected up to 8 hex digits, e.g. \
                 dword:00000001"
            ));
        }
        RegValue::Dword(u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?)
    } else if let Some(rest) = strip_prefix_ci(data, "hex") {
        let (type_code, bytes) = if let Some(b) = rest.strip_prefix(':') {
            (3, b)
        } else {
            let t = rest
                .strip_prefix('(')
                .and_then(|r| r.split_once("):"))
                .and_then(|(t, b)| u32::from_str_radix(t.trim(), 16).ok().map(|t| (t, b)));
            t.ok_or_else(|| {
                format!(
                    "`{name}`: expected `hex:` or `hex(T):` with T the type in hex, e.g. hex(2):"
                )
            })?
        };
        let bytes = hex_bytes(bytes).ok_or_else(|| {
            format!(
                "`{name}`: the hex data is not comma-separated bytes of two hex digits (e.g. \
                 01,00,00,00)"
            )
        })?;
        match (type_code, bytes.as_slice()) {
            (4, &[a, b, c, d]) => RegValue::Dword(u32::from_le_bytes([a, b, c, d])),
            (1 | 2, _) if utf16_strings && bytes.len() % 2 == 0 => {
                let units = bytes
                    .chunks_exact(2)
                    .map(|u| u16::from_le_bytes([u[0], u[1]]));
                match char::decode_utf16(units).collect::<Result<String, _>>() {
                    Ok(text) => RegValue::Text {
                        type_code,
                        text: text.trim_end_matches('\0').to_string(),
                    },
                    Err(_) => RegValue::Other {
                        type_code,
                        len: bytes.len(),
                    },
                }
            }
            (7, _) => match super::record::multi_sz(&bytes, utf16_strings) {
                Some(items) => RegValue::MultiText(items),
                None => RegValue::Other {
                    type_code,
                    len: bytes.len(),
                },
            },
            _ => RegValue::Other {
                type_code,
                len: bytes.len(),
            },
        }
    } else {
        return Err(format!(
            "`{name}`: expected its data as `-` (delete), a quoted string, `dword:XXXXXXXX` or \
             `hex:..`"
        ));
    };
    Ok(RegOp::Set { name, value })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(',')
        .map(|b| {
            let b = b.trim();
            (!b.is_empty() && b.len() <= 2)
                .then(|| u8::from_str_radix(b, 16).ok())
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &str = r"SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services";

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn an_export_is_read_value_by_value() {
        let text = format!(
            "{HEADER}\r\n\r\n[HKEY_LOCAL_MACHINE\\{TS}]\r\n\"fDisableCam\"=dword:00000001\r\n\
             \"SecurityLayer\"=\"2\"\r\n\"Quoted \\\"name\\\"\"=\"C:\\\\x\"\r\n\
             \"Multi\"=hex(7):41,00,00,00,\\\r\n  00,00\r\n@=hex(4):02,00,00,00\r\n\
             \"Gone\"=-\r\n; a comment\r\n[-HKEY_LOCAL_MACHINE\\SOFTWARE\\Old]\r\n\
             [HKEY_CURRENT_USER\\Software]\r\n\"x\"=dword:1\r\n"
        );
        let r = parse(&text).unwrap();
        let ts = Some(TS.to_string());
        let expected = vec![
            (3, ts.clone(), RegOp::KeyOnly),
            (
                4,
                ts.clone(),
                RegOp::Set {
                    name: "fDisableCam".into(),
                    value: RegValue::Dword(1),
                },
            ),
            (
                5,
                ts.clone(),
                RegOp::Set {
                    name: "SecurityLayer".into(),
                    value: RegValue::Text {
                        type_code: 1,
                        text: "2".into(),
                    },
                },
            ),
            (
                6,
                ts.clone(),
                RegOp::Set {
                    name: "Quoted \"name\"".into(),
                    value: RegValue::Text {
                        type_code: 1,
                        text: "C:\\x".into(),
                    },
                },
            ),
            (
                7,
                ts.clone(),
                RegOp::Set {
                    name: "Multi".into(),
                    value: RegValue::MultiText(vec!["A".into()]),
                },
            ),
            (
                9,
                ts.clone(),
                RegOp::Set {
                    name: String::new(),
                    value: RegValue::Dword(2),
                },
            ),
            (
                10,
                ts.clone(),
                RegOp::DeleteValue {
                    name: "Gone".into(),
                },
            ),
            (12, Some(r"SOFTWARE\Old".into()), RegOp::DeleteKey),
            (13, None, RegOp::KeyOnly),
            (
                14,
                None,
                RegOp::Set {
                    name: "x".into(),
                    value: RegValue::Dword(1),
                },
            ),
        ];
        let got: Vec<_> = r
            .into_iter()
            .map(|r| {
                let Place::Line(n) = r.place else {
                    panic!("{:?}", r.place)
                };
                (n, r.key, r.op)
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn regedit4_and_hklm_abbreviations_are_read() {
        let r = parse(&format!(
            "REGEDIT4\n\n[HKLM\\{TS}\\]\n\"fDisableCam\"=dword:0\n"
        ))
        .unwrap();
        assert_eq!(r[0].key.as_deref(), Some(TS));
        assert_eq!(
            r[1].op,
            RegOp::Set {
                name: "fDisableCam".into(),
                value: RegValue::Dword(0)
            }
        );
    }

    #[test]
    fn a_file_without_the_header_is_refused_at_its_first_line() {
        let e = error(&format!(
            "\n[HKEY_LOCAL_MACHINE\\{TS}]\n\"fDisableCam\"=dword:1\n"
        ));
        assert!(e.starts_with("line 2: ") && e.contains(HEADER), "{e}");
        assert!(error("").contains("empty"));
    }

    #[test]
    fn malformed_lines_are_named_by_number() {
        for (body, line, needle) in [
            ("\"fDisableCam\"=dword:1", 2, "before any `[KEY]`"),
            ("[HKEY_LOCAL_MACHINE\\X", 2, "must end with `]`"),
            ("[HKLM\\X]\n\"open=dword:1", 3, "closing `\"`"),
            ("[HKLM\\X]\n\"a\" dword:1", 3, "expected `=`"),
            ("[HKLM\\X]\n\"a\"=dword:123456789", 3, "up to 8 hex digits"),
            ("[HKLM\\X]\n\"a\"=dword:zz", 3, "not a DWORD"),
            ("[HKLM\\X]\n\"a\"=hex(q):00", 3, "hex(T):"),
            ("[HKLM\\X]\n\"a\"=hex:0,1,2x", 3, "comma-separated bytes"),
            ("[HKLM\\X]\n\"a\"=\"unterminated", 3, "no closing"),
            ("[HKLM\\X]\n\"a\"=\"x\" trailing", 3, "after the string"),
            ("[HKLM\\X]\n\"a\"=qword:1", 3, "expected its data"),
            ("[HKLM\\X]\nfDisableCam=1", 3, "value line"),
            ("[-HKLM\\X]\n\"a\"=dword:1", 3, "after a `[-KEY]`"),
        ] {
            let e = error(&format!("{HEADER}\n{body}\n"));
            assert!(e.starts_with(&format!("line {line}: ")), "{body}: {e}");
            assert!(e.contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn a_value_continued_over_a_hundred_thousand_lines_is_joined_whole() {
        // Joined line by line without asking the joined text again (once quadratic).
        let mut text = String::from(
            "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\X]\r\n\"Blob\"=hex:00,\\\r\n",
        );
        for _ in 0..100_000 {
            text.push_str("  01,02,03,\\\r\n");
        }
        text.push_str("  04\r\n\"After\"=dword:00000002\r\n");
        let records = parse(&text).unwrap();
        let values: Vec<&RegValue> = records
            .iter()
            .filter_map(|r| match &r.op {
                RegOp::Set { value, .. } => Some(value),
                _ => None,
            })
            .collect();
        assert_eq!(
            values,
            [
                &RegValue::Other {
                    type_code: 3,
                    len: 300_002
                },
                &RegValue::Dword(2)
            ]
        );
    }
}
