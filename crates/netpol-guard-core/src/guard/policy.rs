//! NetworkPolicy verdicts: the rule catalog on validation, the DNS allowance on mutation,
//! and the companion protection before either.

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::companions::{self, Protection};
use super::dns_patch::dns_allowance_patch_in;
use super::settings::GitOpsMode;
use super::{Operation, Request, Snapshot, Verdict, object_name};
use crate::netpol::policy::Subject;
use crate::netpol::ports::Protocol;
use crate::netpol::selector;
use crate::rules;

const KIND: &str = "NetworkPolicy";

/// The object a verdict is about, unless the request only removes one (DELETE carries no
/// object to judge).
fn judged<'a>(req: &Request<'a, NetworkPolicy>) -> Option<&'a NetworkPolicy> {
    req.object.filter(|_| req.operation != Operation::Delete)
}

/// Whether a GitOps tool manages the object, so a mutation would be reverted by its sync.
fn gitops_managed(snapshot: &Snapshot, policy: &NetworkPolicy) -> bool {
    snapshot.config.is_gitops_managed(
        policy.metadata.labels.as_ref(),
        policy.metadata.annotations.as_ref(),
    )
}

/// The validating decision: every enabled rule of the catalog, in the snapshot's context.
pub fn validate(snapshot: &Snapshot, req: &Request<'_, NetworkPolicy>) -> Verdict {
    match companions::protect(snapshot, req) {
        Protection::Review => {}
        Protection::Admit => return Verdict::allow(),
        Protection::Refuse(verdict) => return verdict,
    }
    let Some(policy) = judged(req) else {
        return Verdict::allow();
    };
    let subject = Subject::new(policy, req.namespace);
    let (findings, suppressed) = rules::evaluate_all(&snapshot.rule_context(), &subject);
    let note = if gitops_managed(snapshot, policy)
        && findings
            .iter()
            .any(|f| f.rule == rules::dns::EGRESS_MISSING_DNS.id)
    {
        "\nThis object is managed by a GitOps tool, so netpol-guard does not inject the DNS \
         rule (the sync would revert it): commit the fix to its source."
    } else {
        ""
    };
    let object = object_name(req.namespace, req.name);
    Verdict::from_findings(KIND, &object, (findings, suppressed), note)
}

/// The mutating decision: the DNS allowance for a policy that restricts egress without it
/// (GitOps-managed objects are left to validation, per `mutation.gitops`).
pub fn mutate(snapshot: &Snapshot, req: &Request<'_, NetworkPolicy>) -> Verdict {
    // companion writes are never mutated; refusals are validation's business
    if companions::protect(snapshot, req) != Protection::Review {
        return Verdict::allow();
    }
    let Some(policy) = judged(req) else {
        return Verdict::allow();
    };
    if gitops_managed(snapshot, policy) && snapshot.config.mutation.gitops == GitOpsMode::Deny {
        return Verdict::allow();
    }
    let subject = Subject::new(policy, req.namespace);
    let ctx = snapshot.rule_context();
    match dns_allowance_patch_in(&ctx, &subject) {
        Some(patch) => Verdict::Patch {
            patch,
            notice: Some(super::Notice {
                rule: rules::dns::EGRESS_MISSING_DNS.id,
                path: "spec.egress".into(),
                message: format!(
                    "no rule allowed DNS, so netpol-guard added one (UDP and TCP {} to the DNS \
                     pods {}{}) and annotated the policy netpol-guard.io/injected: dns; put the \
                     rule in this object's source so the next apply keeps it",
                    ctx.dns.port_number(Protocol::Udp).unwrap_or(53),
                    selector::describe(&selector::from_labels(ctx.dns.pod_labels())),
                    ctx.dns
                        .namespace()
                        .map(|ns| format!(" in {ns}"))
                        .unwrap_or_default(),
                ),
            }),
        },
        None => Verdict::allow(),
    }
}
