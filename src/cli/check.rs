//! `netpol-guard check`: the files read, `--fix` applied, the report rendered, the exit code.

use std::io::Write;

use anyhow::Context as _;
use std::process::ExitCode;

use crate::cli::args::{CheckArgs, DnsPresetArg, FailOn};
use crate::config::Config;
use crate::netpol::dns::DnsPreset;
use crate::offline::check;
use crate::offline::manifest::Manifest;
use crate::offline::report;

/// Applies the DNS fixes as text edits, emits them as asked (the fixed file, the files
/// written in place, or diffs) and lists each fix on stderr. Returns the manifests as
/// fixed, for the report, and whether anything changed.
fn fix_and_emit(
    manifests: &[Manifest],
    config: &Config,
    args: &CheckArgs,
) -> anyhow::Result<(Vec<Manifest>, bool)> {
    let missing = check::missing_dns(
        manifests,
        config,
        &args.namespace,
        args.scope,
        args.ip_families.into(),
    );
    let fixes = crate::offline::fix::fix_files(manifests, &missing);
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    for fix in &fixes {
        for object in &fix.applied {
            writeln!(
                stderr,
                "fixed {}: NetworkPolicy {object} (egress-missing-dns: DNS rule added)",
                fix.file
            )?;
        }
        for (object, why) in &fix.refused {
            writeln!(
                stderr,
                "not fixed {}: NetworkPolicy {object}: {why}",
                fix.file
            )?;
        }
        if args.write && fix.fixed != fix.original && fix.file != "-" {
            std::fs::write(&fix.file, &fix.fixed)
                .with_context(|| format!("writing {}", fix.file))?;
        }
        if args.diff {
            stdout.write_all(crate::offline::fix::diff(fix).as_bytes())?;
        }
    }
    let fixed: Vec<Manifest> = manifests
        .iter()
        .map(|m| match fixes.iter().find(|f| f.file == m.file) {
            Some(f) if f.fixed != f.original => Manifest {
                context: m.context,
                patch_of: m.patch_of.clone(),
                ..Manifest::parse(m.file.clone(), &f.fixed)
            },
            _ => m.clone(),
        })
        .collect();
    if !args.write && !args.diff {
        for m in fixed.iter().filter(|m| !m.context) {
            stdout.write_all(m.text.as_bytes())?;
        }
    }
    let changed = fixes.iter().any(|f| f.fixed != f.original);
    Ok((fixed, changed))
}

pub(super) fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut config = match super::load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    if let Some(preset) = args.dns_preset {
        let preset = match preset {
            DnsPresetArg::Kubernetes => DnsPreset::Kubernetes,
            DnsPresetArg::Openshift => DnsPreset::Openshift,
        };
        config.dns = preset.apply(&config.dns);
    }
    let (mut manifests, mut problems) = check::load_with_context(&args.paths, &args.context);
    let judged = manifests.iter().filter(|m| !m.context).count();
    if judged == 0 && problems.is_empty() && !args.allow_empty {
        problems.push(check::Problem {
            file: args.paths.join(" "),
            document: None,
            line: None,
            message: "no input: no *.yaml, *.yml or *.json file found (a mistyped path? \
                      --allow-empty accepts that)"
                .into(),
        });
    }
    // --fix --diff exits 1 when there is a diff, as `git diff --exit-code` does
    let mut diffed = false;
    if args.fix {
        if !args.write && !args.diff && judged > 1 {
            eprintln!(
                "error: --fix prints one fixed file; for {judged} files use --fix --write (in \
                 place) or --fix --diff"
            );
            return Ok(ExitCode::from(2));
        }
        let (fixed, changed) = fix_and_emit(&manifests, &config, &args)?;
        manifests = fixed;
        diffed = args.diff && changed;
    }
    // named after any --fix (which never writes standard input to a file)
    if let Some(name) = &args.stdin_filename {
        for m in manifests.iter_mut().filter(|m| m.file == "-") {
            m.file.clone_from(name);
        }
        for p in problems.iter_mut().filter(|p| p.file == "-") {
            p.file.clone_from(name);
        }
    }
    let mut report = check::analyze_scoped(
        &manifests,
        &config,
        &args.namespace,
        args.scope,
        args.ip_families.into(),
    );
    report.problems.splice(0..0, problems);
    let rendered = report::render(&report, args.format);
    if args.fix {
        std::io::stderr().lock().write_all(rendered.as_bytes())?;
    } else {
        std::io::stdout().lock().write_all(rendered.as_bytes())?;
    }
    let fail_on = match args.fail_on {
        FailOn::Deny => crate::rules::Severity::Deny,
        FailOn::Warn => crate::rules::Severity::Warn,
    };
    let code = report.exit_code_failing_on(fail_on);
    Ok(ExitCode::from(if code == 0 && diffed { 1 } else { code }))
}
