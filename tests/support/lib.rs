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
