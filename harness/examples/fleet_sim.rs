//! A simulated fleet for `earshot run --inventory`: N session hosts, each with its own
//! client rig, every one a real probe server (the agent's server, real TCP, the real
//! handshake and sealed channel) on 127.0.0.1 with a simulated audio world as its handler
//! (harness/tests/sim). Writes into DIR:
//!
//! - `scenario.toml`: an AVD scenario that expects both directions redirected,
//! - `hosts.toml`: the inventory (`sim-0000` ...), every host with its address and rig,
//! - `expected.json`: the verdict each host must get: `pass`; `fail` for every
//!   `--blocked-every`th host (nothing crosses its session); `inconclusive` for every
//!   `--missing-every`th (its address has no probe),
//! - `token` (mode 0600),
//!
//! prints `ready` once every server listens, and serves until killed or `--seconds` pass.
//! bench/fleet.sh runs it with 1000 hosts and times the harness against it.
//!
//! Usage: fleet_sim --hosts N --dir DIR [--blocked-every K] [--missing-every M] [--seconds S]
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use sim::{client_devices, serve, session_devices, FakeProbe, World, TOKEN};

struct Args {
    hosts: usize,
    dir: PathBuf,
    blocked_every: usize,
    missing_every: usize,
    seconds: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        hosts: 0,
        dir: PathBuf::new(),
        blocked_every: 10,
        missing_every: 0,
        seconds: 3600,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .with_context(|| format!("{flag} {value}: expected a whole number"))
        };
        match flag.as_str() {
            "--hosts" => a.hosts = number()?,
            "--dir" => a.dir = PathBuf::from(&value),
            "--blocked-every" => a.blocked_every = number()?,
            "--missing-every" => a.missing_every = number()?,
            "--seconds" => a.seconds = number()? as u64,
            other => bail!(
                "unknown option {other}; usage: fleet_sim --hosts N --dir DIR \
                 [--blocked-every K] [--missing-every M] [--seconds S]"
            ),
        }
    }
    if a.hosts == 0 || a.dir.as_os_str().is_empty() {
        bail!("usage: fleet_sim --hosts N --dir DIR [--blocked-every K] [--missing-every M]");
    }
    Ok(a)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let token = a.dir.join("token");
    std::fs::write(&token, TOKEN)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;
    }
    let every = |k: usize, i: usize| k > 0 && i % k == k - 1;
    let mut inventory = String::new();
    let mut expected = BTreeMap::new();
    let mut first_rig = None;
    let mut stops = Vec::new();
    for i in 0..a.hosts {
        let name = format!("sim-{i:04}");
        let missing = every(a.missing_every, i);
        let blocked = !missing && every(a.blocked_every, i);
        let world = Arc::new(World::wired(!blocked));
        let (rig, stop) = serve(FakeProbe::new("local", world.clone(), client_devices())).await;
        stops.push(stop);
        let address = if missing {
            // A port nothing listens on: bound, then released.
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.to_string()
        } else {
            let (addr, stop) =
                serve(FakeProbe::new("remote", world, session_devices(true, true)).on(&name)).await;
            stops.push(stop);
            addr
        };
        first_rig.get_or_insert_with(|| rig.clone());
        let _ = writeln!(
            inventory,
            "[[host]]\nname = \"{name}\"\naddress = \"{address}\"\nlocal = \"{rig}\""
        );
        let verdict = match (missing, blocked) {
            (true, _) => "inconclusive",
            (false, true) => "fail",
            (false, false) => "pass",
        };
        expected.insert(name, verdict);
    }
    let scenario = format!(
        "name = \"fleet-sim\"\nproduct = \"avd\"\n\
         [policy.rdp]\nproperties = \"audiomode:i:0;audiocapturemode:i:1\"\n\
         [timeouts]\nconnect = \"5s\"\nlisten = \"800ms\"\n\
         [probes.local]\naddress = \"{}\"\ntoken_file = \"token\"\n\
         output_loopback = \"speakers.monitor\"\nmic_feed = \"micfeed\"\n\
         [probes.remote]\ndial_in = \"127.0.0.1:0\"\ntoken_file = \"token\"\n",
        first_rig.unwrap_or_default()
    );
    std::fs::write(a.dir.join("scenario.toml"), scenario)?;
    std::fs::write(a.dir.join("hosts.toml"), inventory)?;
    std::fs::write(
        a.dir.join("expected.json"),
        serde_json::to_string_pretty(&expected)?,
    )?;
    println!("ready");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = tokio::time::sleep(Duration::from_secs(a.seconds)) => {}
    }
    for s in stops {
        s.cancel();
    }
    Ok(())
}
