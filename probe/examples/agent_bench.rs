//! Agent bench: a real `earshot-probe serve` process on loopback, measured from outside.
//!
//! Reports the handshake + `info` round trip (median of fresh connections), `info` alone
//! on an open connection, the idle probe's RSS, and N concurrent authenticated connections
//! each answering `info` while all are open. Run it through `bench/agent.sh`, which builds
//! the release binary and raises the file-descriptor limit for both processes.
//!
//! Usage: agent_bench PROBE_BINARY [CONNECTIONS]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use earshot_probe::proto::auth::Token;
use earshot_probe::proto::client::{Client, ClientConfig};

const TOKEN: &str = "bench-token-0123456789abcdef";

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn median_ms(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[v.len() * 9 / 10]))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let probe = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: agent_bench PROBE_BINARY [CONNECTIONS]"))?;
    let conns: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let tf = dir.path().join("token");
    std::fs::write(&tf, TOKEN)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o600))?;
    }
    let mut child = Command::new(&probe)
        .args(["serve", "--listen", "127.0.0.1:0", "--max-connections"])
        .arg((conns + 16).to_string())
        .arg("--token-file")
        .arg(&tf)
        .env("EARSHOT_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
    )
    .read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("earshot-probe: listening on ")
        .ok_or_else(|| anyhow::anyhow!("unexpected first line {line:?}"))?
        .to_string();
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = rss_kb(pid);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let token = Token::new(TOKEN, "bench")?;
    let cfg = ClientConfig::default();
    let report = rt.block_on(async {
        // Warm up: the first info lists devices; later ones within 2 s reuse that answer.
        let t0 = Instant::now();
        Client::connect(&addr, Some(&token), &cfg)
            .await?
            .info()
            .await?;
        let cold = t0.elapsed();
        let mut round = Vec::new();
        for _ in 0..200 {
            let t0 = Instant::now();
            let c = Client::connect(&addr, Some(&token), &cfg).await?;
            c.info().await?;
            round.push(t0.elapsed());
        }
        let c = Client::connect(&addr, Some(&token), &cfg).await?;
        let mut info_only = Vec::new();
        for _ in 0..200 {
            let t0 = Instant::now();
            c.info().await?;
            info_only.push(t0.elapsed());
        }
        drop(c);

        // N connections at once: each authenticates and answers info, then all stay open
        // until every one has answered.
        let barrier = Arc::new(tokio::sync::Barrier::new(conns + 1));
        let t0 = Instant::now();
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let (addr, token, cfg, barrier) =
                (addr.clone(), token.clone(), cfg.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let r = async {
                    let c = Client::connect(&addr, Some(&token), &cfg).await?;
                    c.info().await?;
                    Ok::<_, earshot_probe::proto::client::ClientError>(c)
                }
                .await;
                barrier.wait().await;
                // Keep the connection open until the RSS is read.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                r.map(drop)
            }));
        }
        barrier.wait().await;
        let all_open = t0.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let busy_rss = rss_kb(pid);
        let mut errors = Vec::new();
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e.to_string()),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Ok::<_, anyhow::Error>((cold, round, info_only, all_open, busy_rss, errors))
    });
    let (cold, round, info_only, all_open, busy_rss, errors) = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = child.kill();
            return Err(e);
        }
    };
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (hm, hp) = median_ms(round);
    let (im, ip) = median_ms(info_only);
    println!(
        "first handshake + info (device catalogue listed): {:.1} ms",
        cold.as_secs_f64() * 1000.0
    );
    println!("handshake + info, fresh connection: median {hm:.3} ms, p90 {hp:.3} ms (200 runs)");
    println!("info on an open connection:        median {im:.3} ms, p90 {ip:.3} ms (200 runs)");
    println!(
        "idle probe RSS: {} kB",
        idle_rss.map_or("?".into(), |v| v.to_string())
    );
    println!(
        "{conns} concurrent authenticated connections: {} ok, {} errors, all answered in {:.0} ms; probe RSS with all open: {} kB",
        conns - errors.len(),
        errors.len(),
        all_open.as_secs_f64() * 1000.0,
        busy_rss.map_or("?".into(), |v| v.to_string())
    );
    for e in errors.iter().take(5) {
        println!("  error: {e}");
    }
    println!(
        "SIGTERM: exit {:?} after {:.0} ms",
        status.and_then(|s| s.code()),
        t0.elapsed().as_secs_f64() * 1000.0
    );
    if !errors.is_empty() || status.and_then(|s| s.code()) != Some(0) {
        anyhow::bail!("the agent bench saw errors");
    }
    Ok(())
}
