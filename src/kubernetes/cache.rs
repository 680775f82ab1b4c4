//! The cluster cache: watches over every NetworkPolicy, Namespace and Pod (metadata only:
//! name, namespace, labels) and over the DNS Service candidates and their EndpointSlices,
//! applied event by event to one [`Inventory`] and published to the webhook as a
//! snapshot. The inventory's maps are persistent, so a publish costs a clone of a few
//! pointers however big the cluster; admission reads the snapshot, never the API, so a
//! slow or absent API server never delays a review. Until the policy and namespace lists
//! have synced the engine keeps the empty inventory and judges each object alone; until
//! the pod list has synced (or when RBAC forbids it) pods count as unknown.

use crate::netpol::ipblock::IpFamilies;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;
use kube::core::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use crate::config::LayersConfig;
use crate::netpol::cluster::{Inventory, ServiceFacts, ServicePort, SliceFacts};
use crate::netpol::dns::{Discover, DnsConfig};
use crate::netpol::layers::{self, LayerKind, LayerPolicy, UNREAD_KINDS, UnreadKind};
use crate::netpol::ports::{NamedPort, Protocol};
use crate::netpol::selector::Labels;
use crate::runtime::metrics::CacheSize;
use crate::runtime::state::SharedState;

/// Builds an inventory from lists of policies and namespaces (all the cluster has).
pub fn inventory(policies: &[Arc<NetworkPolicy>], namespaces: &[Arc<Namespace>]) -> Inventory {
    let mut inventory = Inventory::new();
    for ns in namespaces {
        inventory.insert_namespace(&ns.name_any(), ns.labels().clone());
    }
    for policy in policies {
        if let Some(namespace) = policy.metadata.namespace.as_deref() {
            inventory.insert_policy(namespace, policy.clone());
        }
    }
    inventory.mark_namespaces_complete();
    inventory
}

/// One object as the inventory keeps it.
#[derive(Debug, Clone)]
pub enum Fact {
    Policy(Arc<NetworkPolicy>),
    Namespace {
        name: String,
        labels: Labels,
        /// Being deleted (`deletionTimestamp` set).
        terminating: bool,
    },
    Pod {
        namespace: String,
        name: String,
        labels: Labels,
    },
    Service {
        namespace: String,
        name: String,
        facts: ServiceFacts,
    },
    Slice {
        namespace: String,
        name: String,
        facts: SliceFacts,
    },
    /// The cluster's IP families, from the `kubernetes` Service's `spec.ipFamilies`.
    IpFamilies(IpFamilies),
    /// An object of a policy layer; `policy` is `None` when it cannot be read (then the
    /// verdicts forget it, and the cache says so).
    Layer {
        kind: LayerKind,
        namespace: Option<String>,
        name: String,
        policy: Option<Arc<LayerPolicy>>,
    },
    /// An object of another CNI's policy kind, which the guard does not read: only that it
    /// exists.
    Unread {
        kind: &'static UnreadKind,
        namespace: String,
        name: String,
    },
}

/// What a watch stream covers, so a relist replaces exactly its objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Policies,
    Namespaces,
    Pods,
    /// The Service `namespace/name`.
    Service(String, String),
    /// The EndpointSlices of the Service `namespace/name`.
    Slices(String, String),
    /// The API server's own Service, `default/kubernetes`: the cluster's IP families.
    ApiService,
    /// The objects of a policy layer kind its CRD serves.
    Layer(LayerKind),
    /// The objects of another CNI's policy kind.
    Unread(&'static UnreadKind),
}

impl Source {
    fn resource(&self) -> &'static str {
        match self {
            Self::Policies => "networkpolicies",
            Self::Namespaces => "namespaces",
            Self::Pods => "pods",
            Self::Service(..) | Self::ApiService => "services",
            Self::Slices(..) => "endpointslices",
            Self::Layer(kind) => kind.plural(),
            Self::Unread(kind) => kind.plural,
        }
    }
}

/// The inventory under construction: watch events applied one by one, relists buffered
/// until complete.
#[derive(Debug, Default)]
pub struct Builder {
    inventory: Inventory,
    relisting: BTreeMap<Source, Vec<Fact>>,
    synced: BTreeSet<Source>,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one watch event of `source`.
    pub fn apply(&mut self, source: &Source, event: watcher::Event<Fact>) {
        match event {
            watcher::Event::Init => {
                self.relisting.insert(source.clone(), Vec::new());
            }
            watcher::Event::InitApply(fact) => match self.relisting.get_mut(source) {
                Some(buffer) => buffer.push(fact),
                None => self.upsert(fact),
            },
            watcher::Event::InitDone => {
                let facts = self.relisting.remove(source).unwrap_or_default();
                self.clear(source);
                for fact in facts {
                    self.upsert(fact);
                }
                self.synced.insert(source.clone());
                match source {
                    Source::Namespaces => self.inventory.mark_namespaces_complete(),
                    Source::Pods => self.inventory.mark_pods_complete(true),
                    _ => {}
                }
            }
            watcher::Event::Apply(fact) => self.upsert(fact),
            watcher::Event::Delete(fact) => self.remove(&fact),
        }
    }

    /// Whether the policy and namespace lists are complete (admission may use them).
    pub fn ready(&self) -> bool {
        self.synced.contains(&Source::Policies) && self.synced.contains(&Source::Namespaces)
    }

    /// Whether a source has listed completely at least once.
    pub fn synced(&self, source: &Source) -> bool {
        self.synced.contains(source)
    }

    /// The inventory as it stands (a cheap clone of persistent maps).
    pub fn snapshot(&self) -> Inventory {
        self.inventory.clone()
    }

    fn clear(&mut self, source: &Source) {
        let inv = &mut self.inventory;
        match source {
            Source::Policies => inv.clear_policies(),
            Source::Namespaces => inv.clear_namespaces(),
            Source::Pods => inv.clear_pods(),
            Source::Service(ns, name) => inv.remove_service(ns, name),
            Source::Slices(ns, service) => inv.remove_slices_of(ns, service),
            Source::ApiService => inv.set_ip_families(IpFamilies::Unknown),
            Source::Layer(kind) => inv.layers_mut().clear(*kind),
            Source::Unread(kind) => inv.layers_mut().clear_unread(kind),
        }
    }

    /// Forgets the objects of layer kinds no longer watched (their CRD went away).
    pub fn forget_layers_except(&mut self, served: &[LayerKind], unread: &[&'static UnreadKind]) {
        let gone = (LayerKind::ALL.into_iter())
            .filter(|k| !served.contains(k))
            .map(Source::Layer)
            .chain(
                (UNREAD_KINDS.iter())
                    .filter(|k| !unread.contains(k))
                    .map(Source::Unread),
            );
        for source in gone.collect::<Vec<_>>() {
            self.clear(&source);
            self.synced.remove(&source);
        }
    }

    fn upsert(&mut self, fact: Fact) {
        let inv = &mut self.inventory;
        match fact {
            Fact::Policy(p) => {
                if let Some(ns) = p.metadata.namespace.clone() {
                    inv.insert_policy(&ns, p);
                }
            }
            Fact::Namespace {
                name,
                labels,
                terminating,
            } => {
                inv.insert_namespace(&name, labels);
                inv.mark_terminating(&name, terminating);
            }
            Fact::Pod {
                namespace,
                name,
                labels,
            } => inv.insert_pod(&namespace, &name, labels),
            Fact::Service {
                namespace,
                name,
                facts,
            } => inv.insert_service(&namespace, &name, facts),
            Fact::Slice {
                namespace,
                name,
                facts,
            } => inv.insert_slice(&namespace, &name, facts),
            Fact::IpFamilies(families) => inv.set_ip_families(families),
            Fact::Layer {
                policy: Some(policy),
                ..
            } => inv.layers_mut().insert((*policy).clone()),
            Fact::Layer {
                kind,
                namespace,
                name,
                policy: None,
            } => inv.layers_mut().remove(kind, namespace.as_deref(), &name),
            Fact::Unread {
                kind,
                namespace,
                name,
            } => inv.layers_mut().insert_unread(kind, &namespace, &name),
        }
    }

    fn remove(&mut self, fact: &Fact) {
        let inv = &mut self.inventory;
        match fact {
            Fact::Policy(p) => {
                if let (Some(ns), Some(name)) = (&p.metadata.namespace, &p.metadata.name) {
                    inv.remove_policy(ns, name);
                }
            }
            Fact::Namespace { name, .. } => inv.remove_namespace(name),
            Fact::Pod {
                namespace, name, ..
            } => inv.remove_pod(namespace, name),
            Fact::Service {
                namespace, name, ..
            } => inv.remove_service(namespace, name),
            Fact::Slice {
                namespace, name, ..
            } => inv.remove_slice(namespace, name),
            Fact::IpFamilies(_) => inv.set_ip_families(IpFamilies::Unknown),
            Fact::Layer {
                kind,
                namespace,
                name,
                ..
            } => inv.layers_mut().remove(*kind, namespace.as_deref(), name),
            Fact::Unread {
                kind,
                namespace,
                name,
            } => inv.layers_mut().remove_unread(kind, namespace, name),
        }
    }
}

/// A layer object as the verdicts read it, decoded from what the API serves.
pub fn layer_fact(kind: LayerKind, object: DynamicObject) -> Fact {
    let namespace = object.metadata.namespace.clone();
    let name = object.metadata.name.clone().unwrap_or_default();
    let decoded = serde_json::to_value(&object)
        .map_err(|e| e.to_string())
        .and_then(|mut v| {
            // a watch of one resource may leave out the type: it is the resource's
            v["apiVersion"] = format!("{}/{}", kind.group(), kind.version()).into();
            v["kind"] = kind.as_str().into();
            layers::decode::layer(&v).map_err(|e| e.to_string())
        });
    let policy = match decoded {
        Ok(policy) => Some(Arc::new(policy)),
        Err(error) => {
            tracing::warn!(kind = kind.as_str(), name, %error, "cannot read a policy layer object: the verdicts do not know it");
            None
        }
    };
    Fact::Layer {
        kind,
        namespace,
        name,
        policy,
    }
}

/// A policy as the engine reads it: managedFields and annotations (last-applied
/// configurations) are the bulk of these objects and the engine reads neither.
pub fn policy_fact(mut p: NetworkPolicy) -> Fact {
    p.managed_fields_mut().clear();
    p.annotations_mut()
        .retain(|k, _| k.starts_with("netpol-guard.io/"));
    Fact::Policy(Arc::new(p))
}

pub fn namespace_fact(n: Namespace) -> Fact {
    Fact::Namespace {
        name: n.name_any(),
        terminating: n.metadata.deletion_timestamp.is_some(),
        labels: n.metadata.labels.unwrap_or_default(),
    }
}

pub fn pod_fact(p: PartialObjectMeta<Pod>) -> Fact {
    Fact::Pod {
        namespace: p.metadata.namespace.unwrap_or_default(),
        name: p.metadata.name.unwrap_or_default(),
        labels: p.metadata.labels.unwrap_or_default(),
    }
}

fn protocol(p: Option<&str>) -> Protocol {
    match p {
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

/// The namespace and name of the API server's own Service.
pub const API_SERVICE: (&str, &str) = ("default", "kubernetes");

/// The cluster's IP families, as the `kubernetes` Service lists them.
pub fn api_service_fact(s: Service) -> Fact {
    let families = s.spec.and_then(|spec| spec.ip_families).unwrap_or_default();
    Fact::IpFamilies(IpFamilies::of_service(&families))
}

pub fn service_fact(s: Service) -> Fact {
    let spec = s.spec.unwrap_or_default();
    let ports = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| ServicePort {
            name: p.name.unwrap_or_default(),
            port: p.port,
            protocol: protocol(p.protocol.as_deref()),
            target_name: match &p.target_port {
                Some(IntOrString::String(n)) => Some(n.clone()),
                _ => None,
            },
            target_number: match p.target_port {
                Some(IntOrString::Int(n)) => Some(n),
                // without targetPort the pods listen on the Service's port
                None => Some(p.port),
                Some(IntOrString::String(_)) => None,
            },
        })
        .collect();
    Fact::Service {
        namespace: s.metadata.namespace.unwrap_or_default(),
        name: s.metadata.name.unwrap_or_default(),
        facts: ServiceFacts {
            selector: spec.selector.unwrap_or_default(),
            ports,
        },
    }
}

/// The label EndpointSlices carry with their Service's name.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub fn slice_fact(s: EndpointSlice) -> Fact {
    let service = s
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .cloned()
        .unwrap_or_default();
    let ports = s
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            Some(NamedPort {
                name: p.name.unwrap_or_default(),
                port: p.port?,
                protocol: protocol(p.protocol.as_deref()),
            })
        })
        .collect();
    // an endpoint is ready unless it says otherwise
    let addresses = s
        .endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .flat_map(|e| &e.addresses)
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .collect();
    Fact::Slice {
        namespace: s.metadata.namespace.unwrap_or_default(),
        name: s.metadata.name.unwrap_or_default(),
        facts: SliceFacts {
            service,
            ports,
            addresses,
        },
    }
}

/// A watch event of `K` as the fact it carries.
fn convert<K>(event: watcher::Event<K>, fact: impl Fn(K) -> Fact) -> watcher::Event<Fact> {
    match event {
        watcher::Event::Apply(k) => watcher::Event::Apply(fact(k)),
        watcher::Event::Delete(k) => watcher::Event::Delete(fact(k)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(k) => watcher::Event::InitApply(fact(k)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

type Item = (Source, Result<watcher::Event<Fact>, watcher::Error>);
type Events = BoxStream<'static, Item>;

fn tagged<S>(source: Source, stream: S) -> Events
where
    S: futures::Stream<Item = Result<watcher::Event<Fact>, watcher::Error>> + Send + 'static,
{
    stream.map(move |e| (source.clone(), e)).boxed()
}

/// How a watched resource is selected: a field or a label selector, or everything.
#[derive(Debug, Clone, Default)]
struct Selected {
    fields: Option<String>,
    labels: Option<String>,
}

impl Selected {
    fn by_name(name: &str) -> Self {
        Self {
            fields: Some(format!("metadata.name={name}")),
            labels: None,
        }
    }

    fn by_label(selector: String) -> Self {
        Self {
            fields: None,
            labels: Some(selector),
        }
    }

    fn watch(&self) -> watcher::Config {
        let mut config = watcher::Config::default();
        if let Some(fields) = &self.fields {
            config = config.fields(fields);
        }
        if let Some(labels) = &self.labels {
            config = config.labels(labels);
        }
        config
    }

    fn list(&self) -> ListParams {
        let mut params = ListParams::default();
        if let Some(fields) = &self.fields {
            params = params.fields(fields);
        }
        if let Some(labels) = &self.labels {
            params = params.labels(labels);
        }
        params
    }
}

type Listing<'a> = LocalBoxFuture<'a, Result<Vec<Fact>, kube::Error>>;
/// Lists a watched resource once, telling the running count.
type Lister = Box<dyn for<'a> Fn(&'a mut dyn FnMut(usize)) -> Listing<'a> + Send>;

/// One resource the cache watches and the one-shot list (`netpol-guard audit`) reads: the
/// watch loop and the list both iterate [`watched`], so a new kind is one entry there.
struct Watched {
    source: Source,
    /// What a failure means. `None`: the resource is needed (policies, namespaces), a
    /// watch retries loudly and a one-shot list fails. `Some`: the guard degrades and says
    /// so once, naming what the cluster's verdicts lose.
    without: Option<&'static str>,
    /// The note of a one-shot list that could not read it (the audit prints each once).
    note: String,
    watch: Box<dyn Fn() -> Events + Send>,
    list: Lister,
}

/// An entry of the table: the objects of `api` that `selected` picks, each turned into the
/// fact the inventory keeps.
fn entry<K, F>(source: Source, api: Api<K>, selected: Selected, fact: F) -> Watched
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: Fn(K) -> Fact + Copy + Send + Sync + 'static,
{
    let lister = api.clone();
    let listed = selected.clone();
    let tag = source.clone();
    Watched {
        source,
        without: None,
        note: String::new(),
        watch: Box::new(move || {
            tagged(
                tag.clone(),
                watcher(api.clone(), selected.watch())
                    .default_backoff()
                    .map(move |e| e.map(|e| convert(e, fact))),
            )
        }),
        list: Box::new(move |progress| {
            let api = lister.clone();
            let params = listed.list();
            async move {
                let items = list_all(&api, params, progress).await?;
                Ok(items.into_iter().map(fact).collect())
            }
            .boxed_local()
        }),
    }
}

impl Watched {
    /// The guard works without it, degraded as `without` says; `note` is what a one-shot
    /// list that cannot read it reports.
    fn optional(self, without: &'static str, note: String) -> Self {
        Self {
            without: Some(without),
            note,
            ..self
        }
    }
}

/// Everything the cache watches: every policy, namespace and pod (metadata only: no pod
/// specs cross the wire or stay in memory), the API server's own Service (the cluster's IP
/// families), and the DNS Service candidates ([`dns_candidates`]).
fn watched(client: &Client, dns: &DnsConfig, layers: &Served) -> Vec<Watched> {
    let (api_ns, api_name) = API_SERVICE;
    let mut table = vec![
        entry(
            Source::Policies,
            Api::<NetworkPolicy>::all(client.clone()),
            Selected::default(),
            policy_fact,
        ),
        entry(
            Source::Namespaces,
            Api::<Namespace>::all(client.clone()),
            Selected::default(),
            namespace_fact,
        ),
        entry(
            Source::Pods,
            Api::<PartialObjectMeta<Pod>>::all(client.clone()),
            Selected::default(),
            pod_fact,
        )
        .optional(
            "cannot watch pods; treating pods as unknown (verdicts that depend on pod labels \
             are warnings) and retrying",
            "pods not listed: pods count as unknown".into(),
        ),
        entry(
            Source::ApiService,
            Api::<Service>::namespaced(client.clone(), api_ns),
            Selected::by_name(api_name),
            api_service_fact,
        )
        .optional(
            "cannot read the kubernetes Service in default: the cluster's IP families are \
             unknown (verdicts on ipBlocks of one whole family are warnings); retrying",
            format!(
                "Service {api_ns}/{api_name} not read: the cluster's IP families are unknown, \
                 and verdicts on ipBlocks of one whole family (0.0.0.0/0, ::/0) are warnings"
            ),
        ),
    ];
    table.extend(dns_candidates(client, dns));
    table.extend(layers.kinds.iter().map(|kind| layer_entry(client, *kind)));
    table.extend(layers.unread.iter().map(|kind| unread_entry(client, kind)));
    table
}

/// The objects of another CNI's policy kind: only their namespaces and names are kept.
fn unread_entry(client: &Client, kind: &'static UnreadKind) -> Watched {
    let resource = ApiResource {
        group: kind.group.into(),
        version: kind.version.into(),
        api_version: format!("{}/{}", kind.group, kind.version),
        kind: kind.kind.into(),
        plural: kind.plural.into(),
    };
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
    entry(
        Source::Unread(kind),
        api,
        Selected::default(),
        move |o: DynamicObject| Fact::Unread {
            kind,
            namespace: o.metadata.namespace.unwrap_or_default(),
            name: o.metadata.name.unwrap_or_default(),
        },
    )
    .optional(
        "cannot watch another CNI's policy kind: verdicts it could change are judged \
         without it; retrying",
        format!(
            "{} not listed: verdicts it could change are judged without it",
            kind.label
        ),
    )
}

/// The policy kinds the cluster serves that the cache watches.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Served {
    /// The layer kinds served at the version the guard reads.
    pub kinds: Vec<LayerKind>,
    /// Other CNIs' policy kinds served.
    pub unread: Vec<&'static UnreadKind>,
}

/// The objects of one policy layer kind its CRD serves, as dynamic objects.
fn layer_entry(client: &Client, kind: LayerKind) -> Watched {
    let resource = ApiResource {
        group: kind.group().into(),
        version: kind.version().into(),
        api_version: format!("{}/{}", kind.group(), kind.version()),
        kind: kind.as_str().into(),
        plural: kind.plural().into(),
    };
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
    entry(Source::Layer(kind), api, Selected::default(), move |o| {
        layer_fact(kind, o)
    })
    .optional(
        "cannot watch a policy layer kind: the verdicts go on with its objects as last \
         listed (none before the first list) and the watch retries",
        format!(
            "{} not listed: the verdicts do not know its objects",
            kind.plural()
        ),
    )
}

/// The policy layer kinds the cluster serves at the version the guard reads, among those
/// `config` reads; and a note for each kind whose group serves only other versions.
pub async fn served_layers(client: &Client, config: LayersConfig) -> (Served, Vec<String>) {
    let mut served = Served::default();
    let mut notes = Vec::new();
    if config.other_cnis {
        for kind in UNREAD_KINDS {
            let api_version = format!("{}/{}", kind.group, kind.version);
            let listed = client.list_api_group_resources(&api_version).await;
            if listed.is_ok_and(|l| l.resources.iter().any(|r| r.name == kind.plural)) {
                served.unread.push(kind);
            }
        }
    }
    let groups = client.list_api_groups().await.ok();
    for kind in LayerKind::ALL.into_iter().filter(|k| config.reads(*k)) {
        let api_version = format!("{}/{}", kind.group(), kind.version());
        let listed = client.list_api_group_resources(&api_version).await;
        if listed.is_ok_and(|l| l.resources.iter().any(|r| r.name == kind.plural())) {
            served.kinds.push(kind);
            continue;
        }
        let others: Vec<String> = (groups.iter())
            .flat_map(|g| &g.groups)
            .filter(|g| g.name == kind.group())
            .flat_map(|g| &g.versions)
            .map(|v| v.version.clone())
            .collect();
        if !others.is_empty() {
            notes.push(format!(
                "{} is served as {}/{{{}}}, not {api_version}: the guard does not read those \
                 objects, and the verdicts do not know them",
                kind.as_str(),
                kind.group(),
                others.join(",")
            ));
        }
    }
    notes.sort();
    notes.dedup();
    (served, notes)
}

/// With discovery on, each DNS Service candidate and its EndpointSlices; none without.
fn dns_candidates(client: &Client, dns: &DnsConfig) -> Vec<Watched> {
    if dns.discover != Discover::Auto {
        return Vec::new();
    }
    let mut table = Vec::new();
    for candidate in &dns.services {
        let Some((ns, name)) = candidate.split_once('/') else {
            continue;
        };
        let without =
            "cannot watch a DNS Service candidate; keeping the configured DNS target and retrying";
        let note = format!("DNS Service {candidate} not read: the configured DNS target applies");
        table.push(
            entry(
                Source::Service(ns.into(), name.into()),
                Api::<Service>::namespaced(client.clone(), ns),
                Selected::by_name(name),
                service_fact,
            )
            .optional(without, note.clone()),
        );
        table.push(
            entry(
                Source::Slices(ns.into(), name.into()),
                Api::<EndpointSlice>::namespaced(client.clone(), ns),
                Selected::by_label(format!("{SERVICE_NAME_LABEL}={name}")),
                slice_fact,
            )
            .optional(without, note),
        );
    }
    table
}

/// The watch streams of the table, merged, and what each source's failure means.
fn streams(
    client: &Client,
    dns: &DnsConfig,
    layers: &Served,
) -> (SelectAll<Events>, BTreeMap<Source, &'static str>) {
    let table = watched(client, dns, layers);
    let degraded = table
        .iter()
        .map(|w| (w.source.clone(), w.without.unwrap_or(NEEDED)))
        .collect();
    let streams = futures::stream::select_all(table.iter().map(|w| (w.watch)()));
    (streams, degraded)
}

/// Every object of `api` matching `params`, page by page (500 at a time); `progress` hears
/// the running count after each page.
async fn list_all<K>(
    api: &Api<K>,
    params: ListParams,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<K>, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut params = params.limit(500);
    loop {
        let page = api.list(&params).await?;
        items.extend(page.items);
        progress(items.len());
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(items),
        }
    }
}

/// Lists what the cache watches, once, into an inventory: for `netpol-guard audit`.
/// Policies and namespaces must be readable; pods and the DNS Services may be forbidden
/// (then pods are unknown and the configured DNS target is used), which is returned as a
/// note, once per note. `progress` hears (resource, count so far).
pub async fn list_once(
    client: &Client,
    dns: &DnsConfig,
    layers: LayersConfig,
    progress: &mut dyn FnMut(&str, usize),
) -> Result<(Inventory, Vec<String>), kube::Error> {
    let mut builder = Builder::new();
    let (served, mut notes) = served_layers(client, layers).await;
    let mut failed: BTreeSet<String> = BTreeSet::new();
    for w in watched(client, dns, &served) {
        if failed.contains(&w.note) {
            continue;
        }
        let resource = w.source.resource();
        let counted = matches!(
            w.source,
            Source::Policies | Source::Namespaces | Source::Pods
        );
        let mut heard = |n: usize| {
            if counted {
                progress(resource, n);
            }
        };
        match ((w.list)(&mut heard).await, w.without) {
            (Ok(facts), _) => list_into(&mut builder, w.source, facts.into_iter()),
            (Err(e), None) => return Err(e),
            (Err(e), Some(_)) => {
                let (what, then) = w.note.split_once(": ").unwrap_or((&w.note, ""));
                notes.push(format!("{what} ({e}): {then}"));
                failed.insert(w.note);
            }
        }
    }
    Ok((builder.snapshot(), notes))
}

fn list_into(builder: &mut Builder, source: Source, facts: impl Iterator<Item = Fact>) {
    builder.apply(&source, watcher::Event::Init);
    for fact in facts {
        builder.apply(&source, watcher::Event::InitApply(fact));
    }
    builder.apply(&source, watcher::Event::InitDone);
}

/// What the cache logs when a watch of a needed resource cannot list (RBAC, a missing API).
const NEEDED: &str =
    "cluster cache watch failed; retrying (admission judges objects alone until it syncs)";

/// The cache's timing against the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long after a failing policy or namespace watch all watches start over with fresh
    /// lists (doubled while they keep failing) ...
    pub resync_first: Duration,
    /// ... and at most how long.
    pub resync_max: Duration,
    /// How often the API server is asked for its version while the watches are quiet: a
    /// server shutting down keeps open watches silent while refusing new connections, so
    /// only a request tells. Two failures in a row count as out of sync.
    pub probe_every: Duration,
    /// How long a probe waits for its answer.
    pub probe_timeout: Duration,
    /// How often the API server is asked which policy layer kinds it serves (their CRDs
    /// come and go with the CNI).
    pub rediscover_every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            resync_first: Duration::from_secs(5),
            resync_max: Duration::from_secs(60),
            probe_every: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(5),
            rediscover_every: Duration::from_secs(60),
        }
    }
}

/// The cache task's state between batches of events.
struct Feed {
    builder: Builder,
    /// Sources whose failure was logged (once, until they deliver objects again).
    warned: BTreeSet<Source>,
    pods_synced: bool,
    started: std::time::Instant,
    /// When to start the watches over: a failed policy or namespace watch resumes silently
    /// when the API server is back, so only a fresh list proves the cache in sync again.
    resync_at: Option<tokio::time::Instant>,
    resync_after: Duration,
    /// Probes of the API server that failed in a row.
    probe_failures: u32,
    timing: Timing,
    /// What each watched source's failure means (from the table).
    degraded: BTreeMap<Source, &'static str>,
}

impl Feed {
    /// Whether the policy and namespace watches are healthy.
    fn in_sync(&self) -> bool {
        !self.warned.contains(&Source::Policies)
            && !self.warned.contains(&Source::Namespaces)
            && self.probe_failures < 2
    }

    /// Records a probe of the API server; two failures in a row put the cache out of sync.
    fn probed(&mut self, state: &SharedState, result: Result<(), String>) {
        match result {
            Ok(()) => self.probe_failures = 0,
            Err(e) => {
                self.probe_failures += 1;
                if self.probe_failures == 2 && self.builder.ready() {
                    tracing::warn!(error = %e, "the API server does not answer: admission goes on with the last snapshot");
                    self.out_of_sync(state);
                }
            }
        }
    }

    /// A policy or namespace watch failed: the cache is out of sync until a fresh list.
    fn out_of_sync(&mut self, state: &SharedState) {
        state.metrics.cache.set_synced(false);
        if self.resync_at.is_none() {
            self.resync_at = Some(tokio::time::Instant::now() + self.resync_after);
            self.resync_after = (self.resync_after * 2).min(self.timing.resync_max);
        }
    }
}

impl Feed {
    /// Applies `first` and every event already waiting behind it.
    fn apply_batch(&mut self, first: Item, events: &mut SelectAll<Events>) {
        let mut next = Some(first);
        while let Some((source, event)) = next {
            match event {
                Ok(event) => {
                    // a relist starts (Init) before its list call can fail: only objects
                    // mean the watch works again
                    if !matches!(event, watcher::Event::Init) {
                        self.warned.remove(&source);
                    }
                    self.builder.apply(&source, event);
                }
                Err(e) if self.warned.insert(source.clone()) => {
                    let degraded = self.degraded.get(&source).copied().unwrap_or(NEEDED);
                    tracing::warn!(resource = source.resource(), error = %e, "{degraded}");
                }
                Err(e) => {
                    tracing::debug!(resource = source.resource(), error = %e, "watch still failing");
                }
            }
            next = events.next().now_or_never().flatten();
        }
    }

    /// Puts the inventory in service once the policy and namespace lists are complete.
    fn publish(&mut self, state: &SharedState, was_ready: bool) {
        let inv = self.builder.snapshot();
        if !self.pods_synced && self.builder.synced(&Source::Pods) {
            self.pods_synced = true;
            tracing::info!(
                pods = inv.pod_count(),
                "pod list synced; verdicts now see the pods"
            );
        }
        if !self.builder.ready() {
            return;
        }
        if !was_ready {
            tracing::info!(
                policies = inv.policy_count(),
                namespaces = inv.namespace_count(),
                pods = inv.pod_count(),
                pods_synced = self.pods_synced,
                took_ms = self.started.elapsed().as_millis() as u64,
                "cluster cache synced; admission now uses the cluster's policies, namespaces and pods"
            );
        }
        state.metrics.cache.size(CacheSize {
            policies: inv.policy_count(),
            namespaces: inv.namespace_count(),
            pods: inv.pod_count(),
            layers: LayerKind::ALL.map(|k| (k.plural(), inv.layers().count(k))),
            unread: inv.layers().unread_count(),
        });
        state.set_inventory(inv);
        if self.in_sync() {
            state.metrics.cache.set_synced(true);
            self.resync_after = self.timing.resync_first;
        } else {
            // admission goes on with this snapshot, the last the API server gave
            self.out_of_sync(state);
        }
    }
}

/// The policy layer kinds found served, and what was said of them.
#[derive(Debug, Default)]
struct Discovered {
    served: Served,
    notes: Vec<String>,
    /// Whether anything was logged yet.
    told: bool,
}

impl Discovered {
    /// Takes a discovery's answer; logs once per change (absent CRDs are fine). Returns
    /// whether the served kinds changed.
    fn update(&mut self, (served, notes): (Served, Vec<String>)) -> bool {
        let changed = served != self.served;
        if changed || !self.told {
            let names: Vec<&str> = served.kinds.iter().map(|k| k.as_str()).collect();
            if !served.unread.is_empty() {
                let others: Vec<&str> = served.unread.iter().map(|k| k.label).collect();
                tracing::info!(
                    kinds = others.join(","),
                    "watching policies of other CNIs, which the guard does not read: where one exists, verdicts it could change are warnings"
                );
            }
            if names.is_empty() {
                tracing::info!(
                    "no policy layer CRD is served (AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy, Cilium): the verdicts see NetworkPolicy only"
                );
            } else {
                tracing::info!(
                    kinds = names.join(","),
                    "watching the policy layers the cluster serves"
                );
            }
        }
        if notes != self.notes {
            for note in notes.iter().filter(|n| !self.notes.contains(n)) {
                tracing::warn!("{note}");
            }
        }
        self.told = true;
        self.served = served;
        self.notes = notes;
        changed
    }
}

/// Runs the watches and publishes snapshots until `stop`. The DNS Service candidates are
/// read from the configuration; when a reload changes them, the watches restart.
pub async fn run(client: Client, state: SharedState, timing: Timing, stop: watch::Receiver<bool>) {
    let mut feed = Feed {
        builder: Builder::new(),
        warned: BTreeSet::new(),
        pods_synced: false,
        started: std::time::Instant::now(),
        resync_at: None,
        resync_after: timing.resync_first,
        probe_failures: 0,
        timing,
        degraded: BTreeMap::new(),
    };
    let mut probe = tokio::time::interval(timing.probe_every);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut config_changes = state.config_changes();
    let mut dns = state.snapshot().config.dns.clone();
    let mut layers_read = state.snapshot().config.layers;
    let mut layers = Discovered::default();
    layers.update(served_layers(&client, layers_read).await);
    let (mut events, degraded) = streams(&client, &dns, &layers.served);
    feed.degraded = degraded;
    let mut rediscover = tokio::time::interval(timing.rediscover_every);
    rediscover.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    rediscover.reset();
    loop {
        let resync = feed.resync_at;
        tokio::select! {
            () = super::stopped(stop.clone()) => break,
            Ok(()) = config_changes.changed() => {
                let config = state.snapshot().config.clone();
                let now = config.dns.clone();
                let layers_changed = config.layers != layers_read;
                if (now.discover, &now.services) != (dns.discover, &dns.services) || layers_changed {
                    dns = now;
                    layers_read = config.layers;
                    if layers_changed {
                        layers.update(served_layers(&client, layers_read).await);
                        feed.builder.forget_layers_except(&layers.served.kinds, &layers.served.unread);
                    }
                    tracing::info!("dns.discover, dns.services or layers changed: restarting the watches");
                    feed.warned.clear();
                    (events, feed.degraded) = streams(&client, &dns, &layers.served);
                }
            }
            _ = rediscover.tick() => {
                if layers.update(served_layers(&client, layers_read).await) {
                    feed.builder.forget_layers_except(&layers.served.kinds, &layers.served.unread);
                    let was_ready = feed.builder.ready();
                    feed.publish(&state, was_ready);
                    (events, feed.degraded) = streams(&client, &dns, &layers.served);
                }
            }
            () = tokio::time::sleep_until(resync.unwrap_or_else(tokio::time::Instant::now)), if resync.is_some() => {
                tracing::info!("policy or namespace watches failed: listing everything again");
                feed.resync_at = None;
                // the fresh lists tell from now on
                feed.probe_failures = 0;
                (events, feed.degraded) = streams(&client, &dns, &layers.served);
            }
            _ = probe.tick() => {
                let answer = tokio::time::timeout(timing.probe_timeout, client.apiserver_version()).await;
                let result = match answer {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {:?}", timing.probe_timeout)),
                };
                feed.probed(&state, result);
            }
            Some(first) = events.next() => {
                let was_ready = feed.builder.ready();
                feed.apply_batch(first, &mut events);
                feed.publish(&state, was_ready);
            }
        }
    }
    state.metrics.cache.set_synced(false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::cluster::NAMESPACE_NAME_LABEL;

    fn ns(name: &str, labels: &[(&str, &str)]) -> Fact {
        Fact::Namespace {
            name: name.into(),
            terminating: false,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn policy(ns: &str, name: &str) -> Fact {
        let mut p = NetworkPolicy::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some(ns.into());
        policy_fact(p)
    }

    fn pod(ns: &str, name: &str, app: &str) -> Fact {
        Fact::Pod {
            namespace: ns.into(),
            name: name.into(),
            labels: Labels::from([("app".into(), app.into())]),
        }
    }

    fn list(b: &mut Builder, source: Source, facts: Vec<Fact>) {
        b.apply(&source, watcher::Event::Init);
        for f in facts {
            b.apply(&source, watcher::Event::InitApply(f));
        }
        b.apply(&source, watcher::Event::InitDone);
    }

    #[test]
    fn events_update_the_inventory_one_by_one() {
        let mut b = Builder::new();
        list(
            &mut b,
            Source::Policies,
            vec![policy("shop", "a"), policy("shop", "b"), policy("dev", "c")],
        );
        assert!(!b.ready(), "namespaces not listed yet");
        list(
            &mut b,
            Source::Namespaces,
            vec![ns("shop", &[("team", "x")]), ns("dev", &[])],
        );
        assert!(b.ready());
        let inv = b.snapshot();
        assert!(inv.knows_all_namespaces());
        assert!(!inv.knows_all_pods());
        assert_eq!(inv.policies_in("shop").len(), 2);
        let shop = inv.namespace_labels("shop").expect("shop known");
        assert_eq!(
            shop.get(NAMESPACE_NAME_LABEL).map(String::as_str),
            Some("shop")
        );

        b.apply(
            &Source::Policies,
            watcher::Event::Delete(policy("shop", "a")),
        );
        b.apply(
            &Source::Policies,
            watcher::Event::Apply(policy("shop", "d")),
        );
        b.apply(
            &Source::Namespaces,
            watcher::Event::Apply(ns("shop", &[("team", "y")])),
        );
        list(&mut b, Source::Pods, vec![pod("shop", "web-1", "web")]);
        b.apply(
            &Source::Pods,
            watcher::Event::Apply(pod("shop", "web-2", "web")),
        );
        b.apply(
            &Source::Pods,
            watcher::Event::Delete(pod("shop", "web-1", "web")),
        );
        let after = b.snapshot();
        let names: Vec<_> = after
            .policies_in("shop")
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(names, ["b", "d"]);
        assert_eq!(
            after
                .namespace_labels("shop")
                .and_then(|l| l.get("team"))
                .map(String::as_str),
            Some("y")
        );
        assert!(after.knows_all_pods());
        let pods: Vec<_> = after.pods_in("shop").map(|(n, _)| n.to_string()).collect();
        assert_eq!(pods, ["web-2"]);
        // the earlier snapshot is untouched
        assert_eq!(inv.policies_in("shop").len(), 2);
        assert_eq!(inv.pod_count(), 0);
    }

    #[test]
    fn layer_objects_come_and_go_with_their_kind() {
        let anp = |name: &str| {
            let object: DynamicObject = serde_json::from_value(serde_json::json!({
                "apiVersion": "policy.networking.k8s.io/v1alpha1",
                "kind": "AdminNetworkPolicy",
                "metadata": {"name": name},
                "spec": {"priority": 1, "subject": {"namespaces": {}}, "egress": []}
            }))
            .expect("object");
            layer_fact(LayerKind::AdminNetworkPolicy, object)
        };
        let source = Source::Layer(LayerKind::AdminNetworkPolicy);
        let mut b = Builder::new();
        list(&mut b, source.clone(), vec![anp("a"), anp("b")]);
        assert_eq!(
            b.snapshot().layers().count(LayerKind::AdminNetworkPolicy),
            2
        );
        b.apply(&source, watcher::Event::Delete(anp("a")));
        assert_eq!(
            b.snapshot().layers().count(LayerKind::AdminNetworkPolicy),
            1
        );
        // an object the guard cannot read is forgotten, not kept as it was
        let broken: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "policy.networking.k8s.io/v1alpha1",
            "kind": "AdminNetworkPolicy",
            "metadata": {"name": "b"},
            "spec": {"priority": "high"}
        }))
        .expect("object");
        b.apply(
            &source,
            watcher::Event::Apply(layer_fact(LayerKind::AdminNetworkPolicy, broken)),
        );
        assert_eq!(
            b.snapshot().layers().count(LayerKind::AdminNetworkPolicy),
            0
        );
        b.apply(&source, watcher::Event::Apply(anp("c")));
        // the CRD went away
        b.forget_layers_except(&[LayerKind::CiliumNetworkPolicy], &[]);
        assert!(b.snapshot().layers().is_empty());
        assert!(!b.synced(&source));
    }

    #[test]
    fn a_relist_replaces_exactly_its_source() {
        let mut b = Builder::new();
        list(
            &mut b,
            Source::Pods,
            vec![pod("a", "old", "x"), pod("b", "kept", "y")],
        );
        list(&mut b, Source::Policies, vec![policy("a", "p")]);
        // during a relist the previous objects stay visible
        b.apply(&Source::Pods, watcher::Event::Init);
        b.apply(
            &Source::Pods,
            watcher::Event::InitApply(pod("b", "kept", "y")),
        );
        assert_eq!(b.snapshot().pod_count(), 2);
        b.apply(&Source::Pods, watcher::Event::InitDone);
        let inv = b.snapshot();
        assert_eq!(inv.pod_count(), 1);
        assert_eq!(inv.policies_in("a").len(), 1, "other sources untouched");
    }
}
