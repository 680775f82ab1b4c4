//! `netpol-guard connectivity list|diff|explain`: manifests read, the engine asked, the
//! answer rendered, the exit code.

use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;

use crate::cli::args::{
    ConnectivityDiffArgs, ConnectivityExplainArgs, ConnectivityListArgs, DiffFailOn,
};
use crate::connectivity::{End, Network, engine};
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
    let text = view::render_explain(&name(&src), &name(&dst), &explanation, probe, format);
    std::io::stdout().lock().write_all(text.as_bytes())?;
    let allowed = match probe {
        Some((p, n)) => explanation.allows(p, n),
        None => !explanation.allowed.is_empty(),
    };
    Ok(if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
