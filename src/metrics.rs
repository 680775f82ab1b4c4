//! Prometheus metrics: one struct, registered into an explicit registry that is passed
//! around in state. Label values come from small fixed sets, never from object names.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::rules::CATALOG;

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
    /// 1 once the cluster cache has listed NetworkPolicies and Namespaces.
    pub cache_synced: IntGauge,
}

/// Results of a namespace reconcile: companions applied (created or restored), already as
/// wanted, removed (exempt namespace or disabled companion), namespace skipped (protected,
/// the guard's own, terminating), or failed.
pub const RECONCILE_RESULTS: &[&str] = &["applied", "unchanged", "removed", "skipped", "error"];

/// Admission latency buckets, 100 µs to 1 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "netpol_guard_admission_requests_total",
                "Admission reviews answered, by endpoint, kind, operation and decision.",
            ),
            &["endpoint", "kind", "operation", "decision"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "netpol_guard_admission_duration_seconds",
                "Time from request to response, by endpoint.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["endpoint"],
        )?;
        let findings = IntCounterVec::new(
            Opts::new(
                "netpol_guard_rule_findings_total",
                "Findings reported by validating reviews, by rule and severity.",
            ),
            &["rule", "severity"],
        )?;
        let tls_expiry = Gauge::new(
            "netpol_guard_tls_certificate_expiry_timestamp_seconds",
            "Unix time at which the serving certificate expires.",
        )?;
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "netpol_guard_tls_reloads_total",
                "Serving certificate reloads, by result.",
            ),
            &["result"],
        )?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "netpol_guard_config_reloads_total",
                "Rule configuration reloads, by result.",
            ),
            &["result"],
        )?;
        let companion_reconciles = IntCounterVec::new(
            Opts::new(
                "netpol_guard_companion_reconciles_total",
                "Namespace reconciles of the companions controller, by result.",
            ),
            &["result"],
        )?;
        let drift_corrections = IntCounter::new(
            "netpol_guard_companion_drift_corrections_total",
            "Companion policies found deleted or edited and restored.",
        )?;
        let leader = IntGauge::new(
            "netpol_guard_leader",
            "1 while this replica holds the lease and runs the companions controller.",
        )?;
        let cache_synced = IntGauge::new(
            "netpol_guard_cache_synced",
            "1 once the cluster cache (NetworkPolicies, Namespaces) has synced; admission uses it then.",
        )?;
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
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(findings.clone()))?;
        registry.register(Box::new(tls_expiry.clone()))?;
        registry.register(Box::new(tls_reloads.clone()))?;
        registry.register(Box::new(config_reloads.clone()))?;
        registry.register(Box::new(companion_reconciles.clone()))?;
        registry.register(Box::new(drift_corrections.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(cache_synced.clone()))?;
        registry.register(Box::new(build_info))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        // Start every bounded series at zero so dashboards see them before the first event.
        for result in ["success", "error"] {
            tls_reloads.with_label_values(&[result]);
            config_reloads.with_label_values(&[result]);
        }
        for result in RECONCILE_RESULTS {
            companion_reconciles.with_label_values(&[*result]);
        }
        for rule in CATALOG {
            findings.with_label_values(&[rule.id, rule.default_severity.as_str()]);
        }
        Ok(Self {
            registry,
            requests,
            duration,
            findings,
            tls_expiry,
            tls_reloads,
            config_reloads,
            companion_reconciles,
            drift_corrections,
            leader,
            cache_synced,
        })
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
