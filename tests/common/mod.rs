//! Helpers shared by the integration tests: the guard's state, and the test kit's clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod corpus;
pub(crate) mod fake_api;
pub(crate) mod replica;

#[allow(unused_imports)]
pub(crate) use netpol_guard_testkit::*;

/// The guard's shared state with `config`, deployed as `netpol-guard` in `netpol-guard`.
pub(crate) fn state_with(
    config: netpol_guard::config::Config,
) -> netpol_guard::runtime::state::SharedState {
    netpol_guard::runtime::state::Shared::new(
        config,
        netpol_guard::guard::Identity {
            namespace: "netpol-guard".into(),
            service_account: "system:serviceaccount:netpol-guard:netpol-guard".into(),
        },
        netpol_guard::runtime::metrics::Metrics::new().unwrap(),
    )
}
