//! The command line: flags (each with a `NETPOL_GUARD_...` environment variable) and the
//! dispatch of subcommands.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::check;

mod audit;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::netpol::dns::DnsPreset;
use crate::netpol::ipblock::IpFamilies;
use crate::report::{self, Format};
use crate::rules::CATALOG;
use crate::serve::ServeArgs;
use crate::telemetry::LogFormat;

/// Keeps Kubernetes NetworkPolicy from breaking clusters.
#[derive(Debug, Parser)]
#[command(name = "netpol-guard", version, about)]
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
    Rules,
    /// The default-deny and allow-DNS companions the controller keeps in every namespace.
    #[command(subcommand)]
    Companions(CompanionsCommand),
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

/// Applies the DNS fixes as text edits, emits them as asked (the fixed file, the files
/// written in place, or diffs) and lists each fix on stderr. Returns the manifests as
/// fixed, for the report, and whether anything changed.
fn fix_and_emit(
    manifests: &[Manifest],
    config: &Config,
    args: &CheckArgs,
) -> anyhow::Result<(Vec<Manifest>, bool)> {
    let missing = check::missing_dns(
        manifests,
        config,
        &args.namespace,
        args.scope,
        args.ip_families.into(),
    );
    let fixes = crate::fix::fix_files(manifests, &missing);
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    for fix in &fixes {
        for object in &fix.applied {
            writeln!(
                stderr,
                "fixed {}: NetworkPolicy {object} (egress-missing-dns: DNS rule added)",
                fix.file
            )?;
        }
        for (object, why) in &fix.refused {
            writeln!(
                stderr,
                "not fixed {}: NetworkPolicy {object}: {why}",
                fix.file
            )?;
        }
        if args.write && fix.fixed != fix.original && fix.file != "-" {
            std::fs::write(&fix.file, &fix.fixed)
                .with_context(|| format!("writing {}", fix.file))?;
        }
        if args.diff {
            stdout.write_all(crate::fix::diff(fix).as_bytes())?;
        }
    }
    let fixed: Vec<Manifest> = manifests
        .iter()
        .map(|m| match fixes.iter().find(|f| f.file == m.file) {
            Some(f) if f.fixed != f.original => Manifest {
                context: m.context,
                patch_of: m.patch_of.clone(),
                ..Manifest::parse(m.file.clone(), &f.fixed)
            },
            _ => m.clone(),
        })
        .collect();
    if !args.write && !args.diff {
        for m in fixed.iter().filter(|m| !m.context) {
            stdout.write_all(m.text.as_bytes())?;
        }
    }
    let changed = fixes.iter().any(|f| f.fixed != f.original);
    Ok((fixed, changed))
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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(crate::serve::run(*args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs(args) => {
            let bundle = crate::certs::generate(&args.dns, &args.ip, args.days)?;
            crate::certs::write(&bundle, &args.out)?;
            eprintln!(
                "wrote {0}/ca.crt, {0}/tls.crt and {0}/tls.key; caBundle for the webhook configurations:",
                args.out.display()
            );
            println!("{}", crate::certs::ca_bundle(&bundle));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => run_check(args),
        Command::Audit(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(audit::run(args))
        }
        Command::Companions(CompanionsCommand::Plan(args)) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(audit::plan(args))
        }
        Command::Rules => {
            let mut out = std::io::stdout().lock();
            for rule in CATALOG {
                writeln!(
                    out,
                    "{:<34} {:<5} {:<13} {}",
                    rule.id,
                    rule.default_severity,
                    rule.applies_to(),
                    rule.summary
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The rule configuration of `--config`, or the embedded default; an unusable file is
/// reported on stderr and is exit code 2.
fn load_config(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    match path.map(Config::load) {
        None => Ok(Config::default()),
        Some(Ok(config)) => Ok(config),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut config = match load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    if let Some(preset) = args.dns_preset {
        let preset = match preset {
            DnsPresetArg::Kubernetes => DnsPreset::Kubernetes,
            DnsPresetArg::Openshift => DnsPreset::Openshift,
        };
        config.dns = preset.apply(&config.dns);
    }
    let (mut manifests, mut problems) = check::load_with_context(&args.paths, &args.context);
    let judged = manifests.iter().filter(|m| !m.context).count();
    if judged == 0 && problems.is_empty() && !args.allow_empty {
        problems.push(check::Problem {
            file: args.paths.join(" "),
            document: None,
            line: None,
            message: "no input: no *.yaml, *.yml or *.json file found (a mistyped path? \
                      --allow-empty accepts that)"
                .into(),
        });
    }
    // --fix --diff exits 1 when there is a diff, as `git diff --exit-code` does
    let mut diffed = false;
    if args.fix {
        if !args.write && !args.diff && judged > 1 {
            eprintln!(
                "error: --fix prints one fixed file; for {judged} files use --fix --write (in \
                 place) or --fix --diff"
            );
            return Ok(ExitCode::from(2));
        }
        let (fixed, changed) = fix_and_emit(&manifests, &config, &args)?;
        manifests = fixed;
        diffed = args.diff && changed;
    }
    // named after any --fix (which never writes standard input to a file)
    if let Some(name) = &args.stdin_filename {
        for m in manifests.iter_mut().filter(|m| m.file == "-") {
            m.file.clone_from(name);
        }
        for p in problems.iter_mut().filter(|p| p.file == "-") {
            p.file.clone_from(name);
        }
    }
    let mut report = check::analyze_scoped(
        &manifests,
        &config,
        &args.namespace,
        args.scope,
        args.ip_families.into(),
    );
    report.problems.splice(0..0, problems);
    let rendered = report::render(&report, args.format);
    if args.fix {
        std::io::stderr().lock().write_all(rendered.as_bytes())?;
    } else {
        std::io::stdout().lock().write_all(rendered.as_bytes())?;
    }
    let fail_on = match args.fail_on {
        FailOn::Deny => crate::rules::Severity::Deny,
        FailOn::Warn => crate::rules::Severity::Warn,
    };
    let code = report.exit_code_failing_on(fail_on);
    Ok(ExitCode::from(if code == 0 && diffed { 1 } else { code }))
}

#[cfg(test)]
mod flag_tests {
    use super::*;

    #[test]
    fn the_guards_namespace_is_one_flag_under_its_old_name_too() {
        for flag in ["--guard-namespace", "--pod-namespace"] {
            let cli = Cli::try_parse_from(["netpol-guard", "serve", flag, "platform"]);
            match cli.map(|c| c.command) {
                Ok(Command::Serve(args)) => assert_eq!(args.guard_namespace, "platform", "{flag}"),
                other => panic!("{flag}: {other:?}"),
            }
        }
        let cli = Cli::try_parse_from(["netpol-guard", "audit", "--guard-namespace", "platform"]);
        match cli.map(|c| c.command) {
            Ok(Command::Audit(args)) => assert_eq!(args.cluster.guard_namespace, "platform"),
            other => panic!("{other:?}"),
        }
    }
}
