use std::process::ExitCode;

use clap::Parser;

// mimalloc: reviews allocate many small strings; it cut the review of the request mix by
// ~14% and the 7 MiB worst case by half against the system allocator (BENCHMARKS.md), and
// it spares the static musl image musl's slow allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = netpol_guard::cli::Cli::parse();
    let _logs = netpol_guard::cli::telemetry::init(cli.log_format, &cli.log_level);
    match netpol_guard::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
