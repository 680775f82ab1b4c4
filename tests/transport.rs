//! Transport behaviour over real TLS on an ephemeral port, with a client that verifies the
//! server against its CA: certificate and configuration reload, timeouts, shutdown.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use netpol_guard::webhook::certs::{self, Bundle};
use netpol_guard::webhook::serve::{ServeArgs, Webhook};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

mod common;
use common::{client, eventually, metric, metrics, post, tls_connect};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "netpol-guard-transport-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bundle() -> Bundle {
    certs::generate(&["localhost".into()], &["127.0.0.1".parse().unwrap()], 30).unwrap()
}

/// Writes a pair the way the kubelet mounts a Secret: `tls.crt -> ..data/tls.crt`, with
/// `..data` a symlink to a timestamped directory, swapped atomically on update.
fn publish(dir: &Path, cert_pem: &str, key_pem: &str, generation: u32) {
    let versioned = dir.join(format!("..{generation}"));
    std::fs::create_dir_all(&versioned).unwrap();
    std::fs::write(versioned.join("tls.crt"), cert_pem).unwrap();
    std::fs::write(versioned.join("tls.key"), key_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
}

fn args(dir: &Path) -> ServeArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        serve: ServeArgs,
    }
    let mut a = Wrapper::parse_from([
        "test",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--reload-interval",
        "50ms",
        "--handshake-timeout",
        "300ms",
        "--header-timeout",
        "300ms",
        "--body-timeout",
        "300ms",
        "--drain-timeout",
        "5s",
    ])
    .serve;
    a.tls_cert = Some(dir.join("tls.crt"));
    a.tls_key = Some(dir.join("tls.key"));
    a
}

/// Connections accepted on `port` that this process holds open: the sockets in
/// `/proc/net/tcp{,6}` bound locally to the port (not the listener itself) whose inode is
/// one of this process's descriptors. Client sockets (their local port is another) and
/// connections still in the kernel's backlog (no descriptor yet) are not counted, nor is
/// anything the tests running beside this one hold.
fn accepted_on(port: u16) -> usize {
    let ours: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|target| {
                    let t = target.to_string_lossy();
                    Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let listening = "0A";
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .map(|line| {
                    line.split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
        .filter(|cols| cols.len() > 9)
        .filter(|cols| {
            let local_port = cols[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && cols[3] != listening && ours.contains(&cols[9])
        })
        .count()
}

struct Running {
    addr: SocketAddr,
    metrics: SocketAddr,
    state: netpol_guard::runtime::state::SharedState,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

async fn start(args: ServeArgs) -> Running {
    let webhook = Webhook::bind(&args).await.unwrap();
    let (addr, metrics) = webhook.addresses().unwrap();
    let state = webhook.state.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(webhook.serve(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        metrics,
        state,
        stop: Some(tx),
        done,
    }
}

fn review(egress_dns_label: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "b1f5c0de-0000-4000-8000-000000000001",
            "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"},
            "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"},
            "name": "web", "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                         "egress": [{"to": [{"namespaceSelector": {"matchLabels": {egress_dns_label: "kube-system"}}}]}]}
            },
            "dryRun": false
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_on_secret_swap_and_a_broken_pair_keeps_the_old_one() {
    let dir = temp_dir("reload");
    let first = bundle();
    publish(&dir, &first.cert_pem, &first.key_pem, 1);
    let server = start(args(&dir)).await;

    // verified against its CA, and a client trusting another CA is refused
    let mut c = client(server.addr, &first.ca_pem)
        .await
        .expect("TLS with the first CA");
    let (status, v) = post(
        &mut c,
        "/validate?timeout=10s",
        review("kubernetes.io/metadata.name"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["response"]["uid"], "b1f5c0de-0000-4000-8000-000000000001");
    let second = bundle();
    assert!(client(server.addr, &second.ca_pem).await.is_err());
    let expiry_before = metric(
        &metrics(server.metrics).await,
        "netpol_guard_tls_certificate_expiry_timestamp_seconds",
    );
    assert!(expiry_before > 0.0);

    // the kubelet's ..data swap: new connections get the new certificate
    publish(&dir, &second.cert_pem, &second.key_pem, 2);
    eventually(
        "the second certificate in service",
        Duration::from_secs(5),
        || async { client(server.addr, &second.ca_pem).await.is_ok() },
    )
    .await;
    assert!(client(server.addr, &first.ca_pem).await.is_err());
    let text = metrics(server.metrics).await;
    assert_eq!(
        metric(&text, r#"netpol_guard_tls_reloads_total{result="success"}"#),
        1.0
    );
    // the connection opened before the swap keeps working
    let (status, _) = post(&mut c, "/validate", review("kubernetes.io/metadata.name")).await;
    assert_eq!(status, 200);

    // a key that does not fit the certificate is refused; the second pair stays
    publish(&dir, &first.cert_pem, &second.key_pem, 3);
    eventually(
        "the broken pair refused",
        Duration::from_secs(5),
        || async {
            metric(
                &metrics(server.metrics).await,
                r#"netpol_guard_tls_reloads_total{result="error"}"#,
            ) == 1.0
        },
    )
    .await;
    assert!(client(server.addr, &second.ca_pem).await.is_ok());
    assert!(client(server.addr, &first.ca_pem).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_reloads_and_a_broken_file_keeps_the_old_one() {
    let dir = temp_dir("config");
    let pair = bundle();
    publish(&dir, &pair.cert_pem, &pair.key_pem, 1);
    let config = dir.join("config.yaml");
    std::fs::write(&config, "rules: {}\n").unwrap();
    let mut a = args(&dir);
    a.config = Some(config.clone());
    let server = start(a).await;
    let mut c = client(server.addr, &pair.ca_pem).await.unwrap();
    let (_, v) = post(&mut c, "/validate", review("name")).await;
    assert_eq!(v["response"]["allowed"], false);

    std::fs::write(&config, "rules:\n  egress-missing-dns: warn\n").unwrap();
    eventually(
        "the new configuration in service",
        Duration::from_secs(5),
        || {
            let body = review("name");
            let addr = server.addr;
            let ca = pair.ca_pem.clone();
            async move {
                let mut c = client(addr, &ca).await.unwrap();
                post(&mut c, "/validate", body).await.1["response"]["allowed"] == true
            }
        },
    )
    .await;

    std::fs::write(&config, "rules:\n  no-such-rule: deny\n").unwrap();
    eventually(
        "the broken configuration refused",
        Duration::from_secs(5),
        || async {
            metric(
                &metrics(server.metrics).await,
                r#"netpol_guard_config_reloads_total{result="error"}"#,
            ) == 1.0
        },
    )
    .await;
    let (_, v) = post(&mut c, "/validate", review("name")).await;
    assert_eq!(
        v["response"]["allowed"], true,
        "the last good configuration stays"
    );
    assert_eq!(
        metric(
            &metrics(server.metrics).await,
            r#"netpol_guard_config_reloads_total{result="success"}"#
        ),
        1.0
    );
}

/// Reads until the peer closes the connection; returns how long that took.
async fn closed_within<S: AsyncReadExt + Unpin>(stream: &mut S, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server kept a slow connection open for {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let dir = temp_dir("slow");
    let pair = bundle();
    publish(&dir, &pair.cert_pem, &pair.key_pem, 1);
    let server = start(args(&dir)).await;

    // no TLS handshake at all
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_within(&mut tcp, Duration::from_secs(3)).await;
    assert!(took >= Duration::from_millis(250), "{took:?}");

    // headers that never finish
    let mut tls = tls_connect(server.addr, &pair.ca_pem).await.unwrap();
    tls.write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    closed_within(&mut tls, Duration::from_secs(3)).await;

    // a body that never finishes: 408
    let mut tls = tls_connect(server.addr, &pair.ca_pem).await.unwrap();
    tls.write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"apiVersion\":")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_and_closes_keep_alive_connections() {
    let dir = temp_dir("shutdown");
    let pair = bundle();
    publish(&dir, &pair.cert_pem, &pair.key_pem, 1);
    let mut server = start(args(&dir)).await;

    // an idle keep-alive connection, used once
    let mut idle = client(server.addr, &pair.ca_pem).await.unwrap();
    assert_eq!(post(&mut idle, "/validate", review("name")).await.0, 200);

    // a request in flight: headers and half of the body sent
    let body = review("name");
    let mut in_flight = tls_connect(server.addr, &pair.ca_pem).await.unwrap();
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(&body[..body.len() / 2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // no new connections
    assert!(client(server.addr, &pair.ca_pem).await.is_err());
    // the in-flight request completes
    in_flight.write_all(&body[body.len() / 2..]).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), in_flight.read_to_end(&mut response))
        .await
        .expect("in-flight request answered and connection closed")
        .ok();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("b1f5c0de-0000-4000-8000-000000000001"));
    tokio::time::timeout(Duration::from_secs(5), &mut server.done)
        .await
        .expect("server stopped")
        .unwrap();
    // the idle keep-alive connection was closed by the server
    assert!(idle.ready().await.is_err() || idle.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_large_bodies_hold_no_slot_and_answers_meet_the_deadline() {
    let dir = temp_dir("starve");
    let pair = bundle();
    publish(&dir, &pair.cert_pem, &pair.key_pem, 1);
    let mut a = args(&dir);
    a.body_timeout = Duration::from_secs(10);
    let server = start(a).await;

    // 20 clients announce 2 MiB bodies, send one byte, and stall
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut tls = tls_connect(server.addr, &pair.ca_pem).await.unwrap();
        tls.write_all(b"POST /validate?timeout=30s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\n\r\n{")
            .await
            .unwrap();
        stalled.push(tls);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // a real 1.5 MiB review, as the API server sends it with a 5 s deadline
    let object = common::mix::policy("big", true, 1_500_000);
    let body = common::Review::from_controller("NetworkPolicy", "CREATE", object).body();
    assert!(body.len() > 1024 * 1024, "{}", body.len());
    let mut c = client(server.addr, &pair.ca_pem).await.unwrap();
    let started = Instant::now();
    let (status, v) = post(&mut c, "/validate?timeout=5s", body).await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(v["response"]["uid"], common::UID);
    assert_eq!(v["response"]["allowed"], true, "{v}");
    assert!(took < Duration::from_secs(4), "answered after {took:?}");
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_to_the_metrics_port_cannot_starve_admission() {
    let dir = temp_dir("metrics-flood");
    let pair = bundle();
    publish(&dir, &pair.cert_pem, &pair.key_pem, 1);
    let server = start(args(&dir)).await;
    // far more idle connections than the metrics listener keeps
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(server.metrics).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // of 100 client connections the server accepted and holds at most its 64
    let held = accepted_on(server.metrics.port());
    assert!(
        (1..=64).contains(&held),
        "{held} idle metrics connections held by the server"
    );
    // admission answers at once
    let mut c = client(server.addr, &pair.ca_pem).await.unwrap();
    let started = Instant::now();
    let (status, v) = post(
        &mut c,
        "/validate?timeout=5s",
        review("kubernetes.io/metadata.name"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // the accepted idle ones are closed after the idle timeout, and the port serves again
    let metrics_addr = server.metrics;
    eventually(
        "metrics answer again",
        Duration::from_secs(15),
        || async move {
            tokio::time::timeout(
                Duration::from_secs(1),
                common::get(metrics_addr, "/healthz"),
            )
            .await
            .is_ok_and(|(status, _)| status == 200)
        },
    )
    .await;
    drop(idle);
}

/// What the load of [`under_load_certificates_rotate_both_ways_and_a_drain_loses_nothing`]
/// saw, request by request.
#[derive(Default)]
struct Counts {
    answered: AtomicU64,
    connections: AtomicU64,
    /// Connections refused once the listener had closed: expected.
    refused_after_close: AtomicU64,
    /// Connections reset in the TLS handshake as the listener closed (they were still in
    /// its backlog, never accepted): expected, no request was sent.
    reset_in_backlog: AtomicU64,
    /// Anything else: a request without its answer, a refused connection before the close.
    failures: std::sync::Mutex<Vec<String>>,
}

/// Sends reviews back to back over keep-alive connections, opening a new one whenever the
/// server closes one, until a connection is refused after `closed`.
async fn load_worker(
    addr: SocketAddr,
    trust: Arc<String>,
    closed: Arc<AtomicBool>,
    counts: Arc<Counts>,
) {
    use http_body_util::BodyExt;
    let body = bytes::Bytes::from(review("kubernetes.io/metadata.name"));
    loop {
        let mut sender = match client(addr, &trust).await {
            Ok(s) => s,
            // refused, or reset in the handshake: a connection left in the backlog of the
            // listener that just closed; no request was sent on it
            Err(e) if closed.load(Ordering::SeqCst) => {
                match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        counts.refused_after_close.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    std::io::ErrorKind::ConnectionReset => {
                        counts.reset_in_backlog.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => counts
                        .failures
                        .lock()
                        .unwrap()
                        .push(format!("connect: {e}")),
                }
                continue;
            }
            Err(e) => {
                counts
                    .failures
                    .lock()
                    .unwrap()
                    .push(format!("connect: {e}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        counts.connections.fetch_add(1, Ordering::SeqCst);
        // closed by the server between two requests: nothing was lost, connect again
        while sender.ready().await.is_ok() {
            let request = hyper::Request::post("/validate?timeout=10s")
                .header("host", "localhost")
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(body.clone()))
                .unwrap();
            let response = match sender.send_request(request).await {
                Ok(r) => r,
                Err(e) => {
                    counts
                        .failures
                        .lock()
                        .unwrap()
                        .push(format!("request: {e}"));
                    break;
                }
            };
            let close = response
                .headers()
                .get("connection")
                .is_some_and(|v| v == "close");
            let status = response.status();
            let answer = response.into_body().collect().await.map(|b| b.to_bytes());
            match answer {
                Ok(b) if status == 200 && b.windows(8).any(|w| w == b"b1f5c0de") => {
                    counts.answered.fetch_add(1, Ordering::SeqCst);
                }
                other => {
                    let what = format!("answer: {status} {other:?}");
                    counts.failures.lock().unwrap().push(what);
                }
            }
            if close {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_certificates_rotate_both_ways_and_a_drain_loses_nothing() {
    let dir = temp_dir("rotation-load");
    let (first, second, third) = (bundle(), bundle(), bundle());
    publish(&dir, &first.cert_pem, &first.key_pem, 1);
    let mut server = start(args(&dir)).await;
    // the clients trust every CA, as the API server's caBundle does during a rotation
    let trust = Arc::new(format!("{}{}{}", first.ca_pem, second.ca_pem, third.ca_pem));
    let closed = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let workers: Vec<_> = (0..12)
        .map(|_| {
            tokio::spawn(load_worker(
                server.addr,
                trust.clone(),
                closed.clone(),
                counts.clone(),
            ))
        })
        .collect();
    let presents = |ca: String| {
        let addr = server.addr;
        move || {
            let ca = ca.clone();
            async move { client(addr, &ca).await.is_ok() }
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // rotation 1: the files rewritten in place, the key and then the certificate (a reload
    // between the two sees a pair that does not fit and keeps the old one)
    let data = dir.join("..data");
    std::fs::write(data.join("tls.key"), &second.key_pem).unwrap();
    std::fs::write(data.join("tls.crt"), &second.cert_pem).unwrap();
    eventually(
        "new connections get the second certificate",
        Duration::from_secs(5),
        presents(second.ca_pem.clone()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // rotation 2: the kubelet's `..data` symlink swap
    publish(&dir, &third.cert_pem, &third.key_pem, 2);
    eventually(
        "new connections get the third certificate",
        Duration::from_secs(5),
        presents(third.ca_pem.clone()),
    )
    .await;
    assert!(!presents(first.ca_pem.clone())().await);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // SIGTERM: draining (every answer asks for the connection to close), then the listener
    // closes after the shutdown delay, then the server drains what is in flight
    server.state.start_draining();
    tokio::time::sleep(Duration::from_millis(500)).await;
    closed.store(true, Ordering::SeqCst);
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), &mut server.done)
        .await
        .expect("server stopped")
        .unwrap();
    for w in workers {
        tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("worker ends once refused")
            .unwrap();
    }
    let answered = counts.answered.load(Ordering::SeqCst);
    let connections = counts.connections.load(Ordering::SeqCst);
    let refused = counts.refused_after_close.load(Ordering::SeqCst);
    let reset = counts.reset_in_backlog.load(Ordering::SeqCst);
    let failures = counts.failures.lock().unwrap().clone();
    eprintln!(
        "rotation under load: {answered} reviews answered over {connections} connections, \
         {} failed, {refused} connections refused after the listener closed, {reset} reset \
         in its backlog",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(answered > 100, "{answered}");
    assert_eq!(refused, 12, "every worker ends on a refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_slow_connections_cannot_hold_the_door() {
    let dir = temp_dir("slowloris");
    let pair = bundle();
    publish(&dir, &pair.cert_pem, &pair.key_pem, 1);
    // timeouts far longer than the test, and room for 500 connections: only shedding the
    // oldest connections without a request can let a real client in
    let mut a = args(&dir);
    a.handshake_timeout = Duration::from_secs(60);
    a.header_timeout = Duration::from_secs(60);
    a.max_connections = 500;
    let server = start(a).await;
    let mut c = client(server.addr, &pair.ca_pem).await.unwrap();
    assert_eq!(post(&mut c, "/validate", review("name")).await.0, 200);
    drop(c);

    // 1,000 silent TCP connections and 1,000 TLS connections dripping a header byte
    let mut slow = Vec::new();
    for _ in 0..1000 {
        slow.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut dripping = Vec::new();
    for _ in 0..1000 {
        // the oldest are being shed meanwhile: a failed handshake is part of the attack
        if let Ok(mut tls) = tls_connect(server.addr, &pair.ca_pem).await {
            let _ = tls.write_all(b"POST /validate HTTP/1.1\r\nHost: l").await;
            dripping.push(tls);
        }
    }
    let drip = tokio::spawn(async move {
        loop {
            for tls in &mut dripping {
                let _ = tls.write_all(b"o").await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    // real clients still get in and are answered, one after another
    for i in 0..20 {
        let started = Instant::now();
        let mut c = tokio::time::timeout(Duration::from_secs(5), client(server.addr, &pair.ca_pem))
            .await
            .unwrap_or_else(|_| panic!("client {i} not let in within 5 s"))
            .unwrap();
        let (status, v) = post(&mut c, "/validate?timeout=5s", review("name")).await;
        assert_eq!(status, 200, "{v}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "client {i} answered after {:?}",
            started.elapsed()
        );
    }
    // the server holds at most its 500 connections, counted by its own listener (the
    // descriptors of this process also hold the 2,000 client sockets and whatever the tests
    // running beside this one have open), and it made room by shedding
    let held = server.state.metrics.webhook.open_connections();
    assert!((1..=500).contains(&held), "{held} connections held");
    let shed = server.state.metrics.webhook.shed_connections();
    assert!(shed >= 1000, "{shed} connections shed");
    drip.abort();
    drop(slow);
}
