use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = netpol_guard::cli::Cli::parse();
    let _logs = netpol_guard::telemetry::init(cli.log_format, &cli.log_level);
    match netpol_guard::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
