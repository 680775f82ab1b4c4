//! Rule configuration: protected namespaces, the DNS target and rule severities.
//!
//! Read from YAML; every field has a default, and the shipped `default-config.yaml`
//! spells the defaults out (a test keeps the two equal).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::netpol::ports::Protocol;
use crate::netpol::selector::Labels;
use crate::rules::{self, Severity};

/// The default configuration, as YAML, embedded in the binary.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default-config.yaml");

/// A configured rule level: a severity, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Deny,
    Warn,
    Off,
}

impl From<Severity> for Level {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Deny => Level::Deny,
            Severity::Warn => Level::Warn,
        }
    }
}

/// The rule configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    /// Namespaces whose isolation can take the cluster down.
    pub protected_namespaces: Vec<String>,
    /// Where cluster DNS lives.
    pub dns: DnsConfig,
    /// Severity overrides by rule id.
    pub rules: BTreeMap<String, Level>,
    /// Groups whose members may set or remove the namespace opt-out label.
    pub admin_groups: Vec<String>,
    /// What the mutating webhook may change.
    pub mutation: MutationConfig,
    /// The policies the guard keeps in every namespace that is not exempt.
    pub companions: CompanionsConfig,
}

/// The companion policies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CompanionsConfig {
    /// Isolates every pod of the namespace.
    pub default_deny: DefaultDenyCompanion,
    /// Lets every pod of the namespace reach cluster DNS (the `dns` target).
    pub allow_dns: AllowDnsCompanion,
    /// Only namespaces whose labels match get companions (absent: every namespace), e.g. to
    /// roll them out team by team. Protected and exempt namespaces never get them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

/// The default-deny companion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DefaultDenyCompanion {
    pub enabled: bool,
    pub name: String,
    /// Which directions it isolates.
    pub policy_types: Vec<PolicyType>,
}

/// The allow-DNS companion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AllowDnsCompanion {
    pub enabled: bool,
    pub name: String,
}

/// A NetworkPolicy `policyTypes` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyType {
    Ingress,
    Egress,
}

impl PolicyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "Ingress",
            Self::Egress => "Egress",
        }
    }
}

impl Default for DefaultDenyCompanion {
    fn default() -> Self {
        Self {
            enabled: true,
            name: "netpol-guard-default-deny".into(),
            policy_types: vec![PolicyType::Ingress, PolicyType::Egress],
        }
    }
}

impl Default for AllowDnsCompanion {
    fn default() -> Self {
        Self {
            enabled: true,
            name: "netpol-guard-allow-dns".into(),
        }
    }
}

/// How GitOps-managed objects are treated by the mutating webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GitOpsMode {
    /// Do not mutate; validation denies with the fix to commit to the source.
    Deny,
    /// Mutate like any other object (the GitOps tool will see drift).
    Mutate,
}

/// Mutation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MutationConfig {
    /// What to do with objects a GitOps tool manages.
    pub gitops: GitOpsMode,
    /// Labels whose presence marks an object as GitOps-managed.
    pub gitops_labels: Vec<String>,
    /// Annotations whose presence marks an object as GitOps-managed.
    pub gitops_annotations: Vec<String>,
}

impl Default for MutationConfig {
    fn default() -> Self {
        Self {
            gitops: GitOpsMode::Deny,
            // Argo CD (annotation and label tracking) and Flux (kustomize and helm controllers)
            gitops_labels: [
                "argocd.argoproj.io/instance",
                "kustomize.toolkit.fluxcd.io/name",
                "helm.toolkit.fluxcd.io/name",
            ]
            .map(String::from)
            .to_vec(),
            gitops_annotations: ["argocd.argoproj.io/tracking-id"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// The cluster DNS service as NetworkPolicy peers can see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Labels of the namespace the DNS pods run in.
    pub namespace_labels: Labels,
    /// Labels of the DNS pods.
    pub pod_labels: Labels,
    /// The DNS pods' container ports, with their names (named rule ports resolve to them).
    pub ports: Vec<DnsPort>,
    /// Further DNS addresses pods talk to, e.g. node-local DNS `169.254.20.10`.
    pub ips: Vec<IpAddr>,
}

/// One named container port of the DNS pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsPort {
    pub name: String,
    pub port: i32,
    pub protocol: Protocol,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            protected_namespaces: ["kube-system", "kube-public", "kube-node-lease"]
                .map(String::from)
                .to_vec(),
            dns: DnsConfig::default(),
            rules: BTreeMap::new(),
            admin_groups: vec!["system:masters".to_string()],
            mutation: MutationConfig::default(),
            companions: CompanionsConfig::default(),
        }
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        let labels = |k: &str, v: &str| Labels::from([(k.to_string(), v.to_string())]);
        Self {
            namespace_labels: labels("kubernetes.io/metadata.name", "kube-system"),
            pod_labels: labels("k8s-app", "kube-dns"),
            // as CoreDNS declares them
            ports: vec![
                DnsPort {
                    name: "dns".into(),
                    port: 53,
                    protocol: Protocol::Udp,
                },
                DnsPort {
                    name: "dns-tcp".into(),
                    port: 53,
                    protocol: Protocol::Tcp,
                },
            ],
            ips: Vec::new(),
        }
    }
}

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

impl ConfigError {
    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Parse { .. } => "parse",
            Self::Invalid { .. } => "invalid",
        }
    }
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
        if let Some(id) = self.rules.keys().find(|id| rules::find(id).is_none()) {
            return Err(format!(
                "rules: unknown rule id {id:?} (known: {})",
                rules::CATALOG
                    .iter()
                    .map(|r| r.id)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.dns.namespace_labels.is_empty() {
            return Err("dns.namespaceLabels must not be empty".into());
        }
        if self.dns.pod_labels.is_empty() {
            return Err("dns.podLabels must not be empty".into());
        }
        if !self.dns.ports.iter().any(|p| p.protocol == Protocol::Udp) {
            return Err("dns.ports must declare the UDP DNS port".into());
        }
        if let Some(p) = self
            .dns
            .ports
            .iter()
            .find(|p| !(1..=65535).contains(&p.port))
        {
            return Err(format!("dns.ports: port {} is out of range", p.port));
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
            && let Err(errors) = crate::netpol::selector::Selector::parse(selector)
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

    /// The level a rule runs at: the configured override, or the rule's default.
    pub fn level(&self, rule: &rules::Rule) -> Level {
        self.rules
            .get(rule.id)
            .copied()
            .unwrap_or(rule.default_severity.into())
    }

    /// Whether an object with these labels and annotations is managed by a GitOps tool.
    pub fn is_gitops_managed(&self, labels: Option<&Labels>, annotations: Option<&Labels>) -> bool {
        let has = |map: Option<&Labels>, keys: &[String]| {
            map.is_some_and(|m| keys.iter().any(|k| m.contains_key(k)))
        };
        has(labels, &self.mutation.gitops_labels)
            || has(annotations, &self.mutation.gitops_annotations)
    }

    /// Whether a namespace is protected.
    pub fn is_protected(&self, namespace: &str) -> bool {
        self.protected_namespaces.iter().any(|n| n == namespace)
    }
}

/// A Kubernetes object name (RFC 1123 subdomain).
fn is_dns_subdomain(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253 && name.split('.').all(label_ok)
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
