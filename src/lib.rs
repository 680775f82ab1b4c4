//! netpol-guard: keeps Kubernetes NetworkPolicy from breaking clusters.
//!
//! Data flows one way: bytes are decoded ([`manifest`]), analysed by pure functions over
//! k8s-openapi types ([`netpol`] for semantics, [`rules`] for findings, [`mutate`] for
//! patches), and encoded ([`report`]). The offline `check` command ([`check`]) and the
//! admission webhook call the same engine, so they cannot disagree.

pub mod check;
pub mod cli;
pub mod config;
pub mod manifest;
pub mod mutate;
pub mod netpol;
pub mod report;
pub mod rules;
