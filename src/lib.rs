//! netpol-guard: keeps Kubernetes NetworkPolicy from breaking clusters.
//!
//! Data flows one way: bytes are decoded ([`manifest`]), analysed by pure functions over
//! k8s-openapi types ([`netpol`] for semantics, [`rules`] for findings, [`mutate`] for
//! patches), and encoded ([`report`], [`admission`]). The offline `check` command
//! ([`check`]) and the admission webhook ([`serve`], [`server`]) call the same engine, so
//! they cannot disagree.

pub mod admission;
pub mod certs;
pub mod check;
pub mod cli;
pub mod companions;
pub mod config;
pub mod kubernetes;
pub mod manifest;
pub mod metrics;
pub mod mutate;
pub mod netpol;
pub mod reload;
pub mod report;
pub mod rules;
pub mod serve;
pub mod server;
pub mod telemetry;
pub mod tls;
