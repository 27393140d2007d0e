//! A host pool's RDP properties as Azure prints them: `az desktopvirtualization hostpool
//! show --name POOL --resource-group RG > hostpool.json` (the field `customRdpProperty`,
//! e.g. `"audiomode:i:0;audiocapturemode:i:1;"`). The resource as Azure Resource Manager
//! returns it (`properties.customRdpProperty`, as `az resource show` prints it) and
//! PowerShell's `Get-AzWvdHostPool | ConvertTo-Json` (`CustomRdpProperty`) are read too,
//! as is a list holding exactly one host pool.

use std::path::Path;

use serde_json::Value;

use super::ImportError;

/// The host pool's RDP properties, as text for the RDP property parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPoolRdp {
    /// `customRdpProperty` as written; empty when it is `null` (no custom properties:
    /// the defaults apply).
    pub custom_rdp_property: String,
    /// The 1-based line of the file that holds the field.
    pub line: usize,
    /// The host pool's `name`, when the JSON has one.
    pub name: Option<String>,
}

const FIELD: &str = "customRdpProperty";

/// Reads the host pool JSON at `path`.
///
/// # Errors
/// [`ImportError`] naming the file: unreadable, not text, not JSON, several host pools,
/// no `customRdpProperty`, or one that is not a string.
pub fn load_hostpool(path: &Path) -> Result<HostPoolRdp, ImportError> {
    let file = path.display().to_string();
    let bytes = crate::text::read_input(path).map_err(|e| ImportError::Read {
        file: file.clone(),
        message: e.to_string(),
    })?;
    read_hostpool(&bytes, &file)
}

/// Reads host pool JSON from `bytes` (UTF-8, or UTF-16 as PowerShell 5 writes it);
/// `file` names it in errors.
///
/// # Errors
/// As [`load_hostpool`].
pub fn read_hostpool(bytes: &[u8], file: &str) -> Result<HostPoolRdp, ImportError> {
    let format = |message: String| ImportError::Format {
        file: file.to_string(),
        message,
    };
    let text = crate::text::decode(bytes).map_err(|m| format(format!("{m}: expected JSON")))?;
    let text = text.trim_start_matches('\u{feff}');
    let root: Value = serde_json::from_str(text).map_err(|e| ImportError::Malformed {
        file: file.to_string(),
        place: super::Place::Line(e.line().max(1)),
        message: format!(
            "not JSON ({e}): expected the output of `az desktopvirtualization hostpool show`"
        ),
    })?;
    let pool = match &root {
        Value::Array(list) if list.len() == 1 => &list[0],
        Value::Array(list) => {
            let names: Vec<&str> = list
                .iter()
                .filter_map(|p| field(p, "name").and_then(Value::as_str))
                .collect();
            return Err(format(format!(
                "a list of {} host pools{}: expected one (`az desktopvirtualization hostpool \
                 show --name POOL --resource-group RG`)",
                list.len(),
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", names.join(", "))
                }
            )));
        }
        other => other,
    };
    let value = field(pool, FIELD)
        .or_else(|| field(pool, "properties").and_then(|p| field(p, FIELD)))
        .ok_or_else(|| {
            format(format!(
                "no `{FIELD}` field: expected the output of `az desktopvirtualization hostpool \
                 show` (or the resource with `properties.{FIELD}`)"
            ))
        })?;
    let custom_rdp_property = match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => {
            return Err(ImportError::Malformed {
                file: file.to_string(),
                place: super::Place::Line(line_of(text)),
                message: format!(
                    "`{FIELD}` is {}: expected a string such as \
                     \"audiomode:i:0;audiocapturemode:i:1;\"",
                    kind(other)
                ),
            })
        }
    };
    Ok(HostPoolRdp {
        custom_rdp_property,
        line: line_of(text),
        name: field(pool, "name")
            .and_then(Value::as_str)
            .map(String::from),
    })
}

/// An object's field, the name compared without regard to case (PowerShell writes
/// `CustomRdpProperty`).
fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    let map = v.as_object()?;
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The line of the first `"customRdpProperty"` in `text` (1 when it cannot be found).
fn line_of(text: &str) -> usize {
    let needle = format!("\"{}\"", FIELD.to_ascii_lowercase());
    text.to_ascii_lowercase()
        .find(&needle)
        .map_or(1, |at| text[..at].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<HostPoolRdp, ImportError> {
        read_hostpool(text.as_bytes(), "hostpool.json")
    }

    #[test]
    fn the_az_cli_output_gives_the_field_and_its_line() {
        let p = read(
            "{\n  \"customRdpProperty\": \"audiomode:i:0;audiocapturemode:i:1;\",\n  \
             \"name\": \"pool-1\"\n}",
        )
        .unwrap();
        assert_eq!(p.custom_rdp_property, "audiomode:i:0;audiocapturemode:i:1;");
        assert_eq!(p.line, 2);
        assert_eq!(p.name.as_deref(), Some("pool-1"));
    }

    #[test]
    fn the_arm_resource_powershell_and_a_list_of_one_are_read() {
        for text in [
            r#"{"name": "p", "properties": {"customRdpProperty": "audiomode:i:2;"}}"#,
            r#"{"Name": "p", "CustomRdpProperty": "audiomode:i:2;"}"#,
            r#"[{"name": "p", "customRdpProperty": "audiomode:i:2;"}]"#,
        ] {
            let p = read(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(p.custom_rdp_property, "audiomode:i:2;", "{text}");
        }
    }

    #[test]
    fn a_null_field_means_no_custom_properties() {
        assert_eq!(
            read(r#"{"customRdpProperty": null}"#)
                .unwrap()
                .custom_rdp_property,
            ""
        );
    }

    #[test]
    fn utf16_from_powershell_5_is_read() {
        let text = r#"{"customRdpProperty": "audiomode:i:1"}"#;
        let mut bytes = vec![0xff, 0xfe];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(
            read_hostpool(&bytes, "h.json").unwrap().custom_rdp_property,
            "audiomode:i:1"
        );
    }

    #[test]
    fn what_is_not_a_host_pool_is_named() {
        for (text, needle) in [
            (r#"{"name": "p"}"#, "no `customRdpProperty` field"),
            (
                r#"{"customRdpProperty": 7}"#,
                "is a number: expected a string",
            ),
            (
                r#"[{"name": "a", "customRdpProperty": ""}, {"name": "b"}]"#,
                "a list of 2 host pools (a, b)",
            ),
            (
                "{\n\"customRdpProperty\": \"x\",,\n}",
                "hostpool.json: line 2: not JSON",
            ),
            ("", "not JSON"),
        ] {
            let e = read(text).unwrap_err().to_string();
            assert!(e.starts_with("hostpool.json: "), "{e}");
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
