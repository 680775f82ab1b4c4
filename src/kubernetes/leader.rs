//! Leader election over a `coordination.k8s.io/v1` Lease in the guard's namespace: every
//! replica serves admission, only the holder of the Lease runs the companions controller.
//! Losing the Lease stops the controller; shutting down releases it so another replica takes
//! over at once instead of after the lease duration.
//!
//! The campaign (kube-lease-manager) says when this replica is elected; the controller runs
//! only while, in addition, the Lease read back names this replica and its last renewal is
//! fresh. The holder renews `renew_ahead` seconds before the Lease would expire and counts
//! it as held until `fence_margin` seconds before that, so a healthy holder's renewal is
//! read back long before its fence (no stop at every renewal), while a replica that cannot
//! renew (the API unreachable for the Lease, or the Lease taken) stops reconciling
//! `fence_margin` seconds before the Lease could expire and pass to another replica, even if
//! the campaign has not noticed yet. The margin is the clock skew tolerated between
//! replicas.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

use super::controller::{self, Companions};
use crate::runtime::state::SharedState;

/// The Lease's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a held Lease stays valid without renewal (seconds).
    pub duration: u64,
    /// The holder renews this long before the Lease would expire (seconds).
    pub renew_ahead: u64,
    /// The holder stops reconciling this long before the Lease would expire (seconds); less
    /// than `renew_ahead`, with room for the renewal to be read back.
    pub fence_margin: u64,
    /// How often the holder reads the Lease back to confirm it still holds it.
    pub confirm_every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        // renewals every 7 s, read back within 2 s, fenced at 12 s, taken over after 15 s
        Self {
            duration: 15,
            renew_ahead: 8,
            fence_margin: 3,
            confirm_every: Duration::from_secs(2),
        }
    }
}

/// Until when a Lease read back says `identity` holds it: its last renewal plus its
/// duration, less the fence margin, so that this replica stops reconciling before any other
/// may take the Lease over. `None` when someone else holds it.
pub fn held_until_of(lease: &Lease, identity: &str, timing: &Timing) -> Option<Timestamp> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed = spec.renew_time.as_ref()?.0;
    let duration = spec
        .lease_duration_seconds
        .map_or(timing.duration as i64, i64::from);
    renewed
        .checked_add(SignedDuration::from_secs(
            duration - timing.fence_margin as i64,
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
    pub timing: Timing,
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
            .with_duration(election.timing.duration)
            .with_grace(election.timing.renew_ahead)
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

/// Campaigns for the Lease until `stop`; runs the controller while holding it. When the
/// campaign itself ends (the Lease object deleted, say), a new one starts, re-creating it.
pub async fn run(
    election: Election,
    state: SharedState,
    companions: std::sync::Arc<Companions>,
    stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let manager = tokio::select! {
            m = manager(&election) => m,
            () = super::stopped(stop.clone()) => return,
        };
        if campaign(&election, &state, &companions, stop.clone(), manager).await {
            return;
        }
        tracing::warn!(identity = %election.identity, lease = %election.lease, "the Lease campaign ended; starting a new one");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = super::stopped(stop.clone()) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// One campaign: runs the controller while the Lease is held and fresh. `true` when it
/// ended because of `stop`, `false` when the campaign ended on its own.
async fn campaign(
    election: &Election,
    state: &SharedState,
    companions: &std::sync::Arc<Companions>,
    stop: watch::Receiver<bool>,
    manager: LeaseManager,
) -> bool {
    let (mut leading, campaign) = manager.watch().await;
    let leases: Api<Lease> = Api::namespaced(election.client.clone(), &election.namespace);
    let mut running: Running = None;
    let mut stop_rx = stop;
    // Until when the last look at the Lease says we hold it (renewal + duration - grace).
    let mut held_until: Option<Timestamp> = None;
    let timing = election.timing;
    let mut confirm = tokio::time::interval(timing.confirm_every);
    confirm.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // the campaign never re-creates a deleted Lease: a replica that sees it gone starts a
    // new campaign (the leader at its next confirmation, the others every Lease duration)
    let mut looked = tokio::time::Instant::now();
    let stopped = loop {
        let elected = *leading.borrow_and_update();
        let look = if elected {
            Some(leases.get_opt(&election.lease).await)
        } else if looked.elapsed() >= Duration::from_secs(timing.duration) {
            looked = tokio::time::Instant::now();
            Some(leases.get_opt(&election.lease).await)
        } else {
            None
        };
        if let Some(Ok(None)) = look {
            tracing::warn!(identity = %election.identity, lease = %election.lease, "the leader Lease was deleted");
            break false;
        }
        held_until = if elected {
            confirmed(look, held_until, election)
        } else {
            None
        };
        let holds = elected && held_until.is_some_and(|t| Timestamp::now() < t);
        follow(holds, &mut running, election, state, companions).await;
        // wake at the fence itself too, not only at the next confirmation
        let fence = held_until
            .filter(|_| running.is_some())
            .and_then(|t| Duration::try_from(t.duration_since(Timestamp::now())).ok())
            .unwrap_or(timing.confirm_every);
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { break false },
            _ = confirm.tick() => {}
            () = tokio::time::sleep(fence) => {}
            _ = stop_rx.wait_for(|s| *s) => break true,
        }
    };
    stop_controller(&mut running, state, &timing).await;
    // dropping the receiver makes the campaign release the Lease and finish
    drop(leading);
    match tokio::time::timeout(Duration::from_secs(5), campaign).await {
        Ok(Ok(Ok(_))) if stopped => tracing::info!("leader Lease released"),
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the Lease campaign failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the Lease campaign task failed"),
        Err(_) => tracing::warn!("releasing the leader Lease timed out"),
    }
    stopped
}

/// Until when an elected replica holds the Lease, after a look at it: what the Lease says,
/// or, when it could not be read, what was confirmed last (which runs out on its own).
fn confirmed(
    look: Option<Result<Option<Lease>, kube::Error>>,
    last: Option<Timestamp>,
    election: &Election,
) -> Option<Timestamp> {
    match look {
        Some(Ok(Some(lease))) => held_until_of(&lease, &election.identity, &election.timing),
        Some(Err(e)) => {
            tracing::debug!(error = %e, "cannot read the leader Lease");
            last
        }
        _ => None,
    }
}

/// The controller task of a campaign, if it runs.
type Running = Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>;

/// Starts the controller when this replica came to hold a fresh Lease, stops it when it
/// no longer does.
async fn follow(
    holds: bool,
    running: &mut Running,
    election: &Election,
    state: &SharedState,
    companions: &std::sync::Arc<Companions>,
) {
    match (holds, running.is_some()) {
        (true, false) => {
            tracing::info!(identity = %election.identity, lease = %election.lease, "acquired the leader Lease: reconciling companions");
            state.metrics.controller.lead(true);
            state.set_leading(true);
            let (tx, rx) = watch::channel(false);
            let task = tokio::spawn(controller::run(companions.clone(), rx));
            *running = Some((tx, task));
        }
        (false, true) => {
            tracing::warn!(identity = %election.identity, "not holding a fresh leader Lease: companions controller stopped");
            stop_controller(running, state, &election.timing).await;
        }
        _ => {}
    }
}

/// Stops the controller: reconciles in flight get half the fence margin to finish.
async fn stop_controller(running: &mut Running, state: &SharedState, timing: &Timing) {
    state.set_leading(false);
    if let Some((tx, mut task)) = running.take() {
        let _ = tx.send(true);
        // reconciles in flight get a moment to finish; past it they are cut off, so that
        // no write of a fenced leader trails into another's term (a companion set cut in
        // half is safe: the DNS allowance is always written before the default deny)
        let grace = Duration::from_secs(timing.fence_margin) / 2;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            tracing::warn!("reconciles still running at the fence: aborted");
            task.abort();
            let _ = task.await;
        }
        state.metrics.controller.lead(false);
    }
    state.metrics.controller.not_leading();
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
    fn a_held_lease_counts_until_renewal_plus_duration_less_the_fence_margin() {
        let at = |s: &str| s.parse::<Timestamp>().expect("timestamp");
        let t = Timing::default();
        let mine = lease(Some("a"), "2026-11-21T10:00:00Z", Some(15));
        assert_eq!(
            held_until_of(&mine, "a", &t),
            Some(at("2026-11-21T10:00:12Z"))
        );
        // someone else's, or nobody's
        assert_eq!(held_until_of(&mine, "b", &t), None);
        assert_eq!(
            held_until_of(&lease(None, "2026-11-21T10:00:00Z", Some(15)), "a", &t),
            None
        );
        // the duration the holder wrote wins over ours
        let long = lease(Some("a"), "2026-11-21T10:00:00Z", Some(60));
        assert_eq!(
            held_until_of(&long, "a", &t),
            Some(at("2026-11-21T10:00:57Z"))
        );
        assert_eq!(held_until_of(&Lease::default(), "a", &t), None);
    }

    #[test]
    fn the_default_timing_renews_well_before_the_fence() {
        let t = Timing::default();
        // a renewal is due at duration - renew_ahead and read back within confirm_every:
        // both must land before the fence at duration - fence_margin, or a healthy leader
        // stops at every renewal
        let renewal_seen = t.duration - t.renew_ahead + t.confirm_every.as_secs();
        assert!(renewal_seen < t.duration - t.fence_margin, "{t:?}");
        assert!(t.fence_margin > 0 && t.fence_margin < t.renew_ahead);
    }
}
