//! Fleet runs (`earshot run --inventory FILE`): every scenario against each session host
//! of an inventory, several hosts at once.
//!
//! - A host with an `address` is reached there; one without dials in to the scenario's
//!   `probes.remote.dial_in`, where one listener takes every host's probe and hands it to
//!   its host by the host name the probe reports. A host whose probe never comes is
//!   inconclusive after `timeouts.connect`, with its name; a probe on a host the inventory
//!   does not name is turned away.
//! - The probe reached must be on the host the inventory names (its reported host name):
//!   an inventory address that leads to another machine would put that machine's verdict on
//!   this host's name, so it is inconclusive instead.
//! - A host with its own client rig (`local`) runs beside the others; hosts that share the
//!   scenario's local probe take turns on it (its devices hear one session at a time).
//! - At most `concurrency` hosts run at once. Each host's events are gathered and handed on
//!   whole, when the host is done, so the reports read host by host; a `Progress` event
//!   follows each host.
//! - Evidence goes to a folder per host under `--evidence`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::stream::StreamExt;

use super::*;
use crate::inventory::{host_key, same_host, InventoryHost, Shard};

/// The session hosts of a fleet run and how many run at once.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// The inventory file (for messages).
    pub inventory: PathBuf,
    /// The hosts to run against (the shard's share of the inventory).
    pub hosts: Vec<InventoryHost>,
    /// Hosts run at once (at least 1).
    pub concurrency: usize,
    /// The share of the inventory these hosts are.
    pub shard: Shard,
}

pub(super) async fn run(
    scenarios: &[Prepared],
    options: &RunOptions,
    fleet: &Fleet,
    base_seed: u64,
    run: &mut Run,
    sink: &mut dyn FnMut(&Event, &Run),
) -> usize {
    let total = scenarios.len() * fleet.hosts.len();
    let mut done = 0;
    let mut emit = |e: Event, run: &mut Run| {
        run.apply(&e);
        sink(&e, run);
    };
    for (si, p) in scenarios.iter().enumerate() {
        if options.interrupt.is_pulled() {
            return total - done;
        }
        let hub = DialHub::start(&p.scenario, &fleet.hosts).await;
        if let Some(Ok(h)) = &hub {
            emit(
                Event::Waiting(format!(
                    "{}: waiting up to {} s for {} host(s) to dial in on {} ({})",
                    p.scenario.name,
                    p.scenario.timeouts.connect.as_secs(),
                    h.expected,
                    h.bind,
                    dial_in_hint(&h.bind, &p.scenario.probes.remote)
                )),
                run,
            );
        }
        let rig = tokio::sync::Mutex::new(());
        let hosts = fleet.hosts.iter().enumerate().map(|(hi, host)| {
            let seed = base_seed.wrapping_add((si * fleet.hosts.len() + hi) as u64 * 16);
            let evidence_dir = options
                .evidence_dir
                .as_ref()
                .map(|d| d.join(file_safe(&host.name)));
            let (hub, rig) = (hub.as_ref(), &rig);
            let interrupt = options.interrupt.clone();
            async move {
                // Not started after a signal: counted as such at the end.
                if interrupt.is_pulled() {
                    return None;
                }
                let events = host_run(p, host, evidence_dir, seed, hub, rig, &interrupt).await;
                Some((host.name.clone(), events))
            }
        });
        let mut running = futures::stream::iter(hosts).buffer_unordered(fleet.concurrency.max(1));
        while let Some(finished) = running.next().await {
            let Some((host, events)) = finished else {
                continue;
            };
            for e in events {
                emit(e, run);
            }
            done += 1;
            emit(Event::Progress { host, done, total }, run);
        }
        // The hub (and its acceptors) ends with the scenario: see its Drop.
    }
    total - done
}

/// A host name as a folder name.
fn file_safe(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    // `.` and `..` (or any leading dot) would name this folder, its parent or a hidden one.
    let safe = safe.trim_start_matches('.');
    if safe.is_empty() {
        "_".into()
    } else {
        safe.to_string()
    }
}

/// One scenario on one host: its events, from `ScenarioStarted` to `ScenarioFinished`.
async fn host_run(
    p: &Prepared,
    host: &InventoryHost,
    evidence_dir: Option<PathBuf>,
    seed: u64,
    hub: Option<&Result<DialHub, String>>,
    rig: &tokio::sync::Mutex<()>,
    interrupt: &super::Interrupt,
) -> Vec<Event> {
    let mut events = Vec::new();
    let mut s = p.scenario.clone();
    if let Some(a) = &host.address {
        s.probes.remote.address = Some(a.clone());
        s.probes.remote.dial_in = None;
    }
    if let Some(l) = &host.local {
        s.probes.local.address = Some(l.clone());
        s.probes.local.dial_in = None;
    }
    let mut rec = record(&s, &p.expectation);
    rec.host = Some(host.name.clone());
    events.push(Event::ScenarioStarted(rec));
    let end = |mut events: Vec<Event>, why: String| {
        events.push(Event::ScenarioError(why));
        events.push(Event::ScenarioFinished);
        events
    };
    // Hosts on the shared client rig take turns from here: connecting the remote probe
    // only when it is this host's turn keeps idle connections from timing out.
    let _turn = match host.local {
        Some(_) => None,
        None => Some(rig.lock().await),
    };
    let remote = match (&host.address, hub) {
        (Some(_), _) => connect(&s, &s.probes.remote, "remote")
            .await
            .map_err(|e| format!("host {}: {e}", host.name)),
        (None, Some(Ok(hub))) => hub.take(&host.name, s.timeouts.connect).await,
        (None, Some(Err(why))) => Err(why.clone()),
        (None, None) => Err(format!(
            "host {} has no address in the inventory and the scenario has no \
             probes.remote.dial_in: give the host an address, or set dial_in",
            host.name
        )),
    };
    let remote = match remote {
        Ok(r) => r,
        Err(why) => return end(events, why),
    };
    if !same_host(&host.name, &remote.info.hostname) {
        return end(
            events,
            format!(
                "the remote probe reached for host {} ({}) runs on host `{}`: its verdicts \
                 would be another machine's; fix the inventory's address for {}, or name \
                 the host as it names itself",
                host.name,
                remote.client.peer(),
                remote.info.hostname,
                host.name
            ),
        );
    }
    let local = match connect(&s, &s.probes.local, "local").await {
        Ok(l) => l,
        Err(e) => return end(events, format!("the client rig of host {}: {e}", host.name)),
    };
    let options = RunOptions {
        evidence_dir,
        seed: Some(seed),
        fleet: None,
        interrupt: interrupt.clone(),
    };
    let mut emit = |e: Event| events.push(e);
    run_connected(
        &s,
        &p.expectation,
        (local, remote),
        &options,
        seed,
        &mut emit,
    )
    .await;
    events
}

/// One listener for every host of a scenario that dials in: each probe that dials is
/// authenticated, asked who it is, and kept for the host of that name until the host's
/// turn. A probe of the same host that dials again before then (a `--keep-dialing` probe
/// whose connection the host's idle limit closed) takes the older one's place.
struct DialHub {
    bind: String,
    expected: usize,
    arrived: Arc<Arrivals>,
    stop: CancellationToken,
}

/// Probes that dialed in, by host key, until their host takes them.
struct Arrivals {
    /// Host key -> the probe, once it came (none: expected, not come yet).
    probes: Mutex<HashMap<String, Option<Probe>>>,
    /// Woken on every arrival.
    came: tokio::sync::Notify,
}

impl Drop for DialHub {
    /// Its acceptors stop with it; their listener closes with the last of them.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Acceptors at once: a slow handshake does not hold up the probes behind it.
const ACCEPTORS: usize = 8;

impl DialHub {
    /// A hub for the hosts without an address; none when every host has one.
    async fn start(s: &Scenario, hosts: &[InventoryHost]) -> Option<Result<DialHub, String>> {
        let want: Vec<&InventoryHost> = hosts.iter().filter(|h| h.address.is_none()).collect();
        if want.is_empty() {
            return None;
        }
        Some(Self::open(s, &want).await)
    }

    async fn open(s: &Scenario, want: &[&InventoryHost]) -> Result<DialHub, String> {
        let Some(bind) = s.probes.remote.dial_in.clone() else {
            return Err(format!(
                "{} host(s) of the inventory have no address (e.g. {}) and the scenario has \
                 no probes.remote.dial_in: give them addresses, or set dial_in for their \
                 probes to dial",
                want.len(),
                want[0].name
            ));
        };
        let token = token_for(s, &s.probes.remote, "remote").map_err(|e| e.to_string())?;
        let config = ClientConfig {
            connect_timeout: s.timeouts.connect,
            handshake_timeout: s.timeouts.connect,
            ..ClientConfig::default()
        };
        let listener = ProbeListener::bind(&bind, Some(token), config)
            .await
            .map_err(|e| {
                format!("remote probes: {e}; is {bind} an address of this machine, and free?")
            })?;
        let arrived = Arc::new(Arrivals {
            probes: Mutex::new(want.iter().map(|h| (host_key(&h.name), None)).collect()),
            came: tokio::sync::Notify::new(),
        });
        let hub = DialHub {
            bind: bind.clone(),
            expected: want.len(),
            arrived: arrived.clone(),
            stop: CancellationToken::new(),
        };
        let listener = Arc::new(listener);
        for _ in 0..ACCEPTORS {
            let (listener, arrived, stop, bind) = (
                listener.clone(),
                arrived.clone(),
                hub.stop.clone(),
                bind.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        () = stop.cancelled() => break,
                        r = listener.accept(Duration::from_secs(3600)) => r,
                    };
                    let client = match accepted {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!("a probe dialing in on {bind} was turned away: {e}");
                            continue;
                        }
                    };
                    hand_over(client, &arrived, &bind).await;
                }
            });
        }
        Ok(hub)
    }

    /// The probe of host `name`, once it has dialed in, within `wait`; it is then the
    /// host's, and a later dial of the same host is turned away.
    async fn take(&self, name: &str, wait: Duration) -> Result<Probe, String> {
        let key = host_key(name);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let came = self.arrived.came.notified();
            tokio::pin!(came);
            came.as_mut().enable();
            // Taken, the host's entry goes, so a later dial of it is turned away.
            let taken = self.arrived.probes.lock().ok().and_then(|mut p| {
                let arrived = matches!(p.get(&key), Some(Some(_)));
                arrived.then(|| p.remove(&key)).flatten().flatten()
            });
            if let Some(p) = taken {
                return Ok(p);
            }
            if tokio::time::timeout_at(deadline, came).await.is_err() {
                return Err(format!(
                    "host {name} never dialed in on {} within {} s: is `earshot-probe connect` \
                     running in a session on {name}, pointed at this machine with the \
                     scenario's token, and does the host name it reports match the \
                     inventory's `{name}`?",
                    self.bind,
                    wait.as_secs()
                ));
            }
        }
    }
}

/// Asks a probe that dialed in who it is and keeps it for its host.
async fn hand_over(client: AuthedClient, arrived: &Arrivals, bind: &str) {
    let probe = match Probe::described("remote", client).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("a probe dialed in on {bind} but did not describe itself: {e}");
            return;
        }
    };
    let key = host_key(&probe.info.hostname);
    let (hostname, peer) = (probe.info.hostname.clone(), probe.client.peer().to_string());
    let kept = match arrived.probes.lock() {
        Ok(mut p) => match p.get_mut(&key) {
            Some(slot) => {
                *slot = Some(probe);
                true
            }
            None => false,
        },
        Err(_) => false,
    };
    if kept {
        arrived.came.notify_waiters();
    } else {
        tracing::warn!(
            "a probe on host `{hostname}` ({peer}) dialed in on {bind}, but the inventory \
             names no such host, or its host has started already; it was turned away"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_host_name_never_leaves_the_evidence_folder() {
        for (name, safe) in [
            ("..", "_"),
            (".", "_"),
            ("../etc", "_etc"),
            ("avd-0.contoso.com", "avd-0.contoso.com"),
            ("a/b\\c", "a_b_c"),
        ] {
            assert_eq!(super::file_safe(name), safe, "{name}");
        }
    }
}
