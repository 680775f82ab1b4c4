//! Reading the settings: YAML in, validated [`Config`] out. The types are those of the
//! layers below (the guard's settings, the rule levels, the DNS target); this module only
//! parses and checks them. Every field has a default, and the shipped
//! `default-config.yaml` spells the defaults out (a test keeps the two equal).

use std::path::Path;

pub use crate::guard::settings::{
    AllowDnsCompanion, CompanionsConfig, Config, DefaultDenyCompanion, GitOpsMode, LayersConfig,
    MutationConfig, PolicyType,
};
pub use crate::netpol::dns::{DnsConfig, DnsPort};
use crate::netpol::names::{is_dns_label, is_dns_subdomain};
use crate::netpol::ports::Protocol;
use crate::netpol::selector::{Labels, Selector};
pub use crate::rules::Level;
use crate::rules::{self, CATALOG};

/// The default configuration, as YAML, embedded in the binary.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default-config.yaml");

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration{}: {source}", location(.path))]
    Parse {
        path: Option<String>,
        source: serde_yaml_ng::Error,
    },
    #[error("invalid configuration{}: {message}", location(.path))]
    Invalid {
        path: Option<String>,
        message: String,
    },
}

fn location(path: &Option<String>) -> String {
    path.as_ref()
        .map(|p| format!(" in {p}"))
        .unwrap_or_default()
}

impl Config {
    /// Parses and validates a YAML configuration.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, None)
    }

    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: display.clone(),
            source,
        })?;
        Self::parse(&text, Some(display))
    }

    fn parse(text: &str, path: Option<String>) -> Result<Self, ConfigError> {
        // An empty file is the default configuration.
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Parse {
                path: path.clone(),
                source,
            })?
        };
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { path, message })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        self.validate_levels()?;
        let dns = &self.dns;
        validate_dns_pods("dns", &dns.namespace_labels, &dns.pod_labels, &dns.ports)?;
        for (i, t) in dns.targets.iter().enumerate() {
            let at = format!("dns.targets[{i}]");
            validate_dns_pods(&at, &t.namespace_labels, &t.pod_labels, &t.ports)?;
        }
        for service in &dns.services {
            let valid = service
                .split_once('/')
                .is_some_and(|(ns, name)| is_dns_label(ns) && is_dns_label(name));
            if !valid {
                return Err(format!(
                    "dns.services: {service:?} is not `namespace/name` of a Service"
                ));
            }
        }
        let companions = &self.companions;
        for name in [&companions.default_deny.name, &companions.allow_dns.name] {
            if !is_dns_subdomain(name) {
                return Err(format!(
                    "companions: {name:?} is not a valid object name (lowercase letters, digits, '-' and '.', at most 253)"
                ));
            }
        }
        if companions.default_deny.name == companions.allow_dns.name {
            return Err("companions: defaultDeny and allowDns need different names".into());
        }
        if let Some(selector) = &companions.namespace_selector
            && let Err(errors) = Selector::parse(selector)
        {
            return Err(format!(
                "companions.namespaceSelector is invalid: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        if companions.default_deny.policy_types.is_empty() {
            return Err(
                "companions.defaultDeny.policyTypes must name Ingress, Egress or both".into(),
            );
        }
        Ok(())
    }

    /// Every rule id is known, and only configurable rules are overridden.
    fn validate_levels(&self) -> Result<(), String> {
        for id in self.rules.keys() {
            match rules::find(id) {
                None => {
                    return Err(format!(
                        "rules: unknown rule id {id:?} (known: {})",
                        CATALOG.iter().map(|r| r.id).collect::<Vec<_>>().join(", ")
                    ));
                }
                Some(rule) if !rule.configurable() => {
                    return Err(format!(
                        "rules: {id} cannot be configured: switching it off would let a \
                         tenant exempt itself from the guard"
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The labels and ports of a set of DNS pods (`dns` itself or one of `dns.targets`).
fn validate_dns_pods(
    at: &str,
    namespace_labels: &Labels,
    pod_labels: &Labels,
    ports: &[DnsPort],
) -> Result<(), String> {
    if namespace_labels.is_empty() {
        return Err(format!("{at}.namespaceLabels must not be empty"));
    }
    if pod_labels.is_empty() {
        return Err(format!("{at}.podLabels must not be empty"));
    }
    if !ports.iter().any(|p| p.protocol == Protocol::Udp) {
        return Err(format!("{at}.ports must declare the UDP DNS port"));
    }
    if let Some(p) = ports.iter().find(|p| !(1..=65535).contains(&p.port)) {
        return Err(format!("{at}.ports: port {} is out of range", p.port));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_equals_builtin_default() {
        let parsed = Config::from_yaml(DEFAULT_CONFIG_YAML).expect("embedded config parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let c = Config::from_yaml("rules:\n  dns-tcp-missing: deny\n  allow-all-rule: off\n")
            .expect("valid");
        assert_eq!(
            c.protected_namespaces,
            Config::default().protected_namespaces
        );
        let tcp = rules::find("dns-tcp-missing").expect("rule");
        let all = rules::find("allow-all-rule").expect("rule");
        let dns = rules::find("egress-missing-dns").expect("rule");
        assert_eq!(c.level(tcp), Level::Deny);
        assert_eq!(c.level(all), Level::Off);
        assert_eq!(c.level(dns), Level::Deny);
        assert_eq!(Config::from_yaml("").expect("empty"), Config::default());
    }

    #[test]
    fn bad_configs_are_refused_with_reason() {
        let cases = [
            (
                "rules:\n  no-such-rule: deny\n",
                "unknown rule id \"no-such-rule\"",
            ),
            ("rules:\n  allow-all-rule: loud\n", "unknown variant"),
            ("protectedNamespace: [a]\n", "unknown field"),
            (
                "dns:\n  ports: [{name: dns-tcp, port: 53, protocol: TCP}]\n",
                "UDP DNS port",
            ),
            ("dns:\n  ips: [not-an-ip]\n", "invalid"),
            ("dns:\n  podLabels: {}\n", "podLabels"),
            ("mutation:\n  gitops: maybe\n", "unknown variant"),
            ("[1, 2", "invalid configuration"),
            (
                "companions:\n  allowDns: {name: Bad_Name}\n",
                "not a valid object name",
            ),
            (
                "companions:\n  allowDns: {name: x}\n  defaultDeny: {name: x}\n",
                "different names",
            ),
            (
                "companions:\n  defaultDeny: {policyTypes: []}\n",
                "policyTypes",
            ),
            (
                "companions:\n  defaultDeny: {policyTypes: [Both]}\n",
                "unknown variant",
            ),
        ];
        for (yaml, want) in cases {
            let err = Config::from_yaml(yaml).expect_err(yaml).to_string();
            assert!(err.contains(want), "{yaml:?}: {err}");
        }
    }
}
