//! The daemon's metrics and the events that update them: which syncs run, their schedules,
//! skipped fire times, and the build. Registered in the process's registry (`telemetry`) on
//! first use.

use std::sync::LazyLock;

use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec};

use crate::telemetry::{counter, float_gauge, gauge, opts, register, unix_now};

/// Every metric of the daemon.
pub struct DaemonMetrics {
    /// 1 while a sync runs, else 0.
    pub sync_running: IntGaugeVec,
    /// Longest expected gap between scheduled runs, by sync (only scheduled syncs).
    pub schedule_interval_seconds: GaugeVec,
    /// Scheduled fire times skipped because the sync was still busy.
    pub scheduled_runs_skipped_total: IntCounterVec,
    /// Always 1, labelled with the version.
    pub build_info: IntGaugeVec,
    /// Unix time the daemon started.
    pub daemon_start_time_seconds: IntGauge,
}

impl DaemonMetrics {
    fn new() -> DaemonMetrics {
        DaemonMetrics {
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
            build_info: gauge("build_info", "Always 1; the labels say which hubsync build is running.", &["version"]),
            daemon_start_time_seconds: register(
                IntGauge::with_opts(opts("daemon_start_time_seconds", "Unix time the hubsync daemon started."))
                    .expect("valid gauge"),
            ),
        }
    }
}

static METRICS: LazyLock<DaemonMetrics> = LazyLock::new(DaemonMetrics::new);

/// The daemon metrics, registered on first use.
pub fn metrics() -> &'static DaemonMetrics {
    &METRICS
}

/// A scheduled fire time came while the sync was still busy, so no run was started for it.
pub struct ScheduledRunSkipped<'a> {
    pub sync: &'a str,
}

impl ScheduledRunSkipped<'_> {
    pub fn emit(&self) {
        tracing::warn!(sync = self.sync, "A scheduled run was skipped: the previous run has not finished.");
        metrics().scheduled_runs_skipped_total.with_label_values(&[self.sync]).inc();
    }
}

/// A sync started or stopped running in the daemon.
pub struct SyncRunning<'a> {
    pub sync: &'a str,
    pub running: bool,
}

impl SyncRunning<'_> {
    pub fn emit(&self) {
        metrics().sync_running.with_label_values(&[self.sync]).set(i64::from(self.running));
    }
}

/// The daemon took charge of a sync. Creates its series at zero, so dashboards and alerts see
/// every sync from the start, and restores what the state file knows.
pub struct SyncRegistered<'a> {
    pub sync: &'a str,
    pub account: &'a str,
    /// Longest gap between scheduled runs, for scheduled syncs.
    pub schedule_interval_secs: Option<f64>,
    /// Unix time of the last successful run found in the state file.
    pub last_success_unix: Option<f64>,
    /// Whether the last finished run in the state file succeeded.
    pub last_run_succeeded: Option<bool>,
    pub snapshot_rows: Option<u64>,
}

impl SyncRegistered<'_> {
    pub fn emit(&self) {
        tracing::info!(
            sync = self.sync,
            scheduled = self.schedule_interval_secs.is_some(),
            "Sync registered with the daemon."
        );
        crate::sync::metrics::metrics().register_sync(
            self.sync,
            self.last_success_unix,
            self.last_run_succeeded,
            self.snapshot_rows,
        );
        let m = metrics();
        m.scheduled_runs_skipped_total.with_label_values(&[self.sync]);
        m.sync_running.with_label_values(&[self.sync]).set(0);
        if let Some(secs) = self.schedule_interval_secs {
            m.schedule_interval_seconds.with_label_values(&[self.sync]).set(secs);
        }
        hubspot_client::metrics::AccountRegistered { account: self.account }.emit();
    }
}

/// The daemon started.
pub struct DaemonStarted<'a> {
    pub listen: &'a str,
    pub syncs: usize,
}

impl DaemonStarted<'_> {
    pub fn emit(&self) {
        tracing::info!(
            listen = self.listen,
            syncs = self.syncs,
            version = env!("CARGO_PKG_VERSION"),
            "hubsync daemon started."
        );
        let m = metrics();
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m.daemon_start_time_seconds.set(unix_now() as i64);
    }
}
