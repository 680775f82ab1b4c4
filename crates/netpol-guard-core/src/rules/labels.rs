//! Selectors on labels that the selected objects never carry.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::Context;
use super::{Check, Hit, Rule, Severity};
use crate::netpol::cluster::NAMESPACE_NAME_LABEL;
use crate::netpol::policy::{PeerView, Subject};
use crate::netpol::selector;

pub(super) const NAMESPACE_SELECTOR_NAME_LABEL: Rule = Rule {
    id: "namespace-selector-name-label",
    default_severity: Severity::Warn,
    summary: "A `namespaceSelector` uses the key `name`, which Kubernetes never sets on namespaces.",
    check: Check::Policy(name_label),
};

pub(super) const POD_SELECTOR_NAMESPACE_LABEL: Rule = Rule {
    id: "pod-selector-namespace-label",
    default_severity: Severity::Warn,
    summary: "A `podSelector` uses `kubernetes.io/metadata.name`, a namespace label pods do not carry.",
    check: Check::Policy(namespace_label_on_pods),
};

/// `matchLabels.KEY` or `matchExpressions[i]`.
fn key_path(key: &str, expression: Option<usize>) -> String {
    match expression {
        Some(i) => format!("matchExpressions[{i}]"),
        None => format!("matchLabels.{key}"),
    }
}

/// Every `namespaceSelector` written in the policy's rules, with its peer (whose path is
/// written only for a finding).
fn namespace_selectors<'s>(
    subject: &'s Subject<'_>,
) -> impl Iterator<Item = (PeerView<'s>, &'s LabelSelector)> {
    subject
        .written_peers()
        .filter_map(|p| Some((p, p.peer.namespace_selector.as_ref()?)))
}

/// Whether a selector uses the key `name`.
fn uses_name(selector: &LabelSelector) -> bool {
    selector::keys(selector).any(|(k, _)| k == "name")
}

fn name_label(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (peer, ns) in namespace_selectors(subject) {
        // If the cluster really labels namespaces with `name`, the selector works.
        if !uses_name(ns) || ctx.inventory.any_namespace_with_key_matches("name", ns) {
            continue;
        }
        for (key, expr) in selector::keys(ns).filter(|(k, _)| *k == "name") {
            let value = ns.match_labels.as_ref().and_then(|m| m.get(key));
            hits.push(Hit::new(
                format!("{}.namespaceSelector.{}", peer.path(), key_path(key, expr)),
                "Kubernetes never sets a `name` label on namespaces, so this selector \
                 matches no namespace unless someone labelled it by hand",
                match value {
                    Some(v) => format!("select the namespace with `{NAMESPACE_NAME_LABEL}: {v}`"),
                    None => format!("use the key `{NAMESPACE_NAME_LABEL}`, which the API server sets on every namespace"),
                },
            ));
        }
    }
    hits
}

pub(super) const NAMESPACE_SELECTOR_MATCHES_NOTHING: Rule = Rule {
    id: "namespace-selector-matches-nothing",
    default_severity: Severity::Warn,
    summary: "A `namespaceSelector` matches none of the cluster's namespaces (judged by the webhook, which knows them).",
    check: Check::Policy(matches_nothing),
};

fn matches_nothing(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    // Only a complete list of namespaces (the webhook's cluster cache) can show that a
    // selector matches none; manifests on disk are a partial view.
    if !ctx.inventory.knows_all_namespaces() {
        return Vec::new();
    }
    let mut hits = Vec::new();
    for (peer, ns) in namespace_selectors(subject) {
        // an invalid selector is `selector-invalid`'s finding, and the `name` label mistake
        // has its own rule and message
        if selector::Selector::parse(ns).is_err()
            || uses_name(ns)
            || ctx.inventory.any_namespace_matches(ns)
        {
            continue;
        }
        hits.push(Hit::new(
            format!("{}.namespaceSelector", peer.path()),
            format!(
                "no namespace of the cluster matches {} (of {}), so this peer allows nothing",
                selector::describe(ns),
                ctx.inventory.namespace_count()
            ),
            format!(
                "check the selector with `kubectl get namespaces -l '<selector>'`; every \
                 namespace carries `{NAMESPACE_NAME_LABEL}: <its name>`"
            ),
        ));
    }
    hits
}

fn check_pod_selector(path: impl Fn() -> String, sel: &LabelSelector, hits: &mut Vec<Hit>) {
    for (key, expr) in selector::keys(sel).filter(|(k, _)| *k == NAMESPACE_NAME_LABEL) {
        hits.push(Hit::new(
            format!("{}.{}", path(), key_path(key, expr)),
            format!("`{NAMESPACE_NAME_LABEL}` is a namespace label; pods do not carry it, so this podSelector matches no pod"),
            "select the namespace with a namespaceSelector on this label instead (in the same peer \
             as the podSelector, to mean: these pods in that namespace)",
        ));
    }
}

fn namespace_label_on_pods(_: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    if let Some(s) = &subject.spec.pod_selector {
        check_pod_selector(|| "spec.podSelector".into(), s, &mut hits);
    }
    for p in subject.written_peers() {
        if let Some(s) = &p.peer.pod_selector {
            check_pod_selector(|| format!("{}.podSelector", p.path()), s, &mut hits);
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{table, table_with_context};

    #[test]
    fn name_label_table() {
        table(
            &NAMESPACE_SELECTOR_NAME_LABEL,
            &[
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{namespaceSelector: {matchLabels: {name: kube-system}}}]}]}",
                    &["spec.egress[0].to[0].namespaceSelector.matchLabels.name"],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{podSelector: {}}, {namespaceSelector: {matchExpressions: [{key: name, operator: In, values: [prod]}]}}]}]}",
                    &["spec.ingress[0].from[1].namespaceSelector.matchExpressions[0]"],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]}]}",
                    &[],
                ),
                // `name` in a podSelector is a normal pod label
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{podSelector: {matchLabels: {name: web}}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{namespaceSelector: {matchLabels: {team: a}}}]}]}",
                    &[],
                ),
            ],
        );
    }

    #[test]
    fn name_label_is_fine_where_namespaces_carry_it() {
        let labelled = "kind: Namespace\nmetadata: {name: prod, labels: {name: prod}}";
        table_with_context(
            &NAMESPACE_SELECTOR_NAME_LABEL,
            &[labelled],
            &[
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{namespaceSelector: {matchLabels: {name: prod}}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{namespaceSelector: {matchLabels: {name: dev}}}]}]}",
                    &["spec.ingress[0].from[0].namespaceSelector.matchLabels.name"],
                ),
            ],
        );
    }

    #[test]
    fn matches_nothing_table() {
        let namespaces = [
            "kind: Namespace\nmetadata: {name: prod, labels: {team: shop, env: prod}}",
            "kind: Namespace\nmetadata: {name: dev, labels: {team: shop}}",
        ];
        table_with_context(
            &NAMESPACE_SELECTOR_MATCHES_NOTHING,
            &namespaces,
            &[
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{namespaceSelector: {matchLabels: {team: payments}}}]}]}",
                    &["spec.ingress[0].from[0].namespaceSelector"],
                ),
                // AND of two labels no namespace has together
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{podSelector: {}}, {namespaceSelector: {matchLabels: {env: dev, team: shop}}, podSelector: {matchLabels: {app: db}}}]}]}",
                    &["spec.egress[0].to[1].namespaceSelector"],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: team, operator: NotIn, values: [shop]}]}}]}]}",
                    &["spec.ingress[0].from[0].namespaceSelector"],
                ),
                // the label the API server sets on every namespace
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: dev}}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: env, operator: DoesNotExist}]}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{namespaceSelector: {}}]}]}",
                    &[],
                ),
                // `name` keys are namespace-selector-name-label's finding
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{namespaceSelector: {matchLabels: {name: prod}}}]}]}",
                    &[],
                ),
                // judged as written, like the other selector rules, even where policyTypes
                // makes the rule ignored (egress-rules-ignored reports that)
                (
                    "metadata: {name: a}\nspec: {policyTypes: [Ingress], egress: [{to: [{namespaceSelector: {matchLabels: {team: payments}}}]}]}",
                    &["spec.egress[0].to[0].namespaceSelector"],
                ),
            ],
        );
    }

    #[test]
    fn matches_nothing_needs_the_whole_namespace_list() {
        use crate::netpol::cluster::Inventory;
        use crate::netpol::policy::tests::policy;
        use crate::rules::testing::Setup;
        let p = policy(
            "metadata: {name: a}\nspec: {ingress: [{from: [{namespaceSelector: {matchLabels: {team: payments}}}]}]}",
        );
        let subject = Subject::new(&p, "default");
        let config = Setup::default();
        let mut inventory = Inventory::new();
        inventory.insert_namespace("prod", Default::default());
        // some namespaces known (manifests on disk): no verdict
        let ctx = config.context(&inventory);
        assert!(matches_nothing(&ctx, &subject).is_empty());
        inventory.mark_namespaces_complete();
        let ctx = config.context(&inventory);
        assert_eq!(matches_nothing(&ctx, &subject).len(), 1);
    }

    #[test]
    fn namespace_label_on_pods_table() {
        table(
            &POD_SELECTOR_NAMESPACE_LABEL,
            &[
                (
                    "metadata: {name: a}\nspec: {podSelector: {matchLabels: {kubernetes.io/metadata.name: default}}}",
                    &["spec.podSelector.matchLabels.kubernetes.io/metadata.name"],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{podSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [kube-system]}]}}]}]}",
                    &["spec.egress[0].to[0].podSelector.matchExpressions[0]"],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]}]}",
                    &[],
                ),
            ],
        );
    }
}
