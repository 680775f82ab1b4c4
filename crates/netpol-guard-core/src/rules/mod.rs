//! The rule catalog and the engine that runs it.
//!
//! A rule is a small named unit: a stable kebab-case id, a default severity and a pure
//! function from a policy (in its [`Context`]) to hits. The engine attaches the configured
//! severity, drops rules that are off, and orders findings by catalog order.

mod context;
pub mod dns;
mod exposure;
mod ignored;
mod labels;
pub mod layers;
mod naming;
mod protected;
pub mod suppress;
mod validity;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::netpol::layers::LayerPolicy;
use crate::netpol::policy::Subject;

pub use context::Context;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The object is rejected (the webhook) or the check fails (exit 1).
    Deny,
    /// The object is admitted with a warning.
    Warn,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Warn => "warn",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configured rule level: a severity, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Deny,
    Warn,
    Off,
}

impl From<Severity> for Level {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Deny => Level::Deny,
            Severity::Warn => Level::Warn,
        }
    }
}

/// The level a rule runs at: the configured override, or the rule's default.
pub fn level(levels: &BTreeMap<String, Level>, rule: &Rule) -> Level {
    levels
        .get(rule.id)
        .copied()
        .unwrap_or(rule.default_severity.into())
}

/// What a rule reports: where, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The field, e.g. `spec.egress[1].to[0]`.
    pub path: String,
    /// One sentence saying what is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
    /// Set when the problem is real only if a fact the guard cannot see holds (pod IPs,
    /// the CNI): the finding is then at most a warning, and nothing is mutated for it.
    pub condition: Option<String>,
}

impl Hit {
    pub fn new(
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            fix: fix.into(),
            condition: None,
        }
    }

    /// A hit that holds only under `condition`.
    pub fn depends(mut self, condition: impl Into<String>) -> Self {
        self.condition = Some(condition.into());
        self
    }
}

/// A hit with its rule id and effective severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub path: String,
    pub message: String,
    pub fix: String,
    /// The unseen fact the finding depends on (then it is at most a warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// A rule of the catalog.
#[derive(Debug)]
pub struct Rule {
    /// Stable, documented id.
    pub id: &'static str,
    pub default_severity: Severity,
    /// One line for the catalog table.
    pub summary: &'static str,
    pub check: Check,
}

/// What a rule judges.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// A NetworkPolicy: `check`, the webhook and the controller all run this function.
    Policy(fn(&Context<'_>, &Subject<'_>) -> Vec<Hit>),
    /// An object of a policy layer (AdminNetworkPolicy, Cilium, ...), judged among the
    /// layers the context knows: `check` and the webhook run it.
    Layer(fn(&Context<'_>, &LayerPolicy) -> Vec<Hit>),
    /// An admission request the guard decides itself (writes to its companion policies,
    /// namespace labels). Listed here so that its id is documented, counted and reported
    /// like the others. `configurable: false` means the configuration may not change its
    /// level: switching it off would let a tenant exempt itself from the guard.
    Admission { configurable: bool },
}

impl Rule {
    /// Whether the configuration may override this rule's level.
    pub fn configurable(&self) -> bool {
        match self.check {
            Check::Policy(_) | Check::Layer(_) => true,
            Check::Admission { configurable } => configurable,
        }
    }

    /// What the rule applies to, for the catalog listing.
    pub fn applies_to(&self) -> &'static str {
        match self.check {
            Check::Policy(_) => "NetworkPolicy",
            Check::Layer(_) => "policy layers",
            Check::Admission { .. } => "admission",
        }
    }
}

/// Writes to the companion policies by anyone but the guard and administrators.
pub const COMPANION_PROTECTED: Rule = Rule {
    id: "companion-protected",
    default_severity: Severity::Deny,
    summary: "A user who is not an administrator changes or deletes a companion policy the guard keeps.",
    check: Check::Admission {
        configurable: false,
    },
};

/// Setting, changing or removing the namespace opt-out label without being an administrator.
pub const EXEMPT_LABEL_PROTECTED: Rule = Rule {
    id: "namespace-exempt-label-protected",
    default_severity: Severity::Deny,
    summary: "A user who is not an administrator sets, changes or removes a namespace's opt-out label.",
    check: Check::Admission {
        configurable: false,
    },
};

/// The mutating webhook labels namespaces with what the guard does there.
pub const NAMESPACE_STAMP: Rule = Rule {
    id: "namespace-stamp",
    default_severity: Severity::Warn,
    summary: "Namespaces are labelled netpol-guard.io/companions: enabled|exempt by the mutating webhook (off: not labelled).",
    check: Check::Admission { configurable: true },
};

/// Every rule, in the order findings are reported.
pub static CATALOG: &[Rule] = &[
    protected::DENY_ALL,
    dns::EGRESS_MISSING_DNS,
    ignored::EGRESS_RULES_IGNORED,
    ignored::INGRESS_RULES_IGNORED,
    validity::IPBLOCK_INVALID,
    validity::SELECTOR_INVALID,
    validity::PORT_INVALID,
    protected::ISOLATION,
    dns::DNS_TCP_MISSING,
    dns::DNS_PEER_OR_SPLIT,
    dns::DNS_PEER_TOO_BROAD,
    labels::NAMESPACE_SELECTOR_NAME_LABEL,
    labels::POD_SELECTOR_NAMESPACE_LABEL,
    labels::NAMESPACE_SELECTOR_MATCHES_NOTHING,
    naming::MISLEADING_DENY_NAME,
    exposure::EGRESS_TO_METADATA_ENDPOINT,
    exposure::INGRESS_FROM_ANYWHERE,
    exposure::ALLOW_ALL_RULE,
    suppress::IGNORE_INVALID,
    layers::LAYER_DENIES_DNS,
    layers::LAYER_DENIES_DNS_INGRESS,
    layers::LAYER_PROTECTED_NAMESPACE_DENY,
    layers::CILIUM_EGRESS_MISSING_DNS,
    layers::LAYER_DENIES_API_SERVER,
    layers::LAYER_PRIORITY_CONFLICT,
    layers::LAYER_PRIORITY_OUT_OF_RANGE,
    layers::LAYER_NETWORKS_MATCH_PODS,
    layers::CILIUM_FQDN_WITHOUT_DNS_PROXY,
    COMPANION_PROTECTED,
    EXEMPT_LABEL_PROTECTED,
    NAMESPACE_STAMP,
];

/// Looks a rule up by id.
pub fn find(id: &str) -> Option<&'static Rule> {
    CATALOG.iter().find(|r| r.id == id)
}

/// At most this many findings of one rule per policy; the rest are summed up in the last
/// one, so that a policy of 100k rules cannot make a response, a warning list, an audit
/// annotation or a log line of megabytes.
pub const MAX_FINDINGS_PER_RULE: usize = 10;

/// Keeps the first hits and sums up the rest in one more.
fn bounded(mut hits: Vec<Hit>) -> Vec<Hit> {
    if hits.len() <= MAX_FINDINGS_PER_RULE {
        return hits;
    }
    let more = hits.len() - (MAX_FINDINGS_PER_RULE - 1);
    let rest = hits.split_off(MAX_FINDINGS_PER_RULE - 1);
    let first = &rest[0];
    hits.push(Hit {
        path: first.path.clone(),
        message: format!(
            "{} (and {} more like it, from {} on)",
            first.message,
            more - 1,
            first.path
        ),
        fix: first.fix.clone(),
        condition: first.condition.clone(),
    });
    hits
}

/// Runs every enabled rule over one policy: the findings that stand (those the policy's
/// `netpol-guard.io/ignore` annotation acknowledged are left out; see
/// [`evaluate_all`] for them).
pub fn evaluate(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Finding> {
    evaluate_all(ctx, subject).0
}

/// Every finding of one policy: those that stand, and those its annotation acknowledged.
pub fn evaluate_all(
    ctx: &Context<'_>,
    subject: &Subject<'_>,
) -> (Vec<Finding>, Vec<suppress::Suppressed>) {
    suppress::split(subject, evaluate_every(ctx, subject))
}

fn evaluate_every(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Finding> {
    run_catalog(ctx, |check| match check {
        Check::Policy(check) => Some(check(ctx, subject)),
        _ => None,
    })
}

/// Runs every enabled layer rule over one object of a policy layer.
pub fn evaluate_layer(ctx: &Context<'_>, policy: &LayerPolicy) -> Vec<Finding> {
    run_catalog(ctx, |check| match check {
        Check::Layer(check) => Some(check(ctx, policy)),
        _ => None,
    })
}

/// The findings of the catalog's rules that `run` applies to (it answers `None` for the
/// others), at their configured levels.
fn run_catalog(ctx: &Context<'_>, run: impl Fn(Check) -> Option<Vec<Hit>>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for rule in CATALOG {
        let severity = match ctx.level(rule) {
            Level::Off => continue,
            Level::Deny => Severity::Deny,
            Level::Warn => Severity::Warn,
        };
        let Some(hits) = run(rule.check) else {
            continue;
        };
        findings.extend(bounded(hits).into_iter().map(|hit| Finding {
            rule: rule.id,
            // what depends on unseen facts is never refused
            severity: if hit.condition.is_some() {
                Severity::Warn
            } else {
                severity
            },
            path: hit.path,
            message: hit.message,
            fix: hit.fix,
            condition: hit.condition,
        }));
    }
    findings
}

#[cfg(test)]
pub(crate) mod testing {
    //! A small harness for the per-rule tables.
    use std::sync::Arc;

    use super::*;
    use crate::netpol::cluster::Inventory;
    use crate::netpol::dns::{DnsConfig, DnsTarget};
    use crate::netpol::ipblock::IpFamilies;
    use crate::netpol::policy::{DEFAULT_NAMESPACE, tests::policy};

    /// The settings a rule table runs with (the shipped defaults unless a test says).
    #[derive(Debug, Clone)]
    pub(crate) struct Setup {
        pub(crate) levels: BTreeMap<String, Level>,
        pub(crate) protected: Vec<String>,
        pub(crate) dns: DnsConfig,
        /// The cluster's IP families (IPv4 unless a case says).
        pub(crate) families: IpFamilies,
    }

    impl Default for Setup {
        fn default() -> Self {
            Self {
                levels: BTreeMap::new(),
                protected: ["kube-system", "kube-public", "kube-node-lease"]
                    .map(String::from)
                    .to_vec(),
                dns: DnsConfig::default(),
                families: IpFamilies::V4,
            }
        }
    }

    impl Setup {
        pub(crate) fn context<'a>(&'a self, inventory: &'a Inventory) -> Context<'a> {
            Context::new(
                &self.levels,
                &self.protected,
                inventory,
                Arc::new(DnsTarget::new(&self.dns, inventory)),
            )
        }
    }

    /// Runs one rule over `yaml` (a NetworkPolicy), with `others` (NetworkPolicies and
    /// Namespaces, as YAML documents) as the context. Returns the hits' paths.
    pub(crate) fn run(rule: &Rule, yaml: &str, others: &[&str]) -> Vec<Hit> {
        run_with(rule, yaml, others, &Setup::default())
    }

    pub(crate) fn run_with(rule: &Rule, yaml: &str, others: &[&str], config: &Setup) -> Vec<Hit> {
        let inventory = inventory_of(others, config.families);
        let ctx = config.context(&inventory);
        let p = policy(yaml);
        let subject = Subject::new(&p, DEFAULT_NAMESPACE);
        match rule.check {
            Check::Policy(check) => check(&ctx, &subject),
            Check::Layer(_) | Check::Admission { .. } => Vec::new(),
        }
    }

    /// Runs one layer rule over `yaml` (a layer object) among `others`.
    pub(crate) fn run_layer(rule: &Rule, yaml: &str, others: &[&str]) -> Vec<Hit> {
        let inventory = inventory_of(others, IpFamilies::V4);
        let setup = Setup::default();
        let ctx = setup.context(&inventory);
        let value: serde_json::Value = serde_yaml_ng::from_str(yaml).expect("layer yaml");
        let object = crate::netpol::layers::decode::layer(&value).expect("layer object");
        match rule.check {
            Check::Layer(check) => check(&ctx, &object),
            _ => Vec::new(),
        }
    }

    /// An inventory of `others` (NetworkPolicies, Namespaces, Pods and layer objects).
    pub(crate) fn inventory_of(others: &[&str], families: IpFamilies) -> Inventory {
        let mut inventory = Inventory::of_families(families);
        for doc in others {
            let value: serde_json::Value = serde_yaml_ng::from_str(doc).expect("context doc");
            if value["kind"] == "Pod" {
                let pod: k8s_openapi::api::core::v1::Pod =
                    serde_json::from_value(value).expect("pod");
                let ns = pod
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or(DEFAULT_NAMESPACE.into());
                let name = pod.metadata.name.clone().unwrap_or_default();
                inventory.insert_pod(&ns, &name, pod.metadata.labels.unwrap_or_default());
            } else if let Ok(layer) = crate::netpol::layers::decode::layer(&value) {
                inventory.layers_mut().insert(layer);
            } else if let Some(kind) = crate::netpol::layers::UnreadKind::of(
                value["apiVersion"].as_str().unwrap_or_default(),
                value["kind"].as_str().unwrap_or_default(),
            ) {
                inventory.layers_mut().insert_unread(
                    kind,
                    value["metadata"]["namespace"].as_str().unwrap_or_default(),
                    value["metadata"]["name"].as_str().unwrap_or_default(),
                );
            } else if value["kind"] == "Namespace" {
                let ns: k8s_openapi::api::core::v1::Namespace =
                    serde_json::from_value(value).expect("namespace");
                let name = ns.metadata.name.clone().unwrap_or_default();
                inventory.insert_namespace(&name, ns.metadata.labels.unwrap_or_default());
            } else {
                let p: k8s_openapi::api::networking::v1::NetworkPolicy =
                    serde_json::from_value(value).expect("policy");
                let ns = p
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or(DEFAULT_NAMESPACE.into());
                inventory.insert_policy(&ns, Arc::new(p));
            }
        }
        // namespaces given as context stand for the cluster's whole list
        if others.iter().any(|d| d.contains("kind: Namespace")) {
            inventory.mark_namespaces_complete();
        }
        // so do pods (as a synced pod cache knows them)
        if others.iter().any(|d| d.contains("kind: Pod")) {
            inventory.mark_pods_complete(true);
        }
        inventory
    }

    /// Whether the DNS injection would patch `yaml` in the context of `others`.
    pub(crate) fn needs_allowance(yaml: &str, others: &[&str]) -> bool {
        let inventory = inventory_of(others, IpFamilies::V4);
        let setup = Setup::default();
        let ctx = setup.context(&inventory);
        let p = policy(yaml);
        let subject = Subject::new(&p, DEFAULT_NAMESPACE);
        crate::rules::dns::needs_dns_allowance(&ctx, &subject)
    }

    /// Asserts a table of (policy yaml, expected hit paths).
    pub(crate) fn table(rule: &Rule, cases: &[(&str, &[&str])]) {
        table_with_context(rule, &[], cases);
    }

    pub(crate) fn table_with_context(rule: &Rule, others: &[&str], cases: &[(&str, &[&str])]) {
        for (i, (yaml, want)) in cases.iter().enumerate() {
            let hits = run(rule, yaml, others);
            let paths: Vec<&str> = hits.iter().map(|h| h.path.as_str()).collect();
            assert_eq!(
                &paths, want,
                "{} case {i}:\n{yaml}\nhits: {hits:#?}",
                rule.id
            );
            for h in &hits {
                assert!(!h.message.is_empty() && !h.fix.is_empty(), "{h:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_of_one_rule_are_bounded_and_summed_up() {
        let hits: Vec<Hit> = (0..130_000)
            .map(|i| Hit::new(format!("spec.ingress[{i}]"), "bad", "fix it"))
            .collect();
        let kept = bounded(hits);
        assert_eq!(kept.len(), MAX_FINDINGS_PER_RULE);
        let last = &kept[MAX_FINDINGS_PER_RULE - 1];
        assert_eq!(last.path, "spec.ingress[9]");
        assert!(
            last.message.contains("and 129990 more like it"),
            "{}",
            last.message
        );
        let few: Vec<Hit> = (0..3)
            .map(|i| Hit::new(format!("p{i}"), "m", "f"))
            .collect();
        assert_eq!(bounded(few).len(), 3);
    }

    #[test]
    fn catalog_ids_are_unique_kebab_case() {
        let mut ids: Vec<&str> = CATALOG.iter().map(|r| r.id).collect();
        for id in &ids {
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{id}"
            );
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CATALOG.len());
    }
}
