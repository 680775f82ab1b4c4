//! The webhook process: `serve` (listeners, signals, reloads), the HTTP `router`, TLS with a
//! certificate swapped while serving, connection `shedding`, file `reload`ing, and the
//! serving `certs`. Bytes in, [`crate::admission`] in the middle, bytes out.

pub mod certs;
pub(crate) mod reload;
pub mod router;
pub mod serve;
pub(crate) mod shedding;
pub mod tls;
