//! What the webhook, the cluster cache and the controller share while the process runs: the
//! `state` every decision reads, the `metrics` they all write, and the one `duration`
//! notation of every flag, value and `?timeout=`.

pub(crate) mod duration;
pub mod metrics;
pub mod state;
