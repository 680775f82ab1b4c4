//! The batching log writer beside `tracing-appender`'s non-blocking writer, in one sitting:
//! the same JSON review lines (the router's fields) from two threads, through each writer to
//! /dev/null, counting wall time, the process's CPU time and the lines written.
//!
//! `cargo bench --bench logs` (`-- --smoke` for a short run). The writer is kept only if it
//! is measurably cheaper; BENCHMARKS.md has the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tracing::Dispatch;

/// /dev/null, counting what reaches it.
#[derive(Clone)]
struct Null(Arc<AtomicUsize>, Arc<std::fs::File>);

impl Write for Null {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(
            buf.iter().filter(|b| **b == b'\n').count(),
            Ordering::Relaxed,
        );
        (&*self.1).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn null() -> Null {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    Null(Arc::new(AtomicUsize::new(0)), Arc::new(file))
}

/// User plus system CPU time of this process, every thread (from /proc/self/stat, in
/// clock ticks of 10 ms: the runs are long enough for that to be under 1%).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // the fields after the command name, which is in parentheses and may hold spaces
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

fn json_dispatch<W>(writer: W) -> Dispatch
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .finish(),
    )
}

/// Emits `lines` review lines from each of `threads` threads through `dispatch`.
fn emit(dispatch: &Dispatch, threads: usize, lines: usize) {
    std::thread::scope(|s| {
        for t in 0..threads {
            let dispatch = dispatch.clone();
            s.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..lines {
                        tracing::info!(
                            endpoint = "validate",
                            uid = "705ab4f5-6393-11e8-b7cc-42010a800002",
                            kind = "NetworkPolicy",
                            operation = "CREATE",
                            namespace = "shop",
                            name = "web-egress",
                            dry_run = false,
                            decision = "denied",
                            rules = "egress-missing-dns",
                            elapsed_us = (i + t) as u64,
                            "reviewed"
                        );
                    }
                });
            });
        }
    });
}

struct Run {
    wall: Duration,
    cpu: Duration,
    written: usize,
}

fn batched(threads: usize, lines: usize) -> Run {
    let sink = null();
    let count = sink.0.clone();
    let (wall, cpu_used) = {
        let (writer, guard) = netpol_guard::cli::telemetry::batched(sink);
        let dispatch = json_dispatch(writer);
        let (start, cpu0) = (Instant::now(), cpu());
        emit(&dispatch, threads, lines);
        drop(guard); // the remaining lines written
        (start.elapsed(), cpu() - cpu0)
    };
    Run {
        wall,
        cpu: cpu_used,
        written: count.load(Ordering::Relaxed),
    }
}

fn appender(threads: usize, lines: usize) -> Run {
    let sink = null();
    let count = sink.0.clone();
    let (wall, cpu_used) = {
        // the default: lossy with 128k lines buffered, as a production setup would run it
        let (writer, guard) = tracing_appender::non_blocking(sink);
        let dispatch = json_dispatch(writer);
        let (start, cpu0) = (Instant::now(), cpu());
        emit(&dispatch, threads, lines);
        drop(guard);
        (start.elapsed(), cpu() - cpu0)
    };
    Run {
        wall,
        cpu: cpu_used,
        written: count.load(Ordering::Relaxed),
    }
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (rounds, lines) = if smoke { (1, 20_000) } else { (7, 200_000) };
    let threads = 2;
    println!(
        "{threads} threads x {lines} JSON review lines to /dev/null, {rounds} interleaved rounds"
    );
    let mut results: [(&str, Vec<Run>); 2] =
        [("batched", Vec::new()), ("tracing-appender", Vec::new())];
    for _ in 0..rounds {
        results[0].1.push(batched(threads, lines));
        results[1].1.push(appender(threads, lines));
    }
    for (name, runs) in &mut results {
        runs.sort_by_key(|r| r.cpu);
        let median = &runs[runs.len() / 2];
        let total = (threads * lines) as f64;
        println!(
            "{name:<17} CPU {:>6.0} ns/line (median; min {:.0}, max {:.0})  wall {:>6.0} ns/line  written {}/{}",
            median.cpu.as_nanos() as f64 / total,
            runs[0].cpu.as_nanos() as f64 / total,
            runs[runs.len() - 1].cpu.as_nanos() as f64 / total,
            median.wall.as_nanos() as f64 / total,
            median.written,
            threads * lines,
        );
    }
}
