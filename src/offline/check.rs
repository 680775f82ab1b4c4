//! `netpol-guard check`: the rule engine over manifests, for CI pipelines.
//!
//! Every NetworkPolicy of the input is judged with the other policies and Namespaces of the
//! same input as its context, exactly as the webhook judges it against the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::config::LayersConfig;
use crate::guard::dns_patch::dns_allowance_patch_in;
use crate::netpol::cluster::Inventory;
use crate::netpol::ipblock::IpFamilies;
use crate::netpol::layers::{LayerPolicy, UnreadKind};
use crate::netpol::policy::Subject;
use crate::offline::manifest::{self, Manifest, Object};
use crate::offline::positions::Positions;
use crate::rules::{self, Context, Finding, Severity};

/// Where an object came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub file: String,
    /// 1-based document number in the file.
    pub document: usize,
    /// 1-based item number inside a `List` document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// 1-based line the document starts on.
    pub line: usize,
    #[serde(skip)]
    position: (usize, usize),
}

impl Source {
    /// An object read from the cluster, not from a file: `networkpolicies/NAMESPACE/NAME`.
    pub fn cluster(namespace: &str, name: &str) -> Self {
        Self {
            file: format!("networkpolicies/{namespace}/{name}"),
            document: 0,
            item: None,
            line: 0,
            position: (0, 0),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.document == 0 {
            return f.write_str("cluster:");
        }
        write!(f, "{}:{} (document {}", self.file, self.line, self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        f.write_str(")")
    }
}

/// The findings of one checked object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectReport {
    pub source: Source,
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub findings: Vec<Finding>,
    /// What this object alone (with its own file as context) would be told, and another
    /// file of the same scope resolved: the covering policies are named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<Resolved>,
    /// The findings the object's `netpol-guard.io/ignore` annotation acknowledged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<crate::rules::suppress::Suppressed>,
    /// The (line, column) in the file of each finding's field, or of its nearest parent
    /// there; `None` where the file does not say (objects from a cluster).
    #[serde(skip)]
    pub at: Vec<Option<(usize, usize)>>,
}

impl ObjectReport {
    /// `namespace/name`, or the name alone for a cluster-scoped object.
    pub fn qualified_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }

    /// The (line, column) of finding `i`, when known.
    pub fn position(&self, i: usize) -> Option<(usize, usize)> {
        self.at.get(i).copied().flatten()
    }
}

/// A finding that policies in other files of the scope resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    pub rule: &'static str,
    pub path: String,
    pub message: String,
    /// The policies of other files that select every pod this one selects.
    pub by: Vec<Covering>,
}

/// A policy named as covering another, with its file.
#[derive(Debug, Clone, Serialize)]
pub struct Covering {
    pub name: String,
    pub file: String,
}

/// Which manifests count as one context: the policies and namespaces of other files in the
/// same scope resolve findings (a covering allow-DNS policy, a sibling that opens what a
/// deny-all closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Scope {
    /// Every input together, as the cluster sees it once everything is applied.
    #[default]
    All,
    /// The files of one directory (one application or kustomization in a monorepo).
    Directory,
    /// Each file on its own.
    File,
}

impl Scope {
    /// The scope a file belongs to.
    fn key(self, file: &str) -> String {
        match self {
            Self::All => String::new(),
            Self::Directory => Path::new(file)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            Self::File => file.to_string(),
        }
    }
}

/// Input that could not be read or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(doc) = self.document {
            write!(f, " (document {doc})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub objects: Vec<ObjectReport>,
    pub problems: Vec<Problem>,
    /// Objects of other kinds, counted by kind.
    pub skipped: BTreeMap<String, usize>,
    pub namespaces: usize,
    pub files: usize,
    /// Files read for context only (`--context`).
    pub context_files: usize,
}

impl Report {
    pub fn count(&self, severity: Severity) -> usize {
        self.findings()
            .filter(|(_, f)| f.severity == severity)
            .count()
    }

    /// Every finding that files other than its object's resolved, with its object.
    pub fn resolved(&self) -> impl Iterator<Item = (&ObjectReport, &Resolved)> {
        self.objects
            .iter()
            .flat_map(|o| o.resolved.iter().map(move |r| (o, r)))
    }

    /// Every finding an annotation acknowledged, with its object.
    pub fn suppressed(
        &self,
    ) -> impl Iterator<Item = (&ObjectReport, &crate::rules::suppress::Suppressed)> {
        self.objects
            .iter()
            .flat_map(|o| o.suppressed.iter().map(move |s| (o, s)))
    }

    /// Every finding with its object.
    pub fn findings(&self) -> impl Iterator<Item = (&ObjectReport, &Finding)> {
        self.objects
            .iter()
            .flat_map(|o| o.findings.iter().map(move |f| (o, f)))
    }

    /// 2 when input could not be read, else 1 when anything is denied, else 0.
    pub fn exit_code(&self) -> u8 {
        self.exit_code_failing_on(Severity::Deny)
    }

    /// 2 when input could not be read, else 1 when a finding is at least as severe as
    /// `fail_on` (`Warn`: warnings fail too), else 0.
    pub fn exit_code_failing_on(&self, fail_on: Severity) -> u8 {
        let failing = match fail_on {
            Severity::Deny => self.count(Severity::Deny),
            Severity::Warn => self.count(Severity::Deny) + self.count(Severity::Warn),
        };
        if !self.problems.is_empty() {
            2
        } else if failing > 0 {
            1
        } else {
            0
        }
    }
}

/// Reads the given paths: files, directories (recursively, `*.yaml`, `*.yml`, `*.json`, in
/// name order) and `-` for stdin.
/// Inputs larger than this (bytes) are refused: parsing costs tens of times their size in
/// memory, and no manifest file comes near it.
pub const MAX_FILE_SIZE: u64 = 32 * 1024 * 1024;

fn too_big(file: &str, size: u64) -> Problem {
    Problem {
        file: file.to_string(),
        document: None,
        line: None,
        message: format!(
            "{} MiB or more: larger than the {} MiB netpol-guard reads from one input; split it",
            size / (1024 * 1024),
            MAX_FILE_SIZE / (1024 * 1024)
        ),
    }
}

pub fn load(paths: &[String]) -> (Vec<Manifest>, Vec<Problem>) {
    load_with_context(paths, &[])
}

/// Reads the paths to judge, and the `context` paths (`--context`: files and directories
/// whose policies and namespaces are the context of the judged ones, as the rest of a
/// repository is for the files a commit changes). Context files that are also judged are
/// read once; directories are searched without their hidden folders (`.git`); context that
/// cannot be read or parsed is passed over, since nothing of it is judged. Files that a
/// kustomization names as patches are marked: they are fragments, not objects.
pub fn load_with_context(paths: &[String], context: &[String]) -> (Vec<Manifest>, Vec<Problem>) {
    let mut manifests = Vec::new();
    let mut problems = Vec::new();
    let mut files_read: Vec<Option<std::path::PathBuf>> = Vec::new();
    for path in paths {
        if path == "-" {
            let mut text = String::new();
            // one byte more than allowed tells a too big input from one just at the limit
            let read = std::io::stdin()
                .take(MAX_FILE_SIZE + 1)
                .read_to_string(&mut text);
            match read {
                Ok(n) if n as u64 > MAX_FILE_SIZE => problems.push(too_big("-", n as u64)),
                Ok(_) => {
                    manifests.push(Manifest::parse("-", &text));
                    files_read.push(None);
                }
                Err(e) => problems.push(unreadable("-", &e)),
            }
            continue;
        }
        let mut files = Vec::new();
        if let Err(e) = collect(Path::new(path), 0, &mut files, true, false) {
            problems.push(unreadable(path, &e));
        }
        for file in files {
            match read_manifest(&file) {
                Ok(m) => {
                    manifests.push(m);
                    files_read.push(Some(file));
                }
                Err(p) => problems.push(p),
            }
        }
    }
    let judged: BTreeSet<std::path::PathBuf> = files_read
        .iter()
        .flatten()
        .map(|f| crate::offline::kustomize::identity(f))
        .collect();
    for path in context {
        let mut files = Vec::new();
        let _ = collect(Path::new(path), 0, &mut files, true, true);
        for file in files {
            if judged.contains(&crate::offline::kustomize::identity(&file)) {
                continue;
            }
            if let Ok(mut m) = read_manifest(&file) {
                m.context = true;
                manifests.push(m);
                files_read.push(Some(file));
            }
        }
    }
    let on_disk: Vec<std::path::PathBuf> = files_read.iter().flatten().cloned().collect();
    let patches = crate::offline::kustomize::patches(&on_disk);
    for (m, file) in manifests.iter_mut().zip(&files_read) {
        if let Some(kustomization) = file.as_ref().and_then(|f| patches.get(f)) {
            m.patch_of = Some(kustomization.display().to_string());
        }
    }
    (manifests, problems)
}

/// One manifest file, named in its normal form (`./a/b.yaml` is `a/b.yaml`, so that the
/// same file reached two ways is one file, and one directory, for `--scope`).
fn read_manifest(file: &Path) -> Result<Manifest, Problem> {
    let name = crate::offline::kustomize::normal(file)
        .display()
        .to_string();
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_SIZE {
        return Err(too_big(&name, size));
    }
    match std::fs::read(file).map(String::from_utf8) {
        Ok(Ok(text)) => Ok(Manifest::parse(name, &text)),
        Ok(Err(_)) => Err(Problem {
            file: name,
            document: None,
            line: None,
            message: "not UTF-8 text".into(),
        }),
        Err(e) => Err(unreadable(&name, &e)),
    }
}

fn unreadable(path: &str, e: &std::io::Error) -> Problem {
    Problem {
        file: path.to_string(),
        document: None,
        line: None,
        message: format!("cannot read: {e}"),
    }
}

fn collect(
    path: &Path,
    depth: usize,
    files: &mut Vec<std::path::PathBuf>,
    explicit: bool,
    skip_hidden: bool,
) -> std::io::Result<()> {
    const MAX_DEPTH: usize = 32;
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        let manifest_ext = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        // a file named on the command line is read whatever its name
        if explicit || manifest_ext {
            files.push(path.to_path_buf());
        }
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if skip_hidden && hidden {
            continue;
        }
        collect(&entry, depth + 1, files, false, skip_hidden)?;
    }
    Ok(())
}

/// A decoded NetworkPolicy and where it lives.
struct Located {
    source: Source,
    namespace: String,
    policy: Arc<NetworkPolicy>,
    /// Read for context only: judged never.
    context: bool,
}

/// A namespace of the input, with its file.
struct NamespaceSeen {
    file: String,
    name: String,
    labels: crate::netpol::selector::Labels,
}

/// A policy layer object of the input.
struct LocatedLayer {
    source: Source,
    policy: Arc<LayerPolicy>,
    context: bool,
}

/// Everything decoded from the input.
#[derive(Default)]
struct Gathered {
    policies: Vec<Located>,
    layers: Vec<LocatedLayer>,
    /// The layer families read (`layers` in the configuration).
    layers_read: LayersConfig,
    /// Policies of CNIs the guard does not read: (file, kind, namespace, name).
    unread: Vec<(String, &'static UnreadKind, String, String)>,
    namespaces_seen: Vec<NamespaceSeen>,
    inventory: Inventory,
    problems: Vec<Problem>,
    skipped: BTreeMap<String, usize>,
    namespaces: usize,
}

fn unknown_fields(fields: &[String]) -> String {
    format!(
        "unknown field{} {} (kubectl's strict validation rejects it; the API server would drop \
         it)",
        if fields.len() == 1 { "" } else { "s" },
        fields.join(", ")
    )
}

fn in_item(item: Option<usize>, message: &str) -> String {
    match item {
        Some(i) => format!("item {i}: {message}"),
        None => message.to_string(),
    }
}

impl Gathered {
    /// Decodes one object of the input and files it: a policy to judge (and to count as
    /// context), a namespace's labels, a skipped kind, or a problem.
    fn add(
        &mut self,
        source: Source,
        value: &Value,
        default_namespace: &str,
        context: bool,
        problem: &dyn Fn(Option<usize>, String) -> Problem,
    ) {
        let (item, line) = (source.item, source.line);
        let decoded = match manifest::decode(value) {
            Ok(decoded) => decoded,
            Err(_) if context => return,
            Err(message) => {
                self.problems
                    .push(problem(Some(line), in_item(item, &message)));
                return;
            }
        };
        if !decoded.unknown_fields.is_empty() && !context {
            // reported, and the object is still judged as the API server stores it
            let message = unknown_fields(&decoded.unknown_fields);
            self.problems
                .push(problem(Some(line), in_item(item, &message)));
        }
        match decoded.object {
            Object::NetworkPolicy(policy) => {
                let ns = policy
                    .metadata
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| default_namespace.to_string());
                let policy: Arc<NetworkPolicy> = Arc::from(policy);
                self.inventory.insert_policy(&ns, policy.clone());
                self.policies.push(Located {
                    source,
                    namespace: ns,
                    policy,
                    context,
                });
            }
            Object::Namespace(ns) => {
                self.namespaces += usize::from(!context);
                if let Some(name) = ns.metadata.name.as_deref() {
                    let labels = ns.metadata.labels.clone().unwrap_or_default();
                    self.inventory.insert_namespace(name, labels.clone());
                    self.namespaces_seen.push(NamespaceSeen {
                        file: source.file.clone(),
                        name: name.to_string(),
                        labels,
                    });
                }
            }
            Object::Layer(layer) if !self.layers_read.reads(layer.kind) => {
                let off = format!(
                    "{} (its family is off in the configuration's `layers`)",
                    layer.kind.as_str()
                );
                *self.skipped.entry(off).or_default() += usize::from(!context);
            }
            Object::Layer(layer) => {
                self.inventory.layers_mut().insert((*layer).clone());
                self.layers.push(LocatedLayer {
                    source,
                    policy: Arc::from(layer),
                    context,
                });
            }
            Object::Unread { kind, .. } if !self.layers_read.other_cnis => {
                let off = format!("{} (layers.otherCnis is off)", kind.label);
                *self.skipped.entry(off).or_default() += usize::from(!context);
            }
            Object::Unread {
                kind,
                namespace,
                name,
            } => {
                let namespace = if kind.namespaced && namespace.is_empty() {
                    default_namespace.to_string()
                } else {
                    namespace
                };
                self.inventory
                    .layers_mut()
                    .insert_unread(kind, &namespace, &name);
                self.unread
                    .push((source.file.clone(), kind, namespace, name));
                let note = format!(
                    "{} (not read: verdicts it could change are warnings that name it)",
                    kind.label
                );
                *self.skipped.entry(note).or_default() += usize::from(!context);
            }
            Object::Other { .. } if context => {}
            Object::Other { kind } => *self.skipped.entry(kind).or_default() += 1,
        }
    }
}

/// How the report counts the documents of kustomize patch files, which it does not judge.
pub const PATCH_DOCUMENTS: &str =
    "documents of kustomize patches (check the output of `kustomize build DIR` instead)";

fn gather(
    manifests: &[Manifest],
    default_namespace: &str,
    families: IpFamilies,
    layers_read: LayersConfig,
) -> Gathered {
    let mut g = Gathered {
        inventory: Inventory::of_families(families),
        layers_read,
        ..Gathered::default()
    };
    for (m, manifest) in manifests.iter().enumerate() {
        if manifest.patch_of.is_some() {
            // a patch is a fragment of an object: judged once kustomize has applied it
            if !manifest.context {
                let docs = manifest
                    .docs
                    .iter()
                    .filter(|d| !matches!(d.parsed, Ok(None)));
                *g.skipped.entry(PATCH_DOCUMENTS.to_string()).or_default() += docs.count();
            }
            continue;
        }
        for (d, doc) in manifest.docs.iter().enumerate() {
            let problem = |line: Option<usize>, message: String| Problem {
                file: manifest.file.clone(),
                document: Some(doc.index),
                line,
                message,
            };
            let value = match &doc.parsed {
                Ok(Some(value)) => value,
                Ok(None) => continue,
                Err(_) if manifest.context => continue,
                Err(e) => {
                    g.problems.push(problem(e.line, e.message.clone()));
                    continue;
                }
            };
            let items: Vec<(Option<usize>, &Value)> = match manifest::list_items(value) {
                Some(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (Some(i + 1), v))
                    .collect(),
                None => vec![(None, value)],
            };
            // a rendered document is reported where its renderer says it came from
            let (file, line) = match &doc.origin {
                Some(o) => (o.file.clone(), doc.line.saturating_sub(o.first_line) + 1),
                None => (manifest.file.clone(), doc.line),
            };
            for (item, value) in items {
                let source = Source {
                    file: file.clone(),
                    document: doc.index,
                    item,
                    line,
                    position: (m, d),
                };
                g.add(source, value, default_namespace, manifest.context, &problem);
            }
        }
    }
    g
}

/// Judges every NetworkPolicy of the input, all of it one context.
pub fn analyze(manifests: &[Manifest], config: &Config, default_namespace: &str) -> Report {
    analyze_scoped(
        manifests,
        config,
        default_namespace,
        Scope::All,
        IpFamilies::Unknown,
    )
}

impl Gathered {
    /// The scopes that hold more than one file: only there can another file resolve a
    /// finding.
    fn shared_scopes(&self, scope: Scope) -> BTreeSet<String> {
        let mut files_in: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        let policies = self.policies.iter().map(|p| p.source.file.as_str());
        for file in policies.chain(self.namespaces_seen.iter().map(|n| n.file.as_str())) {
            files_in.entry(scope.key(file)).or_default().insert(file);
        }
        files_in
            .into_iter()
            .filter(|(_, files)| files.len() > 1)
            .map(|(key, _)| key)
            .collect()
    }

    /// The context of each scope: the policies and namespaces of its files.
    fn inventories(&self, scope: Scope) -> BTreeMap<String, Inventory> {
        let mut out: BTreeMap<String, Inventory> = BTreeMap::new();
        let fresh = || Inventory::of_families(self.inventory.ip_families());
        for p in &self.policies {
            out.entry(scope.key(&p.source.file))
                .or_insert_with(fresh)
                .insert_policy(&p.namespace, p.policy.clone());
        }
        for n in &self.namespaces_seen {
            out.entry(scope.key(&n.file))
                .or_insert_with(fresh)
                .insert_namespace(&n.name, n.labels.clone());
        }
        for l in &self.layers {
            out.entry(scope.key(&l.source.file))
                .or_insert_with(fresh)
                .layers_mut()
                .insert((*l.policy).clone());
        }
        for (file, kind, namespace, name) in &self.unread {
            out.entry(scope.key(file))
                .or_insert_with(fresh)
                .layers_mut()
                .insert_unread(kind, namespace, name);
        }
        out
    }
}

/// Judges every NetworkPolicy of the input, each in the context of its scope, and names
/// the findings that files other than its own resolved; in a cluster of these IP families.
pub fn analyze_scoped(
    manifests: &[Manifest],
    config: &Config,
    default_namespace: &str,
    scope: Scope,
    families: IpFamilies,
) -> Report {
    let mut g = gather(manifests, default_namespace, families, config.layers);
    // the whole input is gather's own inventory; other scopes are built from their files
    let scoped = if scope == Scope::All {
        BTreeMap::from([(String::new(), std::mem::take(&mut g.inventory))])
    } else {
        g.inventories(scope)
    };
    let shared_scopes = g.shared_scopes(scope);
    let own = if !shared_scopes.is_empty() {
        g.inventories(Scope::File)
    } else {
        BTreeMap::new()
    };
    let empty = Inventory::of_families(families);
    // one context per inventory: what it prepares about the policies serves every subject
    let judges = Judges {
        scope,
        scoped: contexts(config, &scoped),
        own: contexts(config, &own),
        empty: config.rule_context(&empty),
        shared_scopes: &shared_scopes,
        files: g
            .policies
            .iter()
            .map(|p| {
                let name = p.policy.metadata.name.as_deref().unwrap_or_default();
                ((p.namespace.as_str(), name), p.source.file.as_str())
            })
            .collect(),
    };
    let mut objects: Vec<ObjectReport> = g
        .policies
        .iter()
        .filter(|located| !located.context)
        .map(|located| judges.judge(manifests, located, default_namespace))
        .collect();
    objects.extend(
        (g.layers.iter())
            .filter(|located| !located.context)
            .map(|located| judges.judge_layer(manifests, located)),
    );
    // in input order, as the documents came
    objects.sort_by_key(|o| (o.source.position, o.source.item));
    Report {
        objects,
        problems: g.problems,
        skipped: g.skipped,
        namespaces: g.namespaces,
        files: manifests.iter().filter(|m| !m.context).count(),
        context_files: manifests.iter().filter(|m| m.context).count(),
    }
}

/// The rule contexts a check judges its policies in: one per scope, one per file for the
/// files whose scope is shared (to name what other files resolved), an empty one.
struct Judges<'a> {
    scope: Scope,
    scoped: BTreeMap<String, Context<'a>>,
    own: BTreeMap<String, Context<'a>>,
    empty: Context<'a>,
    /// Scopes of more than one file.
    shared_scopes: &'a BTreeSet<String>,
    /// Each policy's file, by (namespace, name).
    files: BTreeMap<(&'a str, &'a str), &'a str>,
}

impl Judges<'_> {
    /// One policy layer object judged among the layers of its scope.
    fn judge_layer(&self, manifests: &[Manifest], located: &LocatedLayer) -> ObjectReport {
        let key = self.scope.key(&located.source.file);
        let ctx = self.scoped.get(&key).unwrap_or(&self.empty);
        let findings = rules::evaluate_layer(ctx, &located.policy);
        let at = positions_of(manifests, &located.source, &findings);
        ObjectReport {
            source: located.source.clone(),
            kind: located.policy.kind.as_str(),
            namespace: located.policy.namespace.clone().unwrap_or_default(),
            name: located.policy.name.clone(),
            findings,
            resolved: Vec::new(),
            suppressed: Vec::new(),
            at,
        }
    }

    /// One policy judged in its scope, with what the other files of the scope resolved.
    fn judge(
        &self,
        manifests: &[Manifest],
        located: &Located,
        default_namespace: &str,
    ) -> ObjectReport {
        let file = located.source.file.as_str();
        let subject = Subject::new(&located.policy, default_namespace);
        let key = self.scope.key(file);
        let ctx = self.scoped.get(&key).unwrap_or(&self.empty);
        let (findings, suppressed) = rules::evaluate_all(ctx, &subject);
        let resolved = if !self.shared_scopes.contains(&key) {
            Vec::new()
        } else {
            let alone = self.own.get(file).unwrap_or(&self.empty);
            let alone = rules::evaluate(alone, &subject);
            resolved_by_others(&findings, alone, ctx.inventory, &subject, &self.files, file)
        };
        let at = positions_of(manifests, &located.source, &findings);
        ObjectReport {
            source: located.source.clone(),
            kind: "NetworkPolicy",
            namespace: subject.namespace.to_string(),
            name: subject.name.to_string(),
            findings,
            resolved,
            suppressed,
            at,
        }
    }
}

/// Findings of documents up to this size (bytes) point at their field's line and column.
const MAX_POSITIONED_DOCUMENT: usize = 256 * 1024;

/// Where each finding's field is in the object's file (the nearest parent present there).
fn positions_of(
    manifests: &[Manifest],
    source: &Source,
    findings: &[Finding],
) -> Vec<Option<(usize, usize)>> {
    let (m, d) = source.position;
    let Some(doc) = manifests.get(m).and_then(|m| m.docs.get(d)) else {
        return Vec::new();
    };
    // a document this big is no hand-written manifest, and the YAML scanner's cost grows
    // faster than its size: its findings point at the document
    if findings.is_empty() || doc.raw.len() > MAX_POSITIONED_DOCUMENT {
        return Vec::new();
    }
    let prefix = source
        .item
        .map_or_else(String::new, |i| format!("items[{}].", i - 1));
    let paths: Vec<String> = findings
        .iter()
        .map(|f| format!("{prefix}{}", f.path))
        .collect();
    let positions = Positions::of_paths(&doc.raw, &paths);
    // lines of a rendered document count from where its own text starts
    let first = doc.origin.as_ref().map_or(1, |o| o.first_line);
    paths
        .iter()
        .map(|path| {
            positions
                .find(path)
                .map(|p| ((doc.start + p.line - 1).saturating_sub(first - 1), p.column))
        })
        .collect()
}

/// The findings the object would get with its own file as context that the scope's
/// context resolved, with the covering policies from other files.
fn resolved_by_others(
    findings: &[Finding],
    alone: Vec<Finding>,
    inventory: &Inventory,
    subject: &Subject<'_>,
    files: &BTreeMap<(&str, &str), &str>,
    file: &str,
) -> Vec<Resolved> {
    let gone: Vec<Finding> = alone
        .into_iter()
        .filter(|a| {
            !findings
                .iter()
                .any(|f| f.rule == a.rule && f.path == a.path)
        })
        .collect();
    if gone.is_empty() {
        return Vec::new();
    }
    let by: Vec<Covering> = inventory
        .covering(subject)
        .iter()
        .filter_map(|other| {
            let other_file = files.get(&(subject.namespace, other.name))?;
            (*other_file != file).then(|| Covering {
                name: other.name.to_string(),
                file: other_file.to_string(),
            })
        })
        .collect();
    gone.into_iter()
        .map(|f| Resolved {
            rule: f.rule,
            path: f.path,
            message: f.message,
            by: by.clone(),
        })
        .collect()
}

/// A rule context for each inventory, by the same key.
fn contexts<'a>(
    config: &'a Config,
    inventories: &'a BTreeMap<String, Inventory>,
) -> BTreeMap<String, Context<'a>> {
    inventories
        .iter()
        .map(|(key, inventory)| (key.clone(), config.rule_context(inventory)))
        .collect()
}

/// A policy of the input that lacks the DNS allowance, and the rule that adds it.
#[derive(Debug, Clone)]
pub struct Missing {
    /// Index of its manifest, of its document there, and its 1-based `List` item.
    pub manifest: usize,
    pub document: usize,
    pub item: Option<usize>,
    pub namespace: String,
    pub name: String,
    /// The egress rule to append (as JSON).
    pub rule: serde_json::Value,
}

/// Every policy that restricts egress without DNS, judged with the same context as
/// [`analyze_scoped`], with the rule the webhook would inject.
pub fn missing_dns(
    manifests: &[Manifest],
    config: &Config,
    default_namespace: &str,
    scope: Scope,
    families: IpFamilies,
) -> Vec<Missing> {
    let g = gather(manifests, default_namespace, families, config.layers);
    let scoped = g.inventories(scope);
    let empty = Inventory::of_families(families);
    let contexts = contexts(config, &scoped);
    let empty_context = config.rule_context(&empty);
    let mut out = Vec::new();
    for located in g.policies.iter().filter(|l| !l.context) {
        let subject = Subject::new(&located.policy, default_namespace);
        let ctx = contexts
            .get(&scope.key(&located.source.file))
            .unwrap_or(&empty_context);
        if dns_allowance_patch_in(ctx, &subject).is_none() {
            continue;
        }
        let Ok(rule) = serde_json::to_value(ctx.dns.allowance_rule()) else {
            continue;
        };
        let (manifest, document) = located.source.position;
        out.push(Missing {
            manifest,
            document,
            item: located.source.item,
            namespace: subject.namespace.to_string(),
            name: subject.name.to_string(),
            rule,
        });
    }
    out
}
