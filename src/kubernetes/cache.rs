//! The cluster cache: reflectors over every NetworkPolicy and Namespace, published to the
//! webhook as an [`Inventory`] snapshot. Admission reads the snapshot through the shared
//! engine (a clone of an `Arc`), so a slow or absent API server never delays a review;
//! until both lists have synced the engine keeps the empty inventory and judges each object
//! alone.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{Notify, watch};

use crate::netpol::cluster::Inventory;
use crate::state::SharedState;

/// Changes arriving within this window are published together.
const PUBLISH_DEBOUNCE: Duration = Duration::from_millis(200);

/// Builds the inventory the engine reads from the two stores.
pub fn inventory(policies: &[Arc<NetworkPolicy>], namespaces: &[Arc<Namespace>]) -> Inventory {
    let mut inventory = Inventory::new();
    for ns in namespaces {
        inventory.insert_namespace(&ns.name_any(), ns.labels().clone());
    }
    for policy in policies {
        if let Some(namespace) = policy.metadata.namespace.as_deref() {
            inventory.insert_policy(namespace, policy.clone());
        }
    }
    inventory.mark_namespaces_complete();
    inventory
}

/// Runs the reflectors and publishes snapshots until `stop`.
pub async fn run(client: Client, state: SharedState, stop: watch::Receiver<bool>) {
    let changed = Arc::new(Notify::new());
    let (policies, policy_writer) = reflector::store::<NetworkPolicy>();
    let (namespaces, namespace_writer) = reflector::store::<Namespace>();

    // managedFields and annotations (last-applied configurations) are the bulk of these
    // objects and the engine reads neither.
    let policy_events = watcher(
        Api::<NetworkPolicy>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|p| {
        p.managed_fields_mut().clear();
        p.annotations_mut()
            .retain(|k, _| k.starts_with("netpol-guard.io/"));
    })
    .reflect(policy_writer);
    let namespace_events = watcher(Api::<Namespace>::all(client), watcher::Config::default())
        .default_backoff()
        .modify(|n| {
            n.managed_fields_mut().clear();
            n.annotations_mut().clear();
        })
        .reflect(namespace_writer);

    let drive = |events: futures::stream::BoxStream<'static, Result<(), watcher::Error>>,
                 what: &'static str| {
        let changed = changed.clone();
        async move {
            let mut events = events;
            while let Some(event) = events.next().await {
                match event {
                    Ok(()) => changed.notify_one(),
                    Err(e) => {
                        tracing::warn!(resource = what, error = %e, "cluster cache watch failed; retrying")
                    }
                }
            }
        }
    };
    let policy_task = tokio::spawn(drive(
        policy_events.map(|e| e.map(drop)).boxed(),
        "networkpolicies",
    ));
    let namespace_task = tokio::spawn(drive(
        namespace_events.map(|e| e.map(drop)).boxed(),
        "namespaces",
    ));

    tokio::select! {
        () = publish(&state, &policies, &namespaces, &changed) => {}
        () = super::stopped(stop) => {}
    }
    policy_task.abort();
    namespace_task.abort();
    state.metrics.cache_synced.set(0);
}

async fn publish(
    state: &SharedState,
    policies: &Store<NetworkPolicy>,
    namespaces: &Store<Namespace>,
    changed: &Notify,
) {
    let started = std::time::Instant::now();
    if policies.wait_until_ready().await.is_err() || namespaces.wait_until_ready().await.is_err() {
        return;
    }
    tracing::info!(
        policies = policies.len(),
        namespaces = namespaces.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "cluster cache synced; admission now uses the cluster's policies and namespaces"
    );
    loop {
        state.set_inventory(inventory(&policies.state(), &namespaces.state()));
        state.metrics.cache_synced.set(1);
        changed.notified().await;
        tokio::time::sleep(PUBLISH_DEBOUNCE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::cluster::NAMESPACE_NAME_LABEL;

    #[test]
    fn inventory_groups_policies_by_namespace_and_knows_every_namespace() {
        let ns = |name: &str, labels: &[(&str, &str)]| {
            let mut n = Namespace::default();
            n.metadata.name = Some(name.into());
            n.metadata.labels = Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            Arc::new(n)
        };
        let policy = |ns: &str, name: &str| {
            let mut p = NetworkPolicy::default();
            p.metadata.name = Some(name.into());
            p.metadata.namespace = Some(ns.into());
            Arc::new(p)
        };
        let inv = inventory(
            &[policy("shop", "a"), policy("shop", "b"), policy("dev", "c")],
            &[ns("shop", &[("team", "x")]), ns("dev", &[])],
        );
        assert!(inv.knows_all_namespaces());
        assert_eq!(inv.policies_in("shop").len(), 2);
        assert_eq!(inv.policies_in("dev").len(), 1);
        assert!(inv.policies_in("other").is_empty());
        let shop = inv.namespace_labels("shop").expect("shop known");
        assert_eq!(shop.get("team").map(String::as_str), Some("x"));
        assert_eq!(
            shop.get(NAMESPACE_NAME_LABEL).map(String::as_str),
            Some("shop")
        );
    }
}
