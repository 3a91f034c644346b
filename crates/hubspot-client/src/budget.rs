//! The request budget of one HubSpot account, shared by every sync that writes to it.
//!
//! HubSpot counts requests per app in a rolling 10-second window, per account per day, and CRM
//! searches per second
//! (https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines). One
//! `RateBudget` per account, behind an `Arc`, is asked before every request, so syncs running side
//! by side never exceed together what one respects alone. The window is a sliding log of requests.
//! HubSpot counts a request when it arrives, after it was sent and before its answer came back.
//! What matters for the next request is how much later the earlier one can have arrived than the
//! next one will (both travel the same way): so a request counts in the log from its send time
//! plus `ARRIVAL_ALLOWANCE`, or from its answer's time if that came sooner (it cannot have
//! arrived after its answer), and leaves the log one window (plus `WINDOW_MARGIN`, timer slack)
//! after that. Counting from the answer instead would cost the window's share of the answer's
//! latency: at 1 s answers, a limit sustained at 10 / (10 + 1.1), about 90%; counted this way it
//! is 10 / (10 + 0.3), 97%, at any latency.
//!
//! HubSpot's `X-HubSpot-RateLimit-*` headers tighten the budget at run time: a lower `Max` (a
//! different tier) lowers the window's capacity, a `Remaining` below what this process alone
//! explains (other processes using the same app) adds their requests to the log (what this
//! process explains: every request it sent from one window plus `ARRIVAL_ALLOWANCE` before the
//! answered one, since any of those may have arrived in HubSpot's window for it), and the daily
//! pair replaces the local daily count. Headers never loosen it: a `Max` above the configured
//! limit leaves the configured one in force, and only the part of HubSpot's `Remaining` that
//! falls below the configured window's room counts as foreign use. Searches also count against the 10-second window and the
//! daily count, to be safe, on top of their own per-second bucket.
//!
//! The budget also holds the account's cap on requests in flight (`max_in_flight`): `acquire`
//! hands out a `SendPermit` that holds one slot until the attempt's answer has been read, so
//! callers on many tasks (and several syncs) can send at once and the rate budget stays the only
//! throttle. A 429 for the 10-second window pauses the whole account once: the first 429 sets
//! the pause, and requests sent before it that get a 429 too wait for the same pause instead of
//! starting their own (`SendPermit::rate_limited`). Nothing is sent during the pause; after it,
//! one request goes first, and the others follow once it is answered without a 429, so a window
//! still full costs one more 429, not one per waiting request. Once the daily limit is spent
//! (a 429 `DAILY`, or HubSpot's daily headers at 0), every waiting caller is woken and refused.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::settings::ClientSettings;

use crate::metrics::BudgetWaited;

/// How much later a request may reach HubSpot than a request sent after it would: HubSpot
/// counts a request on arrival, and a request counts in the log from its send time plus this
/// (or from its answer, when that came sooner). Covers the jitter of the one-way trip (a new
/// connection's handshakes, a slow hop), not its length, which every request pays alike.
pub const ARRIVAL_ALLOWANCE: Duration = Duration::from_millis(200);
/// How much longer than HubSpot's window a request stays in the log once it counts: rounding
/// and timer slack.
pub const WINDOW_MARGIN: Duration = Duration::from_millis(100);
/// The same for the one-second search bucket.
pub const SEARCH_WINDOW_MARGIN: Duration = Duration::from_millis(200);
/// How long an answer may take and still be compared with this process's sends of its window
/// (longer than any request's timeout).
pub const OWN_SENDS_KEPT: Duration = Duration::from_secs(120);
/// HubSpot's burst window unless its headers say otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Once the daily limit is reached, one request is let through this often to learn whether the
/// portal's midnight has passed (the portal's time zone is unknown to the client).
pub const DAILY_PROBE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Which buckets a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestClass {
    /// Every API call but search: the 10-second window and the daily count.
    Standard,
    /// CRM search: the search bucket as well.
    Search,
}

/// The daily limit is used up; the caller turns this into `HubSpotError::DailyLimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyLimitReached {
    pub limit: u64,
}

/// HubSpot's rate-limit headers of one response (all optional; searches send none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub max: Option<u32>,
    pub remaining: Option<u32>,
    pub interval_ms: Option<u64>,
    pub daily: Option<u64>,
    pub daily_remaining: Option<u64>,
}

impl RateLimitHeaders {
    /// Reads the headers from a response's header map.
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> RateLimitHeaders {
        fn num<T: std::str::FromStr>(h: &reqwest::header::HeaderMap, name: &str) -> Option<T> {
            h.get(name)?.to_str().ok()?.trim().parse().ok()
        }
        RateLimitHeaders {
            max: num(headers, "x-hubspot-ratelimit-max"),
            remaining: num(headers, "x-hubspot-ratelimit-remaining"),
            interval_ms: num(headers, "x-hubspot-ratelimit-interval-milliseconds"),
            daily: num(headers, "x-hubspot-ratelimit-daily"),
            daily_remaining: num(headers, "x-hubspot-ratelimit-daily-remaining"),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == RateLimitHeaders::default()
    }
}

/// A point-in-time view of a budget, for metrics and run summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSnapshot {
    /// Requests allowed per window now (the configured value, or lower if HubSpot said so).
    pub max_per_window: u32,
    pub interval_ms: u64,
    /// Requests counted in the current window, including other processes' seen in headers.
    pub used_in_window: u32,
    pub remaining_in_window: u32,
    /// The last `X-HubSpot-RateLimit-Remaining` HubSpot sent.
    pub server_remaining: Option<u32>,
    pub daily_limit: u64,
    pub daily_used: u64,
    pub daily_remaining: u64,
    pub search_requests_per_sec: u32,
    /// Total seconds requests spent waiting for the budget.
    pub waited_secs: f64,
    /// Requests holding an in-flight slot now (sent, or about to be).
    pub in_flight: usize,
    /// The account's cap on requests in flight.
    pub max_in_flight: usize,
}

/// One HubSpot account's shared request budget. See the module docs.
#[derive(Debug)]
pub struct RateBudget {
    account: String,
    state: Mutex<State>,
    waited_micros: AtomicU64,
    /// One permit per request that may be in flight.
    slots: Semaphore,
    max_in_flight: usize,
    /// Wakes waiters when the gate opens after a pause or the daily limit is spent.
    changed: Notify,
}

/// The right to send one attempt of one request: it holds one of the account's in-flight
/// slots until it is dropped, which the client does once the answer has been read (or the
/// attempt failed). Tell it what came back with `answered` and, for a 429 of the 10-second
/// window, `rate_limited`.
#[derive(Debug)]
pub struct SendPermit<'a> {
    budget: &'a RateBudget,
    _slot: SemaphorePermit<'a>,
    id: u64,
    sent_at: Instant,
}

/// The account's pause after a 429, as one request sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountPause {
    /// Nothing is sent to the account before this.
    pub until: Instant,
    /// True when the request was sent before an earlier 429 had paused the account: its 429
    /// joins that pause rather than starting (or lengthening) one.
    pub joined: bool,
}

/// After a pause, the first request goes alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// No pause to recover from: requests go as the budget allows.
    Idle,
    /// The next standard request goes first, alone.
    Due,
    /// That request is in flight; the others wait for its answer.
    InFlight(u64),
}

/// What `try_take` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    /// Counted as sent, with this id.
    Sent(u64),
    /// Try again at this instant (or sooner if woken).
    Until(Instant),
    /// Wait until woken: the request sent first after a pause has no answer yet.
    Gate,
}

/// One request in the 10-second log.
#[derive(Debug, Clone, Copy)]
struct Sent {
    /// Which permit sent it; 0 for requests of other processes learned from headers.
    id: u64,
    /// When the budget let it through.
    sent: Instant,
    /// The latest moment HubSpot can have counted it: its send time plus `ARRIVAL_ALLOWANCE`,
    /// or its answer's time if that came sooner.
    counted_by: Instant,
    answered: bool,
}

#[derive(Debug)]
struct State {
    configured_max: u32,
    max_per_window: u32,
    interval: Duration,
    /// Requests that may still count in HubSpot's window, in send order.
    sends: VecDeque<Sent>,
    /// When this process sent each request of the last `OWN_SENDS_KEPT` (plus a window), in
    /// order: what HubSpot's `Remaining` is compared with.
    own_sends: VecDeque<Instant>,
    search_per_sec: u32,
    search_sends: VecDeque<Instant>,
    paused_until: Option<Instant>,
    /// When the latest pause was declared (the answer time of the 429 that set it): requests
    /// sent before it that also get a 429 join it.
    pause_declared_at: Option<Instant>,
    probe: Probe,
    /// The last permit id handed out.
    next_id: u64,
    /// When the daily limit was found spent: daily headers of requests sent before that are
    /// stale and do not reopen the day.
    daily_spent_at: Option<Instant>,
    configured_daily: u64,
    daily_limit: u64,
    daily_used: u64,
    day: NaiveDate,
    next_daily_probe: Option<Instant>,
    server_remaining: Option<u32>,
}

impl RateBudget {
    pub fn new(settings: &ClientSettings) -> Arc<Self> {
        let max = settings.max_requests_per_10s.max(1);
        Arc::new(RateBudget {
            account: settings.account.clone(),
            state: Mutex::new(State {
                configured_max: max,
                max_per_window: max,
                interval: DEFAULT_INTERVAL,
                sends: VecDeque::new(),
                own_sends: VecDeque::new(),
                search_per_sec: settings.search_requests_per_sec.max(1),
                search_sends: VecDeque::new(),
                paused_until: None,
                pause_declared_at: None,
                probe: Probe::Idle,
                next_id: 0,
                daily_spent_at: None,
                configured_daily: settings.daily_limit.max(1),
                daily_limit: settings.daily_limit.max(1),
                daily_used: 0,
                day: Utc::now().date_naive(),
                next_daily_probe: None,
                server_remaining: None,
            }),
            waited_micros: AtomicU64::new(0),
            slots: Semaphore::new(settings.max_in_flight.max(1)),
            max_in_flight: settings.max_in_flight.max(1),
            changed: Notify::new(),
        })
    }

    /// The account this budget belongs to.
    pub fn account(&self) -> &str {
        &self.account
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent numbers; keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for an in-flight slot, then until one more request of `class` fits every bucket
    /// (and the account is not paused), then counts it as sent. The permit holds the slot
    /// until it is dropped. Refused at once, without waiting, once the daily limit is spent.
    pub async fn acquire(&self, class: RequestClass) -> Result<SendPermit<'_>, DailyLimitReached> {
        if let Some(refused) = self.lock().daily_refusal(Instant::now()) {
            return Err(refused);
        }
        let slot = self.slots.acquire().await.expect("the budget never closes its slots");
        let mut waited = Duration::ZERO;
        let result = loop {
            // Registered before the state is read, so a wake-up in between is not lost.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            let take = self.lock().try_take(now, class);
            match take {
                Ok(Take::Sent(id)) => break Ok((id, now)),
                Err(e) => break Err(e),
                Ok(Take::Until(until)) => {
                    tracing::trace!(account = %self.account, wait_ms = (until - now).as_millis() as u64, "Waiting for the HubSpot rate budget.");
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = notified.as_mut() => {}
                    }
                }
                Ok(Take::Gate) => {
                    tracing::trace!(account = %self.account, "Waiting for the first request after a pause to be answered.");
                    notified.await;
                }
            }
            waited += Instant::now().saturating_duration_since(now);
        };
        if !waited.is_zero() {
            self.waited_micros.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
            BudgetWaited { account: &self.account, seconds: waited.as_secs_f64() }.emit();
        }
        let (id, sent_at) = result?;
        Ok(SendPermit { budget: self, _slot: slot, id, sent_at })
    }

    /// The account's cap on requests in flight.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Requests holding an in-flight slot now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.slots.available_permits()
    }

    /// Learns from an answer: its request counts from now on from the answer's time, and its
    /// rate-limit headers, if any, tighten the budget. `sent_at` is when its request was sent.
    /// (The client tells its `SendPermit` instead, which knows exactly which request it was.)
    pub fn observe(&self, headers: &RateLimitHeaders, sent_at: Instant) {
        let mut st = self.lock();
        let now = Instant::now();
        st.answered(sent_at, now);
        let spent = !headers.is_empty() && st.observe(headers, sent_at, now);
        drop(st);
        if spent {
            self.changed.notify_waiters();
        }
    }

    /// Nobody sends before `until`; then one request goes first (see the module docs). The
    /// client pauses through `SendPermit::rate_limited`, which knows when the request was sent.
    pub fn pause_until(&self, until: Instant) {
        self.lock().declare_pause(until, Instant::now());
    }

    /// How long until the oldest request in the window leaves it: when HubSpot's window should
    /// have room again. Never more than the window itself.
    pub fn window_frees_in(&self) -> Duration {
        let st = self.lock();
        let now = Instant::now();
        let window = st.interval;
        st.sends
            .iter()
            .map(|s| s.counted_by + window)
            .filter(|leaves| *leaves > now)
            .min()
            .map(|leaves| leaves.saturating_duration_since(now))
            .unwrap_or(window)
            .min(window)
    }

    /// HubSpot answered 429 DAILY: the account is out of requests until the portal's midnight.
    /// Every caller waiting for the budget is woken and refused.
    pub fn mark_daily_exhausted(&self) {
        self.lock().daily_spent(Instant::now());
        self.changed.notify_waiters();
    }

    /// Requests left in the current window.
    pub fn remaining_in_window(&self) -> u32 {
        self.snapshot().remaining_in_window
    }

    /// Requests left today.
    pub fn daily_remaining(&self) -> u64 {
        self.snapshot().daily_remaining
    }

    /// Total seconds requests have waited for this budget.
    pub fn waited_secs(&self) -> f64 {
        self.waited_micros.load(Ordering::Relaxed) as f64 / 1_000_000.0
    }

    pub fn snapshot(&self) -> BudgetSnapshot {
        let mut st = self.lock();
        let now = Instant::now();
        st.prune_all(now);
        st.roll_day();
        let used = st.sends.len().min(u32::MAX as usize) as u32;
        BudgetSnapshot {
            max_per_window: st.max_per_window,
            interval_ms: st.interval.as_millis() as u64,
            used_in_window: used,
            remaining_in_window: st.max_per_window.saturating_sub(used),
            server_remaining: st.server_remaining,
            daily_limit: st.daily_limit,
            daily_used: st.daily_used,
            daily_remaining: st.daily_limit.saturating_sub(st.daily_used),
            search_requests_per_sec: st.search_per_sec,
            waited_secs: self.waited_secs(),
            in_flight: self.in_flight(),
            max_in_flight: self.max_in_flight,
        }
    }
}

impl SendPermit<'_> {
    /// When the request was let through.
    pub fn sent_at(&self) -> Instant {
        self.sent_at
    }

    /// HubSpot answered `status` with these rate-limit headers: the request counts from now on
    /// from its answer's time, the headers tighten the budget, and, if this was the request
    /// sent first after a pause and the answer is not a 429, the others may go.
    pub fn answered(&self, status: u16, headers: &RateLimitHeaders) {
        let mut st = self.budget.lock();
        let now = Instant::now();
        st.answered_id(self.id, now);
        let mut wake = false;
        if !headers.is_empty() {
            wake |= st.observe(headers, self.sent_at, now);
        }
        if status != 429 && st.probe == Probe::InFlight(self.id) {
            st.probe = Probe::Idle;
            wake = true;
        }
        drop(st);
        if wake {
            self.budget.changed.notify_waiters();
        }
    }

    /// HubSpot answered 429 for the 10-second window, and the retry policy says to wait
    /// `delay`. If an earlier 429 paused the account after this request was sent, this one
    /// joins that pause; otherwise it pauses the account for `delay`.
    pub fn rate_limited(&self, delay: Duration) -> AccountPause {
        let mut st = self.budget.lock();
        let now = Instant::now();
        if let Some(declared) = st.pause_declared_at {
            if self.sent_at <= declared {
                return AccountPause { until: st.paused_until.unwrap_or(now).max(now), joined: true };
            }
        }
        st.declare_pause(now + delay, now);
        AccountPause { until: now + delay, joined: false }
    }
}

impl Drop for SendPermit<'_> {
    /// The request sent first after a pause got no usable answer: the next one goes first.
    fn drop(&mut self) {
        let mut st = self.budget.lock();
        if st.probe == Probe::InFlight(self.id) {
            st.probe = Probe::Due;
            drop(st);
            self.budget.changed.notify_waiters();
        }
    }
}

impl Sent {
    /// When the request leaves the log: HubSpot's window after it was counted, plus the margin.
    fn leaves_at(&self, interval: Duration) -> Instant {
        self.counted_by + interval + WINDOW_MARGIN
    }

    /// The request was answered at `now`: HubSpot counted it by then at the latest.
    fn answer(&mut self, now: Instant) {
        self.counted_by = self.counted_by.min(now.max(self.sent));
        self.answered = true;
    }
}

impl State {
    /// Drops the requests that left the window from the front of the log. A request answered
    /// sooner than an older one may leave first and stay a little longer: see `prune_all`.
    fn prune(&mut self, now: Instant) {
        while self.sends.front().is_some_and(|s| s.leaves_at(self.interval) <= now) {
            self.sends.pop_front();
        }
        let search_window = Duration::from_secs(1) + SEARCH_WINDOW_MARGIN;
        while self.search_sends.front().is_some_and(|t| now.saturating_duration_since(*t) >= search_window) {
            self.search_sends.pop_front();
        }
    }

    /// Drops every request that left the window.
    fn prune_all(&mut self, now: Instant) {
        self.prune(now);
        let interval = self.interval;
        self.sends.retain(|s| s.leaves_at(interval) > now);
    }

    /// The local day count restarts at UTC midnight; HubSpot's daily headers correct it to the
    /// portal's own day as soon as a response carries them.
    fn roll_day(&mut self) {
        let today = Utc::now().date_naive();
        if today != self.day {
            self.day = today;
            self.daily_used = 0;
            self.next_daily_probe = None;
        }
    }

    /// The refusal for a request now, if the daily limit is spent and no probe is due.
    fn daily_refusal(&mut self, now: Instant) -> Option<DailyLimitReached> {
        self.roll_day();
        (self.daily_used >= self.daily_limit && self.next_daily_probe.is_some_and(|at| now < at))
            .then_some(DailyLimitReached { limit: self.daily_limit })
    }

    /// The daily limit is spent, as HubSpot said at `now`.
    fn daily_spent(&mut self, now: Instant) {
        self.daily_used = self.daily_used.max(self.daily_limit);
        self.next_daily_probe = Some(now + DAILY_PROBE_INTERVAL);
        self.daily_spent_at = Some(now);
    }

    /// Nobody sends before `until`, then one standard request goes first.
    fn declare_pause(&mut self, until: Instant, now: Instant) {
        if self.paused_until.is_none_or(|p| p < until) {
            self.paused_until = Some(until);
        }
        self.pause_declared_at = Some(now);
        self.probe = Probe::Due;
    }

    /// Takes one request from every bucket, or says how long to wait.
    fn try_take(&mut self, now: Instant, class: RequestClass) -> Result<Take, DailyLimitReached> {
        self.roll_day();
        // Past the daily limit, one request per `DAILY_PROBE_INTERVAL` goes through to learn
        // (from its headers or its 429) whether the portal's day has turned.
        let is_probe = self.daily_used >= self.daily_limit;
        if is_probe && self.next_daily_probe.is_some_and(|at| now < at) {
            return Err(DailyLimitReached { limit: self.daily_limit });
        }
        self.prune(now);
        let mut wait_until: Option<Instant> = None;
        let mut later = |t: Instant| {
            if t > now && wait_until.is_none_or(|w| w < t) {
                wait_until = Some(t);
            }
        };
        if let Some(p) = self.paused_until {
            later(p);
        }
        let max = self.max_per_window.max(1) as usize;
        if self.sends.len() >= max {
            self.prune_all(now);
        }
        if self.sends.len() >= max {
            // Room opens when all but `max - 1` requests have left the log.
            let mut leaving: Vec<Instant> = self.sends.iter().map(|s| s.leaves_at(self.interval)).collect();
            leaving.sort_unstable();
            later(leaving[self.sends.len() - max]);
        }
        if class == RequestClass::Search {
            let per_sec = self.search_per_sec.max(1) as usize;
            if self.search_sends.len() >= per_sec {
                let oldest = self.search_sends[self.search_sends.len() - per_sec];
                later(oldest + Duration::from_secs(1) + SEARCH_WINDOW_MARGIN);
            }
        }
        if let Some(until) = wait_until {
            return Ok(Take::Until(until));
        }
        // Searches do not tell whether the 10-second window has room, so they neither go first
        // after a pause nor wait for the one that does.
        if class == RequestClass::Standard && matches!(self.probe, Probe::InFlight(_)) {
            return Ok(Take::Gate);
        }
        if is_probe {
            self.next_daily_probe = Some(now + DAILY_PROBE_INTERVAL);
        }
        self.paused_until = None;
        self.next_id += 1;
        let id = self.next_id;
        if class == RequestClass::Standard && self.probe == Probe::Due {
            self.probe = Probe::InFlight(id);
        }
        self.sends.push_back(Sent { id, sent: now, counted_by: now + ARRIVAL_ALLOWANCE, answered: false });
        self.own_sends.push_back(now);
        while self.own_sends.front().is_some_and(|t| now.saturating_duration_since(*t) > OWN_SENDS_KEPT + self.interval)
        {
            self.own_sends.pop_front();
        }
        if class == RequestClass::Search {
            self.search_sends.push_back(now);
        }
        self.daily_used = self.daily_used.saturating_add(1);
        Ok(Take::Sent(id))
    }

    /// The request of permit `id` was answered at `now`.
    fn answered_id(&mut self, id: u64, now: Instant) {
        if let Some(s) = self.sends.iter_mut().find(|s| s.id == id) {
            s.answer(now);
        }
    }

    /// The request sent at `sent_at` was answered at `now`. Requests are told apart by their send
    /// time: the latest one in flight that was let through by then is this one.
    fn answered(&mut self, sent_at: Instant, now: Instant) {
        if let Some(s) = self.sends.iter_mut().rev().find(|s| !s.answered && s.sent <= sent_at) {
            s.answer(now);
        }
    }

    /// Learns from one answer's headers. True when they show the daily limit spent (waiters
    /// are then woken to be refused).
    fn observe(&mut self, h: &RateLimitHeaders, sent_at: Instant, now: Instant) -> bool {
        if let Some(ms) = h.interval_ms {
            // Only believe sane windows; a wrong header must not stall every sync.
            if (1_000..=60_000).contains(&ms) {
                self.interval = Duration::from_millis(ms);
            }
        }
        if let Some(server_max) = h.max {
            if server_max > 0 {
                let max = self.configured_max.min(server_max);
                if max != self.max_per_window {
                    tracing::info!(
                        configured = self.configured_max,
                        hubspot_max = server_max,
                        now_using = max,
                        "HubSpot reports a different burst limit than configured; the budget follows the lower one."
                    );
                }
                self.max_per_window = max;
            }
        }
        if let (Some(server_max), Some(remaining)) = (h.max, h.remaining) {
            self.server_remaining = Some(remaining);
            let server_used = server_max.saturating_sub(remaining) as usize;
            // What this process may have had counted in the window HubSpot counted for this
            // request: everything sent since the window began, up to this answer. With several
            // requests in flight, one sent after this one can arrive before it; counting only
            // those sent before it would take such reorderings for other processes' requests
            // and shrink the window for nothing. The price: while requests overlap, up to the
            // number in flight of another process's requests go unnoticed until a later answer.
            // Counted from `own_sends`, not the log: the log lets a request go one window after
            // it counted, which, when this answer took a while, can be before the window HubSpot
            // counted for this request began; those would be taken for other processes'.
            // Ours sent up to `ARRIVAL_ALLOWANCE` before that window may have arrived in it.
            // Other processes' requests learned before count too, so one answer read twice
            // does not add them twice.
            let from = sent_at.checked_sub(self.interval);
            let own = match sent_at.checked_sub(self.interval + ARRIVAL_ALLOWANCE) {
                Some(from) => self.own_sends.len() - self.own_sends.partition_point(|t| *t <= from),
                None => self.own_sends.len(),
            };
            let known = self.sends.iter().filter(|s| s.id == 0 && from.is_none_or(|f| s.sent > f)).count();
            let ours = own + known;
            let cap = self.max_per_window as usize;
            // Count just enough foreign requests that our room never exceeds HubSpot's: with
            // HubSpot's Max equal to ours that is everything HubSpot counted beyond our own
            // sends; with a higher Max (the configured limit is a self-imposed share), only the
            // part of its `Remaining` below our room.
            let extra = cap.saturating_sub(ours).saturating_sub(remaining as usize);
            if extra > 0 {
                tracing::debug!(
                    extra,
                    server_used,
                    ours,
                    "HubSpot counted requests this process did not send; the budget counts them too."
                );
                // They arrived before this request did: they count until the window after it.
                let at = self.sends.partition_point(|s| s.sent <= sent_at);
                for _ in 0..extra {
                    self.sends.insert(
                        at,
                        Sent { id: 0, sent: sent_at, counted_by: now.min(sent_at + ARRIVAL_ALLOWANCE), answered: true },
                    );
                }
            }
        }
        let mut spent = false;
        // An answer to a request sent before the limit was found spent is older news.
        let stale = self.daily_spent_at.is_some_and(|at| sent_at <= at);
        if let (Some(daily), Some(daily_remaining), false) = (h.daily, h.daily_remaining, stale) {
            if daily > 0 {
                self.daily_limit = self.configured_daily.min(daily);
                self.daily_used = daily.saturating_sub(daily_remaining);
                if self.daily_used < self.daily_limit {
                    self.next_daily_probe = None;
                    self.daily_spent_at = None;
                } else if daily_remaining == 0 && self.next_daily_probe.is_none() {
                    // HubSpot says none are left: the next request would get 429 DAILY.
                    self.daily_spent(now);
                    spent = true;
                }
            }
        }
        self.prune(now);
        spent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspot_model::Secret;

    fn settings(max: u32, daily: u64, search: u32) -> ClientSettings {
        ClientSettings {
            max_requests_per_10s: max,
            daily_limit: daily,
            search_requests_per_sec: search,
            ..ClientSettings::new("test", Secret::new("t"))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_any_window_with_margin() {
        let budget = RateBudget::new(&settings(10, 1_000, 4));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..35 {
            budget.acquire(RequestClass::Standard).await.unwrap();
            times.push(Instant::now() - start);
        }
        // The first 10 go at once; unanswered, each counts from its send plus the arrival
        // allowance, so the next 10 go one window plus allowance and margin later, and so on.
        let step = DEFAULT_INTERVAL + ARRIVAL_ALLOWANCE + WINDOW_MARGIN;
        assert_eq!(times[9], Duration::ZERO);
        assert_eq!(times[10], step);
        assert_eq!(times[20], 2 * step);
        for (i, t) in times.iter().enumerate().skip(10) {
            assert!(*t - times[i - 10] >= step);
        }
        assert!(budget.waited_secs() > 0.0);
    }

    /// HubSpot counts a request when it arrives: a slow answer (HubSpot doing the write) does
    /// not hold the window longer than the arrival allowance; a quick one frees it sooner.
    #[tokio::test(start_paused = true)]
    async fn requests_count_from_their_send_plus_the_allowance_or_their_answer_if_sooner() {
        let budget = RateBudget::new(&settings(10, 1_000, 4));
        let start = Instant::now();
        // The first answer takes 3 s, the next nine 50 ms each.
        for i in 0..10 {
            budget.acquire(RequestClass::Standard).await.unwrap();
            let sent = Instant::now();
            tokio::time::advance(if i == 0 { Duration::from_secs(3) } else { Duration::from_millis(50) }).await;
            budget.observe(&RateLimitHeaders::default(), sent);
        }
        // HubSpot counted the first request within the allowance of its send, although its
        // answer took 3 s: the window frees one window after that (plus the margin), not 10 s
        // after the answer.
        budget.acquire(RequestClass::Standard).await.unwrap();
        assert_eq!(Instant::now() - start, ARRIVAL_ALLOWANCE + DEFAULT_INTERVAL + WINDOW_MARGIN);
        let sent = Instant::now();
        budget.observe(&RateLimitHeaders::default(), sent);
        // The second one was answered at 3.05 s, 50 ms after its send: it counts from then.
        budget.acquire(RequestClass::Standard).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_millis(3_050) + DEFAULT_INTERVAL + WINDOW_MARGIN);
    }

    #[tokio::test(start_paused = true)]
    async fn shared_between_tasks() {
        let budget = RateBudget::new(&settings(5, 1_000, 4));
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..3 {
            let b = budget.clone();
            handles.push(tokio::spawn(async move {
                let mut t = Vec::new();
                for _ in 0..5 {
                    b.acquire(RequestClass::Standard).await.unwrap();
                    t.push(Instant::now() - start);
                }
                t
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        all.sort();
        for (i, t) in all.iter().enumerate().skip(5) {
            assert!(*t - all[i - 5] >= DEFAULT_INTERVAL + ARRIVAL_ALLOWANCE + WINDOW_MARGIN, "{all:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn search_bucket_is_separate_and_per_second() {
        let budget = RateBudget::new(&settings(100, 1_000, 2));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..5 {
            budget.acquire(RequestClass::Search).await.unwrap();
            times.push(Instant::now() - start);
        }
        let step = Duration::from_secs(1) + SEARCH_WINDOW_MARGIN;
        assert_eq!(times, vec![Duration::ZERO, Duration::ZERO, step, step, 2 * step]);
        // Standard requests are not held back by the search bucket.
        let before = Instant::now();
        budget.acquire(RequestClass::Standard).await.unwrap();
        assert_eq!(Instant::now(), before);
        assert_eq!(budget.snapshot().used_in_window, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn daily_limit_stops_requests() {
        let budget = RateBudget::new(&settings(100, 3, 4));
        for _ in 0..3 {
            budget.acquire(RequestClass::Standard).await.unwrap();
        }
        // The first request past the limit is a probe; the next ones are refused.
        let probe = budget.acquire(RequestClass::Standard).await;
        assert!(probe.is_ok());
        assert_eq!(budget.acquire(RequestClass::Standard).await.err(), Some(DailyLimitReached { limit: 3 }));
        assert_eq!(budget.daily_remaining(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn daily_429_blocks_until_a_probe_is_due() {
        let budget = RateBudget::new(&settings(100, 1_000, 4));
        budget.mark_daily_exhausted();
        assert!(budget.acquire(RequestClass::Standard).await.is_err());
        tokio::time::advance(DAILY_PROBE_INTERVAL).await;
        assert!(budget.acquire(RequestClass::Standard).await.is_ok());
        assert!(budget.acquire(RequestClass::Standard).await.is_err());
        // The probe's headers show the portal's day turned over.
        budget.observe(
            &RateLimitHeaders { daily: Some(1_000), daily_remaining: Some(999), ..Default::default() },
            Instant::now(),
        );
        assert!(budget.acquire(RequestClass::Standard).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn headers_lower_the_max_and_count_foreign_requests() {
        let budget = RateBudget::new(&settings(100, 1_000, 4));
        let sent = Instant::now();
        budget.acquire(RequestClass::Standard).await.unwrap();
        // HubSpot: 20 per window, 10 left: 9 requests came from elsewhere.
        budget.observe(
            &RateLimitHeaders {
                max: Some(20),
                remaining: Some(10),
                interval_ms: Some(10_000),
                daily: Some(500_000),
                daily_remaining: Some(400_000),
            },
            sent,
        );
        let snap = budget.snapshot();
        assert_eq!(snap.max_per_window, 20);
        assert_eq!(snap.used_in_window, 10);
        assert_eq!(snap.remaining_in_window, 10);
        assert_eq!(snap.server_remaining, Some(10));
        assert_eq!(snap.daily_limit, 1_000);
        assert_eq!(snap.daily_used, 100_000);
        // The same answer observed twice does not double-count.
        budget.observe(&RateLimitHeaders { max: Some(20), remaining: Some(10), ..Default::default() }, sent);
        assert_eq!(budget.snapshot().used_in_window, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_request_arriving_first_is_not_taken_for_another_process() {
        let budget = RateBudget::new(&settings(10, 1_000, 4));
        let a = budget.acquire(RequestClass::Standard).await.unwrap();
        tokio::time::advance(Duration::from_millis(1)).await;
        let b = budget.acquire(RequestClass::Standard).await.unwrap();
        // `b` overtook `a` on the way: HubSpot had counted both when `a` arrived.
        let headers = RateLimitHeaders { max: Some(10), remaining: Some(8), ..Default::default() };
        a.answered(200, &headers);
        b.answered(200, &headers);
        assert_eq!(budget.snapshot().used_in_window, 2);
        // A third request finds one more counted than it explains: another process sent it.
        let c = budget.acquire(RequestClass::Standard).await.unwrap();
        c.answered(200, &RateLimitHeaders { max: Some(10), remaining: Some(6), ..Default::default() });
        assert_eq!(budget.snapshot().used_in_window, 4);
    }

    /// HubSpot counted this request's window from its arrival: our requests sent just less
    /// than a window before it still count there, although a slow answer comes after they left
    /// the log. They are ours, not another process's.
    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_does_not_take_requests_that_left_the_log_for_another_process() {
        let budget = RateBudget::new(&settings(100, 1_000, 4));
        for _ in 0..50 {
            let p = budget.acquire(RequestClass::Standard).await.unwrap();
            p.answered(200, &RateLimitHeaders::default());
        }
        tokio::time::advance(Duration::from_millis(9_950)).await;
        let r = budget.acquire(RequestClass::Standard).await.unwrap();
        // The 50 leave the log 10.1 s after their answers; this answer comes after that.
        tokio::time::advance(Duration::from_millis(200)).await;
        r.answered(200, &RateLimitHeaders { max: Some(100), remaining: Some(49), ..Default::default() });
        let snap = budget.snapshot();
        assert_eq!(snap.used_in_window, 1, "no foreign requests made up: {snap:?}");
        assert_eq!(snap.remaining_in_window, 99);
    }

    #[tokio::test(start_paused = true)]
    async fn a_higher_max_in_headers_never_raises_the_configured_limit() {
        let budget = RateBudget::new(&settings(100, 1_000, 4));
        let sent = Instant::now();
        budget.acquire(RequestClass::Standard).await.unwrap();
        // A Pro portal's answer: 190 per window, 189 left (only our request).
        let pro =
            RateLimitHeaders { max: Some(190), remaining: Some(189), interval_ms: Some(10_000), ..Default::default() };
        budget.observe(&pro, sent);
        let snap = budget.snapshot();
        assert_eq!(snap.max_per_window, 100, "the configured limit stays in force");
        assert_eq!(snap.used_in_window, 1, "no foreign requests made up");
        assert_eq!(snap.remaining_in_window, 99);
        // Others used 150 of HubSpot's 190: 40 left there, fewer than our 99.
        let sent = Instant::now();
        budget.acquire(RequestClass::Standard).await.unwrap();
        budget.observe(&RateLimitHeaders { remaining: Some(38), ..pro }, sent);
        let snap = budget.snapshot();
        assert_eq!(snap.max_per_window, 100);
        assert_eq!(snap.remaining_in_window, 38, "never more room than HubSpot has left");
        // After a lower Max, a higher one only brings back the configured limit.
        budget.observe(&RateLimitHeaders { max: Some(50), remaining: Some(48), ..Default::default() }, sent);
        assert_eq!(budget.snapshot().max_per_window, 50);
        budget.observe(&RateLimitHeaders { max: Some(250), remaining: Some(200), ..Default::default() }, sent);
        assert_eq!(budget.snapshot().max_per_window, 100);
        // 100 requests then fit in a window, not 190 or 250.
        tokio::time::advance(DEFAULT_INTERVAL + WINDOW_MARGIN).await;
        let start = Instant::now();
        for _ in 0..100 {
            budget.acquire(RequestClass::Standard).await.unwrap();
        }
        assert_eq!(Instant::now(), start);
        budget.acquire(RequestClass::Standard).await.unwrap();
        assert!(Instant::now() > start, "the 101st waits");
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_everyone() {
        let budget = RateBudget::new(&settings(100, 1_000, 4));
        let start = Instant::now();
        budget.pause_until(start + Duration::from_secs(3));
        budget.acquire(RequestClass::Standard).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn window_frees_when_the_oldest_send_leaves() {
        let budget = RateBudget::new(&settings(100, 1_000, 4));
        assert_eq!(budget.window_frees_in(), DEFAULT_INTERVAL);
        budget.acquire(RequestClass::Standard).await.unwrap();
        tokio::time::advance(Duration::from_secs(4)).await;
        // Unanswered, it may have reached HubSpot up to the arrival allowance after its send.
        assert_eq!(budget.window_frees_in(), Duration::from_secs(6) + ARRIVAL_ALLOWANCE);
    }

    fn with_in_flight(max_in_flight: usize) -> ClientSettings {
        ClientSettings { max_in_flight, ..settings(100, 1_000, 4) }
    }

    const WAIT: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn the_in_flight_cap_holds_a_request_until_a_permit_is_dropped() {
        let budget = RateBudget::new(&with_in_flight(2));
        let a = budget.acquire(RequestClass::Standard).await.unwrap();
        let _b = budget.acquire(RequestClass::Search).await.unwrap();
        assert_eq!(budget.in_flight(), 2);
        assert!(tokio::time::timeout(WAIT, budget.acquire(RequestClass::Standard)).await.is_err(), "a third waits");
        drop(a);
        let start = Instant::now();
        let _c = budget.acquire(RequestClass::Standard).await.unwrap();
        assert_eq!(Instant::now(), start, "the freed slot is taken at once");
        assert_eq!(budget.snapshot().in_flight, 2);
        assert_eq!(budget.snapshot().max_in_flight, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_once_and_requests_sent_before_it_join_the_pause() {
        let budget = RateBudget::new(&with_in_flight(8));
        let a = budget.acquire(RequestClass::Standard).await.unwrap();
        let b = budget.acquire(RequestClass::Standard).await.unwrap();
        tokio::time::advance(Duration::from_millis(300)).await;
        a.answered(429, &RateLimitHeaders::default());
        let first = a.rate_limited(Duration::from_secs(5));
        assert!(!first.joined);
        tokio::time::advance(Duration::from_millis(10)).await;
        b.answered(429, &RateLimitHeaders::default());
        let second = b.rate_limited(Duration::from_secs(7));
        assert_eq!(second, AccountPause { until: first.until, joined: true }, "no longer, no second pause");
        drop((a, b));
        // Nobody goes before the pause ends; then one request goes alone.
        let probe = budget.acquire(RequestClass::Standard).await.unwrap();
        assert_eq!(Instant::now(), first.until);
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.acquire(RequestClass::Standard).await.map(|p| p.sent_at()) })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!waiter.is_finished(), "the others wait for the first one's answer");
        // A search is not held back by the gate.
        assert!(tokio::time::timeout(WAIT, budget.acquire(RequestClass::Search)).await.is_ok());
        let answered_at = Instant::now();
        probe.answered(200, &RateLimitHeaders::default());
        assert_eq!(waiter.await.unwrap().unwrap(), answered_at);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_for_the_first_request_after_a_pause_pauses_again() {
        let budget = RateBudget::new(&with_in_flight(8));
        let a = budget.acquire(RequestClass::Standard).await.unwrap();
        a.answered(429, &RateLimitHeaders::default());
        let first = a.rate_limited(Duration::from_secs(2));
        drop(a);
        let probe = budget.acquire(RequestClass::Standard).await.unwrap();
        assert_eq!(Instant::now(), first.until);
        probe.answered(429, &RateLimitHeaders::default());
        let again = probe.rate_limited(Duration::from_secs(3));
        assert!(!again.joined, "sent after the first pause: it starts a new one");
        drop(probe);
        let next = budget.acquire(RequestClass::Standard).await.unwrap();
        assert_eq!(Instant::now(), again.until);
        // A first request that fails without an answer hands the turn to the next one.
        drop(next);
        assert!(tokio::time::timeout(WAIT, budget.acquire(RequestClass::Standard)).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_daily_limit_wakes_and_refuses_every_waiter() {
        let budget = RateBudget::new(&ClientSettings { max_in_flight: 1, ..settings(1, 1_000, 4) });
        let held = budget.acquire(RequestClass::Standard).await.unwrap();
        let waiting_for_slot = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.acquire(RequestClass::Standard).await.err() })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(held);
        // The waiter now holds the slot and waits for the full window; a third waits for a slot.
        let waiting_for_window = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.acquire(RequestClass::Standard).await.err() })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let spent_at = Instant::now();
        budget.mark_daily_exhausted();
        assert!(waiting_for_slot.await.unwrap().is_some());
        assert!(waiting_for_window.await.unwrap().is_some());
        assert_eq!(Instant::now(), spent_at, "refused at once, not after the window");
        assert!(budget.acquire(RequestClass::Standard).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn daily_headers_at_zero_stop_requests_and_older_answers_do_not_reopen_the_day() {
        let budget = RateBudget::new(&with_in_flight(8));
        let a = budget.acquire(RequestClass::Standard).await.unwrap();
        let b = budget.acquire(RequestClass::Standard).await.unwrap();
        let daily =
            |remaining| RateLimitHeaders { daily: Some(500), daily_remaining: Some(remaining), ..Default::default() };
        a.answered(200, &daily(0));
        assert!(budget.acquire(RequestClass::Standard).await.is_err(), "no request is sent to meet a 429 DAILY");
        // `b` was sent before `a`'s answer: its higher count is older news.
        b.answered(200, &daily(3));
        assert!(budget.acquire(RequestClass::Standard).await.is_err());
        // The probe a quarter of an hour later learns that the day turned.
        tokio::time::advance(DAILY_PROBE_INTERVAL).await;
        let probe = budget.acquire(RequestClass::Standard).await.unwrap();
        probe.answered(200, &daily(499));
        assert!(budget.acquire(RequestClass::Standard).await.is_ok());
    }

    #[test]
    fn reads_headers() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("X-HubSpot-RateLimit-Max", "190".parse().unwrap());
        h.insert("X-HubSpot-RateLimit-Remaining", " 12 ".parse().unwrap());
        h.insert("X-HubSpot-RateLimit-Interval-Milliseconds", "10000".parse().unwrap());
        h.insert("X-HubSpot-RateLimit-Daily", "junk".parse().unwrap());
        let r = RateLimitHeaders::from_headers(&h);
        assert_eq!(r.max, Some(190));
        assert_eq!(r.remaining, Some(12));
        assert_eq!(r.interval_ms, Some(10_000));
        assert_eq!(r.daily, None);
        assert!(RateLimitHeaders::from_headers(&Default::default()).is_empty());
    }
}
