//! Load benchmark of the webhook: the release binary behind TLS, fed AdmissionReview v1
//! requests over keep-alive HTTPS connections, beside a baseline (the same binary with
//! `--baseline`: same transport, no decoding beyond the uid, no rules) in the same run.
//!
//! Open loop at fixed rates: latency runs from each request's scheduled send time, so a
//! stalled server cannot hide queueing (no coordinated omission). Saturation is closed loop.
//!
//! ```sh
//! cargo bench --bench load                      # the full run, about 3 minutes
//! cargo bench --bench load -- --smoke           # a few seconds, what CI runs
//! cargo bench --bench load -- --soak 600        # RSS over a 10-minute soak at 2k/s
//! ```
//! Options: `--rates 1000,5000,10000`, `--seconds 10`, `--connections 16`, `--out FILE`,
//! `--server-cpus 1` (servers under `taskset`; run the generator with `taskset -c 0`),
//! `--binary PATH` (repeatable: measure these builds instead of this one, e.g. of several
//! commits, in one run; the baseline then runs first and last and the ratio uses the mean),
//! `--rounds N` (saturation only, the baseline and each binary in turn N times; medians of
//! the per-round ratios, for machines whose speed drifts during a run),
//! and for profiling one side: `--skip-baseline`, `--skip-worst-case`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use tokio::sync::{Mutex, mpsc};

use netpol_guard_testkit as common;
use netpol_guard_testkit::mix::{Req, mix, worst_case};

const BIN: &str = env!("CARGO_BIN_EXE_netpol-guard");

#[derive(Debug, Clone)]
struct Options {
    smoke: bool,
    rates: Vec<u64>,
    seconds: u64,
    connections: usize,
    soak: Option<u64>,
    out: Option<PathBuf>,
    skip_baseline: bool,
    skip_worst_case: bool,
    /// Run the servers on these CPUs (`taskset -c`), e.g. "1", so the generator can have
    /// the others.
    server_cpus: Option<String>,
    /// The netpol-guard binaries to measure (default: this build's), each beside the
    /// baseline of the first, to compare builds of several commits in one run.
    binaries: Vec<PathBuf>,
    /// Interleaved saturation rounds instead of the phases: each round measures the
    /// baseline and every binary once, and the ratios are the medians over rounds (on a
    /// machine whose speed drifts, as shared VMs do).
    rounds: usize,
}

fn options() -> Options {
    let mut o = Options {
        smoke: false,
        rates: vec![1000, 5000, 10000],
        seconds: 10,
        connections: 16,
        soak: None,
        out: None,
        skip_baseline: false,
        skip_worst_case: false,
        server_cpus: None,
        binaries: Vec::new(),
        rounds: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--smoke" => o.smoke = true,
            "--rates" => {
                o.rates = args
                    .next()
                    .unwrap()
                    .split(',')
                    .map(|r| r.parse().unwrap())
                    .collect()
            }
            "--seconds" => o.seconds = args.next().unwrap().parse().unwrap(),
            "--connections" => o.connections = args.next().unwrap().parse().unwrap(),
            "--soak" => o.soak = Some(args.next().unwrap().parse().unwrap()),
            "--out" => o.out = Some(args.next().unwrap().into()),
            // for profiling one side
            "--skip-baseline" => o.skip_baseline = true,
            "--skip-worst-case" => o.skip_worst_case = true,
            "--server-cpus" => o.server_cpus = Some(args.next().unwrap()),
            "--binary" => o.binaries.push(args.next().unwrap().into()),
            "--rounds" => o.rounds = args.next().unwrap().parse().unwrap(),
            // cargo bench passes --bench; criterion-style filters are ignored
            _ => {}
        }
    }
    if o.smoke {
        o.rates = vec![500];
        o.seconds = 2;
        o.connections = 4;
    }
    o
}

/// A running server process.
struct Server {
    child: common::KillOnDrop,
    addr: SocketAddr,
}

async fn start(bin: &Path, dir: &Path, baseline: bool, cpus: Option<&str>) -> Server {
    let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let mut cmd = match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args([
        "serve",
        "--listen",
        &addr.to_string(),
        "--metrics-listen",
        &metrics.to_string(),
    ])
    .arg("--tls-cert")
    .arg(dir.join("tls.crt"))
    .arg("--tls-key")
    .arg(dir.join("tls.key"))
    .args(["--shutdown-delay", "0s", "--log-format", "json"])
    .env_remove("RUST_LOG")
    .stdout(Stdio::null())
    .stderr(
        std::fs::File::create(dir.join(if baseline {
            "baseline.log"
        } else {
            "guard.log"
        }))
        .unwrap(),
    );
    if baseline {
        cmd.arg("--baseline");
    }
    let server = Server {
        child: common::KillOnDrop(cmd.spawn().unwrap()),
        addr,
    };
    common::eventually("server ready", Duration::from_secs(10), || async move {
        common::get(metrics, "/readyz").await.0 == 200
    })
    .await;
    server
}

/// CPU seconds the process has used (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the command name, which is in parentheses and may contain spaces
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of /proc/PID/stat, 12 and 13 after the name
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (current RSS, peak RSS) in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (kib("VmRSS:"), kib("VmHWM:"))
}

type Sender = SendRequest<Full<Bytes>>;

async fn send(sender: &mut Sender, req: &Req) -> bool {
    if sender.ready().await.is_err() {
        return false;
    }
    let request = hyper::Request::post(req.path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(req.body.clone()))
        .unwrap();
    match sender.send_request(request).await {
        Ok(resp) => {
            let ok = resp.status() == 200;
            let body = resp.into_body().collect().await.map(|b| b.to_bytes());
            // every answer must carry a uid (the API server rejects it otherwise)
            ok && body.is_ok_and(|b| b.windows(7).any(|w| w == b"\"uid\":\""))
        }
        Err(_) => false,
    }
}

struct Phase {
    name: String,
    sent: u64,
    errors: u64,
    seconds: f64,
    latency: Histogram<u64>,
    cpu_per_request_us: f64,
}

impl Phase {
    fn row(&self) -> String {
        let q = |p: f64| self.latency.value_at_quantile(p) as f64 / 1000.0;
        format!(
            "| {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {} |",
            self.name,
            self.sent as f64 / self.seconds,
            q(0.5),
            q(0.99),
            q(0.999),
            self.latency.max() as f64 / 1000.0,
            self.cpu_per_request_us,
            self.errors
        )
    }
}

async fn connections(server: &Server, ca: &str, n: usize) -> Vec<Sender> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(common::client(server.addr, ca).await.unwrap());
    }
    out
}

/// Fixed-rate open loop over `conns` keep-alive connections.
async fn open_loop(
    server: &Server,
    ca: &str,
    name: &str,
    reqs: &[Req],
    rate: u64,
    seconds: u64,
    conns: usize,
) -> Phase {
    let senders = connections(server, ca, conns).await;
    let (tx, rx) = mpsc::channel::<(Instant, usize)>(1 << 20);
    let rx = Arc::new(Mutex::new(rx));
    let reqs: Arc<Vec<Req>> = Arc::new(reqs.to_vec());
    let cpu_before = cpu_seconds(server.child.0.id());
    let mut workers = Vec::new();
    for mut sender in senders {
        let rx = rx.clone();
        let reqs = reqs.clone();
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut errors = 0u64;
            loop {
                let job = rx.lock().await.recv().await;
                let Some((scheduled, i)) = job else { break };
                if !send(&mut sender, &reqs[i % reqs.len()]).await {
                    errors += 1;
                }
                hist.saturating_record(scheduled.elapsed().as_micros() as u64);
            }
            (hist, errors)
        }));
    }
    // Paced from an OS thread: tokio's timer has millisecond granularity, which would make
    // every request late by up to a millisecond before it is even sent.
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let total = rate * seconds;
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let at = start + period.mul_f64(i as f64);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if tx.blocking_send((at, i as usize)).is_err() {
                break;
            }
        }
    });
    tokio::task::spawn_blocking(move || pacer.join().unwrap())
        .await
        .unwrap();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut errors = 0;
    for w in workers {
        let (h, e) = w.await.unwrap();
        latency.add(h).unwrap();
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server.child.0.id()) - cpu_before;
    Phase {
        name: name.to_string(),
        sent: total,
        errors,
        seconds: elapsed.max(seconds as f64),
        latency,
        cpu_per_request_us: cpu / total as f64 * 1e6,
    }
}

/// Closed loop: every connection sends back to back for `seconds`.
async fn saturate(
    server: &Server,
    ca: &str,
    name: &str,
    reqs: &[Req],
    seconds: u64,
    conns: usize,
) -> Phase {
    let senders = connections(server, ca, conns).await;
    let reqs: Arc<Vec<Req>> = Arc::new(reqs.to_vec());
    let cpu_before = cpu_seconds(server.child.0.id());
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for (c, mut sender) in senders.into_iter().enumerate() {
        let reqs = reqs.clone();
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let (mut sent, mut errors, mut i) = (0u64, 0u64, c);
            while Instant::now() < end {
                let t = Instant::now();
                if !send(&mut sender, &reqs[i % reqs.len()]).await {
                    errors += 1;
                }
                hist.saturating_record(t.elapsed().as_micros() as u64);
                sent += 1;
                i += conns;
            }
            (hist, sent, errors)
        }));
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut sent, mut errors) = (0, 0);
    for w in workers {
        let (h, s, e) = w.await.unwrap();
        latency.add(h).unwrap();
        sent += s;
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server.child.0.id()) - cpu_before;
    Phase {
        name: name.to_string(),
        sent,
        errors,
        seconds: elapsed,
        latency,
        cpu_per_request_us: cpu / sent.max(1) as f64 * 1e6,
    }
}

/// Worst-case reviews one at a time, then `parallel` of them at once beside small requests.
async fn worst_case_phases(
    server: &Server,
    ca: &str,
    reqs: &[Req],
    o: &Options,
) -> (Phase, Phase, Phase) {
    let big = worst_case();
    let rounds = if o.smoke { 3 } else { 20 };
    let mut sender = common::client(server.addr, ca).await.unwrap();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut errors = 0;
    let cpu_before = cpu_seconds(server.child.0.id());
    let started = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        if !send(&mut sender, &big).await {
            errors += 1;
        }
        hist.saturating_record(t.elapsed().as_micros() as u64);
    }
    let single = Phase {
        name: format!(
            "worst case: {:.1} MiB UPDATE, one at a time",
            big.body.len() as f64 / 1048576.0
        ),
        sent: rounds,
        errors,
        seconds: started.elapsed().as_secs_f64(),
        latency: hist,
        cpu_per_request_us: (cpu_seconds(server.child.0.id()) - cpu_before) / rounds as f64 * 1e6,
    };

    // bursts: every second, four worst-case reviews at once, beside small requests at 1k/s;
    // the large bodies are sent from their own thread so their encryption cannot delay the
    // small requests in this process
    let burst = 4;
    let seconds = o.seconds.min(10);
    let addr = server.addr;
    let ca_owned = ca.to_string();
    let big_for_thread = big.clone();
    let bursts = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..burst {
                let mut sender = common::client(addr, &ca_owned).await.unwrap();
                let big = big_for_thread.clone();
                tasks.push(tokio::spawn(async move {
                    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                    let mut errors = 0u64;
                    for round in 0..seconds {
                        let at = start + Duration::from_secs(round);
                        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                        let t = Instant::now();
                        errors += u64::from(!send(&mut sender, &big).await);
                        hist.saturating_record(t.elapsed().as_micros() as u64);
                    }
                    (hist, errors)
                }));
            }
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut errors = 0u64;
            for t in tasks {
                let (h, e) = t.await.unwrap();
                hist.add(h).unwrap();
                errors += e;
            }
            (hist, errors)
        })
    });
    let small = open_loop(
        server,
        ca,
        &format!(
            "small requests at 1000/s beside bursts of {burst} worst-case reviews every second"
        ),
        reqs,
        1000,
        seconds,
        o.connections,
    )
    .await;
    let (hist, errors) = tokio::task::spawn_blocking(move || bursts.join().unwrap())
        .await
        .unwrap();
    let concurrent = Phase {
        name: format!("worst case, bursts of {burst} at once (latency of each)"),
        sent: hist.len(),
        errors,
        seconds: small.seconds,
        latency: hist,
        cpu_per_request_us: f64::NAN,
    };
    (single, small, concurrent)
}

fn table(title: &str, phases: &[Phase]) -> String {
    let mut s = format!(
        "\n### {title}\n\n| phase | requests/s | p50 ms | p99 ms | p99.9 ms | max ms | server CPU µs/request | errors |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for p in phases {
        s.push_str(&p.row());
        s.push('\n');
    }
    s
}

async fn run(o: Options) -> String {
    let dir = std::env::temp_dir().join(format!("netpol-guard-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let certs = Command::new(BIN)
        .args(["certs", "--out"])
        .arg(&dir)
        .args(["--dns", "localhost", "--ip", "127.0.0.1", "--days", "1"])
        .output()
        .unwrap();
    assert!(certs.status.success());
    let ca = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    let reqs = mix();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "netpol-guard load benchmark: {} cores, {} connections, {} s per phase, mix of {} request kinds",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        o.connections,
        o.seconds,
        reqs.len()
    );

    if let Some(seconds) = o.soak {
        let server = start(Path::new(BIN), &dir, false, o.server_cpus.as_deref()).await;
        let pid = server.child.0.id();
        let mut samples = Vec::new();
        let chunk = 10.min(seconds);
        for _ in 0..seconds / chunk {
            let phase = open_loop(&server, &ca, "soak", &reqs, 2000, chunk, o.connections).await;
            let (rss, peak) = rss_mib(pid);
            samples.push((rss, peak, phase.errors));
        }
        let _ = writeln!(
            report,
            "\n### soak at 2000/s for {seconds} s\n\n| after s | RSS MiB | peak RSS MiB | errors |\n| --- | --- | --- | --- |"
        );
        for (i, (rss, peak, errors)) in samples.iter().enumerate() {
            let _ = writeln!(
                report,
                "| {} | {rss:.1} | {peak:.1} | {errors} |",
                (i as u64 + 1) * chunk
            );
        }
        return report;
    }

    if o.rounds > 0 {
        report.push_str(&rounds(&o, &dir, &ca, &reqs).await);
        return report;
    }

    // the baseline first; with several binaries to compare, once more at the end, so that
    // a machine that speeds up or slows down during the run does not favour either side
    let binaries = if o.binaries.is_empty() {
        vec![PathBuf::from(BIN)]
    } else {
        o.binaries.clone()
    };
    let mut runs: Vec<(String, PathBuf, bool)> =
        vec![("baseline".into(), binaries[0].clone(), true)];
    for bin in &binaries {
        let label = if binaries.len() == 1 {
            "netpol-guard".to_string()
        } else {
            format!("netpol-guard {}", bin.display())
        };
        runs.push((label, bin.clone(), false));
    }
    if binaries.len() > 1 {
        runs.push(("baseline (again)".into(), binaries[0].clone(), true));
    }
    let mut summary = Vec::new();
    for (label, bin, baseline) in runs {
        let label = label.as_str();
        if baseline && o.skip_baseline {
            summary.push((label.to_string(), true, f64::NAN, 0));
            continue;
        }
        let server = start(&bin, &dir, baseline, o.server_cpus.as_deref()).await;
        let mut phases = Vec::new();
        for &rate in &o.rates {
            phases.push(
                open_loop(
                    &server,
                    &ca,
                    &format!("open loop {rate}/s"),
                    &reqs,
                    rate,
                    o.seconds,
                    o.connections,
                )
                .await,
            );
        }
        let sat = saturate(
            &server,
            &ca,
            "saturation (closed loop)",
            &reqs,
            o.seconds,
            o.connections,
        )
        .await;
        let (_, peak_saturation) = rss_mib(server.child.0.id());
        summary.push((
            label.to_string(),
            baseline,
            sat.sent as f64 / sat.seconds,
            sat.latency.value_at_quantile(0.99),
        ));
        phases.push(sat);
        if !baseline && !o.skip_worst_case {
            let (single, small, concurrent) = worst_case_phases(&server, &ca, &reqs, &o).await;
            phases.push(single);
            phases.push(small);
            phases.push(concurrent);
        }
        let (_, peak) = rss_mib(server.child.0.id());
        report.push_str(&table(
            &format!(
                "{label}: peak RSS {peak_saturation:.1} MiB through saturation, {peak:.1} MiB after all phases"
            ),
            &phases,
        ));
        let errors: u64 = phases.iter().map(|p| p.errors).sum();
        assert_eq!(errors, 0, "{label}: requests failed\n{report}");
    }
    let bases: Vec<_> = summary.iter().filter(|s| s.1).collect();
    let base_rate = bases.iter().map(|s| s.2).sum::<f64>() / bases.len() as f64;
    let base_p99 = bases.iter().map(|s| s.3 as f64).sum::<f64>() / bases.len() as f64;
    for (label, _, rate, p99) in summary.iter().filter(|s| !s.1) {
        let _ = writeln!(
            report,
            "\nsaturation throughput {label} / baseline: {rate:.0} / {base_rate:.0} = {:.2}; p99 at saturation {:.3} ms / {:.3} ms",
            rate / base_rate,
            *p99 as f64 / 1000.0,
            base_p99 / 1000.0
        );
    }
    report
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// `--rounds N`: saturation only, the baseline and each binary once per round, in turn.
async fn rounds(o: &Options, dir: &Path, ca: &str, reqs: &[Req]) -> String {
    let binaries = if o.binaries.is_empty() {
        vec![PathBuf::from(BIN)]
    } else {
        o.binaries.clone()
    };
    let mut runs = vec![(binaries[0].clone(), true)];
    runs.extend(binaries.iter().map(|b| (b.clone(), false)));
    // per run: (requests/s, server CPU µs/request, p99 ms) of each round
    let mut results: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); runs.len()];
    for _ in 0..o.rounds {
        for (i, (bin, baseline)) in runs.iter().enumerate() {
            let server = start(bin, dir, *baseline, o.server_cpus.as_deref()).await;
            let sat = saturate(&server, ca, "saturation", reqs, o.seconds, o.connections).await;
            assert_eq!(sat.errors, 0, "{}: requests failed", bin.display());
            results[i].push((
                sat.sent as f64 / sat.seconds,
                sat.cpu_per_request_us,
                sat.latency.value_at_quantile(0.99) as f64 / 1000.0,
            ));
        }
    }
    let mut out = format!(
        "\n### {} interleaved saturation rounds of {} s\n\n| server | requests/s (median) | server CPU µs/request (median) | p99 ms (median) | throughput / baseline of the same round (median, min–max) |\n| --- | --- | --- | --- | --- |\n",
        o.rounds, o.seconds
    );
    for (i, (bin, baseline)) in runs.iter().enumerate() {
        let label = if *baseline {
            "baseline".to_string()
        } else {
            bin.display().to_string()
        };
        let ratios: Vec<f64> = results[i]
            .iter()
            .zip(&results[0])
            .map(|(g, b)| g.0 / b.0)
            .collect();
        let (lo, hi) = ratios.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), r| {
            (lo.min(*r), hi.max(*r))
        });
        let _ = writeln!(
            out,
            "| {label} | {:.0} | {:.1} | {:.3} | {:.2} ({lo:.2}–{hi:.2}) |",
            median(results[i].iter().map(|r| r.0).collect()),
            median(results[i].iter().map(|r| r.1).collect()),
            median(results[i].iter().map(|r| r.2).collect()),
            median(ratios.clone()),
        );
    }
    out
}

fn main() {
    let o = options();
    // the client gets one core's worth of threads; the server has its own process
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(run(o.clone()));
    println!("{report}");
    if let Some(out) = o.out {
        std::fs::write(out, &report).unwrap();
    }
}
