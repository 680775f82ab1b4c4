//! Who can reach whom: the allowed connections between workloads, and between workloads and
//! the addresses outside them, exactly as Kubernetes decides them.
//!
//! A connection from `s` to `d` on a port is allowed when both ends allow it: `s`'s egress
//! (open unless some policy selecting `s` isolates egress, and then admitted when one rule of
//! those policies admits `d` on that port) and `d`'s ingress (the same with `s`). Policies
//! are additive: only their union counts, never their order.
//!
//! Complexity, for W workloads, P policies of R rules of K peers each: compiling costs
//! O(P·R·K·W) selector matches (each peer's workloads become a bit set); the pairs cost
//! O(W²·r) with r the rules of the policies that select the two ends, with ports computed
//! once per distinct set of admitting rules; addresses cost O(A·W·r) for the A ranges the
//! `ipBlock`s cut. Memory is O(W² ) connections of 24 bytes, port sets shared.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use fixedbitset::FixedBitSet;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};

use super::external::{self, AddressRange};
use super::ports::PortSet;
use super::workload::Workload;
use crate::netpol::cluster::NAMESPACE_NAME_LABEL;
use crate::netpol::ipblock::Block;
use crate::netpol::policy::{Direction, Subject};
use crate::netpol::ports::Protocol;
use crate::netpol::selector::{Labels, Selector};

/// What the engine reads: the policies, the namespaces' labels and the workloads.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// Labels of the namespaces the input describes. A namespace it does not describe
    /// has only the label Kubernetes gives every namespace (`kubernetes.io/metadata.name`).
    pub namespaces: BTreeMap<String, Labels>,
    pub workloads: Vec<Workload>,
    pub policies: Vec<NetworkPolicy>,
    /// The namespace of objects that name none.
    pub default_namespace: String,
}

impl Input {
    /// A namespace's labels, with the name label Kubernetes always sets.
    pub fn namespace_labels(&self, namespace: &str) -> Labels {
        let mut labels = self.namespaces.get(namespace).cloned().unwrap_or_default();
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string());
        labels
    }
}

/// One end of a connection: a workload (its index in the input) or a group of address
/// ranges (its index in [`Connectivity::externals`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Workload(u32),
    External(u32),
}

/// Traffic allowed from `src` to `dst` on `ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub src: Node,
    pub dst: Node,
    pub ports: Arc<PortSet>,
}

/// The allowed connections of one input.
#[derive(Debug, Clone)]
pub struct Connectivity<'a> {
    pub workloads: &'a [Workload],
    /// Groups of address ranges that every policy treats alike, in address order.
    pub externals: Vec<Vec<AddressRange>>,
    /// Sorted by source, then destination; pairs with no allowed port are left out.
    pub connections: Vec<Connection>,
}

impl Connectivity<'_> {
    /// The name of a node: `namespace/name`, or the address ranges' CIDRs.
    pub fn name(&self, node: Node) -> String {
        match node {
            Node::Workload(i) => self.workloads[i as usize].id(),
            Node::External(i) => self.externals[i as usize]
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// A peer compiled once: selectors parsed, blocks validated. Anything the API server
/// would refuse matches nothing.
#[derive(Debug)]
enum Peer<'a> {
    OwnNamespace(Selector<'a>),
    Namespaces(Selector<'a>, Option<Selector<'a>>),
    Block(Block),
    Nothing,
}

impl<'a> Peer<'a> {
    fn compile(peer: &'a NetworkPolicyPeer) -> Self {
        let parse = |s| Selector::parse(s).ok();
        match (&peer.ip_block, &peer.namespace_selector, &peer.pod_selector) {
            (Some(block), _, _) => Block::parse(block).map_or(Peer::Nothing, Peer::Block),
            (None, Some(namespaces), pods) => match (parse(namespaces), pods.as_ref().map(parse)) {
                (Some(ns), None) => Peer::Namespaces(ns, None),
                (Some(ns), Some(Some(pods))) => Peer::Namespaces(ns, Some(pods)),
                _ => Peer::Nothing,
            },
            (None, None, Some(pods)) => parse(pods).map_or(Peer::Nothing, Peer::OwnNamespace),
            (None, None, None) => Peer::Nothing,
        }
    }
}

/// Whether an `ipBlock` covers a workload's pods: by their IPs when the input gives them;
/// otherwise only a block of a whole family without `except` is sure to.
fn block_holds(block: &Block, workload: &Workload) -> bool {
    if workload.ips.is_empty() {
        block.is_everything() && block.except.is_empty()
    } else {
        workload.ips.iter().any(|ip| block.contains(*ip))
    }
}

/// One enforced rule of one policy.
#[derive(Debug)]
struct Rule<'a> {
    policy: usize,
    direction: Direction,
    index: usize,
    peers: Vec<Peer<'a>>,
    ports: &'a [NetworkPolicyPort],
    /// For each peer, the workloads it selects.
    selects: Vec<FixedBitSet>,
    /// Their union.
    any: FixedBitSet,
    /// The ports when they name none (then the same for every destination).
    fixed: Option<PortSet>,
}

impl Rule<'_> {
    fn admits_all_peers(&self) -> bool {
        self.peers.is_empty()
    }

    fn admits_workload(&self, w: usize) -> bool {
        self.admits_all_peers() || self.any.contains(w)
    }

    /// The first peer that admits a workload, or an address (`None`: none does; a rule
    /// without peers admits through `Some(None)`).
    fn admitting_peer(&self, end: End<'_>) -> Option<Option<usize>> {
        if self.admits_all_peers() {
            return Some(None);
        }
        let at = match end {
            End::Workload(w, _) => self.selects.iter().position(|s| s.contains(w)),
            End::Address(ip) => self
                .peers
                .iter()
                .position(|p| matches!(p, Peer::Block(b) if b.contains(ip))),
        };
        at.map(Some)
    }

    fn ports_to(&self, destination: Option<&Workload>) -> PortSet {
        match &self.fixed {
            Some(fixed) => fixed.clone(),
            None => PortSet::of_rule(self.ports, destination.map_or(&[], |w| w.ports.as_slice())),
        }
    }

    fn path(&self) -> String {
        format!("spec.{}[{}]", self.direction.field(), self.index)
    }
}

/// An end of a connection for [`Network::explain`]: a workload, or one address.
#[derive(Debug, Clone, Copy)]
pub enum End<'a> {
    Workload(usize, &'a Workload),
    Address(IpAddr),
}

/// The policies of an input compiled against its workloads.
#[derive(Debug)]
pub struct Network<'a> {
    input: &'a Input,
    /// (namespace, name) of each policy.
    policies: Vec<(String, String)>,
    rules: Vec<Rule<'a>>,
    /// Per workload and direction: `None` when no policy isolates it, else the rules of
    /// the policies that do (maybe none: then nothing is admitted).
    isolation: [Vec<Option<Vec<u32>>>; 2],
    /// Per workload and direction: the policies that isolate it (those without rules too).
    isolators: [Vec<Vec<u32>>; 2],
}

fn slot(direction: Direction) -> usize {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

/// The rules as written, for a direction: (peers, ports) of each.
fn written(
    policy: &NetworkPolicy,
    direction: Direction,
) -> Vec<(&[NetworkPolicyPeer], &[NetworkPolicyPort])> {
    let Some(spec) = &policy.spec else {
        return Vec::new();
    };
    match direction {
        Direction::Ingress => spec
            .ingress
            .iter()
            .flatten()
            .map(|r| {
                (
                    r.from.as_deref().unwrap_or_default(),
                    r.ports.as_deref().unwrap_or_default(),
                )
            })
            .collect(),
        Direction::Egress => spec
            .egress
            .iter()
            .flatten()
            .map(|r| {
                (
                    r.to.as_deref().unwrap_or_default(),
                    r.ports.as_deref().unwrap_or_default(),
                )
            })
            .collect(),
    }
}

impl<'a> Network<'a> {
    /// Compiles the input's policies.
    pub fn new(input: &'a Input) -> Self {
        let workloads = &input.workloads;
        let mut by_namespace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, w) in workloads.iter().enumerate() {
            by_namespace
                .entry(w.namespace.as_str())
                .or_default()
                .push(i);
        }
        let namespace_labels: BTreeMap<&str, Labels> = by_namespace
            .keys()
            .map(|ns| (*ns, input.namespace_labels(ns)))
            .collect();
        let mut isolation: [Vec<Option<Vec<u32>>>; 2] =
            [vec![None; workloads.len()], vec![None; workloads.len()]];
        let mut isolators: [Vec<Vec<u32>>; 2] = [
            vec![Vec::new(); workloads.len()],
            vec![Vec::new(); workloads.len()],
        ];
        let mut rules = Vec::new();
        let mut policies = Vec::new();
        for (p, policy) in input.policies.iter().enumerate() {
            let subject = Subject::new(policy, &input.default_namespace);
            policies.push((subject.namespace.to_string(), subject.name.to_string()));
            let selected: Vec<usize> = match policy
                .spec
                .as_ref()
                .and_then(|s| s.pod_selector.as_ref())
                .map(Selector::parse)
            {
                None => by_namespace
                    .get(subject.namespace)
                    .cloned()
                    .unwrap_or_default(),
                Some(Ok(selector)) => by_namespace
                    .get(subject.namespace)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&w| selector.matches(&workloads[w].labels))
                    .collect(),
                Some(Err(_)) => Vec::new(),
            };
            for direction in Direction::BOTH {
                if !subject.isolates(direction) {
                    continue;
                }
                let first = rules.len() as u32;
                for (index, (peers, ports)) in written(policy, direction).into_iter().enumerate() {
                    rules.push(compile_rule(
                        p,
                        direction,
                        index,
                        peers,
                        ports,
                        subject.namespace,
                        &by_namespace,
                        &namespace_labels,
                        workloads,
                    ));
                }
                let ids: Vec<u32> = (first..rules.len() as u32).collect();
                for &w in &selected {
                    isolation[slot(direction)][w]
                        .get_or_insert_with(Vec::new)
                        .extend_from_slice(&ids);
                    isolators[slot(direction)][w].push(p as u32);
                }
            }
        }
        Self {
            input,
            policies,
            rules,
            isolation,
            isolators,
        }
    }

    fn isolating(&self, direction: Direction, w: usize) -> Option<&[u32]> {
        self.isolation[slot(direction)][w].as_deref()
    }

    /// Every `ipBlock` of every enforced rule.
    fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.rules.iter().flat_map(|r| {
            r.peers.iter().filter_map(|p| match p {
                Peer::Block(b) => Some(b),
                _ => None,
            })
        })
    }

    /// The allowed connections of this input.
    pub fn connectivity(&self) -> Connectivity<'a> {
        let ranges = external::split(self.blocks());
        let mut out = together(&[self], &ranges);
        out.pop().unwrap_or_else(|| Connectivity {
            workloads: &self.input.workloads,
            externals: Vec::new(),
            connections: Vec::new(),
        })
    }

    /// Why traffic from `src` to `dst` is allowed or not.
    pub fn explain(&self, src: End<'_>, dst: End<'_>) -> Explanation {
        let dst_workload = match dst {
            End::Workload(_, w) => Some(w),
            End::Address(_) => None,
        };
        let egress = match src {
            End::Workload(s, _) => self.side(Direction::Egress, s, dst, dst_workload),
            End::Address(_) => Side::Open,
        };
        let ingress = match dst {
            End::Workload(d, w) => self.side(Direction::Ingress, d, src, Some(w)),
            End::Address(_) => Side::Open,
        };
        let allowed = egress.ports().intersect(&ingress.ports());
        Explanation {
            egress,
            ingress,
            allowed,
        }
    }

    fn side(
        &self,
        direction: Direction,
        at: usize,
        other: End<'_>,
        destination: Option<&Workload>,
    ) -> Side {
        let Some(rules) = self.isolating(direction, at) else {
            return Side::Open;
        };
        let policy_ref = |p: usize| {
            let (namespace, name) = &self.policies[p];
            PolicyRef {
                namespace: namespace.clone(),
                name: name.clone(),
            }
        };
        let mut admissions = Vec::new();
        for &r in rules {
            let rule = &self.rules[r as usize];
            if let Some(peer) = rule.admitting_peer(other) {
                let path = match peer {
                    Some(i) => format!("{}.{}[{i}]", rule.path(), direction.peers_field()),
                    None => rule.path(),
                };
                admissions.push(Admission {
                    policy: policy_ref(rule.policy),
                    path,
                    ports: rule.ports_to(destination),
                });
            }
        }
        // every isolating policy, those without rules too
        let mut policies: Vec<PolicyRef> = self.isolators[slot(direction)][at]
            .iter()
            .map(|&p| policy_ref(p as usize))
            .collect();
        policies.sort();
        policies.dedup();
        Side::Isolated {
            policies,
            admissions,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn compile_rule<'a>(
    policy: usize,
    direction: Direction,
    index: usize,
    peers: &'a [NetworkPolicyPeer],
    ports: &'a [NetworkPolicyPort],
    policy_namespace: &str,
    by_namespace: &BTreeMap<&str, Vec<usize>>,
    namespace_labels: &BTreeMap<&str, Labels>,
    workloads: &[Workload],
) -> Rule<'a> {
    let peers: Vec<Peer<'a>> = peers.iter().map(Peer::compile).collect();
    let mut selects = Vec::with_capacity(peers.len());
    let mut any = FixedBitSet::with_capacity(workloads.len());
    for peer in &peers {
        let mut set = FixedBitSet::with_capacity(workloads.len());
        match peer {
            Peer::OwnNamespace(pods) => {
                for &w in by_namespace.get(policy_namespace).into_iter().flatten() {
                    set.set(w, pods.matches(&workloads[w].labels));
                }
            }
            Peer::Namespaces(namespaces, pods) => {
                for (ns, members) in by_namespace {
                    if !namespace_labels
                        .get(ns)
                        .is_some_and(|l| namespaces.matches(l))
                    {
                        continue;
                    }
                    for &w in members {
                        set.set(
                            w,
                            pods.as_ref()
                                .is_none_or(|p| p.matches(&workloads[w].labels)),
                        );
                    }
                }
            }
            Peer::Block(block) => {
                for (w, workload) in workloads.iter().enumerate() {
                    set.set(w, block_holds(block, workload));
                }
            }
            Peer::Nothing => {}
        }
        any.union_with(&set);
        selects.push(set);
    }
    let fixed = (!PortSet::names_ports(ports)).then(|| PortSet::of_rule(ports, &[]));
    Rule {
        policy,
        direction,
        index,
        peers,
        ports,
        selects,
        any,
        fixed,
    }
}

/// A policy by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A rule that admits the other end, at `path` (`spec.ingress[1].from[0]`), on `ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub policy: PolicyRef,
    pub path: String,
    pub ports: PortSet,
}

/// One end's say on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// No policy isolates this end in this direction: everything is allowed.
    Open,
    /// Isolated by `policies`; `admissions` are the rules that admit the other end.
    Isolated {
        policies: Vec<PolicyRef>,
        admissions: Vec<Admission>,
    },
}

impl Side {
    /// The ports this end allows.
    pub fn ports(&self) -> PortSet {
        match self {
            Side::Open => PortSet::all(),
            Side::Isolated { admissions, .. } => {
                let mut set = PortSet::none();
                for a in admissions {
                    set.add(&a.ports);
                }
                set
            }
        }
    }
}

/// Why a connection is allowed or not: the source's egress, the destination's ingress,
/// and what both allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub egress: Side,
    pub ingress: Side,
    pub allowed: PortSet,
}

impl Explanation {
    /// Whether a port is allowed.
    pub fn allows(&self, protocol: Protocol, port: u16) -> bool {
        self.allowed.contains(protocol, port)
    }
}

/// What each workload may send to an address range and receive from it.
type Column = Vec<(Arc<PortSet>, Arc<PortSet>)>;

/// Port sets interned: equal sets share one allocation, so connections stay 24 bytes.
#[derive(Debug, Default)]
struct Interner {
    sets: HashMap<PortSet, Arc<PortSet>>,
}

impl Interner {
    fn get(&mut self, set: PortSet) -> Arc<PortSet> {
        self.sets
            .entry(set)
            .or_insert_with_key(|s| Arc::new(s.clone()))
            .clone()
    }
}

/// Computes the connectivity of several inputs over the same address ranges, grouped the
/// same way for all of them (so that `diff` compares like with like).
pub fn together<'a>(networks: &[&Network<'a>], ranges: &[AddressRange]) -> Vec<Connectivity<'a>> {
    let mut interners: Vec<Interner> = networks.iter().map(|_| Interner::default()).collect();
    // columns: for each range, per network, what each workload may send to it and receive
    let mut keys: Vec<Vec<usize>> = Vec::with_capacity(ranges.len());
    let mut columns: Vec<Vec<Column>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        let mut key = Vec::new();
        let mut per_network = Vec::with_capacity(networks.len());
        for (n, network) in networks.iter().enumerate() {
            let column = network.range_column(range, &mut interners[n]);
            key.extend(
                column
                    .iter()
                    .flat_map(|(o, i)| [Arc::as_ptr(o) as usize, Arc::as_ptr(i) as usize]),
            );
            per_network.push(column);
        }
        keys.push(key);
        columns.push(per_network);
    }
    // ranges that every network treats alike form one node
    let mut group_of_key: HashMap<&[usize], usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (r, key) in keys.iter().enumerate() {
        let g = *group_of_key.entry(key.as_slice()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(r);
    }
    let externals: Vec<Vec<AddressRange>> = groups
        .iter()
        .map(|members| merge_adjacent(members.iter().map(|&r| ranges[r])))
        .collect();
    networks
        .iter()
        .enumerate()
        .map(|(n, network)| {
            let mut connections = network.pairs(&mut interners[n]);
            for (g, members) in groups.iter().enumerate() {
                let column = &columns[members[0]][n];
                for (w, (out, into)) in column.iter().enumerate() {
                    if !out.is_empty() {
                        connections.push(Connection {
                            src: Node::Workload(w as u32),
                            dst: Node::External(g as u32),
                            ports: out.clone(),
                        });
                    }
                    if !into.is_empty() {
                        connections.push(Connection {
                            src: Node::External(g as u32),
                            dst: Node::Workload(w as u32),
                            ports: into.clone(),
                        });
                    }
                }
            }
            connections.sort_by_key(|c| (c.src, c.dst));
            Connectivity {
                workloads: &network.input.workloads,
                externals: externals.clone(),
                connections,
            }
        })
        .collect()
}

/// Ranges in address order, adjacent ones joined.
fn merge_adjacent(ranges: impl Iterator<Item = AddressRange>) -> Vec<AddressRange> {
    let mut out: Vec<AddressRange> = Vec::new();
    for range in ranges {
        match out.last_mut() {
            Some(last) if last.touches(&range) => last.last = range.last,
            _ => out.push(range),
        }
    }
    out
}

impl Network<'_> {
    /// Every block of every input of a `diff`, for [`together`].
    pub fn ranges(networks: &[&Network<'_>]) -> Vec<AddressRange> {
        external::split(networks.iter().flat_map(|n| n.blocks()))
    }

    /// What each workload may send to a range and receive from it.
    fn range_column(&self, range: &AddressRange, interner: &mut Interner) -> Column {
        let all = interner.get(PortSet::all());
        let admits = |rule: &Rule<'_>| {
            rule.admits_all_peers()
                || rule
                    .peers
                    .iter()
                    .any(|p| matches!(p, Peer::Block(b) if range.in_block(b)))
        };
        let workloads = &self.input.workloads;
        (0..workloads.len())
            .map(|w| {
                let out = match self.isolating(Direction::Egress, w) {
                    None => all.clone(),
                    Some(rules) => interner.get(self.union(rules, |r| admits(r), None)),
                };
                let into = match self.isolating(Direction::Ingress, w) {
                    None => all.clone(),
                    Some(rules) => {
                        interner.get(self.union(rules, |r| admits(r), Some(&workloads[w])))
                    }
                };
                (out, into)
            })
            .collect()
    }

    /// The ports of the rules among `rules` that `admits`, toward `destination`.
    fn union(
        &self,
        rules: &[u32],
        admits: impl Fn(&Rule<'_>) -> bool,
        destination: Option<&Workload>,
    ) -> PortSet {
        let mut set = PortSet::none();
        for &r in rules {
            let rule = &self.rules[r as usize];
            if admits(rule) {
                set.add(&rule.ports_to(destination));
            }
        }
        set
    }

    /// The connections between workloads.
    fn pairs(&self, interner: &mut Interner) -> Vec<Connection> {
        const OPEN: u32 = u32::MAX;
        const BETWEEN: u32 = u32::MAX - 1;
        let workloads = &self.input.workloads;
        let all = interner.get(PortSet::all());
        let mut cache: HashMap<Vec<u32>, Arc<PortSet>> = HashMap::new();
        let mut key: Vec<u32> = Vec::new();
        let mut connections = Vec::new();
        for s in 0..workloads.len() {
            let egress = self.isolating(Direction::Egress, s);
            for (d, destination) in workloads.iter().enumerate() {
                let ingress = self.isolating(Direction::Ingress, d);
                if egress.is_none() && ingress.is_none() {
                    connections.push(Connection {
                        src: Node::Workload(s as u32),
                        dst: Node::Workload(d as u32),
                        ports: all.clone(),
                    });
                    continue;
                }
                key.clear();
                let mut named = false;
                match egress {
                    None => key.push(OPEN),
                    Some(rules) => {
                        for &r in rules {
                            let rule = &self.rules[r as usize];
                            if rule.admits_workload(d) {
                                key.push(r);
                                named |= rule.fixed.is_none();
                            }
                        }
                    }
                }
                key.push(BETWEEN);
                match ingress {
                    None => key.push(OPEN),
                    Some(rules) => {
                        for &r in rules {
                            let rule = &self.rules[r as usize];
                            if rule.admits_workload(s) {
                                key.push(r);
                                named |= rule.fixed.is_none();
                            }
                        }
                    }
                }
                if named {
                    // named ports resolve on the destination
                    key.push(BETWEEN);
                    key.push(d as u32);
                }
                let ports = match cache.get(key.as_slice()) {
                    Some(ports) => ports.clone(),
                    None => {
                        let side = |rules: Option<&[u32]>, other: usize| match rules {
                            None => PortSet::all(),
                            Some(rules) => {
                                self.union(rules, |r| r.admits_workload(other), Some(destination))
                            }
                        };
                        let set = side(egress, d).intersect(&side(ingress, s));
                        let ports = interner.get(set);
                        cache.insert(key.clone(), ports.clone());
                        ports
                    }
                };
                if !ports.is_empty() {
                    connections.push(Connection {
                        src: Node::Workload(s as u32),
                        dst: Node::Workload(d as u32),
                        ports,
                    });
                }
            }
        }
        connections
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::ports::NamedPort;

    fn policies(yaml: &str) -> Vec<NetworkPolicy> {
        serde_yaml_ng::Deserializer::from_str(yaml)
            .map(|d| serde::Deserialize::deserialize(d).expect("policy"))
            .collect()
    }

    fn workload(id: &str, labels: &[(&str, &str)], ports: &[(&str, i32)]) -> Workload {
        let (namespace, name) = id.split_once('/').expect("ns/name");
        Workload {
            kind: "Deployment".into(),
            namespace: namespace.into(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ports: ports
                .iter()
                .map(|(n, p)| NamedPort {
                    name: n.to_string(),
                    port: *p,
                    protocol: Protocol::Tcp,
                })
                .collect(),
            ips: Vec::new(),
            host_network: false,
            owners: Vec::new(),
        }
    }

    fn input(policy_yaml: &str) -> Input {
        Input {
            namespaces: BTreeMap::new(),
            workloads: vec![
                workload("shop/web", &[("app", "web")], &[("http", 8080)]),
                workload("shop/api", &[("app", "api")], &[("http", 9090)]),
                workload("ops/probe", &[("app", "probe")], &[]),
            ],
            policies: policies(policy_yaml),
            default_namespace: "default".into(),
        }
    }

    fn listed(input: &Input) -> Vec<String> {
        let c = Network::new(input).connectivity();
        c.connections
            .iter()
            .map(|k| format!("{} -> {}: {}", c.name(k.src), c.name(k.dst), k.ports))
            .collect()
    }

    const POLICIES: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - from: [{ipBlock: {cidr: 192.0.2.0/24}}]
    ports: [{port: 443}]
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ops}}}, {podSelector: {}}]
    ports: [{port: http}]
  egress:
  - to: [{podSelector: {matchLabels: {app: api}}}]
    ports: [{port: http}]
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
    ports: [{port: 443}, {port: http}]
";

    #[test]
    fn named_ports_resolve_per_destination_and_blocks_cut_addresses() {
        let input = input(POLICIES);
        assert_eq!(
            listed(&input),
            [
                // shop/web may send to api's `http` (9090), and receive on its own (8080)
                "shop/web -> shop/api: TCP 9090",
                "shop/web -> 0.0.0.0/5,8.0.0.0/7,11.0.0.0/8,12.0.0.0/6,16.0.0.0/4,32.0.0.0/3,64.0.0.0/2,128.0.0.0/2,192.0.0.0/23,192.0.3.0/24,192.0.4.0/22,192.0.8.0/21,192.0.16.0/20,192.0.32.0/19,192.0.64.0/18,192.0.128.0/17,192.1.0.0/16,192.2.0.0/15,192.4.0.0/14,192.8.0.0/13,192.16.0.0/12,192.32.0.0/11,192.64.0.0/10,192.128.0.0/9,193.0.0.0/8,194.0.0.0/7,196.0.0.0/6,200.0.0.0/5,208.0.0.0/4,224.0.0.0/3: TCP 443",
                "shop/web -> 192.0.2.0/24: TCP 443",
                // every pod of shop is selected by `web`, api too: it may reach its own `http`
                "shop/api -> shop/api: TCP 9090",
                "shop/api -> 0.0.0.0/5,8.0.0.0/7,11.0.0.0/8,12.0.0.0/6,16.0.0.0/4,32.0.0.0/3,64.0.0.0/2,128.0.0.0/2,192.0.0.0/23,192.0.3.0/24,192.0.4.0/22,192.0.8.0/21,192.0.16.0/20,192.0.32.0/19,192.0.64.0/18,192.0.128.0/17,192.1.0.0/16,192.2.0.0/15,192.4.0.0/14,192.8.0.0/13,192.16.0.0/12,192.32.0.0/11,192.64.0.0/10,192.128.0.0/9,193.0.0.0/8,194.0.0.0/7,196.0.0.0/6,200.0.0.0/5,208.0.0.0/4,224.0.0.0/3: TCP 443",
                "shop/api -> 192.0.2.0/24: TCP 443",
                "ops/probe -> shop/web: TCP 8080",
                "ops/probe -> shop/api: TCP 9090",
                "ops/probe -> ops/probe: All",
                "ops/probe -> 0.0.0.0/5,8.0.0.0/7,11.0.0.0/8,12.0.0.0/6,16.0.0.0/4,32.0.0.0/3,64.0.0.0/2,128.0.0.0/2,192.0.0.0/23,192.0.3.0/24,192.0.4.0/22,192.0.8.0/21,192.0.16.0/20,192.0.32.0/19,192.0.64.0/18,192.0.128.0/17,192.1.0.0/16,192.2.0.0/15,192.4.0.0/14,192.8.0.0/13,192.16.0.0/12,192.32.0.0/11,192.64.0.0/10,192.128.0.0/9,193.0.0.0/8,194.0.0.0/7,196.0.0.0/6,200.0.0.0/5,208.0.0.0/4,224.0.0.0/3: All",
                // ranges every policy treats alike are one node
                "ops/probe -> 10.0.0.0/8,::/0: All",
                "ops/probe -> 192.0.2.0/24: All",
                "0.0.0.0/5,8.0.0.0/7,11.0.0.0/8,12.0.0.0/6,16.0.0.0/4,32.0.0.0/3,64.0.0.0/2,128.0.0.0/2,192.0.0.0/23,192.0.3.0/24,192.0.4.0/22,192.0.8.0/21,192.0.16.0/20,192.0.32.0/19,192.0.64.0/18,192.0.128.0/17,192.1.0.0/16,192.2.0.0/15,192.4.0.0/14,192.8.0.0/13,192.16.0.0/12,192.32.0.0/11,192.64.0.0/10,192.128.0.0/9,193.0.0.0/8,194.0.0.0/7,196.0.0.0/6,200.0.0.0/5,208.0.0.0/4,224.0.0.0/3 -> ops/probe: All",
                "10.0.0.0/8,::/0 -> ops/probe: All",
                "192.0.2.0/24 -> shop/web: TCP 443",
                "192.0.2.0/24 -> shop/api: TCP 443",
                "192.0.2.0/24 -> ops/probe: All",
            ]
        );
    }

    #[test]
    fn explain_names_the_admitting_rule_or_the_isolation() {
        let input = input(POLICIES);
        let network = Network::new(&input);
        let end = |i: usize| End::Workload(i, &input.workloads[i]);
        // allowed: ops/probe is open for egress, shop/api admits it through its second rule
        let e = network.explain(end(2), end(1));
        assert_eq!(e.egress, Side::Open);
        let Side::Isolated {
            policies,
            admissions,
        } = &e.ingress
        else {
            panic!("api is isolated")
        };
        assert_eq!(
            policies.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["shop/default-deny", "shop/web"]
        );
        assert_eq!(admissions.len(), 1);
        assert_eq!(admissions[0].path, "spec.ingress[1].from[0]");
        assert_eq!(admissions[0].ports.to_string(), "TCP 9090");
        assert!(e.allows(Protocol::Tcp, 9090) && !e.allows(Protocol::Tcp, 8080));
        // denied: api may not send to web (web's egress rule admits only app=api)
        let e = network.explain(end(1), end(0));
        let Side::Isolated { admissions, .. } = &e.egress else {
            panic!("api's egress is isolated")
        };
        assert!(admissions.is_empty());
        assert!(e.allowed.is_empty());
        // an address: 192.0.2.9 reaches web on 443 through the first ingress rule's block
        let e = network.explain(End::Address("192.0.2.9".parse().expect("ip")), end(0));
        let Side::Isolated { admissions, .. } = &e.ingress else {
            panic!("web is isolated")
        };
        assert_eq!(admissions[0].path, "spec.ingress[0].from[0]");
        assert_eq!(e.allowed.to_string(), "TCP 443");
        // and web reaches 10.1.2.3 on nothing: the except cuts it out
        let e = network.explain(end(0), End::Address("10.1.2.3".parse().expect("ip")));
        assert!(e.allowed.is_empty());
    }

    #[test]
    fn no_policies_means_everything_reaches_everything() {
        let input = input("");
        let listed = listed(&input);
        assert_eq!(
            listed.len(),
            9 + 3 * 2,
            "3x3 pairs, each workload to and from the addresses"
        );
        assert!(listed.contains(&"shop/web -> 0.0.0.0/0,::/0: All".to_string()));
        assert!(listed.iter().all(|l| l.ends_with(": All")));
    }
}
