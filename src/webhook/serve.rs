//! `netpol-guard serve`: the admission webhook process. Binds the TLS admission listener
//! and the plain metrics listener, keeps certificates and configuration fresh, and shuts
//! down gracefully on SIGTERM (a second signal exits at once).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::limit::ConcurrencyLimitLayer;
use tower::{ServiceBuilder, ServiceExt as _};

use crate::config::Config;
use crate::guard::Identity;
use crate::runtime::metrics::{Attempt, Metrics};
use crate::runtime::state::{Shared, SharedState};
use crate::webhook::certs;
use crate::webhook::reload;
use crate::webhook::router::{self, Limits};
use crate::webhook::shedding;
use crate::webhook::tls::{self, CertStore};

/// Flags of `serve`; each has a `NETPOL_GUARD_...` environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address of the TLS admission listener.
    #[arg(long, env = "NETPOL_GUARD_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP metrics and health listener.
    #[arg(
        long,
        env = "NETPOL_GUARD_METRICS_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_listen: SocketAddr,
    /// Rule configuration (YAML), reloaded when it changes; the embedded default when absent.
    #[arg(long, env = "NETPOL_GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serving certificate (PEM chain), reloaded when it changes.
    #[arg(long, env = "NETPOL_GUARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Serving key (PEM), reloaded with the certificate.
    #[arg(long, env = "NETPOL_GUARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Without --tls-cert/--tls-key: where the generated self-signed CA is written
    /// [default: $TMPDIR/netpol-guard].
    #[arg(long, env = "NETPOL_GUARD_SELF_SIGNED_DIR")]
    pub self_signed_dir: Option<PathBuf>,
    /// The namespace the guard runs in (it gets no companions and is never sent to the
    /// webhook). `--pod-namespace` is its former name.
    #[arg(
        long,
        alias = "pod-namespace",
        env = "NETPOL_GUARD_POD_NAMESPACE",
        default_value = "netpol-guard"
    )]
    pub guard_namespace: String,
    /// The guard's service account name (in --guard-namespace).
    #[arg(
        long,
        env = "NETPOL_GUARD_SERVICE_ACCOUNT",
        default_value = "netpol-guard"
    )]
    pub service_account: String,
    /// How often certificate and configuration files are checked for changes.
    #[arg(long, env = "NETPOL_GUARD_RELOAD_INTERVAL", default_value = "2s", value_parser = crate::runtime::duration::flag)]
    pub reload_interval: Duration,
    /// After SIGTERM, how long to keep serving while readiness is false (endpoints drain)
    /// [default: 5s in a pod, 0s elsewhere: a local run has no endpoints to drain].
    #[arg(long, env = "NETPOL_GUARD_SHUTDOWN_DELAY", value_parser = crate::runtime::duration::flag)]
    pub shutdown_delay: Option<Duration>,
    /// How long in-flight requests may take to finish during shutdown.
    #[arg(long, env = "NETPOL_GUARD_DRAIN_TIMEOUT", default_value = "15s", value_parser = crate::runtime::duration::flag)]
    pub drain_timeout: Duration,
    /// TLS handshake timeout.
    #[arg(long, env = "NETPOL_GUARD_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = crate::runtime::duration::flag)]
    pub handshake_timeout: Duration,
    /// Time allowed to send request headers.
    #[arg(long, env = "NETPOL_GUARD_HEADER_TIMEOUT", default_value = "5s", value_parser = crate::runtime::duration::flag)]
    pub header_timeout: Duration,
    /// Time allowed to send a request body.
    #[arg(long, env = "NETPOL_GUARD_BODY_TIMEOUT", default_value = "10s", value_parser = crate::runtime::duration::flag)]
    pub body_timeout: Duration,
    /// Largest accepted AdmissionReview body, in bytes.
    #[arg(long, env = "NETPOL_GUARD_MAX_BODY_BYTES", default_value_t = 7 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Reviews processed at once; further requests wait.
    #[arg(
        long,
        env = "NETPOL_GUARD_MAX_CONCURRENT_REVIEWS",
        default_value_t = 256
    )]
    pub max_concurrent_reviews: usize,
    /// Open connections at once; further connections wait to be accepted.
    #[arg(long, env = "NETPOL_GUARD_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    #[command(flatten)]
    pub cluster: crate::kubernetes::ClusterArgs,
    /// Benchmarks only: admit every review after reading its uid, without rules.
    #[arg(long, env = "NETPOL_GUARD_BASELINE", hide = true)]
    pub baseline: bool,
}

/// Transport settings of the TLS listener.
#[derive(Debug, Clone)]
pub struct Transport {
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub drain_timeout: Duration,
    pub max_concurrent_reviews: usize,
    pub max_connections: usize,
    /// Body and deadline limits of the admission endpoints.
    pub limits: Limits,
}

impl From<&ServeArgs> for Transport {
    fn from(a: &ServeArgs) -> Self {
        Self {
            handshake_timeout: a.handshake_timeout,
            header_timeout: a.header_timeout,
            drain_timeout: a.drain_timeout,
            max_concurrent_reviews: a.max_concurrent_reviews,
            max_connections: a.max_connections,
            limits: Limits {
                max_body: a.max_body_bytes,
                body_timeout: a.body_timeout,
                baseline: a.baseline,
                ..Limits::default()
            },
        }
    }
}

/// The certificate files the webhook serves and watches.
type CertificateFiles = Option<(PathBuf, PathBuf, Vec<Vec<u8>>)>;

/// The serving certificate: the given files (watched for rotation), or a self-signed one.
fn serving_certificate(args: &ServeArgs) -> anyhow::Result<(tls::Loaded, CertificateFiles)> {
    Ok(match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let cert_pem =
                std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
            let key_pem =
                std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
            let loaded =
                tls::load(&cert_pem, &key_pem).context("loading the serving certificate")?;
            (
                loaded,
                Some((cert.clone(), key.clone(), vec![cert_pem, key_pem])),
            )
        }
        _ => (self_signed(args.self_signed_dir.as_deref())?, None),
    })
}

/// A bound, ready-to-serve webhook: listeners, certificates, reload watchers.
#[derive(Debug)]
pub struct Webhook {
    pub state: SharedState,
    listener: TcpListener,
    metrics_listener: TcpListener,
    tls_config: Arc<ServerConfig>,
    transport: Transport,
    watchers: Vec<tokio::task::JoinHandle<()>>,
}

impl Webhook {
    /// Loads configuration and certificates, binds both listeners and starts the reload
    /// watchers. Fails on anything that would make serving impossible.
    pub async fn bind(args: &ServeArgs) -> anyhow::Result<Self> {
        let config = match &args.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let metrics = Metrics::new().context("registering metrics")?;
        let identity = Identity {
            service_account: format!(
                "system:serviceaccount:{}:{}",
                args.guard_namespace, args.service_account
            ),
            namespace: args.guard_namespace.clone(),
        };
        let state = Shared::new(config, identity, metrics);

        // bind first: a second instance on a busy port must fail before it writes anything
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let metrics_listener = TcpListener::bind(args.metrics_listen)
            .await
            .with_context(|| format!("binding {}", args.metrics_listen))?;
        let (loaded, tls_files) = serving_certificate(args)?;
        state.metrics.webhook.certificate(loaded.not_after);
        let store = Arc::new(CertStore::new(loaded));
        let tls_config = tls::server_config(store.clone())?;

        let mut watchers = Vec::new();
        if let Some((cert, key, initial)) = tls_files {
            watchers.push(tokio::spawn(watch_certificates(
                state.clone(),
                store,
                vec![cert, key],
                initial,
                args.reload_interval,
            )));
        }
        if let Some(path) = &args.config {
            let initial = std::fs::read(path).unwrap_or_default();
            watchers.push(tokio::spawn(watch_config(
                state.clone(),
                path.clone(),
                initial,
                args.reload_interval,
            )));
        }
        Ok(Self {
            state,
            listener,
            metrics_listener,
            tls_config,
            transport: Transport::from(args),
            watchers,
        })
    }

    /// The admission (TLS) and metrics addresses actually bound.
    pub fn addresses(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((
            self.listener.local_addr()?,
            self.metrics_listener.local_addr()?,
        ))
    }

    /// Serves until `stop` resolves, then drains.
    pub async fn serve(self, stop: impl Future<Output = ()> + Send + 'static) {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            stop.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let router = router::metrics_router(self.state.clone());
        let metrics_stop = stopped(stop_rx.clone());
        let metrics_listener = self.metrics_listener;
        let metrics_server = tokio::spawn(serve_metrics(metrics_listener, router, metrics_stop));
        self.state.set_ready(true);
        serve_tls(
            self.listener,
            self.state.clone(),
            self.tls_config,
            self.transport,
            stopped(stop_rx),
        )
        .await;
        self.state.set_ready(false);
        let _ = metrics_server.await;
        for w in self.watchers {
            w.abort();
        }
    }
}

/// Runs the webhook until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let webhook = Webhook::bind(&args).await?;
    let (listen, metrics) = webhook.addresses()?;
    tracing::info!(
        %listen,
        %metrics,
        config = %args.config.as_ref().map_or("embedded default".to_string(), |p| p.display().to_string()),
        version = env!("CARGO_PKG_VERSION"),
        baseline = args.baseline,
        "netpol-guard serving admission reviews"
    );
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let cluster =
        crate::kubernetes::start(&args.cluster, webhook.state.clone(), stop_rx.clone()).await?;
    // The delay lets the Service's endpoints drop this pod before the listener closes; a
    // local run (no Kubernetes around it) has nothing to wait for.
    let delay =
        args.shutdown_delay
            .unwrap_or(if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
                Duration::from_secs(5)
            } else {
                Duration::ZERO
            });
    tokio::spawn(signals(webhook.state.clone(), delay, stop_tx));
    webhook
        .serve(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        })
        .await;
    // the controller releases its Lease on the way out
    for task in cluster {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    tracing::info!("netpol-guard stopped");
    Ok(())
}

/// Generates a CA and a certificate for localhost, writes the CA where clients can find it.
fn self_signed(dir: Option<&Path>) -> anyhow::Result<tls::Loaded> {
    let bundle = certs::generate(
        &["localhost".to_string()],
        &[
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ],
        365,
    )?;
    let dir = dir.map_or_else(
        || std::env::temp_dir().join("netpol-guard"),
        Path::to_path_buf,
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, &bundle.ca_pem).with_context(|| format!("writing {}", ca.display()))?;
    tracing::warn!(
        ca = %ca.display(),
        "no --tls-cert/--tls-key: serving a self-signed certificate for localhost; trust the CA written here"
    );
    Ok(tls::load(
        bundle.cert_pem.as_bytes(),
        bundle.key_pem.as_bytes(),
    )?)
}

async fn watch_certificates(
    state: SharedState,
    store: Arc<CertStore>,
    paths: Vec<PathBuf>,
    initial: Vec<Vec<u8>>,
    interval: Duration,
) {
    reload::watch(paths, interval, initial, move |read| {
        let result = read
            .map_err(|e| e.to_string())
            .and_then(|files| tls::load(&files[0], &files[1]).map_err(|e| e.to_string()));
        match result {
            Ok(loaded) => {
                state.metrics.webhook.certificate(loaded.not_after);
                store.replace(loaded);
                state.metrics.webhook.tls_reload(Attempt::Succeeded);
                tracing::info!("serving certificate reloaded");
            }
            Err(e) => {
                state.metrics.webhook.tls_reload(Attempt::Failed);
                tracing::error!(error = %e, "new serving certificate refused; the previous one stays in service");
            }
        }
    })
    .await;
}

async fn watch_config(state: SharedState, path: PathBuf, initial: Vec<u8>, interval: Duration) {
    reload::watch(vec![path.clone()], interval, vec![initial], move |read| {
        let result = read
            .map_err(|e| e.to_string())
            .and_then(|files| {
                let text = String::from_utf8_lossy(&files[0]).into_owned();
                Config::from_yaml(&text).map_err(|e| e.to_string())
            });
        match result {
            Ok(config) => {
                state.set_config(config);
                state.metrics.webhook.config_reload(Attempt::Succeeded);
                tracing::info!(config = %path.display(), "configuration reloaded");
            }
            Err(e) => {
                state.metrics.webhook.config_reload(Attempt::Failed);
                tracing::error!(config = %path.display(), error = %e, "new configuration refused; the previous one stays in service");
            }
        }
    })
    .await;
}

/// First SIGTERM/SIGINT: readiness false, keep serving for `delay`, then stop. Second:
/// exit at once.
async fn signals(state: SharedState, delay: Duration, stop: watch::Sender<bool>) {
    wait_for_signal().await;
    tracing::info!(delay = ?delay, "shutdown requested: readiness is now false");
    state.start_draining();
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        // give the log writer (batches every few milliseconds) a moment to write it out
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::process::exit(130);
    });
    tokio::time::sleep(delay).await;
    let _ = stop.send(true);
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The TLS handshake of one connection, within its timeout.
async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// The next connection, once one of the listener's connection permits is free; `None` when
/// `stop` resolved. Connections beyond the limit wait in the kernel's backlog, unaccepted.
async fn next_connection<S: Future<Output = ()> + Unpin>(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
    stop: &mut S,
) -> Option<(
    tokio::sync::OwnedSemaphorePermit,
    tokio::net::TcpStream,
    SocketAddr,
)> {
    let permit = tokio::select! {
        permit = connections.clone().acquire_owned() => permit.ok()?,
        () = &mut *stop => return None,
    };
    let (tcp, peer) = accept(listener, stop).await?;
    Some((permit, tcp, peer))
}

/// The next accepted connection; `None` when `stop` resolved.
async fn accept<S: Future<Output = ()> + Unpin>(
    listener: &TcpListener,
    stop: &mut S,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(found) => return Some(found),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut *stop => return None,
        }
    }
}

/// Connections the plain metrics and health listener keeps at once. Scrapers and probes need
/// a handful; more wait in the kernel's backlog, unaccepted, so that whatever happens on this
/// port cannot take the file descriptors admission needs.
const METRICS_MAX_CONNECTIONS: usize = 64;
/// How long a metrics connection may take to send a request, and may sit idle between two.
const METRICS_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `/metrics` and the health endpoints over plain HTTP/1.1 until `stop` resolves,
/// with its own connection limit and idle timeout.
async fn serve_metrics(
    listener: TcpListener,
    router: axum::Router,
    stop: impl Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(METRICS_MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(METRICS_IDLE_TIMEOUT)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    while let Some((permit, tcp, _)) = next_connection(&listener, &connections, &mut stop).await {
        let service = TowerToHyperService::new(router.clone());
        let conn = http.serve_connection(TokioIo::new(tcp), service);
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = watched.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
}

/// Accepts TLS connections until `stop` resolves, then lets in-flight requests finish
/// (closing idle keep-alive connections) for at most the drain timeout.
pub async fn serve_tls(
    listener: TcpListener,
    state: SharedState,
    tls_config: Arc<ServerConfig>,
    transport: Transport,
    stop: impl Future<Output = ()>,
) {
    let router = router::admission_router(state.clone(), transport.limits.clone());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(transport.header_timeout)
        .keep_alive(true);
    let every = Connections {
        acceptor: TlsAcceptor::from(tls_config),
        service: ServiceBuilder::new()
            .layer(ConcurrencyLimitLayer::new(
                transport.max_concurrent_reviews.max(1),
            ))
            .service(router),
        http,
        handshake_timeout: transport.handshake_timeout,
        metrics: state.metrics.clone(),
        unproductive: Arc::new(shedding::Unproductive::default()),
    };
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(transport.max_connections.max(1)));
    tokio::pin!(stop);
    loop {
        // at the limit, the oldest connection that has not sent a request makes room
        let permit = tokio::select! {
            permit = shedding::permit(&connections, &every.unproductive) => permit,
            () = &mut stop => None,
        };
        let Some(permit) = permit else { break };
        let Some((tcp, peer)) = accept(&listener, &mut stop).await else {
            break;
        };
        every.spawn(tcp, peer, graceful.watcher(), permit);
    }
    drop(listener);
    drain(&state, graceful, transport.drain_timeout).await;
}

/// What every accepted connection's task is given.
struct Connections {
    acceptor: TlsAcceptor,
    service: tower::limit::ConcurrencyLimit<axum::Router>,
    http: hyper::server::conn::http1::Builder,
    handshake_timeout: Duration,
    metrics: Metrics,
    unproductive: Arc<shedding::Unproductive>,
}

impl Connections {
    /// Serves one connection in a task of its own: the TLS handshake, then HTTP/1.1 until
    /// it ends, the drain closes it, or it is shed for sending no request at the limit.
    fn spawn(
        &self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let _ = tcp.set_nodelay(true);
        let acceptor = self.acceptor.clone();
        let service = self.service.clone();
        let http = self.http.clone();
        let handshake_timeout = self.handshake_timeout;
        let (pending, shed) = self.unproductive.register();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            // counted until the connection ends; the count drops before the permit is released
            let _held = (metrics.webhook.connection(), permit);
            let serve = async {
                let tls = handshake(&acceptor, tcp, peer, handshake_timeout).await?;
                let marker = pending.clone();
                let service = service.map_request(move |req| {
                    marker.productive();
                    req
                });
                let conn =
                    http.serve_connection(TokioIo::new(tls), TowerToHyperService::new(service));
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                Some(())
            };
            tokio::select! {
                _ = serve => {}
                Ok(()) = shed => {
                    metrics.webhook.connection_shed();
                    tracing::debug!(%peer, "shed: no request yet at the connection limit");
                }
            }
        });
    }
}

/// After the listener closed: connections accepted just before may not have sent their
/// first request yet, and keep-alive clients may be sending one now, so closing them as
/// idle would drop those requests. For a moment every request is still answered (asking
/// the client to close), then the connections left idle are closed, within `timeout`.
async fn drain(state: &Shared, graceful: GracefulShutdown, timeout: Duration) {
    state.start_draining();
    let settle = SETTLE.min(timeout);
    let started = tokio::time::Instant::now();
    tokio::time::sleep(settle).await;
    let left = timeout.saturating_sub(started.elapsed());
    if tokio::time::timeout(left, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout: closing the remaining connections");
    }
}

/// How long a closed listener's connections are still served before idle ones are closed.
const SETTLE: Duration = Duration::from_secs(1);
