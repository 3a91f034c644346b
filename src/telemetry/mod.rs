//! Telemetry: the one registry of Prometheus metrics (`metrics.rs`) and the events that update
//! it (`events.rs`). The daemon serves the registry at `/metrics`.

pub mod events;
mod metrics;

pub use metrics::{error_code_label, metrics, HubsyncMetrics, ERROR_CODES, NAMESPACE, OPERATIONS, OUTCOMES};
