//! Everything that talks to the Kubernetes API: the cluster cache that gives admission its
//! context ([`cache`]), the Lease that picks the one replica that reconciles ([`leader`]),
//! and the companions controller ([`controller`]). Nothing here runs on the request path:
//! admission reads the last snapshot the cache published and never waits for the API.

pub mod audit;
pub mod cache;
pub mod controller;
pub mod leader;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube::config::{Config as KubeConfig, KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;

use crate::runtime::state::SharedState;

/// Whether `serve` runs the companions controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ControllerMode {
    /// In a cluster (the pod's service account) only: a local `serve --kubeconfig` reads
    /// the cluster for its verdicts and writes nothing.
    Auto,
    /// Always; `serve` fails to start without a Kubernetes API.
    On,
    /// Elected as with `on`, but every write is only logged ("would create ...").
    DryRun,
    /// Never (the cluster cache still runs when an API is configured).
    Off,
}

/// Flags of `serve` for the Kubernetes side.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Kubeconfig to reach the API server; without it, the in-cluster service account.
    /// (`--controller on` also falls back to $KUBECONFIG and ~/.kube/config.)
    #[arg(long, env = "NETPOL_GUARD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Run the companions controller: auto (in a cluster only), on, dry-run (log what it
    /// would write), off.
    #[arg(
        long,
        env = "NETPOL_GUARD_CONTROLLER",
        value_enum,
        default_value = "auto"
    )]
    pub controller: ControllerMode,
    /// This replica's identity in the leader Lease (the pod name, from the downward API)
    /// [default: $HOSTNAME].
    #[arg(long, env = "NETPOL_GUARD_POD_NAME")]
    pub pod_name: Option<String>,
    /// Name of the Lease (in --guard-namespace) that elects the reconciling replica.
    #[arg(
        long,
        env = "NETPOL_GUARD_LEASE_NAME",
        default_value = "netpol-guard-controller"
    )]
    pub lease_name: String,
    /// Audit the cluster's existing policies in the background (on the leader replica).
    #[arg(long, env = "NETPOL_GUARD_AUDIT", value_enum, default_value = "on")]
    pub audit: Switch,
    /// How often the background audit runs besides after changes.
    #[arg(long, env = "NETPOL_GUARD_AUDIT_INTERVAL", default_value = "10m", value_parser = crate::runtime::duration::positive_flag)]
    pub audit_interval: Duration,
    /// Write the audit's results as reports (one per namespace, of the --report-api) when
    /// their CRD is installed.
    #[arg(
        long,
        env = "NETPOL_GUARD_POLICY_REPORTS",
        value_enum,
        default_value = "on"
    )]
    pub policy_reports: Switch,
    /// Which report API the audit writes: `policyreport` (wgpolicyk8s.io/v1alpha2
    /// PolicyReport) or `openreports` (openreports.io/v1alpha1 Report).
    #[arg(
        long,
        env = "NETPOL_GUARD_REPORT_API",
        value_enum,
        default_value = "policyreport"
    )]
    pub report_api: audit::ReportApi,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// After a change in the cluster, the background audit waits this long for more.
const AUDIT_DEBOUNCE: Duration = Duration::from_secs(10);

/// The client configuration of a kubeconfig file (its current context).
pub async fn from_file(path: &std::path::Path) -> anyhow::Result<KubeConfig> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    KubeConfig::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("using kubeconfig {}", path.display()))
}

/// How the process found (or did not find) the API server.
async fn client_config(args: &ClusterArgs) -> anyhow::Result<Option<(KubeConfig, bool)>> {
    if let Some(path) = &args.kubeconfig {
        return from_file(path).await.map(|c| Some((c, false)));
    }
    if let Ok(config) = KubeConfig::incluster() {
        return Ok(Some((config, true)));
    }
    if matches!(args.controller, ControllerMode::On | ControllerMode::DryRun) {
        // Explicitly asked for: the usual discovery ($KUBECONFIG, ~/.kube/config).
        let config = KubeConfig::infer()
            .await
            .context("--controller on needs a Kubernetes API, and none is configured")?;
        return Ok(Some((config, false)));
    }
    // `auto` never picks up a developer's current kubectl context by itself: running the
    // webhook locally must not start reconciling whatever cluster that context points at.
    Ok(None)
}

/// The client for `config`, after one try at the API server: with `--controller on` an
/// unreachable API is an error; otherwise it is logged and the watches keep retrying.
async fn reach(config: KubeConfig, mode: ControllerMode) -> anyhow::Result<Client> {
    let cluster_url = config.cluster_url.to_string();
    let client = Client::try_from(config).context("building the Kubernetes client")?;
    match tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await {
        Ok(Ok(version)) => {
            tracing::info!(url = %cluster_url, version = %version.git_version, "Kubernetes API reachable");
        }
        Ok(Err(e)) if mode == ControllerMode::On => {
            return Err(e).context(format!("reaching the Kubernetes API at {cluster_url}"));
        }
        Err(_) if mode == ControllerMode::On => {
            anyhow::bail!("the Kubernetes API at {cluster_url} did not answer within 5s");
        }
        // In a cluster the API may come up after us: the watches retry with backoff.
        Ok(Err(e)) => {
            tracing::warn!(url = %cluster_url, error = %e, "Kubernetes API not reachable yet; the cache and controller keep retrying");
        }
        Err(_) => {
            tracing::warn!(url = %cluster_url, "Kubernetes API did not answer within 5s; the cache and controller keep retrying");
        }
    }

    Ok(client)
}

/// Starts the cluster cache and, unless switched off, the leader election and the
/// companions controller. Returns the tasks; they stop when `stop` turns true.
pub async fn start(
    args: &ClusterArgs,
    state: SharedState,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let Some((config, in_cluster)) = client_config(args).await? else {
        tracing::info!(
            "no Kubernetes API configured (not in a cluster, no --kubeconfig): serving \
             admission on each object alone, without cluster context or companions"
        );
        return Ok(Vec::new());
    };
    let client = reach(config, args.controller).await?;
    let mut tasks = vec![tokio::spawn(cache::run(
        client.clone(),
        state.clone(),
        cache::Timing::default(),
        stop.clone(),
    ))];
    if !controller_runs(args.controller, in_cluster) {
        return Ok(tasks);
    }
    let identity = args
        .pod_name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("netpol-guard-{}", std::process::id()));
    if args.audit == Switch::On {
        let settings = audit::Settings {
            interval: args.audit_interval,
            debounce: AUDIT_DEBOUNCE,
            // a dry run writes nothing, PolicyReports included
            reports: args.policy_reports == Switch::On && args.controller != ControllerMode::DryRun,
            api: args.report_api,
        };
        tasks.push(tokio::spawn(audit::run(
            client.clone(),
            state.clone(),
            settings,
            stop.clone(),
        )));
    }
    let guard_namespace = state.snapshot().identity.namespace.clone();
    let companions = if args.controller == ControllerMode::DryRun {
        controller::Companions::dry_run(client.clone(), state.clone())
    } else {
        controller::Companions::new(client.clone(), state.clone())
    };
    tasks.push(tokio::spawn(leader::run(
        leader::Election {
            client,
            namespace: guard_namespace,
            lease: args.lease_name.clone(),
            identity,
            timing: leader::Timing::default(),
        },
        state,
        companions,
        stop,
    )));
    Ok(tasks)
}

/// Whether the companions controller (and with it the background audit) runs, saying so
/// when it does not or only in a dry run.
fn controller_runs(mode: ControllerMode, in_cluster: bool) -> bool {
    match (mode, in_cluster) {
        (ControllerMode::Off, _) => {
            tracing::info!(
                "companions controller off (--controller off); no background audit either (it \
                 runs on the replica elected for the controller: use `netpol-guard audit`)"
            );
            false
        }
        (ControllerMode::Auto, false) => {
            tracing::info!(
                "companions controller off: outside a cluster it runs only with --controller on \
                 (--controller dry-run, or `netpol-guard companions plan`, shows what it would \
                 write); the cluster is read for the verdicts only"
            );
            false
        }
        (ControllerMode::DryRun, _) => {
            tracing::info!(
                "companions controller in dry run: what it would write is logged, nothing is written"
            );
            true
        }
        _ => true,
    }
}

/// Resolves when `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
