//! The NetworkPolicy semantic model: pure functions that answer questions about policies
//! exactly as Kubernetes would. No I/O, no async, no clock.

pub mod cluster;
pub use ipblock::IpFamilies;
pub(crate) mod coverage;
pub(crate) mod dns;
pub(crate) mod index;
pub(crate) mod ipblock;
pub(crate) mod names;
pub(crate) mod openness;
pub(crate) mod peer;
pub mod policy;
pub(crate) mod ports;
pub(crate) mod selector;
