//! One request, sent until it is answered: the rate budget and in-flight slot of each attempt,
//! the retry policy, the authorization header, and the answer checked for access errors.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use crate::budget::{DailyLimitReached, RateLimitHeaders, RequestClass};
use crate::errors::{excerpt, ApiError, HubSpotError};
use crate::retry::{
    parse_retry_after, Attempt, DontRetry, Observation, RetryAction, RetryReason, TransportFailure, WINDOW_WAIT_MAX,
};
use crate::stats::{EndpointKind, StatusClass};

use crate::metrics::{HubSpotRequest, RequestRetried};
use hubspot_model::Secret;

use super::{Auth, HubSpotClient};

/// One HTTP request, ready to be sent any number of times.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub(super) kind: EndpointKind,
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) body: Option<Bytes>,
    /// False when sending twice may do the work twice (creates).
    pub(super) idempotent: bool,
    pub(super) class: RequestClass,
}

impl Call {
    pub(super) fn new(kind: EndpointKind, method: Method, url: Url) -> Call {
        Call { kind, method, url, body: None, idempotent: true, class: RequestClass::Standard }
    }

    pub(super) fn json(mut self, body: &Value) -> Call {
        self.body = Some(Bytes::from(body.to_string()));
        self
    }

    pub(super) fn not_idempotent(mut self) -> Call {
        self.idempotent = false;
        self
    }

    pub(super) fn search(mut self) -> Call {
        self.class = RequestClass::Search;
        self
    }

    /// `METHOD /path` for logs and errors (no host, no query, never a token).
    pub(super) fn describe(&self) -> String {
        format!("{} {}", self.method, self.url.path())
    }
}

/// A complete answer.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: String,
}

/// One attempt's raw result.
#[derive(Debug)]
pub(super) struct RawAnswer {
    pub(super) status: u16,
    pub(super) retry_after: Option<Duration>,
    pub(super) limits: RateLimitHeaders,
    pub(super) body: String,
}

/// Why `execute` gave up.
#[derive(Debug)]
pub(super) enum CallError {
    Hub(HubSpotError),
    /// A non-idempotent request may have been applied; it was not sent again.
    DeliveryUncertain {
        detail: String,
    },
}

impl HubSpotClient {
    /// `execute`, for requests that are safe to repeat.
    pub(super) async fn execute_or_error(&self, call: &Call) -> Result<Reply, HubSpotError> {
        match self.execute(call).await {
            Ok(reply) => Ok(reply),
            Err(CallError::Hub(e)) => Err(e),
            Err(CallError::DeliveryUncertain { detail }) => {
                Err(HubSpotError::Transport { account: self.account().to_string(), endpoint: call.describe(), detail })
            }
        }
    }

    /// Sends `call` until the retry decision says stop. Returns the final answer (2xx or a
    /// 4xx the caller reads); 401 and 403 become errors here. Each attempt holds an in-flight
    /// slot from the budget until its answer is read; waits between attempts hold none.
    pub(super) async fn execute(&self, call: &Call) -> Result<Reply, CallError> {
        let inner = &self.inner;
        let mut retries: u32 = 0;
        let mut refreshed_after_401 = false;
        loop {
            let (auth, bearer) = self.authorization().await.map_err(CallError::Hub)?;
            // Nothing was sent yet (or the last attempt was one a retry may repeat): a stop
            // now leaves HubSpot untouched by this request.
            let permit = match self.unless_stopped(inner.budget.acquire(call.class)).await {
                None => return Err(CallError::Hub(self.stopped(call))),
                Some(Ok(permit)) => permit,
                Some(Err(DailyLimitReached { limit })) => {
                    return Err(CallError::Hub(HubSpotError::DailyLimit { account: self.account().to_string(), limit }))
                }
            };
            let sent_at = Instant::now();
            let attempt = self.send_once(call, auth).await;
            HubSpotRequest {
                account: self.account(),
                endpoint: call.kind,
                status: attempt.as_ref().ok().map(|a| a.status),
                seconds: sent_at.elapsed().as_secs_f64(),
            }
            .emit();
            match &attempt {
                Ok(answer) => {
                    permit.answered(answer.status, &answer.limits);
                    self.count(|s| s.request(call.kind, StatusClass::of(answer.status)));
                    if answer.status == 429 {
                        self.count(|s| s.rate_limited());
                    }
                }
                Err(_) => self.count(|s| s.request(call.kind, StatusClass::Transport)),
            }
            // An expired OAuth token is refreshed once and the request sent again at once.
            if let (Auth::OAuth(session), Some(used), Ok(answer)) = (&inner.auth, &bearer, &attempt) {
                if answer.status == 401 && !refreshed_after_401 && is_expired_authentication(&answer.body) {
                    refreshed_after_401 = true;
                    drop(permit);
                    session.expired(used).await.map_err(CallError::Hub)?;
                    continue;
                }
            }
            let observation = match &attempt {
                Ok(a) => Observation::Answer { status: a.status, retry_after: a.retry_after, body: &a.body },
                Err((failure, _)) => Observation::Failed(*failure),
            };
            let action = inner.policy.decide(&Attempt {
                retries,
                idempotent: call.idempotent,
                observation,
                window_frees_in: inner.budget.window_frees_in(),
                jitter: rand::random::<f64>(),
            });
            let last = describe_attempt(&attempt, bearer.as_ref().map_or(self.token(), Secret::expose));
            match action {
                RetryAction::Successful | RetryAction::DontRetry(DontRetry::FinalAnswer) => {
                    return match attempt {
                        Ok(answer) => self.check_access(call, answer).map_err(CallError::Hub),
                        Err((_, detail)) => Err(CallError::Hub(HubSpotError::Transport {
                            account: self.account().to_string(),
                            endpoint: call.describe(),
                            detail,
                        })),
                    };
                }
                RetryAction::Retry { reason, delay, pause_account } => {
                    self.count(|s| s.retry(reason));
                    RequestRetried { account: self.account(), reason }.emit();
                    if pause_account {
                        // Every request to the account waits, this one included (in `acquire`).
                        // A request sent before another 429 paused the account joins that pause.
                        let pause = permit.rate_limited(delay);
                        drop(permit);
                        let wait_ms = pause.until.saturating_duration_since(Instant::now()).as_millis() as u64;
                        if pause.joined {
                            tracing::debug!(
                                account = %self.account(),
                                endpoint = %call.describe(),
                                retry = retries + 1,
                                wait_ms,
                                "HubSpot rate limited a request sent before the account was paused; it waits for the same pause."
                            );
                        } else {
                            tracing::info!(
                                account = %self.account(),
                                endpoint = %call.describe(),
                                reason = reason.as_str(),
                                last = %last,
                                retry = retries + 1,
                                delay_ms = wait_ms,
                                "HubSpot rate limited the account; every request to it waits."
                            );
                        }
                    } else {
                        drop(permit);
                        tracing::info!(
                            account = %self.account(),
                            endpoint = %call.describe(),
                            reason = reason.as_str(),
                            last = %last,
                            retry = retries + 1,
                            delay_ms = delay.as_millis() as u64,
                            "HubSpot request failed; retrying after a pause."
                        );
                        if self.unless_stopped(tokio::time::sleep(delay)).await.is_none() {
                            return Err(CallError::Hub(self.stopped(call)));
                        }
                    }
                    retries += 1;
                }
                RetryAction::DontRetry(DontRetry::DailyLimit) => {
                    inner.budget.mark_daily_exhausted();
                    let limit = inner.budget.snapshot().daily_limit;
                    tracing::error!(
                        account = %self.account(),
                        limit,
                        "HubSpot reports the account's daily API limit reached; requests to it stop until the portal's midnight."
                    );
                    return Err(CallError::Hub(HubSpotError::DailyLimit {
                        account: self.account().to_string(),
                        limit,
                    }));
                }
                RetryAction::DontRetry(DontRetry::DeliveryUncertain) => {
                    return Err(CallError::DeliveryUncertain { detail: last });
                }
                RetryAction::DontRetry(DontRetry::Exhausted(reason)) => {
                    if reason == RetryReason::RateLimited {
                        // This request stops, but the window is still full for every other.
                        permit.rate_limited(
                            inner.budget.window_frees_in().clamp(Duration::from_secs(1), WINDOW_WAIT_MAX),
                        );
                    }
                    tracing::warn!(
                        account = %self.account(),
                        endpoint = %call.describe(),
                        reason = reason.as_str(),
                        attempts = retries + 1,
                        last = %last,
                        "HubSpot request failed on every attempt; giving up."
                    );
                    return Err(CallError::Hub(HubSpotError::RetriesExhausted {
                        account: self.account().to_string(),
                        endpoint: call.describe(),
                        attempts: retries + 1,
                        last,
                    }));
                }
                RetryAction::DontRetry(DontRetry::WaitTooLong(wait)) => {
                    let status = attempt.as_ref().map(|a| a.status).unwrap_or(0);
                    return Err(CallError::Hub(HubSpotError::RetryLater {
                        account: self.account().to_string(),
                        endpoint: call.describe(),
                        status,
                        retry_after_secs: wait.as_secs(),
                    }));
                }
            }
        }
    }

    /// One HTTP exchange.
    pub(super) async fn send_once(
        &self,
        call: &Call,
        auth: HeaderValue,
    ) -> Result<RawAnswer, (TransportFailure, String)> {
        let mut request = self.inner.http.request(call.method.clone(), call.url.clone()).header(AUTHORIZATION, auth);
        if let Some(body) = &call.body {
            request = request.header(CONTENT_TYPE, "application/json").body(body.clone());
        }
        let response = request.send().await.map_err(|e| {
            let failure = if e.is_connect() || e.is_builder() {
                TransportFailure::Connect
            } else if e.is_timeout() {
                TransportFailure::Timeout
            } else {
                TransportFailure::Dropped
            };
            (failure, error_chain(&e))
        })?;
        let status = response.status().as_u16();
        let limits = RateLimitHeaders::from_headers(response.headers());
        let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let body = response.text().await.map_err(|e| {
            let failure = if e.is_timeout() { TransportFailure::Timeout } else { TransportFailure::Dropped };
            (failure, format!("the answer ({status}) was cut off: {}", error_chain(&e)))
        })?;
        tracing::trace!(endpoint = %call.describe(), status, "HubSpot answered.");
        Ok(RawAnswer { status, retry_after, limits, body })
    }

    /// 401 and 403 are never the caller's to read: they stop the call.
    pub(super) fn check_access(&self, call: &Call, answer: RawAnswer) -> Result<Reply, HubSpotError> {
        let account = self.account().to_string();
        match answer.status {
            401 if matches!(self.inner.auth, Auth::OAuth(_)) => {
                let parsed = ApiError::parse(&answer.body).unwrap_or_default();
                Err(HubSpotError::ReauthRequired {
                    account,
                    detail: format!(
                        "HubSpot refused its access token ({}: {})",
                        parsed.category.as_deref().unwrap_or("HTTP 401"),
                        excerpt(&parsed.best_message(), self.token())
                    ),
                })
            }
            401 => {
                let parsed = ApiError::parse(&answer.body).unwrap_or_default();
                Err(HubSpotError::Unauthorized {
                    account,
                    category: parsed.category.clone().unwrap_or_else(|| "HTTP 401".to_string()),
                    message: excerpt(&parsed.best_message(), self.token()),
                })
            }
            403 => {
                let parsed = ApiError::parse(&answer.body).unwrap_or_default();
                if parsed.category.as_deref() == Some("MISSING_SCOPES") || !parsed.required_scopes.is_empty() {
                    Err(HubSpotError::MissingScopes {
                        account,
                        endpoint: call.describe(),
                        scopes: parsed.required_scopes,
                    })
                } else {
                    Err(HubSpotError::Forbidden {
                        account,
                        endpoint: call.describe(),
                        category: parsed.category.clone().unwrap_or_else(|| "HTTP 403".to_string()),
                        message: excerpt(&parsed.best_message(), self.token()),
                    })
                }
            }
            status => Ok(Reply { status, body: answer.body }),
        }
    }

    /// The error for an answer the caller cannot use.
    pub(super) fn answer_error(&self, call: &Call, reply: &Reply) -> HubSpotError {
        match ApiError::parse(&reply.body) {
            Some(e) if !e.message.is_empty() || e.category.is_some() => HubSpotError::Api {
                account: self.account().to_string(),
                endpoint: call.describe(),
                status: reply.status,
                code: e.code_or(&format!("HTTP_{}", reply.status)),
                message: excerpt(&e.best_message(), self.token()),
            },
            _ => HubSpotError::Unexpected {
                account: self.account().to_string(),
                endpoint: call.describe(),
                status: reply.status,
                body: excerpt(&reply.body, self.token()),
            },
        }
    }

    /// The error for a 2xx answer whose body could not be read.
    pub(super) fn unreadable(&self, call: &Call, reply: &Reply, detail: String) -> HubSpotError {
        HubSpotError::Unexpected {
            account: self.account().to_string(),
            endpoint: call.describe(),
            status: reply.status,
            body: format!("{detail}: {}", excerpt(&reply.body, self.token())),
        }
    }

    /// The error for a request not sent because this handle is stopping.
    pub(super) fn stopped(&self, call: &Call) -> HubSpotError {
        HubSpotError::Stopped { account: self.account().to_string(), endpoint: call.describe() }
    }

    pub(super) fn token(&self) -> &str {
        self.inner.settings.token.expose()
    }

    /// The `Authorization` header for the next request, and the OAuth access token in it.
    pub(super) async fn authorization(&self) -> Result<(HeaderValue, Option<Secret>), HubSpotError> {
        let session = match &self.inner.auth {
            Auth::Static(header) => return Ok((header.clone(), None)),
            Auth::OAuth(session) => session,
        };
        let token = session.bearer().await?;
        let header = bearer_header(&token).ok_or_else(|| HubSpotError::ReauthRequired {
            account: self.account().to_string(),
            detail: "HubSpot issued an access token that cannot go in an HTTP header".to_string(),
        })?;
        Ok((header, Some(token)))
    }
}

/// `Bearer <token>`, marked sensitive so it is never printed; `None` if it cannot be a header.
pub(super) fn bearer_header(token: &Secret) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// True for HubSpot's 401 `EXPIRED_AUTHENTICATION`, the one 401 a refresh can answer.
pub(super) fn is_expired_authentication(body: &str) -> bool {
    ApiError::parse(body).is_some_and(|e| e.category.as_deref() == Some("EXPIRED_AUTHENTICATION"))
}

/// A one-line description of an attempt, for logs and errors.
pub(super) fn describe_attempt(attempt: &Result<RawAnswer, (TransportFailure, String)>, token: &str) -> String {
    match attempt {
        Ok(a) => format!("HTTP {}: {}", a.status, excerpt(&a.body, token)),
        Err((failure, detail)) => format!("{failure:?}: {}", excerpt(detail, token)),
    }
}

/// An error and its sources on one line.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
