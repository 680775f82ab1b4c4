//! `netpol-guard audit`: one list of each resource the cache watches, the audit over it, and
//! the report in `check`'s formats with a summary per namespace.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context as _;

use super::args::{AuditArgs, PlanArgs, PlanFormat};
use crate::audit::{self, Audit};
use crate::kubernetes::cache;
use crate::offline::check::{ObjectReport, Problem, Report, Source};
use crate::offline::report::{self, Format};

/// The client for `--kubeconfig`, else kube's usual discovery ($KUBECONFIG, ~/.kube/config,
/// in-cluster).
async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => crate::kubernetes::from_file(path).await?,
        None => kube::Config::infer().await.context(
            "finding a cluster (--kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster)",
        )?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// The audit as a check report: the same text, JSON and SARIF output and exit codes.
pub(super) fn report_of(audit: &Audit) -> Report {
    Report {
        objects: audit
            .results
            .iter()
            .map(|r| ObjectReport {
                source: Source::cluster(&r.namespace, &r.name),
                kind: "NetworkPolicy",
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                findings: r.findings.clone(),
                resolved: Vec::new(),
                suppressed: r.suppressed.clone(),
                at: Vec::new(),
            })
            .collect(),
        namespaces: audit.namespaces.len(),
        ..Report::default()
    }
}

/// The namespaces that need attention, one line each.
fn summary_text(audit: &Audit) -> String {
    let mut out = String::new();
    let notable: Vec<_> = audit
        .namespaces
        .iter()
        .filter(|(_, s)| s.notable())
        .collect();
    if !notable.is_empty() {
        out.push_str("namespaces that need attention:\n");
    }
    for (ns, s) in &notable {
        let mut parts = vec![format!("{} deny, {} warn", s.deny, s.warn)];
        if s.pods_without_dns {
            parts.push("existing pods egress-isolated without DNS".into());
        }
        if s.protected_isolated {
            parts.push("protected namespace isolated".into());
        }
        if !s.missing_companions.is_empty() {
            parts.push(format!(
                "companions missing: {}",
                s.missing_companions.join(", ")
            ));
        }
        out.push_str(&format!("  {ns}: {}\n", parts.join("; ")));
    }
    out.push_str(&format!(
        "audited {} namespaces: {} need attention\n",
        audit.namespaces.len(),
        notable.len()
    ));
    out
}

pub(super) async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(args.cluster.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let fail = |message: String| {
        let report = Report {
            problems: vec![Problem {
                file: "cluster".into(),
                document: None,
                line: None,
                message,
            }],
            ..Report::default()
        };
        print!("{}", report::render(&report, args.format));
        Ok(ExitCode::from(report.exit_code()))
    };
    let client = match client(args.cluster.kubeconfig.as_deref()).await {
        Ok(c) => c,
        Err(e) => return fail(format!("{e:#}")),
    };
    // a progress line for large clusters, on a terminal only
    let live = std::io::stderr().is_terminal();
    let mut progress = |resource: &str, n: usize| {
        if live {
            eprint!("\rlisting {resource}: {n}          ");
        }
    };
    let listed = cache::list_once(&client, &config.dns, config.layers, &mut progress).await;
    if live {
        eprint!("\r{:40}\r", "");
    }
    let (inventory, notes) = match listed {
        Ok(listed) => listed,
        Err(e) => return fail(format!("listing the cluster: {e}")),
    };
    for note in notes {
        eprintln!("note: {note}");
    }
    let audit = audit::audit(
        &inventory,
        &config,
        &args.cluster.guard_namespace,
        args.namespace.as_deref(),
    );
    let report = report_of(&audit);
    write(&audit, &report, args.format)?;
    Ok(ExitCode::from(report.exit_code()))
}

/// `netpol-guard companions plan`: the controller's reconcile of every namespace, once, as
/// a dry run against the cluster as it is.
pub(super) async fn plan(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(args.cluster.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let failed = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        Ok(ExitCode::from(2))
    };
    let client = match client(args.cluster.kubeconfig.as_deref()).await {
        Ok(c) => c,
        Err(e) => return failed(&format!("{e:#}")),
    };
    let state = crate::runtime::state::Shared::new(
        config,
        crate::guard::Identity {
            namespace: args.cluster.guard_namespace.clone(),
            service_account: format!(
                "system:serviceaccount:{}:netpol-guard",
                args.cluster.guard_namespace
            ),
        },
        crate::runtime::metrics::Metrics::new().context("metrics")?,
    );
    let planned = match crate::kubernetes::controller::plan(client, state).await {
        Ok(planned) => planned,
        Err(e) => return failed(&format!("reading the cluster: {e}")),
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        PlanFormat::Json => {
            let writes: Vec<serde_json::Value> = planned
                .iter()
                .map(|p| {
                    serde_json::json!({"namespace": p.namespace, "policy": p.policy,
                                       "action": p.action.as_str()})
                })
                .collect();
            let value = serde_json::json!({"writes": writes});
            out.write_all((serde_json::to_string_pretty(&value)? + "\n").as_bytes())?;
        }
        PlanFormat::Text => {
            for p in &planned {
                writeln!(out, "{:<8} {}/{}", p.action.as_str(), p.namespace, p.policy)?;
            }
            let namespaces: std::collections::BTreeSet<&str> =
                planned.iter().map(|p| p.namespace.as_str()).collect();
            writeln!(
                out,
                "{} writes in {} namespaces (nothing was written)",
                planned.len(),
                namespaces.len()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The report in `format`; text and JSON add the summary per namespace.
fn write(audit: &Audit, report: &Report, format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Text => {
            out.write_all(report::render(report, Format::Text).as_bytes())?;
            out.write_all(summary_text(audit).as_bytes())?;
        }
        Format::Json => {
            let mut value = report::json_value(report);
            value["namespaces"] = serde_json::to_value(&audit.namespaces)?;
            out.write_all((serde_json::to_string_pretty(&value)? + "\n").as_bytes())?;
        }
        Format::Sarif | Format::Github => {
            out.write_all(report::render(report, format).as_bytes())?;
        }
    }
    Ok(())
}
