//! Rate limits and injected faults (HubSpot docs: usage guidelines, error handling; sources in docs/emulator.md).
//!
//! - The burst limit is a rolling 10-second window per app (`TEN_SECONDLY_ROLLING`).
//! - The daily limit counts per account and day (UTC) and applies to non-OAuth tokens only;
//!   OAuth answers carry no daily headers.
//! - Search has its own per-second bucket, is exempt from the burst window and answers
//!   without rate-limit headers.
//!
//! Requests count in the buckets at their arrival, as HubSpot counts them: a request that waits
//! out `latency_ms` before its answer has been counted since it came in.
//!
//! Faults are drawn once per request, before any state is touched.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::clock;
use super::config::{EmulatorConfig, FaultConfig};
use super::reply::{correlation_id, Reply};

const WINDOW: Duration = Duration::from_secs(10);
const SECOND: Duration = Duration::from_secs(1);
/// `Retry-After` sent with 477 answers, in seconds.
pub(crate) const MIGRATION_RETRY_AFTER_SECS: u64 = 1;

/// A fault chosen for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Close the connection without answering.
    Drop,
    /// Answer 500, 502, 503 or 504.
    ServerError(u16),
    Locked,
    Migration,
    /// A `TEN_SECONDLY_ROLLING` 429 from `burst_429`.
    Burst,
}

/// The `X-HubSpot-RateLimit-*` values for one answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateHeaders {
    pub max: u32,
    pub remaining: u32,
    pub secondly: u32,
    pub secondly_remaining: u32,
    /// `(limit, remaining)`, for non-OAuth tokens when a daily limit is on.
    pub daily: Option<(u64, u64)>,
}

impl RateHeaders {
    pub(crate) fn apply(&self, reply: &mut Reply) {
        reply.headers.push(("X-HubSpot-RateLimit-Interval-Milliseconds", "10000".into()));
        reply.headers.push(("X-HubSpot-RateLimit-Max", self.max.to_string()));
        reply.headers.push(("X-HubSpot-RateLimit-Remaining", self.remaining.to_string()));
        reply.headers.push(("X-HubSpot-RateLimit-Secondly", self.secondly.to_string()));
        reply.headers.push(("X-HubSpot-RateLimit-Secondly-Remaining", self.secondly_remaining.to_string()));
        if let Some((limit, remaining)) = self.daily {
            reply.headers.push(("X-HubSpot-RateLimit-Daily", limit.to_string()));
            reply.headers.push(("X-HubSpot-RateLimit-Daily-Remaining", remaining.to_string()));
        }
    }
}

/// Who is calling, for the buckets: the app and whether it came through OAuth.
pub(crate) struct Caller<'a> {
    pub app: &'a str,
    pub oauth: bool,
}

struct State {
    max_per_10s: Option<u32>,
    daily_limit: Option<u64>,
    search_per_sec: Option<u32>,
    windows: HashMap<String, VecDeque<Instant>>,
    day: NaiveDate,
    daily_count: u64,
    search_window: VecDeque<Instant>,
    faults: FaultConfig,
    burst_left: u32,
    /// Until when `burst_429_ms` answers 429.
    burst_until: Option<Instant>,
    rng: StdRng,
}

pub(crate) struct Limits {
    state: Mutex<State>,
    portal_id: u64,
}

impl Limits {
    pub(crate) fn new(config: &EmulatorConfig) -> Self {
        Limits {
            state: Mutex::new(State {
                max_per_10s: config.max_requests_per_10s,
                daily_limit: config.daily_limit,
                search_per_sec: config.search_requests_per_sec,
                windows: HashMap::new(),
                day: clock::today_utc(),
                daily_count: 0,
                search_window: VecDeque::new(),
                faults: config.faults.clone(),
                burst_left: config.faults.burst_429,
                burst_until: burst_until(&config.faults),
                rng: StdRng::seed_from_u64(config.seed ^ 0xfa17),
            }),
            portal_id: config.portal_id,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_faults(&self, faults: FaultConfig) {
        let mut s = self.lock();
        s.burst_left = faults.burst_429;
        s.burst_until = burst_until(&faults);
        s.faults = faults;
    }

    /// True while `burst_429_ms` answers every non-search request with a 429.
    pub(crate) fn in_timed_burst(&self, now: Instant) -> bool {
        self.lock().burst_until.is_some_and(|until| now < until)
    }

    pub(crate) fn set_rate_limit(&self, max_per_10s: Option<u32>) {
        let mut s = self.lock();
        s.max_per_10s = max_per_10s;
        s.windows.clear();
    }

    /// Added latency and the fault, if any, for the next request.
    pub(crate) fn draw_fault(&self) -> (u64, Option<Fault>) {
        let mut s = self.lock();
        let latency = s.faults.latency_ms;
        if s.burst_left > 0 {
            s.burst_left -= 1;
            return (latency, Some(Fault::Burst));
        }
        let f = s.faults.clone();
        if f.drop_rate <= 0.0 && f.error_rate <= 0.0 && f.locked_rate <= 0.0 && f.migration_rate <= 0.0 {
            return (latency, None);
        }
        let r: f64 = s.rng.random();
        let mut edge = f.drop_rate;
        if r < edge {
            return (latency, Some(Fault::Drop));
        }
        edge += f.error_rate;
        if r < edge {
            let status = [500, 502, 503, 504][s.rng.random_range(0..4)];
            return (latency, Some(Fault::ServerError(status)));
        }
        edge += f.locked_rate;
        if r < edge {
            return (latency, Some(Fault::Locked));
        }
        edge += f.migration_rate;
        if r < edge {
            return (latency, Some(Fault::Migration));
        }
        (latency, None)
    }

    /// The after-write fault, if any, for a create or upsert that was just applied: a
    /// dropped connection or a 502/504 (drawn in that order).
    pub(crate) fn draw_after_write_fault(&self) -> Option<Fault> {
        let mut s = self.lock();
        let (drop, error) = (s.faults.drop_after_write_rate, s.faults.error_after_write_rate);
        if drop <= 0.0 && error <= 0.0 {
            return None;
        }
        let r: f64 = s.rng.random();
        if r < drop {
            return Some(Fault::Drop);
        }
        if r < drop + error {
            return Some(Fault::ServerError([502, 504][s.rng.random_range(0..2)]));
        }
        None
    }

    fn roll_day(s: &mut State) {
        let today = clock::today_utc();
        if today != s.day {
            s.day = today;
            s.daily_count = 0;
        }
    }

    /// Counts a non-search request against the buckets at `now`, the moment it arrived (as
    /// HubSpot counts it, whatever the answer's latency). `Ok` carries the headers to send
    /// (none when no limit is on); `Err` is the 429 answer.
    pub(crate) fn admit(&self, caller: &Caller<'_>, now: Instant) -> Result<Option<RateHeaders>, Reply> {
        let mut s = self.lock();
        let daily_applies = !caller.oauth && s.daily_limit.is_some();
        if s.max_per_10s.is_none() && !daily_applies {
            return Ok(None);
        }
        Self::roll_day(&mut s);
        let max = s.max_per_10s;
        let daily_limit = s.daily_limit.filter(|_| daily_applies);
        let headers = |s: &State, count: u32, last_second: u32| RateHeaders {
            max: max.unwrap_or(0),
            remaining: max.unwrap_or(0).saturating_sub(count),
            secondly: max.map(|m| m.div_ceil(10)).unwrap_or(0),
            secondly_remaining: max.map(|m| m.div_ceil(10)).unwrap_or(0).saturating_sub(last_second),
            daily: daily_limit.map(|l| (l, l.saturating_sub(s.daily_count))),
        };
        if let Some(limit) = daily_limit {
            if s.daily_count >= limit {
                let h = headers(&s, 0, 0);
                let mut reply = Reply::json(
                    429,
                    &json!({
                        "status": "error",
                        "message": "You have reached your daily limit.",
                        "errorType": "RATE_LIMIT",
                        "correlationId": correlation_id(),
                        "policyName": "DAILY",
                        "requestId": correlation_id(),
                    }),
                );
                if max.is_some() {
                    h.apply(&mut reply);
                }
                return Err(reply);
            }
        }
        let (count, last_second) = match max {
            Some(max) => {
                let window = s.windows.entry(caller.app.to_string()).or_default();
                while window.front().is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW) {
                    window.pop_front();
                }
                // Requests are counted at their arrival, which is passed in: one that arrived
                // later may have been counted first (its answer was due sooner), so count only
                // the arrivals up to this one.
                let within = |window: &VecDeque<Instant>, span: Duration| {
                    window.iter().filter(|t| **t <= now && now.duration_since(**t) < span).count() as u32
                };
                let (count, last_second) = (within(window, WINDOW), within(window, SECOND));
                if u64::from(count) >= u64::from(max) {
                    let h = headers(&s, count, last_second);
                    let mut reply = self.ten_secondly_reply(caller);
                    h.apply(&mut reply);
                    return Err(reply);
                }
                let at = window.partition_point(|t| *t <= now);
                window.insert(at, now);
                (count + 1, last_second + 1)
            }
            None => (0, 0),
        };
        if daily_applies {
            s.daily_count += 1;
        }
        let h = headers(&s, count, last_second);
        Ok(if max.is_some() || daily_applies { Some(h) } else { None })
    }

    /// Counts a search request, arrived at `now`, against the per-second search bucket (and the
    /// daily count).
    pub(crate) fn admit_search(&self, caller: &Caller<'_>, now: Instant) -> Result<(), Reply> {
        let mut s = self.lock();
        if let Some(per_sec) = s.search_per_sec {
            while s.search_window.front().is_some_and(|t| now.saturating_duration_since(*t) >= SECOND) {
                s.search_window.pop_front();
            }
            let count = s.search_window.iter().filter(|t| **t <= now && now.duration_since(**t) < SECOND).count();
            if count as u64 >= u64::from(per_sec) {
                return Err(Reply::json(
                    429,
                    &json!({
                        "status": "error",
                        "message": "You have reached your secondly limit.",
                        "errorType": "RATE_LIMIT",
                        "correlationId": correlation_id(),
                        "policyName": "SECONDLY",
                        "requestId": correlation_id(),
                    }),
                ));
            }
            let at = s.search_window.partition_point(|t| *t <= now);
            s.search_window.insert(at, now);
        }
        if !caller.oauth && s.daily_limit.is_some() {
            Self::roll_day(&mut s);
            s.daily_count += 1;
        }
        Ok(())
    }

    /// The burst 429 body as observed (HubSpot docs: usage guidelines; sources in docs/emulator.md).
    pub(crate) fn ten_secondly_reply(&self, caller: &Caller<'_>) -> Reply {
        let kind = if caller.oauth { "oauth-app" } else { "private_app" };
        Reply::json(
            429,
            &json!({
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": correlation_id(),
                "policyName": "TEN_SECONDLY_ROLLING",
                "groupName": format!("publicapi:{kind}-api-calls-ten-secondly:{}:{}", app_number(caller.app), self.portal_id),
            }),
        )
    }
}

/// The end of the `burst_429_ms` fault, counted from now.
fn burst_until(faults: &FaultConfig) -> Option<Instant> {
    (faults.burst_429_ms > 0).then(|| Instant::now() + Duration::from_millis(faults.burst_429_ms))
}

/// A stable number standing for an app in `groupName`.
pub(crate) fn app_number(app: &str) -> u64 {
    app.bytes().fold(1_000_003u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 10_000_000
}

/// The answer for an injected fault (other than a dropped connection).
pub(crate) fn fault_reply(fault: Fault, limits: &Limits, caller: &Caller<'_>) -> Reply {
    match fault {
        Fault::ServerError(500) => Reply::json(
            500,
            &json!({"status": "error", "message": "internal error", "correlationId": correlation_id()}),
        ),
        Fault::ServerError(status) => {
            let title = match status {
                502 => "502 Bad Gateway",
                503 => "503 Service Temporarily Unavailable",
                _ => "504 Gateway Time-out",
            };
            Reply::html(
                status,
                format!("<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"),
            )
        }
        Fault::Locked => Reply::json(
            423,
            &json!({
                "status": "error",
                "message": "Locked: too many concurrent writes to this portal. Retry after at least 2 seconds.",
                "correlationId": correlation_id(),
            }),
        ),
        Fault::Migration => Reply::json(
            477,
            &json!({
                "status": "error",
                "message": "This portal is being migrated. Retry after the time given in Retry-After.",
                "correlationId": correlation_id(),
            }),
        )
        .with_header("Retry-After", MIGRATION_RETRY_AFTER_SECS.to_string()),
        Fault::Burst => limits.ten_secondly_reply(caller),
        Fault::Drop => Reply::empty(500),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: Option<u32>, daily: Option<u64>) -> Limits {
        Limits::new(&EmulatorConfig { max_requests_per_10s: max, daily_limit: daily, ..EmulatorConfig::default() })
    }

    #[test]
    fn rolling_window_per_app() {
        let l = limits(Some(2), None);
        let t0 = Instant::now();
        let a = Caller { app: "a", oauth: false };
        let h = l.admit(&a, t0).unwrap().unwrap();
        assert_eq!((h.max, h.remaining), (2, 1));
        assert_eq!(l.admit(&a, t0).unwrap().unwrap().remaining, 0);
        assert_eq!(l.admit(&a, t0).unwrap_err().status, 429);
        // Another app has its own window.
        assert!(l.admit(&Caller { app: "b", oauth: false }, t0).is_ok());
        // The window rolls.
        assert!(l.admit(&a, t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn requests_count_at_their_arrival_even_when_admitted_out_of_order() {
        let l = limits(Some(2), None);
        let t0 = Instant::now();
        let a = Caller { app: "a", oauth: false };
        // Arrived 5 s after the next one, but admitted first.
        assert_eq!(l.admit(&a, t0 + Duration::from_secs(5)).unwrap().unwrap().remaining, 1);
        // Arrived at t0: nothing had arrived before it.
        assert_eq!(l.admit(&a, t0).unwrap().unwrap().remaining, 1);
        // 10.5 s after t0 the first arrival has left the window, the later one has not.
        assert_eq!(l.admit(&a, t0 + Duration::from_millis(10_500)).unwrap().unwrap().remaining, 0);
        assert_eq!(l.admit(&a, t0 + Duration::from_millis(10_600)).unwrap_err().status, 429);
    }

    #[test]
    fn daily_limit_skips_oauth() {
        let l = limits(None, Some(1));
        let t0 = Instant::now();
        let pat = Caller { app: "a", oauth: false };
        assert_eq!(l.admit(&pat, t0).unwrap().unwrap().daily, Some((1, 0)));
        let reply = l.admit(&pat, t0).unwrap_err();
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["policyName"], "DAILY");
        assert!(l.admit(&Caller { app: "o", oauth: true }, t0).unwrap().is_none());
    }

    #[test]
    fn timed_burst_lasts_its_milliseconds() {
        let l = limits(None, None);
        assert!(!l.in_timed_burst(Instant::now()));
        l.set_faults(FaultConfig { burst_429_ms: 50, ..FaultConfig::default() });
        assert!(l.in_timed_burst(Instant::now()));
        assert!(!l.in_timed_burst(Instant::now() + Duration::from_millis(60)));
        l.set_faults(FaultConfig::default());
        assert!(!l.in_timed_burst(Instant::now()));
    }

    #[test]
    fn bursts_then_shares() {
        let l = limits(None, None);
        l.set_faults(FaultConfig { burst_429: 2, ..FaultConfig::default() });
        assert_eq!(l.draw_fault().1, Some(Fault::Burst));
        assert_eq!(l.draw_fault().1, Some(Fault::Burst));
        assert_eq!(l.draw_fault().1, None);
        l.set_faults(FaultConfig { error_rate: 1.0, ..FaultConfig::default() });
        assert!(matches!(l.draw_fault().1, Some(Fault::ServerError(_))));
    }

    #[test]
    fn after_write_faults_are_drawn_apart() {
        let l = limits(None, None);
        assert_eq!(l.draw_after_write_fault(), None);
        l.set_faults(FaultConfig { error_after_write_rate: 1.0, ..FaultConfig::default() });
        assert_eq!(l.draw_fault().1, None, "not a before-write fault");
        for _ in 0..20 {
            assert!(matches!(l.draw_after_write_fault(), Some(Fault::ServerError(502 | 504))));
        }
        l.set_faults(FaultConfig { drop_after_write_rate: 1.0, ..FaultConfig::default() });
        assert_eq!(l.draw_after_write_fault(), Some(Fault::Drop));
    }
}
