//! Manifests as files hold them: YAML streams (or JSON), split into documents the way kubectl
//! splits them, decoded one by one so that a broken document never hides the others.

use crate::netpol::layers::{self, LayerKind, LayerPolicy, UnreadKind};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::Value;

/// One file (or stdin) of manifests.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The path as given, or `-` for stdin.
    pub file: String,
    pub docs: Vec<Doc>,
    /// The file's text as read, for edits that keep every other byte.
    pub text: String,
    /// Read for context only (`check --context`): its policies and namespaces are the
    /// others' context, nothing of it is judged or reported.
    pub context: bool,
    /// The kustomization that names this file as a patch: a fragment, not judged.
    pub patch_of: Option<String>,
}

/// One document of a manifest.
#[derive(Debug, Clone)]
pub struct Doc {
    /// 1-based position in the file.
    pub index: usize,
    /// 1-based line the document starts on.
    pub line: usize,
    /// 1-based line of the first line of `raw` (before leading comments).
    pub start: usize,
    /// The document's text, kept to write it back untouched when it cannot be parsed.
    pub raw: String,
    /// The parsed document (`None` for an empty one), or why it could not be parsed.
    pub parsed: Result<Option<Value>, DocError>,
    /// Where a renderer says the document came from (`helm template`'s `# Source:`
    /// comment, kustomize's `config.kubernetes.io/origin` annotation).
    pub origin: Option<Origin>,
}

/// The file a rendered document came from. Its lines are counted from `first_line` (the
/// line of this stream where the document's own text starts), as the template's lines are
/// when it renders one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub first_line: usize,
}

/// A document's origin: a `# Source: PATH` line among its leading comments (helm), else a
/// `config.kubernetes.io/origin` annotation with a `path` (kustomize's originAnnotations).
fn origin_of(raw: &str, start: usize, parsed: &Result<Option<Value>, DocError>) -> Option<Origin> {
    let leading = raw
        .lines()
        .enumerate()
        .take_while(|(_, l)| l.trim().is_empty() || l.trim_start().starts_with('#'));
    for (i, line) in leading {
        if let Some(path) = line.trim_start().strip_prefix("# Source:") {
            let path = path.trim();
            if !path.is_empty() {
                return Some(Origin {
                    file: path.to_string(),
                    first_line: start + i + 1,
                });
            }
        }
    }
    let annotation =
        parsed.as_ref().ok()?.as_ref()?["metadata"]["annotations"]["config.kubernetes.io/origin"]
            .as_str()?;
    let origin: Value = serde_yaml_ng::from_str(annotation).ok()?;
    Some(Origin {
        file: origin["path"].as_str()?.to_string(),
        first_line: start,
    })
}

/// A document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DocError {
    /// 1-based line in the file, when the parser gives one.
    pub line: Option<usize>,
    pub message: String,
}

impl Manifest {
    /// Splits and parses a file. JSON is read as a stream of JSON values; anything else as
    /// YAML documents separated by `---` lines.
    pub fn parse(file: impl Into<String>, text: &str) -> Self {
        let file = file.into();
        let original = text.to_string();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let docs = if file.ends_with(".json") || text.trim_start().starts_with(['{', '[']) {
            parse_json(text)
        } else {
            parse_yaml(text)
        };
        Self {
            file,
            docs,
            text: original,
            context: false,
            patch_of: None,
        }
    }
}

/// Splits a YAML stream on separator lines: `---` at the start of a line, followed by
/// nothing but blanks or a comment (kubectl's rule).
fn split_yaml(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let is_separator = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'));
        if is_separator {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 2;
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push((start, current));
    docs
}

fn parse_yaml(text: &str) -> Vec<Doc> {
    let mut docs = Vec::new();
    for (line, raw) in split_yaml(text) {
        // Documents made only of comments and blanks do not count (kubectl skips them).
        let blank = raw
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        if blank {
            continue;
        }
        let parsed = if let Some(at) = too_deep(&raw) {
            Err(DocError {
                line: Some(line + at),
                message: format!(
                    "brackets nested deeper than {MAX_FLOW_DEPTH} levels: no Kubernetes object \
                     needs that (a NetworkPolicy fewer than 10), so it is not parsed"
                ),
            })
        } else {
            parse_document(&raw, line)
        };
        // a document's line is its first line of content, after leading comments
        let leading = raw
            .lines()
            .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            .count();
        let origin = origin_of(&raw, line, &parsed);
        docs.push(Doc {
            index: docs.len() + 1,
            line: line + leading,
            start: line,
            raw,
            parsed,
            origin,
        });
    }
    docs
}

/// Flow collections (`[`, `{`) nested deeper than this are refused before parsing: the YAML
/// scanner's work grows with the square of the depth.
const MAX_FLOW_DEPTH: usize = 64;

/// The line (0-based, within the document) where brackets outside quotes and comments nest
/// deeper than [`MAX_FLOW_DEPTH`].
fn too_deep(raw: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (n, line) in raw.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') if previous.is_whitespace() => break,
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some(n);
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            previous = c;
        }
    }
    None
}

/// One YAML document, parsed. Go template actions (`{{ .Values.x }}`, `{{- include ... }}`)
/// make a document an unrendered template only where they matter: a document that cannot be
/// parsed as YAML because of them, or a NetworkPolicy or Namespace (the objects judged) that
/// carries one in a field. Anything else with `{{ }}` in its data (a PrometheusRule's
/// `{{ $labels.pod }}`, an Istio or KServe template) is data, and not judged anyway.
fn parse_document(raw: &str, line: usize) -> Result<Option<Value>, DocError> {
    let unrendered = |at: usize| DocError {
        line: Some(line + at),
        message: "this is an unrendered Helm or Go template ({{ ... }}): render it first, e.g. \
                  `helm template RELEASE CHART | netpol-guard check -` or \
                  `kustomize build DIR | netpol-guard check -`"
            .into(),
    };
    match serde_yaml_ng::from_str::<Value>(raw) {
        Ok(v) if judged_with_template(&v) => Err(unrendered(template_action(raw).unwrap_or(0))),
        Ok(v) => Ok((!v.is_null()).then_some(v)),
        Err(e) => match template_action(raw) {
            Some(at) => Err(unrendered(at)),
            None => Err(yaml_error(raw, line, e)),
        },
    }
}

/// Whether a parsed document is (or, as a `List`, holds) a NetworkPolicy or Namespace with a
/// template action in a key or value outside its annotations (free text, where braces are
/// data).
fn judged_with_template(v: &Value) -> bool {
    fn has_action(v: &Value) -> bool {
        match v {
            Value::String(s) => is_action(s),
            Value::Array(items) => items.iter().any(has_action),
            Value::Object(map) => map.iter().any(|(k, v)| is_action(k) || has_action(v)),
            _ => false,
        }
    }
    // every field but the annotations, whose values are free text
    let fields = |map: &serde_json::Map<String, Value>, skip: &str| {
        map.iter()
            .any(|(k, v)| k != skip && (is_action(k) || has_action(v)))
    };
    match v.get("kind").and_then(Value::as_str) {
        Some("NetworkPolicy" | "Namespace") => v.as_object().is_some_and(|object| {
            fields(object, "metadata")
                || v.get("metadata")
                    .and_then(Value::as_object)
                    .is_some_and(|meta| fields(meta, "annotations"))
        }),
        Some("List") => v
            .get("items")
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(judged_with_template)),
        _ => false,
    }
}

/// Whether a text holds a Go template action: `{{` followed by what only a template says.
fn is_action(text: &str) -> bool {
    text.match_indices("{{")
        .any(|(i, _)| starts_action(&text[i + 2..]))
}

fn starts_action(after_braces: &str) -> bool {
    const STARTS: &[&str] = &[
        ".", "$", "include", "if ", "else", "end", "range", "with", "template", "define", "toYaml",
        "tpl", "required", "default", "quote", "printf", "/*",
    ];
    let action = after_braces.trim_start_matches('-').trim_start();
    STARTS.iter().any(|s| action.starts_with(s))
}

/// The line (0-based, within the document) of the first Go template action outside
/// comments.
fn template_action(raw: &str) -> Option<usize> {
    raw.lines()
        .position(|line| !line.trim_start().starts_with('#') && is_action(line))
}

/// A document's parse error with file lines. The document is parsed again where it stands
/// in the file (preceded by as many empty lines), so every position the parser reports,
/// also those inside its message ("while parsing a flow sequence at line 15"), is a line of
/// the file. Only failing documents pay for it.
fn yaml_error(raw: &str, line: usize, first: serde_yaml_ng::Error) -> DocError {
    let placed = format!("{}{raw}", "\n".repeat(line.saturating_sub(1)));
    let e = serde_yaml_ng::from_str::<Value>(&placed)
        .err()
        .unwrap_or(first);
    DocError {
        line: e.location().map(|l| l.line()),
        message: format!("invalid YAML: {e}"),
    }
}

fn parse_json(text: &str) -> Vec<Doc> {
    let line_of = |offset: usize| 1 + text[..offset].matches('\n').count();
    let mut docs = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    loop {
        let offset = stream.byte_offset();
        // the document starts at its first non-blank character
        let start = offset + (text[offset..].len() - text[offset..].trim_start().len());
        let Some(next) = stream.next() else { break };
        let (raw, parsed) = match next {
            Ok(value) => (
                text[start..stream.byte_offset()].to_string(),
                Ok((!value.is_null()).then_some(value)),
            ),
            Err(e) => (
                text[start..].to_string(),
                Err(DocError {
                    line: Some(e.line()),
                    message: format!("invalid JSON: {e}"),
                }),
            ),
        };
        let failed = parsed.is_err();
        let origin = origin_of(&raw, line_of(start), &parsed);
        docs.push(Doc {
            index: docs.len() + 1,
            line: line_of(start),
            start: line_of(start),
            raw,
            parsed,
            origin,
        });
        // a JSON stream cannot be resynchronised after a syntax error
        if failed {
            break;
        }
    }
    docs
}

/// An object with the fields the decoder did not know (the API server would drop them).
#[derive(Debug, Clone)]
pub struct Decoded {
    pub object: Object,
    /// Paths of unknown fields, e.g. `spec.podSelectr`.
    pub unknown_fields: Vec<String>,
}

/// A Kubernetes object decoded from a document.
#[derive(Debug, Clone)]
pub enum Object {
    NetworkPolicy(Box<NetworkPolicy>),
    Namespace(Box<Namespace>),
    /// An object of a policy layer (AdminNetworkPolicy, Cilium, ...) at the version read.
    Layer(Box<LayerPolicy>),
    /// A policy of a CNI the guard does not read (Calico, Antrea): only its existence counts.
    Unread {
        kind: &'static UnreadKind,
        namespace: String,
        name: String,
    },
    /// Any other kind: skipped, and counted by `kind` (with apiVersion when not core).
    Other {
        kind: String,
    },
}

/// How documents without apiVersion and kind are counted among the skipped kinds.
pub const NOT_AN_OBJECT: &str = "documents without apiVersion and kind";

/// Whether a value is a list of objects (`kind: List`, `NetworkPolicyList`, ...).
pub fn list_items(value: &Value) -> Option<&Vec<Value>> {
    let kind = value.get("kind")?.as_str()?;
    if kind.ends_with("List") {
        value.get("items")?.as_array()
    } else {
        None
    }
}

/// Decodes one object by apiVersion and kind; type errors name the offending field.
pub fn decode(value: &Value) -> Result<Decoded, String> {
    let Some(map) = value.as_object() else {
        return Err("not a Kubernetes object: expected a mapping with apiVersion and kind".into());
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str);
    let kind = map.get("kind").and_then(Value::as_str);
    let other = |kind: String| {
        Ok(Decoded {
            object: Object::Other { kind },
            unknown_fields: Vec::new(),
        })
    };
    match (api_version, kind) {
        // Helm values, kustomize patches, index files: not objects, nothing to check
        (None, None) => other(NOT_AN_OBJECT.to_string()),
        (None, Some(kind)) => Err(format!("{kind} without apiVersion")),
        (Some(_), None) => Err("not a Kubernetes object: `kind` is missing".into()),
        (Some("networking.k8s.io/v1"), Some("NetworkPolicy")) => {
            typed(value).map(|(p, unknown_fields)| Decoded {
                object: Object::NetworkPolicy(Box::new(p)),
                unknown_fields,
            })
        }
        (Some("v1"), Some("Namespace")) => typed(value).map(|(n, unknown_fields)| Decoded {
            object: Object::Namespace(Box::new(n)),
            unknown_fields,
        }),
        // served until Kubernetes 1.16: such a manifest no longer applies anywhere, so it
        // is an error, not a skipped kind
        (Some("extensions/v1beta1"), Some("NetworkPolicy")) => Err(
            "NetworkPolicy in extensions/v1beta1 was removed in Kubernetes 1.16: write \
             apiVersion: networking.k8s.io/v1 (the spec is the same)"
                .into(),
        ),
        (Some(api_version), Some(kind)) if LayerKind::of(api_version, kind).is_some() => {
            match layers::decode::layer(value) {
                Ok(layer) => Ok(Decoded {
                    object: Object::Layer(Box::new(layer)),
                    unknown_fields: Vec::new(),
                }),
                Err(e) => Err(e.to_string()),
            }
        }
        (Some(api_version), Some(kind)) if UnreadKind::of(api_version, kind).is_some() => {
            let meta = &value["metadata"];
            Ok(Decoded {
                object: Object::Unread {
                    kind: UnreadKind::of(api_version, kind).unwrap_or(&layers::UNREAD_KINDS[0]),
                    namespace: meta["namespace"].as_str().unwrap_or_default().to_string(),
                    name: meta["name"].as_str().unwrap_or_default().to_string(),
                },
                unknown_fields: Vec::new(),
            })
        }
        // another version of a layer kind: counted, and said to be unread
        (Some(api_version), Some(kind)) if LayerKind::named(kind).is_some() => other(format!(
            "{kind} ({api_version}, a version the guard does not read: the verdicts do not \
             know it)"
        )),
        (Some("v1"), Some(kind)) => other(kind.to_string()),
        (Some(api_version), Some(kind)) => other(format!("{kind} ({api_version})")),
    }
}

/// `spec.ingress[0].form`: the notation findings use.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// Decodes a typed object. Type errors name the field. Unknown fields are returned: the
/// API server drops them, and a dropped `podSelector` (say, misspelt `podSelectr`)
/// selects every pod.
fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> Result<(T, Vec<String>), String> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
    let de = serde_ignored::Deserializer::new(value, &mut record);
    let typed = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        format!("{path}: {}", e.into_inner())
    })?;
    Ok((typed, unknown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_stream_split_like_kubectl() {
        let text = "# leading comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n--- # second\nkind: Namespace\napiVersion: v1\nmetadata:\n  name: b\n---\n---\n# only a comment\n---\nkey: [unclosed\n---\nkind: ConfigMap\napiVersion: v1\n";
        let m = Manifest::parse("x.yaml", text);
        let summary: Vec<(usize, usize, bool)> = m
            .docs
            .iter()
            .map(|d| (d.index, d.line, d.parsed.is_ok()))
            .collect();
        assert_eq!(
            summary,
            vec![(1, 3, true), (2, 7, true), (3, 15, false), (4, 17, true)]
        );
        let err = m.docs[2].parsed.as_ref().expect_err("broken");
        assert_eq!(err.line, Some(16), "{err:?}");
        assert!(err.message.contains("at line 16 column 1"), "{err:?}");
        assert!(
            err.message.contains("flow sequence at line 15 column 6"),
            "{err:?}"
        );
        // leading comments are not the document's first line
        let m = Manifest::parse("x.yaml", "# one\n\n# two\nkind: A\n");
        assert_eq!(m.docs[0].line, 4);
        // the separator needs to be alone on its line
        let m = Manifest::parse("x.yaml", "a: |\n  ---x\nb: 1\n");
        assert_eq!(m.docs.len(), 1);
    }

    #[test]
    fn json_stream() {
        let m = Manifest::parse(
            "x.json",
            "{\"kind\": \"Namespace\", \"apiVersion\": \"v1\"}\n{\"a\": 1}\n{\"broken\": ",
        );
        assert_eq!(m.docs.len(), 3);
        assert!(m.docs[0].parsed.is_ok() && m.docs[1].parsed.is_ok());
        assert_eq!(m.docs[2].parsed.as_ref().expect_err("broken").line, Some(3));
    }

    #[test]
    fn unrendered_templates_are_named_as_such() {
        let m = Manifest::parse(
            "templates/netpol.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {{ include \"x.fullname\" . }}\nspec:\n  podSelector: {}\n",
        );
        let err = m.docs[0].parsed.as_ref().expect_err("a template");
        assert_eq!(err.line, Some(4));
        assert!(err.message.contains("helm template"), "{}", err.message);
        // braces in a comment, or in the data of a kind the guard does not judge, are data
        for (name, text) in [
            (
                "quoted alert text",
                "# {{ .Values.x }}\napiVersion: v1\nkind: ConfigMap\ndata:\n  alert: \"{{ $labels.pod }} down\"\n",
            ),
            (
                "PrometheusRule annotations, plain and block scalars",
                "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r}\nspec:\n  groups:\n  - name: g\n    rules:\n    - alert: PodDown\n      annotations:\n        summary: Pod {{ $labels.namespace }}/{{ $labels.pod }} is down\n        description: |\n          {{ $value }} restarts of {{ $labels.pod }}\n",
            ),
            (
                "an Istio config template",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio-sidecar-injector}\ndata:\n  config: |-\n    template: |\n      {{- if .Values.global.proxy }}\n      x: {{ .ProxyConfig.image }}\n      {{- end }}\n",
            ),
            (
                "a NetworkPolicy annotation (free text)",
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: a\n  annotations: {note: \"{{ .Values.x }} was here\"}\nspec: {podSelector: {}}\n",
            ),
        ] {
            let m = Manifest::parse("ok.yaml", text);
            assert!(m.docs[0].parsed.is_ok(), "{name}: {:?}", m.docs[0].parsed);
        }
        // a judged object with a template in a field that parses (quoted) is still one
        for text in [
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: \"{{ .Release.Name }}-web\"\nspec: {podSelector: {}}\n",
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: \"{{ .Values.ns }}\"}\n",
        ] {
            let m = Manifest::parse("t.yaml", text);
            let err = m.docs[0].parsed.as_ref().expect_err("a template");
            assert!(err.message.contains("unrendered"), "{}", err.message);
        }
        // a document that does not parse because of a template says so, whatever its kind
        let m = Manifest::parse(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name }}\n",
        );
        let err = m.docs[0].parsed.as_ref().expect_err("a template");
        assert_eq!(err.line, Some(4));
        assert!(err.message.contains("unrendered"), "{}", err.message);
    }

    #[test]
    fn decode_by_api_version_and_kind() {
        let v = |s: &str| serde_yaml_ng::from_str::<Value>(s).expect("yaml");
        assert!(matches!(
            decode(&v(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}"
            )),
            Ok(Decoded {
                object: Object::NetworkPolicy(_),
                ..
            })
        ));
        assert!(matches!(
            decode(&v("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}")),
            Ok(Decoded {
                object: Object::Namespace(_),
                ..
            })
        ));
        match decode(&v("apiVersion: example.com/v1\nkind: NetworkPolicy")) {
            Ok(Decoded {
                object: Object::Other { kind },
                ..
            }) => assert_eq!(kind, "NetworkPolicy (example.com/v1)"),
            other => panic!("{other:?}"),
        }
        // Calico's own policies are not read, but their existence is
        match decode(&v(
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: a, namespace: b}",
        )) {
            Ok(Decoded {
                object:
                    Object::Unread {
                        kind,
                        namespace,
                        name,
                    },
                ..
            }) => assert_eq!(
                (kind.label, namespace.as_str(), name.as_str()),
                ("Calico NetworkPolicy", "b", "a")
            ),
            other => panic!("{other:?}"),
        }
        let err = decode(&v("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nspec: {egress: [{ports: [{port: [1]}]}]}")).expect_err("bad type");
        assert!(err.starts_with("spec.egress[0].ports[0].port"), "{err}");
        assert!(decode(&v("[1, 2]")).is_err());
        let err = decode(&v(
            "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: a}",
        ))
        .expect_err("removed API");
        assert!(err.contains("networking.k8s.io/v1"), "{err}");
        // unknown fields are reported, and the object decodes as the API server stores it
        let decoded = decode(&v("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}\nspec: {podSelectr: {matchLabels: {app: a}}, ingress: [{form: []}]}"))
            .expect("decodes");
        assert_eq!(
            decoded.unknown_fields,
            ["spec.podSelectr", "spec.ingress[0].form"]
        );
        assert!(
            decode(&v("apiVersion: v1"))
                .expect_err("no kind")
                .contains("kind")
        );
        assert!(
            decode(&v("kind: NetworkPolicy"))
                .expect_err("no apiVersion")
                .contains("apiVersion")
        );
        assert!(
            matches!(decode(&v("replicas: 3")), Ok(Decoded { object: Object::Other { kind }, .. }) if kind == NOT_AN_OBJECT)
        );
        assert!(list_items(&v("kind: List\nitems: [{a: 1}]")).is_some());
    }
}
