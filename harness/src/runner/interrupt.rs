//! The run's stop switch. A signal handler pulls it once, naming the signal; the runner
//! then keeps every check already decided, ends the running ones as inconclusive
//! ("interrupted"), skips what was not started and closes its probe connections, which
//! stops their plays and listens.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// A signal that stopped a run: its words, the exit code it gives, when it came (unix ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Pulled {
    /// `SIGINT (Ctrl-C)`, `SIGTERM`, `Ctrl-Break`.
    pub signal: String,
    /// 130 for SIGINT, 143 for SIGTERM.
    pub exit_code: i32,
    /// When it came.
    pub at_unix_ms: f64,
}

/// See the module: cloned into every part of a run that waits.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    token: CancellationToken,
    pulled: Arc<Mutex<Option<Pulled>>>,
}

impl Interrupt {
    /// A switch nobody has pulled.
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Pulls it for `signal`; true the first time (a second pull changes nothing: the
    /// caller decides what a second signal means).
    pub fn pull(&self, signal: &str, exit_code: i32) -> bool {
        let first = match self.pulled.lock() {
            Ok(mut p) if p.is_none() => {
                *p = Some(Pulled {
                    signal: signal.to_string(),
                    exit_code,
                    at_unix_ms: earshot_probe::unix_ms(),
                });
                true
            }
            Ok(_) => false,
            // A poisoned lock: a panic elsewhere; stop anyway.
            Err(_) => !self.token.is_cancelled(),
        };
        self.token.cancel();
        first
    }

    /// Whether it was pulled.
    pub fn is_pulled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once it is pulled.
    pub async fn pulled(&self) {
        self.token.cancelled().await
    }

    /// The signal that pulled it, if any.
    pub fn cause(&self) -> Option<Pulled> {
        match self.pulled.lock() {
            Ok(p) => p.clone(),
            Err(_) => self.is_pulled().then(|| Pulled {
                signal: "a signal".into(),
                exit_code: 130,
                at_unix_ms: earshot_probe::unix_ms(),
            }),
        }
    }
}

/// Turns SIGINT and SIGTERM (Ctrl-C and Ctrl-Break on Windows) into the run's interrupt:
/// the run keeps what was decided, ends the running checks as interrupted and writes every
/// report. A second signal ends the process at once.
pub async fn watch_signals(interrupt: Interrupt) {
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "earshot: warning: cannot watch for Ctrl-C ({e}): an interrupted run will \
                 not write its reports"
            );
            return;
        }
    };
    loop {
        let (signal, code) = signals.next().await;
        if interrupt.pull(signal, code) {
            eprintln!(
                "earshot: {signal}: stopping the checks; those already decided are kept and \
                 every report is written (send it again to quit at once)"
            );
        } else {
            eprintln!("earshot: {signal} again: quitting at once, reports as last written");
            std::process::exit(interrupt.cause().map_or(code, |p| p.exit_code));
        }
    }
}

/// The signals that stop a run, with the exit code each gives.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(windows)]
    c: tokio::signal::windows::CtrlC,
    #[cfg(windows)]
    brk: tokio::signal::windows::CtrlBreak,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(windows)]
        {
            Ok(Signals {
                c: tokio::signal::windows::ctrl_c()?,
                brk: tokio::signal::windows::ctrl_break()?,
            })
        }
    }

    async fn next(&mut self) -> (&'static str, i32) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => ("SIGINT (Ctrl-C)", 130),
                _ = self.term.recv() => ("SIGTERM", 143),
            }
        }
        #[cfg(windows)]
        {
            tokio::select! {
                _ = self.c.recv() => ("Ctrl-C", 130),
                _ = self.brk.recv() => ("Ctrl-Break", 130),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_pull_names_the_signal_and_later_ones_change_nothing() {
        let i = Interrupt::new();
        assert!(!i.is_pulled());
        assert_eq!(i.cause(), None);
        let clone = i.clone();
        assert!(clone.pull("SIGTERM", 143));
        assert!(!i.pull("SIGINT (Ctrl-C)", 130));
        assert!(i.is_pulled());
        let p = i.cause().unwrap();
        assert_eq!((p.signal.as_str(), p.exit_code), ("SIGTERM", 143));
    }
}
