//! The pods a question is about, and whether a subject or a peer of a layer object holds
//! them: by proof from the selectors, or, for one namespace, from its labels as far as they
//! are known. Below the tiers' decision, so that the store of layer objects can index by it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::Group;
use crate::netpol::reach::Reach;
use crate::netpol::selector::{self, Labels, NAMESPACE_NAME_LABEL, Selector};

/// The pods a question is about.
#[derive(Debug, Clone, Copy)]
pub struct Pods<'a> {
    pub namespaces: Namespaces<'a>,
    pub pods: &'a LabelSelector,
}

/// The namespace(s) of the pods a question is about.
#[derive(Debug, Clone, Copy)]
pub enum Namespaces<'a> {
    /// One namespace; `labels` are all its labels when the cluster's namespaces are known,
    /// `None` when only its name is.
    One {
        name: &'a str,
        labels: Option<&'a Labels>,
    },
    /// The namespaces a selector selects (the subject of another layer object).
    Selected(&'a LabelSelector),
}

impl<'a> Pods<'a> {
    /// The pods of a [`Group`].
    pub fn of(group: &'a Group) -> Self {
        Self {
            namespaces: Namespaces::Selected(&group.namespaces),
            pods: &group.pods,
        }
    }
}

pub(crate) fn and(a: Reach, b: impl FnOnce() -> Reach) -> Reach {
    match a {
        Reach::No => Reach::No,
        Reach::Yes => b(),
        Reach::Maybe(c) => match b() {
            Reach::No => Reach::No,
            _ => Reach::Maybe(c),
        },
    }
}

/// Whether `group` holds every pod of `pods` (Yes), none (No), or it depends.
pub fn holds(group: &Group, pods: &Pods<'_>) -> Reach {
    let Ok(pod_sel) = Selector::parse(&group.pods) else {
        // the API server refuses an invalid selector; it holds nothing
        return Reach::No;
    };
    and(holds_namespaces(group, &pods.namespaces), || {
        implied(pods.pods, &pod_sel, &group.pods, "pods")
    })
}

/// Whether `group`'s namespace selector holds every namespace of `namespaces`.
pub fn holds_namespaces(group: &Group, namespaces: &Namespaces<'_>) -> Reach {
    let Ok(ns_sel) = Selector::parse(&group.namespaces) else {
        return Reach::No;
    };
    match *namespaces {
        Namespaces::One { name, labels } => {
            let only_name = Labels::from([(NAMESPACE_NAME_LABEL.to_string(), name.to_string())]);
            match (ns_sel.matches_known(labels.unwrap_or(&only_name)), labels) {
                (Some(true), _) => Reach::Yes,
                (Some(false), _) => Reach::No,
                (None, Some(all)) => {
                    if ns_sel.matches(all) {
                        Reach::Yes
                    } else {
                        Reach::No
                    }
                }
                (None, None) => Reach::Maybe(format!(
                    "namespace {name} matches {} (its labels are not known here)",
                    selector::describe(&group.namespaces)
                )),
            }
        }
        Namespaces::Selected(s) => implied(s, &ns_sel, &group.namespaces, "namespaces"),
    }
}

fn implied(
    narrow: &LabelSelector,
    broad: &Selector<'_>,
    broad_text: &LabelSelector,
    what: &str,
) -> Reach {
    let Ok(n) = Selector::parse(narrow) else {
        return Reach::No;
    };
    if n.implies(broad) {
        Reach::Yes
    } else if n.disjoint(broad) {
        Reach::No
    } else {
        Reach::Maybe(format!(
            "the {what} {} are also {}",
            selector::describe(narrow),
            selector::describe(broad_text)
        ))
    }
}
