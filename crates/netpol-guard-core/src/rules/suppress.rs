//! Acknowledged findings: a policy that means a pattern on purpose says so in its own
//! manifest, `netpol-guard.io/ignore: RULE[,RULE...]` with the reason in
//! `netpol-guard.io/ignore-reason`. The webhook, `check` and the audit all read it through
//! [`super::evaluate`], so they never disagree, and each lists what it suppressed (never
//! silent). Rules that protect the cluster itself cannot be ignored by the manifest: a
//! tenant could otherwise switch off the guard for the namespaces everyone depends on.

use super::{Check, Context, Finding, Hit, Rule, Severity};
use crate::netpol::policy::Subject;

/// The rules a manifest names as acknowledged.
pub const IGNORE_ANNOTATION: &str = "netpol-guard.io/ignore";
/// Why; required, or nothing is ignored.
pub const REASON_ANNOTATION: &str = "netpol-guard.io/ignore-reason";

/// Rules whose findings no manifest can ignore: a policy that takes a protected namespace
/// down is refused whatever it says about itself. (The admission rules are never evaluated
/// from a manifest's annotations at all.)
pub const NOT_IGNORABLE: &[&str] = &[
    super::protected::DENY_ALL.id,
    super::COMPANION_PROTECTED.id,
    super::EXEMPT_LABEL_PROTECTED.id,
    super::NAMESPACE_STAMP.id,
    IGNORE_INVALID.id,
];

pub const IGNORE_INVALID: Rule = Rule {
    id: "ignore-annotation-invalid",
    default_severity: Severity::Warn,
    summary: "netpol-guard.io/ignore without a reason, naming an unknown rule, or naming a rule that cannot be ignored.",
    check: Check::Policy(invalid),
};

/// A finding that the policy's own annotation acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Suppressed {
    #[serde(flatten)]
    pub finding: Finding,
    /// `netpol-guard.io/ignore-reason`.
    pub reason: String,
}

/// The annotation's request: the rule ids named, and the reason if one is given.
struct Request<'a> {
    rules: Vec<&'a str>,
    reason: Option<&'a str>,
}

fn request<'a>(subject: &Subject<'a>) -> Option<Request<'a>> {
    let annotations = subject.policy.metadata.annotations.as_ref()?;
    let rules = annotations
        .get(IGNORE_ANNOTATION)?
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    let reason = annotations
        .get(REASON_ANNOTATION)
        .map(|r| r.trim())
        .filter(|r| !r.is_empty());
    Some(Request { rules, reason })
}

/// Splits findings into those that stand and those the policy acknowledged.
pub fn split(subject: &Subject<'_>, findings: Vec<Finding>) -> (Vec<Finding>, Vec<Suppressed>) {
    let Some(Request {
        rules,
        reason: Some(reason),
    }) = request(subject)
    else {
        return (findings, Vec::new());
    };
    let ignorable = |id: &str| rules.contains(&id) && !NOT_IGNORABLE.contains(&id);
    let (suppressed, kept): (Vec<Finding>, Vec<Finding>) =
        findings.into_iter().partition(|f| ignorable(f.rule));
    let suppressed = suppressed
        .into_iter()
        .map(|finding| Suppressed {
            finding,
            reason: reason.to_string(),
        })
        .collect();
    (kept, suppressed)
}

fn invalid(_ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let Some(req) = request(subject) else {
        return Vec::new();
    };
    let path = format!("metadata.annotations.{IGNORE_ANNOTATION}");
    let mut hits = Vec::new();
    if req.reason.is_none() {
        hits.push(Hit::new(
            path.clone(),
            format!(
                "names rules to ignore but gives no {REASON_ANNOTATION}, so nothing is ignored"
            ),
            format!(
                "say why these findings are intended in the annotation {REASON_ANNOTATION} \
                 (reports list it beside each suppressed finding)"
            ),
        ));
    }
    for id in &req.rules {
        if NOT_IGNORABLE.contains(id) {
            hits.push(Hit::new(
                path.clone(),
                format!(
                    "{id} cannot be ignored from a manifest: it protects the cluster (or the \
                     guard) itself, so it still applies"
                ),
                format!(
                    "remove {id} from {IGNORE_ANNOTATION}; an administrator can change the \
                     protected namespaces in the configuration (protectedNamespaces)"
                ),
            ));
        } else if super::find(id).is_none() {
            hits.push(Hit::new(
                path.clone(),
                format!("{id} is no rule of netpol-guard, so it ignores nothing"),
                format!(
                    "use the rule ids that `netpol-guard rules` lists, e.g. allow-all-rule, \
                     in {IGNORE_ANNOTATION}"
                ),
            ));
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{run, table};

    #[test]
    fn invalid_ignore_table() {
        let policy = |annotations: &str| {
            format!(
                "metadata: {{name: p, annotations: {{{annotations}}}}}\nspec: {{podSelector: {{}}, ingress: [{{}}]}}"
            )
        };
        let path = "metadata.annotations.netpol-guard.io/ignore";
        let cases: Vec<(String, Vec<&str>)> = vec![
            (
                policy(
                    "netpol-guard.io/ignore: allow-all-rule, netpol-guard.io/ignore-reason: public gateway",
                ),
                vec![],
            ),
            (
                policy(
                    "netpol-guard.io/ignore: 'allow-all-rule,egress-to-metadata-endpoint', netpol-guard.io/ignore-reason: x",
                ),
                vec![],
            ),
            (policy("other: x"), vec![]),
            // no reason: reported, and nothing is ignored
            (policy("netpol-guard.io/ignore: allow-all-rule"), vec![path]),
            (
                policy(
                    "netpol-guard.io/ignore: allow-all-rule, netpol-guard.io/ignore-reason: '  '",
                ),
                vec![path],
            ),
            (
                policy("netpol-guard.io/ignore: no-such-rule, netpol-guard.io/ignore-reason: x"),
                vec![path],
            ),
            (
                policy(
                    "netpol-guard.io/ignore: protected-namespace-deny-all, netpol-guard.io/ignore-reason: x",
                ),
                vec![path],
            ),
            (
                policy(
                    "netpol-guard.io/ignore: 'companion-protected,x', netpol-guard.io/ignore-reason: x",
                ),
                vec![path, path],
            ),
        ];
        let cases: Vec<(&str, &[&str])> = cases
            .iter()
            .map(|(p, w)| (p.as_str(), w.as_slice()))
            .collect();
        table(&IGNORE_INVALID, &cases);
        let hits = run(
            &IGNORE_INVALID,
            &policy("netpol-guard.io/ignore: allow-all-rule"),
            &[],
        );
        assert!(hits[0].message.contains("nothing is ignored"), "{hits:?}");
    }

    #[test]
    fn findings_are_suppressed_only_with_a_reason_and_never_the_protected_ones() {
        use crate::netpol::cluster::Inventory;
        use crate::netpol::policy::tests::policy;
        use crate::rules::testing::Setup;
        let setup = Setup::default();
        let inventory = Inventory::new();
        let ctx = setup.context(&inventory);
        let kube_system_deny = |annotations: &str| {
            policy(&format!(
                "metadata: {{name: p, namespace: kube-system, annotations: {{{annotations}}}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress], ingress: [{{ports: [{{port: 80}}]}}], egress: [{{}}]}}"
            ))
        };
        let rules = |(kept, suppressed): (Vec<Finding>, Vec<Suppressed>)| {
            (
                kept.iter().map(|f| f.rule).collect::<Vec<_>>(),
                suppressed
                    .iter()
                    .map(|s| s.finding.rule)
                    .collect::<Vec<_>>(),
            )
        };
        // egress rules under policyTypes [Ingress]: acknowledged with a reason
        let p = kube_system_deny(
            "netpol-guard.io/ignore: 'egress-rules-ignored,protected-namespace-deny-all', netpol-guard.io/ignore-reason: kept for a later rollout",
        );
        let s = Subject::new(&p, "default");
        let (kept, suppressed) = rules(super::super::evaluate_all(&ctx, &s));
        assert_eq!(suppressed, ["egress-rules-ignored"]);
        // the protected namespace's deny stands, and the attempt is reported
        assert!(kept.contains(&"protected-namespace-deny-all"), "{kept:?}");
        assert!(kept.contains(&"ignore-annotation-invalid"), "{kept:?}");
        assert!(!kept.contains(&"egress-rules-ignored"), "{kept:?}");
        // without a reason nothing is suppressed
        let p = kube_system_deny("netpol-guard.io/ignore: egress-rules-ignored");
        let s = Subject::new(&p, "default");
        let (kept, suppressed) = rules(super::super::evaluate_all(&ctx, &s));
        assert!(suppressed.is_empty());
        assert!(kept.contains(&"egress-rules-ignored"), "{kept:?}");
        // evaluate() is what every caller uses: it keeps the suppressed ones out
        let p = kube_system_deny(
            "netpol-guard.io/ignore: egress-rules-ignored, netpol-guard.io/ignore-reason: r",
        );
        let s = Subject::new(&p, "default");
        assert!(
            !super::super::evaluate(&ctx, &s)
                .iter()
                .any(|f| f.rule == "egress-rules-ignored")
        );
    }
}
