//! Verdicts on writes of the policy layers (AdminNetworkPolicy, BaselineAdminNetworkPolicy,
//! ClusterNetworkPolicy, Cilium's policies): the layer rules of the catalog, the object
//! judged among the layers the snapshot knows. These objects are never mutated.

use super::{Operation, Request, Snapshot, Verdict, object_name};
use crate::netpol::layers::LayerPolicy;
use crate::rules;

/// The validating decision: every enabled layer rule over the object being written.
/// Deleting a layer object is not judged (removing a deny or an allow changes traffic, but
/// the guard refuses only writes that certainly break it).
pub fn validate(snapshot: &Snapshot, req: &Request<'_, LayerPolicy>) -> Verdict {
    let Some(policy) = req.object.filter(|_| req.operation != Operation::Delete) else {
        return Verdict::allow();
    };
    let findings = rules::evaluate_layer(&snapshot.rule_context(), policy);
    let object = object_name(req.namespace, req.name);
    Verdict::from_findings(policy.kind.as_str(), &object, (findings, Vec::new()), "")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::guard::Identity;
    use crate::guard::settings::Config;
    use crate::netpol::cluster::Inventory;
    use crate::netpol::layers::decode;

    fn object(yaml: &str) -> LayerPolicy {
        decode::layer(&serde_yaml_ng::from_str(yaml).expect("yaml")).expect("layer")
    }

    fn snapshot(inventory: Inventory) -> Snapshot {
        Snapshot::new(
            Arc::new(Config::default()),
            Arc::new(inventory),
            Arc::new(Identity {
                namespace: "netpol-guard".into(),
                service_account: "system:serviceaccount:netpol-guard:netpol-guard".into(),
            }),
        )
    }

    fn request<'a>(operation: Operation, object: &'a LayerPolicy) -> Request<'a, LayerPolicy> {
        Request {
            operation,
            namespace: "",
            name: &object.name,
            user: "alice",
            groups: &[],
            object: Some(object),
            old_metadata: None,
        }
    }

    const LOCKDOWN: &str = "apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: lockdown}
spec:
  priority: 5
  subject: {namespaces: {matchLabels: {team: a}}}
  egress: [{name: no-dns, action: Deny, to: [{namespaces: {}}]}]";

    #[test]
    fn a_write_that_denies_dns_is_refused_naming_the_rule_and_field() {
        let lockdown = object(LOCKDOWN);
        let verdict = validate(
            &snapshot(Inventory::new()),
            &request(Operation::Create, &lockdown),
        );
        let Verdict::Deny {
            message, findings, ..
        } = verdict
        else {
            panic!("{verdict:?}")
        };
        assert!(message.contains("layer-denies-dns"), "{message}");
        assert!(message.contains("spec.egress[0]"), "{message}");
        assert_eq!(findings[0].rule, "layer-denies-dns");
    }

    #[test]
    fn deletes_and_harmless_writes_are_admitted() {
        let lockdown = object(LOCKDOWN);
        let snap = snapshot(Inventory::new());
        assert_eq!(
            validate(&snap, &request(Operation::Delete, &lockdown)),
            Verdict::allow()
        );
        let fine = object(
            "apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: fine}
spec: {priority: 5, subject: {namespaces: {}}, egress: [{name: dns, action: Allow, to: [{namespaces: {}}]}]}",
        );
        assert_eq!(
            validate(&snap, &request(Operation::Create, &fine)),
            Verdict::allow()
        );
    }

    #[test]
    fn an_earlier_allow_in_the_cluster_admits_the_same_write() {
        let mut inventory = Inventory::new();
        inventory.layers_mut().insert(object(
            "apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: dns-first}
spec: {priority: 1, subject: {namespaces: {}}, egress: [{name: dns, action: Allow, to: [{namespaces: {}}], ports: [{portNumber: {protocol: UDP, port: 53}}]}]}",
        ));
        let lockdown = object(LOCKDOWN);
        let verdict = validate(&snapshot(inventory), &request(Operation::Update, &lockdown));
        assert!(matches!(verdict, Verdict::Allow { .. }), "{verdict:?}");
    }
}
