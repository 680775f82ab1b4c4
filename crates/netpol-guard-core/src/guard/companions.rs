//! The companion policies: what the guard keeps in every namespace that is not exempt, as
//! pure functions of the configuration. The controller ([`crate::kubernetes::controller`]) only applies
//! what these return; the webhook uses the same facts to protect them.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use super::settings::Config;
use super::{NAMESPACE_CLEANERS, Operation, Request, Snapshot, Verdict, object_name};
use crate::netpol::cluster::{Inventory, NAMESPACE_NAME_LABEL};
use crate::netpol::dns::DnsTarget;
use crate::netpol::selector::Labels;
use crate::rules::{COMPANION_PROTECTED, Finding, Severity};

/// The label every companion carries; the webhook protects objects that have it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value, which is also the field manager of the server-side applies.
pub const MANAGER: &str = "netpol-guard";
/// Annotation naming which companion an object is (`default-deny` or `allow-dns`).
pub const COMPANION_ANNOTATION: &str = "netpol-guard.io/companion";
/// The namespace label that opts a namespace out of the companion policies.
pub const EXEMPT_LABEL: &str = "netpol-guard.io/exempt";

/// Why a namespace gets no companions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exemption {
    /// Listed in `protectedNamespaces`: never touched at all.
    Protected,
    /// The guard's own namespace: never touched, so an outage cannot lock the guard out.
    Guard,
    /// Labelled `netpol-guard.io/exempt: "true"`: existing companions are removed.
    Label,
    /// Not matched by `companions.namespaceSelector`: existing companions are removed.
    NotSelected,
}

impl Exemption {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Protected => "protected",
            Self::Guard => "guard-namespace",
            Self::Label => "exempt-label",
            Self::NotSelected => "not-selected",
        }
    }
}

/// Whether (and why) namespace `name` with `labels` is exempt from companions.
pub fn exemption(
    config: &Config,
    guard_namespace: &str,
    name: &str,
    labels: Option<&Labels>,
) -> Option<Exemption> {
    if config.is_protected(name) {
        Some(Exemption::Protected)
    } else if name == guard_namespace {
        Some(Exemption::Guard)
    } else if labels
        .and_then(|l| l.get(EXEMPT_LABEL))
        .is_some_and(|v| v == "true")
    {
        Some(Exemption::Label)
    } else if let Some(selector) = &config.companions.namespace_selector {
        // the API server's own label, as on every stored namespace
        let mut all = labels.cloned().unwrap_or_default();
        all.insert(NAMESPACE_NAME_LABEL.to_string(), name.to_string());
        (!crate::netpol::selector::matches(selector, &all)).then_some(Exemption::NotSelected)
    } else {
        None
    }
}

/// Whether an object carries the companion label.
pub fn is_managed(labels: Option<&Labels>) -> bool {
    labels
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGER)
}

/// What the companion protection makes of a NetworkPolicy write.
#[derive(Debug, Clone, PartialEq)]
pub enum Protection {
    /// Not a protected write: judge it like any other policy.
    Review,
    /// The guard's own write: admitted as it is (no rules, no mutation); the controller
    /// applies exactly what [`desired`] returns.
    Admit,
    /// Someone else changes or deletes an existing companion.
    Refuse(Verdict),
}

/// Writes to the guard's companion policies. Others may not change or delete an existing
/// companion unless they are administrators, or kube-controller-manager cleaning up a
/// namespace (refusing it would leave the namespace stuck terminating).
pub fn protect(snapshot: &Snapshot, req: &Request<'_, NetworkPolicy>) -> Protection {
    let old_managed = req
        .old_metadata
        .is_some_and(|m| is_managed(m.labels.as_ref()));
    let new_managed = req
        .object
        .is_some_and(|o| is_managed(o.metadata.labels.as_ref()));
    if !old_managed && !new_managed {
        return Protection::Review;
    }
    if req.user == snapshot.identity.service_account {
        return Protection::Admit;
    }
    let changes = matches!(req.operation, Operation::Update | Operation::Delete);
    if !old_managed || !changes || snapshot.is_admin(req) || NAMESPACE_CLEANERS.contains(&req.user)
    {
        return Protection::Review;
    }
    let verb = if req.operation == Operation::Delete {
        "delete"
    } else {
        "change"
    };
    let finding = Finding {
        rule: COMPANION_PROTECTED.id,
        severity: Severity::Deny,
        condition: None,
        path: format!("metadata.labels.{MANAGED_BY_LABEL}"),
        message: format!(
            "{} is a companion policy netpol-guard keeps in every namespace; only members of \
             {} or the guard's service account may {verb} it",
            object_name(req.namespace, req.name),
            snapshot.config.admin_groups.join(", "),
        ),
        fix: format!(
            "add your own NetworkPolicy beside it (policies are additive), or ask a cluster \
             administrator to label the namespace {EXEMPT_LABEL}=true"
        ),
    };
    let object = object_name(req.namespace, req.name);
    Protection::Refuse(Verdict::from_findings(
        "NetworkPolicy",
        &object,
        (vec![finding], Vec::new()),
        "",
    ))
}

/// One companion slot of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot<'a> {
    /// `default-deny` or `allow-dns`.
    pub kind: &'static str,
    pub name: &'a str,
    pub enabled: bool,
}

/// Every companion the configuration knows, enabled or not (disabled ones are removed
/// where the guard created them).
pub fn slots(config: &Config) -> [Slot<'_>; 2] {
    let c = &config.companions;
    [
        Slot {
            kind: "allow-dns",
            name: &c.allow_dns.name,
            enabled: c.allow_dns.enabled,
        },
        Slot {
            kind: "default-deny",
            name: &c.default_deny.name,
            enabled: c.default_deny.enabled,
        },
    ]
}

/// The companions namespace `namespace` (uid `namespace_uid`) must carry, allow-DNS first
/// so that DNS is allowed before egress is denied.
pub fn desired(config: &Config, namespace: &str, namespace_uid: &str) -> Vec<NetworkPolicy> {
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        name: namespace.into(),
        uid: namespace_uid.into(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let object = |kind: &str, name: &str, spec: NetworkPolicySpec| NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_string(),
                MANAGER.to_string(),
            )])),
            annotations: Some(BTreeMap::from([(
                COMPANION_ANNOTATION.to_string(),
                kind.to_string(),
            )])),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
    };
    let c = &config.companions;
    let mut out = Vec::new();
    if c.allow_dns.enabled {
        // The DNS target as configured: the same rule the mutating webhook injects.
        let dns = DnsTarget::new(&config.dns, &Inventory::new());
        out.push(object(
            "allow-dns",
            &c.allow_dns.name,
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Egress".into()]),
                egress: Some(vec![dns.allowance_rule()]),
                ingress: None,
            },
        ));
    }
    if c.default_deny.enabled {
        let mut types = c.default_deny.policy_types.clone();
        types.sort();
        types.dedup();
        out.push(object(
            "default-deny",
            &c.default_deny.name,
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(types.iter().map(|t| t.as_str().to_string()).collect()),
                ingress: None,
                egress: None,
            },
        ));
    }
    out
}

/// Whether a companion is the default deny (by its annotation, or a spec with no rules).
pub fn is_default_deny(policy: &NetworkPolicy) -> bool {
    let kind = policy
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(COMPANION_ANNOTATION));
    match kind {
        Some(kind) => kind == "default-deny",
        None => policy
            .spec
            .as_ref()
            .is_some_and(|s| s.ingress.is_none() && s.egress.is_none()),
    }
}

/// Whether a stored companion has drifted from what the guard wants: another spec, or the
/// companion label gone.
pub fn drifted(desired: &NetworkPolicy, current: &NetworkPolicy) -> bool {
    let spec = |p: &NetworkPolicy| serde_json::to_value(&p.spec).unwrap_or_default();
    spec(desired) != spec(current) || !is_managed(current.metadata.labels.as_ref())
}

/// The guard's companions of `namespace` in a view of the cluster, by name: the
/// policies that carry the companion label.
pub fn managed_in<'i>(
    inventory: &'i Inventory,
    namespace: &str,
) -> impl Iterator<Item = &'i NetworkPolicy> + 'i {
    inventory
        .policies_in(namespace)
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| is_managed(p.metadata.labels.as_ref()))
}

/// The namespaces whose companions differ between two views of the cluster (one
/// created, deleted, edited or unlabelled): the ones the controller looks at again.
/// Other policies changing is no reason to.
pub fn changed_namespaces(before: &Inventory, after: &Inventory) -> Vec<String> {
    let identities = |inventory: &Inventory, namespace: &str| -> Vec<(String, String, String)> {
        managed_in(inventory, namespace)
            .map(|p| {
                let m = &p.metadata;
                let field = |f: &Option<String>| f.clone().unwrap_or_default();
                (field(&m.name), field(&m.uid), field(&m.resource_version))
            })
            .collect()
    };
    after
        .namespaces_with_other_policies(before)
        .filter(|ns| identities(before, ns) != identities(after, ns))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::policy::tests::policy;
    use crate::netpol::policy::{Direction, Subject};
    use crate::netpol::ports::Protocol;
    use crate::netpol::selector::tests::labels;
    use crate::rules;

    #[test]
    fn exemptions() {
        let config = Config::default();
        let exempt = labels(&[(EXEMPT_LABEL, "true")]);
        let not_true = labels(&[(EXEMPT_LABEL, "yes")]);
        let cases: &[(&str, Option<&Labels>, Option<Exemption>)] = &[
            ("kube-system", None, Some(Exemption::Protected)),
            ("kube-node-lease", Some(&exempt), Some(Exemption::Protected)),
            ("netpol-guard", None, Some(Exemption::Guard)),
            ("shop", Some(&exempt), Some(Exemption::Label)),
            ("shop", Some(&not_true), None),
            ("shop", None, None),
        ];
        for (name, labels, want) in cases {
            assert_eq!(
                exemption(&config, "netpol-guard", name, *labels),
                *want,
                "{name} {labels:?}"
            );
        }
    }

    #[test]
    fn namespace_selector_limits_the_rollout() {
        let config = Config::from_yaml(
            "companions:\n  namespaceSelector:\n    matchExpressions: [{key: team, operator: In, values: [shop, pay]}]\n",
        )
        .expect("valid");
        let shop = labels(&[("team", "shop")]);
        let other = labels(&[("team", "lab")]);
        let exempt = labels(&[("team", "shop"), (EXEMPT_LABEL, "true")]);
        assert_eq!(exemption(&config, "g", "a", Some(&shop)), None);
        assert_eq!(
            exemption(&config, "g", "b", Some(&other)),
            Some(Exemption::NotSelected)
        );
        assert_eq!(
            exemption(&config, "g", "c", None),
            Some(Exemption::NotSelected)
        );
        assert_eq!(
            exemption(&config, "g", "d", Some(&exempt)),
            Some(Exemption::Label)
        );
        assert_eq!(
            exemption(&config, "g", "kube-system", Some(&shop)),
            Some(Exemption::Protected)
        );
        // the name label the API server sets is selectable
        let by_name = Config::from_yaml(
            "companions:\n  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: a}}\n",
        )
        .expect("valid");
        assert_eq!(exemption(&by_name, "g", "a", None), None);
        assert_eq!(
            exemption(&by_name, "g", "b", None),
            Some(Exemption::NotSelected)
        );
    }

    #[test]
    fn default_companions_isolate_and_allow_dns() {
        let config = Config::default();
        let wanted = desired(&config, "shop", "uid-1");
        let names: Vec<_> = wanted
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            ["netpol-guard-allow-dns", "netpol-guard-default-deny"]
        );
        for p in &wanted {
            assert!(is_managed(p.metadata.labels.as_ref()));
            assert_eq!(p.metadata.namespace.as_deref(), Some("shop"));
            let owner = &p.metadata.owner_references.as_ref().expect("owner")[0];
            assert_eq!(
                (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
                ("Namespace", "shop", "uid-1")
            );
        }
        let deny = Subject::new(&wanted[1], "shop");
        assert!(deny.isolates(Direction::Ingress) && deny.isolates(Direction::Egress));
        assert!(deny.rules(Direction::Egress).is_empty());

        // the allow-DNS companion is the engine's own allowance: DNS reachable on both
        // protocols, and it covers the default-deny beside it
        let target = DnsTarget::new(&config.dns, &Inventory::new());
        let allow = Subject::new(&wanted[0], "shop");
        assert!(target.policy_allows(&allow, Protocol::Udp));
        assert!(target.policy_allows(&allow, Protocol::Tcp));
        assert!(!allow.isolates(Direction::Ingress));
        let mut inventory = Inventory::new();
        inventory.insert_policy("shop", std::sync::Arc::new(wanted[0].clone()));
        let ctx = config.rule_context(&inventory);
        let findings = rules::evaluate(&ctx, &deny);
        assert!(
            findings
                .iter()
                .all(|f| !f.rule.starts_with("egress-missing-dns")),
            "{findings:?}"
        );
        for p in &wanted {
            let findings = rules::evaluate(&ctx, &Subject::new(p, "shop"));
            assert!(
                findings.iter().all(|f| f.severity != rules::Severity::Deny),
                "{findings:?}"
            );
        }
    }

    #[test]
    fn configuration_shapes_the_companions() {
        let config = Config::from_yaml(
            "companions:\n  defaultDeny: {name: base-deny, policyTypes: [Ingress]}\n  allowDns: {enabled: false}\n",
        )
        .expect("valid");
        let wanted = desired(&config, "shop", "u");
        assert_eq!(wanted.len(), 1);
        assert_eq!(wanted[0].metadata.name.as_deref(), Some("base-deny"));
        let spec = wanted[0].spec.as_ref().expect("spec");
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
        let slots = slots(&config);
        assert!(
            slots
                .iter()
                .any(|s| s.name == "netpol-guard-allow-dns" && !s.enabled)
        );
    }

    #[test]
    fn drift_is_a_spec_change_or_a_lost_label() {
        let config = Config::default();
        let wanted = &desired(&config, "shop", "u")[1];
        assert!(!drifted(wanted, wanted));
        let mut edited = wanted.clone();
        if let Some(spec) = edited.spec.as_mut() {
            spec.policy_types = Some(vec!["Ingress".into()]);
        }
        assert!(drifted(wanted, &edited));
        let mut unlabelled = wanted.clone();
        unlabelled.metadata.labels = None;
        assert!(drifted(wanted, &unlabelled));
        // what the API server stores for the same spec (extra metadata) is not drift
        let stored = policy(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: netpol-guard-default-deny\n  namespace: shop\n  resourceVersion: \"7\"\n  labels: {app.kubernetes.io/managed-by: netpol-guard, extra: x}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n",
        );
        assert!(!drifted(wanted, &stored));
    }

    #[test]
    fn only_namespaces_whose_companions_moved_are_looked_at_again() {
        let config = Config::default();
        let mut base = Inventory::new();
        for ns in ["shop", "lab", "team"] {
            for wanted in desired(&config, ns, "u") {
                let name = wanted.metadata.name.clone().unwrap_or_default();
                base.insert_policy(ns, stored(ns, &name, "1", true));
            }
        }
        base.insert_policy("team", stored("team", "own", "1", false));
        type Change = fn(&mut Inventory);
        let cases: &[(&str, Change, &[&str])] = &[
            ("nothing", |_| {}, &[]),
            (
                "a companion deleted",
                |i| i.remove_policy("shop", "netpol-guard-default-deny"),
                &["shop"],
            ),
            (
                "a companion edited (new resourceVersion)",
                |i| i.insert_policy("lab", stored("lab", "netpol-guard-allow-dns", "2", true)),
                &["lab"],
            ),
            (
                "a companion unlabelled",
                |i| i.insert_policy("lab", stored("lab", "netpol-guard-allow-dns", "2", false)),
                &["lab"],
            ),
            (
                "another policy edited",
                |i| i.insert_policy("team", stored("team", "own", "2", false)),
                &[],
            ),
            (
                "a relist of the same objects",
                |i| {
                    let again: Vec<_> = ["shop", "lab", "team"]
                        .iter()
                        .flat_map(|ns| i.policies_in(ns).to_vec())
                        .collect();
                    i.clear_policies();
                    for p in again {
                        let ns = p.metadata.namespace.clone().unwrap_or_default();
                        i.insert_policy(&ns, p);
                    }
                },
                &[],
            ),
            (
                "a namespace's last companion gone",
                |i| {
                    i.remove_policy("shop", "netpol-guard-default-deny");
                    i.remove_policy("shop", "netpol-guard-allow-dns");
                },
                &["shop"],
            ),
        ];
        for (what, change, want) in cases {
            let mut after = base.clone();
            change(&mut after);
            let mut got = changed_namespaces(&base, &after);
            got.sort();
            assert_eq!(got, *want, "{what}");
        }
    }

    /// A policy as the API server stores it (a plain function, so the table's entries can
    /// be function pointers).
    fn stored(ns: &str, name: &str, rv: &str, managed: bool) -> std::sync::Arc<NetworkPolicy> {
        let labels = if managed {
            "{app.kubernetes.io/managed-by: netpol-guard}"
        } else {
            "{team: x}"
        };
        std::sync::Arc::new(policy(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\n  uid: u-{ns}-{name}\n  resourceVersion: \"{rv}\"\n  labels: {labels}\nspec:\n  podSelector: {{}}\n"
        )))
    }
}
