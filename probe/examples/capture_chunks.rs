//! How a PulseAudio source hands audio to a client: arrival time and size of every chunk,
//! for cpal's default buffer, cpal's fixed buffer, and a native record stream with a chosen
//! fragment size. The study behind `audio::pulse` (BENCHMARKS.md, "Time to verdict").
//!
//! `PULSE_SERVER=unix:/path cargo run -p earshot-probe --example capture_chunks -- SOURCE MODE SECONDS`
//! with MODE `cpal-default`, `cpal-fixed:FRAMES` or `native:FRAGMENT_MS`.
#![allow(clippy::unwrap_used)] // a test, bench or example: unwrap says "this must hold"

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

    let args: Vec<String> = std::env::args().collect();
    let (Some(source), Some(mode)) = (args.get(1).cloned(), args.get(2).cloned()) else {
        anyhow::bail!(
            "usage: capture_chunks SOURCE cpal-default|cpal-fixed:FRAMES|native:MS [SECONDS]"
        );
    };
    let seconds: f64 = args.get(3).map_or(Ok(4.0), |s| s.parse())?;
    let log: Arc<Mutex<Vec<(f64, usize)>>> = Arc::default();
    let t0 = Instant::now();
    let sink = {
        let log = log.clone();
        move |n: usize| {
            if let Ok(mut l) = log.lock() {
                l.push((t0.elapsed().as_secs_f64() * 1000.0, n));
            }
        }
    };
    let rate;
    let channels;
    if let Some(ms) = mode.strip_prefix("native:") {
        let ms: u32 = ms.parse()?;
        let cap = earshot_probe::audio::pulse::Capture::open(&source, ms, move |d: &[f32]| {
            sink(d.len())
        })?;
        rate = cap.sample_rate_hz();
        channels = cap.channels();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        drop(cap);
    } else {
        let host = cpal::host_from_id(cpal::HostId::PulseAudio)?;
        let dev = host
            .input_devices()?
            .find(|d| d.id().map(|i| i.to_string()).ok() == Some(format!("pulseaudio:{source}")))
            .ok_or_else(|| anyhow::anyhow!("no input {source}"))?;
        let cfg = dev.default_input_config()?;
        rate = cfg.sample_rate();
        channels = cfg.channels();
        let mut config = cfg.config();
        if let Some(f) = mode.strip_prefix("cpal-fixed:") {
            config.buffer_size = cpal::BufferSize::Fixed(f.parse()?);
        }
        let stream = dev.build_input_stream::<i16, _, _>(
            config,
            move |d: &[i16], _| sink(d.len()),
            |e| eprintln!("stream error: {e}"),
            None,
        )?;
        stream.play()?;
        std::thread::sleep(Duration::from_secs_f64(seconds));
        drop(stream);
    }
    let wall = t0.elapsed().as_secs_f64() * 1000.0;
    let log = log.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let total: usize = log.iter().map(|&(_, n)| n).sum();
    let per_ms = f64::from(rate) * f64::from(channels) / 1000.0;
    let mut gaps: Vec<f64> = log.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_by(f64::total_cmp);
    let sizes: Vec<f64> = log.iter().map(|&(_, n)| n as f64 / per_ms).collect();
    let first = log.first().map_or(f64::NAN, |x| x.0);
    println!(
        "{mode}: {} chunks, first after {first:.0} ms, audio {:.0} ms over {wall:.0} ms wall, \
         chunk {:.1}-{:.1} ms, gap median {:.1} ms max {:.1} ms",
        log.len(),
        total as f64 / per_ms,
        sizes.iter().copied().fold(f64::INFINITY, f64::min),
        sizes.iter().copied().fold(0.0, f64::max),
        gaps.get(gaps.len() / 2).copied().unwrap_or(f64::NAN),
        gaps.last().copied().unwrap_or(f64::NAN),
    );
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn main() {}
