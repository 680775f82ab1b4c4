//! Structured logs with tracing: text for people, JSON for log pipelines. The level comes
//! from `RUST_LOG` when set, else from `--log-level`.

use tracing_subscriber::EnvFilter;

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keeps the background log writer running; dropping it flushes the remaining lines.
pub type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// Installs the global subscriber (once; later calls are ignored). Lines are written by a
/// background thread through a buffer, so a request never waits on a `write` to stderr;
/// keep the returned guard alive until exit.
pub fn init(format: LogFormat, level: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    guard
}
