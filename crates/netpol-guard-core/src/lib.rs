//! The pure core of netpol-guard, bottom up; each layer imports only from the ones below it:
//!
//! - [`netpol`], the model: selectors, peers, ports, CIDRs, IP families, policies, DNS
//!   reachability.
//! - [`rules`], the catalog: each rule a small pure unit over the model, with its table.
//! - [`guard`], the decisions: NetworkPolicy verdicts, the DNS patch, companion protection
//!   and the desired companions, the namespace guard and stamp; with the settings they read.
//! - [`connectivity`], who can reach whom: the connections an input's policies allow, and
//!   why one is allowed or not.
//! - [`config`], which reads those settings from YAML; [`audit`], the cluster audit over an
//!   inventory.
//!
//! No I/O, no clock, no async, no globals: the webhook, the controller, the audit and the
//! offline `check` of the `netpol-guard` crate call the same functions, so they cannot
//! disagree. Cargo enforces it: this crate depends on no runtime, HTTP, Kubernetes client,
//! TLS or metrics crate.

pub mod netpol;
pub mod rules;

pub mod guard;

pub mod connectivity;

pub mod config;

pub mod audit;
