//! Names that say the opposite of what the policy does. NetworkPolicy has no deny rules:
//! every rule allows. A policy called "deny-…" with allow rules usually means the author
//! expected the rules to block the peers they list.

use super::Context;
use super::{Check, Hit, Rule, Severity};
use crate::netpol::policy::{Direction, Subject};

pub const MISLEADING_DENY_NAME: Rule = Rule {
    id: "misleading-deny-name",
    default_severity: Severity::Warn,
    summary: "The policy's name says deny, but its rules allow traffic (NetworkPolicy rules only ever allow).",
    check: Check::Policy(misleading),
};

/// Words that make a deny name describe a complement ("deny-from-other-namespaces",
/// "deny-all-except-web"), which an allow rule implements correctly.
const COMPLEMENT_WORDS: &[&str] = &[
    "other", "others", "except", "but", "non", "not", "unless", "only", "external",
];

fn misleading(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let words: Vec<String> = subject
        .name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(str::to_ascii_lowercase)
        .collect();
    if !words.iter().any(|w| w == "deny")
        || words.iter().any(|w| COMPLEMENT_WORDS.contains(&w.as_str()))
    {
        return Vec::new();
    }
    // The DNS allowance that accompanies a deny-egress policy is support traffic, not the
    // policy's subject.
    let allowing: Vec<String> = Direction::BOTH
        .into_iter()
        .flat_map(|d| subject.rules(d))
        .filter(|r| !(r.direction == Direction::Egress && ctx.dns.is_dns_only_rule(r)))
        .map(|r| r.path())
        .collect();
    let Some(first) = allowing.first() else {
        return Vec::new();
    };
    vec![Hit::new(
        first.clone(),
        format!(
            "the name {:?} says deny, but {} allow traffic: NetworkPolicy rules only ever allow, \
             they never block the peers they list",
            subject.name,
            allowing.join(", ")
        ),
        "rename the policy after what it allows (e.g. allow-…), or, to block some peers, allow \
         everyone else (e.g. a podSelector with matchExpressions NotIn)",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::table;

    #[test]
    fn misleading_deny_name_table() {
        table(
            &MISLEADING_DENY_NAME,
            &[
                // the seeds' "Deny Traffic from Certain Pods": it allows app=test
                (
                    "metadata: {name: deny-from-certain-pods}\nspec: {podSelector: {matchLabels: {app: production}}, ingress: [{from: [{podSelector: {matchLabels: {app: test}}}]}], policyTypes: [Ingress]}",
                    &["spec.ingress[0]"],
                ),
                (
                    "metadata: {name: deny-all}\nspec: {podSelector: {}, ingress: [{}]}",
                    &["spec.ingress[0]"],
                ),
                (
                    "metadata: {name: web_DENY_egress}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}]}",
                    &["spec.egress[0]"],
                ),
                // must not fire
                (
                    "metadata: {name: web-deny-all}\nspec: {podSelector: {matchLabels: {app: web}}}",
                    &[],
                ),
                (
                    "metadata: {name: deny-from-other-namespaces}\nspec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: allow-web}\nspec: {podSelector: {}, ingress: [{}]}",
                    &[],
                ),
                (
                    "metadata: {name: denylist}\nspec: {podSelector: {}, ingress: [{}]}",
                    &[],
                ),
                // a deny-egress policy that keeps DNS working
                (
                    "metadata: {name: foo-deny-egress}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}]}",
                    &[],
                ),
                // ignored rules allow nothing
                (
                    "metadata: {name: deny-egress}\nspec: {podSelector: {}, policyTypes: [Ingress], egress: [{}]}",
                    &[],
                ),
            ],
        );
    }
}
