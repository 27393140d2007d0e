//! The scenario reference (`docs/scenario-reference.md`), generated from the scenario
//! model's JSON Schema, so every key the parser accepts is documented, with its values and
//! its meaning, in one place.

use serde_json::Value;
use std::fmt::Write as _;

use super::Scenario;

/// One documented key.
struct Row {
    key: String,
    values: String,
    meaning: String,
}

fn resolve<'a>(root: &'a Value, v: &'a Value) -> &'a Value {
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or("");
        if let Some(d) = root.get("$defs").and_then(|d| d.get(name)) {
            return resolve(root, d);
        }
    }
    // Option<T>: `anyOf: [T, null]`.
    for k in ["anyOf", "oneOf"] {
        if let Some(list) = v.get(k).and_then(Value::as_array) {
            let is_null = |x: &&Value| x.get("type") == Some(&Value::from("null"));
            if list.len() == 2 && list.iter().any(|x| is_null(&x)) {
                if let Some(other) = list.iter().find(|x| !is_null(x)) {
                    return resolve(root, other);
                }
            }
        }
    }
    v
}

fn values_of(root: &Value, v: &Value) -> String {
    let v = resolve(root, v);
    if let Some(e) = v.get("enum").and_then(Value::as_array) {
        return e
            .iter()
            .map(|x| format!("`{}`", x.to_string().trim_matches('"')))
            .collect::<Vec<_>>()
            .join(", ");
    }
    if let Some(list) = v.get("oneOf").and_then(Value::as_array) {
        let consts: Vec<String> = list
            .iter()
            .filter_map(|x| {
                x.get("const")
                    .or_else(|| x.get("enum").and_then(|e| e.get(0)))
                    .map(|c| format!("`{}`", c.to_string().trim_matches('"')))
            })
            .collect();
        if !consts.is_empty() {
            return consts.join(", ");
        }
    }
    match v.get("type") {
        Some(Value::String(t)) if t == "array" => {
            format!(
                "list of {}",
                v.get("items").map_or("?".into(), |i| values_of(root, i))
            )
        }
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "see below".into(),
    }
}

fn walk(root: &Value, v: &Value, prefix: &str, rows: &mut Vec<Row>) {
    let v = resolve(root, v);
    let Some(props) = v.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, p) in props {
        let key = if name.contains(' ') {
            format!("{prefix}\"{name}\"")
        } else {
            format!("{prefix}{name}")
        };
        let meaning = p
            .get("description")
            .or_else(|| resolve(root, p).get("description"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .replace('\n', " ");
        let target = resolve(root, p);
        if target.get("properties").is_some() {
            rows.push(Row {
                key: format!("[{key}]"),
                values: "table".into(),
                meaning,
            });
            walk(root, target, &format!("{key}."), rows);
        } else {
            rows.push(Row {
                key,
                values: values_of(root, p),
                meaning,
            });
        }
    }
}

/// The reference as Markdown.
pub fn markdown() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(Scenario)).unwrap_or_default();
    let mut rows = Vec::new();
    walk(&schema, &schema, "", &mut rows);
    let mut out = String::from(
        "# Scenario file reference\n\n\
         Generated from the scenario model (`harness/src/scenario.rs`) by \
         `EARSHOT_BLESS=1 cargo test -p earshot-harness scenario_reference`; a test fails when \
         it is stale. Keys with spaces are the names the Group Policy editor and Intune show; \
         quote them in TOML. A setting may be given by its registry name or by its display \
         name, not both. Unknown keys are errors naming the file, line and key.\n\n\
         | key | values | meaning |\n| --- | --- | --- |\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            r.key.replace('|', "\\|"),
            r.values.replace('|', "\\|"),
            r.meaning.replace('|', "\\|")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn scenario_reference_is_the_generated_one() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scenario-reference.md");
        let generated = super::markdown();
        if std::env::var_os("EARSHOT_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            text == generated,
            "docs/scenario-reference.md is stale: run `EARSHOT_BLESS=1 cargo test -p \
             earshot-harness scenario_reference` and commit it"
        );
        for key in [
            "`policy.session_host.fDisableCam`",
            "`policy.session_host.\"Allow audio and video playback redirection\"`",
            "`policy.xrdp.rdpsnd`",
            "`probes.local.mic_feed`",
            "`timeouts.listen`",
            "`checks`",
        ] {
            assert!(text.contains(key), "{key} missing:\n{text}");
        }
    }
}
