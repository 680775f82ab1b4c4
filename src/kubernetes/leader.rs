//! Leader election over a `coordination.k8s.io/v1` Lease in the guard's namespace: every
//! replica serves admission, only the holder of the Lease runs the companions controller.
//! Losing the Lease stops the controller; shutting down releases it so another replica takes
//! over at once instead of after the lease duration.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

use super::controller::{self, Companions};
use crate::server::AppState;

/// How long a held Lease stays valid without renewal.
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// The holder renews this long before the Lease would expire.
pub const LEASE_GRACE_SECONDS: u64 = 5;

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
    state: AppState,
    companions: std::sync::Arc<Companions>,
    stop: watch::Receiver<bool>,
) {
    let manager = tokio::select! {
        m = manager(&election) => m,
        () = super::stopped(stop.clone()) => return,
    };
    let (mut leading, campaign) = manager.watch().await;
    let mut running: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)> = None;
    let mut stop_rx = stop.clone();
    loop {
        let leader = *leading.borrow_and_update();
        match (leader, running.is_some()) {
            (true, false) => {
                tracing::info!(identity = %election.identity, lease = %election.lease, "acquired the leader Lease: reconciling companions");
                state.metrics.leader.set(1);
                let (tx, rx) = watch::channel(false);
                let task = tokio::spawn(controller::run(companions.clone(), rx));
                running = Some((tx, task));
            }
            (false, true) => {
                tracing::warn!(identity = %election.identity, "lost the leader Lease: companions controller stopped");
                stop_controller(&mut running, &state).await;
            }
            _ => {}
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { break },
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
    state: &AppState,
) {
    if let Some((tx, task)) = running.take() {
        let _ = tx.send(true);
        let _ = task.await;
    }
    state.metrics.leader.set(0);
}
