//! What the benches share: a seeded generator, a fixed calendar and interleaved timing.
#![allow(dead_code, reason = "each bench uses part of it")]
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "bench code: a fixed date, a non-empty sample; allow, not expect: each bench uses part of it"
)]

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};

/// A small, fast, seeded generator (xorshift64*), so every run sees the same workload.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// `days` after 2026-01-01, the benches' calendar.
pub fn at(days: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(days)
}

/// Median nanoseconds per operation of each body, over `runs` rounds of `per_run`
/// operations. The bodies take turns within each round, so that the machine's noise
/// (this VM's neighbours come and go) falls on the baseline and the guard alike and the
/// ratio between them holds.
pub fn interleaved_medians(runs: usize, per_run: u64, bodies: &mut [&mut dyn FnMut(u64) -> usize]) -> Vec<f64> {
    let mut samples = vec![Vec::with_capacity(runs); bodies.len()];
    for _ in 0..runs {
        for (body, samples) in bodies.iter_mut().zip(&mut samples) {
            let start = Instant::now();
            black_box(body(per_run));
            samples.push(start.elapsed().as_nanos() as f64 / per_run as f64);
        }
    }
    samples.into_iter().map(median).collect()
}

/// The median of `samples` (not empty).
pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}
