//! The admin HTTP API (axum): health, readiness, metrics, sync status, and ad hoc runs and
//! resets. With `daemon.admin_token` set, every route but `/healthz` and `/readyz` needs
//! `Authorization: Bearer <token>`; without one, the daemon only listens on loopback.
//!
//! Routes:
//! - `GET /healthz`: 200 while the process serves.
//! - `GET /readyz`: 200 once the workers run, 503 while stopping.
//! - `GET /metrics`: Prometheus text exposition.
//! - `GET /syncs`, `GET /syncs/{name}`: schedule, state, next run, last runs, rejected counts.
//! - `POST /syncs/{name}/run` with an optional `{"full": bool}`: 202 and a request id.
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
}

/// The admin API over a daemon's shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/syncs", get(list_syncs))
        .route("/syncs/{name}", get(one_sync))
        .route("/syncs/{name}/run", post(run_sync))
        .route("/syncs/{name}/requests/{id}", get(request_info))
        .route("/syncs/{name}/reset", post(reset_sync))
        .route_layer(middleware::from_fn_with_state(shared.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(protected)
        .fallback(not_found)
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

/// Compares in constant time, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &shared.settings().admin_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| same(g.as_bytes(), token.expose().as_bytes())) {
            let mut response = error(StatusCode::UNAUTHORIZED, "a bearer token is required (daemon.admin_token)");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
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

async fn run_sync(State(shared): State<Arc<Shared>>, Path(name): Path<String>, body: Bytes) -> Response {
    let body: RunBody = if body.iter().all(u8::is_ascii_whitespace) {
        RunBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("the body must be {{\"full\": true|false}}: {e}")),
        }
    };
    match shared.request_run(&name, Trigger::Api, body.full) {
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

async fn reset_sync(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
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

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
