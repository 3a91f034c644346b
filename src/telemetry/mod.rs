//! Telemetry: the process's one Prometheus registry (the default one) and its `/metrics`
//! encoding. Each module declares and registers its own metrics (Quickwit's habit): the HubSpot
//! client in `hubspot_client::metrics`, a sync run in `sync::metrics`, the daemon in
//! `scheduler::metrics`. Business code emits events, and the events update the metrics. Names
//! start with `hubsync_`, use base units (seconds, requests, rows), and counters end in `_total`.
//! Labels are bounded: `sync` and `account` come from the config, every other label from a
//! closed enum.

use prometheus::core::Collector;
use prometheus::{Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, TextEncoder};

/// Prefix of every metric name.
pub const NAMESPACE: &str = "hubsync";

/// The options of a metric named `hubsync_{name}`.
pub fn opts(name: &str, help: &str) -> Opts {
    assert!(!help.is_empty(), "metric {name} needs help text");
    Opts::new(name, help).namespace(NAMESPACE)
}

/// Registers a metric in the process's registry and hands it back.
pub fn register<M: Collector + Clone + 'static>(metric: M) -> M {
    prometheus::default_registry().register(Box::new(metric.clone())).expect("unique metric name");
    metric
}

/// An integer counter with labels.
pub fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(opts(name, help), labels).expect("valid counter"))
}

/// An integer gauge with labels.
pub fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(opts(name, help), labels).expect("valid gauge"))
}

/// A float gauge with labels.
pub fn float_gauge(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(GaugeVec::new(opts(name, help), labels).expect("valid gauge"))
}

/// A histogram with labels and explicit buckets.
pub fn histogram(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let o = HistogramOpts::from(opts(name, help)).buckets(buckets.to_vec());
    register(HistogramVec::new(o, labels).expect("valid histogram"))
}

/// The Prometheus text exposition of every registered metric.
pub fn encode() -> String {
    let mut buffer = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&prometheus::gather(), &mut buffer) {
        tracing::warn!(error = %e, "Could not encode the metrics.");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

/// Unix time now, in seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
