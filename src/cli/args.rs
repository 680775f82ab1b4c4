//! Every flag of every command (each with a `NETPOL_GUARD_...` environment variable where a
//! pod sets it). `serve`'s own flag groups sit beside what they configure
//! ([`crate::webhook::serve::ServeArgs`], [`crate::kubernetes::ClusterArgs`]) and are
//! flattened in here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::cli::telemetry::LogFormat;
use crate::netpol::ipblock::IpFamilies;
use crate::offline::check;
use crate::offline::report::Format;
use crate::webhook::serve::ServeArgs;

/// The version and the git revision it was built from.
pub(crate) const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("NETPOL_GUARD_REVISION"),
    ")"
);

/// Keeps Kubernetes NetworkPolicy from breaking clusters.
#[derive(Debug, Parser)]
#[command(name = "netpol-guard", version = VERSION, about)]
pub struct Cli {
    /// Log format (logs go to stderr).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "NETPOL_GUARD_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// Log level or filter (RUST_LOG, when set, wins).
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "NETPOL_GUARD_LOG_LEVEL"
    )]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the validating and mutating admission webhook over TLS.
    Serve(Box<ServeArgs>),
    /// Check manifests offline with the webhook's rules (exit 0 ok, 1 denied, 2 bad input).
    Check(CheckArgs),
    /// Audit the NetworkPolicies already in a cluster with the webhook's rules and the full
    /// cluster context (exit 0 ok, 1 something denied, 2 the cluster could not be read).
    Audit(AuditArgs),
    /// Write a CA and a serving certificate for the webhook, and print the caBundle.
    Certs(CertsArgs),
    /// List the rule catalog.
    Rules(RulesArgs),
    /// The default-deny and allow-DNS companions the controller keeps in every namespace.
    #[command(subcommand)]
    Companions(CompanionsCommand),
    /// Who can reach whom, as the NetworkPolicies of manifests decide it: list, diff, explain.
    #[command(subcommand)]
    Connectivity(ConnectivityCommand),
    /// Print a shell completion script (e.g. `netpol-guard completions bash >
    /// /etc/bash_completion.d/netpol-guard`).
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `netpol-guard man > netpol-guard.1`; with --out,
    /// write it and one page per subcommand to a directory.
    Man(ManArgs),
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write netpol-guard.1 and netpol-guard-COMMAND.1 here instead of printing one page.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum ConnectivityCommand {
    /// List the allowed connections between the workloads of manifests, and to and from
    /// the addresses outside them (exit 0; 2 when some input cannot be read).
    List(ConnectivityListArgs),
    /// The connections added, removed and changed from --base to --head (exit 0; 1 with
    /// --fail-on when the diff holds such changes; 2 when some input cannot be read).
    Diff(ConnectivityDiffArgs),
    /// Why one connection is allowed or denied: the policies that isolate each end and the
    /// rule that admits it (exit 0 allowed, 1 denied, 2 bad input).
    Explain(ConnectivityExplainArgs),
}

/// How the connectivity commands read manifests.
#[derive(Debug, clap::Args)]
pub struct ConnectivityInput {
    /// The namespace of objects that name none.
    #[arg(
        long,
        short = 'n',
        default_value = "default",
        env = "NETPOL_GUARD_NAMESPACE"
    )]
    pub namespace: String,
}

#[derive(Debug, clap::Args)]
pub struct ConnectivityListArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub format: ConnectivityFormat,
    /// Only the connections from or to this workload (`namespace/name` or `name`; repeatable).
    #[arg(long, value_name = "WORKLOAD")]
    pub focus: Vec<String>,
    #[command(flatten)]
    pub input: ConnectivityInput,
    /// Manifest files or directories (`-` for standard input).
    #[arg(required = true)]
    pub paths: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ConnectivityDiffArgs {
    /// The manifests before the change: a directory, or a git revision (branch, tag,
    /// commit) of the --head directory's repository.
    #[arg(long, value_name = "REF|DIR")]
    pub base: String,
    /// The manifests after the change: a directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub head: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ConnectivityFormat,
    /// Only the connections from or to this workload (repeatable).
    #[arg(long, value_name = "WORKLOAD")]
    pub focus: Vec<String>,
    /// Exit 1 when the diff holds such changes: `removed` (a connection or a port of one
    /// lost), `added` (one gained), `any`.
    #[arg(long, value_enum)]
    pub fail_on: Option<DiffFailOn>,
    #[command(flatten)]
    pub input: ConnectivityInput,
}

#[derive(Debug, clap::Args)]
pub struct ConnectivityExplainArgs {
    /// The source: a workload (`namespace/name` or `name`) or an IP address.
    pub src: String,
    /// The destination: a workload or an IP address.
    pub dst: String,
    /// One port to judge, `PORT/PROTOCOL` (`443/TCP`, `53/UDP`; the protocol defaults to TCP).
    pub port: Option<String>,
    /// Manifest files or directories to read (repeatable).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "PATH",
        default_value = "."
    )]
    pub files: Vec<String>,
    /// text or json
    #[arg(long, value_enum, default_value = "text")]
    pub format: ConnectivityFormat,
    #[command(flatten)]
    pub input: ConnectivityInput,
}

/// `connectivity --format`.
pub(crate) type ConnectivityFormat = crate::offline::connectivity::Format;

/// `connectivity diff --fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFailOn {
    Removed,
    Added,
    Any,
}

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// text (one line per rule) or markdown (the table of docs/rules.md and the README)
    #[arg(long, value_enum, default_value = "text")]
    pub format: RulesFormat,
}

/// `rules --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RulesFormat {
    Text,
    Markdown,
}

#[derive(Debug, Subcommand)]
pub enum CompanionsCommand {
    /// Print what the controller would write in each namespace of a cluster now (create,
    /// restore, remove), writing nothing (exit 0; 2 when the cluster cannot be read).
    Plan(PlanArgs),
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub cluster: ClusterRead,
    /// Output: text (a line per write) or json.
    #[arg(long, value_enum, default_value = "text")]
    pub format: PlanFormat,
}

/// How the commands that read a cluster once (`audit`, `companions plan`) reach it and
/// judge it.
#[derive(Debug, clap::Args)]
pub struct ClusterRead {
    /// Kubeconfig of the cluster [default: $KUBECONFIG, ~/.kube/config, or in-cluster].
    #[arg(long, env = "NETPOL_GUARD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Rule configuration (YAML); the embedded default when absent.
    #[arg(long, env = "NETPOL_GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// The namespace netpol-guard runs in (it gets no companions).
    #[arg(
        long,
        default_value = "netpol-guard",
        env = "NETPOL_GUARD_POD_NAMESPACE"
    )]
    pub guard_namespace: String,
}

/// `companions plan --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// Directory to write ca.crt, tls.crt and tls.key into.
    #[arg(long)]
    pub out: PathBuf,
    /// DNS names of the webhook Service (e.g. netpol-guard.netpol-guard.svc).
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// IP addresses to include.
    #[arg(long = "ip")]
    pub ip: Vec<std::net::IpAddr>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Rule configuration (YAML); the embedded default when absent.
    #[arg(long, env = "NETPOL_GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text", env = "NETPOL_GUARD_FORMAT")]
    pub format: Format,
    /// Add the DNS allowance where it is missing, as text edits that keep everything else
    /// of the file. Alone (one input file): prints the fixed file; with --write: writes the
    /// files in place; with --diff: prints a unified diff per file. The report goes to
    /// stderr and judges the fixed files.
    #[arg(long)]
    pub fix: bool,
    /// With --fix: write each fixed file in place.
    #[arg(long, requires = "fix", conflicts_with = "diff")]
    pub write: bool,
    /// With --fix: print a unified diff per fixed file instead of the files (exit 1 when
    /// there is one).
    #[arg(long, requires = "fix")]
    pub diff: bool,
    /// Which manifests are one context: all (the default: as the cluster sees them once all
    /// is applied), directory (each directory of a monorepo on its own) or file.
    #[arg(long, value_enum, default_value = "all", env = "NETPOL_GUARD_SCOPE")]
    pub scope: check::Scope,
    /// Where cluster DNS runs, when not the configuration's `dns` (kubernetes: kube-system
    /// on 53; openshift: openshift-dns on 5353).
    #[arg(long, value_enum, env = "NETPOL_GUARD_DNS_PRESET")]
    pub dns_preset: Option<DnsPresetArg>,
    /// Pass when the paths hold no manifest files at all (by default that is an error, so a
    /// mistyped directory cannot pass silently).
    #[arg(long)]
    pub allow_empty: bool,
    /// Namespace of manifests that name none (as kubectl assumes, and as `kubectl apply
    /// -n NS` would put them).
    #[arg(
        long,
        short = 'n',
        default_value = "default",
        env = "NETPOL_GUARD_NAMESPACE"
    )]
    pub namespace: String,
    /// The least severe finding that fails the check (exit 1): deny (the default: what the
    /// webhook refuses) or warn (warnings fail too).
    #[arg(long, value_enum, default_value = "deny", env = "NETPOL_GUARD_FAIL_ON")]
    pub fail_on: FailOn,
    /// The cluster's IP families: decides what an ipBlock of one whole family
    /// (0.0.0.0/0, ::/0) admits. Unknown by default, where verdicts that depend on it are
    /// warnings naming the condition.
    #[arg(
        long,
        value_enum,
        default_value = "unknown",
        env = "NETPOL_GUARD_IP_FAMILIES"
    )]
    pub ip_families: IpFamiliesArg,
    /// Files or directories read as context only: their policies and namespaces cover
    /// (or are covered by) the judged ones, but nothing of them is judged or reported. A
    /// pre-commit hook passes the changed files and `--context .`, so a staged policy is
    /// judged with the rest of the repository as `--scope` says. Hidden folders are
    /// skipped; context that cannot be read is passed over.
    #[arg(
        long,
        value_name = "PATH",
        env = "NETPOL_GUARD_CONTEXT",
        value_delimiter = ','
    )]
    pub context: Vec<String>,
    /// The name reports give standard input (`-`), so that GitHub annotations and SARIF
    /// point at a file of the repository. Documents with a `# Source: PATH` comment (helm
    /// template) or a `config.kubernetes.io/origin` annotation (kustomize) are reported
    /// at that path instead, wherever they were read.
    #[arg(long, value_name = "NAME", env = "NETPOL_GUARD_STDIN_FILENAME")]
    pub stdin_filename: Option<String>,
    /// Files, directories (searched for *.yaml, *.yml, *.json) or - for stdin.
    #[arg(required = true)]
    pub paths: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub cluster: ClusterRead,
    /// Output format.
    #[arg(long, value_enum, default_value = "text", env = "NETPOL_GUARD_FORMAT")]
    pub format: Format,
    /// Audit one namespace (the whole cluster is still read for context) [default: all].
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

/// `--fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// deny findings fail (exit 1)
    Deny,
    /// deny and warn findings fail (exit 1)
    Warn,
}

/// `--ip-families`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IpFamiliesArg {
    /// not known: verdicts that depend on it are warnings
    Unknown,
    /// IPv4 only
    Ipv4,
    /// IPv6 only
    Ipv6,
    /// dual-stack
    Dual,
}

impl From<IpFamiliesArg> for IpFamilies {
    fn from(arg: IpFamiliesArg) -> Self {
        match arg {
            IpFamiliesArg::Unknown => Self::Unknown,
            IpFamiliesArg::Ipv4 => Self::V4,
            IpFamiliesArg::Ipv6 => Self::V6,
            IpFamiliesArg::Dual => Self::Dual,
        }
    }
}

/// `--dns-preset`: where well-known distributions run cluster DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DnsPresetArg {
    /// kube-system, pods k8s-app=kube-dns, ports dns/dns-tcp 53
    Kubernetes,
    /// openshift-dns, pods dns.operator.openshift.io/daemonset-dns=default, ports dns/dns-tcp 5353
    Openshift,
}
