//! The upstream Kubernetes NetworkPolicy e2e suite's truth tables (transcribed in
//! `tests/upstream/netpol-e2e.yaml`), against the connectivity engine: both the listing and
//! the explanation of each pair must agree with every expected cell.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use netpol_guard_core::connectivity::{End, Input, Network, Node, PortSet, Workload};
use netpol_guard_core::netpol::ports::{NamedPort, Protocol};
use netpol_guard_core::netpol::selector::Labels;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    pods: Vec<String>,
    #[serde(default = "default_ports")]
    ports: Vec<u16>,
    #[serde(default = "default_protocols")]
    protocols: Vec<Protocol>,
    steps: Vec<Step>,
}

fn default_ports() -> Vec<u16> {
    vec![80]
}

fn default_protocols() -> Vec<Protocol> {
    vec![Protocol::Tcp]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    policies: Vec<PolicyDoc>,
    #[serde(default)]
    namespace_labels: BTreeMap<String, Labels>,
    #[serde(default)]
    pod_labels: BTreeMap<String, Labels>,
    probes: Vec<Probe>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    ns: String,
    name: String,
    spec: NetworkPolicySpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    on: String,
    expect: Vec<String>,
}

/// `80/TCP`
fn parse_probe(on: &str) -> (u16, Protocol) {
    let (port, protocol) = on.split_once('/').expect("PORT/PROTOCOL");
    let protocol = match protocol {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        other => panic!("protocol {other}"),
    };
    (port.parse().expect("port"), protocol)
}

/// Whether a pattern (`*`, `x/*`, `x/a`) names a pod.
fn names(pattern: &str, pod: &str) -> bool {
    pattern == "*"
        || pattern == pod
        || pattern
            .strip_suffix("/*")
            .is_some_and(|ns| pod.split('/').next() == Some(ns))
}

/// The truth table of a probe: every ordered pair of distinct pods.
fn truth(pods: &[String], expect: &[String]) -> BTreeMap<(String, String), bool> {
    let mut table = BTreeMap::new();
    for from in pods {
        for to in pods {
            if from != to {
                table.insert((from.clone(), to.clone()), true);
            }
        }
    }
    for line in expect {
        let (pair, verdict) = line.rsplit_once(": ").expect("FROM -> TO: allow|deny");
        let (from, to) = pair.split_once(" -> ").expect("FROM -> TO");
        let allowed = match verdict {
            "allow" => true,
            "deny" => false,
            other => panic!("verdict {other}"),
        };
        for ((f, t), cell) in table.iter_mut() {
            if names(from, f) && names(to, t) {
                *cell = allowed;
            }
        }
    }
    table
}

fn pod_ip(pod: &str) -> std::net::IpAddr {
    let (ns, name) = pod.split_once('/').expect("ns/pod");
    let ns = 1 + "xyz".find(ns).expect("x, y or z") as u8;
    let host = 1 + (name.as_bytes()[0] - b'a');
    std::net::IpAddr::from([10, ns, 0, host])
}

#[test]
fn the_upstream_e2e_truth_tables_hold() {
    let text = include_str!("upstream/netpol-e2e.yaml");
    let cases: Vec<Case> = serde_yaml_ng::from_str(text).expect("cases");
    assert_eq!(
        cases.len(),
        48,
        "every case of the upstream suite is transcribed"
    );
    let mut failures = Vec::new();
    let mut cells = 0;
    for case in &cases {
        let mut pod_labels: BTreeMap<String, Labels> = case
            .pods
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    Labels::from([("pod".to_string(), p[2..].to_string())]),
                )
            })
            .collect();
        let mut namespace_labels: BTreeMap<String, Labels> = ["x", "y", "z"]
            .iter()
            .map(|ns| {
                (
                    ns.to_string(),
                    Labels::from([("ns".to_string(), ns.to_string())]),
                )
            })
            .collect();
        let ports: Vec<NamedPort> = case
            .ports
            .iter()
            .flat_map(|&port| {
                case.protocols.iter().map(move |&protocol| NamedPort {
                    name: format!("serve-{port}-{}", protocol.as_str().to_lowercase()),
                    port: i32::from(port),
                    protocol,
                })
            })
            .collect();
        for (s, step) in case.steps.iter().enumerate() {
            for (pod, labels) in &step.pod_labels {
                pod_labels
                    .get_mut(pod)
                    .expect("a pod of the case")
                    .extend(labels.clone());
            }
            for (ns, labels) in &step.namespace_labels {
                namespace_labels
                    .get_mut(ns)
                    .expect("x, y or z")
                    .extend(labels.clone());
            }
            let input = Input {
                namespaces: namespace_labels.clone(),
                workloads: case
                    .pods
                    .iter()
                    .map(|pod| Workload {
                        kind: "Pod".into(),
                        namespace: pod[..1].to_string(),
                        name: pod[2..].to_string(),
                        labels: pod_labels[pod].clone(),
                        ports: ports.clone(),
                        ips: vec![pod_ip(pod)],
                        host_network: false,
                        owners: Vec::new(),
                    })
                    .collect(),
                policies: step
                    .policies
                    .iter()
                    .map(|p| NetworkPolicy {
                        metadata: ObjectMeta {
                            namespace: Some(p.ns.clone()),
                            name: Some(p.name.clone()),
                            ..ObjectMeta::default()
                        },
                        spec: Some(p.spec.clone()),
                    })
                    .collect(),
                default_namespace: "default".into(),
            };
            let network = Network::new(&input);
            let listed = network.connectivity();
            let allowed: BTreeMap<(String, String), PortSet> = listed
                .connections
                .iter()
                .filter(|c| matches!((c.src, c.dst), (Node::Workload(_), Node::Workload(_))))
                .map(|c| ((listed.name(c.src), listed.name(c.dst)), (*c.ports).clone()))
                .collect();
            for probe in &step.probes {
                let (port, protocol) = parse_probe(&probe.on);
                for ((from, to), want) in truth(&case.pods, &probe.expect) {
                    cells += 1;
                    let got = allowed
                        .get(&(from.clone(), to.clone()))
                        .is_some_and(|p| p.contains(protocol, port));
                    let (f, t) = (
                        case.pods.iter().position(|p| *p == from).expect("pod"),
                        case.pods.iter().position(|p| *p == to).expect("pod"),
                    );
                    let explained = network
                        .explain(
                            End::Workload(f, &input.workloads[f]),
                            End::Workload(t, &input.workloads[t]),
                        )
                        .allows(protocol, port);
                    if got != want || explained != want {
                        failures.push(format!(
                            "{} (step {}), {} {from} -> {to}: expected {}, listed {}, explained {}",
                            case.name,
                            s + 1,
                            probe.on,
                            verdict(want),
                            verdict(got),
                            verdict(explained)
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(cells, 506, "every cell of every probe is judged");
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}
