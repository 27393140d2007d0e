//! Text files as Windows tools save them: UTF-8 with or without a byte order mark, and
//! UTF-16 little- or big-endian with or without one (PowerShell 5's `Out-File` and
//! Notepad's "Unicode", and .rdp files saved by the Remote Desktop client, are UTF-16).

/// Why bytes are not text earshot reads. The words say what the bytes are not, never the
/// bytes themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Zero bytes where neither UTF-8 nor UTF-16 has them: a binary file.
    #[error("the file contains zero bytes and is neither UTF-8 nor UTF-16 text")]
    Binary,
    /// Not UTF-8, and nothing says UTF-16.
    #[error("the file is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// UTF-16 by its mark or its zeros, with a byte left over.
    #[error("the file looks like {encoding} but has an odd number of bytes")]
    OddLength {
        /// The encoding it looks like.
        encoding: &'static str,
    },
    /// UTF-16 by its mark or its zeros, with an unpaired surrogate.
    #[error("the file looks like {encoding} but is not valid")]
    InvalidUtf16 {
        /// The encoding it looks like.
        encoding: &'static str,
    },
}

/// Decodes `bytes` as UTF-8 or UTF-16 (by its byte order mark, else by where its zero
/// bytes fall: text of ASCII characters in UTF-16 has a zero in every other byte).
///
/// # Errors
/// What the bytes are not, in words, without echoing the bytes.
pub fn decode(bytes: &[u8]) -> Result<String, TextError> {
    if let Some(rest) = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        return utf8(rest);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        return utf16(rest, u16::from_le_bytes, "UTF-16 little-endian");
    }
    if let Some(rest) = bytes.strip_prefix(&[0xfe, 0xff]) {
        return utf16(rest, u16::from_be_bytes, "UTF-16 big-endian");
    }
    if bytes.contains(&0) {
        let zeros_at = |parity: usize| {
            bytes
                .iter()
                .enumerate()
                .filter(|(i, b)| i % 2 == parity && **b == 0)
                .count()
        };
        let half = bytes.len() / 2;
        // Mostly zeros on one parity and none on the other: UTF-16 without a mark.
        if zeros_at(1) * 2 > half && zeros_at(0) == 0 {
            return utf16(
                bytes,
                u16::from_le_bytes,
                "UTF-16 little-endian (no byte order mark)",
            );
        }
        if zeros_at(0) * 2 > half && zeros_at(1) == 0 {
            return utf16(
                bytes,
                u16::from_be_bytes,
                "UTF-16 big-endian (no byte order mark)",
            );
        }
        return Err(TextError::Binary);
    }
    utf8(bytes)
}

fn utf8(bytes: &[u8]) -> Result<String, TextError> {
    String::from_utf8(bytes.to_vec()).map_err(|e| TextError::NotUtf8 {
        offset: e.utf8_error().valid_up_to(),
    })
}

fn utf16(
    bytes: &[u8],
    unit: fn([u8; 2]) -> u16,
    encoding: &'static str,
) -> Result<String, TextError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(TextError::OddLength { encoding });
    }
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
    String::from_utf16(&units).map_err(|_| TextError::InvalidUtf16 { encoding })
}

/// The largest input file earshot reads: a scenario, an .rdp file, a host pool's JSON, an
/// inventory or a Registry.pol / .reg export is kilobytes in practice; 64 MiB leaves room
/// for a fleet's inventory and refuses a wrong file before it is read into memory.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// Reads `path` whole, refusing a file above [`MAX_INPUT_BYTES`] without reading it.
///
/// # Errors
/// The I/O error, or `InvalidData` naming the size and the limit.
pub fn read_input(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    // Read one byte past the limit: a file that grows while it is read is caught too.
    file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "more than {} MiB, larger than any input earshot reads: is it the right file?",
                MAX_INPUT_BYTES / (1024 * 1024)
            ),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xff, 0xfe] } else { vec![] };
        out.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
        out
    }

    fn utf16be(s: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xfe, 0xff] } else { vec![] };
        out.extend(s.encode_utf16().flat_map(u16::to_be_bytes));
        out
    }

    #[test]
    fn every_encoding_windows_tools_write_reads_the_same() {
        let text = "audiomode:i:0\r\naudiocapturemode:i:1\r\n";
        for bytes in [
            text.as_bytes().to_vec(),
            [&[0xef, 0xbb, 0xbf][..], text.as_bytes()].concat(),
            utf16le(text, true),
            utf16le(text, false),
            utf16be(text, true),
            utf16be(text, false),
        ] {
            assert_eq!(decode(&bytes).unwrap(), text);
        }
    }

    #[test]
    fn binary_and_broken_text_are_named_without_echoing_bytes() {
        let e = decode(&[0x00, 0x00, 0x41, 0x00, 0x00, 0x42])
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither UTF-8 nor UTF-16"), "{e}");
        assert!(!e.contains('\0'));
        let e = decode(b"name = \"x\xff\"").unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && e.contains("offset 9"), "{e}");
        let e = decode(&[0xff, 0xfe, 0x41]).unwrap_err().to_string();
        assert!(e.contains("odd number of bytes"), "{e}");
    }
}
