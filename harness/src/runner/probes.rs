//! The probes of a scenario: connecting (by address or dialing in), who each is (its
//! facts, clock, control round trip), whether they are the ones the scenario names, and
//! what preflight says of them and of the client rig's endpoints.

use super::*;

/// A connected probe and what it said about itself.
pub(super) struct Probe {
    pub(super) role: &'static str,
    pub(super) side: Side,
    pub(super) client: AuthedClient,
    pub(super) info: ProbeInfo,
    /// Probe clock minus harness clock, ms (to put both probes' times on one clock).
    pub(super) clock_offset_ms: f64,
    /// The control link's round trip when connecting: the `info` request's, an upper
    /// bound (the probe lists its devices meanwhile).
    pub(super) rtt: Duration,
}

pub(super) fn token_for(
    s: &Scenario,
    spec: &ProbeSpec,
    role: &'static str,
) -> Result<Token, SetupError> {
    let message = |m: String| SetupError::Token {
        path: s.path.clone(),
        role,
        message: m,
    };
    let (token, from) = if let Some(f) = &spec.token_file {
        let path = s.resolve(f);
        let t = Token::from_file(&path).map_err(|e| message(format!("token_file: {e}")))?;
        (t, format!("token_file {}", path.display()))
    } else if let Some(var) = &spec.token_env {
        let text = std::env::var(var).map_err(|e| {
            message(match e {
                std::env::VarError::NotPresent => format!(
                    "token_env: the environment variable {var} is not set; export it with the \
                     probe's token"
                ),
                std::env::VarError::NotUnicode(_) => format!(
                    "token_env: the environment variable {var} is not valid UTF-8 text; \
                     expected the probe's token"
                ),
            })
        })?;
        let t = Token::new(&text, var).map_err(|e| message(format!("token_env: {e}")))?;
        (t, format!("token_env {var}"))
    } else {
        return Err(message("no token configured".into()));
    };
    // A token bound to a role serves only a probe in that role.
    let wanted = if role == "remote" {
        TokenRole::Session
    } else {
        TokenRole::Client
    };
    match token.role() {
        Some(bound) if bound != wanted => Err(message(format!(
            "{from} holds a token bound to the {} role (made with `token new --role {}`), \
             but probes.{role} is the {} probe: give it a `{}` token",
            bound.name(),
            bound.name(),
            wanted.name(),
            wanted.name()
        ))),
        _ => Ok(token),
    }
}

/// What to try when connecting to the probe at `addr` failed with `error`: a wrong token
/// or another version is not a network problem.
fn connect_hint(error: &ClientError, addr: &str, role: &str) -> String {
    use earshot_probe::proto::ProtoError;
    match error.proto() {
        Some(ProtoError::AuthFailed(_)) => format!(
            "the probe on {addr} holds another token than probes.{role}'s: give both the same \
             token file (`earshot-probe token new FILE`, then `serve --token-file FILE`)"
        ),
        Some(ProtoError::VersionMismatch { .. }) => {
            "install the same earshot version on the harness and the probe".into()
        }
        Some(ProtoError::FrameTooLarge { len, .. }) => {
            // A probe's first frame is small; a huge one is another protocol's greeting.
            let head = u32::try_from(*len)
                .map(u32::to_be_bytes)
                .unwrap_or_default();
            let said = if head.iter().all(|b| b.is_ascii_graphic()) {
                format!(" (it answered `{}`)", String::from_utf8_lossy(&head))
            } else {
                String::new()
            };
            format!(
                "what answers on {addr} is not an earshot probe{said}: a web server or a proxy \
                 on that address? Check probes.{role}'s address and port, and that the \
                 harness reaches that network directly"
            )
        }
        Some(ProtoError::Refused { .. }) => {
            format!("the probe on {addr} turned this harness away: see its reason above")
        }
        _ => format!(
            "is `earshot-probe serve` running on {addr}, and does a firewall let this machine \
             in?"
        ),
    }
}

/// What the runner tells the reader while it waits for a probe to dial in.
pub(super) fn dial_in_hint(bind: &str, spec: &ProbeSpec) -> String {
    let port = bind.rsplit_once(':').map_or("PORT", |(_, p)| p);
    let token = spec.token_file.as_ref().map_or_else(
        || "--token-file TOKEN".to_string(),
        |t| format!("--token-file {}", t.display()),
    );
    format!(
        "start `earshot-probe connect <this machine's address>:{port} {token}` inside the \
         user's remote session"
    )
}

pub(super) async fn connect(
    s: &Scenario,
    spec: &ProbeSpec,
    role: &'static str,
) -> Result<Probe, SetupError> {
    let token = token_for(s, spec, role)?;
    let config = ClientConfig {
        connect_timeout: s.timeouts.connect,
        handshake_timeout: s.timeouts.connect,
        ..ClientConfig::default()
    };
    let client = match (&spec.address, &spec.dial_in) {
        (Some(addr), _) => Client::connect(addr, Some(&token), &config)
            .await
            .map_err(|error| SetupError::Connect {
                role,
                hint: connect_hint(&error, addr, role),
                error,
            })?,
        (None, Some(bind)) => {
            let hint = dial_in_hint(bind, spec);
            let listener = ProbeListener::bind(bind, Some(token), config.clone())
                .await
                .map_err(|error| SetupError::Connect {
                    role,
                    hint: match &error {
                        ClientError::Connect { error: e, .. }
                            if e.kind() == std::io::ErrorKind::AddrInUse =>
                        {
                            format!(
                                "something else listens on {bind} (another earshot run?): \
                                 stop it, or give probes.{role}.dial_in another port"
                            )
                        }
                        _ => format!("is {bind} an address of this machine, and free?"),
                    },
                    error,
                })?;
            listener
                .accept(s.timeouts.connect)
                .await
                .map_err(|error| SetupError::Connect { role, error, hint })?
        }
        (None, None) => {
            return Err(SetupError::Token {
                path: s.path.clone(),
                role,
                message: "no address or dial_in".into(),
            })
        }
    };
    Probe::described(role, client)
        .await
        .map_err(|error| SetupError::Info { role, error })
}

impl Probe {
    /// Asks a connected probe who it is: its facts, its clock against the harness's, and
    /// the control link's round trip.
    pub(super) async fn described(
        role: &'static str,
        client: AuthedClient,
    ) -> Result<Probe, ClientError> {
        let sent = unix_ms();
        let asked = Instant::now();
        let info = client.info().await?;
        let rtt = asked.elapsed();
        let received = unix_ms();
        Ok(Probe {
            role,
            side: if role == "local" {
                Side::Client
            } else {
                Side::Session
            },
            clock_offset_ms: info.now_unix_ms - (sent + received) / 2.0,
            client,
            info,
            rtt,
        })
    }
}

pub(super) fn switch(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "true",
        Some(false) => "false",
        None => "not set (true)",
    }
}

/// What the probe read of its host's redirection settings, one line each.
pub(super) fn host_settings(i: &ProbeInfo) -> Vec<String> {
    let Some(x) = &i.xrdp else {
        return vec![];
    };
    if let Some(e) = &x.error {
        return vec![format!("xrdp.ini {}: cannot be read: {e}", x.path)];
    }
    let mut lines = vec![format!(
        "xrdp.ini {}: allow_channels={}, rdpsnd={}, drdynvc={}",
        x.path,
        switch(x.allow_channels),
        switch(x.rdpsnd),
        switch(x.drdynvc)
    )];
    if x.xvnc_rdpsnd.is_some() || x.xorg_rdpsnd.is_some() {
        lines.push(format!(
            "xrdp.ini {}: [Xvnc] channel.rdpsnd={}, [Xorg] channel.rdpsnd={}",
            x.path,
            switch(x.xvnc_rdpsnd),
            switch(x.xorg_rdpsnd)
        ));
    }
    lines
}

/// What the session host has for check `c`, as a fact to put next to the verdict, held
/// against what the scenario says was rolled out: a switch the scenario sets that the
/// host does not have means the rollout did not reach the host.
///
/// Only for the xrdp product: a Windows or AVD scenario's verdict does not rest on an
/// xrdp.ini the host happens to have (it stays in the probe's summary).
pub(super) fn host_fact(s: &Scenario, remote: &ProbeInfo, path: AudioPath) -> Option<String> {
    if s.product != Product::Xrdp {
        return None;
    }
    let x = remote.xrdp.as_ref().filter(|x| x.error.is_none())?;
    let said = s.policy.xrdp.clone().unwrap_or_default();
    // allow_channels governs both directions; each has its own channel switch.
    let channel = match path {
        AudioPath::Output => ("rdpsnd", x.rdpsnd, said.rdpsnd),
        AudioPath::Capture => ("drdynvc", x.drdynvc, said.drdynvc),
    };
    let switches = [
        ("allow_channels", x.allow_channels, said.allow_channels),
        channel,
    ];
    let has: Vec<String> = switches
        .iter()
        .map(|(k, v, _)| format!("{k}={}", switch(*v)))
        .collect();
    let differ: Vec<String> = switches
        .iter()
        .filter(|(_, host, said)| said.is_some_and(|want| host.unwrap_or(true) != want))
        .map(|(k, host, said)| {
            format!(
                "{k}={} where the scenario says {k}={}",
                switch(*host),
                said.unwrap_or(true)
            )
        })
        .collect();
    Some(if differ.is_empty() {
        format!("the session host's {} has {}", x.path, has.join(", "))
    } else {
        format!(
            "the session host's {} has {}: the setting did not reach this host",
            x.path,
            differ.join(", ")
        )
    })
}

pub(super) fn summary(p: &Probe) -> ProbeSummary {
    let i = &p.info;
    let devices = match &i.devices {
        Ok(list) => list
            .iter()
            .map(|d| {
                format!(
                    "{:?} {}{}{} ({})",
                    d.direction,
                    d.id,
                    if d.is_default { " [default]" } else { "" },
                    if d.is_monitor { " [monitor]" } else { "" },
                    d.name
                )
                .to_lowercase()
            })
            .collect(),
        Err(e) => vec![format!("cannot list devices: {e}")],
    };
    ProbeSummary {
        role: p.role.into(),
        peer: p.client.peer().into(),
        version: i.probe_version.clone(),
        host_name: i.hostname.clone(),
        os: format!("{} {}", i.os, i.arch),
        audio_host: match &i.audio_host {
            Ok(h) => h.clone(),
            Err(e) => format!("unavailable: {e}"),
        },
        remote_session: format!(
            "{}{} ({})",
            format!("{:?}", i.session.kind).to_lowercase(),
            served_by(&i.session),
            if i.session.evidence.is_empty() {
                "no markers".into()
            } else {
                i.session.evidence.join(", ")
            }
        ),
        devices,
        // Only the session host's settings govern redirection.
        host_settings: if p.side == Side::Session {
            let mut lines = host_settings(i);
            lines.extend(i.host_config.iter().flat_map(crate::host::summary_lines));
            lines
        } else {
            vec![]
        },
    }
}

/// Why the probes are not the ones the scenario names, if they are not: a local and a
/// remote address that reach one probe process (the verdicts would be about the client,
/// heard by itself), or a probe on another machine than its `host` key says.
pub(super) fn wrong_probes(s: &Scenario, local: &Probe, remote: &Probe) -> Option<String> {
    let id = &remote.info.instance_id;
    if !id.is_empty() && *id == local.info.instance_id {
        return Some(format!(
            "both addresses reach one probe: the local address ({}) and the remote address \
             ({}) answer as the same earshot-probe (instance {id} on {}), so the checks would \
             measure that machine against itself; point probes.remote at the probe inside the \
             user's remote session",
            local.client.peer(),
            remote.client.peer(),
            remote.info.hostname
        ));
    }
    let session = &remote.info.session;
    if s.probes.remote.session == SessionRequirement::Remote && session.kind != SessionKind::Remote
    {
        return Some(format!(
            "the remote probe on {} shows no remote desktop session ({}): its checks would \
             measure that machine's own audio, not redirection; start earshot-probe inside \
             the user's RDP session (on Windows, not on the console), or for a lab without \
             RDP set probes.remote.session = \"any\"",
            remote.info.hostname,
            session_words(session)
        ));
    }
    for (role, spec, p) in [
        ("local", &s.probes.local, local),
        ("remote", &s.probes.remote, remote),
    ] {
        if let Some(want) = &spec.host {
            if !crate::inventory::same_host(want, &p.info.hostname) {
                return Some(format!(
                    "the {role} probe ({}) runs on `{}`, but probes.{role}.host says `{want}`: \
                     the verdicts would be about the wrong machine; check probes.{role}'s \
                     address (or the host key)",
                    p.client.peer(),
                    p.info.hostname
                ));
            }
        }
    }
    None
}

pub(super) fn preflight_warnings(local: &Probe, remote: &Probe) -> Vec<String> {
    let mut w = Vec::new();
    let me = env!("CARGO_PKG_VERSION");
    for p in [local, remote] {
        if p.info.probe_version != me {
            w.push(format!(
                "{} probe is version {}, the harness {me}: results may differ; install matching versions",
                p.role, p.info.probe_version
            ));
        }
        if let Err(e) = &p.info.audio_host {
            w.push(format!("{} probe has no usable audio host: {e}", p.role));
        }
    }
    if remote.info.session.kind != SessionKind::Remote {
        // Only with probes.remote.session = "any": otherwise the scenario ended before.
        w.push(format!(
            "the remote probe on {} shows no remote desktop session ({}); the scenario accepts \
             any (probes.remote.session = \"any\"), so the verdicts are about the audio path \
             between the two probes, not an RDP session",
            remote.info.hostname,
            session_words(&remote.info.session)
        ));
    }
    w
}

/// A probe's session as it showed it, in words: its kind and markers.
pub(super) fn session_words(session: &earshot_probe::proto::msg::RemoteSession) -> String {
    let kind = match session.kind {
        SessionKind::Remote => "remote",
        SessionKind::Local => "the console",
        SessionKind::Unknown => "kind unknown",
    };
    let kind = format!("{kind}{}", served_by(session));
    if session.evidence.is_empty() {
        format!("{kind}, no markers")
    } else {
        format!("{kind}: {}", session.evidence.join(", "))
    }
}

/// ", served by xrdp" when the probe named the session's server.
fn served_by(session: &earshot_probe::proto::msg::RemoteSession) -> String {
    session
        .server
        .map(|s| format!(", served by {}", s.name()))
        .unwrap_or_default()
}

/// The local (client rig) endpoints a check on `path` needs, as (scenario key, selector,
/// direction).
pub(super) fn rig_endpoints(
    s: &Scenario,
    path: AudioPath,
) -> Vec<(&'static str, &str, DeviceDirection)> {
    let local = &s.probes.local;
    let feed = local.mic_feed.as_deref().unwrap_or("default");
    match path {
        AudioPath::Output => vec![
            (
                "probes.local.output_loopback",
                local.output_loopback.as_str(),
                DeviceDirection::Input,
            ),
            (
                "probes.local.output",
                local.output.as_str(),
                DeviceDirection::Output,
            ),
        ],
        AudioPath::Capture => vec![
            ("probes.local.mic_feed", feed, DeviceDirection::Output),
            (
                "probes.local.input",
                local.input.as_str(),
                DeviceDirection::Input,
            ),
        ],
    }
}

/// Whether the client rig has every endpoint a check on `path` needs: the first one
/// missing, as the observation that makes the check inconclusive.
pub(super) fn rig_preflight(s: &Scenario, local: &Probe, path: AudioPath) -> Option<Observation> {
    let catalog = match &local.info.devices {
        Ok(list) => list,
        Err(e) => {
            return Some(Observation::Error {
                side: Side::Client,
                detail: format!(
                    "local probe on {}: cannot list devices: {e}",
                    local.info.hostname
                ),
            })
        }
    };
    for (key, selector, direction) in rig_endpoints(s, path) {
        if let Err(e) = audio::select(catalog, &DeviceSelector::parse(selector), direction) {
            return Some(Observation::NoDevice {
                side: Side::Client,
                endpoint: selector.to_string(),
                detail: format!(
                    "{key} = \"{selector}\" on the local probe ({}): {}",
                    local.info.hostname, e.message
                ),
            });
        }
    }
    None
}

/// Connects both probes, telling the reader every few seconds what it waits for.
pub(super) async fn connect_both(
    s: &Scenario,
    emit: &mut dyn FnMut(Event),
) -> (Result<Probe, SetupError>, Result<Probe, SetupError>) {
    let dialing: Vec<(&str, String)> = [("local", &s.probes.local), ("remote", &s.probes.remote)]
        .into_iter()
        .filter_map(|(role, spec)| {
            spec.dial_in
                .as_ref()
                .map(|bind| (role, format!("on {bind}: {}", dial_in_hint(bind, spec))))
        })
        .collect();
    for (role, how) in &dialing {
        emit(Event::Waiting(format!(
            "waiting up to {} s for the {role} probe to dial in {how}",
            s.timeouts.connect.as_secs()
        )));
    }
    let both = async {
        tokio::join!(
            connect(s, &s.probes.local, "local"),
            connect(s, &s.probes.remote, "remote")
        )
    };
    tokio::pin!(both);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tokio::select! {
            r = &mut both => return r,
            _ = tick.tick() => {
                if !dialing.is_empty() {
                    emit(Event::Waiting(format!(
                        "still waiting for a probe to dial in ({} s of {} s)",
                        started.elapsed().as_secs(),
                        s.timeouts.connect.as_secs()
                    )));
                }
            }
        }
    }
}

/// For a scenario whose session host layer is `from_host`: the scenario with the layer the
/// remote probe read, its expectation, and notes on values that could not be taken as
/// they are. `None` for a scenario that declares its layer.
#[allow(clippy::type_complexity)]
pub(super) fn session_layer_from_host(
    s: &Scenario,
    remote: &Probe,
) -> Result<Option<((Scenario, Expectation), Vec<String>)>, String> {
    if !s.policy.session_host.from_host {
        return Ok(None);
    }
    let Some(cfg) = &remote.info.host_config else {
        return Err(format!(
            "the scenario takes the session host layer from the host (from_host = true), but \
             the remote probe ({} on {}) reported no host policy: only the Windows probe \
             reads it; run earshot-probe.exe inside the Windows session, or declare the \
             settings in [policy.session_host]",
            remote.info.os, remote.info.hostname
        ));
    };
    let (layer, mut notes) = crate::host::layer_from_host(cfg);
    let mut taken = s.clone();
    taken.policy.session_host = layer;
    let e = policy::expect(&taken);
    notes.insert(
        0,
        format!(
            "the session host layer was taken from the host: {}",
            crate::host::describe_layer(&taken.policy.session_host)
        ),
    );
    Ok(Some(((taken, e), notes)))
}
