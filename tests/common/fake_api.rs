//! An in-memory Kubernetes API server for tests: NetworkPolicies, Namespaces, Leases, Pods,
//! Services and EndpointSlices with list, watch (replaying from a resourceVersion; label and
//! `metadata.name` field selectors), get, create, server-side apply and strategic merge
//! patches (with field-manager conflicts on Lease holders) and delete (with preconditions).
//! PolicyReports once their CRD is "installed"; `/version`. Resources can be forbidden (403)
//! as RBAC would; watches can be ended and the history compacted (410 Gone). Every request
//! is recorded. Plug it into kube's `Client` with `tower::service_fn` or
//! `tower_test::mock::pair`.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::http::{Method, Request, Response, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::broadcast;

pub(crate) type Reply = Response<BoxBody<Bytes, Infallible>>;

/// Objects by (resource, namespace, name); `resource` is the URL plural.
#[derive(Default)]
struct Store {
    objects: BTreeMap<(String, String, String), Value>,
    /// Every change as (resourceVersion, resource, watch event).
    log: Vec<(u64, String, Value)>,
    version: u64,
    /// Who set each Lease's holder (server-side apply ownership).
    lease_owner: BTreeMap<String, String>,
    /// `METHOD path?query` of every request, in order.
    requests: Vec<String>,
    /// Resources answered with 403 Forbidden.
    forbidden: Vec<String>,
    /// Whether the PolicyReport CRD (wgpolicyk8s.io/v1alpha2) is installed.
    policy_reports: bool,
    /// Whether the OpenReports Report CRD (openreports.io/v1alpha1) is installed.
    open_reports: bool,
    /// Whether the network-policy-api CRDs (policy.networking.k8s.io/v1alpha1:
    /// adminnetworkpolicies, baselineadminnetworkpolicies) are installed.
    policy_layers: bool,
    /// Watches from a resourceVersion before this one are answered 410 Gone (compacted).
    compacted: u64,
}

/// The resource name of the marker that ends every open watch stream.
const END_WATCHES: &str = "(end watches)";

#[derive(Clone)]
pub(crate) struct FakeApi {
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

pub(crate) fn status(code: u16, reason: &str) -> Reply {
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

/// `metadata.name=X` field selectors, the only kind the guard sends.
fn fields_match(object: &Value, selector: Option<&str>) -> bool {
    selector
        .and_then(|s| s.strip_prefix("metadata.name="))
        .is_none_or(|name| object["metadata"]["name"] == name)
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
    pub(crate) fn new() -> Self {
        Self {
            store: Arc::default(),
            events: broadcast::channel(1024).0,
        }
    }

    /// Stores an object and records the watch event (ADDED or MODIFIED).
    pub(crate) fn put(&self, resource: &str, mut object: Value) -> Value {
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

    pub(crate) fn delete(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
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

    pub(crate) fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.store
            .lock()
            .unwrap()
            .objects
            .get(&(resource.to_string(), ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Installs the PolicyReport CRD (wgpolicyk8s.io/v1alpha2): before, its URLs are 404.
    pub(crate) fn install_policy_reports(&self) {
        self.store.lock().unwrap().policy_reports = true;
    }

    /// Installs the OpenReports Report CRD (openreports.io/v1alpha1): before, its URLs are 404.
    pub(crate) fn install_open_reports(&self) {
        self.store.lock().unwrap().open_reports = true;
    }

    /// Installs (or removes) the AdminNetworkPolicy and BaselineAdminNetworkPolicy CRDs
    /// (policy.networking.k8s.io/v1alpha1): discovery lists them, their URLs answer.
    pub(crate) fn install_policy_layers(&self, installed: bool) {
        self.store.lock().unwrap().policy_layers = installed;
    }

    /// Marks a namespace as being deleted without a watch event yet: what a client sees in
    /// the moment before the event reaches it.
    pub(crate) fn start_deleting_quietly(&self, namespace: &str) {
        let mut s = self.store.lock().unwrap();
        let key = (
            "namespaces".to_string(),
            String::new(),
            namespace.to_string(),
        );
        if let Some(object) = s.objects.get_mut(&key) {
            object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
    }

    /// Ends every open watch stream, as when the API server restarts or a connection drops.
    pub(crate) fn end_watches(&self) {
        let _ = self
            .events
            .send((u64::MAX, END_WATCHES.to_string(), Value::Null));
    }

    /// Compacts the history: open watches end, and watches resuming from an earlier
    /// resourceVersion get `410 Gone` (an ERROR event), so clients must list again.
    pub(crate) fn compact(&self) {
        {
            let mut s = self.store.lock().unwrap();
            s.compacted = s.version;
            s.log.clear();
        }
        self.end_watches();
    }

    /// Answers every request for `resource` (URL plural) with 403 Forbidden from now on.
    pub(crate) fn forbid(&self, resource: &str) {
        self.store
            .lock()
            .unwrap()
            .forbidden
            .push(resource.to_string());
    }

    /// Every request so far, as `METHOD path?query`.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.store.lock().unwrap().requests.clone()
    }

    pub(crate) fn clear_requests(&self) {
        self.store.lock().unwrap().requests.clear();
    }

    pub(crate) fn names(&self, resource: &str, ns: &str) -> Vec<String> {
        self.store
            .lock()
            .unwrap()
            .objects
            .keys()
            .filter(|(r, n, _)| r == resource && n == ns)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    /// Every stored object of `resource`, across namespaces.
    pub(crate) fn objects(&self, resource: &str) -> Vec<Value> {
        self.store
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|((r, _, _), _)| r == resource)
            .map(|(_, o)| o.clone())
            .collect()
    }

    pub(crate) async fn handle(&self, req: Request<Body>) -> Reply {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let content_type = req
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        self.store.lock().unwrap().requests.push(format!(
            "{method} {path}{}",
            if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            }
        ));
        if path == "/version" {
            return reply(
                200,
                &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
                        "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
                        "goVersion": "", "compiler": "gc", "platform": "linux/amd64"}),
            );
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // (resource, namespace or "" for all, name)
        let (resource, ns, name): (&str, &str, Option<&str>) = match parts.as_slice() {
            ["api", "v1", "namespaces"] => ("namespaces", "", None),
            ["api", "v1", "namespaces", name] => ("namespaces", "", Some(*name)),
            ["api", "v1", resource] => (*resource, "", None),
            ["api", "v1", "namespaces", ns, resource] => (*resource, *ns, None),
            ["api", "v1", "namespaces", ns, resource, name] => (*resource, *ns, Some(*name)),
            ["apis", "wgpolicyk8s.io", "v1alpha2", rest @ ..] => {
                if !self.store.lock().unwrap().policy_reports {
                    return status(404, "NotFound");
                }
                match rest {
                    ["policyreports"] => ("policyreports", "", None),
                    ["namespaces", ns, "policyreports"] => ("policyreports", *ns, None),
                    ["namespaces", ns, "policyreports", name] => {
                        ("policyreports", *ns, Some(*name))
                    }
                    _ => return status(404, "NotFound"),
                }
            }
            ["apis", "policy.networking.k8s.io", "v1alpha1", rest @ ..] => {
                if !self.store.lock().unwrap().policy_layers {
                    return status(404, "NotFound");
                }
                match rest {
                    [] => {
                        let resource = |name: &str, kind: &str| {
                            json!({"name": name, "singularName": "", "namespaced": false,
                                   "kind": kind, "verbs": ["get", "list", "watch"]})
                        };
                        return reply(
                            200,
                            &json!({"kind": "APIResourceList", "apiVersion": "v1",
                                    "groupVersion": "policy.networking.k8s.io/v1alpha1",
                                    "resources": [
                                        resource("adminnetworkpolicies", "AdminNetworkPolicy"),
                                        resource("baselineadminnetworkpolicies", "BaselineAdminNetworkPolicy")]}),
                        );
                    }
                    [resource] => (*resource, "", None),
                    [resource, name] => (*resource, "", Some(*name)),
                    _ => return status(404, "NotFound"),
                }
            }
            ["apis", "openreports.io", "v1alpha1", rest @ ..] => {
                if !self.store.lock().unwrap().open_reports {
                    return status(404, "NotFound");
                }
                match rest {
                    ["reports"] => ("reports", "", None),
                    ["namespaces", ns, "reports"] => ("reports", *ns, None),
                    ["namespaces", ns, "reports", name] => ("reports", *ns, Some(*name)),
                    _ => return status(404, "NotFound"),
                }
            }
            ["apis", _, "v1", "networkpolicies"] => ("networkpolicies", "", None),
            ["apis", _, "v1", "namespaces", ns, resource] => (*resource, *ns, None),
            ["apis", _, "v1", "namespaces", ns, resource, name] => (*resource, *ns, Some(*name)),
            _ => return status(404, "NotFound"),
        };
        if self
            .store
            .lock()
            .unwrap()
            .forbidden
            .iter()
            .any(|r| r == resource)
        {
            return status(403, "Forbidden");
        }
        // as the namespace lifecycle admission does: no new content in a namespace being
        // deleted
        if matches!(method, Method::POST | Method::PATCH)
            && resource != "namespaces"
            && self
                .get("namespaces", "", ns)
                .is_some_and(|n| !n["metadata"]["deletionTimestamp"].is_null())
        {
            return status(
                403,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            );
        }
        let selector = query_param(&query, "labelSelector");
        let fields = query_param(&query, "fieldSelector");
        match (method, name) {
            (Method::GET, None) if query_param(&query, "watch").as_deref() == Some("true") => {
                let since: u64 = query_param(&query, "resourceVersion")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                self.watch(resource, ns, (selector, fields), since)
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
                            && fields_match(o, fields.as_deref())
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
                // the guard writes NetworkPolicies by server-side apply only, forcing
                // ownership of its fields, with complete objects
                assert_eq!(content_type, "application/apply-patch+yaml", "{path}");
                assert_eq!(manager, "netpol-guard");
                assert_eq!(
                    query_param(&query, "force").as_deref(),
                    Some("true"),
                    "{query}"
                );
                let (api_version, kind) = match resource {
                    "policyreports" => ("wgpolicyk8s.io/v1alpha2", "PolicyReport"),
                    "reports" => ("openreports.io/v1alpha1", "Report"),
                    _ => ("networking.k8s.io/v1", "NetworkPolicy"),
                };
                assert_eq!(patch["apiVersion"], api_version);
                assert_eq!(patch["kind"], kind);
                assert_eq!(patch["metadata"]["name"], name);
                let mut object = patch;
                object["metadata"]["namespace"] = json!(ns);
                // an apply that changes nothing leaves the object (and its
                // resourceVersion) as it was, as the API server does
                if let Some(current) = current {
                    let mut unchanged = current.clone();
                    for field in ["uid", "resourceVersion"] {
                        if let Some(m) = unchanged["metadata"].as_object_mut() {
                            m.remove(field);
                        }
                    }
                    if unchanged == object {
                        return reply(200, &current);
                    }
                }
                reply(200, &self.put(resource, object))
            }
            (Method::DELETE, Some(name)) => {
                let Some(current) = self.get(resource, ns, name) else {
                    return status(404, "NotFound");
                };
                let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let pre = &params["preconditions"];
                for field in ["uid", "resourceVersion"] {
                    if !pre[field].is_null() && pre[field] != current["metadata"][field] {
                        return status(409, "Conflict");
                    }
                }
                match self.delete(resource, ns, name) {
                    Some(o) => reply(200, &o),
                    None => status(404, "NotFound"),
                }
            }
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

    fn watch(
        &self,
        resource: &str,
        ns: &str,
        (selector, fields): (Option<String>, Option<String>),
        since: u64,
    ) -> Reply {
        let resource = resource.to_string();
        let ns = ns.to_string();
        let wanted = move |r: &str, event: &Value| {
            r == resource
                && (ns.is_empty() || event["object"]["metadata"]["namespace"] == ns.as_str())
                && labels_match(&event["object"], selector.as_deref())
                && fields_match(&event["object"], fields.as_deref())
        };
        let compacted = self.store.lock().unwrap().compacted;
        if since != 0 && since < compacted {
            let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                "status": "Failure", "code": 410, "reason": "Expired",
                "message": format!("too old resource version: {since} ({compacted})")}});
            let mut line = serde_json::to_vec(&gone).unwrap();
            line.push(b'\n');
            return Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(line)).boxed())
                .unwrap();
        }
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
            .take_while(|(_, r, _)| std::future::ready(r != END_WATCHES))
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

/// A kube client whose every request the fake answers.
pub(crate) fn client(api: &FakeApi) -> kube::Client {
    let api = api.clone();
    let service = tower::service_fn(move |req: Request<Body>| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(api.handle(req).await) }
    });
    kube::Client::new(service, "default")
}

/// A Namespace object as the API server stores it (with its name label).
pub(crate) fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}})
}
