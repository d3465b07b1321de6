//! # ordo-bench
//!
//! `ordo bench`'s library: a load generator that speaks Fabric's wire protocol to **any**
//! Fabric-compatible orderer, and the calibration of this machine's signature rates.
//!
//! A run signs `envelopes` ENDORSER_TRANSACTION envelopes (before the clock starts, or on the
//! fly), sends them over `streams` Broadcast streams with at most `window` unanswered each —
//! as fast as answers come (closed loop) or at an offered rate (open loop) — and counts them as
//! they arrive in blocks on a Deliver stream, so the figure is *ordered end to end*: from the
//! first send to the last delivery, with each envelope's latency from its send to the block
//! that carries it.
//!
//! It owns measuring, never judging: the results are figures for a person (or a JSON line for a
//! script), not pass/fail.

pub mod calibrate;
pub mod cpu;
pub mod run;

pub use calibrate::{Calibration, calibrate};
pub use cpu::{CpuUse, Watched};
pub use run::{BenchConfig, BenchError, BenchResult, newest_block, run};
