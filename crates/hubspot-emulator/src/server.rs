//! The only I/O of the emulator: the accept loop on 127.0.0.1 and the per-request pipeline.
//!
//! Each request goes: read body → faults (latency, dropped connection, 5xx/423/477, burst
//! 429s: all before any state is touched) → route → token → timed 429 burst (decided once the
//! latency has passed) → rate limits (counted at the request's arrival, as HubSpot counts
//! them) → handler →
//! after-write faults (creates and upserts only: a 502/504 or a dropped connection after the
//! write) → rate-limit headers → journal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::auth::{authenticate, bearer};
use super::clock;
use super::inspect;
use super::journal::JournalEntry;
use super::limits::{fault_reply, Caller, Fault};
use super::reply::Reply;
use super::routes::{dispatch, Ctx, Route};
use super::Shared;

/// Largest request body read; bigger ones get a 413.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// Accepts connections until `shutdown` changes, then lets open connections finish.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "Emulator could not accept a connection.");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let mut stop = shutdown.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(shared.clone(), req));
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let received_at = Instant::now();
    if req.uri().path().starts_with(inspect::PREFIX) {
        let (method, uri) = (req.method().as_str().to_string(), req.uri().clone());
        return Ok(into_response(inspect::respond(&shared, &method, uri.path(), uri.query().unwrap_or(""))));
    }
    let _in_flight = InFlight::enter(&shared);
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES).await;
    let (latency, fault) = shared.limits.draw_fault();
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let request_bytes = body.as_ref().map(Bytes::len).unwrap_or_default();
    let recorded_body = match (&body, shared.config.record_bodies) {
        (Ok(bytes), true) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    };
    let reply = match (fault, body) {
        (Some(Fault::Drop), _) => {
            record(&shared, &parts, received_at, 0, request_bytes, 0, recorded_body);
            return Err(Dropped);
        }
        (Some(fault), _) => {
            let app = bearer(&parts.headers).unwrap_or("anonymous");
            fault_reply(fault, &shared.limits, &Caller { app, oauth: false })
        }
        (None, Err(_)) => Reply::html(413, "<h1>413 Request Entity Too Large</h1>"),
        (None, Ok(body)) => match respond(&shared, &parts, &body, received_at) {
            Answered::Reply(reply) => reply,
            Answered::Drop => {
                record(&shared, &parts, received_at, 0, request_bytes, 0, recorded_body);
                return Err(Dropped);
            }
        },
    };
    record(&shared, &parts, received_at, reply.status, request_bytes, reply.body.len(), recorded_body);
    Ok(into_response(reply))
}

/// Counts one request in `Shared::in_flight` until it is answered, dropped, or abandoned.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        shared.in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What `respond` does with a request.
enum Answered {
    Reply(Reply),
    /// An after-write fault: the write was applied, the answer is lost.
    Drop,
}

impl From<Reply> for Answered {
    fn from(reply: Reply) -> Self {
        Answered::Reply(reply)
    }
}

/// Answers one request that arrived at `received_at`.
fn respond(shared: &Shared, parts: &Parts, body: &[u8], received_at: Instant) -> Answered {
    let path = parts.uri.path();
    let Some(route) = Route::parse(&parts.method, path) else {
        // HubSpot counts and answers an unknown path like any other call: with the
        // rate-limit headers (recorded real HubSpot answers, docs/emulator.md).
        let mut reply = Reply::not_found_page();
        if let Some(app) = bearer(&parts.headers) {
            if let Ok(Some(h)) = shared.limits.admit(&Caller { app, oauth: false }, received_at) {
                h.apply(&mut reply);
            }
        }
        return reply.into();
    };
    let now = clock::now_ms();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    let auth = if route.needs_auth() {
        let store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
        match authenticate(&shared.config, &store, &parts.headers, now) {
            Ok(auth) => Some(auth),
            Err(reply) => return reply.into(),
        }
    } else {
        None
    };
    let mut rate_headers = None;
    if let Some(auth) = &auth {
        let caller = Caller { app: &auth.app, oauth: auth.oauth };
        if !route.is_search() && shared.limits.in_timed_burst(Instant::now()) {
            return fault_reply(Fault::Burst, &shared.limits, &caller).into();
        }
        let admitted = if route.is_search() {
            shared.limits.admit_search(&caller, received_at).map(|()| None)
        } else {
            shared.limits.admit(&caller, received_at)
        };
        match admitted {
            Ok(headers) => rate_headers = headers,
            Err(reply) => return reply.into(),
        }
    }
    let sends_headers = route.sends_rate_headers();
    let writes = route.creates_or_upserts();
    let app = auth.as_ref().map(|a| a.app.clone()).unwrap_or_default();
    let ctx = Ctx { shared, query, body, auth, now, path };
    let mut reply = dispatch(&ctx, route);
    if writes && (200..300).contains(&reply.status) {
        match shared.limits.draw_after_write_fault() {
            Some(Fault::Drop) => return Answered::Drop,
            Some(fault) => return fault_reply(fault, &shared.limits, &Caller { app: &app, oauth: false }).into(),
            None => {}
        }
    }
    if let Some(h) = rate_headers.filter(|_| sends_headers) {
        h.apply(&mut reply);
    }
    reply.into()
}

fn record(
    shared: &Shared,
    parts: &Parts,
    received_at: Instant,
    status: u16,
    request_bytes: usize,
    response_bytes: usize,
    body: Option<String>,
) {
    shared.journal.record(JournalEntry {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        status,
        request_bytes,
        response_bytes,
        body,
        received_at,
        answered_at: Instant::now(),
    });
}

fn into_response(reply: Reply) -> Response<Body> {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Some(ct) = reply.content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.append(name, value);
        }
    }
    response
}
