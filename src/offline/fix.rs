//! `check --fix` as text edits: the DNS allowance is inserted into the file's text where it
//! belongs (appended to `spec.egress`, or as a new `egress` of `spec`), in the style around
//! it (a block list item indented like its siblings, or a flow item inside `[...]`), and
//! every other byte of the file stays as it was: comments, key order, quoting, anchors,
//! line endings. An edit is kept only if the edited document parses to exactly the old
//! object with the rule appended.

use serde_json::Value;

use crate::offline::check::Missing;
use crate::offline::manifest::Manifest;
use crate::offline::positions::Positions;

/// Text to insert into a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Insertion {
    /// 1-based line of the file.
    pub line: usize,
    /// Where on the line: before this 1-based column (in characters), or after the whole
    /// line when `None` (the text then is whole lines).
    pub column: Option<usize>,
    /// The text, with `\n` line breaks (written with the file's own).
    pub text: String,
}

/// The leading spaces of a line.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// The last line (0-based) of the block that starts with the key on line `key_line` at
/// indentation `key_indent`: the block goes on while lines are blank, comments, indented
/// deeper, or list items (`-`) at the key's own indentation.
fn block_end(lines: &[&str], key_line: usize, key_indent: usize) -> usize {
    let mut last = key_line;
    for (i, line) in lines.iter().enumerate().skip(key_line + 1) {
        if !is_content(line) {
            continue;
        }
        let n = indent(line);
        let item = n == key_indent && line.trim_start().starts_with('-');
        if n <= key_indent && !item {
            break;
        }
        last = i;
    }
    last
}

/// A value in YAML flow style on one line: `{to: [{podSelector: {}}], ports: [...]}`.
/// Strings are written plain where YAML reads them back as the same string, quoted
/// otherwise.
pub(crate) fn flow(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", scalar(k), flow(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        Value::String(s) => scalar(s),
        other => other.to_string(),
    }
}

fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && serde_yaml_ng::from_str::<Value>(s).ok() == Some(Value::String(s.to_string()));
    if plain {
        s.to_string()
    } else {
        Value::String(s.to_string()).to_string()
    }
}

/// The rule as block YAML list item lines, each indented by `indent` spaces.
fn block_item(rule: &Value, indent: usize) -> String {
    let yaml = serde_yaml_ng::to_string(&[rule]).unwrap_or_default();
    yaml.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(indent)))
        .collect()
}

/// Where and what to insert into one document (`raw`, whose first line is line `start` of
/// the file) to append `rule` to the egress rules of its object (`item` of a List).
pub(crate) fn plan(
    raw: &str,
    start: usize,
    item: Option<usize>,
    rule: &Value,
) -> Option<Insertion> {
    let doc = Document {
        positions: Positions::of(raw),
        prefix: item.map_or_else(String::new, |i| format!("items[{}].", i - 1)),
        lines: raw.lines().collect(),
        start,
    };
    let egress = format!("{}spec.egress", doc.prefix);
    if doc.positions.span(&egress).is_some() {
        return doc.append_to_egress(&egress, rule);
    }
    if doc.positions.get(&egress).is_some() {
        // `egress:` with no list (null, an alias): not edited
        return None;
    }
    doc.add_egress_to_spec(rule)
}

/// One document being edited, with the positions of its fields.
struct Document<'a> {
    positions: Positions,
    /// The object's path within the document (`items[N].` in a List).
    prefix: String,
    lines: Vec<&'a str>,
    /// The file's line of the document's first line.
    start: usize,
}

impl Document<'_> {
    fn file_line(&self, l: usize) -> usize {
        self.start + l - 1
    }

    fn char_at(&self, p: crate::offline::positions::Position) -> Option<char> {
        self.lines
            .get(p.line - 1)
            .and_then(|l| l.chars().nth(p.column - 1))
    }

    /// `rule` appended to the existing egress list (at `egress`), flow or block.
    fn append_to_egress(&self, egress: &str, rule: &Value) -> Option<Insertion> {
        let span = self.positions.span(egress)?;
        if self.char_at(span.end) == Some(']') {
            // flow: before the closing bracket
            let inside: String = self
                .lines
                .get(span.end.line - 1)?
                .chars()
                .take(span.end.column - 1)
                .collect();
            let empty = inside.trim_end().ends_with('[');
            let sep = if empty { "" } else { ", " };
            return Some(Insertion {
                line: self.file_line(span.end.line),
                column: Some(span.end.column),
                text: format!("{sep}{}", flow(rule)),
            });
        }
        // block: after the last line of the list, at its items' indentation
        let key = self.positions.get(egress)?;
        let key_line = key.line - 1;
        let end = block_end(&self.lines, key_line, key.column - 1);
        let dash = self
            .lines
            .get(key_line + 1..=end)?
            .iter()
            .find(|l| l.trim_start().starts_with('-'))
            .map(|l| indent(l))?;
        Some(Insertion {
            line: self.file_line(end + 1),
            column: None,
            text: block_item(rule, dash),
        })
    }

    /// A new `egress` list holding `rule`, added to the spec (flow or block).
    fn add_egress_to_spec(&self, rule: &Value) -> Option<Insertion> {
        let prefix = &self.prefix;
        let spec = format!("{prefix}spec");
        let span = self.positions.span(&spec)?;
        if self.char_at(span.end) == Some('}') {
            return Some(Insertion {
                line: self.file_line(span.end.line),
                column: Some(span.end.column),
                text: format!(", egress: [{}]", flow(rule)),
            });
        }
        // a new `egress:` key after spec's last line, at its keys' indentation
        let key = self.positions.get(&spec)?;
        let child = self
            .positions
            .get(&format!("{prefix}spec.podSelector"))
            .or_else(|| self.positions.get(&format!("{prefix}spec.policyTypes")))?;
        let end = block_end(&self.lines, key.line - 1, key.column - 1);
        let pad = " ".repeat(child.column - 1);
        Some(Insertion {
            line: self.file_line(end + 1),
            column: None,
            text: format!("{pad}egress:\n{}", block_item(rule, child.column - 1)),
        })
    }
}

/// The file's text with the insertions made, in its own line endings.
pub(crate) fn apply(text: &str, insertions: &[Insertion]) -> String {
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut sorted: Vec<&Insertion> = insertions.iter().collect();
    // from the end of the file backwards, so earlier positions stay valid
    sorted.sort_by_key(|i| (std::cmp::Reverse(i.line), std::cmp::Reverse(i.column)));
    let mut lines: Vec<String> = text.split_inclusive('\n').map(String::from).collect();
    for ins in sorted {
        let Some(line) = lines.get_mut(ins.line - 1) else {
            continue;
        };
        match ins.column {
            Some(column) => {
                let at = line
                    .char_indices()
                    .nth(column - 1)
                    .map_or(line.len(), |(i, _)| i);
                line.insert_str(at, &ins.text);
            }
            None => {
                if !line.ends_with('\n') {
                    line.push_str(newline);
                }
                let added = ins.text.replace('\n', newline);
                lines.insert(ins.line, added);
            }
        }
    }
    lines.concat()
}

/// What `--fix` did to one file.
#[derive(Debug, Clone)]
pub(crate) struct FileFix {
    pub file: String,
    pub original: String,
    /// The edited text (the original when nothing could be edited).
    pub fixed: String,
    /// `namespace/name` of each policy that got the rule.
    pub applied: Vec<String>,
    /// `namespace/name` and why of each policy left for a hand edit.
    pub refused: Vec<(String, String)>,
}

/// The object a document or `List` item holds, to compare before and after an edit.
fn target(doc: &mut Value, item: Option<usize>) -> Option<&mut Value> {
    match item {
        Some(i) => doc.get_mut("items")?.get_mut(i - 1),
        None => Some(doc),
    }
}

/// Whether the edited file parses to exactly the old documents with the rule appended to
/// the egress of each fixed object.
fn verified(old: &Manifest, fixed: &str, planned: &[&Missing]) -> bool {
    let new = Manifest::parse(old.file.clone(), fixed);
    if new.docs.len() != old.docs.len() {
        return false;
    }
    old.docs
        .iter()
        .zip(&new.docs)
        .enumerate()
        .all(|(d, (before, after))| {
            let (Ok(before_value), Ok(after)) = (&before.parsed, &after.parsed) else {
                // a document that does not parse must come back as it was
                return before.parsed.is_err() && after.parsed.is_err() && before.raw == after.raw;
            };
            let before = before_value;
            let mut expected = before.clone();
            for m in planned.iter().filter(|m| m.document == d) {
                let Some(spec) = expected
                    .as_mut()
                    .and_then(|v| target(v, m.item))
                    .and_then(|o| o.get_mut("spec"))
                    .and_then(Value::as_object_mut)
                else {
                    return false;
                };
                match spec
                    .entry("egress")
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    Value::Array(rules) => rules.push(m.rule.clone()),
                    _ => return false,
                }
            }
            &expected == after
        })
}

/// Plans, applies and verifies the DNS fixes of every file.
pub(crate) fn fix_files(manifests: &[Manifest], missing: &[Missing]) -> Vec<FileFix> {
    let mut out = Vec::new();
    for (m, manifest) in manifests.iter().enumerate() {
        let mine: Vec<&Missing> = missing.iter().filter(|x| x.manifest == m).collect();
        if mine.is_empty() {
            continue;
        }
        let name = |x: &Missing| format!("{}/{}", x.namespace, x.name);
        let mut fix = FileFix {
            file: manifest.file.clone(),
            original: manifest.text.clone(),
            fixed: manifest.text.clone(),
            applied: Vec::new(),
            refused: Vec::new(),
        };
        let mut planned = Vec::new();
        let mut insertions = Vec::new();
        // YAML ends a line at a bare CR too; the edits count lines by LF (found by fuzzing)
        let bare_cr = manifest
            .text
            .as_bytes()
            .windows(2)
            .any(|w| w[0] == b'\r' && w[1] != b'\n')
            || manifest.text.ends_with('\r');
        for x in mine {
            let planned_here = match manifest.docs.get(x.document) {
                _ if bare_cr => {
                    Err("its file ends lines with a bare CR, which netpol-guard does not edit")
                }
                Some(doc) => plan(&doc.raw, doc.start, x.item, &x.rule).ok_or(
                    "its egress is not a list netpol-guard can edit in place (an alias or null)",
                ),
                None => Err("its document could not be found again"),
            };
            match planned_here {
                Ok(ins) => {
                    insertions.push(ins);
                    planned.push(x);
                }
                Err(why) => fix.refused.push((name(x), why.into())),
            }
        }
        let fixed = apply(&manifest.text, &insertions);
        if verified(manifest, &fixed, &planned) {
            fix.fixed = fixed;
            fix.applied = planned.iter().map(|x| name(x)).collect();
        } else {
            fix.refused.extend(planned.iter().map(|x| {
                (
                    name(x),
                    "the edited file would not read back as intended; add the rule by hand".into(),
                )
            }));
        }
        out.push(fix);
    }
    out
}

/// A unified diff of one file's fix.
pub(crate) fn diff(fix: &FileFix) -> String {
    similar::TextDiff::from_lines(&fix.original, &fix.fixed)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{}", fix.file), &format!("b/{}", fix.file))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule() -> Value {
        json!({"ports": [{"port": 53, "protocol": "UDP"}],
               "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]})
    }

    fn fixed(text: &str) -> String {
        let ins = plan(text, 1, None, &rule()).expect("a plan");
        apply(text, &[ins])
    }

    #[test]
    fn flow_values_read_back_as_themselves() {
        let v = json!({"a": ["x", "53", 53, "yes", "", "k8s-app", "a b", true, null]});
        let back: Value = serde_yaml_ng::from_str(&flow(&v)).expect("YAML");
        assert_eq!(back, v, "{}", flow(&v));
    }

    #[test]
    fn block_list_gets_an_item_like_its_siblings() {
        let text = "spec:\n  podSelector: {}\n  egress:\n  # keep me\n  - to: [{podSelector: {}}]\n    ports: [{port: 5432}]\n\n  policyTypes: [Egress]\n";
        let out = fixed(text);
        assert!(out.starts_with("spec:\n  podSelector: {}\n  egress:\n  # keep me\n  - to: [{podSelector: {}}]\n    ports: [{port: 5432}]\n  - ports:\n"), "{out}");
        assert!(out.ends_with("\n\n  policyTypes: [Egress]\n"), "{out}");
        let v: Value = serde_yaml_ng::from_str(&out).expect("YAML");
        assert_eq!(v["spec"]["egress"][1], rule());
    }

    #[test]
    fn flow_list_and_flow_spec_stay_flow() {
        let out = fixed("spec: {podSelector: {}, egress: [{to: [{podSelector: {}}]}]}  # note\n");
        assert!(
            out.ends_with("]}]}  # note\n") && out.lines().count() == 1,
            "{out}"
        );
        let v: Value = serde_yaml_ng::from_str(&out).expect("YAML");
        assert_eq!(v["spec"]["egress"][1], rule());
        let out = fixed("spec: {podSelector: {}, policyTypes: [Egress]}\n");
        let v: Value = serde_yaml_ng::from_str(&out).expect("YAML");
        assert_eq!(v["spec"]["egress"], json!([rule()]));
        let out = fixed("spec:\n  podSelector: {}\n  egress: []\n");
        let v: Value = serde_yaml_ng::from_str(&out).expect("YAML");
        assert_eq!(v["spec"]["egress"], json!([rule()]));
    }

    #[test]
    fn missing_egress_becomes_a_key_of_spec() {
        let text = "metadata: {name: p}\nspec:\n    podSelector: {}\n    policyTypes:\n    - Egress\nstatus: {}\n";
        let out = fixed(text);
        assert!(
            out.contains("    - Egress\n    egress:\n    - ports:\n"),
            "{out}"
        );
        assert!(out.ends_with("status: {}\n"));
        let v: Value = serde_yaml_ng::from_str(&out).expect("YAML");
        assert_eq!(v["spec"]["egress"], json!([rule()]));
    }

    /// Found by fuzzing: YAML ends lines at a bare CR, `str::lines` does not; the block
    /// list's end was looked up past the document's lines and panicked.
    #[test]
    fn bare_cr_line_ends_are_not_planned_past_the_text() {
        let text = "spec:\r  podSelector: {}\r  egress:\r  - to: []\r";
        assert!(plan(text, 1, None, &rule()).is_none());
    }

    #[test]
    fn crlf_files_keep_crlf() {
        let text = "spec:\r\n  podSelector: {}\r\n  egress:\r\n  - to: []\r\n";
        let positions_text = text.replace("\r\n", "\n");
        let ins = plan(&positions_text, 1, None, &rule()).expect("plan");
        let out = apply(text, &[ins]);
        assert!(!out.replace("\r\n", "").contains('\n'), "{out:?}");
        let v: Value = serde_yaml_ng::from_str(&out).expect("YAML");
        assert_eq!(v["spec"]["egress"][1], rule());
    }
}
