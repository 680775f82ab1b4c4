//! Structured logs with tracing: text for people, JSON for log pipelines. The level comes
//! from `RUST_LOG` when set, else from `--log-level`.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keeps the background log writer running; dropping it writes the remaining lines.
pub type LogGuard = Flusher;

/// Installs the global subscriber (once; later calls are ignored). Lines are written by a
/// background thread in batches (see [`Batched`]), so a request never waits on a `write`
/// to stderr nor wakes a thread per line; keep the returned guard alive until exit.
pub fn init(format: LogFormat, level: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (writer, guard) = batched(std::io::stderr());
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

/// Lines held at most, in bytes; beyond it lines are dropped (and counted in a note) rather
/// than memory growing when stderr blocks.
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// How long the writer thread waits after the first line of a batch for more to join it.
const BATCH_DELAY: Duration = Duration::from_millis(5);

/// Lines waiting for the writer thread.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    dropped: u64,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // a panic while holding the lock leaves plain bytes behind: keep going
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A log writer that appends each line to a buffer under a lock and lets one background
/// thread write the buffer out: the thread is woken once per batch (when a line arrives in
/// an empty buffer), waits [`BATCH_DELAY`] for more, and writes them with one call. Lines
/// stay whole: each `write` is one formatted event.
#[derive(Debug, Clone)]
pub struct Batched {
    shared: Arc<Shared>,
}

impl std::io::Write for Batched {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.shared.lock();
        if pending.bytes.len() + line.len() > MAX_PENDING {
            pending.dropped += 1;
        } else {
            let was_empty = pending.bytes.is_empty();
            pending.bytes.extend_from_slice(line);
            if was_empty {
                self.shared.ready.notify_one();
            }
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Batched {
    type Writer = Batched;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Writes what is pending and stops the writer thread when dropped.
#[derive(Debug)]
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A [`Batched`] writer into `out`, and the guard that flushes it.
pub fn batched<W: std::io::Write + Send + 'static>(mut out: W) -> (Batched, Flusher) {
    let shared = Arc::new(Shared::default());
    let writer = Batched {
        shared: shared.clone(),
    };
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                let mut batch = Vec::new();
                loop {
                    let (dropped, closed) = {
                        let mut pending = shared.lock();
                        while pending.bytes.is_empty() && !pending.closed {
                            pending = shared
                                .ready
                                .wait(pending)
                                .unwrap_or_else(PoisonError::into_inner);
                        }
                        if !pending.closed {
                            // let the lines of the next few milliseconds join this batch
                            drop(pending);
                            std::thread::sleep(BATCH_DELAY);
                            pending = shared.lock();
                        }
                        std::mem::swap(&mut batch, &mut pending.bytes);
                        (std::mem::take(&mut pending.dropped), pending.closed)
                    };
                    if dropped > 0 {
                        let _ = writeln!(
                            out,
                            "netpol-guard: {dropped} log lines dropped (stderr did not keep up)"
                        );
                    }
                    let _ = out.write_all(&batch);
                    let _ = out.flush();
                    batch.clear();
                    if closed {
                        break;
                    }
                }
            })
            .ok()
    };
    (writer, Flusher { shared, thread })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A sink the test can read.
    #[derive(Debug, Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_whole_and_in_order_by_the_time_the_guard_drops() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        w.write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8_000);
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("thread {t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..2_000).collect::<Vec<_>>(), "thread {t}");
        }
    }

    #[test]
    fn lines_beyond_the_bound_are_dropped_and_counted() {
        /// A sink that blocks until told to go on, like a stderr nobody reads.
        #[derive(Debug)]
        struct Stuck(Arc<(Mutex<bool>, Condvar)>, Sink);
        impl std::io::Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let (go, cv) = &*self.0;
                let mut go = go.lock().unwrap();
                while !*go {
                    go = cv.wait(go).unwrap();
                }
                self.1.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Sink::default();
        let (mut writer, guard) = batched(Stuck(gate.clone(), sink.clone()));
        // the first line is taken by the writer thread, which then blocks on it
        writer.write_all(b"first\n").unwrap();
        std::thread::sleep(BATCH_DELAY * 4);
        let mut line = vec![b'x'; 1023];
        line.push(b'\n');
        let fits = MAX_PENDING / 1024;
        for _ in 0..fits + 10 {
            writer.write_all(&line).unwrap();
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("first\n"));
        assert!(text.contains("log lines dropped"), "{}", &text[..200]);
        assert!(text.len() <= MAX_PENDING + 1024, "{}", text.len());
    }
}
