//! The session hosts of a fleet run (`earshot run --inventory FILE`): a TOML or CSV list, or
//! the JSON that `az desktopvirtualization sessionhost list` prints.
//!
//! Each host is reached at its `address` (`earshot-probe serve` on it), or, without one,
//! dials in to the scenario's `probes.remote.dial_in` and is known by the host name its
//! probe reports ([`same_host`]). A host may name its own client rig (`local`: the address
//! of the local probe that hears and feeds its session); without one, the scenario's local
//! probe is shared and the hosts take turns on it.
//!
//! `--shard K/N` keeps the hosts whose name hashes to share K of N ([`Shard`]): stable
//! whatever the inventory's order and size, so a CI matrix of N jobs covers every host
//! exactly once, and a host stays in its shard when others are added.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One session host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryHost {
    /// Its name: the session host name the report and `compare` use; a dialling probe is
    /// matched to it by its host name.
    pub name: String,
    /// `HOST:PORT` of its probe (`earshot-probe serve`); none: it dials in.
    pub address: Option<String>,
    /// `HOST:PORT` of its own client rig's probe; none: the scenario's local probe.
    pub local: Option<String>,
}

/// The hosts of a fleet run, in the inventory's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The file it came from.
    pub file: PathBuf,
    /// The hosts.
    pub hosts: Vec<InventoryHost>,
}

/// A host as read, with the line it was read from (where the format has lines).
type Located = (Option<usize>, InventoryHost);

/// An inventory that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file cannot be read.
    #[error("cannot read the inventory {}: {error}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not what its kind expects.
    #[error("inventory {}{}: {message}", file.display(), at.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The line, where known.
        at: Option<usize>,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A `--shard` that is not `K/N` with 1 ≤ K ≤ N.
    #[error(
        "--shard {given}: expected K/N with 1 <= K <= N (e.g. 2/4: the second of four shares)"
    )]
    Shard {
        /// What was given.
        given: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    host: Vec<toml::Spanned<TomlHost>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlHost {
    name: String,
    address: Option<String>,
    local: Option<String>,
}

impl Inventory {
    /// Reads `file`: `.toml` (`[[host]]` tables with `name`, `address`, `local`), `.csv`
    /// (a header naming `name` and optionally `address` and `local`), `.json` (the array
    /// `az desktopvirtualization sessionhost list` prints, or an object with it under
    /// `value`).
    ///
    /// # Errors
    /// [`InventoryError`] naming the file, the line where there is one, and what was
    /// expected; an inventory without hosts, or with a name twice, is an error too.
    pub fn load(file: &Path) -> Result<Inventory, InventoryError> {
        let bytes = crate::text::read_input(file).map_err(|error| InventoryError::Read {
            file: file.to_path_buf(),
            error,
        })?;
        Inventory::parse(file, &bytes)
    }

    /// `bytes` as an inventory read from `file` (see [`Inventory::load`]).
    ///
    /// # Errors
    /// As [`Inventory::load`].
    pub fn parse(file: &Path, bytes: &[u8]) -> Result<Inventory, InventoryError> {
        // Saved by Excel or PowerShell, an inventory may be UTF-16: read as scenarios are.
        let text = crate::text::decode(bytes).map_err(|m| InventoryError::Read {
            file: file.to_path_buf(),
            error: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{m}; save it as UTF-8 or UTF-16 text"),
            ),
        })?;
        let ext = file
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        // The kind is told from the content (a file saved under another name still
        // reads); the extension decides only what the content leaves open.
        let hosts = match kind_of(&text, &ext) {
            Some(Kind::Toml) => from_toml(&text),
            Some(Kind::Csv) => from_csv(&text),
            Some(Kind::AzJson) => from_az_json(&text),
            Some(Kind::HostPool) => Err((
                None,
                "this is a host pool (`az desktopvirtualization hostpool show`), not a list of \
                 its session hosts: give it to the scenario as [policy.rdp] hostpool_json = \
                 \"FILE\" (its RDP properties), and list the hosts with `az \
                 desktopvirtualization sessionhost list --host-pool-name POOL \
                 --resource-group GROUP > hosts.json`"
                    .to_string(),
            )),
            None => Err((
                None,
                format!(
                    "neither TOML ([[host]] tables), CSV (a header with a name column) nor the \
                     JSON of `az desktopvirtualization sessionhost list` (extension `.{ext}`)"
                ),
            )),
        }
        .map_err(|(at, message)| InventoryError::Invalid {
            file: file.to_path_buf(),
            at,
            message,
        })?;
        validate(file, &hosts)?;
        Ok(Inventory {
            file: file.to_path_buf(),
            hosts: hosts.into_iter().map(|(_, h)| h).collect(),
        })
    }

    /// The hosts in `shard`, in the inventory's order.
    pub fn shard(&self, shard: Shard) -> Vec<InventoryHost> {
        self.hosts
            .iter()
            .filter(|h| shard.holds(&h.name))
            .cloned()
            .collect()
    }
}

/// The hosts read from `file` as a fleet run can use them: at least one, every address
/// HOST:PORT as a scenario's, each host named once; the error names the line.
fn validate(file: &Path, hosts: &[Located]) -> Result<(), InventoryError> {
    let bad = |at: Option<usize>, message: String| InventoryError::Invalid {
        file: file.to_path_buf(),
        at,
        message,
    };
    if hosts.is_empty() {
        return Err(bad(None, "it names no host".into()));
    }
    for (line, h) in hosts {
        for (key, value) in [("address", &h.address), ("local", &h.local)] {
            if let Some(a) = value {
                let ok = a
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !ok {
                    return Err(bad(
                        *line,
                        format!(
                            "host `{}`: {key} `{a}` is not HOST:PORT (e.g. `10.0.0.10:7702`)",
                            h.name
                        ),
                    ));
                }
            }
        }
    }
    let mut seen: BTreeMap<String, (Option<usize>, &str)> = BTreeMap::new();
    for (line, h) in hosts {
        if let Some((first_line, first)) = seen.insert(host_key(&h.name), (*line, &h.name)) {
            let first_at = first_line
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            return Err(bad(
                *line,
                format!(
                    "`{}` and `{first}`{first_at} are the same host (names compare by their \
                     first label, without case): name each host once",
                    h.name
                ),
            ));
        }
    }
    Ok(())
}

/// What an inventory file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Toml,
    Csv,
    /// `az desktopvirtualization sessionhost list`: a JSON array.
    AzJson,
    /// `az desktopvirtualization hostpool show`: a JSON object, the wrong file.
    HostPool,
}

/// The kind of inventory `text` is, by its content; `ext` breaks a tie.
fn kind_of(text: &str, ext: &str) -> Option<Kind> {
    let body = text.trim_start_matches('\u{feff}').trim_start();
    if body.starts_with('{') {
        let looks_like_pool = ["customRdpProperty", "hostPoolType", "loadBalancerType"]
            .iter()
            .any(|k| body.contains(k));
        return Some(if looks_like_pool {
            Kind::HostPool
        } else {
            Kind::AzJson
        });
    }
    if body.starts_with("[[") {
        return Some(Kind::Toml);
    }
    if body.starts_with('[') {
        return Some(Kind::AzJson);
    }
    let first = body
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    if first.starts_with("[[") || (first.contains('=') && !first.contains(',')) {
        return Some(Kind::Toml);
    }
    if first.contains(',') || ext == "csv" {
        return Some(Kind::Csv);
    }
    match ext {
        "toml" => Some(Kind::Toml),
        "json" => Some(Kind::AzJson),
        _ => None,
    }
}

/// The line (from 1) of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn from_toml(text: &str) -> Result<Vec<Located>, (Option<usize>, String)> {
    let f: TomlFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        (
            line,
            format!(
                "{}; expected [[host]] tables with name (and address, local)",
                e.message()
            ),
        )
    })?;
    f.host
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let line = Some(line_of(text, h.span().start));
            let h = h.into_inner();
            let name = h.name.trim().to_string();
            if name.is_empty() {
                return Err((line, format!("host number {} has an empty name", i + 1)));
            }
            Ok((
                line,
                InventoryHost {
                    name,
                    address: nonempty(h.address),
                    local: nonempty(h.local),
                },
            ))
        })
        .collect()
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// One CSV record: fields split on commas, `"` quoting with `""` for a quote.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            (',', false) => out.push(std::mem::take(&mut cur).trim().to_string()),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    out.push(cur.trim().to_string());
    Ok(out)
}

fn from_csv(text: &str) -> Result<Vec<Located>, (Option<usize>, String)> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_start_matches('\u{feff}')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((hl, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let header = csv_fields(header).map_err(|e| (Some(hl), e))?;
    let col = |n: &str| header.iter().position(|h| h.eq_ignore_ascii_case(n));
    let Some(name_at) = col("name") else {
        return Err((
            Some(hl),
            format!(
                "the header [{}] has no `name` column; expected name and optionally address, \
                 local",
                header.join(", ")
            ),
        ));
    };
    let (addr_at, local_at) = (col("address"), col("local"));
    if let Some(other) = header.iter().find(|h| {
        !["name", "address", "local"]
            .iter()
            .any(|k| h.eq_ignore_ascii_case(k))
    }) {
        return Err((
            Some(hl),
            format!("unknown column `{other}`: expected name, address, local"),
        ));
    }
    let mut hosts = Vec::new();
    for (n, line) in lines {
        let f = csv_fields(line).map_err(|e| (Some(n), e))?;
        if f.len() != header.len() {
            return Err((
                Some(n),
                format!("{} fields where the header has {}", f.len(), header.len()),
            ));
        }
        let get = |i: Option<usize>| i.map(|i| f[i].clone()).filter(|s| !s.is_empty());
        let Some(name) = get(Some(name_at)) else {
            return Err((Some(n), "an empty name".into()));
        };
        hosts.push((
            Some(n),
            InventoryHost {
                name,
                address: get(addr_at),
                local: get(local_at),
            },
        ));
    }
    Ok(hosts)
}

/// `az desktopvirtualization sessionhost list` names a host `POOL/HOST.DOMAIN`.
fn from_az_json(text: &str) -> Result<Vec<Located>, (Option<usize>, String)> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        (
            Some(e.line()),
            format!(
                "not JSON: {e}; expected the output of `az desktopvirtualization sessionhost list`"
            ),
        )
    })?;
    let list = match &v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) => match o.get("value") {
            Some(serde_json::Value::Array(a)) => a,
            _ => {
                return Err((
                    None,
                    "an object without a `value` array; expected the array `az \
                     desktopvirtualization sessionhost list` prints"
                        .into(),
                ))
            }
        },
        _ => {
            return Err((
                None,
                "expected the array `az desktopvirtualization sessionhost list` prints".into(),
            ))
        }
    };
    // serde_json keeps no positions: a host's line is where its name next appears as a
    // JSON string, searched from the previous host's on.
    let mut from = 0;
    list.iter()
        .enumerate()
        .map(|(i, h)| {
            let name = h["name"].as_str().ok_or_else(|| {
                (
                    None,
                    format!("session host number {} has no string `name`", i + 1),
                )
            })?;
            let host = name.rsplit('/').next().unwrap_or(name).trim();
            if host.is_empty() {
                return Err((
                    None,
                    format!("session host number {} has an empty name `{name}`", i + 1),
                ));
            }
            let quoted = serde_json::to_string(name).unwrap_or_default();
            let line = text
                .get(from..)
                .and_then(|rest| rest.find(&quoted))
                .map(|at| {
                    from += at + quoted.len();
                    line_of(text, from - quoted.len())
                });
            Ok((
                line,
                InventoryHost {
                    name: host.to_string(),
                    address: None,
                    local: None,
                },
            ))
        })
        .collect()
}

/// The key two host names compare by: the first DNS label, lower case (a Windows probe
/// reports `AVD-0`, the host pool lists `avd-0.contoso.com`).
pub fn host_key(name: &str) -> String {
    name.trim()
        .split('.')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Whether an inventory name and a probe's host name are the same host.
pub fn same_host(inventory: &str, reported: &str) -> bool {
    let k = host_key(inventory);
    !k.is_empty() && k == host_key(reported)
}

/// Share K of N of an inventory (`--shard K/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which share, 1-based.
    pub k: u32,
    /// Of how many.
    pub n: u32,
}

impl Shard {
    /// The whole inventory.
    pub const ALL: Shard = Shard { k: 1, n: 1 };

    /// Parses `K/N`.
    ///
    /// # Errors
    /// [`InventoryError::Shard`].
    pub fn parse(s: &str) -> Result<Shard, InventoryError> {
        let bad = || InventoryError::Shard { given: s.into() };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || k == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }

    /// Whether host `name` is in this share: FNV-1a of its [`host_key`], modulo N.
    pub fn holds(&self, name: &str) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in host_key(name).bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h % u64::from(self.n) == u64::from(self.k - 1)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

#[cfg(test)]
mod tests;
