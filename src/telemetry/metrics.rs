//! Every metric hubsync exports, declared once: names, help texts and label sets.
//!
//! The process's default Prometheus registry (Quickwit's habit: each crate registers its own;
//! the HubSpot client's are in `hubspot_client::metrics`): business code never touches these directly, it emits
//! events (`events.rs`) and the events update the metrics. Names start with `hubsync_`, use base
//! units (seconds, requests, rows), and counters end in `_total`. Labels are bounded: `sync` and
//! `account` come from the config, every other label from a closed enum.

use std::sync::LazyLock;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, TextEncoder,
};

/// Prefix of every metric name.
pub const NAMESPACE: &str = "hubsync";

/// Run outcomes (`outcome` label).
pub const OUTCOMES: [&str; 3] = ["succeeded", "failed", "cancelled"];

/// Change operations (`operation` label).
pub const OPERATIONS: [&str; 6] = ["create", "update", "skip", "associate", "list_add", "list_remove"];

/// Rejection codes (`error_code` label): HubSpot's validation codes and hubsync's own, lower
/// case; anything else is `other`.
pub const ERROR_CODES: [&str; 20] = [
    "invalid_email",
    "invalid_option",
    "invalid_string",
    "invalid_long",
    "invalid_integer",
    "invalid_date",
    "invalid_datetime",
    "invalid_boolean",
    "read_only_value",
    "property_doesnt_exist",
    "validation_error",
    "conflict",
    "object_not_found",
    "missing_match_value",
    "no_result",
    "delivery_uncertain",
    "association_not_found",
    "http_4xx",
    "http_5xx",
    "other",
];

/// The `error_code` label of a rejection code, from the closed set [`ERROR_CODES`].
pub fn error_code_label(code: &str) -> &'static str {
    let lower = code.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix("_detail").unwrap_or(&lower);
    if let Some(found) = ERROR_CODES.iter().find(|c| **c == lower) {
        return found;
    }
    match lower {
        "invalid_number" | "invalid_float" | "invalid_double" => "invalid_long",
        "invalid_enumeration" | "invalid_enum" => "invalid_option",
        "unknown_error" => "other",
        c if c.starts_with("http_4") => "http_4xx",
        c if c.starts_with("http_5") => "http_5xx",
        c if c.starts_with("invalid_date") => "invalid_date",
        _ => "other",
    }
}

/// Seconds, for whole sync runs.
const RUN_DURATION_BUCKETS: &[f64] = &[0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

/// The registry and every metric in it.
pub struct HubsyncMetrics {
    /// Runs finished, by sync and outcome.
    pub runs_total: IntCounterVec,
    /// Duration of finished runs, by sync.
    pub run_duration_seconds: HistogramVec,
    /// Unix time of each sync's last successful run.
    pub last_success_timestamp_seconds: GaugeVec,
    /// 1 if the sync's last finished run succeeded, 0 if it failed.
    pub last_run_succeeded: IntGaugeVec,
    /// 1 while a sync runs, else 0.
    pub sync_running: IntGaugeVec,
    /// Longest expected gap between scheduled runs, by sync (only scheduled syncs).
    pub schedule_interval_seconds: GaugeVec,
    /// Scheduled fire times skipped because the sync was still busy.
    pub scheduled_runs_skipped_total: IntCounterVec,
    /// Model rows read from the warehouse.
    pub rows_read_total: IntCounterVec,
    /// Model rows set aside before sending (null or repeated key).
    pub rows_invalid_total: IntCounterVec,
    /// Changes HubSpot acknowledged (or rows skipped), by operation.
    pub changes_total: IntCounterVec,
    /// Records HubSpot refused or that could not be sent, by error code.
    pub rejected_records_total: IntCounterVec,
    /// Rows in each sync's snapshot (what HubSpot acknowledged).
    pub snapshot_rows: IntGaugeVec,
    /// Always 1, labelled with the version.
    pub build_info: IntGaugeVec,
    /// Unix time the daemon started.
    pub daemon_start_time_seconds: IntGauge,
}

fn opts(name: &str, help: &str) -> Opts {
    assert!(!help.is_empty(), "metric {name} needs help text");
    Opts::new(name, help).namespace(NAMESPACE)
}

impl HubsyncMetrics {
    fn new() -> HubsyncMetrics {
        // The client registers its own metrics; force them so `/metrics` lists every family.
        let _ = hubspot_client::metrics::metrics();
        let registry = prometheus::default_registry();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let m = IntCounterVec::new(opts(name, help), labels).expect("valid counter");
            registry.register(Box::new(m.clone())).expect("unique metric name");
            m
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let m = IntGaugeVec::new(opts(name, help), labels).expect("valid gauge");
            registry.register(Box::new(m.clone())).expect("unique metric name");
            m
        };
        let float_gauge = |name: &str, help: &str, labels: &[&str]| {
            let m = GaugeVec::new(opts(name, help), labels).expect("valid gauge");
            registry.register(Box::new(m.clone())).expect("unique metric name");
            m
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let o = HistogramOpts::from(opts(name, help)).buckets(buckets.to_vec());
            let m = HistogramVec::new(o, labels).expect("valid histogram");
            registry.register(Box::new(m.clone())).expect("unique metric name");
            m
        };
        let daemon_start_time_seconds =
            IntGauge::with_opts(opts("daemon_start_time_seconds", "Unix time the hubsync daemon started."))
                .expect("valid gauge");
        registry.register(Box::new(daemon_start_time_seconds.clone())).expect("unique metric name");

        HubsyncMetrics {
            runs_total: counter("runs_total", "Sync runs finished, by outcome.", &["sync", "outcome"]),
            run_duration_seconds: histogram(
                "run_duration_seconds",
                "Duration of finished sync runs in seconds.",
                &["sync"],
                RUN_DURATION_BUCKETS,
            ),
            last_success_timestamp_seconds: float_gauge(
                "sync_last_success_timestamp_seconds",
                "Unix time the sync's last successful run finished.",
                &["sync"],
            ),
            last_run_succeeded: gauge(
                "sync_last_run_succeeded",
                "1 if the sync's last finished run succeeded, 0 if it failed (a run stopped by a shutdown changes nothing).",
                &["sync"],
            ),
            sync_running: gauge("sync_running", "1 while the sync is running, else 0.", &["sync"]),
            schedule_interval_seconds: float_gauge(
                "sync_schedule_interval_seconds",
                "Longest expected gap in seconds between two scheduled runs of the sync.",
                &["sync"],
            ),
            scheduled_runs_skipped_total: counter(
                "scheduled_runs_skipped_total",
                "Scheduled runs skipped because the sync was still running or queued.",
                &["sync"],
            ),
            rows_read_total: counter("rows_read_total", "Model rows read from the warehouse.", &["sync"]),
            rows_invalid_total: counter(
                "rows_invalid_total",
                "Model rows set aside before sending (null or repeated primary key).",
                &["sync"],
            ),
            changes_total: counter(
                "changes_total",
                "Record changes acknowledged by HubSpot (or skipped by the sync mode), by operation.",
                &["sync", "operation"],
            ),
            rejected_records_total: counter(
                "rejected_records_total",
                "Records HubSpot refused or that could not be sent, by error code.",
                &["sync", "error_code"],
            ),
            snapshot_rows: gauge(
                "snapshot_rows",
                "Rows in the sync's snapshot of what HubSpot acknowledged.",
                &["sync"],
            ),
            build_info: gauge("build_info", "Always 1; the labels say which hubsync build is running.", &["version"]),
            daemon_start_time_seconds,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&prometheus::gather(), &mut buffer) {
            tracing::warn!(error = %e, "Could not encode the metrics.");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

static METRICS: LazyLock<HubsyncMetrics> = LazyLock::new(HubsyncMetrics::new);

/// The process's metrics.
pub fn metrics() -> &'static HubsyncMetrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_a_closed_set() {
        assert_eq!(error_code_label("INVALID_EMAIL"), "invalid_email");
        assert_eq!(error_code_label("PROPERTY_DOESNT_EXIST_DETAIL"), "property_doesnt_exist");
        assert_eq!(error_code_label("HTTP_400"), "http_4xx");
        assert_eq!(error_code_label("user42@example.com"), "other");
        assert_eq!(error_code_label(""), "other");
    }

    #[test]
    fn names_have_the_prefix_and_counters_end_in_total() {
        let m = metrics();
        m.runs_total.with_label_values(&["s", "succeeded"]).inc();
        hubspot_client::metrics::metrics().rate_budget_wait_seconds_total.with_label_values(&["a"]).inc_by(0.5);
        let text = m.encode();
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let (name, kind) = (parts[2], parts[3]);
            assert!(name.starts_with("hubsync_"), "{name}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
        }
        assert!(text.contains("hubsync_runs_total{outcome=\"succeeded\",sync=\"s\"} 1"), "{text}");
    }
}
