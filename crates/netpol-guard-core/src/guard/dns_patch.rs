//! The DNS allowance as a pure JSON patch: what the mutating webhook returns and what
//! `check --fix` applies.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use serde_json::{Value, json};

use crate::netpol::policy::Subject;
use crate::rules::Context;
use crate::rules::dns::needs_dns_allowance;

/// Annotation marking an object that netpol-guard changed.
pub const INJECTED_ANNOTATION: &str = "netpol-guard.io/injected";

/// The patch that appends the DNS allowance to a policy that restricts egress without it,
/// judged in a context (no patch when a covering policy already allows DNS). `None` when
/// nothing is missing, so applying it twice changes nothing.
pub fn dns_allowance_patch_in(ctx: &Context<'_>, subject: &Subject<'_>) -> Option<Patch> {
    if !needs_dns_allowance(ctx, subject) {
        return None;
    }
    let rule = serde_json::to_value(ctx.dns.allowance_rule()).ok()?;
    let policy = subject.policy;
    let mut ops = Vec::new();
    if policy.spec.is_none() {
        // policies without spec never isolate egress, but stay total
        ops.push(add(&["spec"], json!({ "egress": [rule] })));
    } else if policy.spec.as_ref().is_some_and(|s| s.egress.is_some()) {
        ops.push(add(&["spec", "egress", "-"], rule));
    } else {
        ops.push(add(&["spec", "egress"], Value::Array(vec![rule])));
    }
    if policy.metadata.annotations.is_some() {
        ops.push(add(
            &["metadata", "annotations", INJECTED_ANNOTATION],
            json!("dns"),
        ));
    } else {
        ops.push(add(
            &["metadata", "annotations"],
            json!({ INJECTED_ANNOTATION: "dns" }),
        ));
    }
    Some(Patch(ops))
}

fn add(tokens: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(tokens.iter().copied()),
        value,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    use super::*;
    use crate::guard::settings::Config;
    use crate::netpol::cluster::Inventory;
    use crate::netpol::policy::DEFAULT_NAMESPACE;

    /// The patch that appends the DNS allowance to a policy that lacks it, judged on the
    /// policy alone. `None` when nothing is missing (so the function is idempotent).
    fn dns_allowance_patch(policy: &NetworkPolicy, config: &Config) -> Option<Patch> {
        let inventory = Inventory::new();
        let ctx = config.rule_context(&inventory);
        dns_allowance_patch_in(&ctx, &Subject::new(policy, DEFAULT_NAMESPACE))
    }

    use crate::netpol::policy::tests::policy;

    fn apply(p: &NetworkPolicy, patch: &Patch) -> NetworkPolicy {
        let mut doc = serde_json::to_value(p).expect("serialize");
        json_patch::patch(&mut doc, patch).expect("patch applies");
        serde_json::from_value(doc).expect("still a NetworkPolicy")
    }

    #[test]
    fn patch_fixes_and_is_idempotent() {
        let config = Config::default();
        let cases = [
            "metadata: {name: p}\nspec: {podSelector: {}, policyTypes: [Egress]}",
            "metadata: {name: p, annotations: {team: a}}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress], egress: []}",
            "metadata: {name: p}\nspec: {podSelector: {matchLabels: {app: web}}, egress: [{to: [{podSelector: {}}]}]}",
            // the seeds' broken DNS rule on `name: kube-system`
            "metadata: {name: p}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {name: kube-system}}}], ports: [{port: 53, protocol: UDP}]}]}",
        ];
        for yaml in cases {
            let p = policy(yaml);
            let patch = dns_allowance_patch(&p, &config).expect("patch needed");
            let fixed = apply(&p, &patch);
            let egress = fixed
                .spec
                .as_ref()
                .and_then(|s| s.egress.as_ref())
                .expect("egress");
            let before = p
                .spec
                .as_ref()
                .and_then(|s| s.egress.as_ref())
                .map_or(0, Vec::len);
            assert_eq!(egress.len(), before + 1, "{yaml}");
            let last = serde_json::to_value(egress.last()).expect("json");
            assert_eq!(
                last,
                json!({
                    "to": [{
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}
                    }],
                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
                }),
                "{yaml}"
            );
            let annotations = fixed.metadata.annotations.as_ref().expect("annotations");
            assert_eq!(
                annotations.get(INJECTED_ANNOTATION).map(String::as_str),
                Some("dns")
            );
            assert_eq!(
                p.metadata.annotations.as_ref().map_or(0, |a| a.len()) + 1,
                annotations.len()
            );
            assert!(
                dns_allowance_patch(&fixed, &config).is_none(),
                "not idempotent: {yaml}"
            );
        }
    }

    #[test]
    fn no_patch_where_nothing_is_missing() {
        let config = Config::default();
        for yaml in [
            "metadata: {name: p}\nspec: {podSelector: {}, policyTypes: [Ingress]}",
            "metadata: {name: p}\nspec: {podSelector: {}, egress: [{}]}",
            "metadata: {name: p, annotations: {netpol-guard.io/dns: skip}}\nspec: {podSelector: {}, policyTypes: [Egress]}",
        ] {
            assert!(
                dns_allowance_patch(&policy(yaml), &config).is_none(),
                "{yaml}"
            );
        }
    }

    #[test]
    fn node_local_dns_addresses_are_injected() {
        let config = Config::from_yaml("dns:\n  ips: [169.254.20.10]\n").expect("config");
        let p = policy("metadata: {name: p}\nspec: {podSelector: {}, policyTypes: [Egress]}");
        let fixed = apply(&p, &dns_allowance_patch(&p, &config).expect("patch"));
        let to = serde_json::to_value(&fixed.spec.expect("spec").egress.expect("egress")[0].to)
            .expect("json");
        assert_eq!(to[1], json!({"ipBlock": {"cidr": "169.254.20.10/32"}}));
    }
}
