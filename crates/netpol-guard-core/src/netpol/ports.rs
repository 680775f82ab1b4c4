//! Port semantics of NetworkPolicy rules: protocol defaults to TCP, `port` may be a number
//! or a container port name, `endPort` turns a number into a range, a missing `port`
//! means every port of the protocol and missing `ports` means every port of every protocol.

use k8s_openapi::api::networking::v1::NetworkPolicyPort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A transport protocol NetworkPolicy can name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize,
)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

/// A named container port (the DNS pods', an EndpointSlice's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPort {
    pub name: String,
    pub port: i32,
    pub protocol: Protocol,
}

impl Protocol {
    /// Reads a rule's protocol; absent means TCP. Unknown values yield `None`.
    pub fn of(port: &NetworkPolicyPort) -> Option<Self> {
        match port.protocol.as_deref() {
            None | Some("TCP") => Some(Self::Tcp),
            Some("UDP") => Some(Self::Udp),
            Some("SCTP") => Some(Self::Sctp),
            Some(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port a destination is known to listen on. `name` is the container port name; named
/// rule ports resolve only against it (and only with the same protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortTarget<'a> {
    pub protocol: Protocol,
    pub number: i32,
    pub name: Option<&'a str>,
}

/// Whether one rule port admits traffic to `target`.
pub fn port_allows(port: &NetworkPolicyPort, target: &PortTarget<'_>) -> bool {
    if Protocol::of(port) != Some(target.protocol) {
        return false;
    }
    match &port.port {
        None => true,
        Some(IntOrString::Int(start)) => {
            let end = port.end_port.unwrap_or(*start);
            (*start..=end).contains(&target.number)
        }
        // A named port matches a container port of that name (and protocol).
        Some(IntOrString::String(name)) => target.name == Some(name.as_str()),
    }
}

/// Whether a rule's `ports` admit traffic to `target` (empty: every port).
pub fn ports_allow(ports: &[NetworkPolicyPort], target: &PortTarget<'_>) -> bool {
    ports.is_empty() || ports.iter().any(|p| port_allows(p, target))
}

/// Whether a rule port names exactly this port number (not as part of a wider range), or
/// one of the given port names.
pub fn names_port(port: &NetworkPolicyPort, number: i32, names: &[&str]) -> bool {
    match &port.port {
        Some(IntOrString::Int(p)) => *p == number && port.end_port.is_none_or(|e| e == number),
        Some(IntOrString::String(n)) => names.contains(&n.as_str()),
        None => false,
    }
}

/// What the API server refuses in one rule port, as its validation words it: protocols
/// other than TCP, UDP and SCTP (case matters), numbers outside 1-65535, names that are
/// not IANA service names (a numeric string is a name, and names need a letter), and
/// `endPort` without a numeric `port` or below it.
pub fn port_problems(port: &NetworkPolicyPort) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(p) = port.protocol.as_deref()
        && Protocol::of(port).is_none()
    {
        problems.push(format!(
            "protocol {p:?} is not supported: the API accepts exactly TCP, UDP or SCTP"
        ));
    }
    let number = |n: i32, field: &str, problems: &mut Vec<String>| {
        if !(1..=65535).contains(&n) {
            problems.push(format!("{field} {n} is outside 1-65535"));
        }
    };
    match (&port.port, port.end_port) {
        (Some(IntOrString::Int(p)), end) => {
            number(*p, "port", &mut problems);
            if let Some(e) = end {
                number(e, "endPort", &mut problems);
                if e < *p {
                    problems.push(format!("endPort {e} is below port {p}"));
                }
            }
        }
        (Some(IntOrString::String(name)), end) => {
            if name.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() {
                problems.push(format!(
                    "port {name:?} is a string, so it is read as a port name, and a name must \
                     contain a letter"
                ));
            } else if !super::names::is_iana_service_name(name) {
                problems.push(format!(
                    "port name {name:?} is not a valid IANA service name (1-15 lowercase \
                     letters, digits and single hyphens, with at least one letter)"
                ));
            }
            if end.is_some() {
                problems.push("endPort may not be used with a named port".to_string());
            }
        }
        (None, Some(_)) => problems.push("endPort may not be used without port".to_string()),
        (None, None) => {}
    }
    problems
}

/// The same port written so that the API server accepts it, where the intent is plain: a
/// numeric string as a number, a protocol in upper case.
pub fn corrected(port: &NetworkPolicyPort) -> NetworkPolicyPort {
    let mut fixed = port.clone();
    if let Some(p) = &port.protocol {
        let upper = p.to_ascii_uppercase();
        if ["TCP", "UDP", "SCTP"].contains(&upper.as_str()) {
            fixed.protocol = Some(upper);
        }
    }
    if let Some(IntOrString::String(s)) = &port.port
        && let Ok(n) = s.parse::<i32>()
    {
        fixed.port = Some(IntOrString::Int(n));
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(yaml: &str) -> NetworkPolicyPort {
        serde_yaml_ng::from_str(yaml).expect("port")
    }

    #[test]
    fn port_matching_table() {
        let dns_udp = PortTarget {
            protocol: Protocol::Udp,
            number: 53,
            name: Some("dns"),
        };
        let dns_tcp = PortTarget {
            protocol: Protocol::Tcp,
            number: 53,
            name: Some("dns-tcp"),
        };
        // (rule port, target, expected)
        let cases = [
            ("{port: 53}", dns_tcp, true),
            // protocol defaults to TCP, so a bare port 53 does not allow UDP
            ("{port: 53}", dns_udp, false),
            ("{protocol: UDP, port: 53}", dns_udp, true),
            ("{protocol: UDP}", dns_udp, true),
            ("{}", dns_tcp, true),
            ("{}", dns_udp, false),
            ("{protocol: UDP, port: 50, endPort: 60}", dns_udp, true),
            ("{protocol: UDP, port: 54, endPort: 60}", dns_udp, false),
            ("{protocol: UDP, port: 40, endPort: 52}", dns_udp, false),
            ("{protocol: UDP, port: dns}", dns_udp, true),
            // the named port exists, but with another protocol
            ("{protocol: TCP, port: dns}", dns_tcp, false),
            ("{protocol: TCP, port: dns-tcp}", dns_tcp, true),
            ("{protocol: UDP, port: domain}", dns_udp, false),
            ("{protocol: SCTP, port: 53}", dns_udp, false),
            ("{protocol: udp, port: 53}", dns_udp, false),
        ];
        for (yaml, target, want) in cases {
            assert_eq!(
                port_allows(&port(yaml), &target),
                want,
                "{yaml} vs {target:?}"
            );
        }
        assert!(ports_allow(&[], &dns_udp));
        assert!(!ports_allow(&[port("{port: 80}")], &dns_udp));
    }

    #[test]
    fn names_port_table() {
        assert!(names_port(&port("{port: 53}"), 53, &[]));
        assert!(names_port(&port("{port: 53, endPort: 53}"), 53, &[]));
        assert!(!names_port(&port("{port: 1, endPort: 65535}"), 53, &[]));
        assert!(names_port(&port("{port: dns}"), 53, &["dns"]));
        assert!(!names_port(&port("{protocol: UDP}"), 53, &["dns"]));
    }
}
