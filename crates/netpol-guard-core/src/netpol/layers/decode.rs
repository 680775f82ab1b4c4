//! The layer objects as the API serves them (JSON) turned into the core's own types. What
//! cannot be read is kept as [`Peer::Unread`] or [`LayerPolicy::unread`], never dropped
//! silently: a peer of unknown shape becomes a condition on every verdict it could change.

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::Value;

use super::{Action, Group, Isolation, LayerKind, LayerPolicy, LayerRule, Peer, PortMatch, Tier};
use crate::netpol::ports::Protocol;
use crate::netpol::selector::NAMESPACE_NAME_LABEL;

/// Why an object cannot be read as a layer object at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("{0} is not a policy layer kind the guard reads")]
    NotALayer(String),
    #[error("{kind} has no metadata.name")]
    NoName { kind: &'static str },
    #[error("{kind} {name}: {what}")]
    Malformed {
        kind: &'static str,
        name: String,
        what: String,
    },
}

/// Cilium's label of a pod's namespace, on every endpoint.
const CILIUM_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Cilium's prefix of the namespace's labels, on every endpoint.
const CILIUM_NAMESPACE_LABELS: &str = "io.cilium.k8s.namespace.labels.";

/// Decodes one object of a layer kind (`apiVersion`, `kind`, `metadata`, `spec`).
pub fn layer(object: &Value) -> Result<LayerPolicy, LayerError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind_name = object["kind"].as_str().unwrap_or_default();
    let kind = LayerKind::of(api_version, kind_name)
        .ok_or_else(|| LayerError::NotALayer(format!("{api_version} {kind_name}")))?;
    let name = object["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or(LayerError::NoName {
            kind: kind.as_str(),
        })?
        .to_string();
    let malformed = |what: &str| LayerError::Malformed {
        kind: kind.as_str(),
        name: name.clone(),
        what: what.to_string(),
    };
    let namespace = kind.namespaced().then(|| {
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string()
    });
    let mut policy = LayerPolicy {
        kind,
        name: name.clone(),
        namespace,
        tier: Tier::Admin,
        priority: 0,
        subject: None,
        ingress: Vec::new(),
        egress: Vec::new(),
        isolation: Isolation::default(),
        unread: Vec::new(),
        dns_skip: object["metadata"]["annotations"]["netpol-guard.io/dns"] == "skip",
    };
    if kind.is_cilium() {
        cilium(&mut policy, object).map_err(|w| malformed(&w))?;
    } else {
        let spec = object
            .get("spec")
            .filter(|s| s.is_object())
            .ok_or_else(|| malformed("spec is not an object"))?;
        network_policy_api(&mut policy, spec).map_err(|w| malformed(&w))?;
    }
    Ok(policy)
}

/// AdminNetworkPolicy, BaselineAdminNetworkPolicy (v1alpha1) and ClusterNetworkPolicy
/// (v1alpha2) share their subject and peer shapes.
fn network_policy_api(policy: &mut LayerPolicy, spec: &Value) -> Result<(), String> {
    let v2 = policy.kind == LayerKind::ClusterNetworkPolicy;
    policy.tier = match policy.kind {
        LayerKind::BaselineAdminNetworkPolicy => Tier::Baseline,
        LayerKind::ClusterNetworkPolicy => match spec["tier"].as_str() {
            Some("Admin") => Tier::Admin,
            Some("Baseline") => Tier::Baseline,
            other => return Err(format!("spec.tier {other:?} is neither Admin nor Baseline")),
        },
        _ => Tier::Admin,
    };
    if policy.kind != LayerKind::BaselineAdminNetworkPolicy {
        policy.priority = spec["priority"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or("spec.priority is not an integer")?;
    }
    policy.subject = subject(&spec["subject"]);
    if policy.subject.is_none() {
        policy
            .unread
            .push("spec.subject is neither namespaces nor pods".into());
    }
    for (egress, field, peers_field) in [(false, "ingress", "from"), (true, "egress", "to")] {
        let Some(rules) = spec.get(field) else {
            continue;
        };
        let rules = rules
            .as_array()
            .ok_or(format!("spec.{field} is not a list"))?;
        for (i, rule) in rules.iter().enumerate() {
            let path = format!("spec.{field}[{i}]");
            let parsed = api_rule(rule, &path, peers_field, v2)?;
            if egress {
                policy.egress.push(parsed);
            } else {
                policy.ingress.push(parsed);
            }
        }
    }
    Ok(())
}

fn api_rule(rule: &Value, path: &str, peers_field: &str, v2: bool) -> Result<LayerRule, String> {
    let action = match rule["action"].as_str() {
        Some("Allow") if !v2 => Action::Allow,
        Some("Accept") if v2 => Action::Allow,
        Some("Deny") => Action::Deny,
        Some("Pass") => Action::Pass,
        other => {
            return Err(format!(
                "{path}.action {other:?} is not an action of this kind"
            ));
        }
    };
    let peers = rule[peers_field]
        .as_array()
        .map(|list| list.iter().map(api_peer).collect())
        .unwrap_or_default();
    let ports = if v2 {
        rule.get("protocols").map(v2_ports)
    } else {
        rule.get("ports").map(v1_ports)
    };
    Ok(LayerRule {
        name: rule["name"]
            .as_str()
            .map_or_else(|| path.to_string(), String::from),
        path: path.to_string(),
        action,
        peers,
        ports,
        dns_proxy: false,
    })
}

/// `{namespaces: SEL}` or `{pods: {namespaceSelector, podSelector}}`.
fn subject(value: &Value) -> Option<Group> {
    if let Some(ns) = value.get("namespaces") {
        return Some(Group {
            namespaces: label_selector(ns)?,
            pods: LabelSelector::default(),
        });
    }
    let pods = value.get("pods")?;
    Some(Group {
        namespaces: label_selector(&pods["namespaceSelector"])?,
        pods: label_selector(&pods["podSelector"])?,
    })
}

fn api_peer(value: &Value) -> Peer {
    if value.get("namespaces").is_some() || value.get("pods").is_some() {
        return subject(value).map_or_else(|| Peer::Unread(format!("peer {value}")), Peer::Pods);
    }
    if value.get("nodes").is_some() {
        return Peer::Nodes;
    }
    if let Some(networks) = value.get("networks") {
        return cidrs(networks).map_or_else(
            || Peer::Unread(format!("networks {networks}")),
            Peer::Networks,
        );
    }
    if let Some(names) = value.get("domainNames").and_then(Value::as_array) {
        return Peer::Fqdns(
            names
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
        );
    }
    Peer::Unread(format!("peer {value}"))
}

fn cidrs(value: &Value) -> Option<Vec<IpNet>> {
    value
        .as_array()?
        .iter()
        .map(|c| c.as_str().and_then(|c| c.parse().ok()))
        .collect()
}

/// v1alpha1 `ports`: `portNumber`, `namedPort` or `portRange`.
fn v1_ports(value: &Value) -> Vec<PortMatch> {
    let Some(list) = value.as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|p| {
            if let Some(n) = p.get("portNumber") {
                let port = int(&n["port"])?;
                return Some(PortMatch::Range {
                    protocol: protocol(&n["protocol"])?,
                    start: port,
                    end: port,
                });
            }
            if let Some(name) = p["namedPort"].as_str() {
                return Some(PortMatch::Named(name.to_string()));
            }
            let r = p.get("portRange")?;
            Some(PortMatch::Range {
                protocol: protocol(&r["protocol"])?,
                start: int(&r["start"])?,
                end: int(&r["end"])?,
            })
        })
        .collect()
}

/// v1alpha2 `protocols`: `tcp`/`udp`/`sctp` with a `destinationPort` number or range (none:
/// every port of the protocol), or `destinationNamedPort`.
fn v2_ports(value: &Value) -> Vec<PortMatch> {
    let Some(list) = value.as_array() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in list {
        if let Some(name) = p["destinationNamedPort"].as_str() {
            out.push(PortMatch::Named(name.to_string()));
            continue;
        }
        for (key, protocol) in [
            ("tcp", Protocol::Tcp),
            ("udp", Protocol::Udp),
            ("sctp", Protocol::Sctp),
        ] {
            let Some(entry) = p.get(key) else { continue };
            let port = &entry["destinationPort"];
            let (start, end) = if let Some(n) = int(&port["number"]) {
                (n, n)
            } else if let (Some(s), Some(e)) =
                (int(&port["range"]["start"]), int(&port["range"]["end"]))
            {
                (s, e)
            } else {
                (1, 65535)
            };
            out.push(PortMatch::Range {
                protocol,
                start,
                end,
            });
        }
    }
    out
}

fn protocol(value: &Value) -> Option<Protocol> {
    match value.as_str().unwrap_or("TCP") {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        "SCTP" => Some(Protocol::Sctp),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i32> {
    match value {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn label_selector(value: &Value) -> Option<LabelSelector> {
    if value.is_null() {
        return Some(LabelSelector::default());
    }
    serde_json::from_value(value.clone()).ok()
}

/// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy: `spec` and/or `specs`, each
/// with an `endpointSelector` (a `nodeSelector` makes a host policy, which selects no pod).
fn cilium(policy: &mut LayerPolicy, object: &Value) -> Result<(), String> {
    policy.tier = Tier::Cilium;
    let mut specs: Vec<(String, &Value)> = Vec::new();
    if let Some(spec) = object.get("spec").filter(|s| !s.is_null()) {
        specs.push(("spec".into(), spec));
    }
    if let Some(list) = object.get("specs").and_then(Value::as_array) {
        specs.extend(
            list.iter()
                .enumerate()
                .map(|(i, s)| (format!("specs[{i}]"), s)),
        );
    }
    if specs.is_empty() {
        return Err("it has neither spec nor specs".into());
    }
    if specs.len() > 1 {
        // one object, several subjects: each spec is read as far as it goes, the first
        // subject stands for the object and the others are named as unread
        policy
            .unread
            .push("more than one spec: only the first spec's endpoints are the subject".into());
    }
    for (n, (at, spec)) in specs.iter().enumerate() {
        cilium_spec(policy, at, spec, n == 0)?;
    }
    Ok(())
}

fn cilium_spec(
    policy: &mut LayerPolicy,
    at: &str,
    spec: &Value,
    first: bool,
) -> Result<(), String> {
    let own_namespace = policy.namespace.clone();
    if first {
        policy.subject = match spec.get("endpointSelector") {
            Some(sel) => cilium_selector(sel, own_namespace.as_deref()),
            None => {
                policy
                    .unread
                    .push(format!("{at} selects nodes, not endpoints"));
                None
            }
        };
    }
    let mut isolation = Isolation::default();
    for (field, egress, action) in [
        ("ingress", false, Action::Allow),
        ("ingressDeny", false, Action::Deny),
        ("egress", true, Action::Allow),
        ("egressDeny", true, Action::Deny),
    ] {
        let Some(rules) = spec.get(field) else {
            continue;
        };
        let rules = rules
            .as_array()
            .ok_or(format!("{at}.{field} is not a list"))?;
        if egress {
            isolation.egress = true;
        } else {
            isolation.ingress = true;
        }
        for (i, rule) in rules.iter().enumerate() {
            let path = format!("{at}.{field}[{i}]");
            let parsed = cilium_rule(rule, &path, egress, action, own_namespace.as_deref());
            if egress {
                policy.egress.push(parsed);
            } else {
                policy.ingress.push(parsed);
            }
        }
    }
    let default_deny = &spec["enableDefaultDeny"];
    if default_deny["ingress"] == Value::Bool(false) {
        isolation.ingress = false;
    }
    if default_deny["egress"] == Value::Bool(false) {
        isolation.egress = false;
    }
    policy.isolation.ingress |= isolation.ingress;
    policy.isolation.egress |= isolation.egress;
    Ok(())
}

fn cilium_rule(
    rule: &Value,
    path: &str,
    egress: bool,
    action: Action,
    own_namespace: Option<&str>,
) -> LayerRule {
    let (endpoints, entities, cidr, cidr_set) = if egress {
        ("toEndpoints", "toEntities", "toCIDR", "toCIDRSet")
    } else {
        ("fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet")
    };
    let mut peers = Vec::new();
    let mut l3 = false;
    if let Some(list) = rule[endpoints].as_array() {
        l3 = true;
        for sel in list {
            peers.push(
                cilium_selector(sel, own_namespace)
                    .map_or_else(|| Peer::Unread(format!("{endpoints} {sel}")), Peer::Pods),
            );
        }
    }
    if let Some(list) = rule[entities].as_array() {
        l3 = true;
        peers.extend(list.iter().map(|e| entity(e.as_str().unwrap_or_default())));
    }
    let mut nets = Vec::new();
    for c in rule[cidr].as_array().into_iter().flatten() {
        l3 = true;
        match c.as_str().and_then(|c| c.parse().ok()) {
            Some(net) => nets.push(net),
            None => peers.push(Peer::Unread(format!("{cidr} {c}"))),
        }
    }
    for c in rule[cidr_set].as_array().into_iter().flatten() {
        l3 = true;
        match c["cidr"].as_str().and_then(|c| c.parse().ok()) {
            Some(net) => nets.push(net),
            None => peers.push(Peer::Unread(format!("{cidr_set} {c}"))),
        }
    }
    if !nets.is_empty() {
        peers.push(Peer::CiliumCidrs(nets));
    }
    if let Some(list) = rule["toFQDNs"].as_array() {
        l3 = true;
        let names = list
            .iter()
            .filter_map(|f| f["matchName"].as_str().or(f["matchPattern"].as_str()))
            .map(String::from)
            .collect();
        peers.push(Peer::Fqdns(names));
    }
    for unread in [
        "toServices",
        "toGroups",
        "toNodes",
        "fromNodes",
        "toRequires",
        "fromRequires",
    ] {
        if rule.get(unread).is_some() {
            l3 = true;
            peers.push(Peer::Unread(format!("{unread} (not read by the guard)")));
        }
    }
    let (ports, dns_proxy) = cilium_ports(&rule["toPorts"]);
    // a rule with ports only applies to every peer; an empty rule `{}` allows nothing
    if !l3 && ports.is_some() {
        peers.push(Peer::Anything);
    }
    LayerRule {
        name: path.to_string(),
        path: path.to_string(),
        action,
        peers,
        ports,
        dns_proxy,
    }
}

fn entity(name: &str) -> Peer {
    match name {
        "all" => Peer::Anything,
        "cluster" => Peer::Pods(Group::everything()),
        "host" | "remote-node" => Peer::Nodes,
        other => Peer::Entity(other.to_string()),
    }
}

/// `toPorts: [{ports: [{port, endPort, protocol}], rules: {dns: [...]}}]`: `None` when
/// absent (every port). Protocol `ANY` (or none) stands for TCP, UDP and SCTP; port `0` for
/// every port.
fn cilium_ports(value: &Value) -> (Option<Vec<PortMatch>>, bool) {
    let Some(list) = value.as_array() else {
        return (None, false);
    };
    let mut out = Vec::new();
    let mut dns_proxy = false;
    for entry in list {
        dns_proxy |= entry["rules"]["dns"]
            .as_array()
            .is_some_and(|d| !d.is_empty());
        let Some(ports) = entry["ports"].as_array() else {
            // rules without ports: every port
            out.extend(any_protocol(1, 65535));
            continue;
        };
        for p in ports {
            let port = &p["port"];
            let (start, end) = match int(port) {
                Some(0) | None if port.is_null() => (1, 65535),
                Some(0) => (1, 65535),
                Some(n) => (n, int(&p["endPort"]).filter(|e| *e >= n).unwrap_or(n)),
                None => {
                    out.push(PortMatch::Named(
                        port.as_str().unwrap_or_default().to_string(),
                    ));
                    continue;
                }
            };
            match p["protocol"].as_str().unwrap_or("ANY") {
                "ANY" => out.extend(any_protocol(start, end)),
                other => {
                    if let Some(protocol) = protocol(&Value::String(other.to_string())) {
                        out.push(PortMatch::Range {
                            protocol,
                            start,
                            end,
                        });
                    }
                }
            }
        }
    }
    (Some(out), dns_proxy)
}

fn any_protocol(start: i32, end: i32) -> Vec<PortMatch> {
    [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
        .into_iter()
        .map(|protocol| PortMatch::Range {
            protocol,
            start,
            end,
        })
        .collect()
}

/// A Cilium endpoint selector as a [`Group`]: requirements on the endpoint's namespace
/// (`io.kubernetes.pod.namespace`, or its labels `io.cilium.k8s.namespace.labels.KEY`)
/// select namespaces, the others pods. Source prefixes (`k8s:`, `any:`) are dropped.
/// Without a namespace requirement, a CiliumNetworkPolicy means its own namespace and a
/// clusterwide policy every namespace.
fn cilium_selector(value: &Value, own_namespace: Option<&str>) -> Option<Group> {
    let sel: LabelSelector = label_selector(value)?;
    let mut namespaces = LabelSelector::default();
    let mut pods = LabelSelector::default();
    let target = |key: &str| -> (bool, String) {
        let key = key
            .strip_prefix("k8s:")
            .or_else(|| key.strip_prefix("any:"))
            .unwrap_or(key);
        if key == CILIUM_NAMESPACE {
            (true, NAMESPACE_NAME_LABEL.to_string())
        } else if let Some(label) = key.strip_prefix(CILIUM_NAMESPACE_LABELS) {
            (true, label.to_string())
        } else {
            (false, key.to_string())
        }
    };
    for (k, v) in sel.match_labels.iter().flatten() {
        let (ns, key) = target(k);
        let into = if ns { &mut namespaces } else { &mut pods };
        into.match_labels
            .get_or_insert_with(Default::default)
            .insert(key, v.clone());
    }
    for e in sel.match_expressions.iter().flatten() {
        let (ns, key) = target(&e.key);
        let into = if ns { &mut namespaces } else { &mut pods };
        into.match_expressions
            .get_or_insert_with(Vec::new)
            .push(LabelSelectorRequirement { key, ..e.clone() });
    }
    if let (true, Some(ns)) = (
        crate::netpol::selector::is_empty(&namespaces),
        own_namespace,
    ) {
        namespaces = crate::netpol::selector::from_labels(
            &[(NAMESPACE_NAME_LABEL.to_string(), ns.to_string())].into(),
        );
    }
    Some(Group { namespaces, pods })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).expect("yaml")
    }

    #[test]
    fn admin_network_policy_reads_subject_rules_and_ports() {
        let p = layer(&yaml(
            "apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: dns}
spec:
  priority: 10
  subject: {namespaces: {}}
  egress:
  - name: dns
    action: Allow
    to: [{pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}}]
    ports: [{portNumber: {protocol: UDP, port: 53}}, {namedPort: dns-tcp}, {portRange: {start: 1000, end: 2000}}]
  - name: out
    action: Deny
    to: [{networks: [0.0.0.0/0]}, {nodes: {}}, {bogus: {}}]",
        ))
        .expect("decoded");
        assert_eq!((p.tier, p.priority), (Tier::Admin, 10));
        assert_eq!(p.subject, Some(Group::everything()));
        assert_eq!(p.egress.len(), 2);
        assert_eq!(p.egress[0].name, "dns");
        assert_eq!(
            p.egress[0].ports.as_deref(),
            Some(
                &[
                    PortMatch::Range {
                        protocol: Protocol::Udp,
                        start: 53,
                        end: 53
                    },
                    PortMatch::Named("dns-tcp".into()),
                    PortMatch::Range {
                        protocol: Protocol::Tcp,
                        start: 1000,
                        end: 2000
                    },
                ][..]
            )
        );
        assert_eq!(p.egress[1].action, Action::Deny);
        assert!(matches!(p.egress[1].peers[0], Peer::Networks(_)));
        assert_eq!(p.egress[1].peers[1], Peer::Nodes);
        assert!(matches!(p.egress[1].peers[2], Peer::Unread(_)));
        assert_eq!(p.describe(), "AdminNetworkPolicy dns, priority 10");
    }

    #[test]
    fn cluster_network_policy_reads_tier_accept_and_protocols() {
        let p = layer(&yaml(
            "apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: base}
spec:
  tier: Baseline
  priority: 3
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: a}}}}
  egress:
  - name: dns
    action: Accept
    to: [{namespaces: {}}]
    protocols: [{udp: {destinationPort: {number: 53}}}, {tcp: {destinationPort: {range: {start: 50, end: 60}}}}, {sctp: {}}, {destinationNamedPort: dns}]",
        ))
        .expect("decoded");
        assert_eq!(p.tier, Tier::Baseline);
        assert_eq!(p.egress[0].action, Action::Allow);
        let ports = p.egress[0].ports.clone().expect("ports");
        assert_eq!(ports.len(), 4);
        assert_eq!(
            ports[2],
            PortMatch::Range {
                protocol: Protocol::Sctp,
                start: 1,
                end: 65535
            }
        );
        // v1alpha1's Allow is not an action of v1alpha2
        let err = layer(&yaml(
            "apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: x}
spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Allow, to: []}]}",
        ));
        assert!(matches!(err, Err(LayerError::Malformed { .. })), "{err:?}");
    }

    #[test]
    fn cilium_selectors_split_namespace_and_pod_requirements() {
        let p = layer(&yaml(
            "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toEndpoints:
    - matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s:k8s-app: kube-dns}
    - matchLabels: {app: db}
    toPorts: [{ports: [{port: '53', protocol: ANY}], rules: {dns: [{matchPattern: '*'}]}}]
  - toPorts: [{ports: [{port: '443'}]}]
  - toFQDNs: [{matchName: example.com}]
  egressDeny:
  - toEntities: [world]",
        ))
        .expect("decoded");
        assert_eq!(p.namespace.as_deref(), Some("shop"));
        let subject = p.subject.clone().expect("subject");
        assert_eq!(
            subject.namespaces.match_labels.expect("ns")["kubernetes.io/metadata.name"],
            "shop"
        );
        let Peer::Pods(dns) = &p.egress[0].peers[0] else {
            panic!("{:?}", p.egress[0].peers)
        };
        assert_eq!(
            dns.namespaces.match_labels.as_ref().expect("ns")["kubernetes.io/metadata.name"],
            "kube-system"
        );
        assert_eq!(
            dns.pods.match_labels.as_ref().expect("pods")["k8s-app"],
            "kube-dns"
        );
        // no namespace named: the policy's own
        let Peer::Pods(db) = &p.egress[0].peers[1] else {
            panic!()
        };
        assert_eq!(
            db.namespaces.match_labels.as_ref().expect("ns")["kubernetes.io/metadata.name"],
            "shop"
        );
        assert!(p.egress[0].dns_proxy);
        assert_eq!(p.egress[0].ports.as_ref().map(Vec::len), Some(3));
        assert_eq!(p.egress[1].peers, vec![Peer::Anything]);
        assert!(matches!(p.egress[2].peers[0], Peer::Fqdns(_)));
        assert_eq!(p.egress[3].action, Action::Deny);
        assert_eq!(p.egress[3].peers, vec![Peer::Entity("world".into())]);
        assert_eq!(
            p.isolation,
            Isolation {
                ingress: false,
                egress: true
            }
        );
    }

    #[test]
    fn cilium_default_deny_can_be_switched_off() {
        let p = layer(&yaml(
            "apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: dns}
spec:
  endpointSelector: {}
  enableDefaultDeny: {egress: false}
  egress: [{toEndpoints: [{matchLabels: {k8s-app: kube-dns}}]}]",
        ))
        .expect("decoded");
        assert!(!p.isolation.egress);
        // a clusterwide policy without a namespace means every namespace
        assert_eq!(p.subject, Some(Group::everything()));
        let Peer::Pods(g) = &p.egress[0].peers[0] else {
            panic!()
        };
        assert!(crate::netpol::selector::is_empty(&g.namespaces));
    }

    #[test]
    fn malformed_objects_are_errors_not_panics() {
        let cases = [
            "{apiVersion: v1, kind: Pod, metadata: {name: x}}",
            "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {}}",
            "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: x}, spec: 3}",
            "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: x}, spec: {priority: big, subject: {namespaces: {}}}}",
            "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: x}, spec: {priority: 1, subject: {}, egress: 7}}",
            "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: x}, spec: {priority: 1, subject: {}, egress: [{action: Maybe}]}}",
            "{apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, metadata: {name: x}}",
            "{apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, metadata: {name: x}, spec: {endpointSelector: {}, egress: {}}}",
            // another version is not read as this one
            "{apiVersion: policy.networking.k8s.io/v1beta1, kind: AdminNetworkPolicy, metadata: {name: x}, spec: {}}",
        ];
        for case in cases {
            assert!(layer(&yaml(case)).is_err(), "{case}");
        }
        // an unreadable subject is kept and named, not an error
        let p = layer(&yaml(
            "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: x}, spec: {priority: 1, subject: {nodes: {}}}}",
        ))
        .expect("decoded");
        assert!(p.subject.is_none() && !p.unread.is_empty());
    }
}
