//! Names that say the opposite of what the policy does. NetworkPolicy has no deny rules:
//! every rule allows. A policy called "deny-…" with allow rules usually means the author
//! expected the rules to block the peers they list.

use super::Context;
use super::{Check, Hit, Rule, Severity};
use crate::netpol::policy::{Direction, Subject};

pub(super) const MISLEADING_DENY_NAME: Rule = Rule {
    id: "misleading-deny-name",
    default_severity: Severity::Warn,
    summary: "The policy's name says deny, but its rules allow traffic (NetworkPolicy rules only ever allow).",
    check: Check::Policy(misleading),
};

/// Words that make a deny name describe a complement ("deny-from-other-namespaces",
/// "deny-all-except-web", "deny-ingress-uncordoned"), which an allow rule implements
/// correctly.
const COMPLEMENT_WORDS: &[&str] = &[
    "other", "others", "except", "but", "than", "non", "not", "unless", "only", "external",
    "outside", "foreign",
];

/// Whether a word names a complement: a complement word, or a negated one (un-, non-).
fn is_complement(word: &str) -> bool {
    COMPLEMENT_WORDS.contains(&word)
        || (word.len() > 4 && (word.starts_with("un") || word.starts_with("non")))
}

/// The direction a word names, if any.
fn direction_word(word: &str) -> Option<Direction> {
    match word {
        "ingress" | "inbound" => Some(Direction::Ingress),
        "egress" | "outbound" => Some(Direction::Egress),
        _ => None,
    }
}

/// What a name says is denied: the directions its "deny" part names (both when it names
/// none), or nothing when it says no deny or denies a complement. "allow-egress-deny-
/// ingress" denies ingress only; the egress rules are what its allow part promised.
fn denied_directions(name: &str) -> Vec<Direction> {
    let words: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(str::to_ascii_lowercase)
        .collect();
    let Some(at) = words.iter().position(|w| w == "deny") else {
        return Vec::new();
    };
    if words.iter().any(|w| is_complement(w)) {
        return Vec::new();
    }
    // the deny part runs to the next "allow" (or the end)
    let part: Vec<&String> = words[at + 1..]
        .iter()
        .take_while(|w| w.as_str() != "allow")
        .collect();
    let named: Vec<Direction> = part.iter().filter_map(|w| direction_word(w)).collect();
    let allowed: Vec<Direction> = words
        .iter()
        .enumerate()
        .filter(|(i, w)| w.as_str() == "allow" && words.get(i + 1).is_some())
        .filter_map(|(i, _)| direction_word(&words[i + 1]))
        .collect();
    let mut dirs = if named.is_empty() {
        Direction::BOTH.to_vec()
    } else {
        named
    };
    dirs.retain(|d| !allowed.contains(d));
    dirs.dedup();
    dirs
}

fn misleading(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let denied = denied_directions(subject.name);
    // The DNS allowance that accompanies a deny-egress policy is support traffic, not the
    // policy's subject.
    let allowing: Vec<String> = denied
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
                // both directions named correctly, and complements
                (
                    "metadata: {name: allow-egress-deny-ingress}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress], ingress: [], egress: [{}]}",
                    &[],
                ),
                (
                    "metadata: {name: deny-ingress-uncordoned}\nspec: {podSelector: {}, ingress: [{from: [{podSelector: {matchLabels: {cordoned: 'false'}}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: deny-all-but-monitoring}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: deny-from-nonprod}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {env: prod}}}]}]}",
                    &[],
                ),
                // the deny part names ingress: only ingress rules contradict it, never the
                // egress its allow part promised
                (
                    "metadata: {name: deny-ingress-allow-egress}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{from: [{podSelector: {}}]}], egress: [{}]}",
                    &["spec.ingress[0]"],
                ),
                (
                    "metadata: {name: deny-egress}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{}], egress: [{to: [{podSelector: {}}]}]}",
                    &["spec.egress[0]"],
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
