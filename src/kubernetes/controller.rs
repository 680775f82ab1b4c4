//! The companions controller: a kube-runtime `Controller` over Namespaces that owns the
//! companion NetworkPolicies. It applies exactly what [`crate::guard::companions::desired`] returns,
//! with server-side apply as field manager `netpol-guard`, restores deleted or edited
//! companions, and removes them from namespaces that become exempt. Protected namespaces and
//! the guard's own namespace are never touched.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use crate::guard::companions::{self, Exemption, MANAGED_BY_LABEL, MANAGER};
use crate::runtime::metrics::Reconciled;
use crate::runtime::state::SharedState;

/// Every namespace is reconciled again this often, whatever the watches said.
pub const RESYNC: Duration = Duration::from_secs(300);
/// A failed reconcile is retried after this long.
pub const RETRY: Duration = Duration::from_secs(15);
/// Namespaces reconciled at once: at start every namespace is due, and an unbounded burst of
/// list and apply calls would land on the API server together.
pub const CONCURRENCY: u16 = 8;

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("namespace {0} has no uid (not persisted)")]
    NoUid(String),
}

/// The controller's context.
pub struct Companions {
    client: Client,
    state: SharedState,
    /// Companions this process has seen in place: one missing later was deleted (drift),
    /// not yet created.
    seen: Mutex<HashSet<(String, String)>>,
    /// How long after a failed reconcile it is retried ([`RETRY`] in production).
    retry: Duration,
    /// Whether the writes are made, only logged, or also recorded.
    writes: Writes,
}

/// What the controller does with a write it decides on.
enum Writes {
    Make,
    /// A dry run (`--controller dry-run`): logged, not made.
    Log,
    /// `companions plan`: logged and recorded, in the order they would be made (each
    /// namespace is reconciled once, so nothing repeats).
    Record(Mutex<Vec<Planned>>),
}

/// A write the controller would make (a dry run's record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub namespace: String,
    pub policy: String,
    pub action: PlannedAction,
}

/// What a planned write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannedAction {
    /// Server-side apply of a missing companion.
    Create,
    /// Server-side apply over a companion deleted, unlabelled or edited.
    Restore,
    /// Delete a companion that is not wanted (exempt namespace, disabled companion).
    Remove,
}

impl PlannedAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Restore => "restore",
            Self::Remove => "remove",
        }
    }
}

impl std::fmt::Debug for Companions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Companions").finish_non_exhaustive()
    }
}

impl Companions {
    pub fn new(client: Client, state: SharedState) -> Arc<Self> {
        Self::retrying_after(client, state, RETRY)
    }

    /// A controller that retries a failed reconcile after `retry` instead of [`RETRY`].
    pub fn retrying_after(client: Client, state: SharedState, retry: Duration) -> Arc<Self> {
        Arc::new(Self {
            client,
            state,
            seen: Mutex::new(HashSet::new()),
            retry,
            writes: Writes::Make,
        })
    }

    /// A dry-run controller: it reads the cluster as the real one does and logs each write
    /// it would make, making none.
    pub fn dry_run(client: Client, state: SharedState) -> Arc<Self> {
        Self::not_writing(client, state, Writes::Log)
    }

    fn not_writing(client: Client, state: SharedState, writes: Writes) -> Arc<Self> {
        Arc::new(Self {
            client,
            state,
            seen: Mutex::new(HashSet::new()),
            retry: RETRY,
            writes,
        })
    }

    /// In a dry run, logs (and records) the write and answers `true`: do not make it.
    fn planned(&self, namespace: &str, policy: &str, action: PlannedAction) -> bool {
        if let Writes::Make = self.writes {
            return false;
        }
        tracing::info!(
            namespace,
            policy,
            action = action.as_str(),
            "dry run: would write this companion"
        );
        if let Writes::Record(plan) = &self.writes
            && let Ok(mut plan) = plan.lock()
        {
            plan.push(Planned {
                namespace: namespace.to_string(),
                policy: policy.to_string(),
                action,
            });
        }
        true
    }

    fn seen(&self, namespace: &str, name: &str) -> bool {
        self.seen
            .lock()
            .map(|s| s.contains(&(namespace.to_string(), name.to_string())))
            .unwrap_or(false)
    }

    fn remember(&self, namespace: &str, name: &str, present: bool) {
        if let Ok(mut seen) = self.seen.lock() {
            let key = (namespace.to_string(), name.to_string());
            if present {
                seen.insert(key);
            } else {
                seen.remove(&key);
            }
        }
    }
}

/// Brings one namespace's companions to what the configuration wants.
pub async fn reconcile(namespace: Arc<Namespace>, ctx: Arc<Companions>) -> Result<Action, Error> {
    let outcome = reconcile_namespace(&namespace, &ctx).await?;
    ctx.state.metrics.controller.reconciled(outcome);
    Ok(match outcome {
        // nothing to keep up in these until the namespace itself changes
        Reconciled::Skipped => Action::await_change(),
        _ => Action::requeue(RESYNC),
    })
}

async fn reconcile_namespace(ns: &Namespace, ctx: &Companions) -> Result<Reconciled, Error> {
    let name = ns.name_any();
    if ns.metadata.deletion_timestamp.is_some() {
        // the namespace controller deletes everything in it; nothing to keep
        return Ok(Reconciled::Skipped);
    }
    let engine = ctx.state.snapshot();
    let config = &engine.config;
    let exemption = companions::exemption(
        config,
        &engine.identity.namespace,
        &name,
        ns.metadata.labels.as_ref(),
    );
    if matches!(exemption, Some(Exemption::Protected | Exemption::Guard)) {
        return Ok(Reconciled::Skipped);
    }
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &name);
    // the guard's policies in this namespace, by name
    let listed = api
        .list(&ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}")))
        .await?;
    let mut current: BTreeMap<String, NetworkPolicy> = listed
        .items
        .into_iter()
        .map(|p| (p.name_any(), p))
        .collect();
    let mut outcome = Reconciled::Unchanged;
    if exemption.is_none() {
        let uid = ns
            .metadata
            .uid
            .as_deref()
            .ok_or_else(|| Error::NoUid(name.clone()))?;
        for wanted in companions::desired(config, &name, uid) {
            let policy = wanted.name_any();
            // missing from the list: never made, deleted, or its label removed
            let existing = current.remove(&policy);
            let drift = match &existing {
                None => ctx.seen(&name, &policy).then_some("deleted or unlabelled"),
                Some(existing) => companions::drifted(&wanted, existing).then_some("edited"),
            };
            let action = if existing.is_none() && drift.is_none() {
                PlannedAction::Create
            } else {
                PlannedAction::Restore
            };
            let write = existing.is_none() || drift.is_some();
            if write && !ctx.planned(&name, &policy, action) {
                let params = PatchParams::apply(MANAGER).force();
                match api.patch(&policy, &params, &Patch::Apply(&wanted)).await {
                    Ok(_) => {}
                    // deleted while this reconcile ran: nothing to keep, nothing to retry
                    Err(kube::Error::Api(e)) if is_terminating(&e) => {
                        tracing::debug!(namespace = %name, "namespace is being deleted");
                        return Ok(Reconciled::Skipped);
                    }
                    Err(e) => return Err(e.into()),
                }
                outcome = Reconciled::Applied;
                if let Some(how) = drift {
                    ctx.state.metrics.controller.drift_corrected();
                    tracing::info!(namespace = %name, policy = %policy, drift = how, "companion restored");
                } else {
                    tracing::info!(namespace = %name, policy = %policy, "companion created");
                }
            }
            ctx.remember(&name, &policy, true);
        }
    }
    // what is left is not wanted here (exempt namespace, disabled or renamed companion);
    // a default deny goes first, so that a removal cut short never leaves it without the
    // DNS allowance
    let mut unwanted: Vec<(String, NetworkPolicy)> = current.into_iter().collect();
    unwanted.sort_by_key(|(_, p)| !companions::is_default_deny(p));
    for (policy, existing) in unwanted {
        if ctx.planned(&name, &policy, PlannedAction::Remove) {
            continue;
        }
        if remove(&api, &existing).await? {
            outcome = Reconciled::Removed;
            tracing::info!(namespace = %name, policy = %policy, "companion removed");
        }
        ctx.remember(&name, &policy, false);
    }
    Ok(outcome)
}

/// What the controller would write in every namespace of the cluster now, writing
/// nothing: each namespace reconciled once in a dry run (`netpol-guard companions plan`).
pub async fn plan(client: Client, state: SharedState) -> Result<Vec<Planned>, Error> {
    let ctx = Companions::not_writing(client.clone(), state, Writes::Record(Mutex::default()));
    let namespaces: Api<Namespace> = Api::all(client);
    let mut listed = namespaces.list(&ListParams::default()).await?.items;
    listed.sort_by_key(ResourceExt::name_any);
    for ns in &listed {
        reconcile_namespace(ns, &ctx).await?;
    }
    Ok(match &ctx.writes {
        Writes::Record(plan) => plan.lock().map(|p| p.clone()).unwrap_or_default(),
        _ => Vec::new(),
    })
}

/// Whether the API server refused a write because the namespace is being deleted.
fn is_terminating(e: &kube::core::Status) -> bool {
    e.code == 403 && e.message.contains("because it is being terminated")
}

/// Deletes a companion, unless it changed since it was listed; `true` when it did.
async fn remove(api: &Api<NetworkPolicy>, existing: &NetworkPolicy) -> Result<bool, Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: existing.metadata.uid.clone(),
            resource_version: existing.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    match api.delete(&existing.name_any(), &params).await {
        Ok(_) => Ok(true),
        // already gone, or changed meanwhile: the next reconcile looks again
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A failed reconcile is logged, counted and retried.
pub fn error_policy(namespace: Arc<Namespace>, error: &Error, ctx: Arc<Companions>) -> Action {
    ctx.state.metrics.controller.reconciled(Reconciled::Failed);
    tracing::warn!(namespace = %namespace.name_any(), %error, "companion reconcile failed; retrying");
    Action::requeue(ctx.retry)
}

/// Runs the controller until `stop` turns true. Every namespace is reconciled at start and
/// again whenever the rule configuration changes.
pub async fn run(ctx: Arc<Companions>, stop: watch::Receiver<bool>) {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let policies: Api<NetworkPolicy> = Api::all(ctx.client.clone());
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    let config_changes = futures::stream::unfold(ctx.state.config_changes(), |mut rx| async {
        rx.changed().await.ok().map(|()| ((), rx))
    });
    Controller::new(namespaces, watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(CONCURRENCY))
        .owns(policies, owned)
        .reconcile_all_on(config_changes)
        .graceful_shutdown_on(super::stopped(stop))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}
