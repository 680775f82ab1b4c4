//! Whether the pods a policy selects get something (DNS, open traffic) from the policies
//! that apply to them, when no single policy provably gives it to all of them.
//!
//! Policies add up per pod: a pod gets what any policy selecting it allows. Whether a
//! policy set composed by pod labels (one policy per purpose, DNS in its own policy keyed
//! on its own label) works is a question about the pods, so the answer has three outcomes:
//! certain with the pods in view, certain without them (nobody gives it to anyone), and
//! "depends" when it turns on labels of pods that do not exist yet.

use std::collections::HashMap;

use super::cluster::Inventory;
use super::index::{Lookup, NamespacePolicies};
use super::policy::Subject;
use super::selector::{self, Selector};

pub use super::reach::Reach;

/// At most this many pods are named in a message.
pub(crate) const NAMED_PODS: usize = 3;

/// How the pods a policy selects fare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PodsOutcome {
    /// Every known pod the policy selects is served (by it or another policy selecting it).
    Served { pods: usize },
    /// Known pods the policy selects that no applicable policy serves: the first few names
    /// and how many in all.
    Unserved { examples: Vec<String>, total: usize },
    /// The pods are served only under a condition the guard cannot see.
    Depends(String),
    /// No known pod is selected, and another policy of the namespace serves pods of a
    /// selector that may overlap: the pods are served only if they also match it.
    IfAlsoMatched { policy: String, selector: String },
    /// No known pod is selected and no policy of the namespace serves anyone.
    Nobody,
}

impl PodsOutcome {
    /// The condition of a `Depends` or `IfAlsoMatched` outcome, worded for messages:
    /// `pods selected by web get DNS only if they also match to-dns=allowed (policy
    /// shop/allow-dns)`.
    pub(crate) fn condition(&self, subject: &Subject<'_>, what: &str) -> Option<String> {
        match self {
            Self::Depends(condition) => Some(condition.clone()),
            Self::IfAlsoMatched { policy, selector } => Some(format!(
                "pods selected by {} get {what} only if they also match {selector} (policy {}/{policy})",
                subject.name, subject.namespace
            )),
            _ => None,
        }
    }
}

/// The policies of a namespace that may serve pods, prepared: positions into `policies`
/// (all that can contribute, in any order) with a lookup over them.
#[derive(Clone, Copy)]
pub(crate) struct Candidates<'s, 'a> {
    pub policies: &'s NamespacePolicies<'a>,
    pub lookup: &'s Lookup,
}

/// Judges the pods `subject` (whose parsed pod selector is `own`) selects. `judge` answers
/// for the positions of candidate policies that apply to one pod besides the subject
/// whether together with it they serve the pod. The stored version of the subject (same
/// name) is left out: the object under review replaces it.
pub(crate) fn pods_outcome(
    inventory: &Inventory,
    subject: &Subject<'_>,
    own: &Selector<'_>,
    candidates: Candidates<'_, '_>,
    judge: impl Fn(&[usize]) -> Reach,
) -> PodsOutcome {
    if inventory.knows_all_pods()
        && let Some(outcome) = judge_pods(inventory, subject, own, candidates, &judge)
    {
        return outcome;
    }
    // No pod to look at: does another policy serve pods that may also be these?
    let entries = &candidates.policies.entries;
    candidates
        .lookup
        .may_overlap(own)
        .into_iter()
        .filter(|&i| !candidates.policies.is_itself(i, subject))
        .filter(|&i| {
            entries[i]
                .selector
                .as_ref()
                .is_some_and(|p| !own.disjoint(p))
        })
        .find(|&i| judge(&[i]) == Reach::Yes)
        .map_or(PodsOutcome::Nobody, |i| PodsOutcome::IfAlsoMatched {
            policy: entries[i].subject.name.to_string(),
            selector: selector::describe(entries[i].label_selector),
        })
}

/// The outcome over the known pods the subject selects; `None` when it selects none.
fn judge_pods(
    inventory: &Inventory,
    subject: &Subject<'_>,
    own: &Selector<'_>,
    candidates: Candidates<'_, '_>,
    judge: &impl Fn(&[usize]) -> Reach,
) -> Option<PodsOutcome> {
    let entries = &candidates.policies.entries;
    // pods selected by the same set of policies share one answer
    let mut answers: HashMap<Vec<usize>, Reach> = HashMap::new();
    let (mut pods, mut total, mut examples, mut condition) = (0, 0, Vec::new(), None);
    for (name, labels) in inventory.pods_in(subject.namespace) {
        if !own.matches(labels) {
            continue;
        }
        pods += 1;
        let mut applying = candidates.lookup.may_match(labels);
        applying.retain(|&i| {
            !candidates.policies.is_itself(i, subject)
                && entries[i]
                    .selector
                    .as_ref()
                    .is_some_and(|s| s.matches(labels))
        });
        let reach = answers
            .entry(applying)
            .or_insert_with_key(|applying| judge(applying));
        match reach {
            Reach::Yes => {}
            Reach::Maybe(c) => {
                condition.get_or_insert_with(|| c.clone());
            }
            Reach::No => {
                total += 1;
                if examples.len() < NAMED_PODS {
                    examples.push(name.to_string());
                }
            }
        }
    }
    Some(match (pods, total, condition) {
        (0, _, _) => return None,
        (_, 0, None) => PodsOutcome::Served { pods },
        (_, 0, Some(c)) => PodsOutcome::Depends(c),
        _ => PodsOutcome::Unserved { examples, total },
    })
}

/// "pods a, b, c (and 4 more)" for messages.
pub(crate) fn describe_examples(examples: &[String], total: usize) -> String {
    let more = total.saturating_sub(examples.len());
    let list = examples.join(", ");
    let noun = if total == 1 { "pod" } else { "pods" };
    if more == 0 {
        format!("{noun} {list}")
    } else {
        format!("{noun} {list} (and {more} more)")
    }
}
