//! What the webhook, the cluster cache and the controller share: the snapshot every
//! decision reads, the metrics, readiness, and a signal when the configuration changes.
//! Neither HTTP nor the Kubernetes API lives here, so both edges can depend on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::config::Config;
use crate::guard::{Identity, Snapshot};
use crate::netpol::cluster::Inventory;
use crate::netpol::dns::DnsSource;
use crate::netpol::ports::Protocol;
use crate::runtime::metrics::Metrics;

/// State shared by the request handlers and the background tasks.
#[derive(Debug)]
pub struct Shared {
    /// The snapshot reviews read; rebuilt when the configuration or the inventory changes.
    snapshot: RwLock<Snapshot>,
    pub metrics: Metrics,
    ready: AtomicBool,
    /// Set once shutdown began: answers then ask clients to close their connection.
    draining: AtomicBool,
    /// Ticks when a new configuration goes into service.
    config_changes: tokio::sync::watch::Sender<()>,
    /// Ticks when a new view of the cluster goes into service.
    inventory_changes: tokio::sync::watch::Sender<()>,
    /// Whether this replica holds the leader Lease (runs the controller and the audit).
    leading: tokio::sync::watch::Sender<bool>,
}

/// Handle to the shared state.
pub type SharedState = Arc<Shared>;

impl Shared {
    pub fn new(config: Config, identity: Identity, metrics: Metrics) -> SharedState {
        let snapshot = Snapshot::new(
            Arc::new(config),
            Arc::new(Inventory::new()),
            Arc::new(identity),
        );
        metrics.cache.dns_target(
            snapshot.dns.namespace().unwrap_or_default(),
            snapshot.dns.source().label(),
        );
        Arc::new(Self {
            snapshot: RwLock::new(snapshot),
            metrics,
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            config_changes: tokio::sync::watch::Sender::new(()),
            inventory_changes: tokio::sync::watch::Sender::new(()),
            leading: tokio::sync::watch::Sender::new(false),
        })
    }

    /// A consistent snapshot for one decision.
    pub fn snapshot(&self) -> Snapshot {
        match self.snapshot.read() {
            Ok(snapshot) => snapshot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, change: impl FnOnce(&Snapshot) -> Snapshot) {
        let mut guard = match self.snapshot.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let next = change(&guard);
        let target = |s: &Snapshot| (s.dns.source().clone(), s.dns.namespace().map(String::from));
        let (source, namespace) = target(&next);
        if (&source, &namespace) != (&target(&guard).0, &target(&guard).1) {
            let namespace = namespace.unwrap_or_default();
            match &source {
                DnsSource::Discovered(service) => tracing::info!(
                    service = %service,
                    ports = ?next.dns.port_number(Protocol::Udp),
                    "DNS target discovered from the cluster's DNS Service"
                ),
                DnsSource::Configured => {
                    tracing::info!(namespace = %namespace, "DNS target from the configuration")
                }
            }
            self.metrics.cache.dns_target(&namespace, source.label());
        }
        *guard = next;
    }

    /// Puts a new rule configuration in service.
    pub fn set_config(&self, config: Config) {
        self.update(|s| Snapshot::new(Arc::new(config), s.inventory.clone(), s.identity.clone()));
        self.config_changes.send_replace(());
    }

    /// Notified whenever a new configuration goes into service.
    pub fn config_changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.config_changes.subscribe()
    }

    /// Puts a new view of the cluster in service.
    pub fn set_inventory(&self, inventory: Inventory) {
        self.update(|s| Snapshot::new(s.config.clone(), Arc::new(inventory), s.identity.clone()));
        self.inventory_changes.send_replace(());
    }

    /// Notified whenever a new view of the cluster goes into service.
    pub fn inventory_changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.inventory_changes.subscribe()
    }

    /// Records whether this replica leads (holds a fresh leader Lease).
    pub fn set_leading(&self, leading: bool) {
        self.leading
            .send_if_modified(|l| std::mem::replace(l, leading) != leading);
    }

    /// Whether this replica leads, and its changes.
    pub fn leading(&self) -> tokio::sync::watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// Whether the process serves (listeners bound, not draining).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Shutdown began: not ready, and keep-alive connections are to be closed by clients.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.set_ready(false);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
