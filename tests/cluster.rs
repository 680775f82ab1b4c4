//! The Kubernetes side wired together, against an in-memory API server: the cluster cache
//! (list + watch), the leader Lease and the companions controller as `serve` runs them, and
//! admission reading the cache. The fake speaks list, watch (with resourceVersion replay),
//! get, create, server-side apply and strategic merge patches (with field-manager conflicts
//! on Lease holders), and delete.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, Request, Response, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use kube::client::Body;
use netpol_guard::config::Config;
use netpol_guard::kubernetes::{cache, controller, leader};
use netpol_guard::server::AppState;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// Objects by (resource, namespace, name); `resource` is the URL plural.
#[derive(Default)]
struct Store {
    objects: BTreeMap<(String, String, String), Value>,
    /// Every change as (resourceVersion, resource, watch event).
    log: Vec<(u64, String, Value)>,
    version: u64,
    /// Who set each Lease's holder (server-side apply ownership).
    lease_owner: BTreeMap<String, String>,
}

#[derive(Clone)]
struct FakeApi {
    store: Arc<Mutex<Store>>,
    events: broadcast::Sender<(u64, String, Value)>,
}

fn reply(code: u16, body: &Value) -> Reply {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())).boxed())
        .unwrap()
}

fn status(code: u16, reason: &str) -> Reply {
    reply(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "code": code, "reason": reason, "message": reason}),
    )
}

fn labels_match(object: &Value, selector: Option<&str>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    selector.split(',').all(|term| {
        let (k, v) = term.split_once('=').unwrap();
        object["metadata"]["labels"][k] == v
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            v.replace("%2F", "/")
                .replace("%3D", "=")
                .replace("%2C", ",")
        })
    })
}

/// Merges `patch` into `target` (JSON merge semantics: null deletes).
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

impl FakeApi {
    fn new() -> Self {
        Self {
            store: Arc::default(),
            events: broadcast::channel(1024).0,
        }
    }

    /// Stores an object and records the watch event (ADDED or MODIFIED).
    fn put(&self, resource: &str, mut object: Value) -> Value {
        let mut s = self.store.lock().unwrap();
        s.version += 1;
        let version = s.version;
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let key = (resource.to_string(), ns.clone(), name.clone());
        let existed = s.objects.get(&key).cloned();
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let uid = existed
            .as_ref()
            .map(|e| e["metadata"]["uid"].clone())
            .unwrap_or_else(|| json!(format!("uid-{resource}-{ns}-{name}-{version}")));
        object["metadata"]["uid"] = uid;
        s.objects.insert(key, object.clone());
        let kind = if existed.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let event = json!({"type": kind, "object": object});
        s.log.push((version, resource.to_string(), event.clone()));
        drop(s);
        let _ = self.events.send((version, resource.to_string(), event));
        object
    }

    fn delete(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let mut s = self.store.lock().unwrap();
        let mut object =
            s.objects
                .remove(&(resource.to_string(), ns.to_string(), name.to_string()))?;
        s.version += 1;
        let version = s.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let event = json!({"type": "DELETED", "object": object});
        s.log.push((version, resource.to_string(), event.clone()));
        drop(s);
        let _ = self.events.send((version, resource.to_string(), event));
        Some(object)
    }

    fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.store
            .lock()
            .unwrap()
            .objects
            .get(&(resource.to_string(), ns.to_string(), name.to_string()))
            .cloned()
    }

    fn names(&self, resource: &str, ns: &str) -> Vec<String> {
        self.store
            .lock()
            .unwrap()
            .objects
            .keys()
            .filter(|(r, n, _)| r == resource && n == ns)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    async fn handle(&self, req: Request<Body>) -> Reply {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let content_type = req
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // (resource, namespace or "" for all, name)
        let (resource, ns, name): (&str, &str, Option<&str>) = match parts.as_slice() {
            ["api", "v1", "namespaces"] => ("namespaces", "", None),
            ["api", "v1", "namespaces", name] => ("namespaces", "", Some(*name)),
            ["apis", _, "v1", "networkpolicies"] => ("networkpolicies", "", None),
            ["apis", _, "v1", "namespaces", ns, resource] => (*resource, *ns, None),
            ["apis", _, "v1", "namespaces", ns, resource, name] => (*resource, *ns, Some(*name)),
            _ => return status(404, "NotFound"),
        };
        let selector = query_param(&query, "labelSelector");
        match (method, name) {
            (Method::GET, None) if query_param(&query, "watch").as_deref() == Some("true") => {
                let since: u64 = query_param(&query, "resourceVersion")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                self.watch(resource, ns, selector, since)
            }
            (Method::GET, None) => {
                let s = self.store.lock().unwrap();
                let items: Vec<&Value> = s
                    .objects
                    .iter()
                    .filter(|((r, n, _), o)| {
                        r == resource
                            && (ns.is_empty() || n == ns)
                            && labels_match(o, selector.as_deref())
                    })
                    .map(|(_, o)| o)
                    .collect();
                reply(
                    200,
                    &json!({"kind": "List", "apiVersion": "v1",
                            "metadata": {"resourceVersion": s.version.to_string()}, "items": items}),
                )
            }
            (Method::GET, Some(name)) => match self.get(resource, ns, name) {
                Some(o) => reply(200, &o),
                None => status(404, "NotFound"),
            },
            (Method::POST, None) => {
                let mut object: Value = serde_json::from_slice(&body).unwrap();
                let name = object["metadata"]["name"].as_str().unwrap().to_string();
                if self.get(resource, ns, &name).is_some() {
                    return status(409, "AlreadyExists");
                }
                object["metadata"]["namespace"] = json!(ns);
                reply(201, &self.put(resource, object))
            }
            (Method::PATCH, Some(name)) => {
                let patch: Value = serde_json::from_slice(&body).unwrap();
                let manager = query_param(&query, "fieldManager").unwrap_or_default();
                let current = self.get(resource, ns, name);
                if resource == "leases" {
                    return self.patch_lease(ns, name, current, &patch, &manager, &content_type);
                }
                assert_eq!(content_type, "application/apply-patch+yaml", "{path}");
                assert_eq!(manager, "netpol-guard");
                let mut object = patch;
                object["metadata"]["namespace"] = json!(ns);
                reply(200, &self.put(resource, object))
            }
            (Method::DELETE, Some(name)) => match self.delete(resource, ns, name) {
                Some(o) => reply(200, &o),
                None => status(404, "NotFound"),
            },
            _ => status(405, "MethodNotAllowed"),
        }
    }

    /// Server-side apply of a Lease holder conflicts when another manager holds it;
    /// strategic merge patches (renewals, releases, counters) simply merge.
    fn patch_lease(
        &self,
        ns: &str,
        name: &str,
        current: Option<Value>,
        patch: &Value,
        manager: &str,
        content_type: &str,
    ) -> Reply {
        let Some(mut lease) = current else {
            return status(404, "NotFound");
        };
        let key = format!("{ns}/{name}");
        if content_type == "application/apply-patch+yaml" {
            let mut s = self.store.lock().unwrap();
            let held_by_other = lease["spec"]["holderIdentity"].is_string()
                && s.lease_owner
                    .get(&key)
                    .is_some_and(|owner| owner != manager)
                && lease["spec"]["holderIdentity"] != patch["spec"]["holderIdentity"];
            if held_by_other {
                return status(409, "Conflict");
            }
            s.lease_owner.insert(key, manager.to_string());
        } else if patch["spec"]
            .get("holderIdentity")
            .is_some_and(Value::is_null)
        {
            self.store.lock().unwrap().lease_owner.remove(&key);
        }
        if lease.get("spec").is_none_or(Value::is_null) {
            lease["spec"] = json!({});
        }
        merge(&mut lease["spec"], &patch["spec"]);
        reply(200, &self.put("leases", lease))
    }

    fn watch(&self, resource: &str, ns: &str, selector: Option<String>, since: u64) -> Reply {
        let resource = resource.to_string();
        let ns = ns.to_string();
        let wanted = move |r: &str, event: &Value| {
            r == resource
                && (ns.is_empty() || event["object"]["metadata"]["namespace"] == ns.as_str())
                && labels_match(&event["object"], selector.as_deref())
        };
        // subscribe before reading the log, so nothing falls between the two
        let live = self.events.subscribe();
        let replay: Vec<(u64, String, Value)> = self
            .store
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|(v, _, _)| *v > since)
            .cloned()
            .collect();
        let last = replay.last().map_or(since, |(v, _, _)| *v);
        let wanted_replay = wanted.clone();
        let replayed = futures::stream::iter(replay)
            .filter(move |(_, r, e)| std::future::ready(wanted_replay(r, e)));
        let following = tokio_stream_from(live)
            .filter(move |(v, r, e)| std::future::ready(*v > last && wanted(r, e)));
        let frames = replayed.chain(following).map(|(_, _, event)| {
            let mut line = serde_json::to_vec(&event).unwrap();
            line.push(b'\n');
            Ok::<_, Infallible>(Frame::data(Bytes::from(line)))
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(BodyExt::boxed(StreamBody::new(frames)))
            .unwrap()
    }
}

fn tokio_stream_from(
    rx: broadcast::Receiver<(u64, String, Value)>,
) -> impl futures::Stream<Item = (u64, String, Value)> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(item) => return Some((item, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// A client of the fake; while `cut` is set, its Lease requests fail as if the API server
/// were unreachable for them.
fn client(api: &FakeApi, cut: Arc<AtomicBool>) -> kube::Client {
    let api = api.clone();
    let service = tower::service_fn(move |req: Request<Body>| {
        let api = api.clone();
        let cut = cut.load(Ordering::SeqCst) && req.uri().path().contains("/leases");
        async move {
            if cut {
                return Ok::<_, Infallible>(status(503, "ServiceUnavailable"));
            }
            Ok::<_, Infallible>(api.handle(req).await)
        }
    });
    kube::Client::new(service, "default")
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}})
}

/// One replica: the cache, and the election that runs the controller.
struct Replica {
    state: AppState,
    cut: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn replica(api: &FakeApi, identity: &str) -> Replica {
    let state = common::state_with(Config::default());
    let (stop, rx) = watch::channel(false);
    let cut = Arc::new(AtomicBool::new(false));
    let client = client(api, cut.clone());
    let tasks = vec![
        tokio::spawn(cache::run(client.clone(), state.clone(), rx.clone())),
        tokio::spawn(leader::run(
            leader::Election {
                client: client.clone(),
                namespace: "netpol-guard".into(),
                lease: "netpol-guard-controller".into(),
                identity: identity.into(),
            },
            state.clone(),
            controller::Companions::new(client, state.clone()),
            rx,
        )),
    ];
    Replica {
        state,
        cut,
        stop,
        tasks,
    }
}

impl Replica {
    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        for t in self.tasks {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("replica stops")
                .unwrap();
        }
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const COMPANIONS: [&str; 2] = ["netpol-guard-allow-dns", "netpol-guard-default-deny"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_leader_companions_everywhere_and_admission_sees_them() {
    let api = FakeApi::new();
    for ns in ["shop", "kube-system", "netpol-guard"] {
        api.put("namespaces", namespace(ns));
    }
    let a = replica(&api, "replica-a");
    eventually("companions in shop", || {
        api.names("networkpolicies", "shop") == COMPANIONS
    })
    .await;
    eventually("replica a leads", || a.state.metrics.leader.get() == 1).await;
    let b = replica(&api, "replica-b");
    eventually("both caches synced", || {
        a.state.metrics.cache_synced.get() == 1 && b.state.metrics.cache_synced.get() == 1
    })
    .await;
    let lease = api
        .get("leases", "netpol-guard", "netpol-guard-controller")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a");
    // protected and guard namespaces are never given companions
    assert!(api.names("networkpolicies", "kube-system").is_empty());
    assert!(api.names("networkpolicies", "netpol-guard").is_empty());

    // a namespace created later gets its companions within seconds
    api.put("namespaces", namespace("payments"));
    eventually("companions in payments", || {
        api.names("networkpolicies", "payments") == COMPANIONS
    })
    .await;

    // a deleted companion comes back, counted as drift by the leader
    api.delete("networkpolicies", "shop", "netpol-guard-default-deny");
    eventually("default-deny restored", || {
        api.get("networkpolicies", "shop", "netpol-guard-default-deny")
            .is_some()
    })
    .await;
    eventually("drift counted", || {
        a.state.metrics.drift_corrections.get() == 1
    })
    .await;

    // the other replica reconciles nothing while the first holds the Lease
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.state.metrics.leader.get(), 0);
    let reconciles = |r: &Replica| {
        netpol_guard::metrics::RECONCILE_RESULTS
            .iter()
            .map(|res| {
                r.state
                    .metrics
                    .companion_reconciles
                    .with_label_values(&[*res])
                    .get()
            })
            .sum::<u64>()
    };
    assert_eq!(reconciles(&b), 0);
    assert!(reconciles(&a) >= 4, "{}", reconciles(&a));

    // every replica's admission sees the allow-DNS companion through its cache
    let egress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "web-to-db", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                 "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]},
    });
    for replica in [&a, &b] {
        let engine = replica.state.engine();
        eventually("cache holds the companions", || {
            replica.state.engine().inventory.policies_in("shop").len() == 2
        })
        .await;
        drop(engine);
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u-1", "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"},
                        "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"},
                        "name": "web-to-db", "namespace": "shop", "operation": "CREATE",
                        "userInfo": {"username": "alice"}, "object": egress.clone()}});
        let body = serde_json::to_vec(&review).unwrap();
        for endpoint in [
            netpol_guard::admission::Endpoint::Validate,
            netpol_guard::admission::Endpoint::Mutate,
        ] {
            let reviewed =
                netpol_guard::admission::review(&replica.state.engine(), endpoint, &body);
            let response = reviewed.review.response.unwrap();
            assert!(response.allowed, "{endpoint:?}: {:?}", response.result);
            assert!(
                response.patch.is_none(),
                "{endpoint:?} patched a covered policy"
            );
        }
    }

    // the leader goes away (releasing the Lease): the other one takes over and reconciles
    a.shutdown().await;
    eventually("replica b leads", || b.state.metrics.leader.get() == 1).await;
    api.put("namespaces", namespace("late"));
    eventually("companions in late", || {
        api.names("networkpolicies", "late") == COMPANIONS
    })
    .await;
    assert!(reconciles(&b) > 0);
    let lease = api
        .get("leases", "netpol-guard", "netpol-guard-controller")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_before_another_takes_over() {
    let api = FakeApi::new();
    api.put("namespaces", namespace("shop"));
    let a = replica(&api, "replica-a");
    eventually("replica a leads", || a.state.metrics.leader.get() == 1).await;
    let b = replica(&api, "replica-b");
    eventually("b's cache synced", || {
        b.state.metrics.cache_synced.get() == 1
    })
    .await;

    // a can no longer reach the Lease (but still everything else)
    a.cut.store(true, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let mut a_stopped = None;
    while b.state.metrics.leader.get() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "replica b never took over"
        );
        let (la, lb) = (a.state.metrics.leader.get(), b.state.metrics.leader.get());
        assert!(!(la == 1 && lb == 1), "two replicas reconciling");
        if la == 0 && a_stopped.is_none() {
            a_stopped = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a_stopped = a_stopped.expect("a stopped before b started");
    assert!(
        a_stopped <= Duration::from_secs(12),
        "a kept reconciling {a_stopped:?} without renewing"
    );
    assert_eq!(a.state.metrics.leader.get(), 0);
    let lease = api
        .get("leases", "netpol-guard", "netpol-guard-controller")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");
    // the new leader works
    api.put("namespaces", namespace("after"));
    eventually("companions in after", || {
        api.names("networkpolicies", "after") == COMPANIONS
    })
    .await;
    b.shutdown().await;
    a.cut.store(false, Ordering::SeqCst);
    a.shutdown().await;
}
