use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = netpol_guard::cli::Cli::parse();
    match netpol_guard::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
