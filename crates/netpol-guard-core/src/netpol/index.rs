//! The policies of a namespace, prepared once per analysis: each with its pod selector
//! parsed, and lookups that find the few policies whose selectors may match a pod, may
//! select every pod of another selector, or may overlap it, without judging every policy
//! of the namespace for every subject (which is quadratic in a namespace of thousands).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::cluster::Inventory;
use super::policy::Subject;
use super::selector::{Labels, Selector};

/// The selector of a policy without `spec.podSelector` (or without a spec): every pod.
static EVERY_POD: LabelSelector = LabelSelector {
    match_expressions: None,
    match_labels: None,
};

/// A stored policy with its parsed pod selector.
#[derive(Debug)]
pub struct Entry<'a> {
    pub subject: Subject<'a>,
    /// `None` when the selector is invalid (the API server refuses it; it selects nothing).
    pub selector: Option<Selector<'a>>,
    pub label_selector: &'a LabelSelector,
}

/// Positions of entries, keyed by the label their selector pins (`app=web`), so that a
/// question about labels or a selector visits only the entries that can answer yes.
#[derive(Debug, Default)]
pub struct Lookup {
    /// Entries whose selector pins no label: always candidates.
    unpinned: Vec<usize>,
    /// key → value → entries whose selector pins this label (the first it pins).
    pinned: HashMap<String, HashMap<String, Vec<usize>>>,
}

impl Lookup {
    /// Keys the entries at `positions` of `entries`; entries with an invalid selector are
    /// left out (they select nothing).
    pub fn new(entries: &[Entry<'_>], positions: impl IntoIterator<Item = usize>) -> Self {
        let mut lookup = Self::default();
        for i in positions {
            let Some(selector) = &entries[i].selector else {
                continue;
            };
            match selector.pins().first() {
                Some((key, value)) => lookup
                    .pinned
                    .entry(key.to_string())
                    .or_default()
                    .entry(value.to_string())
                    .or_default()
                    .push(i),
                None => lookup.unpinned.push(i),
            }
        }
        lookup
    }

    /// Entries that may select an object with these labels (a superset, in order).
    pub fn may_match(&self, labels: &Labels) -> Vec<usize> {
        let mut out = self.unpinned.clone();
        for (key, value) in labels {
            if let Some(list) = self.pinned.get(key).and_then(|v| v.get(value)) {
                out.extend(list);
            }
        }
        out.sort_unstable();
        out
    }

    /// Entries whose selectors `narrow` may imply (a superset, in order): one that pins
    /// `k=v` is implied only by a selector that pins `k=v` too (or selects nothing).
    pub fn may_be_implied_by(&self, narrow: &Selector<'_>) -> Vec<usize> {
        if narrow.selects_nothing() {
            return self.all();
        }
        let mut out = self.unpinned.clone();
        for (key, value) in narrow.pins() {
            if let Some(list) = self.pinned.get(key).and_then(|v| v.get(value)) {
                out.extend(list);
            }
        }
        out.sort_unstable();
        out
    }

    /// Entries that may select an object `own` selects too (a superset, in order): one
    /// that pins `k=v` is disjoint from a selector that pins `k` to another value.
    pub fn may_overlap(&self, own: &Selector<'_>) -> Vec<usize> {
        let pins: HashMap<&str, &str> = own.pins().into_iter().collect();
        let mut out = self.unpinned.clone();
        for (key, values) in &self.pinned {
            match pins.get(key.as_str()) {
                Some(value) => out.extend(values.get(*value).into_iter().flatten()),
                None => out.extend(values.values().flatten()),
            }
        }
        out.sort_unstable();
        out
    }

    fn all(&self) -> Vec<usize> {
        let mut out = self.unpinned.clone();
        out.extend(self.pinned.values().flat_map(|v| v.values().flatten()));
        out.sort_unstable();
        out
    }
}

/// The stored policies of one namespace, prepared.
#[derive(Debug)]
pub struct NamespacePolicies<'a> {
    pub entries: Vec<Entry<'a>>,
}

impl NamespacePolicies<'_> {
    /// The position of `subject`'s stored version, left out of what is asked about it (the
    /// object under review replaces it).
    pub fn is_itself(&self, i: usize, subject: &Subject<'_>) -> bool {
        !subject.name.is_empty() && self.entries[i].subject.name == subject.name
    }
}

/// Every namespace's policies of an inventory, prepared on first use and kept for the
/// analysis (one review, one `check` or audit run).
#[derive(Debug)]
pub struct PolicyIndex<'a> {
    inventory: &'a Inventory,
    namespaces: Mutex<HashMap<String, Arc<NamespacePolicies<'a>>>>,
}

impl<'a> PolicyIndex<'a> {
    pub fn new(inventory: &'a Inventory) -> Self {
        Self {
            inventory,
            namespaces: Mutex::new(HashMap::new()),
        }
    }

    pub fn inventory(&self) -> &'a Inventory {
        self.inventory
    }

    /// The stored policies of `namespace`.
    pub fn namespace(&self, namespace: &str) -> Arc<NamespacePolicies<'a>> {
        let mut map = self
            .namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = map.get(namespace) {
            return found.clone();
        }
        let inventory = self.inventory;
        let entries = inventory
            .policies_with_namespace(namespace)
            .map(|(ns, policies)| {
                policies
                    .iter()
                    .map(|p| {
                        let label_selector = p
                            .spec
                            .as_ref()
                            .and_then(|s| s.pod_selector.as_ref())
                            .unwrap_or(&EVERY_POD);
                        Entry {
                            subject: Subject::new(p, ns),
                            selector: Selector::parse(label_selector).ok(),
                            label_selector,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let prepared = Arc::new(NamespacePolicies { entries });
        map.insert(namespace.to_string(), prepared.clone());
        prepared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(selectors: &[&str]) -> Vec<LabelSelector> {
        selectors
            .iter()
            .map(|s| serde_yaml_ng::from_str(s).expect("selector"))
            .collect()
    }

    fn prepared(selectors: &[LabelSelector]) -> Vec<Entry<'_>> {
        static POLICY: std::sync::LazyLock<k8s_openapi::api::networking::v1::NetworkPolicy> =
            std::sync::LazyLock::new(Default::default);
        selectors
            .iter()
            .map(|s| Entry {
                subject: Subject::new(&POLICY, "ns"),
                selector: Selector::parse(s).ok(),
                label_selector: s,
            })
            .collect()
    }

    /// Every lookup answers a superset of the exact scan.
    #[test]
    fn lookups_never_miss_what_a_full_scan_finds() {
        let selectors = entries(&[
            "{}",
            "matchLabels: {app: web}",
            "matchLabels: {app: db, tier: back}",
            "matchExpressions: [{key: app, operator: In, values: [web, db]}]",
            "matchExpressions: [{key: app, operator: In, values: [web, db]}, {key: app, operator: NotIn, values: [db]}]",
            "matchExpressions: [{key: app, operator: Exists}]",
            "matchExpressions: [{key: app, operator: DoesNotExist}]",
            "matchLabels: {tier: back}",
            "matchExpressions: [{key: app, operator: In, values: [x]}, {key: app, operator: In, values: [y]}]",
            "matchExpressions: [{key: app, operator: Bogus}]",
        ]);
        let list = prepared(&selectors);
        let lookup = Lookup::new(&list, 0..list.len());
        let label_sets: Vec<Labels> = [
            vec![],
            vec![("app", "web")],
            vec![("app", "db"), ("tier", "back")],
            vec![("tier", "back")],
            vec![("app", "other")],
        ]
        .into_iter()
        .map(|l| {
            l.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect();
        for labels in &label_sets {
            let found = lookup.may_match(labels);
            for (i, e) in list.iter().enumerate() {
                if e.selector.as_ref().is_some_and(|s| s.matches(labels)) {
                    assert!(found.contains(&i), "{labels:?} matches entry {i}");
                }
            }
        }
        for own in list.iter().filter_map(|e| e.selector.as_ref()) {
            let implied = lookup.may_be_implied_by(own);
            let overlap = lookup.may_overlap(own);
            for (i, e) in list.iter().enumerate() {
                let Some(other) = &e.selector else { continue };
                if own.implies(other) {
                    assert!(implied.contains(&i), "{own:?} implies entry {i}");
                }
                if !own.disjoint(other) {
                    assert!(overlap.contains(&i), "{own:?} overlaps entry {i}");
                }
            }
        }
        // and they prune: a pod labelled app=other is a candidate of the unpinned only
        let other = lookup.may_match(&label_sets[4]);
        assert_eq!(other, vec![0, 3, 5, 6, 8], "unpinned entries only");
    }
}
