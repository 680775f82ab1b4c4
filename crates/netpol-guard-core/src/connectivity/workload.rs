//! Workloads as manifests describe them: a Pod, or a controller's pod template (Deployment,
//! StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob). What the engine
//! needs of each: the namespace, the pods' labels, their named container ports, and, for a
//! Pod that carries its status, its IPs.

use std::net::IpAddr;

use serde_json::Value;

use crate::netpol::ports::{NamedPort, Protocol};
use crate::netpol::selector::Labels;

/// The pods of one workload, as far as policies can tell them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// `Pod`, `Deployment`, ...
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The pods' labels (the pod template's).
    pub labels: Labels,
    /// Container ports (containers and restartable init containers), for named ports.
    pub ports: Vec<NamedPort>,
    /// Pod IPs when the manifest holds a Pod's status (`status.podIPs`).
    pub ips: Vec<IpAddr>,
    /// `hostNetwork: true`: the pods use the node's network, outside NetworkPolicy.
    pub host_network: bool,
    /// The owners named in `metadata.ownerReferences`, as (kind, name).
    pub owners: Vec<(String, String)>,
}

impl Workload {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Where a kind keeps its pod template (`None`: not a workload).
fn template_of<'a>(api_version: &str, kind: &str, object: &'a Value) -> Option<&'a Value> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, kind) {
        ("", "Pod") => Some(object),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job") => Some(&object["spec"]["template"]),
        ("batch", "CronJob") => Some(&object["spec"]["jobTemplate"]["spec"]["template"]),
        _ => None,
    }
}

/// The workload an object describes, `None` for a kind that runs no pods; `Err` names
/// the field that is not what the API accepts. `default_namespace` stands for a missing
/// `metadata.namespace`.
pub fn of_object(object: &Value, default_namespace: &str) -> Option<Result<Workload, String>> {
    let api_version = object["apiVersion"].as_str()?;
    let kind = object["kind"].as_str()?;
    let template = template_of(api_version, kind, object)?;
    Some(read(kind, object, template, default_namespace))
}

fn read(
    kind: &str,
    object: &Value,
    template: &Value,
    default_namespace: &str,
) -> Result<Workload, String> {
    let metadata = &object["metadata"];
    let name = metadata["name"]
        .as_str()
        .or_else(|| metadata["generateName"].as_str())
        .ok_or_else(|| format!("{kind} without metadata.name"))?;
    let namespace = metadata["namespace"]
        .as_str()
        .filter(|ns| !ns.is_empty())
        .unwrap_or(default_namespace);
    let labels = labels(&template["metadata"]["labels"])
        .map_err(|e| format!("{}metadata.labels: {e}", prefix(kind)))?;
    let spec = &template["spec"];
    let mut ports = Vec::new();
    for (field, restartable_only) in [("containers", false), ("initContainers", true)] {
        for (i, container) in spec[field].as_array().into_iter().flatten().enumerate() {
            // init containers run to completion unless they are sidecars (restartPolicy Always)
            if restartable_only && container["restartPolicy"].as_str() != Some("Always") {
                continue;
            }
            container_ports(container, &mut ports)
                .map_err(|e| format!("{}spec.{field}[{i}].{e}", prefix(kind)))?;
        }
    }
    let owners = metadata["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            Some((
                o["kind"].as_str()?.to_string(),
                o["name"].as_str()?.to_string(),
            ))
        })
        .collect();
    Ok(Workload {
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        labels,
        ports,
        ips: if kind == "Pod" {
            pod_ips(&object["status"])
        } else {
            Vec::new()
        },
        host_network: spec["hostNetwork"].as_bool() == Some(true),
        owners,
    })
}

/// Where a kind's template fields start, for messages.
fn prefix(kind: &str) -> &'static str {
    match kind {
        "Pod" => "",
        "CronJob" => "spec.jobTemplate.spec.template.",
        _ => "spec.template.",
    }
}

fn labels(value: &Value) -> Result<Labels, String> {
    match value {
        Value::Null => Ok(Labels::new()),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("the value of {k:?} must be a string, not {other}")),
            })
            .collect(),
        other => Err(format!("must be a mapping, not {other}")),
    }
}

fn container_ports(container: &Value, out: &mut Vec<NamedPort>) -> Result<(), String> {
    for (i, port) in container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(name) = port["name"].as_str() else {
            continue; // only named container ports matter to policies
        };
        let number = port["containerPort"]
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| format!("ports[{i}].containerPort must be a number"))?;
        let protocol = match port["protocol"].as_str() {
            None | Some("TCP") => Protocol::Tcp,
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            Some(other) => {
                return Err(format!(
                    "ports[{i}].protocol {other:?} is not TCP, UDP or SCTP"
                ));
            }
        };
        out.push(NamedPort {
            name: name.to_string(),
            port: number,
            protocol,
        });
    }
    Ok(())
}

fn pod_ips(status: &Value) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = status["podIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["ip"].as_str()?.parse().ok())
        .collect();
    if ips.is_empty() {
        ips.extend(
            status["podIP"]
                .as_str()
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        );
    }
    ips
}

/// Drops the workloads whose owner is among them (the Pods of a ReplicaSet, the ReplicaSets
/// of a Deployment, the Jobs of a CronJob), so that an export of a namespace counts each
/// workload once, by its top owner.
pub fn drop_owned(workloads: &mut Vec<Workload>) {
    let present: std::collections::BTreeSet<(String, String, String)> = workloads
        .iter()
        .map(|w| (w.namespace.clone(), w.kind.clone(), w.name.clone()))
        .collect();
    workloads.retain(|w| {
        !w.owners.iter().any(|(kind, name)| {
            present.contains(&(w.namespace.clone(), kind.clone(), name.clone()))
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(yaml: &str) -> Value {
        serde_yaml_ng::from_str(yaml).expect("object")
    }

    #[test]
    fn every_workload_kind_reads_its_template() {
        let template = "metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}, {containerPort: 9000}]}]}";
        let table = [
            ("v1", "Pod", "metadata: {name: w, namespace: shop, labels: {app: web}}\nspec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}".to_string()),
            ("apps/v1", "Deployment", format!("metadata: {{name: w, namespace: shop}}\nspec:\n  template:\n    {template}")),
            ("apps/v1", "StatefulSet", format!("metadata: {{name: w, namespace: shop}}\nspec:\n  template:\n    {template}")),
            ("apps/v1", "DaemonSet", format!("metadata: {{name: w, namespace: shop}}\nspec:\n  template:\n    {template}")),
            ("apps/v1", "ReplicaSet", format!("metadata: {{name: w, namespace: shop}}\nspec:\n  template:\n    {template}")),
            ("v1", "ReplicationController", format!("metadata: {{name: w, namespace: shop}}\nspec:\n  template:\n    {template}")),
            ("batch/v1", "Job", format!("metadata: {{name: w, namespace: shop}}\nspec:\n  template:\n    {template}")),
            ("batch/v1", "CronJob", format!("metadata: {{name: w, namespace: shop}}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        {}", template.replace("\n    ", "\n        "))),
        ];
        for (api, kind, body) in table {
            let value = object(&format!("apiVersion: {api}\nkind: {kind}\n{body}"));
            let w = of_object(&value, "default")
                .expect("a workload")
                .expect(kind);
            assert_eq!(
                (w.kind.as_str(), w.id().as_str()),
                (kind, "shop/w"),
                "{kind}"
            );
            assert_eq!(
                w.labels.get("app").map(String::as_str),
                Some("web"),
                "{kind}"
            );
            assert_eq!(
                w.ports,
                vec![NamedPort {
                    name: "http".into(),
                    port: 8080,
                    protocol: Protocol::Tcp
                }],
                "{kind}: unnamed ports do not count"
            );
        }
        // not workloads
        for (api, kind) in [
            ("v1", "Service"),
            ("v1", "ConfigMap"),
            ("networking.k8s.io/v1", "NetworkPolicy"),
            ("example.com/v1", "Deployment"),
        ] {
            let value = object(&format!(
                "apiVersion: {api}\nkind: {kind}\nmetadata: {{name: x}}"
            ));
            assert!(of_object(&value, "default").is_none(), "{api} {kind}");
        }
    }

    #[test]
    fn pods_give_ips_sidecars_and_owners() {
        let pod = object(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, ownerReferences: [{kind: ReplicaSet, name: rs}]}\n\
             spec:\n  hostNetwork: true\n  initContainers:\n  - {name: once, ports: [{name: a, containerPort: 1}]}\n  - {name: side, restartPolicy: Always, ports: [{name: b, containerPort: 2, protocol: UDP}]}\n\
             status: {podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}, {ip: 'fd00::1'}]}",
        );
        let w = of_object(&pod, "dev").expect("a workload").expect("pod");
        assert_eq!(w.id(), "dev/p");
        assert_eq!(
            w.ports,
            vec![NamedPort {
                name: "b".into(),
                port: 2,
                protocol: Protocol::Udp
            }]
        );
        assert_eq!(w.ips.len(), 2);
        assert!(w.host_network);
        let rs = object(
            "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: rs, namespace: dev}\nspec: {template: {}}",
        );
        let mut all = vec![w, of_object(&rs, "dev").expect("rs").expect("rs")];
        drop_owned(&mut all);
        assert_eq!(all.iter().map(Workload::id).collect::<Vec<_>>(), ["dev/rs"]);
    }

    #[test]
    fn bad_fields_are_named() {
        let table = [
            (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {metadata: {labels: {app: 1}}}}",
                "spec.template.metadata.labels",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{ports: [{name: x, containerPort: http}]}]}",
                "spec.containers[0].ports[0].containerPort",
            ),
            (
                "apiVersion: v1\nkind: Pod\nspec: {}",
                "without metadata.name",
            ),
        ];
        for (yaml, want) in table {
            let err = of_object(&object(yaml), "default")
                .expect("a workload")
                .expect_err(yaml);
            assert!(err.contains(want), "{err}");
        }
    }
}
