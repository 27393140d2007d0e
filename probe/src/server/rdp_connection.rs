//! How long the RDP connection of this session has stood unchanged, as far as the host
//! shows it.
//!
//! RDP opens its microphone channel on demand, per connection: a client that reconnects
//! brings a new connection whose channel opens only when the session's audio asks for it
//! again. An input held open since before the reconnect proves nothing about the new
//! connection's channel; the harness needs the age of the connection too.
//!
//! On an xrdp host, the session's socket directory (`XRDP_SOCKET_PATH`, Debian:
//! `/run/xrdp/sockdir`) changes with every step of a connection: chansrv makes a listening
//! socket when its client goes away and removes it when the next one arrives, makes the
//! session's audio sockets anew for each connection, and removes the microphone socket
//! (`XRDP_PULSE_SOURCE_SOCKET`) when the audio module connects to it, which is when chansrv
//! asks the client to open the microphone channel. Each of these changes the directory's
//! modification time, so its age bounds how long the current connection and its microphone
//! request have stood. Other sessions' sockets share the directory and only make the age
//! shorter than it could be, never longer. While the microphone socket is there, the audio
//! module has not asked for the channel on this connection: no age is claimed then.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// The environment variable sesman sets to the session's socket directory.
pub const SOCKET_DIR_ENV: &str = "XRDP_SOCKET_PATH";
/// The environment variable sesman sets to the name of chansrv's microphone socket.
pub const SOURCE_SOCKET_ENV: &str = "XRDP_PULSE_SOURCE_SOCKET";

/// The age of this session's RDP connection (see the module's doc); `None` outside an
/// xrdp session, when the directory cannot be read, or while the microphone socket waits
/// for the audio module.
pub fn age() -> Option<Duration> {
    let dir = std::env::var_os(SOCKET_DIR_ENV)?;
    let source = std::env::var_os(SOURCE_SOCKET_ENV);
    age_of(
        Path::new(&dir),
        source.as_deref().map(Path::new),
        SystemTime::now(),
    )
}

/// [`age`] for a given directory, microphone socket name and time.
pub fn age_of(dir: &Path, source_socket: Option<&Path>, now: SystemTime) -> Option<Duration> {
    if let Some(name) = source_socket {
        // Present, or not knowable: the channel was not asked for on this connection.
        match dir.join(name).symlink_metadata() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            _ => return None,
        }
    }
    let changed = dir.metadata().ok()?.modified().ok()?;
    // A change stamped in the future (a clock stepped back) is a change just now.
    Some(now.duration_since(changed).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_is_the_directorys_and_restarts_with_each_change() {
        let dir = tempfile::tempdir().unwrap();
        let later = SystemTime::now() + Duration::from_secs(30);
        let age = age_of(dir.path(), None, later).unwrap();
        assert!((29..=31).contains(&age.as_secs()), "{age:?}");
        // A socket made (a client gone) or removed (one arrived) is a change.
        std::fs::write(dir.path().join("xrdp_chansrv_socket_10"), b"").unwrap();
        let now = SystemTime::now();
        assert!(age_of(dir.path(), None, now).unwrap() < Duration::from_secs(2));
        // A clock stepped back never gives a negative age.
        let earlier = now - Duration::from_secs(60);
        assert_eq!(age_of(dir.path(), None, earlier), Some(Duration::ZERO));
    }

    #[test]
    fn no_age_while_the_microphone_socket_waits_or_outside_xrdp() {
        let dir = tempfile::tempdir().unwrap();
        let mic = Path::new("xrdp_chansrv_audio_in_socket_10");
        std::fs::write(dir.path().join(mic), b"").unwrap();
        assert_eq!(age_of(dir.path(), Some(mic), SystemTime::now()), None);
        std::fs::remove_file(dir.path().join(mic)).unwrap();
        assert!(age_of(dir.path(), Some(mic), SystemTime::now()).is_some());
        assert_eq!(
            age_of(&dir.path().join("gone"), None, SystemTime::now()),
            None
        );
    }
}
