//! Prometheus metrics, one struct per subsystem (admission, the webhook's transport, the
//! cluster cache, the companions controller, the background audit), each registering its
//! own series into the registry passed around in state. Fields are private: a subsystem
//! records through methods whose arguments are the fixed label sets (enums), never object
//! names, so the series stay bounded.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::guard::{Decision, Endpoint};
use crate::rules::{CATALOG, Finding, Severity};

type Registered<T> = Result<T, prometheus::Error>;

/// Every metric netpol-guard exports, by subsystem.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub admission: Admission,
    pub webhook: Webhook,
    pub cache: Cache,
    pub controller: Controller,
    pub audit: Audit,
}

impl Metrics {
    pub fn new() -> Registered<Self> {
        let registry = Registry::new();
        let metrics = Self {
            admission: Admission::register(&registry)?,
            webhook: Webhook::register(&registry)?,
            cache: Cache::register(&registry)?,
            controller: Controller::register(&registry)?,
            audit: Audit::register(&registry)?,
            registry,
        };
        register_process_facts(&metrics.registry)?;
        Ok(metrics)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Whether an attempt (a reload, a write) succeeded: the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Succeeded,
    Failed,
}

impl Attempt {
    pub fn of(ok: bool) -> Self {
        if ok { Self::Succeeded } else { Self::Failed }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Succeeded => "success",
            Self::Failed => "error",
        }
    }
}

const ATTEMPTS: [Attempt; 2] = [Attempt::Succeeded, Attempt::Failed];

/// Registers a collector and hands it back.
fn register<C>(registry: &Registry, collector: C) -> Registered<C>
where
    C: prometheus::core::Collector + Clone + 'static,
{
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

fn counters(r: &Registry, name: &str, help: &str, labels: &[&str]) -> Registered<IntCounterVec> {
    register(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn counter(r: &Registry, name: &str, help: &str) -> Registered<IntCounter> {
    register(r, IntCounter::new(name, help)?)
}

fn gauges(r: &Registry, name: &str, help: &str, labels: &[&str]) -> Registered<IntGaugeVec> {
    register(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

fn gauge(r: &Registry, name: &str, help: &str) -> Registered<IntGauge> {
    register(r, IntGauge::new(name, help)?)
}

fn float_gauge(r: &Registry, name: &str, help: &str) -> Registered<Gauge> {
    register(r, Gauge::new(name, help)?)
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The build version, and the process collector (CPU, memory, open files).
fn register_process_facts(registry: &Registry) -> Registered<()> {
    let build_info = gauges(
        registry,
        "netpol_guard_build_info",
        "Always 1; the version as a label.",
        &["version"],
    )?;
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(())
}

/// Admission latency buckets, 100 µs to 1 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The reviews: counted by endpoint, kind, operation and decision, timed, their findings
/// counted by rule and severity.
#[derive(Debug, Clone)]
pub struct Admission {
    requests: IntCounterVec,
    duration: HistogramVec,
    findings: IntCounterVec,
}

impl Admission {
    fn register(r: &Registry) -> Registered<Self> {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "netpol_guard_admission_duration_seconds",
                "Time from request to response, by endpoint.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["endpoint"],
        )?;
        let admission = Self {
            requests: counters(
                r,
                "netpol_guard_admission_requests_total",
                "Admission reviews answered, by endpoint, kind, operation and decision.",
                &["endpoint", "kind", "operation", "decision"],
            )?,
            duration: register(r, duration)?,
            findings: counters(
                r,
                "netpol_guard_rule_findings_total",
                "Findings reported by validating reviews, by rule and severity.",
                &["rule", "severity"],
            )?,
        };
        admission.start_at_zero();
        Ok(admission)
    }

    /// The series a dashboard plots, before the first review.
    fn start_at_zero(&self) {
        for rule in CATALOG {
            self.findings
                .with_label_values(&[rule.id, rule.default_severity.as_str()]);
        }
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            self.duration.with_label_values(&[endpoint.as_str()]);
            for kind in ["NetworkPolicy", "Namespace"] {
                for operation in ["CREATE", "UPDATE", "DELETE"] {
                    for decision in [Decision::Allowed, Decision::Denied, Decision::Mutated] {
                        self.requests.with_label_values(&[
                            endpoint.as_str(),
                            kind,
                            operation,
                            decision.as_str(),
                        ]);
                    }
                }
            }
        }
    }

    /// One answered review; `kind` and `operation` are the codec's bounded labels
    /// (`NetworkPolicy`, `Namespace`, `other`, `unknown`; `CREATE` ... `unknown`).
    pub fn review(
        &self,
        endpoint: Endpoint,
        kind: &'static str,
        operation: &'static str,
        decision: Decision,
        elapsed: Duration,
        findings: &[Finding],
    ) {
        self.requests
            .with_label_values(&[endpoint.as_str(), kind, operation, decision.as_str()])
            .inc();
        self.duration
            .with_label_values(&[endpoint.as_str()])
            .observe(elapsed.as_secs_f64());
        for f in findings {
            self.findings
                .with_label_values(&[f.rule, f.severity.as_str()])
                .inc();
        }
    }

    /// A request refused before it became a review (413, 415, 408).
    pub fn rejected(&self, endpoint: Endpoint) {
        self.requests
            .with_label_values(&[endpoint.as_str(), "unknown", "unknown", "invalid"])
            .inc();
    }
}

/// The webhook process: its certificate, reloads of files, and the connections it holds.
#[derive(Debug, Clone)]
pub struct Webhook {
    tls_expiry: Gauge,
    tls_reloads: IntCounterVec,
    config_reloads: IntCounterVec,
    connections: IntGauge,
    connections_shed: IntCounter,
}

impl Webhook {
    fn register(r: &Registry) -> Registered<Self> {
        let webhook = Self {
            tls_expiry: float_gauge(
                r,
                "netpol_guard_tls_certificate_expiry_timestamp_seconds",
                "Unix time at which the serving certificate expires.",
            )?,
            tls_reloads: counters(
                r,
                "netpol_guard_tls_reloads_total",
                "Serving certificate reloads, by result.",
                &["result"],
            )?,
            config_reloads: counters(
                r,
                "netpol_guard_config_reloads_total",
                "Rule configuration reloads, by result.",
                &["result"],
            )?,
            connections: gauge(
                r,
                "netpol_guard_webhook_connections",
                "Connections the webhook port holds now, from accept to close (bounded by --max-connections).",
            )?,
            connections_shed: counter(
                r,
                "netpol_guard_webhook_connections_shed_total",
                "Connections closed at the connection limit because they had not sent a request yet (slow handshakes or dripping headers).",
            )?,
        };
        for attempt in ATTEMPTS {
            webhook.tls_reloads.with_label_values(&[attempt.label()]);
            webhook.config_reloads.with_label_values(&[attempt.label()]);
        }
        Ok(webhook)
    }

    /// The serving certificate in use expires at `not_after` (Unix seconds).
    pub fn certificate(&self, not_after: i64) {
        self.tls_expiry.set(not_after as f64);
    }

    pub fn tls_reload(&self, attempt: Attempt) {
        self.tls_reloads.with_label_values(&[attempt.label()]).inc();
    }

    pub fn config_reload(&self, attempt: Attempt) {
        self.config_reloads
            .with_label_values(&[attempt.label()])
            .inc();
    }

    /// A connection accepted; counted until the returned guard is dropped.
    pub fn connection(&self) -> OpenConnection {
        self.connections.inc();
        OpenConnection(self.connections.clone())
    }

    /// A connection closed at the limit before it sent a request.
    pub fn connection_shed(&self) {
        self.connections_shed.inc();
    }

    pub fn open_connections(&self) -> i64 {
        self.connections.get()
    }

    pub fn shed_connections(&self) -> u64 {
        self.connections_shed.get()
    }
}

/// An open webhook connection, counted in `netpol_guard_webhook_connections` while it lives.
#[derive(Debug)]
pub struct OpenConnection(IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The resources the cluster cache holds, as `netpol_guard_cache_objects` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSize {
    pub policies: usize,
    pub namespaces: usize,
    pub pods: usize,
    /// Objects of each policy layer kind, by resource (plural) name.
    pub layers: [(&'static str, usize); 5],
    /// Objects of other CNIs' policy kinds, which the guard does not read.
    pub unread: usize,
}

/// The cluster cache: in sync or not, its size, and the DNS target it found.
#[derive(Debug, Clone)]
pub struct Cache {
    synced: IntGauge,
    objects: IntGaugeVec,
    dns_target: IntGaugeVec,
}

impl Cache {
    fn register(r: &Registry) -> Registered<Self> {
        let cache = Self {
            synced: gauge(
                r,
                "netpol_guard_cache_synced",
                "1 while the cluster cache (NetworkPolicies, Namespaces) is in sync with the API server; 0 before the first list and during an outage, when admission uses the last snapshot.",
            )?,
            objects: gauges(
                r,
                "netpol_guard_cache_objects",
                "Objects in the cluster cache, by resource.",
                &["resource"],
            )?,
            dns_target: gauges(
                r,
                "netpol_guard_dns_target_info",
                "1 for the DNS target the rules and the injection use: its namespace, and whether it was discovered from the cluster's DNS Service or configured.",
                &["namespace", "source"],
            )?,
        };
        cache.size(CacheSize {
            policies: 0,
            namespaces: 0,
            pods: 0,
            layers: crate::netpol::layers::LayerKind::ALL.map(|k| (k.plural(), 0)),
            unread: 0,
        });
        Ok(cache)
    }

    pub fn set_synced(&self, synced: bool) {
        self.synced.set(i64::from(synced));
    }

    pub fn synced(&self) -> bool {
        self.synced.get() == 1
    }

    pub fn size(&self, size: CacheSize) {
        let core = [
            ("networkpolicies", size.policies),
            ("namespaces", size.namespaces),
            ("pods", size.pods),
        ];
        let unread = [("unread", size.unread)];
        for (resource, n) in core.into_iter().chain(size.layers).chain(unread) {
            self.objects.with_label_values(&[resource]).set(count(n));
        }
    }

    /// The DNS target in use (one series at 1); `source` is `discovered` or `configured`.
    pub fn dns_target(&self, namespace: &str, source: &'static str) {
        self.dns_target.reset();
        self.dns_target
            .with_label_values(&[namespace, source])
            .set(1);
    }
}

/// Results of a namespace reconcile: companions applied (created or restored), already as
/// wanted, removed (exempt namespace or disabled companion), namespace skipped (protected,
/// the guard's own, terminating), or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    Applied,
    Unchanged,
    Removed,
    Skipped,
    Failed,
}

impl Reconciled {
    pub const ALL: [Self; 5] = [
        Self::Applied,
        Self::Unchanged,
        Self::Removed,
        Self::Skipped,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::Removed => "removed",
            Self::Skipped => "skipped",
            Self::Failed => "error",
        }
    }
}

/// The companions controller and the leader Lease that elects it.
#[derive(Debug, Clone)]
pub struct Controller {
    reconciles: IntCounterVec,
    drift_corrections: IntCounter,
    leader: IntGauge,
    leader_transitions: IntCounter,
}

impl Controller {
    fn register(r: &Registry) -> Registered<Self> {
        let controller = Self {
            reconciles: counters(
                r,
                "netpol_guard_companion_reconciles_total",
                "Namespace reconciles of the companions controller, by result.",
                &["result"],
            )?,
            drift_corrections: counter(
                r,
                "netpol_guard_companion_drift_corrections_total",
                "Companion policies found deleted or edited and restored.",
            )?,
            leader: gauge(
                r,
                "netpol_guard_leader",
                "1 while this replica holds the lease and runs the companions controller.",
            )?,
            leader_transitions: counter(
                r,
                "netpol_guard_leader_transitions_total",
                "Times this replica started or stopped the companions controller (the leader Lease won or lost); a steady rise is flapping.",
            )?,
        };
        for result in Reconciled::ALL {
            controller.reconciles.with_label_values(&[result.as_str()]);
        }
        Ok(controller)
    }

    pub fn reconciled(&self, result: Reconciled) {
        self.reconciles.with_label_values(&[result.as_str()]).inc();
    }

    /// Reconciles so far, whatever their result.
    pub fn reconciles(&self) -> u64 {
        Reconciled::ALL
            .iter()
            .map(|r| self.reconciles.with_label_values(&[r.as_str()]).get())
            .sum()
    }

    pub fn drift_corrected(&self) {
        self.drift_corrections.inc();
    }

    pub fn drift_corrections(&self) -> u64 {
        self.drift_corrections.get()
    }

    /// This replica won (`true`) or lost the Lease: the gauge, and one transition.
    pub fn lead(&self, leading: bool) {
        self.leader.set(i64::from(leading));
        self.leader_transitions.inc();
    }

    /// This replica stops leading without a transition (it never started the controller).
    pub fn not_leading(&self) {
        self.leader.set(0);
    }

    pub fn is_leader(&self) -> bool {
        self.leader.get() == 1
    }

    pub fn leader_transitions(&self) -> u64 {
        self.leader_transitions.get()
    }
}

/// A PolicyReport write of the background audit: the `operation` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportWrite {
    Apply,
    Delete,
}

impl ReportWrite {
    fn label(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Delete => "delete",
        }
    }
}

/// The background audit: its findings, when it last ran, and its PolicyReport writes.
#[derive(Debug, Clone)]
pub struct Audit {
    findings: IntGaugeVec,
    last_run: Gauge,
    report_writes: IntCounterVec,
}

impl Audit {
    fn register(r: &Registry) -> Registered<Self> {
        let audit = Self {
            findings: gauges(
                r,
                "netpol_guard_audit_findings",
                "Findings of the last background audit of the cluster's existing policies, by rule and severity.",
                &["rule", "severity"],
            )?,
            last_run: float_gauge(
                r,
                "netpol_guard_audit_last_run_timestamp_seconds",
                "Unix time at which the last background audit finished (0: none on this replica).",
            )?,
            report_writes: counters(
                r,
                "netpol_guard_audit_report_writes_total",
                "Report writes (PolicyReport or OpenReports Report) of the background audit, by operation (apply, delete) and result.",
                &["operation", "result"],
            )?,
        };
        audit.reset();
        for write in [ReportWrite::Apply, ReportWrite::Delete] {
            for attempt in ATTEMPTS {
                audit
                    .report_writes
                    .with_label_values(&[write.label(), attempt.label()]);
            }
        }
        Ok(audit)
    }

    /// The findings of an audit (every rule and severity, zero where none), and its time.
    pub fn audited(&self, counts: &BTreeMap<(&'static str, Severity), usize>) {
        self.counts(counts);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_run.set(now.as_secs_f64());
    }

    fn counts(&self, counts: &BTreeMap<(&'static str, Severity), usize>) {
        for rule in CATALOG {
            for severity in [Severity::Deny, Severity::Warn] {
                let n = counts.get(&(rule.id, severity)).copied().unwrap_or(0);
                self.findings
                    .with_label_values(&[rule.id, severity.as_str()])
                    .set(count(n));
            }
        }
    }

    /// Sets the findings to zero (before any audit, or when this replica stops auditing),
    /// so that summing over replicas counts the leader's findings only.
    pub fn reset(&self) {
        self.counts(&BTreeMap::new());
    }

    pub fn report_write(&self, write: ReportWrite, attempt: Attempt) {
        self.report_writes
            .with_label_values(&[write.label(), attempt.label()])
            .inc();
    }

    /// When the last audit finished (Unix seconds; 0 before the first).
    pub fn last_run(&self) -> f64 {
        self.last_run.get()
    }

    /// Findings of `rule` at `severity` in the last audit.
    pub fn findings(&self, rule: &str, severity: Severity) -> i64 {
        self.findings
            .with_label_values(&[rule, severity.as_str()])
            .get()
    }

    /// Successful PolicyReport writes so far.
    pub fn report_writes(&self, write: ReportWrite) -> u64 {
        self.report_writes
            .with_label_values(&[write.label(), Attempt::Succeeded.label()])
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &'static str, severity: Severity) -> Finding {
        Finding {
            rule,
            severity,
            path: String::new(),
            message: String::new(),
            fix: String::new(),
            condition: None,
        }
    }

    /// The value of one series in the text a scrape reads.
    fn series(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    }

    #[test]
    fn reviews_are_counted_by_their_labels_and_timed() {
        let m = Metrics::new().unwrap();
        let rule = CATALOG[0].id;
        let findings = [finding(rule, Severity::Warn), finding(rule, Severity::Warn)];
        for _ in 0..3 {
            m.admission.review(
                Endpoint::Validate,
                "NetworkPolicy",
                "CREATE",
                Decision::Denied,
                Duration::from_millis(1),
                &findings,
            );
        }
        m.admission.review(
            Endpoint::Validate,
            "other",
            "CREATE",
            Decision::Allowed,
            Duration::ZERO,
            &[],
        );
        m.admission.rejected(Endpoint::Mutate);
        let text = m.render();
        let requests = |labels: &str| {
            series(
                &text,
                &format!("netpol_guard_admission_requests_total{{{labels}}}"),
            )
        };
        assert_eq!(
            requests(
                r#"decision="denied",endpoint="validate",kind="NetworkPolicy",operation="CREATE""#
            ),
            Some(3.0)
        );
        assert_eq!(
            requests(r#"decision="allowed",endpoint="validate",kind="other",operation="CREATE""#),
            Some(1.0)
        );
        assert_eq!(
            requests(r#"decision="invalid",endpoint="mutate",kind="unknown",operation="unknown""#),
            Some(1.0)
        );
        // started at zero before the first review of that kind
        assert_eq!(
            requests(
                r#"decision="denied",endpoint="mutate",kind="NetworkPolicy",operation="CREATE""#
            ),
            Some(0.0)
        );
        assert_eq!(
            series(
                &text,
                &format!(r#"netpol_guard_rule_findings_total{{rule="{rule}",severity="warn"}}"#)
            ),
            Some(6.0)
        );
        assert_eq!(
            series(
                &text,
                r#"netpol_guard_admission_duration_seconds_count{endpoint="validate"}"#
            ),
            Some(4.0)
        );
    }

    #[test]
    fn the_subsystems_record_through_their_enums() {
        let m = Metrics::new().unwrap();
        m.controller.reconciled(Reconciled::Applied);
        m.controller.reconciled(Reconciled::Failed);
        m.controller.lead(true);
        m.audit
            .report_write(ReportWrite::Delete, Attempt::of(false));
        m.webhook.config_reload(Attempt::Succeeded);
        let open = m.webhook.connection();
        assert_eq!(m.webhook.open_connections(), 1);
        drop(open);
        let text = m.render();
        for (name, value) in [
            (
                r#"netpol_guard_companion_reconciles_total{result="applied"}"#,
                1.0,
            ),
            (
                r#"netpol_guard_companion_reconciles_total{result="error"}"#,
                1.0,
            ),
            (
                r#"netpol_guard_companion_reconciles_total{result="skipped"}"#,
                0.0,
            ),
            ("netpol_guard_leader", 1.0),
            ("netpol_guard_leader_transitions_total", 1.0),
            (
                r#"netpol_guard_audit_report_writes_total{operation="delete",result="error"}"#,
                1.0,
            ),
            (
                r#"netpol_guard_config_reloads_total{result="success"}"#,
                1.0,
            ),
            (r#"netpol_guard_tls_reloads_total{result="error"}"#, 0.0),
            ("netpol_guard_webhook_connections", 0.0),
        ] {
            assert_eq!(series(&text, name), Some(value), "{name}");
        }
        assert_eq!(m.controller.reconciles(), 2);
    }
}
