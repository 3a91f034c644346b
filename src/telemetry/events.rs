//! Observable things, one struct each: `emit()` logs (when it is worth a line) and updates the
//! metrics. Business code emits events and never touches a metric itself.

use crate::sync::{RunStatus, RunSummary};

use super::metrics::{error_code_label, metrics, ERROR_CODES, OPERATIONS, OUTCOMES};

/// A sync run ended, whatever the outcome.
pub struct RunFinished<'a> {
    pub summary: &'a RunSummary,
    /// Rows in the snapshot after the run, when they could be counted.
    pub snapshot_rows: Option<u64>,
}

impl RunFinished<'_> {
    pub fn emit(&self) {
        let s = self.summary;
        let c = &s.counts;
        match s.status {
            RunStatus::Succeeded => tracing::info!(
                rows = c.rows_read,
                created = c.created,
                updated = c.updated,
                rejected = c.rejected,
                requests = c.requests,
                seconds = s.duration_secs,
                "Sync run succeeded."
            ),
            _ => tracing::warn!(
                status = s.status.as_str(),
                error = s.error.as_deref().unwrap_or(""),
                seconds = s.duration_secs,
                "Sync run did not finish."
            ),
        }
        let m = metrics();
        let sync = s.sync.as_str();
        m.runs_total.with_label_values(&[sync, s.status.as_str()]).inc();
        m.run_duration_seconds.with_label_values(&[sync]).observe(s.duration_secs);
        match s.status {
            RunStatus::Succeeded => {
                m.last_success_timestamp_seconds.with_label_values(&[sync]).set(unix_now());
                m.last_run_succeeded.with_label_values(&[sync]).set(1);
            }
            RunStatus::Failed => m.last_run_succeeded.with_label_values(&[sync]).set(0),
            RunStatus::Cancelled => {}
        }
        m.rows_read_total.with_label_values(&[sync]).inc_by(c.rows_read);
        m.rows_invalid_total.with_label_values(&[sync]).inc_by(c.invalid);
        for (operation, n) in [
            ("create", c.created),
            ("update", c.updated),
            ("skip", c.skipped),
            ("associate", c.associated),
            ("list_add", c.list_added),
            ("list_remove", c.list_removed),
        ] {
            m.changes_total.with_label_values(&[sync, operation]).inc_by(n);
        }
        if let Some(rows) = self.snapshot_rows {
            m.snapshot_rows.with_label_values(&[sync]).set(rows as i64);
        }
    }
}

/// One record was refused by HubSpot or could not be sent.
pub struct RecordRejected<'a> {
    pub sync: &'a str,
    /// HubSpot's or hubsync's code; mapped to a closed set for the label.
    pub code: &'a str,
}

impl RecordRejected<'_> {
    pub fn emit(&self) {
        tracing::debug!(sync = self.sync, code = self.code, "A record was rejected.");
        metrics().rejected_records_total.with_label_values(&[self.sync, error_code_label(self.code)]).inc();
    }
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
        let m = metrics();
        let sync = self.sync;
        for outcome in OUTCOMES {
            m.runs_total.with_label_values(&[sync, outcome]);
        }
        m.run_duration_seconds.with_label_values(&[sync]);
        m.rows_read_total.with_label_values(&[sync]);
        m.rows_invalid_total.with_label_values(&[sync]);
        m.scheduled_runs_skipped_total.with_label_values(&[sync]);
        for operation in OPERATIONS {
            m.changes_total.with_label_values(&[sync, operation]);
        }
        for code in ERROR_CODES {
            m.rejected_records_total.with_label_values(&[sync, code]);
        }
        m.sync_running.with_label_values(&[sync]).set(0);
        if let Some(secs) = self.schedule_interval_secs {
            m.schedule_interval_seconds.with_label_values(&[sync]).set(secs);
        }
        if let Some(ok) = self.last_run_succeeded {
            m.last_run_succeeded.with_label_values(&[sync]).set(i64::from(ok));
        }
        if let Some(at) = self.last_success_unix {
            m.last_success_timestamp_seconds.with_label_values(&[sync]).set(at);
        }
        if let Some(rows) = self.snapshot_rows {
            m.snapshot_rows.with_label_values(&[sync]).set(rows.min(i64::MAX as u64) as i64);
        }
        AccountRegistered { account: self.account }.emit();
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

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
