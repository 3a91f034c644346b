//! The admin HTTP API (axum): health, readiness, metrics, sync status, and ad hoc runs and
//! resets. Every request passes the `Host` and `Origin` checks of `access.rs`; the routes that
//! change something (`run`, `reset`) always need `Authorization: Bearer <token>` (the config's
//! `daemon.admin_token`, else the token the daemon generated in `<state_dir>/admin-token`), and
//! take JSON bodies only (415 otherwise); with `daemon.admin_token` set, every route but
//! `/healthz` and `/readyz` needs the token.
//!
//! Routes:
//! - `GET /healthz`: 200 while the process serves.
//! - `GET /readyz`: 200 once the workers run, 503 while stopping.
//! - `GET /metrics`: Prometheus text exposition.
//! - `GET /syncs`, `GET /syncs/{name}`: schedule, state, next run, last runs, rejected counts.
//! - `POST /syncs/{name}/run` with an optional `{"full": bool, "allow_deletes": bool}`: 202 and
//!   a request id.
//! - `GET /syncs/{name}/requests/{id}`: what became of a run request.
//! - `POST /syncs/{name}/reset`: forget the snapshot (409 while the sync runs or is queued).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::access::Access;
use super::shared::{Refused, Shared};
use super::status::Trigger;
use crate::telemetry;

/// Body of `POST /syncs/{name}/run`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    /// Send every row, not only the changed ones.
    #[serde(default)]
    full: bool,
    /// Send the removals the delete guard would hold (`hubsync sync --allow-deletes`).
    #[serde(default)]
    allow_deletes: bool,
}

/// The admin API over a daemon's shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    let reads = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/syncs", get(list_syncs))
        .route("/syncs/{name}", get(one_sync))
        .route("/syncs/{name}/requests/{id}", get(request_info))
        .route_layer(middleware::from_fn_with_state(shared.clone(), require_token_for_reads));
    let writes = Router::new()
        .route("/syncs/{name}/run", post(run_sync))
        .route("/syncs/{name}/reset", post(reset_sync))
        .route_layer(middleware::from_fn_with_state(shared.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(reads)
        .merge(writes)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), check_host_and_origin))
        .with_state(shared)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn unknown_sync(shared: &Shared, name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no sync is named `{name}`"), "syncs": shared.sync_names() })),
    )
        .into_response()
}

fn refused(shared: &Shared, name: &str, why: Refused) -> Response {
    match why {
        Refused::UnknownSync => unknown_sync(shared, name),
        Refused::ShuttingDown => error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping; no new runs start"),
        Refused::Busy => {
            error(StatusCode::CONFLICT, format!("sync `{name}` is running or queued; try again when it is idle"))
        }
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// Refuses requests for another host name (DNS rebinding) or from another origin (a web page).
async fn check_host_and_origin(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let access: &Access = shared.access();
    let host = header_text(&headers, header::HOST);
    if !access.host_allowed(host) {
        return error(
            StatusCode::FORBIDDEN,
            "the Host header names neither this address nor localhost; call the admin API by its IP address or              localhost",
        );
    }
    if !access.origin_allowed(header_text(&headers, header::ORIGIN), host) {
        return error(StatusCode::FORBIDDEN, "requests from other web pages (a foreign Origin) are refused");
    }
    next.run(request).await
}

fn unauthorized(shared: &Shared) -> Response {
    let message = if shared.access().reads_need_token() {
        "a bearer token is required (daemon.admin_token)".to_string()
    } else {
        format!(
            "a bearer token is required: the one the daemon generated in {} (`hubsync trigger` reads it), or set \
             daemon.admin_token",
            crate::auth::admin_token_path(&shared.config().state_dir).display()
        )
    };
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

/// Mutating routes: always the token.
async fn require_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if !shared.access().token_matches(header_text(&headers, header::AUTHORIZATION)) {
        return unauthorized(&shared);
    }
    next.run(request).await
}

/// Read-only routes: the token only when the config sets one.
async fn require_token_for_reads(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let access = shared.access();
    if access.reads_need_token() && !access.token_matches(header_text(&headers, header::AUTHORIZATION)) {
        return unauthorized(&shared);
    }
    next.run(request).await
}

/// The JSON body of a request, `None` when empty; 415 for any other content type, so a web
/// form (`text/plain`, `application/x-www-form-urlencoded`) can never reach a handler.
fn json_body<'a>(headers: &HeaderMap, body: &'a Bytes) -> Result<Option<&'a [u8]>, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let content_type = header_text(headers, header::CONTENT_TYPE).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(Some(&body[..]))
    } else {
        Err(Box::new(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be JSON, sent with Content-Type: application/json (got `{content_type}`)"),
        )))
    }
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.is_ready() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        let status = if shared.is_stopping() { "stopping" } else { "starting" };
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": status }))).into_response()
    }
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    shared.observe_budgets();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], telemetry::encode()).into_response()
}

async fn list_syncs(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.statuses().await).into_response()
}

async fn one_sync(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match shared.status(&name, true).await {
        Some(status) => Json(status).into_response(),
        None => unknown_sync(&shared, &name),
    }
}

async fn run_sync(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: RunBody = match json_body(&headers, &body) {
        Err(response) => return *response,
        Ok(None) => RunBody::default(),
        Ok(Some(json)) => match serde_json::from_slice(json) {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body must be {{\"full\": true|false, \"allow_deletes\": true|false}}: {e}"),
                )
            }
        },
    };
    match shared.request_run_with(&name, Trigger::Api, body.full, body.allow_deletes) {
        Ok(Some(info)) => (StatusCode::ACCEPTED, Json(info)).into_response(),
        Ok(None) => error(StatusCode::CONFLICT, "the run was not queued"),
        Err(why) => refused(&shared, &name, why),
    }
}

async fn request_info(State(shared): State<Arc<Shared>>, Path((name, id)): Path<(String, u64)>) -> Response {
    match shared.request_info(&name, id) {
        Some(info) => Json(info).into_response(),
        None if shared.sync_names().contains(&name) => error(
            StatusCode::NOT_FOUND,
            format!("no run request {id} for sync `{name}` (the daemon may have restarted)"),
        ),
        None => unknown_sync(&shared, &name),
    }
}

async fn reset_sync(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = json_body(&headers, &body) {
        return *response;
    }
    match shared.reset(&name).await {
        Ok(Ok(stored)) => Json(json!({
            "sync": name,
            "reset": true,
            "snapshot_rows": stored.snapshot_rows,
        }))
        .into_response(),
        Ok(Err(message)) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, format!("sync `{name}`: the reset failed: {message}"))
        }
        Err(why) => refused(&shared, &name, why),
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route; see GET /syncs")
}
