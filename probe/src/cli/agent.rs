//! `serve` and `connect`: the probe as an agent driven over the control protocol; `token
//! new`: a fresh token file.
//!
//! Both stop on SIGINT/SIGTERM (Ctrl-C/Ctrl-Break on Windows): running jobs are cancelled,
//! requests in flight are answered with `shutting_down`, and the exit status is 0.

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use tokio_util::sync::CancellationToken;

use earshot_probe::audio::HostChoice;
use earshot_probe::proto::auth::{Token, TOKEN_ENV};
use earshot_probe::server::device::DeviceHandler;
use earshot_probe::server::{check_bind, xrdp_ini, Server, ServerConfig, ServerError};

/// The agent subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Serves the control protocol on ADDR (non-loopback needs a token).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:7878 (port 0 picks one; printed on stdout).
        #[arg(long)]
        listen: String,
        #[command(flatten)]
        opts: AgentOpts,
        /// Connections served at once; more are refused with a reason.
        #[arg(long, default_value_t = 64)]
        max_connections: usize,
    },
    /// Dials the harness at HOST:PORT and serves requests over that connection (for
    /// session hosts that accept no inbound connections).
    Connect {
        /// The harness's address.
        addr: String,
        #[command(flatten)]
        opts: AgentOpts,
        /// Keep retrying a refused dial for this long.
        #[arg(long, default_value_t = 30.0)]
        retry_secs: f64,
        /// Never give up: dial again after each connection ends, and keep dialing (every 5 s
        /// once --retry-secs has passed) while the harness is away, until Ctrl-C or the
        /// process is ended. For a probe started at logon that serves every later run.
        #[arg(long)]
        keep_dialing: bool,
    },
    /// Manages the shared tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Writes a fresh random token (256 bits, hex) to a new FILE that only the current
    /// user can read (mode 0600; on Windows an ACL for the current user alone). An
    /// existing file is never overwritten. To rotate: append the new token's line to the
    /// probes' token files, switch the harness to the new token, then remove the old line.
    New {
        /// The file to create.
        file: PathBuf,
        /// Bind the token to one probe role: a harness then refuses to use it for a probe
        /// in the other role, so a client rig's probe cannot answer as the session. Give
        /// the session's probes a `session` token and the client rig's a `client` one.
        #[arg(long, value_enum)]
        role: Option<earshot_probe::proto::token::TokenRole>,
    },
}

/// Options shared by `serve` and `connect`.
#[derive(Debug, clap::Args)]
pub struct AgentOpts {
    /// File of shared tokens, one per line (owner-only permissions); repeatable: every
    /// token of every file is accepted, so tokens rotate without downtime. Else
    /// EARSHOT_TOKEN.
    #[arg(long)]
    token_file: Vec<PathBuf>,
    /// Longest record/listen a request may ask for.
    #[arg(long, default_value_t = 60.0)]
    max_capture_secs: f64,
    /// Close a connection without requests or jobs after this long.
    #[arg(long, default_value_t = 300.0)]
    idle_timeout_secs: f64,
    /// The xrdp.ini whose channel settings `info` reports; else EARSHOT_XRDP_INI, else
    /// /etc/xrdp/xrdp.ini (a missing file is reported as no xrdp).
    #[arg(long)]
    xrdp_ini: Option<PathBuf>,
    /// Hold this input open (and discard what it records) for as long as the probe runs,
    /// e.g. `default`; repeat for more inputs. On a session host, RDP opens the microphone
    /// channel only once something records, 1.5-2 s later; held open, it is open before
    /// every check, so capture is heard on the first play and a blocked capture is proven
    /// silent without that allowance. On a PulseAudio client rig, the monitor of an idle
    /// sink delivers a new listener's first audio up to 2 s late; held open, at once (e.g.
    /// `--prime-input speakers.monitor --prime-input mic`). Verdicts are right without it,
    /// only slower.
    #[arg(long, value_name = "DEVICE")]
    prime_input: Vec<String>,
}

fn handler(host: HostChoice, opts: &AgentOpts, cfg: &ServerConfig) -> DeviceHandler {
    let h = DeviceHandler::new(host, cfg.max_capture)
        .with_xrdp_ini(xrdp_ini::choose_path(opts.xrdp_ini.as_deref()));
    opts.prime_input
        .iter()
        .fold(h, |h, device| h.with_primed_input(device))
}

fn secs(v: f64, flag: &str, max: f64) -> anyhow::Result<Duration> {
    if !(v.is_finite() && v > 0.0 && v <= max) {
        anyhow::bail!("{flag} must be in (0, {max}], got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

fn config(opts: &AgentOpts) -> anyhow::Result<ServerConfig> {
    let tokens = Token::load_all(&opts.token_file).with_context(|| {
        if opts.token_file.is_empty() {
            format!("reading the token from {TOKEN_ENV}")
        } else {
            "loading the tokens".to_string()
        }
    })?;
    if !tokens.is_empty() {
        tracing::info!("{} token(s) accepted", tokens.len());
    }
    Ok(ServerConfig {
        tokens,
        max_capture: secs(opts.max_capture_secs, "--max-capture-secs", 3600.0)?,
        idle_timeout: secs(opts.idle_timeout_secs, "--idle-timeout-secs", 86_400.0)?,
        ..ServerConfig::default()
    })
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C or Ctrl-Break on Windows).
async fn shutdown_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(windows)]
    {
        let mut brk =
            tokio::signal::windows::ctrl_break().context("installing the Ctrl-Break handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r.context("installing the Ctrl-C handler")?; Ok("Ctrl-C") }
            _ = brk.recv() => Ok("Ctrl-Break"),
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("installing the Ctrl-C handler")?;
        Ok("Ctrl-C")
    }
}

/// Runs an agent subcommand; returns the exit code.
pub fn run(cmd: AgentCommand, host: HostChoice) -> anyhow::Result<i32> {
    if let AgentCommand::Token {
        command: TokenCommand::New { file, role },
    } = &cmd
    {
        Token::create_file_for(file, *role)?;
        // The token itself is not printed: it stays in the file.
        println!("earshot-probe: wrote a new token to {}", file.display());
        return Ok(0);
    }
    earshot_probe::init_logging("info");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                match shutdown_signal().await {
                    Ok(name) => tracing::info!("{name}: shutting down"),
                    Err(e) => tracing::error!("{e:#}; stopping"),
                }
                shutdown.cancel();
            }
        });
        let r = match cmd {
            AgentCommand::Serve {
                listen,
                opts,
                max_connections,
            } => serve(&listen, &opts, max_connections, host, shutdown).await,
            AgentCommand::Connect {
                addr,
                opts,
                retry_secs,
                keep_dialing,
            } => connect(&addr, &opts, retry_secs, keep_dialing, host, shutdown).await,
            AgentCommand::Token { .. } => Ok(()),
        };
        signals.abort();
        r
    });
    // Device threads stuck in a wedged audio server must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(2));
    result.map(|()| 0)
}

async fn serve(
    listen: &str,
    opts: &AgentOpts,
    max_connections: usize,
    host: HostChoice,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if max_connections == 0 {
        anyhow::bail!("--max-connections must be at least 1");
    }
    let cfg = ServerConfig {
        max_connections,
        ..config(opts)?
    };
    // Refuse before binding, so nothing ever listens unprotected.
    for addr in listen
        .to_socket_addrs()
        .with_context(|| format!("resolving --listen {listen}"))?
    {
        check_bind(addr, &cfg.tokens)?;
    }
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "cannot listen on {listen}: the port is taken ({e}); is another earshot-probe \
             already serving there (stop it, or give --listen another port and the \
             scenario's address the same one)?"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => anyhow::bail!(
            "cannot listen on {listen}: {e}; ports below 1024 need administrator rights: \
             use a higher port, such as the default 7702"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => anyhow::bail!(
            "cannot listen on {listen}: {e}; that address is not one of this machine's: \
             use 0.0.0.0:PORT (every address) or one `ip addr` / `ipconfig` lists"
        ),
        Err(e) => return Err(e).with_context(|| format!("listening on {listen}")),
    };
    let local = listener.local_addr().context("reading the bound address")?;
    println!("earshot-probe: listening on {local}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let server = Server::new(handler(host, opts, &cfg), cfg);
    server
        .run(listener, shutdown)
        .await
        .with_context(|| format!("serving on {local}"))
}

async fn connect(
    addr: &str,
    opts: &AgentOpts,
    retry_secs: f64,
    keep_dialing: bool,
    host: HostChoice,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let cfg = config(opts)?;
    let retry = secs(retry_secs, "--retry-secs", 86_400.0)?;
    for a in addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
    {
        // Same rule as listening: beyond loopback, only with a token.
        check_bind(a, &cfg.tokens)
            .map_err(|_| anyhow::anyhow!("refusing to dial non-loopback {a} without a token: give --token-file or set {TOKEN_ENV}"))?;
    }
    let server: Arc<Server<DeviceHandler>> = Server::new(handler(host, opts, &cfg), cfg);
    let mut started = Instant::now();
    loop {
        let pause = match server
            .serve_dialed(addr, Duration::from_secs(5), &shutdown)
            .await
        {
            Ok(()) if keep_dialing && !shutdown.is_cancelled() => {
                tracing::info!("connection to {addr} ended; dialing again");
                started = Instant::now();
                Duration::from_secs(1)
            }
            Ok(()) => {
                tracing::info!("connection to {addr} ended");
                return Ok(());
            }
            Err(ServerError::Dial { error, .. }) if started.elapsed() < retry => {
                tracing::info!("dialing {addr}: {error}; retrying");
                Duration::from_millis(500)
            }
            Err(ServerError::Dial { error, .. }) if keep_dialing => {
                tracing::info!("dialing {addr}: {error}; dialing again in 5 s");
                Duration::from_secs(5)
            }
            // A failed handshake (a wrong token, someone else on the port) is said every
            // time, and with --keep-dialing tried again: the harness may be restarted
            // with the right token.
            Err(e) if keep_dialing => {
                tracing::warn!("serving the harness at {addr}: {e}; dialing again in 5 s");
                started = Instant::now();
                Duration::from_secs(5)
            }
            Err(e) => return Err(e).with_context(|| format!("serving the harness at {addr}")),
        };
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(pause) => {}
        }
    }
}
