//! One replica of the guard's Kubernetes side (the cluster cache, and the leader election
//! that runs the companions controller) against the in-memory API server, through a client
//! whose faults a test switches: the API server unreachable, answering an error status,
//! answering slowly, or unreachable for Leases only. The client also records, for each
//! NetworkPolicy write, who wrote it and who held the Lease at that moment.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, Request};
use kube::client::Body;
use netpol_guard::config::Config;
use netpol_guard::kubernetes::{cache, controller, leader};
use netpol_guard::runtime::state::SharedState;
use tokio::sync::watch;

use super::fake_api::{FakeApi, Reply, status};

pub(crate) const LEASE_NAMESPACE: &str = "netpol-guard";
pub(crate) const LEASE: &str = "netpol-guard-controller";

/// What the client does to requests, switched by the test.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Every request fails as a refused connection.
    pub down: AtomicBool,
    /// Lease requests answer 503.
    pub cut_leases: AtomicBool,
    /// Every request answers this status, with this Retry-After (seconds).
    pub status: Mutex<Option<(u16, Option<u32>)>>,
    /// Every request waits this long first.
    pub delay: Mutex<Duration>,
    /// Requests refused or failed by a fault.
    pub failed: Mutex<u64>,
    /// For each NetworkPolicy write that reached the API: the writer, the Lease's holder.
    pub writes: Mutex<Vec<(String, Option<String>)>>,
}

impl Faults {
    pub(crate) fn set_status(&self, status: Option<(u16, Option<u32>)>) {
        *self.status.lock().unwrap() = status;
    }

    pub(crate) fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    /// Forgets the writes recorded so far.
    pub(crate) fn clear_writes(&self) {
        self.writes.lock().unwrap().clear();
    }

    pub(crate) fn failed(&self) -> u64 {
        *self.failed.lock().unwrap()
    }
}

fn lease_holder(api: &FakeApi) -> Option<String> {
    api.get("leases", LEASE_NAMESPACE, LEASE)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

fn with_retry_after(mut reply: Reply, seconds: Option<u32>) -> Reply {
    if let Some(s) = seconds {
        reply
            .headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    reply
}

/// A client of `api` subject to `faults`, writing as `identity`.
pub(crate) fn client(api: &FakeApi, faults: Arc<Faults>, identity: &str) -> kube::Client {
    let api = api.clone();
    let identity = identity.to_string();
    let service = tower::service_fn(move |req: Request<Body>| {
        let (api, faults, identity) = (api.clone(), faults.clone(), identity.clone());
        async move {
            let delay = *faults.delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let fail = |faults: &Faults| *faults.failed.lock().unwrap() += 1;
            if faults.down.load(Ordering::SeqCst) {
                fail(&faults);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused (test fault)",
                ));
            }
            let path = req.uri().path().to_string();
            if faults.cut_leases.load(Ordering::SeqCst) && path.contains("/leases") {
                fail(&faults);
                return Ok(status(503, "ServiceUnavailable"));
            }
            if let Some((code, retry_after)) = *faults.status.lock().unwrap() {
                fail(&faults);
                return Ok(with_retry_after(status(code, "InjectedFault"), retry_after));
            }
            if path.contains("/networkpolicies/") && req.method() != Method::GET {
                let holder = lease_holder(&api);
                faults.writes.lock().unwrap().push((identity, holder));
            }
            Ok(api.handle(req).await)
        }
    });
    kube::Client::new(service, "default")
}

/// One replica: the cache, and the election that runs the controller.
pub(crate) struct Replica {
    pub identity: String,
    pub state: SharedState,
    pub faults: Arc<Faults>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The cache's production timing scaled down by ten: an outage is told within a second and
/// the watches start over half a second after they fail.
pub(crate) fn quick_cache() -> cache::Timing {
    cache::Timing {
        resync_first: Duration::from_millis(500),
        resync_max: Duration::from_secs(6),
        probe_every: Duration::from_secs(1),
        probe_timeout: Duration::from_millis(500),
        rediscover_every: Duration::from_secs(6),
    }
}

pub(crate) fn replica(api: &FakeApi, identity: &str) -> Replica {
    replica_with(api, identity, leader::Timing::default())
}

pub(crate) fn replica_with(api: &FakeApi, identity: &str, timing: leader::Timing) -> Replica {
    let state = super::state_with(Config::default());
    let (stop, rx) = watch::channel(false);
    let faults = Arc::new(Faults::default());
    let client = client(api, faults.clone(), identity);
    let tasks = vec![
        tokio::spawn(cache::run(
            client.clone(),
            state.clone(),
            quick_cache(),
            rx.clone(),
        )),
        tokio::spawn(leader::run(
            leader::Election {
                client: client.clone(),
                namespace: LEASE_NAMESPACE.into(),
                lease: LEASE.into(),
                identity: identity.into(),
                timing,
            },
            state.clone(),
            controller::Companions::retrying_after(client, state.clone(), Duration::from_secs(2)),
            rx,
        )),
    ];
    Replica {
        identity: identity.to_string(),
        state,
        faults,
        stop,
        tasks,
    }
}

impl Replica {
    /// Stops the replica as SIGTERM does, waiting for its tasks.
    pub(crate) async fn shutdown(self) {
        self.stop.send(true).unwrap();
        for (t, what) in self.tasks.into_iter().zip(["the cache", "the election"]) {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .unwrap_or_else(|_| panic!("{what} did not stop"))
                .unwrap();
        }
    }

    pub(crate) fn leads(&self) -> bool {
        self.state.metrics.controller.is_leader()
    }

    pub(crate) fn synced(&self) -> bool {
        self.state.metrics.cache.synced()
    }
}

/// Every NetworkPolicy write of these replicas was made while its writer held the Lease.
pub(crate) fn assert_writes_only_by_the_holder(replicas: &[&Replica]) {
    for r in replicas {
        for (writer, holder) in r.faults.writes.lock().unwrap().iter() {
            assert_eq!(
                holder.as_deref(),
                Some(writer.as_str()),
                "{writer} wrote a NetworkPolicy while the Lease was held by {holder:?}"
            );
        }
    }
}
