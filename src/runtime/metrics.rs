//! Prometheus metrics: one struct, registered into an explicit registry that is passed
//! around in state. Label values come from small fixed sets, never from object names.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::rules::{CATALOG, Finding, Severity};

/// Every metric netpol-guard exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `{endpoint, kind, operation, decision}`
    pub requests: IntCounterVec,
    /// `{endpoint}`
    pub duration: HistogramVec,
    /// `{rule, severity}`
    pub findings: IntCounterVec,
    pub tls_expiry: Gauge,
    /// `{result}`: success | error
    pub tls_reloads: IntCounterVec,
    /// `{result}`: success | error
    pub config_reloads: IntCounterVec,
    /// `{result}`: see [`RECONCILE_RESULTS`]
    pub companion_reconciles: IntCounterVec,
    /// Companions found deleted or edited and restored.
    pub drift_corrections: IntCounter,
    /// 1 while this replica holds the controller lease.
    pub leader: IntGauge,
    /// Starts and stops of this replica's companions controller (Lease won or lost).
    pub leader_transitions: IntCounter,
    /// 1 once the cluster cache has listed NetworkPolicies and Namespaces.
    pub cache_synced: IntGauge,
    /// `{resource}`: objects in the cluster cache (networkpolicies, namespaces, pods).
    pub cache_objects: IntGaugeVec,
    /// `{namespace, source}`: 1 for the DNS target in use.
    pub dns_target: IntGaugeVec,
    /// `{rule, severity}`: findings of the last background audit.
    pub audit_findings: IntGaugeVec,
    /// When the last background audit finished.
    pub audit_last_run: Gauge,
    /// `{operation, result}`: PolicyReport writes (apply, delete).
    pub report_writes: IntCounterVec,
    /// Connections the webhook port holds now (from accept to close).
    pub connections: IntGauge,
    /// Connections closed at the connection limit before they sent a request.
    pub connections_shed: IntCounter,
    /// The admission series, each resolved on first use and kept, so a review does not
    /// hash its label values (the set is bounded: see [`Resolved`]).
    resolved: Arc<Resolved>,
}

/// The bounded label values of the admission series, in the order of [`Resolved`]'s
/// slots (values outside them are looked up by label, as before).
const ENDPOINTS: [&str; 2] = ["validate", "mutate"];
const KINDS: [&str; 4] = ["NetworkPolicy", "Namespace", "other", "unknown"];
const OPERATIONS: [&str; 5] = ["CREATE", "UPDATE", "DELETE", "CONNECT", "unknown"];
const DECISIONS: [&str; 5] = ["allowed", "denied", "mutated", "invalid", "error"];
const SEVERITIES: [Severity; 2] = [Severity::Deny, Severity::Warn];

/// Handles of the admission series by slot; an empty slot is resolved on first use, so
/// `/metrics` shows the same series as it would without them.
#[derive(Debug, Default)]
struct Resolved {
    requests: [[[[OnceLock<IntCounter>; 5]; 5]; 4]; 2],
    duration: [OnceLock<Histogram>; 2],
    /// By rule, in [`CATALOG`] order, then severity.
    findings: Vec<[OnceLock<IntCounter>; 2]>,
}

/// Runs `f` on the series kept in `cell` (resolved on first use), or on one looked up by
/// label when there is no slot for it.
fn on<M>(cell: Option<&OnceLock<M>>, resolve: impl FnOnce() -> M, f: impl FnOnce(&M)) {
    match cell {
        Some(cell) => f(cell.get_or_init(resolve)),
        None => f(&resolve()),
    }
}

fn slot<T: PartialEq>(known: &[T], value: &T) -> Option<usize> {
    known.iter().position(|k| k == value)
}

/// Results of a namespace reconcile: companions applied (created or restored), already as
/// wanted, removed (exempt namespace or disabled companion), namespace skipped (protected,
/// the guard's own, terminating), or failed.
pub const RECONCILE_RESULTS: &[&str] = &["applied", "unchanged", "removed", "skipped", "error"];

/// Admission latency buckets, 100 µs to 1 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Registers a collector and hands it back.
fn register<C>(registry: &Registry, collector: C) -> Result<C, prometheus::Error>
where
    C: prometheus::core::Collector + Clone + 'static,
{
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

fn counters(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    register(registry, IntGauge::new(name, help)?)
}

/// The build version, and the process collector (CPU, memory, open files).
fn register_process_facts(registry: &Registry) -> Result<(), prometheus::Error> {
    let build_info = IntGaugeVec::new(
        Opts::new(
            "netpol_guard_build_info",
            "Always 1; the version as a label.",
        ),
        &["version"],
    )?;
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
    registry.register(Box::new(build_info))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(())
}

/// The companions controller's and the cluster cache's metrics.
#[allow(clippy::type_complexity)]
fn controller_metrics(
    r: &Registry,
) -> Result<(IntCounterVec, IntCounter, IntGauge, IntCounter, IntGauge), prometheus::Error> {
    let c = |name, help| register(r, IntCounter::new(name, help)?);
    let companion_reconciles = counters(
        r,
        "netpol_guard_companion_reconciles_total",
        "Namespace reconciles of the companions controller, by result.",
        &["result"],
    )?;
    let drift_corrections = c(
        "netpol_guard_companion_drift_corrections_total",
        "Companion policies found deleted or edited and restored.",
    )?;
    let leader = gauge(
        r,
        "netpol_guard_leader",
        "1 while this replica holds the lease and runs the companions controller.",
    )?;
    let leader_transitions = c(
        "netpol_guard_leader_transitions_total",
        "Times this replica started or stopped the companions controller (the leader Lease won or lost); a steady rise is flapping.",
    )?;
    let cache_synced = gauge(
        r,
        "netpol_guard_cache_synced",
        "1 while the cluster cache (NetworkPolicies, Namespaces) is in sync with the API server; 0 before the first list and during an outage, when admission uses the last snapshot.",
    )?;
    Ok((
        companion_reconciles,
        drift_corrections,
        leader,
        leader_transitions,
        cache_synced,
    ))
}

fn gauges(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, prometheus::Error> {
    register(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

/// The cache's, the DNS target's and the audit's metrics.
fn cluster_metrics(
    r: &Registry,
) -> Result<(IntGaugeVec, IntGaugeVec, IntGaugeVec, Gauge, IntCounterVec), prometheus::Error> {
    Ok((
        gauges(
            r,
            "netpol_guard_cache_objects",
            "Objects in the cluster cache, by resource.",
            &["resource"],
        )?,
        gauges(
            r,
            "netpol_guard_dns_target_info",
            "1 for the DNS target the rules and the injection use: its namespace, and whether it was discovered from the cluster's DNS Service or configured.",
            &["namespace", "source"],
        )?,
        gauges(
            r,
            "netpol_guard_audit_findings",
            "Findings of the last background audit of the cluster's existing policies, by rule and severity.",
            &["rule", "severity"],
        )?,
        register(
            r,
            Gauge::new(
                "netpol_guard_audit_last_run_timestamp_seconds",
                "Unix time at which the last background audit finished (0: none on this replica).",
            )?,
        )?,
        counters(
            r,
            "netpol_guard_audit_report_writes_total",
            "PolicyReport writes of the background audit, by operation (apply, delete) and result.",
            &["operation", "result"],
        )?,
    ))
}

/// `success` or `error`.
fn result_label(ok: bool) -> &'static str {
    if ok { "success" } else { "error" }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = &registry;
        let (companion_reconciles, drift_corrections, leader, leader_transitions, cache_synced) =
            controller_metrics(r)?;
        let (cache_objects, dns_target, audit_findings, audit_last_run, report_writes) =
            cluster_metrics(r)?;
        let metrics = Self {
            requests: counters(
                r,
                "netpol_guard_admission_requests_total",
                "Admission reviews answered, by endpoint, kind, operation and decision.",
                &["endpoint", "kind", "operation", "decision"],
            )?,
            duration: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "netpol_guard_admission_duration_seconds",
                        "Time from request to response, by endpoint.",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    &["endpoint"],
                )?,
            )?,
            findings: counters(
                r,
                "netpol_guard_rule_findings_total",
                "Findings reported by validating reviews, by rule and severity.",
                &["rule", "severity"],
            )?,
            tls_expiry: register(
                r,
                Gauge::new(
                    "netpol_guard_tls_certificate_expiry_timestamp_seconds",
                    "Unix time at which the serving certificate expires.",
                )?,
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
            companion_reconciles,
            drift_corrections,
            leader,
            leader_transitions,
            cache_synced,
            cache_objects,
            dns_target,
            audit_findings,
            audit_last_run,
            report_writes,
            connections: gauge(
                r,
                "netpol_guard_webhook_connections",
                "Connections the webhook port holds now, from accept to close (bounded by --max-connections).",
            )?,
            connections_shed: register(
                r,
                IntCounter::new(
                    "netpol_guard_webhook_connections_shed_total",
                    "Connections closed at the connection limit because they had not sent a request yet (slow handshakes or dripping headers).",
                )?,
            )?,
            resolved: Arc::new(Resolved {
                findings: CATALOG.iter().map(|_| Default::default()).collect(),
                ..Resolved::default()
            }),
            registry: registry.clone(),
        };
        register_process_facts(&registry)?;
        metrics.start_at_zero();
        Ok(metrics)
    }

    /// Records the DNS target in use (one series at 1).
    pub fn dns_target(&self, namespace: &str, source: &str) {
        self.dns_target.reset();
        self.dns_target
            .with_label_values(&[namespace, source])
            .set(1);
    }

    /// Records the findings of an audit (every rule and severity, zero where none).
    pub fn audited(&self, counts: &std::collections::BTreeMap<(&'static str, Severity), usize>) {
        self.audited_counts(counts);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.audit_last_run.set(now.as_secs_f64());
    }

    fn audited_counts(&self, counts: &std::collections::BTreeMap<(&'static str, Severity), usize>) {
        for rule in CATALOG {
            for severity in [Severity::Deny, Severity::Warn] {
                let n = counts.get(&(rule.id, severity)).copied().unwrap_or(0);
                self.audit_findings
                    .with_label_values(&[rule.id, severity.as_str()])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// Sets the audit's gauges to zero (before any audit, or when this replica stops
    /// auditing), so that summing over replicas counts the leader's findings only.
    pub fn audit_reset(&self) {
        self.audited_counts(&std::collections::BTreeMap::new());
    }

    /// Counts one PolicyReport write.
    pub fn report_write(&self, operation: &str, ok: bool) {
        self.report_writes
            .with_label_values(&[operation, result_label(ok)])
            .inc();
    }

    /// Records the size of the cluster cache.
    pub fn cache_size(&self, policies: usize, namespaces: usize, pods: usize) {
        for (resource, n) in [
            ("networkpolicies", policies),
            ("namespaces", namespaces),
            ("pods", pods),
        ] {
            self.cache_objects
                .with_label_values(&[resource])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Starts every bounded series at zero so dashboards see them before the first event.
    fn start_at_zero(&self) {
        for ok in [true, false] {
            self.tls_reloads.with_label_values(&[result_label(ok)]);
            self.config_reloads.with_label_values(&[result_label(ok)]);
        }
        for result in RECONCILE_RESULTS {
            self.companion_reconciles.with_label_values(&[*result]);
        }
        self.audit_reset();
        self.cache_size(0, 0, 0);
        for operation in ["apply", "delete"] {
            for ok in [true, false] {
                self.report_writes
                    .with_label_values(&[operation, result_label(ok)]);
            }
        }
        for rule in CATALOG {
            self.findings
                .with_label_values(&[rule.id, rule.default_severity.as_str()]);
        }
        // the admission series a dashboard plots, before the first review
        for endpoint in ["validate", "mutate"] {
            self.duration.with_label_values(&[endpoint]);
            for kind in ["NetworkPolicy", "Namespace"] {
                for operation in ["CREATE", "UPDATE", "DELETE"] {
                    for decision in ["allowed", "denied", "mutated"] {
                        self.requests
                            .with_label_values(&[endpoint, kind, operation, decision]);
                    }
                }
            }
        }
    }

    /// One answered review: counted by its bounded labels, timed, its findings counted.
    pub fn review(
        &self,
        endpoint: &str,
        kind: &str,
        operation: &str,
        decision: &str,
        elapsed: Duration,
        findings: &[Finding],
    ) {
        let r = &*self.resolved;
        let e = slot(&ENDPOINTS, &endpoint);
        let cell = match (
            e,
            slot(&KINDS, &kind),
            slot(&OPERATIONS, &operation),
            slot(&DECISIONS, &decision),
        ) {
            (Some(e), Some(k), Some(o), Some(d)) => Some(&r.requests[e][k][o][d]),
            _ => None,
        };
        on(
            cell,
            || {
                self.requests
                    .with_label_values(&[endpoint, kind, operation, decision])
            },
            |c| c.inc(),
        );
        on(
            e.map(|e| &r.duration[e]),
            || self.duration.with_label_values(&[endpoint]),
            |h| h.observe(elapsed.as_secs_f64()),
        );
        for f in findings {
            let rule = CATALOG.iter().position(|rule| rule.id == f.rule);
            let cell = rule
                .zip(slot(&SEVERITIES, &f.severity))
                .map(|(rule, severity)| &r.findings[rule][severity]);
            on(
                cell,
                || {
                    self.findings
                        .with_label_values(&[f.rule, f.severity.as_str()])
                },
                |c| c.inc(),
            );
        }
    }

    /// A request refused before it became a review (413, 415, 408).
    pub fn rejected(&self, endpoint: &str) {
        self.requests
            .with_label_values(&[endpoint, "unknown", "unknown", "invalid"])
            .inc();
    }

    /// A serving certificate reload.
    pub fn tls_reload(&self, ok: bool) {
        self.tls_reloads
            .with_label_values(&[result_label(ok)])
            .inc();
    }

    /// A configuration reload.
    pub fn config_reload(&self, ok: bool) {
        self.config_reloads
            .with_label_values(&[result_label(ok)])
            .inc();
    }

    /// A namespace reconcile's result, one of [`RECONCILE_RESULTS`].
    pub fn reconcile(&self, result: &'static str) {
        self.companion_reconciles.with_label_values(&[result]).inc();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Finding;

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

    #[test]
    fn kept_handles_count_the_same_series_as_label_lookups() {
        let m = Metrics::new().unwrap();
        let rule = CATALOG[0].id;
        let findings = [finding(rule, Severity::Warn), finding(rule, Severity::Warn)];
        for _ in 0..3 {
            m.review(
                "validate",
                "NetworkPolicy",
                "CREATE",
                "denied",
                Duration::from_millis(1),
                &findings,
            );
        }
        // a label value without a slot is still counted, by lookup
        m.review("validate", "Pod", "CREATE", "allowed", Duration::ZERO, &[]);
        let count = |labels: &[&str]| m.requests.with_label_values(labels).get();
        assert_eq!(count(&["validate", "NetworkPolicy", "CREATE", "denied"]), 3);
        assert_eq!(count(&["validate", "Pod", "CREATE", "allowed"]), 1);
        assert_eq!(count(&["mutate", "NetworkPolicy", "CREATE", "denied"]), 0);
        assert_eq!(m.findings.with_label_values(&[rule, "warn"]).get(), 6);
        let histogram = m.duration.with_label_values(&["validate"]);
        assert_eq!(histogram.get_sample_count(), 4);
        // the text a scrape reads
        let text = m.render();
        assert!(text.contains(
            r#"netpol_guard_admission_requests_total{decision="denied",endpoint="validate",kind="NetworkPolicy",operation="CREATE"} 3"#
        ), "{text}");
    }
}
