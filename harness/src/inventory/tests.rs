use super::*;

fn load(name: &str, text: &str) -> Result<Inventory, InventoryError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    Inventory::load(&p)
}

fn names(inv: &Inventory) -> Vec<&str> {
    inv.hosts.iter().map(|h| h.name.as_str()).collect()
}

#[test]
fn a_toml_inventory_gives_its_hosts_in_order_with_addresses_and_rigs() {
    let inv = load(
        "hosts.toml",
        r#"
[[host]]
name = "avd-0"
address = "10.0.0.10:7702"

[[host]]
name = "avd-1"
local = "10.0.1.11:7701"
"#,
    )
    .unwrap();
    assert_eq!(
        inv.hosts,
        vec![
            InventoryHost {
                name: "avd-0".into(),
                address: Some("10.0.0.10:7702".into()),
                local: None
            },
            InventoryHost {
                name: "avd-1".into(),
                address: None,
                local: Some("10.0.1.11:7701".into())
            },
        ]
    );
}

#[test]
fn a_toml_inventory_with_an_unknown_key_names_the_line_and_the_keys() {
    let e = load("h.toml", "[[host]]\nname = \"a\"\nadress = \"x:1\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("h.toml:3"), "{e}");
    assert!(e.contains("adress"), "{e}");
    assert!(e.contains("address"), "{e}");
}

#[test]
fn a_csv_inventory_reads_quoted_fields_comments_and_any_column_order() {
    let inv = load(
        "hosts.csv",
        "\u{feff}Address,Name\n# the pool\n\"10.0.0.10:7702\",\"avd, the \"\"first\"\"\"\n,avd-1\n",
    )
    .unwrap();
    assert_eq!(names(&inv), vec!["avd, the \"first\"", "avd-1"]);
    assert_eq!(inv.hosts[0].address.as_deref(), Some("10.0.0.10:7702"));
    assert_eq!(inv.hosts[1].address, None);
}

#[test]
fn a_csv_inventory_with_a_short_row_or_no_name_column_names_the_line() {
    let e = load("h.csv", "name,address\na,1.2.3.4:7702\nb\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("h.csv:3") && e.contains("1 fields where the header has 2"),
        "{e}"
    );
    let e = load("h.csv", "host,address\na,1.2.3.4:7702\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("h.csv:1") && e.contains("no `name` column"),
        "{e}"
    );
    let e = load("h.csv", "name\n\"a\n").unwrap_err().to_string();
    assert!(e.contains("h.csv:2") && e.contains("not closed"), "{e}");
}

/// As `az desktopvirtualization sessionhost list --host-pool-name pool1 -g rg` prints it
/// (fields of the 2022-09-09 API; values made up).
const AZ_LIST: &str = r#"[
  {
    "agentVersion": "1.0.7909.2100",
    "allowNewSession": true,
    "assignedUser": null,
    "id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.DesktopVirtualization/hostpools/pool1/sessionhosts/avd-0.contoso.com",
    "lastHeartBeat": "2026-12-01T10:00:00.000000+00:00",
    "name": "pool1/avd-0.contoso.com",
    "osVersion": "10.0.22631.4460",
    "resourceGroup": "rg",
    "sessions": 0,
    "status": "Available",
    "type": "Microsoft.DesktopVirtualization/hostpools/sessionhosts",
    "updateState": "Succeeded"
  },
  {
    "allowNewSession": true,
    "name": "pool1/avd-1.contoso.com",
    "sessions": 2,
    "status": "Unavailable",
    "type": "Microsoft.DesktopVirtualization/hostpools/sessionhosts"
  }
]"#;

#[test]
fn the_az_session_host_list_gives_host_names_without_the_pool() {
    let inv = load("pool1.json", AZ_LIST).unwrap();
    assert_eq!(names(&inv), vec!["avd-0.contoso.com", "avd-1.contoso.com"]);
    assert!(inv.hosts.iter().all(|h| h.address.is_none()));
    let wrapped = format!("{{\"value\": {AZ_LIST}}}");
    assert_eq!(load("p.json", &wrapped).unwrap().hosts, inv.hosts);
    let e = load("p.json", "{\"name\": \"x\"}").unwrap_err().to_string();
    assert!(
        e.contains("p.json") && e.contains("sessionhost list"),
        "{e}"
    );
    let e = load("p.json", "[\n{\"nam\": 1}]").unwrap_err().to_string();
    assert!(e.contains("number 1 has no string `name`"), "{e}");
}

#[test]
fn an_empty_inventory_a_host_named_twice_or_an_unknown_kind_is_refused() {
    let e = load("h.toml", "").unwrap_err().to_string();
    assert!(e.contains("names no host"), "{e}");
    let e = load("h.csv", "name\nAVD-0\navd-0.contoso.com\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("same host"), "{e}");
    // The duplicate names its line and the first one's, in every format.
    assert!(e.contains("h.csv:3:") && e.contains("(line 2)"), "{e}");
    let toml = "[[host]]\nname = \"a\"\n\n[[host]]\nname = \"b\"\n[[host]]\nname = \"A\"\n";
    let e = load("h.toml", toml).unwrap_err().to_string();
    assert!(e.contains("h.toml:6:") && e.contains("(line 1)"), "{e}");
    let json =
        "[\n {\"name\": \"p/avd-0.x\"},\n {\"name\": \"p/avd-1\"},\n {\"name\": \"p/AVD-0\"}\n]";
    let e = load("h.json", json).unwrap_err().to_string();
    assert!(e.contains("h.json:4:") && e.contains("(line 2)"), "{e}");
    // A bad address names its line too.
    let e = load("h.csv", "name,address\na,1.2.3.4:7702\nb,vm\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("h.csv:3:") && e.contains("HOST:PORT"), "{e}");
    let e = load("h.yaml", "x").unwrap_err().to_string();
    assert!(
        e.contains(".yaml") && e.contains("neither TOML ([[host]] tables), CSV"),
        "{e}"
    );
}

#[test]
fn the_kind_is_told_from_the_content_and_a_host_pool_gets_its_hint() {
    // A CSV saved as .txt, a TOML inventory saved as .csv: both read.
    let inv = load("hosts.txt", "name,address\navd-0,10.0.0.10:7702\n").unwrap();
    assert_eq!(names(&inv), ["avd-0"]);
    let inv = load("hosts.csv", "[[host]]\nname = \"avd-1\"\n").unwrap();
    assert_eq!(names(&inv), ["avd-1"]);
    // The output of `az desktopvirtualization hostpool show`: the wrong file, said so.
    let e = load(
        "pool.json",
        "{\"name\": \"pool\", \"hostPoolType\": \"Pooled\", \"customRdpProperty\": \"audiomode:i:0\"}",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("this is a host pool") && e.contains("hostpool_json"),
        "{e}"
    );
    // An address that is not HOST:PORT is refused, as in a scenario.
    let e = load("hosts.csv", "name,address\nvm,localhost\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("host `vm`: address `localhost` is not HOST:PORT"),
        "{e}"
    );
}

#[test]
fn a_probe_is_its_inventory_host_by_first_label_without_case() {
    assert!(same_host("avd-0.contoso.com", "AVD-0"));
    assert!(same_host("AVD-0", "avd-0"));
    assert!(!same_host("avd-0", "avd-01"));
    assert!(!same_host("", ""));
}

#[test]
fn shards_cover_every_host_once_and_keep_their_hosts_when_others_come() {
    let hosts: Vec<String> = (0..500).map(|i| format!("avd-{i}")).collect();
    for n in [1, 2, 3, 7] {
        let mut seen = vec![0; hosts.len()];
        for k in 1..=n {
            let s = Shard { k, n };
            let share = hosts.iter().filter(|h| s.holds(h)).count();
            // Roughly even: within half of the mean.
            assert!(share * 2 * n as usize > hosts.len(), "{n}: {share}");
            for (i, h) in hosts.iter().enumerate() {
                if s.holds(h) {
                    seen[i] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "{n}");
    }
    // The same host, named as the pool or the probe names it, is in the same share.
    let s = Shard::parse("2/3").unwrap();
    assert_eq!(s.holds("avd-7.contoso.com"), s.holds("AVD-7"));
    for bad in ["0/2", "3/2", "1", "a/b", "1/0"] {
        assert!(Shard::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(Shard::parse(" 2 / 4 ").unwrap().to_string(), "2/4");
}

#[test]
fn a_utf16_csv_as_excel_and_powershell_save_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.csv");
    let text = "name,address\r\navd-0,10.0.0.10:7702\r\navd-1,10.0.0.11:7702\r\n";
    let mut bytes = vec![0xff, 0xfe];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(&p, bytes).unwrap();
    let inv = Inventory::load(&p).unwrap();
    assert_eq!(names(&inv), ["avd-0", "avd-1"]);
}

#[test]
fn a_file_larger_than_any_input_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.csv");
    let f = std::fs::File::create(&p).unwrap();
    // Sparse: the size without the bytes.
    f.set_len(crate::text::MAX_INPUT_BYTES + 10).unwrap();
    let e = Inventory::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("hosts.csv") && e.contains("larger than any input"),
        "{e}"
    );
}
