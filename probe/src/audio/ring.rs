//! A pre-allocated single-producer single-consumer ring of f32 samples.
//!
//! The audio callback is the producer: it must not allocate, lock or block, so pushing
//! only writes into storage allocated up front and publishes with one atomic store. When
//! the consumer falls behind, the samples that do not fit are counted as dropped rather
//! than overwriting unread data.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

struct Shared {
    buf: Box<[UnsafeCell<f32>]>,
    /// Total samples written (producer-owned, published with Release).
    head: AtomicUsize,
    /// Total samples read (consumer-owned, published with Release).
    tail: AtomicUsize,
    dropped: AtomicU64,
}

// SAFETY: each slot is written only by the single producer while it is outside the
// readable window [tail, head) and read only by the single consumer inside it; the
// Acquire/Release pairs on head and tail order those accesses.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// The writing end (owned by the audio callback).
pub struct Producer(Arc<Shared>);
/// The reading end (owned by the analysis side).
pub struct Consumer(Arc<Shared>);

/// Creates a ring holding up to `capacity` samples.
pub fn ring(capacity: usize) -> (Producer, Consumer) {
    let cap = capacity.max(1);
    let buf: Box<[UnsafeCell<f32>]> = (0..cap).map(|_| UnsafeCell::new(0.0)).collect();
    let shared = Arc::new(Shared {
        buf,
        head: AtomicUsize::new(0),
        tail: AtomicUsize::new(0),
        dropped: AtomicU64::new(0),
    });
    (Producer(shared.clone()), Consumer(shared))
}

impl Producer {
    /// Pushes samples mapped through `conv`; what does not fit is counted as dropped.
    /// Never allocates or blocks.
    pub fn push_with<T: Copy>(&mut self, data: &[T], conv: impl Fn(T) -> f32) {
        let s = &*self.0;
        let cap = s.buf.len();
        let head = s.head.load(Ordering::Relaxed);
        let tail = s.tail.load(Ordering::Acquire);
        let free = cap - (head - tail);
        let n = data.len().min(free);
        for (i, &x) in data[..n].iter().enumerate() {
            // SAFETY: slot (head + i) % cap is outside the readable window (see Shared).
            unsafe { *s.buf[(head + i) % cap].get() = conv(x) };
        }
        s.head.store(head + n, Ordering::Release);
        if n < data.len() {
            s.dropped
                .fetch_add((data.len() - n) as u64, Ordering::Relaxed);
        }
    }
}

impl Consumer {
    /// Moves every readable sample to `out`; returns how many.
    pub fn drain_into(&mut self, out: &mut Vec<f32>) -> usize {
        let s = &*self.0;
        let cap = s.buf.len();
        let tail = s.tail.load(Ordering::Relaxed);
        let head = s.head.load(Ordering::Acquire);
        for i in tail..head {
            // SAFETY: slot i % cap is inside the readable window (see Shared).
            out.push(unsafe { *s.buf[i % cap].get() });
        }
        s.tail.store(head, Ordering::Release);
        head - tail
    }

    /// Samples the producer could not store because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_counts_overflow() {
        let (mut p, mut c) = ring(4);
        p.push_with(&[1i16, 2, 3], f32::from);
        let mut out = Vec::new();
        assert_eq!(c.drain_into(&mut out), 3);
        p.push_with(&[4i16, 5, 6, 7, 8, 9], f32::from);
        assert_eq!(c.dropped(), 2);
        c.drain_into(&mut out);
        assert_eq!(out, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    }

    #[test]
    fn threads_lose_nothing_when_reader_keeps_up() {
        let (mut p, mut c) = ring(1 << 12);
        let t = std::thread::spawn(move || {
            for k in 0..2000u32 {
                let chunk: Vec<u32> = (k * 10..k * 10 + 10).collect();
                p.push_with(&chunk, |x| x as f32);
                std::thread::yield_now();
            }
        });
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !t.is_finished() && std::time::Instant::now() < deadline {
            c.drain_into(&mut out);
        }
        t.join().unwrap();
        c.drain_into(&mut out);
        let dropped = c.dropped() as usize;
        assert_eq!(out.len() + dropped, 20_000);
        // Whatever arrived is in order with no duplicates.
        assert!(out.windows(2).all(|w| w[0] < w[1]));
    }
}
