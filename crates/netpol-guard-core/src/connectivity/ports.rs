//! Sets of ports: for each protocol NetworkPolicy names (TCP, UDP, SCTP), a sorted list of
//! disjoint inclusive ranges within 1-65535. A rule's `ports` become one of these once its
//! named ports are resolved against the destination pod.

use std::fmt;

use k8s_openapi::api::networking::v1::NetworkPolicyPort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::netpol::ports::{NamedPort, Protocol};

/// The protocols, in the order sets hold and print them.
pub const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

const MIN: u16 = 1;
const MAX: u16 = 65535;

fn slot(protocol: Protocol) -> usize {
    match protocol {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Sctp => 2,
    }
}

/// Ports of the three protocols.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSet {
    ranges: [Vec<(u16, u16)>; 3],
}

impl PortSet {
    /// No port at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every port of every protocol.
    pub fn all() -> Self {
        Self {
            ranges: [vec![(MIN, MAX)], vec![(MIN, MAX)], vec![(MIN, MAX)]],
        }
    }

    /// Every port of one protocol.
    pub fn protocol(protocol: Protocol) -> Self {
        Self::range(protocol, MIN, MAX)
    }

    /// The ports `start..=end` of one protocol (clamped to 1-65535; empty when reversed).
    pub fn range(protocol: Protocol, start: u16, end: u16) -> Self {
        let mut set = Self::none();
        let start = start.max(MIN);
        if start <= end {
            set.ranges[slot(protocol)].push((start, end));
        }
        set
    }

    /// One port of one protocol.
    pub fn port(protocol: Protocol, port: u16) -> Self {
        Self::range(protocol, port, port)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.iter().all(Vec::is_empty)
    }

    pub fn is_all(&self) -> bool {
        self.ranges.iter().all(|r| r.as_slice() == [(MIN, MAX)])
    }

    /// The ranges of one protocol.
    pub fn ranges(&self, protocol: Protocol) -> &[(u16, u16)] {
        &self.ranges[slot(protocol)]
    }

    pub fn contains(&self, protocol: Protocol, port: u16) -> bool {
        self.ranges(protocol)
            .iter()
            .any(|&(start, end)| (start..=end).contains(&port))
    }

    /// Adds every port of `other`.
    pub fn add(&mut self, other: &PortSet) {
        for (mine, theirs) in self.ranges.iter_mut().zip(&other.ranges) {
            if theirs.is_empty() {
                continue;
            }
            mine.extend_from_slice(theirs);
            normalize(mine);
        }
    }

    pub fn union(&self, other: &PortSet) -> PortSet {
        let mut set = self.clone();
        set.add(other);
        set
    }

    /// The ports in both sets.
    pub fn intersect(&self, other: &PortSet) -> PortSet {
        let mut set = PortSet::none();
        for (i, out) in set.ranges.iter_mut().enumerate() {
            let (a, b) = (&self.ranges[i], &other.ranges[i]);
            let (mut x, mut y) = (0, 0);
            while x < a.len() && y < b.len() {
                let start = a[x].0.max(b[y].0);
                let end = a[x].1.min(b[y].1);
                if start <= end {
                    out.push((start, end));
                }
                if a[x].1 < b[y].1 {
                    x += 1;
                } else {
                    y += 1;
                }
            }
        }
        set
    }

    /// The ports of `self` that `other` lacks.
    pub fn minus(&self, other: &PortSet) -> PortSet {
        let mut set = PortSet::none();
        for (i, out) in set.ranges.iter_mut().enumerate() {
            for &(start, end) in &self.ranges[i] {
                let mut from = u32::from(start);
                for &(cut_start, cut_end) in &other.ranges[i] {
                    if u32::from(cut_end) < from || cut_start > end {
                        continue;
                    }
                    if u32::from(cut_start) > from {
                        out.push((from as u16, cut_start - 1));
                    }
                    from = u32::from(cut_end) + 1;
                }
                if from <= u32::from(end) {
                    out.push((from as u16, end));
                }
            }
        }
        set
    }

    /// What one rule's `ports` admit on a destination with these container ports: every
    /// port when `ports` is empty; a missing `port` is every port of the protocol (TCP
    /// when unset); `endPort` makes a range; a name resolves to the destination's container
    /// port of that name and protocol, and to nothing when it has none. Unknown protocols
    /// admit nothing.
    pub fn of_rule(ports: &[NetworkPolicyPort], destination: &[NamedPort]) -> PortSet {
        if ports.is_empty() {
            return PortSet::all();
        }
        let mut set = PortSet::none();
        for port in ports {
            let Some(protocol) = Protocol::of(port) else {
                continue;
            };
            match &port.port {
                None => set.add(&PortSet::protocol(protocol)),
                Some(IntOrString::Int(start)) => {
                    let end = port.end_port.unwrap_or(*start);
                    set.add(&PortSet::range(protocol, clamp(*start), clamp(end)));
                }
                Some(IntOrString::String(name)) => {
                    for named in destination {
                        if named.name == *name && named.protocol == protocol {
                            let number = clamp(named.port);
                            set.add(&PortSet::range(protocol, number, number));
                        }
                    }
                }
            }
        }
        set
    }

    /// Whether a rule's ports hold a name (their set then depends on the destination).
    pub fn names_ports(ports: &[NetworkPolicyPort]) -> bool {
        ports
            .iter()
            .any(|p| matches!(p.port, Some(IntOrString::String(_))))
    }
}

/// A port number as a set bound: out-of-range numbers (the API server refuses them) fall
/// outside 1-65535 so that they admit nothing.
fn clamp(number: i32) -> u16 {
    u16::try_from(number).unwrap_or(if number < 0 { 0 } else { MAX })
}

/// Sorts and merges overlapping or touching ranges.
fn normalize(ranges: &mut Vec<(u16, u16)>) {
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for &(start, end) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if u32::from(start) <= u32::from(last.1) + 1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    *ranges = merged;
}

/// `All`, `none`, or per protocol: `TCP` (every port), `TCP 80,443,8000-8080`; protocols
/// separated by `; `.
impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("All");
        }
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for protocol in PROTOCOLS {
            let ranges = self.ranges(protocol);
            if ranges.is_empty() {
                continue;
            }
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{protocol}")?;
            if ranges == [(MIN, MAX)] {
                continue;
            }
            for (i, (start, end)) in ranges.iter().enumerate() {
                f.write_str(if i == 0 { " " } else { "," })?;
                if start == end {
                    write!(f, "{start}")?;
                } else {
                    write!(f, "{start}-{end}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::policy::tests::policy;

    fn ports_of(yaml: &str) -> Vec<NetworkPolicyPort> {
        serde_yaml_ng::from_str(yaml).expect("ports")
    }

    fn named(name: &str, port: i32, protocol: Protocol) -> NamedPort {
        NamedPort {
            name: name.into(),
            port,
            protocol,
        }
    }

    #[test]
    fn rule_ports_follow_the_api_defaults() {
        let web = [
            named("http", 8080, Protocol::Tcp),
            named("dns", 53, Protocol::Udp),
        ];
        let table: &[(&str, &str, &str)] = &[
            ("no ports: everything", "[]", "All"),
            ("protocol defaults to TCP", "[{port: 80}]", "TCP 80"),
            ("a protocol without port", "[{protocol: UDP}]", "UDP"),
            (
                "endPort makes a range",
                "[{port: 8000, endPort: 8080}]",
                "TCP 8000-8080",
            ),
            (
                "a name resolves on the destination",
                "[{port: http}]",
                "TCP 8080",
            ),
            ("a name needs the same protocol", "[{port: dns}]", "none"),
            ("a name the pod lacks", "[{port: metrics}]", "none"),
            ("an unknown protocol", "[{port: 80, protocol: tcp}]", "none"),
            (
                "ranges merge",
                "[{port: 80}, {port: 81}, {port: 79, endPort: 80}, {protocol: UDP, port: dns}]",
                "TCP 79-81; UDP 53",
            ),
            (
                "every protocol with no port is All",
                "[{protocol: TCP}, {protocol: UDP}, {protocol: SCTP}]",
                "All",
            ),
        ];
        for (what, yaml, want) in table {
            let got = PortSet::of_rule(&ports_of(yaml), &web);
            assert_eq!(got.to_string(), *want, "{what}");
        }
        // a whole policy's rule, through the model
        let p = policy("spec: {ingress: [{ports: [{port: 443}]}]}");
        let rule = &p
            .spec
            .as_ref()
            .expect("spec")
            .ingress
            .as_ref()
            .expect("ingress")[0];
        let ports = rule.ports.as_deref().unwrap_or_default();
        assert_eq!(PortSet::of_rule(ports, &[]).to_string(), "TCP 443");
    }

    #[test]
    fn set_algebra() {
        let a = PortSet::range(Protocol::Tcp, 80, 90).union(&PortSet::port(Protocol::Udp, 53));
        let b = PortSet::range(Protocol::Tcp, 85, 100);
        assert_eq!(a.intersect(&b).to_string(), "TCP 85-90");
        assert_eq!(a.minus(&b).to_string(), "TCP 80-84; UDP 53");
        assert_eq!(b.minus(&a).to_string(), "TCP 91-100");
        assert_eq!(PortSet::all().minus(&PortSet::all()), PortSet::none());
        assert_eq!(
            PortSet::all()
                .minus(&PortSet::port(Protocol::Tcp, 1))
                .to_string(),
            "TCP 2-65535; UDP; SCTP"
        );
        assert!(PortSet::all().intersect(&a) == a);
        assert!(a.contains(Protocol::Tcp, 85) && !a.contains(Protocol::Tcp, 91));
        assert!(!a.contains(Protocol::Sctp, 85));
    }
}
