//! Rules Kubernetes accepts and then ignores because `policyTypes` leaves their direction out.

use super::Context;
use super::{Check, Hit, Rule, Severity};
use crate::netpol::policy::{Direction, Subject};

pub(super) const EGRESS_RULES_IGNORED: Rule = Rule {
    id: "egress-rules-ignored",
    default_severity: Severity::Deny,
    summary: "`policyTypes` leaves out Egress, so the `egress` rules are silently ignored.",
    check: Check::Policy(egress),
};

pub(super) const INGRESS_RULES_IGNORED: Rule = Rule {
    id: "ingress-rules-ignored",
    default_severity: Severity::Deny,
    summary: "`policyTypes` leaves out Ingress, so the `ingress` rules are silently ignored.",
    check: Check::Policy(ingress),
};

fn egress(_: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    ignored(subject, Direction::Egress)
}

fn ingress(_: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    ignored(subject, Direction::Ingress)
}

fn ignored(subject: &Subject<'_>, direction: Direction) -> Vec<Hit> {
    let rules = subject.written_rules(direction);
    // Only a written policyTypes can leave a direction out; the default adds Egress itself.
    if !subject.types.explicit || subject.types.has(direction) || rules.is_empty() {
        return Vec::new();
    }
    let types = subject
        .spec
        .policy_types
        .as_deref()
        .unwrap_or_default()
        .join(", ");
    vec![Hit::new(
        format!("spec.{}", direction.field()),
        format!(
            "spec.policyTypes is [{types}] without {}, so Kubernetes ignores the {} {} rule(s) here",
            direction.policy_type(),
            rules.len(),
            direction.field()
        ),
        format!(
            "add {} to spec.policyTypes (policyTypes: [Ingress, Egress]), or delete spec.{}",
            direction.policy_type(),
            direction.field()
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::table;

    #[test]
    fn egress_ignored_table() {
        table(
            &EGRESS_RULES_IGNORED,
            &[
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, policyTypes: [Ingress], egress: [{ports: [{port: 53, protocol: UDP}]}]}",
                    &["spec.egress"],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, policyTypes: [Ingress], egress: [{}]}",
                    &["spec.egress"],
                ),
                // implicit policyTypes: egress rules make it [Ingress, Egress]
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, egress: [{}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, policyTypes: [], egress: [{}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress], egress: [{}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, policyTypes: [Ingress], egress: []}",
                    &[],
                ),
            ],
        );
    }

    #[test]
    fn ingress_ignored_table() {
        table(
            &INGRESS_RULES_IGNORED,
            &[
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, policyTypes: [Egress], ingress: [{from: [{podSelector: {}}]}]}",
                    &["spec.ingress"],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, ingress: [{}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, policyTypes: [Egress]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{}]}",
                    &[],
                ),
            ],
        );
    }
}
