//! The HTTP surface: the admission endpoints (served over TLS by [`crate::webhook::serve`]) and the
//! plain-HTTP metrics and health endpoints. Handlers read the body under limits, hand it
//! to [`crate::admission::review`] and turn the outcome into a response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Semaphore;
use tracing::Level;

use crate::admission::{self, Decision, Endpoint, Reviewed};
use crate::runtime::state::SharedState;

/// Transport limits of the admission endpoints.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted body (an UPDATE carries two objects of up to 3 MiB): 413 above it.
    pub max_body: usize,
    /// Bodies above this size are reviewed off the async workers, a few at a time, so they
    /// cannot starve small requests.
    pub large_body: usize,
    pub large_concurrency: usize,
    /// How long a client may take to send its body.
    pub body_timeout: Duration,
    /// Answer this long before the API server's `?timeout=` expires.
    pub deadline_margin: Duration,
    /// Benchmark baseline: admit everything after reading only the uid.
    pub baseline: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 7 * 1024 * 1024,
            large_body: 1024 * 1024,
            large_concurrency: 2,
            body_timeout: Duration::from_secs(10),
            deadline_margin: Duration::from_millis(100),
            baseline: false,
        }
    }
}

/// What the admission handlers read: the shared state, the limits, and the permits for
/// large bodies.
#[derive(Debug)]
struct Http {
    shared: SharedState,
    limits: Limits,
    large: Semaphore,
}

type AppState = Arc<Http>;

/// The admission router: `POST /validate`, `POST /mutate`, and the health endpoints.
pub fn admission_router(shared: SharedState, limits: Limits) -> Router {
    let state = Arc::new(Http {
        shared,
        large: Semaphore::new(limits.large_concurrency.max(1)),
        limits,
    });
    Router::new()
        .route(
            "/validate",
            post(|State(s): State<AppState>, req: Request| handle(s, Endpoint::Validate, req)),
        )
        .route(
            "/mutate",
            post(|State(s): State<AppState>, req: Request| handle(s, Endpoint::Mutate, req)),
        )
        .merge(health_routes().with_state(state.shared.clone()))
        // while draining, every answer asks the client to close its connection, so that no
        // request arrives on a keep-alive connection just as the listener closes
        .layer(axum::middleware::map_response_with_state(
            state.shared.clone(),
            |State(s): State<SharedState>, mut response: Response| async move {
                if s.is_draining() {
                    response.headers_mut().insert(
                        header::CONNECTION,
                        header::HeaderValue::from_static("close"),
                    );
                }
                response
            },
        ))
        .method_not_allowed_fallback(|| async {
            reject(
                StatusCode::METHOD_NOT_ALLOWED,
                "the admission endpoints take POST; the health endpoints GET",
            )
        })
        .fallback(|| async {
            reject(
                StatusCode::NOT_FOUND,
                "no such endpoint: POST /validate, POST /mutate, GET /healthz, GET /readyz",
            )
        })
        .with_state(state)
}

/// The plain-HTTP router: `GET /metrics` and the health endpoints.
pub fn metrics_router(state: SharedState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(s): State<SharedState>| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    s.metrics.render(),
                )
            }),
        )
        .merge(health_routes())
        .method_not_allowed_fallback(|| async {
            reject(StatusCode::METHOD_NOT_ALLOWED, "this port takes GET")
        })
        .fallback(|| async {
            reject(
                StatusCode::NOT_FOUND,
                "no such endpoint: GET /metrics, GET /healthz, GET /readyz",
            )
        })
        .with_state(state)
}

fn health_routes() -> Router<SharedState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<SharedState>| async move {
                if s.is_ready() {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
}

/// A plain-text error for requests that never became reviews.
fn reject(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The longest webhook timeout the API server allows (`timeoutSeconds` is at most 30).
const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// The query string of a review request.
#[derive(Debug, serde::Deserialize)]
struct ReviewQuery {
    /// The API server's deadline for this call, a Go duration (`10s`, `1m0s`, `9.5s`).
    timeout: Option<String>,
}

/// The API server's `?timeout=` if present and valid, clamped to [`MAX_TIMEOUT`] so that no
/// deadline computed from it can overflow.
fn requested_timeout(req: &Request) -> Option<Duration> {
    let query = axum::extract::Query::<ReviewQuery>::try_from_uri(req.uri()).ok()?;
    crate::runtime::duration::parse(query.0.timeout.as_deref()?).map(|t| t.min(MAX_TIMEOUT))
}

async fn handle(state: AppState, endpoint: Endpoint, req: Request) -> Response {
    let started = Instant::now();
    let (status, reviewed) = match review_request(&state, endpoint, req, started).await {
        Ok(reviewed) => (
            if reviewed.bad_request {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            },
            reviewed,
        ),
        Err(rejected) => {
            state.shared.metrics.admission.rejected(endpoint);
            tracing::info!(
                endpoint = endpoint.as_str(),
                status = rejected.status().as_u16(),
                "request rejected"
            );
            return rejected;
        }
    };
    let elapsed = started.elapsed();
    state.shared.metrics.admission.review(
        endpoint,
        reviewed.kind,
        reviewed.operation,
        reviewed.decision,
        elapsed,
        &reviewed.findings,
    );
    log(endpoint, &reviewed, elapsed);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        reviewed.body,
    )
        .into_response()
}

/// One line per request, as one event with every field (a span per request cost a second
/// formatting pass and an allocation per field). Request bodies are never logged: only
/// ids, names, the decision and the rule ids.
fn log(endpoint: Endpoint, reviewed: &Reviewed, elapsed: Duration) {
    // INFO for what a person may want to know later: refusals, findings, failures and
    // NetworkPolicy mutations; routine admissions and namespace stamps at DEBUG.
    let quiet = reviewed.findings.is_empty()
        && (reviewed.decision == Decision::Allowed
            || (reviewed.decision == Decision::Mutated && reviewed.kind == "Namespace"));
    macro_rules! reviewed {
        ($level:expr, $($rules:tt)*) => {
            tracing::event!(
                $level,
                endpoint = endpoint.as_str(),
                uid = reviewed.uid.as_str(),
                kind = reviewed.kind,
                operation = reviewed.operation,
                namespace = reviewed.namespace.as_str(),
                name = reviewed.name.as_str(),
                dry_run = reviewed.dry_run,
                decision = reviewed.decision.as_str(),
                // milliseconds to the microsecond
                duration_ms = elapsed.as_micros() as f64 / 1e3,
                $($rules)*
                "reviewed"
            )
        };
    }
    if quiet {
        reviewed!(Level::DEBUG,);
    } else {
        reviewed!(Level::INFO, rules = %RuleIds(&reviewed.findings),);
    }
}

/// The rule ids of findings, comma-separated.
struct RuleIds<'a>(&'a [crate::rules::Finding]);

impl std::fmt::Display for RuleIds<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, finding) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(finding.rule)?;
        }
        Ok(())
    }
}

/// Reads the body under the limits and reviews it, answering before the API server's
/// deadline. `Err` is an HTTP-level rejection (413, 415, 408).
async fn review_request(
    state: &AppState,
    endpoint: Endpoint,
    req: Request,
    started: Instant,
) -> Result<Reviewed, Response> {
    let limits = &state.limits;
    if !is_json(&req) {
        return Err(reject(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an AdmissionReview must be sent as application/json",
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_body) {
        return Err(too_large(limits));
    }
    let deadline = requested_timeout(&req)
        .and_then(|t| started.checked_add(t.saturating_sub(limits.deadline_margin)));
    // The body is read before a large-review slot is taken: a client that announces a big
    // body and stalls holds its own connection, never a slot others wait for.
    let body = read_body(req.into_body(), limits, deadline).await?;
    if limits.baseline {
        return Ok(admission::baseline(&body));
    }
    Ok(review_within(state, endpoint, body, deadline).await)
}

/// Reviews a body (large ones off the async workers), or answers that it could not be
/// done when the deadline passes first.
async fn review_within(
    state: &AppState,
    endpoint: Endpoint,
    body: Bytes,
    deadline: Option<Instant>,
) -> Reviewed {
    // kept to echo the uid if the review itself cannot finish
    let original = body.clone();
    let snapshot = state.shared.snapshot();
    let large = body.len() > state.limits.large_body;
    let work = async move {
        if large {
            // large reviews run off the async workers, a few at a time; waiting for a slot
            // counts against the deadline like the review itself
            let _permit = state.large.acquire().await.map_err(|_| ())?;
            tokio::task::spawn_blocking(move || admission::review(&snapshot, endpoint, &body))
                .await
                .map_err(|_| ())
        } else {
            Ok(admission::review(&snapshot, endpoint, &body))
        }
    };
    let outcome = match deadline {
        Some(deadline) => {
            match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), work).await {
                Ok(done) => done,
                Err(_) => {
                    return admission::failed(
                        &original,
                        "netpol-guard could not decide before the API server's timeout",
                    );
                }
            }
        }
        None => work.await,
    };
    outcome.unwrap_or_else(|()| admission::failed(&original, "netpol-guard failed while reviewing"))
}

fn too_large(limits: &Limits) -> Response {
    reject(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the body exceeds {} bytes", limits.max_body),
    )
}

/// Reads the body within the body timeout, and within the API server's deadline when it
/// gave one (it stops waiting then anyway).
async fn read_body(
    body: Body,
    limits: &Limits,
    deadline: Option<Instant>,
) -> Result<Bytes, Response> {
    let budget = deadline.map_or(limits.body_timeout, |d| {
        limits
            .body_timeout
            .min(d.saturating_duration_since(Instant::now()))
    });
    match tokio::time::timeout(budget, axum::body::to_bytes(body, limits.max_body)).await {
        Err(_) => Err(reject(
            StatusCode::REQUEST_TIMEOUT,
            "the body was not sent in time",
        )),
        Ok(Err(e)) => {
            // the limit error sits somewhere in the source chain of axum's error
            let over_limit = std::iter::successors(std::error::Error::source(&e), |s| s.source())
                .any(|s| s.is::<http_body_util::LengthLimitError>());
            if over_limit {
                Err(too_large(limits))
            } else {
                Err(reject(
                    StatusCode::BAD_REQUEST,
                    "the body could not be read",
                ))
            }
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}
