//! The companions controller: a kube-runtime `Controller` over Namespaces that keeps the
//! companion NetworkPolicies. It applies exactly what [`crate::guard::companions::desired`]
//! returns, with server-side apply as field manager `netpol-guard`, restores deleted or
//! edited companions, and removes them from namespaces that become exempt. Protected
//! namespaces and the guard's own namespace are never touched. The companions are read from
//! the cluster cache's inventory, which also triggers a namespace when its companions change:
//! the controller has no watch of NetworkPolicies and lists nothing per reconcile.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use crate::guard::companions::{self, Exemption, MANAGED_BY_LABEL, MANAGER};
use crate::netpol::cluster::Inventory;
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
    #[error("the cluster cache has not synced yet")]
    NotSynced,
}

/// The controller's context.
pub struct Companions {
    client: Client,
    state: SharedState,
    /// Each companion as this process last wrote it or saw it in place (uid and
    /// resourceVersion): one missing later was deleted (drift), not yet created, and an
    /// apply answered with the same identity found the cache behind, not drift.
    seen: Mutex<HashMap<(String, String), Identity>>,
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
            seen: Mutex::new(HashMap::new()),
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
            seen: Mutex::new(HashMap::new()),
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

    fn known(&self, namespace: &str, name: &str) -> Option<Identity> {
        let key = (namespace.to_string(), name.to_string());
        self.seen.lock().ok().and_then(|s| s.get(&key).cloned())
    }

    /// Records a companion's identity, or forgets it (`None`: removed).
    fn remember(&self, namespace: &str, name: &str, identity: Option<Identity>) {
        if let Ok(mut seen) = self.seen.lock() {
            let key = (namespace.to_string(), name.to_string());
            match identity {
                Some(identity) => seen.insert(key, identity),
                None => seen.remove(&key),
            };
        }
    }
}

/// A stored object's uid and resourceVersion: which object, and which version of it.
type Identity = (String, String);

/// Brings one namespace's companions to what the configuration wants, as the shared
/// inventory shows them.
pub async fn reconcile(namespace: Arc<Namespace>, ctx: Arc<Companions>) -> Result<Action, Error> {
    let inventory = ctx.state.snapshot().inventory;
    if !inventory.knows_all_namespaces() {
        return Err(Error::NotSynced);
    }
    let outcome = reconcile_namespace(&namespace, &ctx, &inventory).await?;
    ctx.state.metrics.controller.reconciled(outcome);
    Ok(match outcome {
        // nothing to keep up in these until the namespace itself changes
        Reconciled::Skipped => Action::await_change(),
        _ => Action::requeue(RESYNC),
    })
}

/// One namespace against a view of the cluster: the companions it wants applied where
/// missing or drifted, the ones it does not want removed. No read of the API: the view is
/// the cluster cache's (or, for a plan, one list of the cluster).
async fn reconcile_namespace(
    ns: &Namespace,
    ctx: &Companions,
    inventory: &Inventory,
) -> Result<Reconciled, Error> {
    let name = ns.name_any();
    if ns.metadata.deletion_timestamp.is_some() {
        // the namespace controller deletes everything in it; nothing to keep
        return Ok(Reconciled::Skipped);
    }
    let engine = ctx.state.snapshot();
    let exemption = companions::exemption(
        &engine.config,
        &engine.identity.namespace,
        &name,
        ns.metadata.labels.as_ref(),
    );
    if matches!(exemption, Some(Exemption::Protected | Exemption::Guard)) {
        return Ok(Reconciled::Skipped);
    }
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &name);
    // the guard's policies in this namespace, by name
    let mut unwanted: BTreeMap<&str, &NetworkPolicy> = companions::managed_in(inventory, &name)
        .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), p))
        .collect();
    let mut outcome = Reconciled::Unchanged;
    if exemption.is_none() {
        let uid = ns
            .metadata
            .uid
            .as_deref()
            .ok_or_else(|| Error::NoUid(name.clone()))?;
        for wanted in companions::desired(&engine.config, &name, uid) {
            let policy = wanted.name_any();
            unwanted.remove(policy.as_str());
            // by name, labelled or not: a companion that lost its label has drifted
            let existing = inventory
                .policies_in(&name)
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(policy.as_str()));
            match keep(ctx, &api, &name, &wanted, existing.map(AsRef::as_ref)).await? {
                Kept::InPlace => {}
                Kept::Written => outcome = Reconciled::Applied,
                Kept::Terminating => return Ok(Reconciled::Skipped),
            }
        }
    }
    if remove_unwanted(ctx, &api, unwanted.into_values().collect()).await? {
        outcome = Reconciled::Removed;
    }
    Ok(outcome)
}

/// What became of one wanted companion.
enum Kept {
    /// Already as wanted (or a dry run's write, only logged).
    InPlace,
    /// Applied, and the API server changed something.
    Written,
    /// The namespace is being deleted: nothing to keep, nothing to retry.
    Terminating,
}

/// Applies `wanted` unless the view shows it in place. Whether the write corrected drift
/// is decided from the API server's answer, not from the view: an apply that leaves the
/// object as this process last wrote it (same uid and resourceVersion) found the cache
/// behind, not a deleted or edited companion.
async fn keep(
    ctx: &Companions,
    api: &Api<NetworkPolicy>,
    namespace: &str,
    wanted: &NetworkPolicy,
    existing: Option<&NetworkPolicy>,
) -> Result<Kept, Error> {
    let policy = wanted.name_any();
    let known = ctx.known(namespace, &policy);
    let drift = match existing {
        None => known.is_some().then_some("deleted"),
        Some(e) if !companions::is_managed(e.metadata.labels.as_ref()) => Some("unlabelled"),
        Some(e) => companions::drifted(wanted, e).then_some("edited"),
    };
    let action = match (existing, drift) {
        (Some(e), None) => {
            ctx.remember(namespace, &policy, Some(identity(e)));
            return Ok(Kept::InPlace);
        }
        (None, None) => PlannedAction::Create,
        (_, Some(_)) => PlannedAction::Restore,
    };
    if ctx.planned(namespace, &policy, action) {
        return Ok(Kept::InPlace);
    }
    let params = PatchParams::apply(MANAGER).force();
    let applied = match api.patch(&policy, &params, &Patch::Apply(wanted)).await {
        Ok(applied) => applied,
        Err(kube::Error::Api(e)) if is_terminating(&e) => {
            tracing::debug!(namespace, "namespace is being deleted");
            return Ok(Kept::Terminating);
        }
        Err(e) => return Err(e.into()),
    };
    let now = identity(&applied);
    ctx.remember(namespace, &policy, Some(now.clone()));
    match (known, drift) {
        (Some(before), _) if before == now => {
            tracing::debug!(namespace, %policy, "companion already in place (the cache was behind)");
            Ok(Kept::InPlace)
        }
        (_, Some(how)) => {
            ctx.state.metrics.controller.drift_corrected();
            tracing::info!(namespace, %policy, drift = how, "companion restored");
            Ok(Kept::Written)
        }
        (_, None) => {
            tracing::info!(namespace, %policy, "companion created");
            Ok(Kept::Written)
        }
    }
}

/// Removes the guard's policies that are not wanted here (exempt namespace, disabled or
/// renamed companion); `true` when one was. A default deny goes first, so that a removal
/// cut short never leaves it without the DNS allowance.
async fn remove_unwanted(
    ctx: &Companions,
    api: &Api<NetworkPolicy>,
    mut unwanted: Vec<&NetworkPolicy>,
) -> Result<bool, Error> {
    unwanted.sort_by_key(|p| !companions::is_default_deny(p));
    let mut removed = false;
    for existing in unwanted {
        let namespace = existing.namespace().unwrap_or_default();
        let policy = existing.name_any();
        if ctx.planned(&namespace, &policy, PlannedAction::Remove) {
            continue;
        }
        if remove(api, existing).await? {
            removed = true;
            tracing::info!(%namespace, %policy, "companion removed");
        }
        ctx.remember(&namespace, &policy, None);
    }
    Ok(removed)
}

/// A stored object's uid and resourceVersion.
fn identity(p: &NetworkPolicy) -> Identity {
    (
        p.metadata.uid.clone().unwrap_or_default(),
        p.metadata.resource_version.clone().unwrap_or_default(),
    )
}

/// What the controller would write in every namespace of the cluster now, writing
/// nothing: each namespace reconciled once in a dry run (`netpol-guard companions plan`)
/// against one list of the namespaces and of the guard's policies.
pub async fn plan(client: Client, state: SharedState) -> Result<Vec<Planned>, Error> {
    let ctx = Companions::not_writing(client.clone(), state, Writes::Record(Mutex::default()));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut listed = namespaces.list(&ListParams::default()).await?.items;
    listed.sort_by_key(ResourceExt::name_any);
    let policies: Api<NetworkPolicy> = Api::all(client);
    let managed = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    let policies: Vec<Arc<NetworkPolicy>> = policies
        .list(&managed)
        .await?
        .items
        .into_iter()
        .map(Arc::new)
        .collect();
    let inventory = super::cache::inventory(&policies, &[]);
    for ns in &listed {
        reconcile_namespace(ns, &ctx, &inventory).await?;
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
    // the companions are read from the cluster cache: until it has synced, a missing
    // companion cannot be told from one not listed yet
    let mut inventory_changes = ctx.state.inventory_changes();
    while !ctx.state.snapshot().inventory.knows_all_namespaces() {
        tokio::select! {
            () = super::stopped(stop.clone()) => return,
            changed = inventory_changes.changed() => if changed.is_err() { return },
        }
    }
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let config_changes = futures::stream::unfold(ctx.state.config_changes(), |mut rx| async {
        rx.changed().await.ok().map(|()| ((), rx))
    });
    Controller::new(namespaces, watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(CONCURRENCY))
        .reconcile_on(companion_changes(&ctx.state))
        .reconcile_all_on(config_changes)
        .graceful_shutdown_on(super::stopped(stop))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

/// The namespaces whose companions changed, each time the cache publishes a new view of
/// the cluster: a deleted, edited or unlabelled companion is reconciled at once rather
/// than at the next resync, with no watch of its own.
fn companion_changes(
    state: &SharedState,
) -> impl futures::Stream<Item = ObjectRef<Namespace>> + Send + 'static {
    let start = (
        state.clone(),
        state.inventory_changes(),
        state.snapshot().inventory,
    );
    futures::stream::unfold(start, |(state, mut rx, before)| async move {
        rx.changed().await.ok()?;
        let after = state.snapshot().inventory;
        let changed = companions::changed_namespaces(&before, &after);
        let refs = changed.into_iter().map(|ns| ObjectRef::new(&ns));
        Some((futures::stream::iter(refs), (state, rx, after)))
    })
    .flatten()
}
