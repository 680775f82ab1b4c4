//! netpol-guard: keeps Kubernetes NetworkPolicy from breaking clusters.
//!
//! Layers, bottom up; each imports only from the ones below it. The pure core is a crate of
//! its own, `netpol-guard-core` (Cargo keeps it free of the edges: no async runtime, HTTP,
//! Kubernetes client or metrics), re-exported here under the same names; a test,
//! `tests/layers.rs`, keeps the edges apart:
//!
//! - [`netpol`], the model: selectors, peers, ports, CIDRs, policies, DNS reachability.
//! - [`rules`], the catalog: each rule a small pure unit over the model.
//! - [`guard`], the decisions: NetworkPolicy verdicts, the DNS patch, companion protection
//!   and the desired companions, the namespace guard and stamp; with the settings they read.
//! - [`connectivity`], who can reach whom: the connections policies allow, and why.
//! - [`config`], which reads those settings from YAML.
//! - the edges, each a folder: [`admission`] (the AdmissionReview codec), [`webhook`] (HTTP,
//!   TLS, limits, signals, certificates), [`kubernetes`] (cache, Lease, controller, the
//!   background audit), [`offline`] (`check` and `connectivity` over files, and their reports), [`cli`] (the
//!   commands, their flags and the logs), around [`runtime`] (state and metrics), which
//!   they share.
//!
//! Data flows one way: bytes (HTTP body, YAML file, watch event) are decoded, judged by
//! the pure layers and encoded (AdmissionResponse, report, apply). The offline `check`,
//! the webhook and the controller call the same functions, so they cannot disagree.

pub use netpol_guard_core::{audit, config, connectivity, guard, netpol, rules};

pub mod admission;
pub mod cli;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod kubernetes;
pub mod offline;
pub mod runtime;
pub mod webhook;
