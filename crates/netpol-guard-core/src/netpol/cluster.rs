//! What is known of the cluster around a policy: the other NetworkPolicies and the
//! namespaces' labels. `check` fills it from the other manifests of its input; the webhook
//! fills it from a cache of the cluster.

use super::ipblock::IpFamilies;
use std::net::IpAddr;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use k8s_openapi::api::networking::v1::NetworkPolicy;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::layers::Layers;
use super::policy::Subject;
use super::ports::{NamedPort, Protocol};
use super::selector::{Labels, Selector};

pub use super::selector::NAMESPACE_NAME_LABEL;

/// What is known of a Service that may be the cluster's DNS.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceFacts {
    /// `spec.selector`: the labels of the Service's pods.
    pub selector: Labels,
    pub ports: Vec<ServicePort>,
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The Service port's name (EndpointSlice ports carry the same name).
    pub name: String,
    pub port: i32,
    pub protocol: Protocol,
    /// `targetPort` when it names a container port.
    pub target_name: Option<String>,
    /// `targetPort` when it is a number.
    pub target_number: Option<i32>,
}

/// What is known of one EndpointSlice of a Service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SliceFacts {
    /// The Service it belongs to (`kubernetes.io/service-name`), in the same namespace.
    pub service: String,
    /// The pods' ports, with their names.
    pub ports: Vec<NamedPort>,
    /// The addresses of its ready endpoints (the DNS pods' IPs).
    pub addresses: Vec<IpAddr>,
}

/// Known policies, namespaces and pods, by namespace.
///
/// The maps are persistent (structurally shared): the cluster cache applies each watch
/// event to its own copy and publishes a clone, which costs O(1) however big the cluster,
/// while admission keeps reading the previous snapshot.
#[derive(Debug, Default, Clone)]
pub struct Inventory {
    /// Policies of each namespace, sorted by name.
    policies: OrdMap<String, Arc<Vec<Arc<NetworkPolicy>>>>,
    namespaces: OrdMap<String, Arc<Labels>>,
    /// Namespace names by label key and value, so selector questions over thousands of
    /// namespaces look at the candidates only.
    by_label: OrdMap<String, OrdMap<String, OrdSet<String>>>,
    /// Pod labels by namespace and pod name (metadata only).
    pods: OrdMap<String, OrdMap<String, Arc<Labels>>>,
    /// Whether `namespaces` is every namespace of the cluster (a synced cache), not just
    /// the ones some manifests mention.
    namespaces_complete: bool,
    /// Whether `pods` is every pod of the cluster.
    pods_complete: bool,
    /// Namespaces being deleted.
    terminating: OrdSet<String>,
    /// DNS Service candidates and their EndpointSlices, by (namespace, name).
    services: OrdMap<(String, String), Arc<ServiceFacts>>,
    slices: OrdMap<(String, String), Arc<SliceFacts>>,
    /// The cluster's IP families (the `kubernetes` Service's `ipFamilies`, or
    /// `--ip-families` offline).
    ip_families: IpFamilies,
    /// The policy layers around NetworkPolicy (AdminNetworkPolicy, Cilium, ...).
    layers: Layers,
}

impl Inventory {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty inventory of a cluster of these IP families.
    pub fn of_families(families: IpFamilies) -> Self {
        Self {
            ip_families: families,
            ..Self::default()
        }
    }

    /// The known objects of the policy layers.
    pub fn layers(&self) -> &Layers {
        &self.layers
    }

    /// The policy layers, to record or forget objects.
    pub fn layers_mut(&mut self) -> &mut Layers {
        &mut self.layers
    }

    /// The cluster's IP families, as far as known.
    pub fn ip_families(&self) -> IpFamilies {
        self.ip_families
    }

    pub fn set_ip_families(&mut self, families: IpFamilies) {
        self.ip_families = families;
    }

    /// Records a policy as living in `namespace`, replacing a stored policy of the same
    /// name (unnamed ones, as `generateName` leaves them, are all kept).
    pub fn insert_policy(&mut self, namespace: &str, policy: Arc<NetworkPolicy>) {
        // in place unless a published snapshot shares the list (then copied once)
        let list = Arc::make_mut(self.policies.entry(namespace.to_string()).or_default());
        let name = policy.metadata.name.clone().unwrap_or_default();
        let at = list.partition_point(|p| p.metadata.name.as_deref().unwrap_or("") < name.as_str());
        match list.get(at) {
            Some(old) if !name.is_empty() && old.metadata.name.as_deref() == Some(&name) => {
                list[at] = policy;
            }
            _ => list.insert(at, policy),
        }
    }

    /// Forgets the policy `name` of `namespace`.
    pub fn remove_policy(&mut self, namespace: &str, name: &str) {
        let Some(list) = self.policies.get(namespace) else {
            return;
        };
        let kept: Vec<_> = list
            .iter()
            .filter(|p| p.metadata.name.as_deref() != Some(name))
            .cloned()
            .collect();
        if kept.is_empty() {
            self.policies.remove(namespace);
        } else if kept.len() != list.len() {
            self.policies.insert(namespace.to_string(), Arc::new(kept));
        }
    }

    /// Records a namespace; its `kubernetes.io/metadata.name` label is added as the API
    /// server does.
    pub fn insert_namespace(&mut self, name: &str, mut labels: Labels) {
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.to_string());
        if self.namespaces.get(name).is_some_and(|old| **old == labels) {
            return;
        }
        self.unindex_namespace(name);
        for (k, v) in &labels {
            self.by_label
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default()
                .insert(name.to_string());
        }
        self.namespaces.insert(name.to_string(), Arc::new(labels));
    }

    /// Forgets a namespace (its policies and pods go with their own delete events).
    pub fn remove_namespace(&mut self, name: &str) {
        self.unindex_namespace(name);
        self.namespaces.remove(name);
        self.terminating.remove(name);
    }

    /// Records whether a namespace is being deleted.
    pub fn mark_terminating(&mut self, name: &str, terminating: bool) {
        if terminating {
            self.terminating.insert(name.to_string());
        } else {
            self.terminating.remove(name);
        }
    }

    /// Whether a namespace is being deleted.
    pub fn is_terminating(&self, name: &str) -> bool {
        self.terminating.contains(name)
    }

    fn unindex_namespace(&mut self, name: &str) {
        let Some(old) = self.namespaces.get(name).cloned() else {
            return;
        };
        for (k, v) in old.iter() {
            let Some(values) = self.by_label.get_mut(k) else {
                continue;
            };
            if let Some(names) = values.get_mut(v) {
                names.remove(name);
                if names.is_empty() {
                    values.remove(v);
                }
            }
            if values.is_empty() {
                self.by_label.remove(k);
            }
        }
    }

    /// Records a pod's labels.
    pub fn insert_pod(&mut self, namespace: &str, name: &str, labels: Labels) {
        let pods = self.pods.entry(namespace.to_string()).or_default();
        if pods.get(name).is_some_and(|old| **old == labels) {
            return;
        }
        pods.insert(name.to_string(), Arc::new(labels));
    }

    /// Forgets a pod.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) {
        if let Some(pods) = self.pods.get_mut(namespace) {
            pods.remove(name);
            if pods.is_empty() {
                self.pods.remove(namespace);
            }
        }
    }

    /// Forgets every pod (before a relist refills them).
    pub fn clear_pods(&mut self) {
        self.pods = OrdMap::new();
    }

    /// Forgets every policy (before a relist refills them).
    pub fn clear_policies(&mut self) {
        self.policies = OrdMap::new();
    }

    /// Forgets every namespace (before a relist refills them).
    pub fn clear_namespaces(&mut self) {
        self.namespaces = OrdMap::new();
        self.by_label = OrdMap::new();
        self.terminating = OrdSet::new();
    }

    /// Declares the known pods to be all the cluster has.
    pub fn mark_pods_complete(&mut self, complete: bool) {
        self.pods_complete = complete;
    }

    /// Whether the known pods are all the cluster has (a synced pod cache): only then does
    /// "no pod is selected" mean something.
    pub fn knows_all_pods(&self) -> bool {
        self.pods_complete
    }

    /// The known pods of a namespace with their labels, by name.
    pub fn pods_in(&self, namespace: &str) -> impl Iterator<Item = (&str, &Labels)> {
        self.pods
            .get(namespace)
            .into_iter()
            .flat_map(|pods| pods.iter().map(|(n, l)| (n.as_str(), l.as_ref())))
    }

    /// How many pods are known.
    pub fn pod_count(&self) -> usize {
        self.pods.values().map(OrdMap::len).sum()
    }

    /// Records a Service.
    pub fn insert_service(&mut self, namespace: &str, name: &str, facts: ServiceFacts) {
        self.services
            .insert((namespace.into(), name.into()), Arc::new(facts));
    }

    /// Forgets a Service.
    pub fn remove_service(&mut self, namespace: &str, name: &str) {
        self.services.remove(&(namespace.into(), name.into()));
    }

    /// Records an EndpointSlice.
    pub fn insert_slice(&mut self, namespace: &str, name: &str, facts: SliceFacts) {
        self.slices
            .insert((namespace.into(), name.into()), Arc::new(facts));
    }

    /// Forgets an EndpointSlice.
    pub fn remove_slice(&mut self, namespace: &str, name: &str) {
        self.slices.remove(&(namespace.into(), name.into()));
    }

    /// Forgets every EndpointSlice of a Service (before a relist refills them).
    pub fn remove_slices_of(&mut self, namespace: &str, service: &str) {
        self.slices = (self.slices.iter())
            .filter(|((ns, _), s)| ns != namespace || s.service != service)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }

    /// A known Service with its known EndpointSlices.
    pub fn service(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<(&ServiceFacts, Vec<&SliceFacts>)> {
        let facts = self.services.get(&(namespace.into(), name.into()))?;
        let slices = self
            .slices
            .range((namespace.to_string(), String::new())..)
            .take_while(|((ns, _), _)| ns == namespace)
            .filter(|(_, s)| s.service == name)
            .map(|(_, s)| s.as_ref())
            .collect();
        Some((facts, slices))
    }

    /// The known namespaces whose labels include all of `labels`.
    pub fn namespaces_with(&self, labels: &Labels) -> Vec<(&str, &Labels)> {
        let Some((k, v)) = labels.iter().next() else {
            return self.namespaces().collect();
        };
        self.by_label
            .get(k)
            .and_then(|values| values.get(v))
            .into_iter()
            .flatten()
            .filter_map(|n| self.namespaces.get_key_value(n))
            .filter(|(_, l)| labels.iter().all(|(k, v)| l.get(k) == Some(v)))
            .map(|(n, l)| (n.as_str(), l.as_ref()))
            .collect()
    }

    /// How many policies are known.
    pub fn policy_count(&self) -> usize {
        self.policies.values().map(|l| l.len()).sum()
    }

    /// Whether some known namespace matches `selector` (an invalid selector matches none).
    /// With `matchLabels`, only the namespaces carrying its first pair are looked at.
    pub fn any_namespace_matches(&self, selector: &LabelSelector) -> bool {
        let Ok(parsed) = Selector::parse(selector) else {
            return false;
        };
        let candidates = |names: &OrdSet<String>| {
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
                .is_some_and(candidates),
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
        self.policies.get(namespace).map_or(&[], |l| l.as_slice())
    }

    /// The namespaces whose list of policies is not the very list they had in `before`:
    /// changed, new or gone. A list rebuilt with equal content (a relist) counts as changed,
    /// so callers compare what they care about; unchanged lists are shared between
    /// snapshots, so this costs one pointer comparison per namespace.
    pub fn namespaces_with_other_policies<'s>(
        &'s self,
        before: &'s Inventory,
    ) -> impl Iterator<Item = &'s str> + 's {
        let changed = self.policies.iter().filter(move |(ns, list)| {
            before
                .policies
                .get(*ns)
                .is_none_or(|old| !Arc::ptr_eq(old, list))
        });
        let gone = before
            .policies
            .keys()
            .filter(move |ns| !self.policies.contains_key(*ns));
        changed
            .map(|(ns, _)| ns.as_str())
            .chain(gone.map(String::as_str))
    }

    /// The known policies of a namespace, with the namespace's name as stored.
    pub fn policies_with_namespace(
        &self,
        namespace: &str,
    ) -> Option<(&str, &[Arc<NetworkPolicy>])> {
        self.policies
            .get_key_value(namespace)
            .map(|(n, l)| (n.as_str(), l.as_slice()))
    }

    /// The known labels of a namespace.
    pub fn namespace_labels(&self, namespace: &str) -> Option<&Labels> {
        self.namespaces.get(namespace).map(AsRef::as_ref)
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
        self.namespaces
            .iter()
            .map(|(n, l)| (n.as_str(), l.as_ref()))
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
