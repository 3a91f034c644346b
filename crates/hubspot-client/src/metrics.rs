//! The client's own Prometheus metrics and the events that update them (Quickwit's habit: each
//! crate registers what it measures). They go to the process's default registry, which hubsync's
//! `telemetry` encodes at `/metrics`. Names keep the `hubsync_` prefix of every hubsync metric.

use std::sync::LazyLock;

use prometheus::{CounterVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

use crate::{BudgetSnapshot, EndpointKind, RetryReason, StatusClass};

/// Seconds, for one HubSpot request.
const REQUEST_DURATION_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Every metric of the client.
pub struct ClientMetrics {
    /// HubSpot requests, by account, endpoint and status class (each attempt counts).
    pub hubspot_requests_total: IntCounterVec,
    /// HubSpot request latency, by account and endpoint.
    pub hubspot_request_duration_seconds: HistogramVec,
    /// 429 answers from HubSpot, by account.
    pub hubspot_rate_limited_total: IntCounterVec,
    /// Retries of HubSpot requests, by account and reason.
    pub hubspot_retries_total: IntCounterVec,
    /// Seconds requests waited for the account's rate budget.
    pub rate_budget_wait_seconds_total: CounterVec,
    /// Requests left in the account's current 10-second window.
    pub rate_budget_remaining_requests: IntGaugeVec,
    /// Requests allowed per window now.
    pub rate_budget_limit_requests: IntGaugeVec,
    /// Requests to the account holding an in-flight slot now.
    pub rate_budget_in_flight_requests: IntGaugeVec,
    /// The account's cap on requests in flight (`max_in_flight`).
    pub rate_budget_max_in_flight_requests: IntGaugeVec,
    /// Requests left today for the account.
    pub daily_quota_remaining_requests: IntGaugeVec,
    /// Requests allowed per day for the account.
    pub daily_quota_limit_requests: IntGaugeVec,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("hubsync")
}

fn register<M: prometheus::core::Collector + Clone + 'static>(metric: M) -> M {
    prometheus::default_registry().register(Box::new(metric.clone())).expect("unique metric name");
    metric
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(opts(name, help), labels).expect("valid counter"))
}

fn gauge(name: &str, help: &str) -> IntGaugeVec {
    register(IntGaugeVec::new(opts(name, help), &["account"]).expect("valid gauge"))
}

impl ClientMetrics {
    fn new() -> ClientMetrics {
        ClientMetrics {
            hubspot_requests_total: counter(
                "hubspot_requests_total",
                "HubSpot API requests sent (every attempt), by endpoint and status class.",
                &["account", "endpoint", "status_class"],
            ),
            hubspot_request_duration_seconds: register(
                HistogramVec::new(
                    HistogramOpts::from(opts(
                        "hubspot_request_duration_seconds",
                        "HubSpot API request latency in seconds, from send to the whole answer.",
                    ))
                    .buckets(REQUEST_DURATION_BUCKETS.to_vec()),
                    &["account", "endpoint"],
                )
                .expect("valid histogram"),
            ),
            hubspot_rate_limited_total: counter(
                "hubspot_rate_limited_total",
                "HubSpot answers with status 429 (rate limited).",
                &["account"],
            ),
            hubspot_retries_total: counter(
                "hubspot_retries_total",
                "HubSpot requests sent again, by reason.",
                &["account", "reason"],
            ),
            rate_budget_wait_seconds_total: register(
                CounterVec::new(
                    opts(
                        "rate_budget_wait_seconds_total",
                        "Seconds HubSpot requests waited for their account's rate budget.",
                    ),
                    &["account"],
                )
                .expect("valid counter"),
            ),
            rate_budget_remaining_requests: gauge(
                "rate_budget_remaining_requests",
                "Requests left in the account's current rate-limit window (hubsync's count, corrected by HubSpot's headers).",
            ),
            rate_budget_limit_requests: gauge(
                "rate_budget_limit_requests",
                "Requests allowed per rate-limit window for the account (configured, or lower if HubSpot says so).",
            ),
            rate_budget_in_flight_requests: gauge(
                "rate_budget_in_flight_requests",
                "HubSpot requests to the account holding one of its in-flight slots (sent, or waiting for the rate budget).",
            ),
            rate_budget_max_in_flight_requests: gauge(
                "rate_budget_max_in_flight_requests",
                "The account's cap on HubSpot requests in flight at once (max_in_flight).",
            ),
            daily_quota_remaining_requests: gauge(
                "daily_quota_remaining_requests",
                "Requests left today for the account (from HubSpot's daily headers when it sends them).",
            ),
            daily_quota_limit_requests: gauge("daily_quota_limit_requests", "Requests allowed per day for the account."),
        }
    }
}

static METRICS: LazyLock<ClientMetrics> = LazyLock::new(ClientMetrics::new);

/// The client's metrics, registered in the default registry on first use.
pub fn metrics() -> &'static ClientMetrics {
    &METRICS
}

/// One HubSpot request attempt got an answer (`status`) or none (`None`: transport failure).
pub struct HubSpotRequest<'a> {
    pub account: &'a str,
    pub endpoint: EndpointKind,
    pub status: Option<u16>,
    pub seconds: f64,
}

impl HubSpotRequest<'_> {
    pub fn emit(&self) {
        let class = self.status.map_or(StatusClass::Transport, StatusClass::of);
        let m = metrics();
        let endpoint = self.endpoint.as_str();
        m.hubspot_requests_total.with_label_values(&[self.account, endpoint, class.as_str()]).inc();
        m.hubspot_request_duration_seconds.with_label_values(&[self.account, endpoint]).observe(self.seconds);
        if self.status == Some(429) {
            m.hubspot_rate_limited_total.with_label_values(&[self.account]).inc();
        }
    }
}

/// A HubSpot request is sent again. The client logs the retry with its details.
pub struct RequestRetried<'a> {
    pub account: &'a str,
    pub reason: RetryReason,
}

impl RequestRetried<'_> {
    pub fn emit(&self) {
        metrics().hubspot_retries_total.with_label_values(&[self.account, self.reason.as_str()]).inc();
    }
}

/// A request waited for its account's rate budget.
pub struct BudgetWaited<'a> {
    pub account: &'a str,
    pub seconds: f64,
}

impl BudgetWaited<'_> {
    pub fn emit(&self) {
        tracing::trace!(account = self.account, seconds = self.seconds, "Waited for the HubSpot rate budget.");
        metrics().rate_budget_wait_seconds_total.with_label_values(&[self.account]).inc_by(self.seconds);
    }
}

/// The state of an account's rate budget, read when metrics are scraped.
pub struct BudgetObserved<'a> {
    pub account: &'a str,
    pub snapshot: &'a BudgetSnapshot,
}

impl BudgetObserved<'_> {
    pub fn emit(&self) {
        let m = metrics();
        let s = self.snapshot;
        let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
        let remaining = s.server_remaining.map_or(s.remaining_in_window, |r| r.min(s.remaining_in_window));
        m.rate_budget_remaining_requests.with_label_values(&[self.account]).set(i64::from(remaining));
        m.rate_budget_limit_requests.with_label_values(&[self.account]).set(i64::from(s.max_per_window));
        m.rate_budget_in_flight_requests.with_label_values(&[self.account]).set(clamp(s.in_flight as u64));
        m.rate_budget_max_in_flight_requests.with_label_values(&[self.account]).set(clamp(s.max_in_flight as u64));
        m.daily_quota_remaining_requests.with_label_values(&[self.account]).set(clamp(s.daily_remaining));
        m.daily_quota_limit_requests.with_label_values(&[self.account]).set(clamp(s.daily_limit));
    }
}

/// The daemon uses a HubSpot account: its series start at zero.
pub struct AccountRegistered<'a> {
    pub account: &'a str,
}

impl AccountRegistered<'_> {
    pub fn emit(&self) {
        let m = metrics();
        let account = self.account;
        for endpoint in EndpointKind::ALL {
            for class in StatusClass::ALL {
                m.hubspot_requests_total.with_label_values(&[account, endpoint.as_str(), class.as_str()]);
            }
            m.hubspot_request_duration_seconds.with_label_values(&[account, endpoint.as_str()]);
        }
        for reason in RetryReason::ALL {
            m.hubspot_retries_total.with_label_values(&[account, reason.as_str()]);
        }
        m.hubspot_rate_limited_total.with_label_values(&[account]);
        m.rate_budget_wait_seconds_total.with_label_values(&[account]);
    }
}
