//! Fields the API server would reject: caught here so `check` fails in CI, not at apply.

use super::Context;
use super::{Check, Hit, Rule, Severity};
use crate::netpol::ipblock::Block;
use crate::netpol::policy::{Direction, Subject};
use crate::netpol::ports::{corrected, port_problems};
use crate::netpol::selector::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub(super) const IPBLOCK_INVALID: Rule = Rule {
    id: "ipblock-invalid",
    default_severity: Severity::Deny,
    summary: "An `ipBlock` has an unparsable CIDR, an `except` outside `cidr`, or mixed IP families.",
    check: Check::Policy(ipblock),
};

pub(super) const SELECTOR_INVALID: Rule = Rule {
    id: "selector-invalid",
    default_severity: Severity::Deny,
    summary: "A label selector uses an unknown operator or values that do not fit its operator.",
    check: Check::Policy(selectors),
};

pub(super) const PORT_INVALID: Rule = Rule {
    id: "port-invalid",
    default_severity: Severity::Deny,
    summary: "A port the API server rejects: a number written as a string, a name that is not an IANA service name, a number outside 1-65535, a misused endPort, a protocol other than TCP, UDP or SCTP.",
    check: Check::Policy(ports),
};

fn ports(_: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    for direction in Direction::BOTH {
        for rule in subject.written_rules(direction) {
            for (i, port) in rule.ports.iter().enumerate() {
                let problems = port_problems(port);
                if problems.is_empty() {
                    continue;
                }
                let fixed = corrected(port);
                let fix = if port_problems(&fixed).is_empty() {
                    format!(
                        "write it as {}",
                        serde_json::to_string(&fixed).unwrap_or_default()
                    )
                } else {
                    "use a port number 1-65535 (unquoted) or the name of a container port, \
                     endPort only with a numeric port and not below it, and protocol TCP, UDP \
                     or SCTP in upper case"
                        .to_string()
                };
                hits.push(Hit::new(
                    rule.port_path(i),
                    format!(
                        "{}: the API server rejects this policy",
                        problems.join("; ")
                    ),
                    fix,
                ));
            }
        }
    }
    hits
}

fn ipblock(_: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    for p in subject.written_peers() {
        let Some(block) = &p.peer.ip_block else {
            continue;
        };
        for err in Block::parse(block).err().into_iter().flatten() {
            hits.push(Hit::new(
                format!("{}.ipBlock", p.path()),
                err.to_string(),
                "write cidr as address/prefix and make each except a smaller range inside \
                 cidr, in the same IP family (e.g. cidr: 10.0.0.0/8, except: [10.1.0.0/16])",
            ));
        }
    }
    hits
}

/// The selector's problems; `path` is written only when there is one.
fn check_selector(path: impl Fn() -> String, selector: &LabelSelector, hits: &mut Vec<Hit>) {
    for err in Selector::parse(selector).err().into_iter().flatten() {
        hits.push(Hit::new(
            format!("{}.matchExpressions[{}]", path(), err.index()),
            err.to_string(),
            "use In or NotIn with a non-empty values list, or Exists or DoesNotExist without values",
        ));
    }
}

fn selectors(_: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    if let Some(s) = &subject.spec.pod_selector {
        check_selector(|| "spec.podSelector".into(), s, &mut hits);
    }
    for p in subject.written_peers() {
        if let Some(s) = &p.peer.namespace_selector {
            check_selector(|| format!("{}.namespaceSelector", p.path()), s, &mut hits);
        }
        if let Some(s) = &p.peer.pod_selector {
            check_selector(|| format!("{}.podSelector", p.path()), s, &mut hits);
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_invalid_table() {
        let rule = |ports: &str| {
            format!(
                "metadata: {{name: a}}\nspec: {{podSelector: {{}}, policyTypes: [Egress], egress: [{{ports: [{ports}]}}]}}"
            )
        };
        let cases: Vec<(String, &[&str])> = vec![
            (
                rule("{port: '53', protocol: UDP}"),
                &["spec.egress[0].ports[0]"],
            ),
            (
                rule("{port: 53, protocol: udp}"),
                &["spec.egress[0].ports[0]"],
            ),
            (
                rule("{port: 53, protocol: ICMP}"),
                &["spec.egress[0].ports[0]"],
            ),
            (rule("{port: 0}"), &["spec.egress[0].ports[0]"]),
            (rule("{port: 70000}"), &["spec.egress[0].ports[0]"]),
            (
                rule("{port: 53}, {port: DNS}"),
                &["spec.egress[0].ports[1]"],
            ),
            (
                rule("{port: a-very-long-port-name}"),
                &["spec.egress[0].ports[0]"],
            ),
            (
                rule("{port: dns, endPort: 60}"),
                &["spec.egress[0].ports[0]"],
            ),
            (rule("{endPort: 60}"), &["spec.egress[0].ports[0]"]),
            (
                rule("{port: 100, endPort: 50}"),
                &["spec.egress[0].ports[0]"],
            ),
            (
                rule("{port: 100, endPort: 65536}"),
                &["spec.egress[0].ports[0]"],
            ),
            // valid
            (
                rule("{port: 53, protocol: UDP}, {port: dns-tcp, protocol: TCP}"),
                &[],
            ),
            (
                rule("{protocol: SCTP}, {port: 1, endPort: 65535}, {port: 80, endPort: 80}"),
                &[],
            ),
            (rule("{port: http2}"), &[]),
        ];
        for (yaml, want) in &cases {
            let hits = crate::rules::testing::run(&PORT_INVALID, yaml, &[]);
            let paths: Vec<&str> = hits.iter().map(|h| h.path.as_str()).collect();
            assert_eq!(&paths, want, "{yaml}: {hits:#?}");
        }
        // the fix writes what was meant
        let hits =
            crate::rules::testing::run(&PORT_INVALID, &rule("{port: '53', protocol: udp}"), &[]);
        assert!(
            hits[0].fix.contains(r#"{"port":53,"protocol":"UDP"}"#),
            "{}",
            hits[0].fix
        );
    }
    use crate::rules::testing::table;

    #[test]
    fn ipblock_table() {
        table(
            &IPBLOCK_INVALID,
            &[
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 10.0.0.1}}]}]}",
                    &["spec.egress[0].to[0].ipBlock"],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}]}",
                    &["spec.ingress[0].from[1].ipBlock"],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16, '::/0']}}]}]}",
                    &[
                        "spec.ingress[0].from[0].ipBlock",
                        "spec.ingress[0].from[0].ipBlock",
                    ],
                ),
                // written under an ignored direction: still rejected by the API server
                (
                    "metadata: {name: a}\nspec: {policyTypes: [Ingress], egress: [{to: [{ipBlock: {cidr: nope}}]}]}",
                    &["spec.egress[0].to[0].ipBlock"],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 'fd00::/8'}}]}]}",
                    &[],
                ),
            ],
        );
    }

    #[test]
    fn selector_table() {
        table(
            &SELECTOR_INVALID,
            &[
                (
                    "metadata: {name: a}\nspec: {podSelector: {matchExpressions: [{key: app, operator: Equals, values: [x]}]}}",
                    &["spec.podSelector.matchExpressions[0]"],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: env, operator: In}]}, podSelector: {matchExpressions: [{key: a, operator: Exists, values: [b]}]}}]}]}",
                    &[
                        "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0]",
                        "spec.ingress[0].from[0].podSelector.matchExpressions[0]",
                    ],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [x]}]}}",
                    &[],
                ),
            ],
        );
    }
}
