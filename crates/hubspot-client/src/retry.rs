//! The retry decision, as a type: what to do after one attempt of one request.
//!
//! Like Vector's `RetryAction`, the decision is a pure function of what came back (status,
//! `Retry-After`, body, or the kind of transport failure), how many retries were made, and
//! whether the request may be sent twice. `client/transport.rs` carries it out. The rules follow HubSpot's
//! docs and official SDK (https://developers.hubspot.com/docs/api-reference/error-handling and
//! https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines):
//! - 429 `TEN_SECONDLY_ROLLING` (or an unnamed 429): wait `Retry-After`, else until the window
//!   frees (at most 10 s), plus jitter, and hold every other request to the account meanwhile.
//! - 429 "secondly" (search): 1 s × attempt.
//! - 429 `DAILY`: stop; nothing succeeds before the portal's midnight.
//! - 5xx but 501, timeouts, dropped connections: exponential backoff from 200 ms with jitter.
//! - 423 Locked: at least 2 s. 477 Migration in progress: `Retry-After` seconds.
//! - Other 4xx: the answer is final; the caller reads it (400s are bisected by the batch code).
//! - A request that is not idempotent (batch create) is never sent again once it may have
//!   reached HubSpot: after a timeout, a dropped connection or any 5xx answer (HubSpot's edge
//!   answers 502, 503 or 504 after the origin committed the batch, and 524 when the origin did
//!   not answer in time), sending it again could create the records twice. Only connect errors
//!   (nothing was sent) and 429 answers (HubSpot did not do the work) are retried.

use std::time::Duration;

use super::errors::ApiError;

/// First backoff step for server errors and transport failures.
pub const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest backoff step.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Longest wait the client accepts from `Retry-After` before giving up with `RetryLater`.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Minimum wait after 423 Locked (HubSpot: locks last 2 seconds).
pub const LOCKED_WAIT: Duration = Duration::from_secs(2);
/// Wait after 477 when HubSpot sends no `Retry-After`.
pub const MIGRATION_DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for the 10-second window to free up.
pub const WINDOW_WAIT_MAX: Duration = Duration::from_secs(10);

/// Why a request is retried (bounded: used as a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RetryReason {
    /// 429 for the 10-second window.
    RateLimited,
    /// 429 for the search per-second limit.
    SearchRateLimited,
    /// 5xx (but 501).
    ServerError,
    /// 423 Locked.
    Locked,
    /// 477 Migration in progress.
    Migration,
    /// No answer within `timeout_secs`.
    Timeout,
    /// Connection refused, reset or dropped.
    Connection,
}

impl RetryReason {
    pub const ALL: [RetryReason; 7] = [
        RetryReason::RateLimited,
        RetryReason::SearchRateLimited,
        RetryReason::ServerError,
        RetryReason::Locked,
        RetryReason::Migration,
        RetryReason::Timeout,
        RetryReason::Connection,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::RateLimited => "rate_limited",
            RetryReason::SearchRateLimited => "search_rate_limited",
            RetryReason::ServerError => "server_error",
            RetryReason::Locked => "locked",
            RetryReason::Migration => "migration",
            RetryReason::Timeout => "timeout",
            RetryReason::Connection => "connection",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// How a request failed before a complete answer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// The connection could not be made: nothing was sent.
    Connect,
    /// No complete answer within the timeout: the request may have been processed.
    Timeout,
    /// The connection broke after the request went out: it may have been processed.
    Dropped,
}

/// What one attempt produced.
#[derive(Debug, Clone, Copy)]
pub enum Observation<'a> {
    Answer { status: u16, retry_after: Option<Duration>, body: &'a str },
    Failed(TransportFailure),
}

/// Everything the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// Retries already made for this request (0 after the first attempt).
    pub retries: u32,
    /// False for batch create: sending it twice may create records twice.
    pub idempotent: bool,
    pub observation: Observation<'a>,
    /// When the rate budget expects the 10-second window to have room again.
    pub window_frees_in: Duration,
    /// A random number in `[0, 1)` for jitter; tests pass a fixed one.
    pub jitter: f64,
}

/// Why a request is not sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DontRetry {
    /// The answer is final (4xx other than the ones above, 501, 1xx/3xx): the caller reads it.
    FinalAnswer,
    /// 429 DAILY.
    DailyLimit,
    /// A non-idempotent request may have been applied without an answer.
    DeliveryUncertain,
    /// Retries are used up; the last failure was of this kind.
    Exhausted(RetryReason),
    /// HubSpot asks to wait longer than `MAX_RETRY_AFTER`.
    WaitTooLong(Duration),
}

/// The decision after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAction {
    /// A 2xx answer (a 207 is split per record by the caller).
    Successful,
    /// Send the same request again after `delay`. With `pause_account`, every request to the
    /// account waits as long (a 429 for the shared window).
    Retry {
        reason: RetryReason,
        delay: Duration,
        pause_account: bool,
    },
    DontRetry(DontRetry),
}

/// Which limit a 429 answer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitKind {
    TenSecondly,
    Secondly,
    Daily,
}

/// Reads a 429 body: `policyName` when present, else the message text (the official SDK does
/// the same because `policyName` may be missing). Unknown 429s count as the 10-second limit.
pub fn rate_limit_kind(body: &str) -> RateLimitKind {
    let parsed = ApiError::parse(body);
    let policy = parsed.as_ref().and_then(|e| e.policy_name.as_deref()).unwrap_or("");
    let message = parsed.as_ref().map(|e| e.message.to_ascii_lowercase()).unwrap_or_default();
    match policy.to_ascii_uppercase().as_str() {
        "DAILY" => return RateLimitKind::Daily,
        "SECONDLY" => return RateLimitKind::Secondly,
        "TEN_SECONDLY_ROLLING" => return RateLimitKind::TenSecondly,
        _ => {}
    }
    if message.contains("daily limit") {
        RateLimitKind::Daily
    } else if message.contains("secondly limit") && !message.contains("ten_secondly") {
        RateLimitKind::Secondly
    } else {
        RateLimitKind::TenSecondly
    }
}

/// Reads `Retry-After` as seconds (HubSpot sends seconds on 477; HTTP dates are ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0 * 7.0)))
}

/// The retry rules for one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    pub fn new(max_retries: u32) -> Self {
        RetryPolicy {
            max_retries,
            backoff_base: BACKOFF_BASE,
            backoff_max: BACKOFF_MAX,
            max_retry_after: MAX_RETRY_AFTER,
        }
    }

    /// Exponential backoff with "equal jitter": half the step fixed, half random.
    pub fn backoff(&self, retries: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(retries.min(16));
        let step = self.backoff_base.saturating_mul(factor).min(self.backoff_max);
        step / 2 + step.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }

    pub fn decide(&self, attempt: &Attempt<'_>) -> RetryAction {
        let jitter = attempt.jitter.clamp(0.0, 1.0);
        let (reason, delay, pause_account) = match attempt.observation {
            Observation::Answer { status, .. } if (200..300).contains(&status) => {
                return RetryAction::Successful;
            }
            Observation::Answer { status: 429, retry_after, body } => match rate_limit_kind(body) {
                RateLimitKind::Daily => return RetryAction::DontRetry(DontRetry::DailyLimit),
                RateLimitKind::Secondly => {
                    let step = Duration::from_secs(u64::from(attempt.retries) + 1);
                    let delay = retry_after.unwrap_or(step).max(step);
                    (RetryReason::SearchRateLimited, delay + Duration::from_millis(250).mul_f64(jitter), false)
                }
                RateLimitKind::TenSecondly => {
                    let base = match retry_after {
                        Some(after) => after,
                        None => attempt.window_frees_in.clamp(Duration::from_secs(1), WINDOW_WAIT_MAX),
                    };
                    (RetryReason::RateLimited, base + Duration::from_secs(1).mul_f64(jitter), true)
                }
            },
            Observation::Answer { status: 423, retry_after, .. } => {
                let base = retry_after.unwrap_or(LOCKED_WAIT).max(LOCKED_WAIT);
                (RetryReason::Locked, base + Duration::from_millis(500).mul_f64(jitter), false)
            }
            Observation::Answer { status: 477, retry_after, .. } => {
                let base = retry_after.unwrap_or(MIGRATION_DEFAULT_WAIT);
                (RetryReason::Migration, base + Duration::from_millis(500).mul_f64(jitter), false)
            }
            Observation::Answer { status: 501, .. } => {
                return RetryAction::DontRetry(DontRetry::FinalAnswer);
            }
            // A 5xx may come from the edge after the origin did the work (a gateway error, or
            // Cloudflare's 524 "no answer from the origin within 100 s"), so a create is not
            // sent again: the caller reconciles it by search instead.
            Observation::Answer { status, .. } if !attempt.idempotent && (500..600).contains(&status) => {
                return RetryAction::DontRetry(DontRetry::DeliveryUncertain);
            }
            Observation::Answer { status, retry_after, .. } if (500..600).contains(&status) => {
                let backoff = self.backoff(attempt.retries, jitter);
                (RetryReason::ServerError, retry_after.map_or(backoff, |a| a.max(backoff)), false)
            }
            Observation::Answer { .. } => return RetryAction::DontRetry(DontRetry::FinalAnswer),
            Observation::Failed(TransportFailure::Connect) => {
                (RetryReason::Connection, self.backoff(attempt.retries, jitter), false)
            }
            Observation::Failed(failure) => {
                if !attempt.idempotent {
                    return RetryAction::DontRetry(DontRetry::DeliveryUncertain);
                }
                let reason = match failure {
                    TransportFailure::Timeout => RetryReason::Timeout,
                    _ => RetryReason::Connection,
                };
                (reason, self.backoff(attempt.retries, jitter), false)
            }
        };
        if delay > self.max_retry_after {
            return RetryAction::DontRetry(DontRetry::WaitTooLong(delay));
        }
        if attempt.retries >= self.max_retries {
            return RetryAction::DontRetry(DontRetry::Exhausted(reason));
        }
        RetryAction::Retry { reason, delay, pause_account }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_SECONDLY: &str = r#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","correlationId":"c","policyName":"TEN_SECONDLY_ROLLING","groupName":"publicapi:private_app-api-calls-ten-secondly:1:2"}"#;
    const SECONDLY_NO_POLICY: &str = r#"{"status":"error","message":"You have reached your secondly limit.","correlationId":"c","category":"RATE_LIMITS"}"#;
    const SECONDLY: &str = r#"{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT","correlationId":"c","policyName":"SECONDLY","requestId":"r"}"#;
    const DAILY: &str = r#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"c","policyName":"DAILY","requestId":"r"}"#;

    fn answer(status: u16, retry_after: Option<Duration>, body: &str) -> Attempt<'_> {
        Attempt {
            retries: 0,
            idempotent: true,
            observation: Observation::Answer { status, retry_after, body },
            window_frees_in: Duration::from_secs(4),
            jitter: 0.0,
        }
    }

    fn failed(failure: TransportFailure, idempotent: bool) -> Attempt<'static> {
        Attempt {
            retries: 0,
            idempotent,
            observation: Observation::Failed(failure),
            window_frees_in: Duration::from_secs(4),
            jitter: 0.0,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(6)
    }

    #[test]
    fn success_and_final_answers() {
        assert_eq!(policy().decide(&answer(200, None, "")), RetryAction::Successful);
        assert_eq!(policy().decide(&answer(207, None, "")), RetryAction::Successful);
        for status in [400, 401, 403, 404, 409, 414, 501, 302] {
            assert_eq!(
                policy().decide(&answer(status, None, "")),
                RetryAction::DontRetry(DontRetry::FinalAnswer),
                "{status}"
            );
        }
    }

    #[test]
    fn classifies_429_bodies() {
        assert_eq!(rate_limit_kind(TEN_SECONDLY), RateLimitKind::TenSecondly);
        assert_eq!(rate_limit_kind(SECONDLY), RateLimitKind::Secondly);
        assert_eq!(rate_limit_kind(SECONDLY_NO_POLICY), RateLimitKind::Secondly);
        assert_eq!(rate_limit_kind(DAILY), RateLimitKind::Daily);
        assert_eq!(rate_limit_kind("<html>busy</html>"), RateLimitKind::TenSecondly);
        assert_eq!(rate_limit_kind(r#"{"message":"You have reached your daily limit."}"#), RateLimitKind::Daily);
    }

    #[test]
    fn ten_secondly_waits_for_the_window_and_pauses_the_account() {
        assert_eq!(
            policy().decide(&answer(429, None, TEN_SECONDLY)),
            RetryAction::Retry { reason: RetryReason::RateLimited, delay: Duration::from_secs(4), pause_account: true }
        );
        // Retry-After wins over the budget's estimate.
        let a = answer(429, Some(Duration::from_secs(7)), TEN_SECONDLY);
        assert!(matches!(policy().decide(&a), RetryAction::Retry { delay, .. } if delay == Duration::from_secs(7)));
        // Never more than 10 s (+ jitter) without Retry-After.
        let mut a = answer(429, None, TEN_SECONDLY);
        a.window_frees_in = Duration::from_secs(60);
        a.jitter = 0.999;
        match policy().decide(&a) {
            RetryAction::Retry { delay, .. } => assert!(delay < Duration::from_secs(11)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secondly_waits_one_second_per_attempt() {
        let mut a = answer(429, None, SECONDLY);
        a.retries = 2;
        assert_eq!(
            policy().decide(&a),
            RetryAction::Retry {
                reason: RetryReason::SearchRateLimited,
                delay: Duration::from_secs(3),
                pause_account: false
            }
        );
    }

    #[test]
    fn daily_stops() {
        assert_eq!(policy().decide(&answer(429, None, DAILY)), RetryAction::DontRetry(DontRetry::DailyLimit));
    }

    #[test]
    fn server_errors_back_off_exponentially() {
        let p = policy();
        for (retries, ms) in [(0, 100), (1, 200), (2, 400), (3, 800)] {
            let mut a = answer(503, None, "");
            a.retries = retries;
            assert_eq!(
                p.decide(&a),
                RetryAction::Retry {
                    reason: RetryReason::ServerError,
                    delay: Duration::from_millis(ms),
                    pause_account: false
                }
            );
        }
        // Full jitter doubles the lower bound at most.
        let top = p.backoff(0, 0.999_999);
        assert!(top > Duration::from_millis(199) && top < Duration::from_millis(200), "{top:?}");
        assert_eq!(p.backoff(30, 0.0), BACKOFF_MAX / 2);
        for status in [500, 502, 504, 521, 523, 524] {
            assert!(matches!(p.decide(&answer(status, None, "")), RetryAction::Retry { .. }), "{status}");
        }
    }

    #[test]
    fn retries_are_bounded() {
        let mut a = answer(502, None, "");
        a.retries = 6;
        assert_eq!(policy().decide(&a), RetryAction::DontRetry(DontRetry::Exhausted(RetryReason::ServerError)));
        let mut a = failed(TransportFailure::Timeout, true);
        a.retries = 6;
        assert_eq!(policy().decide(&a), RetryAction::DontRetry(DontRetry::Exhausted(RetryReason::Timeout)));
    }

    #[test]
    fn locked_and_migration() {
        assert!(matches!(
            policy().decide(&answer(423, None, "")),
            RetryAction::Retry { reason: RetryReason::Locked, delay, .. } if delay == Duration::from_secs(2)
        ));
        assert!(matches!(
            policy().decide(&answer(477, Some(Duration::from_secs(30)), "")),
            RetryAction::Retry { reason: RetryReason::Migration, delay, .. } if delay == Duration::from_secs(30)
        ));
        assert_eq!(
            policy().decide(&answer(477, Some(Duration::from_secs(86_400)), "")),
            RetryAction::DontRetry(DontRetry::WaitTooLong(Duration::from_secs(86_400)))
        );
    }

    #[test]
    fn creates_are_not_resent_once_they_may_have_arrived() {
        let p = policy();
        assert_eq!(
            p.decide(&failed(TransportFailure::Timeout, false)),
            RetryAction::DontRetry(DontRetry::DeliveryUncertain)
        );
        assert_eq!(
            p.decide(&failed(TransportFailure::Dropped, false)),
            RetryAction::DontRetry(DontRetry::DeliveryUncertain)
        );
        let mut a = answer(524, None, "");
        a.idempotent = false;
        assert_eq!(p.decide(&a), RetryAction::DontRetry(DontRetry::DeliveryUncertain));
        // Nothing was sent, or HubSpot refused the work (429): a create is retried.
        assert!(matches!(
            p.decide(&failed(TransportFailure::Connect, false)),
            RetryAction::Retry { reason: RetryReason::Connection, .. }
        ));
        // A 5xx may follow a write that went through: a create is not sent again.
        for status in [500, 502, 503, 504, 524] {
            let mut a = answer(status, None, "");
            a.idempotent = false;
            assert_eq!(p.decide(&a), RetryAction::DontRetry(DontRetry::DeliveryUncertain), "{status}");
        }
        let mut a = answer(429, None, TEN_SECONDLY);
        a.idempotent = false;
        assert!(matches!(p.decide(&a), RetryAction::Retry { .. }));
        // Idempotent requests are retried after timeouts and drops.
        assert!(matches!(
            p.decide(&failed(TransportFailure::Dropped, true)),
            RetryAction::Retry { reason: RetryReason::Connection, .. }
        ));
    }

    #[test]
    fn reads_retry_after_seconds() {
        assert_eq!(parse_retry_after("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(" 1.5 "), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
