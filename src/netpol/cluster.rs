//! What is known of the cluster around a policy: the other NetworkPolicies and the
//! namespaces' labels. `check` fills it from the other manifests of its input; the webhook
//! fills it from a cache of the cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::NetworkPolicy;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::policy::Subject;
use super::selector::{Labels, Selector};

/// The label Kubernetes puts on every namespace, holding its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Known policies by namespace, and known namespace labels.
#[derive(Debug, Default, Clone)]
pub struct Inventory {
    policies: BTreeMap<String, Vec<Arc<NetworkPolicy>>>,
    namespaces: BTreeMap<String, Labels>,
    /// Namespace names by label key and value, so selector questions over thousands of
    /// namespaces look at the candidates only.
    by_label: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Whether `namespaces` is every namespace of the cluster (a synced cache), not just
    /// the ones some manifests mention.
    namespaces_complete: bool,
}

impl Inventory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a policy as living in `namespace`.
    pub fn insert_policy(&mut self, namespace: &str, policy: Arc<NetworkPolicy>) {
        self.policies
            .entry(namespace.to_string())
            .or_default()
            .push(policy);
    }

    /// Records a namespace; its `kubernetes.io/metadata.name` label is added as the API
    /// server does.
    pub fn insert_namespace(&mut self, name: &str, mut labels: Labels) {
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.to_string());
        if let Some(old) = self.namespaces.get(name) {
            for (k, v) in old {
                if let Some(names) = self.by_label.get_mut(k).and_then(|m| m.get_mut(v)) {
                    names.retain(|n| n != name);
                }
            }
        }
        for (k, v) in &labels {
            self.by_label
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default()
                .push(name.to_string());
        }
        self.namespaces.insert(name.to_string(), labels);
    }

    /// Whether some known namespace matches `selector` (an invalid selector matches none).
    /// With `matchLabels`, only the namespaces carrying its first pair are looked at.
    pub fn any_namespace_matches(&self, selector: &LabelSelector) -> bool {
        let Ok(parsed) = Selector::parse(selector) else {
            return false;
        };
        let candidates = |names: &[String]| {
            names
                .iter()
                .filter_map(|n| self.namespaces.get(n))
                .any(|labels| parsed.matches(labels))
        };
        match selector.match_labels.as_ref().and_then(|m| m.iter().next()) {
            Some((k, v)) => self
                .by_label
                .get(k)
                .and_then(|values| values.get(v))
                .is_some_and(|names| candidates(names)),
            None => self
                .namespaces
                .values()
                .any(|labels| parsed.matches(labels)),
        }
    }

    /// Whether some known namespace carries label key `key` and matches `selector`.
    pub fn any_namespace_with_key_matches(&self, key: &str, selector: &LabelSelector) -> bool {
        let Ok(parsed) = Selector::parse(selector) else {
            return false;
        };
        self.by_label.get(key).is_some_and(|values| {
            values
                .values()
                .flatten()
                .filter_map(|n| self.namespaces.get(n))
                .any(|labels| parsed.matches(labels))
        })
    }

    /// How many namespaces are known.
    pub fn namespace_count(&self) -> usize {
        self.namespaces.len()
    }

    /// The known policies of a namespace.
    pub fn policies_in(&self, namespace: &str) -> &[Arc<NetworkPolicy>] {
        self.policies.get(namespace).map_or(&[], Vec::as_slice)
    }

    /// The known labels of a namespace.
    pub fn namespace_labels(&self, namespace: &str) -> Option<&Labels> {
        self.namespaces.get(namespace)
    }

    /// Declares the known namespaces to be all the cluster has.
    pub fn mark_namespaces_complete(&mut self) {
        self.namespaces_complete = true;
    }

    /// Whether the known namespaces are all the cluster has.
    pub fn knows_all_namespaces(&self) -> bool {
        self.namespaces_complete
    }

    /// The other known policies of `subject`'s namespace that provably select every pod it
    /// selects (their rules add to its own for those pods). The object under review
    /// replaces any stored version of itself, so a policy of the same name is left out.
    pub fn covering<'s>(&'s self, subject: &Subject<'_>) -> Vec<Subject<'s>> {
        let selector = subject.pod_selector();
        let Ok(narrow) = Selector::parse(&selector) else {
            return Vec::new();
        };
        let Some((namespace, policies)) = self.policies.get_key_value(subject.namespace) else {
            return Vec::new();
        };
        policies
            .iter()
            .map(|p| Subject::new(p, namespace))
            .filter(|other| subject.name.is_empty() || other.name != subject.name)
            .filter(|other| {
                let broad = other.pod_selector();
                Selector::parse(&broad).is_ok_and(|broad| narrow.implies(&broad))
            })
            .collect()
    }

    /// Every known namespace with its labels.
    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &Labels)> {
        self.namespaces.iter().map(|(n, l)| (n.as_str(), l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(yaml: &str) -> LabelSelector {
        serde_yaml_ng::from_str(yaml).expect("selector")
    }

    #[test]
    fn namespace_questions_agree_with_a_full_scan() {
        let mut inv = Inventory::new();
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        inv.insert_namespace("a", labels(&[("team", "x"), ("env", "prod")]));
        inv.insert_namespace("b", labels(&[("team", "x")]));
        inv.insert_namespace("c", labels(&[("name", "c")]));
        // relabelled: the index forgets the old labels
        inv.insert_namespace("b", labels(&[("team", "y")]));
        let cases = [
            "{matchLabels: {team: x}}",
            "{matchLabels: {team: x, env: dev}}",
            "{matchLabels: {team: y}}",
            "{matchLabels: {team: z}}",
            "{matchLabels: {kubernetes.io/metadata.name: c}}",
            "{matchExpressions: [{key: env, operator: DoesNotExist}]}",
            "{matchExpressions: [{key: team, operator: NotIn, values: [x, y]}]}",
            "{matchLabels: {team: x}, matchExpressions: [{key: env, operator: In, values: [prod]}]}",
            "{matchExpressions: [{key: team, operator: Bogus}]}",
            "{}",
        ];
        for yaml in cases {
            let s = selector(yaml);
            let scan = inv
                .namespaces()
                .any(|(_, l)| super::super::selector::matches(&s, l));
            assert_eq!(inv.any_namespace_matches(&s), scan, "{yaml}");
            let with_name = inv
                .namespaces()
                .any(|(_, l)| l.contains_key("name") && super::super::selector::matches(&s, l));
            assert_eq!(
                inv.any_namespace_with_key_matches("name", &s),
                with_name,
                "{yaml}"
            );
        }
        assert!(!inv.any_namespace_matches(&selector(
            "{matchLabels: {team: x}, matchExpressions: [{key: env, operator: In, values: [dev]}]}"
        )));
        assert_eq!(inv.namespace_count(), 3);
    }
}
