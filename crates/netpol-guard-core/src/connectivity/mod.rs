//! Connectivity: which workloads can reach which, and which addresses, on which ports, as
//! the NetworkPolicies of an input decide it. Pure: manifests in, connections out.
//!
//! - [`workload`]: the pods a manifest runs (Pods and controllers' pod templates);
//! - [`ports`]: sets of ports per protocol;
//! - [`external`]: the address ranges `ipBlock`s cut;
//! - [`engine`]: the connections, and the explanation of one.

pub mod engine;
pub mod external;
pub mod ports;
pub mod workload;

pub use engine::{Connectivity, End, Explanation, Input, Network, Node, Side};
pub use ports::PortSet;
pub use workload::Workload;
