//! Test support for netpol-guard, in one place for its integration tests, its end-to-end
//! harness and its benchmarks: AdmissionReview bodies as the API server sends them
//! ([`review`]), the load benchmark's request mix ([`mix`]), and TLS/HTTP clients with the
//! helpers that wait for and read a running guard ([`client`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod client;
pub mod mix;
pub mod review;

pub use client::*;
pub use review::{Review, UID};

/// This process's peak resident set (`VmHWM`), in MiB; NaN where /proc does not say.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}
