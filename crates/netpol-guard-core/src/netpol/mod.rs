//! The NetworkPolicy semantic model: pure functions that answer questions about policies
//! exactly as Kubernetes would. No I/O, no async, no clock.

pub mod cluster;
pub use ipblock::IpFamilies;
pub(crate) mod coverage;
pub mod dns;
pub mod index;
pub mod ipblock;
pub mod layers;
pub mod names;
pub(crate) mod openness;
pub(crate) mod peer;
pub mod policy;
pub mod ports;
pub(crate) mod reach;
pub mod selector;
pub mod tiers;
