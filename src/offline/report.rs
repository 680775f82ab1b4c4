//! Check reports for people (text), for tools (JSON) and for code scanning (SARIF 2.1.0).

use serde_json::{Value, json};

use crate::offline::check::{ObjectReport, Report};
use crate::rules::{CATALOG, Finding, Severity};

/// Output formats of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
    /// GitHub Actions workflow commands: annotations on the changed lines of a pull request.
    Github,
}

/// Renders a report.
pub(crate) fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => text(report),
        Format::Json => {
            serde_json::to_string_pretty(&json_value(report)).unwrap_or_default() + "\n"
        }
        Format::Sarif => serde_json::to_string_pretty(&sarif(report)).unwrap_or_default() + "\n",
        Format::Github => github(report),
    }
}

/// Escapes a workflow command's message (`%`, line breaks) or, with `property`, one of its
/// properties (also `:` and `,`).
fn escape(text: &str, property: bool) -> String {
    let mut out = text
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    if property {
        out = out.replace(':', "%3A").replace(',', "%2C");
    }
    out
}

/// `::error file=F,line=L,col=C,title=T::message` per finding (`::warning` for warn), and
/// per unreadable input; then the text summary line.
pub(crate) fn github(report: &Report) -> String {
    let mut out = String::new();
    for (o, f) in report.findings() {
        let command = match f.severity {
            Severity::Deny => "error",
            Severity::Warn => "warning",
        };
        let (line, column) = at(o, f).map_or((o.source.line.max(1), 1), |p| p);
        out.push_str(&format!(
            "::{command} file={},line={line},col={column},title={}::{}\n",
            escape(&o.source.file, true),
            escape(&format!("netpol-guard {}", f.rule), true),
            escape(
                &format!(
                    "{} {} at {}: {}\nfix: {}",
                    o.kind,
                    o.qualified_name(),
                    f.path,
                    f.message,
                    f.fix
                ),
                false
            ),
        ));
    }
    for p in &report.problems {
        out.push_str(&format!(
            "::error file={},line={},title=netpol-guard::{}\n",
            escape(&p.file, true),
            p.line.unwrap_or(1),
            escape(&p.message, false)
        ));
    }
    let summary = text(report);
    out.push_str(summary.lines().last().unwrap_or_default());
    out.push('\n');
    out
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `1 file`, `2 files`.
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Findings grouped by object, then input problems, then a summary line.
pub(crate) fn text(report: &Report) -> String {
    let mut out = String::new();
    for object in report.objects.iter().filter(|o| !o.findings.is_empty()) {
        out.push_str(&format!(
            "{} {} {}\n",
            object.source,
            object.kind,
            object.qualified_name()
        ));
        for (i, f) in object.findings.iter().enumerate() {
            let line = object
                .position(i)
                .map_or_else(String::new, |(l, c)| format!(" (line {l}, column {c})"));
            out.push_str(&format!(
                "  {:<4}  {}  at {}{line}\n",
                f.severity, f.rule, f.path
            ));
            out.push_str(&indent(&f.message, "        "));
            out.push('\n');
            out.push_str(&indent(&format!("fix: {}", f.fix), "        "));
            out.push_str("\n\n");
        }
    }
    for (o, s) in report.suppressed() {
        out.push_str(&format!(
            "{} {} {}/{}\n  suppressed  {}  at {} ({}: {})\n\n",
            o.source,
            o.kind,
            o.namespace,
            o.name,
            s.finding.rule,
            s.finding.path,
            crate::rules::suppress::REASON_ANNOTATION,
            s.reason
        ));
    }
    for p in &report.problems {
        out.push_str(&format!("error: {p}\n"));
    }
    out.push_str(&text_summary(report));
    out
}

/// The closing lines of the text report: what was resolved elsewhere or acknowledged, and
/// what was checked where, with the counts.
fn text_summary(report: &Report) -> String {
    let mut out = String::new();
    let skipped = if report.skipped.is_empty() {
        String::new()
    } else {
        format!(
            "; skipped {}",
            report
                .skipped
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let resolved = report.resolved().count();
    if resolved > 0 {
        out.push_str(&format!(
            "{resolved} finding{} resolved by policies in other files (--format json lists them; \
             --scope directory or file narrows the context)\n",
            if resolved == 1 { " was" } else { "s were" }
        ));
    }
    let suppressed = report.suppressed().count();
    if suppressed > 0 {
        out.push_str(&format!(
            "{} acknowledged by netpol-guard.io/ignore (listed above, not counted)\n",
            counted(suppressed, "finding", "findings")
        ));
    }
    let policies = report
        .objects
        .iter()
        .filter(|o| o.kind == "NetworkPolicy")
        .count();
    let layers = match report.objects.len() - policies {
        0 => String::new(),
        n => format!(
            ", {}",
            counted(n, "policy layer object", "policy layer objects")
        ),
    };
    out.push_str(&format!(
        "checked {}{layers} and {} in {}: {} deny, {} warn, {}{skipped}\n",
        counted(policies, "NetworkPolicy", "NetworkPolicies"),
        counted(report.namespaces, "Namespace", "Namespaces"),
        checked_where(report),
        report.count(Severity::Deny),
        report.count(Severity::Warn),
        counted(report.problems.len(), "error", "errors"),
    ));
    out
}

/// `3 files`, `1 file (with 2 other files for context)`, or `the cluster`.
fn checked_where(report: &Report) -> String {
    // objects audited in a cluster come from no file
    let from_cluster = report.files == 0 && report.objects.iter().all(|o| o.source.document == 0);
    if from_cluster && !report.objects.is_empty() {
        "the cluster".to_string()
    } else if report.context_files > 0 {
        format!(
            "{} (with {} for context)",
            counted(report.files, "file", "files"),
            counted(report.context_files, "other file", "other files")
        )
    } else {
        counted(report.files, "file", "files")
    }
}

/// `{"findings": [...], "errors": [...], "summary": {...}}`
pub(crate) fn json_value(report: &Report) -> Value {
    let findings: Vec<Value> = report
        .findings()
        .map(|(o, f)| {
            let (line, column) = at(o, f).map_or((o.source.line, None), |(l, c)| (l, Some(c)));
            json!({
                "rule": f.rule,
                "severity": f.severity,
                "file": o.source.file,
                "document": o.source.document,
                "item": o.source.item,
                // the finding's field, or the document's first line when the file does not say
                "line": line,
                "column": column,
                "kind": o.kind,
                "namespace": o.namespace,
                "name": o.name,
                "path": f.path,
                "message": f.message,
                "fix": f.fix,
                // set when the finding holds only if something the manifest cannot show does
                "condition": f.condition,
            })
        })
        .collect();
    let resolved: Vec<Value> = report
        .resolved()
        .map(|(o, r)| {
            json!({
                "rule": r.rule,
                "file": o.source.file,
                "line": o.source.line,
                "namespace": o.namespace,
                "name": o.name,
                "path": r.path,
                "message": r.message,
                "resolvedBy": r.by,
            })
        })
        .collect();
    json!({
        "findings": findings,
        "resolved": resolved,
        "errors": report.problems,
        "summary": {
            "files": report.files,
            "contextFiles": report.context_files,
            "networkPolicies": report.objects.len(),
            "namespaces": report.namespaces,
            "deny": report.count(Severity::Deny),
            "warn": report.count(Severity::Warn),
            "errors": report.problems.len(),
            "resolved": report.resolved().count(),
            "suppressed": report.suppressed().count(),
            "skipped": report.skipped,
            "exitCode": report.exit_code(),
        }
    })
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Deny => "error",
        Severity::Warn => "warning",
    }
}

/// SARIF 2.1.0, as GitHub code scanning accepts it.
pub(crate) fn sarif(report: &Report) -> Value {
    let rules: Vec<Value> = CATALOG
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.summary},
                "helpUri": format!("https://github.com/netpol-guard/netpol-guard/blob/main/docs/rules.md#{}", r.id),
                "defaultConfiguration": {"level": level(r.default_severity)},
            })
        })
        .collect();
    let mut results: Vec<Value> = finding_results(report).collect();
    results.extend(resolved_results(report));
    results.extend(suppressed_results(report));
    // Unreadable input fails the run; SARIF carries it as a tool notification.
    let notifications: Vec<Value> = report
        .problems
        .iter()
        .map(|p| {
            json!({
                "level": "error",
                "message": {"text": p.message},
                "locations": [location(&p.file, p.line.unwrap_or(1))],
            })
        })
        .collect();
    results.sort_by_key(|r| r["ruleIndex"].as_u64());
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "netpol-guard",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/netpol-guard/netpol-guard",
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": report.problems.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }]
    })
}

fn rule_index(rule: &str) -> usize {
    CATALOG.iter().position(|r| r.id == rule).unwrap_or(0)
}

/// Each finding as a result at its field, with a fingerprint that survives line moves.
fn finding_results(report: &Report) -> impl Iterator<Item = Value> + '_ {
    report.findings().map(|(o, f)| {
        json!({
            "ruleId": f.rule,
            "ruleIndex": rule_index(f.rule),
            "level": level(f.severity),
            "message": {"text": format!(
                "{} {}/{}: {}: {} Fix: {}",
                o.kind, o.namespace, o.name, f.path, f.message, f.fix
            )},
            "locations": [match at(o, f) {
                Some((line, column)) => location_at(&o.source.file, line, Some(column)),
                None => location(&o.source.file, o.source.line),
            }],
            "partialFingerprints": {
                "netpolGuard/v1": format!("{}/{}/{}/{}/{}", f.rule, o.kind, o.namespace, o.name, f.path),
            },
            "properties": {"condition": f.condition},
        })
    })
}

/// Acknowledged in the manifest: results with an in-source suppression, as code scanning
/// shows them (dismissed, with the justification).
fn suppressed_results(report: &Report) -> impl Iterator<Item = Value> + '_ {
    report.suppressed().map(|(o, s)| {
        let f = &s.finding;
        json!({
            "ruleId": f.rule,
            "ruleIndex": rule_index(f.rule),
            "level": level(f.severity),
            "message": {"text": format!(
                "{} {}/{}: {}: {}", o.kind, o.namespace, o.name, f.path, f.message
            )},
            "locations": [location(&o.source.file, o.source.line)],
            "suppressions": [{"kind": "inSource", "justification": s.reason}],
        })
    })
}

/// What another file of the scope resolved, as passing results that name the covering
/// policy and its file.
fn resolved_results(report: &Report) -> impl Iterator<Item = Value> + '_ {
    report.resolved().map(|(o, r)| {
        let by: Vec<String> =
            r.by.iter()
                .map(|c| format!("{} ({})", c.name, c.file))
                .collect();
        json!({
            "ruleId": r.rule,
            "ruleIndex": CATALOG.iter().position(|c| c.id == r.rule).unwrap_or(0),
            "kind": "pass",
            "level": "none",
            "message": {"text": format!(
                "{} {}/{}: {}: resolved by {}: {}",
                o.kind, o.namespace, o.name, r.path,
                if by.is_empty() { "other files".to_string() } else { by.join(", ") },
                r.message
            )},
            "locations": [location(&o.source.file, o.source.line)],
            "properties": {"resolvedBy": r.by},
        })
    })
}

fn location(file: &str, line: usize) -> Value {
    location_at(file, line, None)
}

/// A SARIF location: the file, relative as given, and the region's start.
fn location_at(file: &str, line: usize, column: Option<usize>) -> Value {
    let uri = if file == "-" {
        "stdin"
    } else {
        file.trim_start_matches("./")
    };
    let mut region = json!({"startLine": line.max(1)});
    if let Some(column) = column {
        region["startColumn"] = json!(column.max(1));
    }
    json!({
        "physicalLocation": {
            "artifactLocation": {"uri": uri},
            "region": region,
        }
    })
}

/// The (line, column) of a finding of `object` in its file, when known.
fn at(object: &ObjectReport, finding: &Finding) -> Option<(usize, usize)> {
    let i = object
        .findings
        .iter()
        .position(|f| std::ptr::eq(f, finding))?;
    object.position(i)
}
