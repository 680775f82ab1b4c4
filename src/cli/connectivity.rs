//! `netpol-guard connectivity list|diff|explain`: manifests read, the engine asked, the
//! answer rendered, the exit code.

use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;

use crate::cli::args::{
    ConnectivityDiffArgs, ConnectivityExplainArgs, ConnectivityListArgs, DiffFailOn,
};
use crate::connectivity::{End, Network, Workload, engine};
use crate::netpol::tiers::{self, Isolated, Pod, Say};
use crate::offline::check::{self, Problem};
use crate::offline::connectivity::{self as view, Format, Loaded};
use crate::offline::manifest::Manifest;

/// Reads manifests; problems go to stderr and make the exit code 2.
fn load(paths: &[String], namespace: &str) -> Loaded {
    let (manifests, mut problems) = check::load(paths);
    if manifests.is_empty() && problems.is_empty() {
        problems.push(Problem {
            file: paths.join(" "),
            document: None,
            line: None,
            message: "no input: no *.yaml, *.yml or *.json file found".into(),
        });
    }
    let mut loaded = view::input_of(&manifests, namespace);
    loaded.problems.splice(0..0, problems);
    loaded
}

fn report(loaded: &Loaded) {
    let mut stderr = std::io::stderr().lock();
    for p in &loaded.problems {
        let _ = writeln!(stderr, "error: {p}");
    }
    if !loaded.layers.is_empty() {
        let _ = writeln!(
            stderr,
            "note: the input holds policy layer objects (AdminNetworkPolicy, Cilium, ...): \
             `explain` with a port asks them, the listing and the diff apply NetworkPolicy only"
        );
    }
    if !loaded.host_network.is_empty() {
        let _ = writeln!(
            stderr,
            "note: left out, on the node's network (hostNetwork), which NetworkPolicy does not police: {}",
            loaded.host_network.join(", ")
        );
    }
}

fn problems_code(loaded: &[&Loaded]) -> Option<ExitCode> {
    loaded
        .iter()
        .any(|l| !l.problems.is_empty())
        .then(|| ExitCode::from(2))
}

pub(super) fn list(args: ConnectivityListArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(&args.paths, &args.input.namespace);
    report(&loaded);
    let network = Network::new(&loaded.input);
    let rows = view::rows(&network.connectivity(), &args.focus);
    std::io::stdout()
        .lock()
        .write_all(view::render_list(&rows, args.format).as_bytes())?;
    Ok(problems_code(&[&loaded]).unwrap_or(ExitCode::SUCCESS))
}

pub(super) fn diff(args: ConnectivityDiffArgs) -> anyhow::Result<ExitCode> {
    let head_paths = vec![args.head.display().to_string()];
    let head = load(&head_paths, &args.input.namespace);
    let base = if std::path::Path::new(&args.base).is_dir() {
        load(std::slice::from_ref(&args.base), &args.input.namespace)
    } else {
        let manifests: Vec<Manifest> = match view::at_revision(&args.base, &args.head) {
            Ok(m) => m,
            Err(e) => {
                eprintln!(
                    "error: --base {}: not a directory, and not a git revision: {e:#}",
                    args.base
                );
                return Ok(ExitCode::from(2));
            }
        };
        view::input_of(&manifests, &args.input.namespace)
    };
    report(&base);
    report(&head);
    let (b, h) = (Network::new(&base.input), Network::new(&head.input));
    let ranges = Network::ranges(&[&b, &h]);
    let both = engine::together(&[&b, &h], &ranges);
    let changes = view::diff(
        &view::rows(&both[0], &args.focus),
        &view::rows(&both[1], &args.focus),
    );
    std::io::stdout()
        .lock()
        .write_all(view::render_diff(&changes, args.format).as_bytes())?;
    if let Some(code) = problems_code(&[&base, &head]) {
        return Ok(code);
    }
    let failing = match args.fail_on {
        None => false,
        Some(DiffFailOn::Removed) => changes.iter().any(|c| !c.lost().is_empty()),
        Some(DiffFailOn::Added) => changes.iter().any(|c| !c.gained().is_empty()),
        Some(DiffFailOn::Any) => !changes.is_empty(),
    };
    Ok(if failing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A workload (`namespace/name`, or a `name` only one namespace has) or an address.
fn resolve<'a>(loaded: &'a Loaded, text: &str) -> Result<End<'a>, String> {
    let workloads = &loaded.input.workloads;
    if let Some(i) = workloads.iter().position(|w| w.id() == text) {
        return Ok(End::Workload(i, &workloads[i]));
    }
    let by_name: Vec<usize> = (0..workloads.len())
        .filter(|&i| workloads[i].name == text)
        .collect();
    match by_name.as_slice() {
        [i] => return Ok(End::Workload(*i, &workloads[*i])),
        [] => {}
        many => {
            let ids: Vec<String> = many.iter().map(|&i| workloads[i].id()).collect();
            return Err(format!(
                "{text:?} is the name of {}: write NAMESPACE/NAME",
                ids.join(", ")
            ));
        }
    }
    let address = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<ipnet::IpNet>().ok().map(|n| n.network()));
    if let Some(ip) = address {
        return Ok(End::Address(ip));
    }
    let mut known: Vec<String> = workloads
        .iter()
        .map(crate::connectivity::Workload::id)
        .collect();
    known.truncate(10);
    Err(format!(
        "no workload {text:?} in the input, and not an IP address (workloads: {}{})",
        known.join(", "),
        if workloads.len() > 10 { ", ..." } else { "" }
    ))
}

pub(super) fn explain(args: ConnectivityExplainArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(&args.files, &args.input.namespace);
    report(&loaded);
    if let Some(code) = problems_code(&[&loaded]) {
        return Ok(code);
    }
    let probe = match args.port.as_deref().map(view::parse_port).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let (src, dst) = match (resolve(&loaded, &args.src), resolve(&loaded, &args.dst)) {
        (Ok(s), Ok(d)) => (s, d),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let network = Network::new(&loaded.input);
    let explanation = network.explain(src, dst);
    let name = |end: &End<'_>| match end {
        End::Workload(_, w) => w.id(),
        End::Address(ip) => ip.to_string(),
    };
    let format = if args.format == Format::Json {
        Format::Json
    } else {
        Format::Text
    };
    let mut text = view::render_explain(&name(&src), &name(&dst), &explanation, probe, format);
    let mut allowed = match probe {
        Some((p, n)) => explanation.allows(p, n),
        None => !explanation.allowed.is_empty(),
    };
    if let (Some((protocol, port)), End::Workload(_, s), End::Workload(_, d)) = (probe, src, dst)
        && !loaded.layers.is_empty()
    {
        let layered = layered(&loaded, (s, d), (protocol, port), &explanation);
        allowed = layered.allowed;
        text = layered.render(&name(&src), &name(&dst), &text, probe, format);
    }
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What the policy layers say of one connection between two workloads, side by side with
/// NetworkPolicy's answer.
struct Layered {
    /// The layers' say on the source's egress and the destination's ingress.
    egress: Say,
    ingress: Say,
    /// Whether NetworkPolicy alone allows it.
    network_policy_allows: bool,
    /// The answer across the tiers.
    allowed: bool,
}

fn layered(
    loaded: &Loaded,
    (src, dst): (&Workload, &Workload),
    (protocol, port): (crate::netpol::ports::Protocol, u16),
    explanation: &engine::Explanation,
) -> Layered {
    let (src_ns, dst_ns) = (
        loaded.input.namespace_labels(&src.namespace),
        loaded.input.namespace_labels(&dst.namespace),
    );
    fn at<'p>(w: &'p Workload, ns: &'p crate::netpol::selector::Labels) -> Pod<'p> {
        Pod {
            namespace: &w.namespace,
            namespace_labels: ns,
            labels: &w.labels,
            ports: &w.ports,
            ips: &w.ips,
        }
    }
    let (a, b) = (at(src, &src_ns), at(dst, &dst_ns));
    let isolated = |side: &engine::Side| match side {
        engine::Side::Open => Isolated::No,
        engine::Side::Isolated { .. } => Isolated::ByNetworkPolicy,
    };
    let (egress, ingress) = tiers::between(
        &loaded.layers,
        (&a, &b),
        (i32::from(port), protocol),
        (
            isolated(&explanation.egress),
            isolated(&explanation.ingress),
        ),
    );
    let side_allows = |side: &engine::Side| side.ports().contains(protocol, port);
    let side = |say: &Say, np: bool| match say {
        Say::Allowed(_) => true,
        Say::Denied(_) => false,
        Say::Depends(_) | Say::Open(_) => np,
    };
    let allowed = side(&egress, side_allows(&explanation.egress))
        && side(&ingress, side_allows(&explanation.ingress));
    Layered {
        egress,
        ingress,
        network_policy_allows: explanation.allows(protocol, port),
        allowed,
    }
}

impl Layered {
    fn render(
        &self,
        src: &str,
        dst: &str,
        network_policy: &str,
        probe: Option<(crate::netpol::ports::Protocol, u16)>,
        format: Format,
    ) -> String {
        let say = |s: &Say| -> serde_json::Value {
            match s {
                Say::Allowed(by) => serde_json::json!({"decision": "allowed", "by": by.text}),
                Say::Denied(by) => serde_json::json!({"decision": "denied", "by": by.text}),
                Say::Depends(c) => serde_json::json!({"decision": "depends", "condition": c}),
                Say::Open(Some(m)) => {
                    serde_json::json!({"decision": "networkpolicy", "condition": format!("unless {} ({}) applies: {}", m.by, m.action.as_str(), m.condition)})
                }
                Say::Open(None) => serde_json::json!({"decision": "networkpolicy"}),
            }
        };
        if format == Format::Json {
            let mut v: serde_json::Value = serde_json::from_str(network_policy).unwrap_or_default();
            v["networkPolicyAllows"] = self.network_policy_allows.into();
            v["allowed"] = self.allowed.into();
            v["layers"] =
                serde_json::json!({"egress": say(&self.egress), "ingress": say(&self.ingress)});
            return format!("{v}\n");
        }
        let on = probe.map_or_else(String::new, |(p, n)| format!(" on {n}/{p}"));
        let verdict = if self.allowed { "allowed" } else { "denied" };
        let mut out = format!("{src} -> {dst}{on}: {verdict}\n");
        for (label, s) in [
            (format!("egress of {src}"), &self.egress),
            (format!("ingress of {dst}"), &self.ingress),
        ] {
            let line = match s {
                Say::Allowed(by) => format!("allowed by {by}, before any NetworkPolicy"),
                Say::Denied(by) => format!("denied by {by}, which no NetworkPolicy can override"),
                Say::Depends(c) => format!("NetworkPolicy decides unless the layers do: {c}"),
                Say::Open(Some(m)) => format!(
                    "NetworkPolicy decides, unless {} ({}) applies: {}",
                    m.by,
                    m.action.as_str(),
                    m.condition
                ),
                Say::Open(None) => "no layer decides: NetworkPolicy does".to_string(),
            };
            out.push_str(&format!("  {label}: {line}\n"));
        }
        out.push_str("  what NetworkPolicy alone says:\n");
        for line in network_policy.lines() {
            out.push_str(&format!("    {line}\n"));
        }
        out
    }
}
