//! The NetworkPolicy semantic model: pure functions that answer questions about policies
//! exactly as Kubernetes would. No I/O, no async, no clock.

pub mod cluster;
pub mod dns;
pub mod ipblock;
pub mod peer;
pub mod policy;
pub mod ports;
pub mod selector;
