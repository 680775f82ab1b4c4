//! The command line: the flags ([`args`]) and the dispatch of subcommands.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::Config;
use crate::rules::CATALOG;

pub(crate) mod args;
mod audit;
mod check;
mod connectivity;
pub mod telemetry;

pub use args::{Cli, Command, CompanionsCommand, ConnectivityCommand};

/// The manual: `netpol-guard.1` on stdout, or with `--out DIR` that page and one per
/// subcommand (`netpol-guard-check.1`, ...) written there.
fn man(args: &args::ManArgs) -> anyhow::Result<ExitCode> {
    let command = <Cli as clap::CommandFactory>::command();
    let Some(dir) = &args.out else {
        let mut out = Vec::new();
        clap_mangen::Man::new(command).render(&mut out)?;
        std::io::stdout().lock().write_all(&out)?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut pages = vec![("netpol-guard".to_string(), command.clone())];
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("netpol-guard-{}", sub.get_name());
        pages.push((
            name.clone(),
            sub.clone()
                .version(args::VERSION)
                .display_name(name)
                .bin_name(format!("netpol-guard {}", sub.get_name())),
        ));
    }
    for (name, page) in pages {
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out)?;
        let file = dir.join(format!("{name}.1"));
        std::fs::write(&file, out).with_context(|| format!("writing {}", file.display()))?;
        eprintln!("wrote {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(crate::webhook::serve::run(*args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs(args) => {
            let bundle = crate::webhook::certs::generate(&args.dns, &args.ip, args.days)?;
            crate::webhook::certs::write(&bundle, &args.out)?;
            eprintln!(
                "wrote {0}/ca.crt, {0}/tls.crt and {0}/tls.key; caBundle for the webhook configurations:",
                args.out.display()
            );
            println!("{}", crate::webhook::certs::ca_bundle(&bundle));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => check::run(args),
        Command::Completions(args) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(
                args.shell,
                &mut command,
                "netpol-guard",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(args) => man(&args),
        Command::Connectivity(command) => match command {
            ConnectivityCommand::List(args) => connectivity::list(args),
            ConnectivityCommand::Diff(args) => connectivity::diff(args),
            ConnectivityCommand::Explain(args) => connectivity::explain(args),
        },
        Command::Audit(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(audit::run(args))
        }
        Command::Companions(CompanionsCommand::Plan(args)) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(audit::plan(args))
        }
        Command::Rules(args) => {
            let text = match args.format {
                args::RulesFormat::Text => catalog_text(),
                args::RulesFormat::Markdown => catalog_markdown(),
            };
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `netpol-guard rules`: one line per rule.
fn catalog_text() -> String {
    CATALOG
        .iter()
        .map(|rule| {
            format!(
                "{:<34} {:<5} {:<13} {}\n",
                rule.id,
                rule.default_severity,
                rule.applies_to(),
                rule.summary
            )
        })
        .collect()
}

/// `netpol-guard rules --format markdown`: the catalog table that docs/rules.md and the
/// README carry (a test keeps both in step with it). Each id links to its section.
pub fn catalog_markdown() -> String {
    let mut out = String::from(
        "| rule | default | applies to | what it catches |\n| --- | --- | --- | --- |\n",
    );
    for rule in CATALOG {
        let level = if rule.configurable() {
            rule.default_severity.to_string()
        } else {
            format!("{} (fixed)", rule.default_severity)
        };
        out.push_str(&format!(
            "| [`{id}`](#{id}) | {level} | {} | {} |\n",
            rule.applies_to(),
            rule.summary.replace('|', "\\|"),
            id = rule.id,
        ));
    }
    out
}

/// The rule configuration of `--config`, or the embedded default; an unusable file is
/// reported on stderr and is exit code 2.
pub(super) fn load_config(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    match path.map(Config::load) {
        None => Ok(Config::default()),
        Some(Ok(config)) => Ok(config),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod flag_tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_guards_namespace_is_one_flag_under_its_old_name_too() {
        for flag in ["--guard-namespace", "--pod-namespace"] {
            let cli = Cli::try_parse_from(["netpol-guard", "serve", flag, "platform"]);
            match cli.map(|c| c.command) {
                Ok(Command::Serve(args)) => assert_eq!(args.guard_namespace, "platform", "{flag}"),
                other => panic!("{flag}: {other:?}"),
            }
        }
        let cli = Cli::try_parse_from(["netpol-guard", "audit", "--guard-namespace", "platform"]);
        match cli.map(|c| c.command) {
            Ok(Command::Audit(args)) => assert_eq!(args.cluster.guard_namespace, "platform"),
            other => panic!("{other:?}"),
        }
    }
}
