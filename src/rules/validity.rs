//! Fields the API server would reject: caught here so `check` fails in CI, not at apply.

use super::Context;
use super::{Check, Hit, Rule, Severity};
use crate::netpol::ipblock::Block;
use crate::netpol::policy::Subject;
use crate::netpol::selector::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub const IPBLOCK_INVALID: Rule = Rule {
    id: "ipblock-invalid",
    default_severity: Severity::Deny,
    summary: "An `ipBlock` has an unparsable CIDR, an `except` outside `cidr`, or mixed IP families.",
    check: Check::Policy(ipblock),
};

pub const SELECTOR_INVALID: Rule = Rule {
    id: "selector-invalid",
    default_severity: Severity::Deny,
    summary: "A label selector uses an unknown operator or values that do not fit its operator.",
    check: Check::Policy(selectors),
};

fn ipblock(_: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    for p in subject.written_peers() {
        let Some(block) = &p.peer.ip_block else {
            continue;
        };
        for err in Block::parse(block).err().into_iter().flatten() {
            hits.push(Hit::new(
                format!("{}.ipBlock", p.path()),
                err.to_string(),
                "write cidr as address/prefix and make each except a smaller range inside \
                 cidr, in the same IP family (e.g. cidr: 10.0.0.0/8, except: [10.1.0.0/16])",
            ));
        }
    }
    hits
}

fn check_selector(path: String, selector: &LabelSelector, hits: &mut Vec<Hit>) {
    for err in Selector::parse(selector).err().into_iter().flatten() {
        hits.push(Hit::new(
            format!("{path}.matchExpressions[{}]", err.index()),
            err.to_string(),
            "use In or NotIn with a non-empty values list, or Exists or DoesNotExist without values",
        ));
    }
}

fn selectors(_: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    if let Some(s) = &subject.spec.pod_selector {
        check_selector("spec.podSelector".into(), s, &mut hits);
    }
    for p in subject.written_peers() {
        if let Some(s) = &p.peer.namespace_selector {
            check_selector(format!("{}.namespaceSelector", p.path()), s, &mut hits);
        }
        if let Some(s) = &p.peer.pod_selector {
            check_selector(format!("{}.podSelector", p.path()), s, &mut hits);
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::table;

    #[test]
    fn ipblock_table() {
        table(
            &IPBLOCK_INVALID,
            &[
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 10.0.0.1}}]}]}",
                    &["spec.egress[0].to[0].ipBlock"],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}]}",
                    &["spec.ingress[0].from[1].ipBlock"],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16, '::/0']}}]}]}",
                    &[
                        "spec.ingress[0].from[0].ipBlock",
                        "spec.ingress[0].from[0].ipBlock",
                    ],
                ),
                // written under an ignored direction: still rejected by the API server
                (
                    "metadata: {name: a}\nspec: {policyTypes: [Ingress], egress: [{to: [{ipBlock: {cidr: nope}}]}]}",
                    &["spec.egress[0].to[0].ipBlock"],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 'fd00::/8'}}]}]}",
                    &[],
                ),
            ],
        );
    }

    #[test]
    fn selector_table() {
        table(
            &SELECTOR_INVALID,
            &[
                (
                    "metadata: {name: a}\nspec: {podSelector: {matchExpressions: [{key: app, operator: Equals, values: [x]}]}}",
                    &["spec.podSelector.matchExpressions[0]"],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: env, operator: In}]}, podSelector: {matchExpressions: [{key: a, operator: Exists, values: [b]}]}}]}]}",
                    &[
                        "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0]",
                        "spec.ingress[0].from[0].podSelector.matchExpressions[0]",
                    ],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [x]}]}}",
                    &[],
                ),
            ],
        );
    }
}
