//! Leader election over a `coordination.k8s.io/v1` Lease in the guard's namespace: every
//! replica serves admission, only the holder of the Lease runs the companions controller.
//! Losing the Lease stops the controller; shutting down releases it so another replica takes
//! over at once instead of after the lease duration.
//!
//! The campaign (kube-lease-manager) says when this replica is elected; the controller runs
//! only while, in addition, the Lease read back names this replica and its last renewal is
//! fresh. A replica that cannot renew (the API unreachable for the Lease, or the Lease taken)
//! therefore stops reconciling `LEASE_GRACE_SECONDS` before the Lease could expire and pass
//! to another replica, even if the campaign has not noticed yet.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

use super::controller::{self, Companions};
use crate::state::SharedState;

/// How long a held Lease stays valid without renewal.
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// The holder renews this long before the Lease would expire; also the clock skew tolerated
/// between replicas.
pub const LEASE_GRACE_SECONDS: u64 = 5;
/// How often the holder reads the Lease back to confirm it still holds it.
const CONFIRM_EVERY: Duration = Duration::from_secs(2);

/// Until when a Lease read back says `identity` holds it: its last renewal plus its
/// duration, less the grace, so that this replica stops reconciling before any other may
/// take the Lease over. `None` when someone else holds it.
pub fn held_until_of(lease: &Lease, identity: &str) -> Option<Timestamp> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed = spec.renew_time.as_ref()?.0;
    let duration = spec
        .lease_duration_seconds
        .map_or(LEASE_DURATION_SECONDS as i64, i64::from);
    renewed
        .checked_add(SignedDuration::from_secs(
            duration - LEASE_GRACE_SECONDS as i64,
        ))
        .ok()
}

/// Where and as whom to campaign.
#[derive(Clone)]
pub struct Election {
    pub client: Client,
    pub namespace: String,
    pub lease: String,
    pub identity: String,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("namespace", &self.namespace)
            .field("lease", &self.lease)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

async fn manager(election: &Election) -> LeaseManager {
    let mut backoff = Duration::from_secs(1);
    loop {
        let built = LeaseManagerBuilder::new(election.client.clone(), &election.lease)
            .with_namespace(&election.namespace)
            .with_identity(&election.identity)
            .with_field_manager(format!("netpol-guard-{}", election.identity))
            .with_duration(LEASE_DURATION_SECONDS)
            .with_grace(LEASE_GRACE_SECONDS)
            .build()
            .await;
        match built {
            Ok(manager) => return manager,
            Err(e) => {
                tracing::warn!(lease = %election.lease, error = %e, "cannot use the leader Lease yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Campaigns for the Lease until `stop`; runs the controller while holding it.
pub async fn run(
    election: Election,
    state: SharedState,
    companions: std::sync::Arc<Companions>,
    stop: watch::Receiver<bool>,
) {
    let manager = tokio::select! {
        m = manager(&election) => m,
        () = super::stopped(stop.clone()) => return,
    };
    let (mut leading, campaign) = manager.watch().await;
    let leases: Api<Lease> = Api::namespaced(election.client.clone(), &election.namespace);
    let mut running: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)> = None;
    let mut stop_rx = stop.clone();
    // Until when the last look at the Lease says we hold it (renewal + duration - grace).
    let mut held_until: Option<Timestamp> = None;
    let mut confirm = tokio::time::interval(CONFIRM_EVERY);
    confirm.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let elected = *leading.borrow_and_update();
        if elected {
            // the campaign says so; the Lease itself must agree, and stay fresh
            match leases.get_opt(&election.lease).await {
                Ok(Some(lease)) => held_until = held_until_of(&lease, &election.identity),
                Ok(None) => held_until = None,
                // unreachable: what was confirmed last still runs out on its own
                Err(e) => tracing::debug!(error = %e, "cannot read the leader Lease"),
            }
        } else {
            held_until = None;
        }
        let holds = elected && held_until.is_some_and(|t| Timestamp::now() < t);
        match (holds, running.is_some()) {
            (true, false) => {
                tracing::info!(identity = %election.identity, lease = %election.lease, "acquired the leader Lease: reconciling companions");
                state.metrics.leader.set(1);
                let (tx, rx) = watch::channel(false);
                let task = tokio::spawn(controller::run(companions.clone(), rx));
                running = Some((tx, task));
            }
            (false, true) => {
                tracing::warn!(identity = %election.identity, elected, "not holding a fresh leader Lease: companions controller stopped");
                stop_controller(&mut running, &state).await;
            }
            _ => {}
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { break },
            _ = confirm.tick() => {}
            _ = stop_rx.wait_for(|s| *s) => break,
        }
    }
    stop_controller(&mut running, &state).await;
    // dropping the receiver makes the campaign release the Lease and finish
    drop(leading);
    match tokio::time::timeout(Duration::from_secs(5), campaign).await {
        Ok(Ok(Ok(_))) => tracing::info!("leader Lease released"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the leader Lease failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the Lease campaign task failed"),
        Err(_) => tracing::warn!("releasing the leader Lease timed out"),
    }
}

async fn stop_controller(
    running: &mut Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    state: &SharedState,
) {
    if let Some((tx, task)) = running.take() {
        let _ = tx.send(true);
        let _ = task.await;
    }
    state.metrics.leader.set(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed: &str, duration: Option<i32>) -> Lease {
        Lease {
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: holder.map(String::from),
                renew_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                    renewed.parse().expect("timestamp"),
                )),
                lease_duration_seconds: duration,
                ..Default::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn a_held_lease_counts_until_renewal_plus_duration_less_grace() {
        let at = |s: &str| s.parse::<Timestamp>().expect("timestamp");
        let mine = lease(Some("a"), "2026-11-21T10:00:00Z", Some(15));
        assert_eq!(held_until_of(&mine, "a"), Some(at("2026-11-21T10:00:10Z")));
        // someone else's, or nobody's
        assert_eq!(held_until_of(&mine, "b"), None);
        assert_eq!(
            held_until_of(&lease(None, "2026-11-21T10:00:00Z", Some(15)), "a"),
            None
        );
        // the duration the holder wrote wins over ours
        let long = lease(Some("a"), "2026-11-21T10:00:00Z", Some(60));
        assert_eq!(held_until_of(&long, "a"), Some(at("2026-11-21T10:00:55Z")));
        assert_eq!(held_until_of(&Lease::default(), "a"), None);
    }
}
