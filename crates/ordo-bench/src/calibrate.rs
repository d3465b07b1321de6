//! `ordo bench calibrate`: how many ECDSA P-256 verifications and signatures one core of this
//! machine does per second with the crypto library the orderer uses (`ordo-crypto`). An orderer
//! verifies the creator's signature on every envelope, so `cores × verify rate` is the ceiling
//! for ordered transactions; every throughput figure is stated as a fraction of it.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Per-core rates and the ceiling they imply.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub cores: usize,
    pub verify_per_core_per_sec: f64,
    pub sign_per_core_per_sec: f64,
    /// `cores × verify_per_core_per_sec`.
    pub ceiling_tx_per_sec: f64,
}

/// Runs `f` repeatedly on this thread for about `d`; returns the rate per second.
fn rate(d: Duration, mut f: impl FnMut()) -> f64 {
    // Warm-up: tables, caches.
    for _ in 0..50 {
        f();
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < d {
        for _ in 0..50 {
            f();
        }
        n += 50;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Measures verify and sign on one core for about `d` each.
pub fn calibrate(d: Duration) -> Result<Calibration, ordo_crypto::CryptoError> {
    let key = ordo_crypto::SigningKey::generate()?;
    // A message the size of a typical envelope payload (the hash dominates nothing here).
    let msg = vec![7u8; 1300];
    let sig = key.sign(&msg)?;
    let public = key.public_key().clone();
    let verify = rate(d, || {
        let ok = public.verify(&msg, &sig).is_ok();
        std::hint::black_box(ok);
    });
    let sign = rate(d, || {
        std::hint::black_box(key.sign(&msg).is_ok());
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(Calibration {
        cores,
        verify_per_core_per_sec: verify,
        sign_per_core_per_sec: sign,
        ceiling_tx_per_sec: verify * cores as f64,
    })
}
