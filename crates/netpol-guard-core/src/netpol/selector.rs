//! Label selectors, evaluated exactly as Kubernetes evaluates them.
//!
//! `matchLabels` and `matchExpressions` are ANDed; an empty selector matches every object.
//! `NotIn` matches objects that do not carry the key at all. Invalid selectors (unknown
//! operators, `In` without values, `Exists` with values) are reported as errors: the API
//! server rejects them, so the analysis never treats them as matching anything.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A label set of a pod or a namespace.
pub type Labels = BTreeMap<String, String>;

/// The label Kubernetes puts on every namespace, holding its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Why a selector is not a valid Kubernetes label selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("matchExpressions[{index}] has an empty key")]
    EmptyKey { index: usize },
    #[error(
        "matchExpressions[{index}] uses the unknown operator {operator:?} (valid: In, NotIn, Exists, DoesNotExist)"
    )]
    UnknownOperator { index: usize, operator: String },
    #[error("matchExpressions[{index}] uses {operator}, which needs at least one value")]
    MissingValues {
        index: usize,
        operator: &'static str,
    },
    #[error("matchExpressions[{index}] uses {operator}, which takes no values")]
    UnexpectedValues {
        index: usize,
        operator: &'static str,
    },
}

impl SelectorError {
    /// The index of the offending `matchExpressions` entry.
    pub fn index(&self) -> usize {
        match self {
            Self::EmptyKey { index }
            | Self::UnknownOperator { index, .. }
            | Self::MissingValues { index, .. }
            | Self::UnexpectedValues { index, .. } => *index,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone)]
struct Requirement<'a> {
    key: &'a str,
    operator: Operator,
    values: Vec<&'a str>,
}

impl Requirement<'_> {
    fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(self.key).map(String::as_str);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(&v)),
            // NotIn also matches objects without the key.
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(&v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A validated label selector: the conjunction of its requirements.
#[derive(Debug, Clone)]
pub struct Selector<'a> {
    requirements: Vec<Requirement<'a>>,
}

impl<'a> Selector<'a> {
    /// Validates and compiles a selector. Returns every problem found.
    pub fn parse(selector: &'a LabelSelector) -> Result<Self, Vec<SelectorError>> {
        let mut requirements = Vec::new();
        let mut errors = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            // matchLabels {k: v} is the requirement `k In (v)`.
            requirements.push(Requirement {
                key,
                operator: Operator::In,
                values: vec![value.as_str()],
            });
        }
        for (index, expr) in selector.match_expressions.iter().flatten().enumerate() {
            let values: Vec<&str> = expr.values.iter().flatten().map(String::as_str).collect();
            if expr.key.is_empty() {
                errors.push(SelectorError::EmptyKey { index });
            }
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    errors.push(SelectorError::UnknownOperator {
                        index,
                        operator: other.to_string(),
                    });
                    continue;
                }
            };
            match operator {
                Operator::In | Operator::NotIn if values.is_empty() => {
                    errors.push(SelectorError::MissingValues {
                        index,
                        operator: expr_name(operator),
                    });
                }
                Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                    errors.push(SelectorError::UnexpectedValues {
                        index,
                        operator: expr_name(operator),
                    });
                }
                _ => {}
            }
            requirements.push(Requirement {
                key: &expr.key,
                operator,
                values,
            });
        }
        if errors.is_empty() {
            Ok(Self { requirements })
        } else {
            Err(errors)
        }
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether an object of which only `labels` are known (it may carry more) is selected:
    /// `Some` when the known labels decide every requirement, `None` when a requirement
    /// names a key they do not hold.
    pub fn matches_known(&self, labels: &Labels) -> Option<bool> {
        let mut undecided = false;
        for r in &self.requirements {
            if labels.contains_key(r.key) {
                if !r.matches(labels) {
                    return Some(false);
                }
            } else {
                undecided = true;
            }
        }
        (!undecided).then_some(true)
    }

    /// Whether every object this selector selects is also selected by `broader`.
    ///
    /// This is a sound proof, not a guess: it answers `true` only when the requirements of
    /// `self` imply each requirement of `broader`.
    pub fn implies(&self, broader: &Selector<'_>) -> bool {
        broader
            .requirements
            .iter()
            .all(|r| self.constraint(r.key).implies(r))
    }

    /// Whether no object can be selected by both selectors: some key is constrained by the
    /// two of them in ways no single value satisfies (`app=a` and `app=b`, `app in (a)` and
    /// `!app`). A sound proof: `false` means "may overlap", not "overlaps".
    pub fn disjoint(&self, other: &Selector<'_>) -> bool {
        let both = Selector {
            requirements: self
                .requirements
                .iter()
                .chain(&other.requirements)
                .cloned()
                .collect(),
        };
        both.requirements
            .iter()
            .any(|r| both.constraint(r.key).contradictory())
    }

    /// The keys whose value this selector fixes to one value (`app=web`, or `app in (a, b)`
    /// with `app notin (b)`), with that value: every object it selects carries them.
    pub fn pins(&self) -> Vec<(&'a str, &'a str)> {
        let mut keys: Vec<&'a str> = self
            .requirements
            .iter()
            .filter(|r| r.operator == Operator::In)
            .map(|r| r.key)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .filter_map(|key| {
                let values = self.constraint(key).possible_values()?;
                let mut values = values.into_iter();
                match (values.next(), values.next()) {
                    (Some(value), None) => Some((key, value)),
                    _ => None,
                }
            })
            .collect()
    }

    /// Whether no object can match: some key is constrained in contradictory ways.
    pub fn selects_nothing(&self) -> bool {
        self.requirements
            .iter()
            .any(|r| self.constraint(r.key).contradictory())
    }

    /// Summarises what this selector says about one key.
    fn constraint(&self, key: &str) -> KeyConstraint<'a> {
        let mut c = KeyConstraint::default();
        for r in self.requirements.iter().filter(|r| r.key == key) {
            match r.operator {
                Operator::In => {
                    let set: BTreeSet<&str> = r.values.iter().copied().collect();
                    c.allowed = Some(match c.allowed.take() {
                        Some(prev) => prev.intersection(&set).copied().collect(),
                        None => set,
                    });
                }
                Operator::NotIn => c.excluded.extend(r.values.iter().copied()),
                Operator::Exists => c.present = true,
                Operator::DoesNotExist => c.absent = true,
            }
        }
        c
    }
}

fn expr_name(op: Operator) -> &'static str {
    match op {
        Operator::In => "In",
        Operator::NotIn => "NotIn",
        Operator::Exists => "Exists",
        Operator::DoesNotExist => "DoesNotExist",
    }
}

/// What a conjunction of requirements says about the value of one key.
#[derive(Debug, Default)]
struct KeyConstraint<'a> {
    /// The value must be one of these (intersection of `In` sets); implies presence.
    allowed: Option<BTreeSet<&'a str>>,
    /// The value, if present, is none of these.
    excluded: BTreeSet<&'a str>,
    present: bool,
    absent: bool,
}

impl<'a> KeyConstraint<'a> {
    fn possible_values(&self) -> Option<BTreeSet<&'a str>> {
        self.allowed
            .as_ref()
            .map(|a| a.difference(&self.excluded).copied().collect())
    }

    /// Whether no label set satisfies the constraint (then it implies anything).
    fn contradictory(&self) -> bool {
        let must_exist = self.present || self.allowed.is_some();
        (must_exist && self.absent) || self.possible_values().is_some_and(|v| v.is_empty())
    }

    fn implies(&self, r: &Requirement<'_>) -> bool {
        if self.contradictory() {
            return true;
        }
        match r.operator {
            Operator::In => self
                .possible_values()
                .is_some_and(|v| v.iter().all(|x| r.values.contains(x))),
            Operator::NotIn => {
                self.absent
                    || match self.possible_values() {
                        Some(v) => v.iter().all(|x| !r.values.contains(x)),
                        None => r.values.iter().all(|x| self.excluded.contains(x)),
                    }
            }
            Operator::Exists => self.present || self.allowed.is_some(),
            Operator::DoesNotExist => self.absent,
        }
    }
}

/// Whether a selector is present and has no requirement (`{}`): it selects everything.
pub fn is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// Every label key a selector constrains, with the `matchExpressions` index when it comes
/// from an expression (`None` for `matchLabels`).
pub fn keys(selector: &LabelSelector) -> impl Iterator<Item = (&str, Option<usize>)> {
    let labels = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, _)| (k.as_str(), None));
    let exprs = selector
        .match_expressions
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, e)| (e.key.as_str(), Some(i)));
    labels.chain(exprs)
}

/// The selector `matchLabels: labels`.
pub fn from_labels(labels: &Labels) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.clone()),
        match_expressions: None,
    }
}

/// A selector in kubectl's notation (`app=web,tier in (a,b),!legacy`); `<all>` when empty.
pub fn describe(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e
            .values
            .iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({values})", e.key),
        });
    }
    if parts.is_empty() {
        "<all>".to_string()
    } else {
        parts.join(",")
    }
}

/// "all pods" or "pods app=web": the pods a `podSelector` selects, for messages.
pub fn describe_pods(selector: &LabelSelector) -> String {
    if is_empty(selector) {
        "all pods".to_string()
    } else {
        format!("pods {}", describe(selector))
    }
}

/// Matches labels against a selector, treating an invalid selector as matching nothing
/// (the API server would have rejected the object that holds it).
pub fn matches(selector: &LabelSelector, labels: &Labels) -> bool {
    Selector::parse(selector).is_ok_and(|s| s.matches(labels))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(match_labels: &[(&str, &str)], exprs: &[(&str, &str, &[&str])]) -> LabelSelector {
        LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!exprs.is_empty()).then(|| {
                exprs
                    .iter()
                    .map(|(k, op, vals)| LabelSelectorRequirement {
                        key: k.to_string(),
                        operator: op.to_string(),
                        values: (!vals.is_empty())
                            .then(|| vals.iter().map(|v| v.to_string()).collect()),
                    })
                    .collect()
            }),
        }
    }

    #[test]
    fn matching_table() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let bare = labels(&[]);
        // (selector, labels, expected)
        let cases: Vec<(LabelSelector, &Labels, bool)> = vec![
            (sel(&[], &[]), &web, true),
            (sel(&[], &[]), &bare, true),
            (sel(&[("app", "web")], &[]), &web, true),
            (sel(&[("app", "db")], &[]), &web, false),
            (sel(&[("app", "web"), ("tier", "back")], &[]), &web, false),
            (sel(&[], &[("app", "In", &["web", "db"])]), &web, true),
            (sel(&[], &[("app", "In", &["db"])]), &web, false),
            (sel(&[], &[("app", "In", &["db"])]), &bare, false),
            (sel(&[], &[("app", "NotIn", &["db"])]), &web, true),
            (sel(&[], &[("app", "NotIn", &["web"])]), &web, false),
            // NotIn matches objects that lack the key.
            (sel(&[], &[("app", "NotIn", &["web"])]), &bare, true),
            (sel(&[], &[("app", "Exists", &[])]), &web, true),
            (sel(&[], &[("app", "Exists", &[])]), &bare, false),
            (sel(&[], &[("app", "DoesNotExist", &[])]), &web, false),
            (sel(&[], &[("app", "DoesNotExist", &[])]), &bare, true),
            // matchLabels AND matchExpressions
            (
                sel(&[("app", "web")], &[("tier", "In", &["back"])]),
                &web,
                false,
            ),
        ];
        for (i, (s, l, want)) in cases.iter().enumerate() {
            assert_eq!(matches(s, l), *want, "case {i}: {s:?} on {l:?}");
        }
    }

    #[test]
    fn invalid_selectors_are_reported_and_match_nothing() {
        let cases: Vec<(LabelSelector, SelectorError)> = vec![
            (
                sel(&[], &[("app", "Equals", &["web"])]),
                SelectorError::UnknownOperator {
                    index: 0,
                    operator: "Equals".into(),
                },
            ),
            (
                sel(&[], &[("app", "In", &[])]),
                SelectorError::MissingValues {
                    index: 0,
                    operator: "In",
                },
            ),
            (
                sel(&[], &[("a", "Exists", &[]), ("app", "Exists", &["x"])]),
                SelectorError::UnexpectedValues {
                    index: 1,
                    operator: "Exists",
                },
            ),
            (
                sel(&[], &[("", "Exists", &[])]),
                SelectorError::EmptyKey { index: 0 },
            ),
        ];
        for (s, want) in cases {
            let errs = Selector::parse(&s).expect_err("must be invalid");
            assert_eq!(errs, vec![want.clone()]);
            assert_eq!(errs[0].index(), want.index());
            assert!(!matches(&s, &labels(&[("app", "web"), ("a", "b")])));
            assert!(!matches(&s, &labels(&[])));
        }
    }

    #[test]
    fn disjointness_table() {
        // (a, b, provably disjoint); checked both ways round
        let cases: Vec<(LabelSelector, LabelSelector, bool)> = vec![
            (sel(&[("app", "a")], &[]), sel(&[("app", "b")], &[]), true),
            (sel(&[("app", "a")], &[]), sel(&[("app", "a")], &[]), false),
            (
                sel(&[("app", "a")], &[]),
                sel(&[("to-dns", "allowed")], &[]),
                false,
            ),
            (sel(&[], &[]), sel(&[("app", "a")], &[]), false),
            (
                sel(&[("app", "a")], &[]),
                sel(&[], &[("app", "DoesNotExist", &[])]),
                true,
            ),
            (
                sel(&[], &[("app", "Exists", &[])]),
                sel(&[], &[("app", "DoesNotExist", &[])]),
                true,
            ),
            (
                sel(&[], &[("app", "In", &["a", "b"])]),
                sel(&[], &[("app", "In", &["b", "c"])]),
                false,
            ),
            (
                sel(&[], &[("app", "In", &["a", "b"])]),
                sel(&[], &[("app", "In", &["c"])]),
                true,
            ),
            (
                sel(&[], &[("app", "In", &["a", "b"])]),
                sel(&[], &[("app", "NotIn", &["a", "b"])]),
                true,
            ),
            (
                sel(&[], &[("app", "NotIn", &["a"])]),
                sel(&[], &[("app", "DoesNotExist", &[])]),
                false,
            ),
            (
                sel(&[("tier", "db")], &[]),
                sel(&[], &[("tier", "NotIn", &["web"])]),
                false,
            ),
        ];
        for (a, b, want) in cases {
            let (pa, pb) = (
                Selector::parse(&a).expect("valid"),
                Selector::parse(&b).expect("valid"),
            );
            assert_eq!(pa.disjoint(&pb), want, "{a:?} / {b:?}");
            assert_eq!(pb.disjoint(&pa), want, "{b:?} / {a:?}");
        }
    }

    #[test]
    fn implication_table() {
        // (narrow, broad, narrow implies broad)
        let cases: Vec<(LabelSelector, LabelSelector, bool)> = vec![
            (sel(&[("app", "web")], &[]), sel(&[], &[]), true),
            (sel(&[], &[]), sel(&[("app", "web")], &[]), false),
            (
                sel(&[("app", "web"), ("tier", "front")], &[]),
                sel(&[("app", "web")], &[]),
                true,
            ),
            (
                sel(&[("app", "web")], &[]),
                sel(&[("app", "web"), ("tier", "front")], &[]),
                false,
            ),
            (
                sel(&[("app", "web")], &[]),
                sel(&[], &[("app", "In", &["web", "api"])]),
                true,
            ),
            (
                sel(&[], &[("app", "In", &["web", "db"])]),
                sel(&[], &[("app", "In", &["web", "api"])]),
                false,
            ),
            (
                sel(&[("app", "web")], &[]),
                sel(&[], &[("app", "Exists", &[])]),
                true,
            ),
            (
                sel(&[("app", "web")], &[]),
                sel(&[], &[("app", "NotIn", &["db"])]),
                true,
            ),
            (
                sel(&[], &[("app", "NotIn", &["db", "cache"])]),
                sel(&[], &[("app", "NotIn", &["db"])]),
                true,
            ),
            (
                sel(&[], &[("app", "NotIn", &["db"])]),
                sel(&[], &[("app", "NotIn", &["db", "cache"])]),
                false,
            ),
            (
                sel(&[], &[("app", "DoesNotExist", &[])]),
                sel(&[], &[("app", "NotIn", &["db"])]),
                true,
            ),
            (
                sel(&[], &[("app", "Exists", &[])]),
                sel(&[("app", "web")], &[]),
                false,
            ),
            (
                sel(&[("tier", "x")], &[]),
                sel(&[], &[("app", "DoesNotExist", &[])]),
                false,
            ),
        ];
        for (i, (narrow, broad, want)) in cases.iter().enumerate() {
            let n = Selector::parse(narrow).expect("valid");
            let b = Selector::parse(broad).expect("valid");
            assert_eq!(n.implies(&b), *want, "case {i}: {narrow:?} => {broad:?}");
        }
    }
}
