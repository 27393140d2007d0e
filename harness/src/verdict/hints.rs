//! What to try, derived from the layer that decided and from what the session showed.
//!
//! A cause's hint must send the admin to the place that can change the outcome: a session
//! host restart cannot change a client's .rdp file, and a new connection does not reload a
//! session host's Group Policy. Each [`Layer`] says where it is configured and what makes
//! a change to it take effect ([`arrival`]). Where sound that should arrive did not, what
//! the session showed of its redirected endpoint ([`SessionEndpoint`]) tells a server that
//! never offered the device from a device that was there and stayed silent.

use earshot_probe::audio::{DeviceDirection, DeviceInfo};
use earshot_probe::proto::msg::{ProbeInfo, SessionServer};
use earshot_probe::server::host_config::REMOTE_AUDIO_NAME;

use crate::policy::Layer;

/// The guess about a restart that a session host's own facts (its policy key's write time
/// and its boot time) replace: see [`super::Judgement::without_restart_guess`].
pub const RESTART_HINT: &str = "has the session host restarted since the rollout?";

/// Where `layer` is configured and what makes a change to it take effect, for a check whose
/// outcome `decided_by` (that layer's setting) should have decided but did not.
pub fn arrival(layer: Layer, decided_by: &str) -> String {
    match layer {
        Layer::SessionHostPolicy => format!(
            "{decided_by} has not taken effect on the session host: confirm it arrived \
             (`gpresult /r` for Group Policy, the device's configuration status in Intune, or \
             the value under HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal \
             Services) and that the user connected after it did; {RESTART_HINT}"
        ),
        Layer::XrdpIni => format!(
            "{decided_by} has not taken effect: xrdp reads xrdp.ini when it starts and applies \
             it to new connections; is it the file the running xrdp read (/etc/xrdp/xrdp.ini), \
             and were xrdp restarted (`systemctl restart xrdp`) and the client connected anew \
             since the change?"
        ),
        Layer::HostPoolProperties => format!(
            "{decided_by} has not reached this connection: a host pool's RDP properties apply \
             to new connections, and the client takes them from its workspace feed; check \
             them in the Azure portal (host pool > RDP Properties) or with `az \
             desktopvirtualization hostpool show --query customRdpProperty`, refresh the \
             workspace in the client, and connect anew"
        ),
        Layer::RdpFile => format!(
            "{decided_by} has not reached this connection: the client reads its .rdp file when \
             it connects; is the client using the file the scenario names, and did it connect \
             anew after the change? (a saved connection in Remote Desktop Connection keeps its \
             own audio choice under Local Resources)"
        ),
        Layer::ClientDevice => format!(
            "{decided_by} has not taken effect: the client app reads its Intune app \
             configuration when it starts; is the app configuration policy assigned to this \
             device and user, and was the app restarted before connecting?"
        ),
        Layer::DesktopAppConsent => format!(
            "{decided_by}: is the consent as the scenario says (Settings > Privacy > \
             Microphone > Let desktop apps access your microphone, in the user's session)?"
        ),
        Layer::ProductDefault => format!(
            "{decided_by}: nothing the scenario describes configures it, so the product's \
             default should hold; a layer the scenario leaves out (the client's own setting, \
             an RDP property, a session host policy) says otherwise: set it explicitly in the \
             layer you manage, and describe that layer in the scenario"
        ),
        Layer::ScenarioExpect => format!(
            "{decided_by}: the scenario's [expect] section overrides the policy layers; if it \
             is out of date, remove it to judge by the layers"
        ),
    }
}

/// What the session showed of its redirected endpoint for one direction, over every look
/// the harness had (at connection and after the check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEndpoint {
    /// Its server's endpoints are not named in a way earshot knows, or no catalogue came.
    Unknown,
    /// The server names its redirected endpoints `looked_for`, and the session never had
    /// one.
    Never {
        /// The server.
        server: SessionServer,
        /// What a redirected endpoint's name holds.
        looked_for: &'static str,
    },
    /// The session had this one.
    Present {
        /// Its name.
        name: String,
        /// The server keeps it whether or not the client opened the channel (xrdp's sink and
        /// source exist for the whole session), so its presence proves less.
        always_there: bool,
    },
}

/// The name a server gives its redirected endpoints in `direction`, when earshot knows it,
/// and whether the endpoint exists whatever the client does.
fn naming(server: SessionServer, direction: DeviceDirection) -> Option<(&'static str, bool)> {
    match (server, direction) {
        (SessionServer::WindowsRds, _) => Some((REMOTE_AUDIO_NAME, false)),
        (SessionServer::Xrdp, DeviceDirection::Output) => Some(("xrdp-sink", true)),
        (SessionServer::Xrdp, DeviceDirection::Input) => Some(("xrdp-source", true)),
        // GNOME Remote Desktop records the session's default output's monitor (no endpoint
        // of its own); where it redirects a microphone, its source carries its name.
        (SessionServer::GnomeRemoteDesktop, DeviceDirection::Input) => {
            Some(("remote desktop", false))
        }
        _ => None,
    }
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// What the session's probe showed, over `looks` (its answers to `info`), of the
/// redirected endpoint in `direction`.
pub fn session_endpoint(looks: &[&ProbeInfo], direction: DeviceDirection) -> SessionEndpoint {
    let Some(server) = looks.iter().find_map(|i| i.session.server) else {
        return SessionEndpoint::Unknown;
    };
    let Some((looked_for, always_there)) = naming(server, direction) else {
        return SessionEndpoint::Unknown;
    };
    let wanted = squash(looked_for);
    // A monitor of an output is no microphone, whatever its name.
    let matches = |d: &&DeviceInfo| {
        d.direction == direction
            && !(direction == DeviceDirection::Input && d.is_monitor)
            && (squash(&d.name).contains(&wanted) || squash(&d.id).contains(&wanted))
    };
    let mut catalogued = false;
    for info in looks {
        let Ok(devices) = &info.devices else {
            continue;
        };
        catalogued = true;
        if let Some(d) = devices.iter().find(matches) {
            return SessionEndpoint::Present {
                name: d.name.clone(),
                always_there,
            };
        }
    }
    if catalogued {
        SessionEndpoint::Never { server, looked_for }
    } else {
        SessionEndpoint::Unknown
    }
}

impl SessionEndpoint {
    /// Why sound that should have arrived did not, as far as the endpoint tells, for the
    /// microphone (`capture`) or the speaker; `None` when it tells nothing.
    pub fn silence_words(&self, capture: bool) -> Option<String> {
        let (device, kind) = if capture {
            ("microphone", "input")
        } else {
            ("speaker", "output")
        };
        match self {
            SessionEndpoint::Unknown => None,
            SessionEndpoint::Never { server, looked_for } => Some(if capture {
                format!(
                    "the session has no redirected microphone (no `{looked_for}` input at any \
                     time): the server ({}) may not support microphone redirection, or its \
                     channel is off",
                    server.name()
                )
            } else {
                format!(
                    "the session has no redirected speaker (no `{looked_for}` output at any \
                     time): the server's ({}) sound channel is off, or the client asked for \
                     no sound",
                    server.name()
                )
            }),
            SessionEndpoint::Present {
                name,
                always_there: true,
            } => Some(format!(
                "the session's `{name}` {kind} was there, but its server keeps it whether or \
                 not the client opened the {device} channel"
            )),
            SessionEndpoint::Present {
                name,
                always_there: false,
            } => Some(if capture {
                format!(
                    "the session had its redirected microphone (`{name}`), and it stayed \
                     silent: is the right client microphone redirected, or is it muted?"
                )
            } else {
                format!(
                    "the session had its redirected speaker (`{name}`), and the client heard \
                     nothing from it: does the client play remote sound on the device the rig \
                     listens to, and is it muted?"
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use earshot_probe::proto::msg::{RemoteSession, SessionKind};

    #[test]
    fn every_layer_sends_the_admin_to_its_own_place() {
        // Each layer's hint names where it lives and what makes it take effect; only the
        // session host's own policy asks about a session host restart.
        let table = [
            (Layer::SessionHostPolicy, "gpresult"),
            (Layer::XrdpIni, "systemctl restart xrdp"),
            (Layer::HostPoolProperties, "refresh the workspace"),
            (Layer::RdpFile, ".rdp file"),
            (Layer::ClientDevice, "app configuration"),
            (
                Layer::DesktopAppConsent,
                "Let desktop apps access your microphone",
            ),
            (Layer::ProductDefault, "set it explicitly"),
            (Layer::ScenarioExpect, "[expect]"),
        ];
        for (layer, place) in table {
            let hint = arrival(layer, "the setting");
            assert!(hint.starts_with("the setting"), "{layer:?}: {hint}");
            assert!(hint.contains(place), "{layer:?}: {hint}");
            assert_eq!(
                hint.contains(RESTART_HINT),
                layer == Layer::SessionHostPolicy,
                "{layer:?}: {hint}"
            );
        }
    }

    fn info(server: Option<SessionServer>, devices: &[(&str, DeviceDirection)]) -> ProbeInfo {
        let mut i = earshot_probe::server::base_info(std::time::Duration::from_secs(1));
        i.session = RemoteSession {
            kind: SessionKind::Remote,
            evidence: vec![],
            server,
        };
        i.devices = Ok(devices
            .iter()
            .map(|(name, direction)| DeviceInfo {
                id: name.to_string(),
                name: name.to_string(),
                direction: *direction,
                is_default: false,
                is_monitor: false,
                default_format: None,
            })
            .collect());
        i
    }

    #[test]
    fn the_endpoint_is_named_never_there_or_there_by_the_servers_naming() {
        use DeviceDirection::{Input, Output};
        let rds = Some(SessionServer::WindowsRds);
        let no_mic = info(rds, &[("Speakers (Remote Audio)", Output)]);
        let with_mic = info(rds, &[("Microphone (Remote Audio)", Input)]);
        assert_eq!(
            session_endpoint(&[&no_mic], Input),
            SessionEndpoint::Never {
                server: SessionServer::WindowsRds,
                looked_for: "Remote Audio"
            }
        );
        // Any look that saw it counts: the microphone came after the connection.
        assert!(matches!(
            session_endpoint(&[&no_mic, &with_mic], Input),
            SessionEndpoint::Present {
                always_there: false,
                ..
            }
        ));
        let w = session_endpoint(&[&no_mic], Input)
            .silence_words(true)
            .unwrap();
        assert!(
            w.contains("the session has no redirected microphone"),
            "{w}"
        );
        assert!(w.contains("may not support microphone redirection, or its channel is off"));
        let w = session_endpoint(&[&with_mic], Input)
            .silence_words(true)
            .unwrap();
        assert!(w.contains("stayed silent"), "{w}");

        // xrdp's sink is there whatever the client does: its presence is said as such.
        let xrdp = info(Some(SessionServer::Xrdp), &[("xrdp-sink", Output)]);
        let w = session_endpoint(&[&xrdp], Output)
            .silence_words(false)
            .unwrap();
        assert!(w.contains("keeps it whether or not"), "{w}");
        // GNOME Remote Desktop 43 offers no microphone at all.
        let grd = info(
            Some(SessionServer::GnomeRemoteDesktop),
            &[("Built-in Audio Analog Stereo", Input)],
        );
        let w = session_endpoint(&[&grd], Input)
            .silence_words(true)
            .unwrap();
        assert!(w.contains("GNOME Remote Desktop"), "{w}");
        // It has no speaker endpoint of its own, and an unknown server tells nothing.
        assert_eq!(session_endpoint(&[&grd], Output), SessionEndpoint::Unknown);
        assert_eq!(
            session_endpoint(&[&info(None, &[])], Input),
            SessionEndpoint::Unknown
        );
        // No catalogue at all tells nothing either.
        let mut failed = no_mic.clone();
        failed.devices = Err(earshot_probe::audio::AudioError {
            kind: earshot_probe::audio::AudioErrorKind::HostUnavailable,
            message: "down".into(),
        });
        assert_eq!(
            session_endpoint(&[&failed], Input),
            SessionEndpoint::Unknown
        );
    }
}
