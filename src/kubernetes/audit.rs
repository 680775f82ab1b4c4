//! The background audit: on the leader replica, the existing policies judged from the
//! cache, after a change (debounced) and on a period. Results go to metrics and, when the
//! report CRD is installed, to one report per namespace: a `wgpolicyk8s.io/v1alpha2`
//! PolicyReport, or an `openreports.io/v1alpha1` Report (`--report-api openreports`),
//! written by server-side apply only when its results change.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::FutureExt;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::audit::{self, Audit, PolicyResult};
use crate::rules::Severity;
use crate::runtime::metrics::{Attempt, ReportWrite};
use crate::runtime::state::SharedState;

/// The PolicyReports' name in each namespace, their field manager and label value.
pub const REPORT_NAME: &str = "netpol-guard";
const MANAGER: &str = "netpol-guard";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Pause between two report writes, so a first run over thousands of namespaces does not
/// flood the API server (at most 20 writes a second).
const WRITE_PAUSE: Duration = Duration::from_millis(50);

/// How the background audit runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A full run at least this often.
    pub interval: Duration,
    /// After a change in the cluster, wait this long for more before running.
    pub debounce: Duration,
    /// Write reports (when their CRD is installed).
    pub reports: bool,
    /// Which report API.
    pub api: ReportApi,
}

/// The report APIs: the same summary and results, in two groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportApi {
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport (Policy Reporter, Kyverno before 1.15).
    #[default]
    #[value(name = "policyreport")]
    PolicyReport,
    /// `openreports.io/v1alpha1` Report (Kyverno 1.15 and later, Policy Reporter 3.2 and later).
    #[value(name = "openreports")]
    OpenReports,
}

impl ReportApi {
    fn gvk(self) -> (GroupVersionKind, &'static str) {
        match self {
            ReportApi::PolicyReport => (
                GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport"),
                "policyreports",
            ),
            ReportApi::OpenReports => (
                GroupVersionKind::gvk("openreports.io", "v1alpha1", "Report"),
                "reports",
            ),
        }
    }

    fn resource(self) -> ApiResource {
        let (gvk, plural) = self.gvk();
        ApiResource::from_gvk_with_plural(&gvk, plural)
    }

    /// `wgpolicyk8s.io/v1alpha2 PolicyReport`, for logs.
    fn describe(self) -> String {
        let (gvk, _) = self.gvk();
        format!("{}/{} {}", gvk.group, gvk.version, gvk.kind)
    }

    /// An empty report of this API, named and labelled as the guard writes them.
    fn object(self, namespace: &str) -> Value {
        let (gvk, _) = self.gvk();
        let mut report = json!({
            "apiVersion": format!("{}/{}", gvk.group, gvk.version), "kind": gvk.kind,
            "metadata": {"name": REPORT_NAME, "namespace": namespace, "labels": {MANAGED_BY: MANAGER}},
        });
        if self == ReportApi::OpenReports {
            // OpenReports names the engine once for the whole report
            report["source"] = json!(REPORT_NAME);
        }
        report
    }
}

/// The result of one finding, in the report's words.
fn result_of(severity: Severity) -> (&'static str, &'static str) {
    match severity {
        Severity::Deny => ("fail", "high"),
        Severity::Warn => ("warn", "medium"),
    }
}

fn resource_ref(r: &PolicyResult) -> Value {
    json!([{
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "namespace": r.namespace,
        "name": r.name,
        "uid": r.policy.metadata.uid.clone().unwrap_or_default(),
    }])
}

/// The `summary` and `results` of one namespace's report: one result per finding, and a
/// `pass` for a policy without any.
pub fn report_content(results: &[&PolicyResult]) -> Value {
    let (mut pass, mut fail, mut warn, mut skip) = (0, 0, 0, 0);
    let mut out = Vec::new();
    for r in results {
        // acknowledged by the policy's own netpol-guard.io/ignore: `skip`, with the reason
        for s in &r.suppressed {
            skip += 1;
            let f = &s.finding;
            out.push(json!({
                "policy": REPORT_NAME, "rule": f.rule, "result": "skip",
                "severity": result_of(f.severity).1,
                "source": REPORT_NAME, "category": "NetworkPolicy", "scored": true,
                "message": format!("{} (acknowledged: {})", f.message, s.reason),
                "resources": resource_ref(r),
                "properties": {"path": f.path, "fix": f.fix, "suppressedBy": "netpol-guard.io/ignore"},
            }));
        }
        if r.findings.is_empty() {
            pass += 1;
            out.push(json!({
                "policy": REPORT_NAME, "rule": "catalog", "result": "pass", "severity": "info",
                "source": REPORT_NAME, "category": "NetworkPolicy", "scored": true,
                "message": "no finding", "resources": resource_ref(r),
            }));
        }
        for f in &r.findings {
            let (result, severity) = result_of(f.severity);
            match f.severity {
                Severity::Deny => fail += 1,
                Severity::Warn => warn += 1,
            }
            out.push(json!({
                "policy": REPORT_NAME, "rule": f.rule, "result": result, "severity": severity,
                "source": REPORT_NAME, "category": "NetworkPolicy", "scored": true,
                "message": f.message, "resources": resource_ref(r),
                "properties": {"path": f.path, "fix": f.fix},
            }));
        }
    }
    json!({
        "summary": {"pass": pass, "fail": fail, "warn": warn, "error": 0, "skip": skip},
        "results": out,
    })
}

/// The audited policies by namespace (the namespaces that have policies).
fn by_namespace(audit: &Audit) -> BTreeMap<&str, Vec<&PolicyResult>> {
    let mut grouped: BTreeMap<&str, Vec<&PolicyResult>> = BTreeMap::new();
    for r in &audit.results {
        grouped.entry(r.namespace.as_str()).or_default().push(r);
    }
    grouped
}

/// A fingerprint of a report's content that does not depend on the order of object keys
/// (a report read back from the API server may order them differently).
pub fn fingerprint(content: &Value) -> u64 {
    fn feed(v: &Value, h: &mut std::collections::hash_map::DefaultHasher) {
        use std::hash::Hash;
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for k in keys {
                    k.hash(h);
                    feed(&map[k], h);
                }
                '}'.hash(h);
            }
            Value::Array(items) => {
                for item in items {
                    feed(item, h);
                }
                ']'.hash(h);
            }
            other => other.to_string().hash(h),
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    feed(content, &mut h);
    std::hash::Hasher::finish(&h)
}

/// The fingerprint of every namespace's report, for the namespaces that have policies.
pub fn report_fingerprints(audit: &Audit) -> BTreeMap<String, u64> {
    by_namespace(audit)
        .into_iter()
        .map(|(ns, results)| (ns.to_string(), fingerprint(&report_content(&results))))
        .collect()
}

/// What the audit last wrote, by namespace, and whether the CRD is there.
#[derive(Debug, Default)]
struct Reports {
    /// Fingerprints of the reports in the cluster; `None` until read.
    written: Option<BTreeMap<String, u64>>,
    missing_logged: bool,
}

impl Reports {
    /// Reads the reports this guard wrote, once per leadership. `false` when the CRD is not
    /// installed (logged once) or they cannot be read.
    async fn load(&mut self, client: &Client, report_api: ReportApi) -> bool {
        if self.written.is_some() {
            return true;
        }
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &report_api.resource());
        let params = ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER}"));
        match api.list(&params).await {
            Ok(list) => {
                let written = list
                    .items
                    .into_iter()
                    .filter_map(|r| {
                        let ns = r.metadata.namespace.clone()?;
                        let content = json!({
                            "summary": r.data.get("summary").cloned().unwrap_or(Value::Null),
                            "results": r.data.get("results").cloned().unwrap_or(Value::Null),
                        });
                        Some((ns, fingerprint(&content)))
                    })
                    .collect();
                self.written = Some(written);
                self.missing_logged = false;
                true
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                if !self.missing_logged {
                    tracing::info!(
                        reports = %report_api.describe(),
                        "the report CRD is not installed: audit results go to metrics only"
                    );
                    self.missing_logged = true;
                }
                false
            }
            Err(e) => {
                tracing::warn!(reports = %report_api.describe(), error = %e, "cannot read the reports; trying again on the next audit");
                false
            }
        }
    }

    /// Applies the reports whose content changed and deletes those of namespaces without
    /// policies, one namespace at a time. Returns (applied, deleted).
    async fn sync(
        &mut self,
        client: &Client,
        state: &SharedState,
        audit: &Audit,
        report_api: ReportApi,
        terminating: impl Fn(&str) -> bool,
    ) -> (usize, usize) {
        let Some(written) = self.written.as_mut() else {
            return (0, 0);
        };
        let grouped = by_namespace(audit);
        let applied =
            apply_changed(client, state, &grouped, written, report_api, terminating).await;
        let deleted = delete_stale(client, state, &grouped, written, report_api).await;
        (applied, deleted)
    }
}

/// Applies the report of each namespace whose content changed since this process last
/// wrote it (none in a namespace being deleted); returns how many were written.
async fn apply_changed(
    client: &Client,
    state: &SharedState,
    grouped: &BTreeMap<&str, Vec<&PolicyResult>>,
    written: &mut BTreeMap<String, u64>,
    report_api: ReportApi,
    terminating: impl Fn(&str) -> bool,
) -> usize {
    let resource = report_api.resource();
    let mut applied = 0;
    for (ns, results) in grouped {
        // the API server refuses new objects in a namespace being deleted
        if terminating(ns) {
            continue;
        }
        let content = report_content(results);
        let print = fingerprint(&content);
        if written.get(*ns) == Some(&print) {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        let mut report = report_api.object(ns);
        report["summary"] = content["summary"].clone();
        report["results"] = content["results"].clone();
        let params = PatchParams::apply(MANAGER).force();
        let ok = api
            .patch(REPORT_NAME, &params, &Patch::Apply(&report))
            .await
            .inspect_err(
                |e| tracing::warn!(namespace = %ns, error = %e, "writing a PolicyReport failed"),
            )
            .is_ok();
        state
            .metrics
            .audit
            .report_write(ReportWrite::Apply, Attempt::of(ok));
        if ok {
            written.insert(ns.to_string(), print);
            applied += 1;
        }
        tokio::time::sleep(WRITE_PAUSE).await;
    }
    applied
}

/// Deletes the reports this process wrote for namespaces that have no finding any more
/// (a report already gone counts as deleted); returns how many went.
async fn delete_stale(
    client: &Client,
    state: &SharedState,
    grouped: &BTreeMap<&str, Vec<&PolicyResult>>,
    written: &mut BTreeMap<String, u64>,
    report_api: ReportApi,
) -> usize {
    let resource = report_api.resource();
    let stale: Vec<String> = written
        .keys()
        .filter(|ns| !grouped.contains_key(ns.as_str()))
        .cloned()
        .collect();
    let mut deleted = 0;
    for ns in stale {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        let result = api.delete(REPORT_NAME, &DeleteParams::default()).await;
        let ok = match result {
            Ok(_) => true,
            Err(kube::Error::Api(e)) => e.code == 404,
            Err(_) => false,
        };
        state
            .metrics
            .audit
            .report_write(ReportWrite::Delete, Attempt::of(ok));
        if ok {
            written.remove(&ns);
            deleted += 1;
        }
        tokio::time::sleep(WRITE_PAUSE).await;
    }
    deleted
}

/// One audit of the current snapshot: metrics, then reports.
async fn run_once(
    client: &Client,
    state: &SharedState,
    settings: &Settings,
    reports: &mut Reports,
) {
    let snapshot = state.snapshot();
    let started = std::time::Instant::now();
    let audit = audit::audit(
        &snapshot.inventory,
        &snapshot.config,
        &snapshot.identity.namespace,
        None,
    );
    let took = started.elapsed();
    let notable = audit.namespaces.values().filter(|s| s.notable()).count();
    let (applied, deleted) = if settings.reports && reports.load(client, settings.api).await {
        let inventory = &snapshot.inventory;
        let terminating = |ns: &str| inventory.is_terminating(ns);
        reports
            .sync(client, state, &audit, settings.api, terminating)
            .await
    } else {
        (0, 0)
    };
    // last: the run's timestamp marks the end of its writes too
    state.metrics.audit.audited(&audit.counts());
    tracing::info!(
        policies = audit.results.len(),
        namespaces = audit.namespaces.len(),
        notable,
        took_ms = took.as_millis() as u64,
        reports_applied = applied,
        reports_deleted = deleted,
        "audit done"
    );
}

/// Runs the background audit until `stop`: only while this replica leads, once the cache
/// has synced; after a change (debounced) and every `interval`.
pub async fn run(
    client: Client,
    state: SharedState,
    settings: Settings,
    stop: watch::Receiver<bool>,
) {
    let mut leading = state.leading();
    let mut changes = state.inventory_changes();
    loop {
        // idle until elected
        tokio::select! {
            ok = leading.wait_for(|l| *l).map(|r| r.is_ok()) => if !ok { return },
            () = super::stopped(stop.clone()) => return,
        }
        let mut reports = Reports::default();
        let mut period = tokio::time::interval(settings.interval);
        // the first tick is at once: a new leader audits right away
        period.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = period.tick() => {}
                r = changes.changed() => {
                    if r.is_err() { return }
                    // let a burst of changes settle
                    tokio::select! {
                        () = tokio::time::sleep(settings.debounce) => {}
                        () = super::stopped(stop.clone()) => return,
                    }
                    changes.borrow_and_update();
                }
                ok = leading.wait_for(|l| !*l).map(|r| r.is_ok()) => {
                    if !ok { return }
                    tracing::info!("not leading: background audit idle");
                    state.metrics.audit.reset();
                    break;
                }
                () = super::stopped(stop.clone()) => return,
            }
            if state.metrics.cache.synced() {
                run_once(&client, &state, &settings, &mut reports).await;
            }
        }
    }
}
