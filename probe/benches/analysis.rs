//! Analysis throughput: how many times faster than real time the detector runs on one
//! core, 48 kHz mono, on 10 s and 60 s recordings (a signature near the end, in noise).
//!
//! Criterion reports elements (samples) per second; divide by 48 000 for "× real time".

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use earshot_probe::analysis::analyze;
use earshot_probe::signal::{impair, Direction, Signature};

fn recording(seconds: usize) -> (Vec<f32>, Signature) {
    let rate = 48_000;
    let sig = Signature::new(7, Direction::Output);
    let s = sig.render(rate).expect("48 kHz is supported");
    let total = rate as usize * seconds;
    let mut x = impair::place(&s, total - s.len() - rate as usize / 2, total);
    let noise = impair::white_noise(total, 3);
    impair::add_noise_at_snr(&mut x, &s, &noise, rate, 10.0);
    (x, sig)
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("analyze_48k_mono");
    group.sample_size(10);
    for seconds in [10usize, 60] {
        let (x, sig) = recording(seconds);
        group.throughput(Throughput::Elements(x.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{seconds}s")),
            &x,
            |b, x| {
                b.iter(|| {
                    let a = analyze(x, 48_000, &sig).expect("48 kHz is supported");
                    assert!(a.detected);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
