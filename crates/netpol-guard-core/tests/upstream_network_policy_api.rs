//! The network-policy-api v0.2.0 conformance suite's probe expectations (transcribed in
//! `tests/upstream/network-policy-api-v0.2.0.yaml`), against the tiers' decision: each
//! test's ClusterNetworkPolicy objects are built from the notation, decoded as the webhook
//! and the cache decode them, edited step by step, and every probed connection must be
//! allowed or denied as the suite expects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use netpol_guard_core::netpol::layers::{Layers, decode};
use netpol_guard_core::netpol::ports::{NamedPort, Protocol};
use netpol_guard_core::netpol::tiers::{self, Isolated, Pod, Say};
use serde::Deserialize;
use serde_json::{Value, json};

type Labels = BTreeMap<String, String>;

const PREFIX: &str = "network-policy-conformance-";
const DATA: &str = include_str!("upstream/network-policy-api-v0.2.0.yaml");

#[derive(Deserialize)]
struct Suite {
    world: World,
    tests: Vec<Test>,
}

#[derive(Deserialize)]
struct World {
    /// House: the name of its pods.
    houses: BTreeMap<String, String>,
    /// `name/PROTOCOL/number`.
    ports: Vec<String>,
}

#[derive(Deserialize)]
struct Test {
    test: String,
    objects: Vec<Object>,
    steps: Vec<Step>,
}

#[derive(Deserialize, Clone)]
struct Object {
    name: String,
    tier: String,
    priority: i32,
    subject: String,
    #[serde(default)]
    ingress: Vec<BTreeMap<String, String>>,
    #[serde(default)]
    egress: Vec<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct Step {
    step: String,
    #[serde(default)]
    edits: Vec<String>,
    probes: Vec<String>,
}

/// `ns=HOUSE,house=HOUSE` or `<all>` as a label selector.
fn selector(text: &str) -> Value {
    if text == "<all>" {
        return json!({});
    }
    let labels: serde_json::Map<String, Value> = text
        .split(',')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("key=value");
            match k {
                "ns" => (
                    "kubernetes.io/metadata.name".to_string(),
                    json!(format!("{PREFIX}{v}")),
                ),
                "house" => ("conformance-house".to_string(), json!(v)),
                other => panic!("selector key {other}"),
            }
        })
        .collect();
    json!({"matchLabels": labels})
}

/// `namespaces(SEL)` or `pods(NSSEL; PODSEL)`.
fn peer(text: &str) -> Value {
    let text = text.trim();
    if let Some(inner) = text
        .strip_prefix("namespaces(")
        .and_then(|t| t.strip_suffix(')'))
    {
        return json!({"namespaces": selector(inner)});
    }
    let inner = text
        .strip_prefix("pods(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or_else(|| panic!("peer {text}"));
    let (ns, pods) = inner.split_once("; ").expect("NSSEL; PODSEL");
    json!({"pods": {"namespaceSelector": selector(ns), "podSelector": selector(pods)}})
}

/// `tcp/80`, `udp/53`, `sctp/9003`, `tcp/1-100`, `tcp` (every port), `named/web`.
fn protocol(text: &str) -> Value {
    if let Some(name) = text.strip_prefix("named/") {
        return json!({"destinationNamedPort": name});
    }
    let (proto, port) = text.split_once('/').unwrap_or((text, ""));
    let destination = match port.split_once('-') {
        _ if port.is_empty() => json!({}),
        Some((start, end)) => json!({"destinationPort": {"range": {
            "start": start.parse::<i32>().unwrap(), "end": end.parse::<i32>().unwrap()}}}),
        None => json!({"destinationPort": {"number": port.parse::<i32>().unwrap()}}),
    };
    json!({ proto: destination })
}

/// `ACTION PEER + PEER [on PORT PORT]` as a v1alpha2 rule.
fn rule(name: &str, text: &str, peers_field: &str) -> Value {
    let (action, rest) = text.split_once(' ').expect("action and peers");
    let (peers, ports) = match rest.split_once(" on ") {
        Some((peers, ports)) => (peers, Some(ports)),
        None => (rest, None),
    };
    let mut rule = json!({
        "name": name,
        "action": action,
        peers_field: peers.split(" + ").map(peer).collect::<Vec<_>>(),
    });
    if let Some(ports) = ports {
        rule["protocols"] = ports.split(' ').map(protocol).collect::<Vec<_>>().into();
    }
    rule
}

fn rules(list: &[BTreeMap<String, String>], peers_field: &str) -> Vec<Value> {
    list.iter()
        .flat_map(|m| m.iter())
        .map(|(name, text)| rule(name, text, peers_field))
        .collect()
}

/// The object as the API serves it.
fn manifest(object: &Object) -> Value {
    let subject = peer(&object.subject);
    json!({
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": object.name},
        "spec": {
            "tier": object.tier,
            "priority": object.priority,
            "subject": subject,
            "ingress": rules(&object.ingress, "from"),
            "egress": rules(&object.egress, "to"),
        }
    })
}

/// `NAME: swap egress I J` or `NAME: priority N`, applied to the test's objects.
fn edit(objects: &mut [Object], text: &str) {
    let (name, what) = text.split_once(": ").expect("NAME: edit");
    let object = objects
        .iter_mut()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no object {name}"));
    let words: Vec<&str> = what.split(' ').collect();
    match words.as_slice() {
        ["swap", direction, i, j] => {
            let list = match *direction {
                "egress" => &mut object.egress,
                "ingress" => &mut object.ingress,
                other => panic!("direction {other}"),
            };
            list.swap(i.parse().unwrap(), j.parse().unwrap());
        }
        ["priority", n] => object.priority = n.parse().unwrap(),
        _ => panic!("edit {text}"),
    }
}

fn layers_of(objects: &[Object]) -> Layers {
    let mut layers = Layers::new();
    for object in objects {
        layers.insert(decode::layer(&manifest(object)).expect("a v1alpha2 object the guard reads"));
    }
    layers
}

struct PodFacts {
    namespace: String,
    namespace_labels: Labels,
    labels: Labels,
}

fn world(world: &World) -> (BTreeMap<String, PodFacts>, Vec<NamedPort>) {
    let mut pods = BTreeMap::new();
    for (house, name) in &world.houses {
        let namespace = format!("{PREFIX}{house}");
        let namespace_labels = Labels::from([
            ("kubernetes.io/metadata.name".to_string(), namespace.clone()),
            ("conformance-house".to_string(), house.clone()),
        ]);
        for i in 0..2 {
            pods.insert(
                format!("{name}-{i}"),
                PodFacts {
                    namespace: namespace.clone(),
                    namespace_labels: namespace_labels.clone(),
                    labels: Labels::from([("conformance-house".to_string(), house.clone())]),
                },
            );
        }
    }
    let ports = world
        .ports
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.split('/').collect();
            NamedPort {
                name: parts[0].to_string(),
                protocol: protocol_of(parts[1]),
                port: parts[2].parse().unwrap(),
            }
        })
        .collect();
    (pods, ports)
}

fn protocol_of(text: &str) -> Protocol {
    match text.to_ascii_uppercase().as_str() {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        other => panic!("protocol {other}"),
    }
}

/// Whether the tiers allow the connection, for pods no NetworkPolicy isolates: denied if
/// either side is, allowed otherwise (a side nobody decides is open).
fn allowed(say: &(Say, Say)) -> Result<bool, String> {
    match say {
        (Say::Depends(c), _) | (_, Say::Depends(c)) => Err(c.clone()),
        (Say::Denied(_), _) | (_, Say::Denied(_)) => Ok(false),
        (Say::Open(Some(m)), _) | (_, Say::Open(Some(m))) => Err(m.condition.clone()),
        _ => Ok(true),
    }
}

/// Every probe of the suite against the tiers, the objects' rules read as written or
/// reversed: the probes that fail, described, and how many there are.
fn failing_probes(reversed: bool) -> (Vec<String>, usize) {
    let suite: Suite = serde_yaml_ng::from_str(DATA).expect("the transcribed suite");
    let (pods, ports) = world(&suite.world);
    let pod = |name: &str| {
        let facts = pods.get(name).unwrap_or_else(|| panic!("no pod {name}"));
        Pod {
            namespace: &facts.namespace,
            namespace_labels: &facts.namespace_labels,
            labels: &facts.labels,
            ports: &ports,
            ips: &[],
        }
    };
    let mut failures = Vec::new();
    let mut probes = 0;
    for test in &suite.tests {
        let mut objects = test.objects.clone();
        for step in &test.steps {
            for e in &step.edits {
                edit(&mut objects, e);
            }
            let mut read = objects.clone();
            if reversed {
                for o in &mut read {
                    o.egress.reverse();
                    o.ingress.reverse();
                }
            }
            let layers = layers_of(&read);
            for probe in &step.probes {
                probes += 1;
                let (connection, want) = probe.split_once(": ").expect("probe: result");
                let words: Vec<&str> = connection.split(' ').collect();
                let [src, "->", dst, port] = words.as_slice() else {
                    panic!("probe {probe}")
                };
                let (proto, number) = port.split_once('/').expect("proto/port");
                let say = tiers::between(
                    &layers,
                    (&pod(src), &pod(dst)),
                    (number.parse().unwrap(), protocol_of(proto)),
                    (Isolated::No, Isolated::No),
                );
                let got = allowed(&say);
                if got != Ok(want == "allowed") {
                    failures.push(format!(
                        "{} / {}: {probe}: got {got:?} ({say:?})",
                        test.test, step.step
                    ));
                }
            }
        }
    }
    (failures, probes)
}

#[test]
fn every_conformance_probe_holds() {
    let (failures, probes) = failing_probes(false);
    assert_eq!(probes, 218, "the transcription holds 218 probes");
    assert!(
        failures.is_empty(),
        "{} of {probes} probes fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The suite can fail: read every object's rules in reverse, and the probes that rule order
/// decides no longer hold.
#[test]
fn rule_order_is_what_the_probes_check() {
    let (failures, _) = failing_probes(true);
    assert_eq!(
        failures.len(),
        120,
        "reversing rule order changed these answers"
    );
}
