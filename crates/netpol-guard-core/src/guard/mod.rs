//! The guard's decisions, as pure functions of a [`Snapshot`] and the facts of one request:
//! NetworkPolicy verdicts and the DNS patch (`policy`, `dns_patch`), the protection of the companion
//! policies ([`companions`]), the namespace opt-out guard and stamp (`namespace`).
//!
//! Nothing here decodes, encodes, waits or reads a clock: the webhook's codec
//! ([`crate::admission`]) turns AdmissionReviews into [`Request`]s and [`Verdict`]s back
//! into responses, the controller applies [`companions::desired`], and `check` calls the
//! same engine, so none of them can disagree.

pub mod companions;
pub mod dns_patch;
pub mod layers;
pub mod namespace;
pub mod policy;
pub(crate) mod settings;

use crate::rules::suppress::Suppressed;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::netpol::cluster::Inventory;
use crate::netpol::dns::DnsTarget;
use crate::rules::{Context, Finding, Severity};
use settings::Config;

/// The kube-controller-manager identities that delete a terminating namespace's objects
/// (and garbage-collect owned ones); refusing them would leave namespaces stuck deleting.
const NAMESPACE_CLEANERS: &[&str] = &[
    "system:serviceaccount:kube-system:namespace-controller",
    "system:serviceaccount:kube-system:generic-garbage-collector",
    "system:kube-controller-manager",
];

/// Deployment facts the decisions need besides the settings.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The guard's own namespace (its namespace is never given companions).
    pub namespace: String,
    /// The guard's service account username, `system:serviceaccount:NS:NAME`.
    pub service_account: String,
}

/// A consistent snapshot of everything a decision reads.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub config: Arc<Config>,
    pub inventory: Arc<Inventory>,
    /// Resolved from `config` and `inventory` (see [`Snapshot::new`]).
    pub dns: Arc<DnsTarget>,
    pub identity: Arc<Identity>,
}

impl Snapshot {
    /// A snapshot whose DNS target is resolved from `config` and `inventory`.
    pub fn new(config: Arc<Config>, inventory: Arc<Inventory>, identity: Arc<Identity>) -> Self {
        let dns = Arc::new(DnsTarget::new(&config.dns, &inventory));
        Self {
            config,
            inventory,
            dns,
            identity,
        }
    }

    /// The rules' view of this snapshot.
    pub fn rule_context(&self) -> Context<'_> {
        self.config
            .rule_context_with(&self.inventory, self.dns.clone())
    }

    /// Whether the requester administers the guard: its service account or a member of
    /// `adminGroups`.
    fn is_admin<T>(&self, req: &Request<'_, T>) -> bool {
        req.user == self.identity.service_account
            || req
                .groups
                .iter()
                .any(|g| self.config.admin_groups.contains(g))
    }
}

/// Which webhook endpoint a review came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Validate,
    Mutate,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Mutate => "mutate",
        }
    }
}

/// The outcome of a review, as counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
    Mutated,
    Invalid,
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Mutated => "mutated",
            Self::Invalid => "invalid",
            Self::Error => "error",
        }
    }
}

/// The admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// The API's spelling, also the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
        }
    }
}

/// The facts of one admission request that a decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a, T> {
    pub operation: Operation,
    /// The request's namespace (empty for cluster-scoped objects).
    pub namespace: &'a str,
    /// The object's name (`metadata.name` when the request has none, as with `generateName`).
    pub name: &'a str,
    pub user: &'a str,
    pub groups: &'a [String],
    /// The object being written (absent on DELETE).
    pub object: Option<&'a T>,
    /// The stored object's metadata (UPDATE, DELETE).
    pub old_metadata: Option<&'a ObjectMeta>,
}

/// What the guard decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Admit; warn-level findings become admission warnings, all become audit annotations
    /// (with the findings the policy's annotation acknowledged, marked as suppressed).
    Allow {
        findings: Vec<Finding>,
        suppressed: Vec<Suppressed>,
    },
    /// Refuse with this message (every deny finding: rule, field, what, fix).
    Deny {
        message: String,
        findings: Vec<Finding>,
        suppressed: Vec<Suppressed>,
    },
    /// Admit with this JSON patch, and a warning saying what it does when the user should
    /// know (the DNS injection: the stored object is not what was sent).
    Patch {
        patch: json_patch::Patch,
        notice: Option<Notice>,
    },
}

/// What a mutation tells the user, as an admission warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub rule: &'static str,
    pub path: String,
    pub message: String,
}

impl Verdict {
    /// Admit, nothing to say.
    pub fn allow() -> Self {
        Self::Allow {
            findings: Vec::new(),
            suppressed: Vec::new(),
        }
    }

    /// Allows, or denies when any finding is deny-level.
    fn from_findings(
        kind: &str,
        object: &str,
        (findings, suppressed): (Vec<Finding>, Vec<Suppressed>),
        note: &str,
    ) -> Self {
        let denied: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.severity == Severity::Deny)
            .collect();
        if denied.is_empty() {
            return Self::Allow {
                findings,
                suppressed,
            };
        }
        let mut message = deny_message(kind, object, &denied);
        message.push_str(note);
        Self::Deny {
            message,
            findings,
            suppressed,
        }
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects.
fn object_name(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

/// One line per finding: rule id, field, what is wrong, the fix.
fn deny_message(kind: &str, object: &str, denied: &[&Finding]) -> String {
    let mut message = format!("netpol-guard denied {kind} {object}:");
    for f in denied {
        message.push_str(&format!(
            "\n[{}] {}: {}\nfix: {}",
            f.rule, f.path, f.message, f.fix
        ));
    }
    message
}
