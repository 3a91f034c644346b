//! What the daemon shows about each sync (`GET /syncs`, `GET /syncs/{name}`, the run requests,
//! and so `hubsync status --daemon`): the shapes of those answers, and reading a sync's state
//! file into them. Plain data below the daemon's shared state, so the admin API, the scheduling
//! loop and the shared state can all use it without importing one another.

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use crate::config::Schedule;
use crate::state::{Rejection, RunRecord, StateError, StateReader};
use crate::sync::RunSummary;

/// Runs and rejections shown per sync.
const STATUS_ROWS: usize = 10;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Api,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
        }
    }
}

/// Where a sync is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Idle,
    /// A run is requested and waits for a permit (or for the run or reset before it).
    Queued,
    Running,
    Resetting,
}

/// A run waiting to start: every request merged into it.
#[derive(Debug, Clone, Serialize)]
pub struct PendingRun {
    pub trigger: Trigger,
    pub full: bool,
    /// Send removals the delete guard would hold.
    pub allow_deletes: bool,
    pub request_ids: Vec<u64>,
    pub requested_at: String,
}

/// The run in progress.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentRun {
    pub trigger: Trigger,
    pub full: bool,
    pub allow_deletes: bool,
    pub request_ids: Vec<u64>,
    pub started_at: String,
}

/// One run request and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestInfo {
    pub request_id: u64,
    pub sync: String,
    pub full: bool,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled`, `held` (everything sent but the
    /// removals the delete guard held) or `dropped`.
    pub state: String,
    pub requested_at: String,
    /// The run that carried it out, once finished.
    pub run: Option<RunSummary>,
    /// Why it did not run, when dropped.
    pub error: Option<String>,
}

/// What the state file said when last read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoredStatus {
    pub snapshot_rows: u64,
    pub rejected_total: u64,
    pub runs: Vec<RunRecord>,
    pub rejections: Vec<Rejection>,
    pub read_at: String,
}

/// The schedule of a sync, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleInfo {
    /// `cron` or `interval`.
    pub kind: &'static str,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub interval_secs: Option<u64>,
    /// Longest expected gap between runs.
    pub period_secs: f64,
    pub description: String,
}

impl ScheduleInfo {
    pub(super) fn of(schedule: &Schedule) -> ScheduleInfo {
        let (cron, timezone, interval_secs) = match schedule {
            Schedule::Cron { expression, timezone, .. } => (Some(expression.clone()), Some(timezone.to_string()), None),
            Schedule::Interval { every } => (None, None, Some(every.as_secs())),
        };
        ScheduleInfo {
            kind: schedule.kind(),
            cron,
            timezone,
            interval_secs,
            period_secs: schedule.period_secs(),
            description: schedule.to_string(),
        }
    }
}

/// The status of one sync: `GET /syncs` and `GET /syncs/{name}`.
#[derive(Debug, Clone, Serialize)]
pub struct SyncStatus {
    pub sync: String,
    pub object: String,
    pub account: String,
    pub schedule: Option<ScheduleInfo>,
    pub state: Phase,
    pub next_run_at: Option<String>,
    pub running: Option<CurrentRun>,
    pub queued: Option<PendingRun>,
    /// The last run this daemon finished.
    pub last_run: Option<RunSummary>,
    pub last_success_at: Option<String>,
    /// Scheduled fire times skipped because the sync was busy, since the daemon started.
    pub skipped_scheduled_runs: u64,
    pub snapshot_rows: Option<u64>,
    /// Records currently rejected (they are retried on every run).
    pub rejected_total: Option<u64>,
    /// The last runs in the state file, newest first.
    pub runs: Vec<RunRecord>,
    /// Currently rejected records (only in `GET /syncs/{name}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejections: Option<Vec<Rejection>>,
    /// When the state file was last read; a running sync's file is not read until it ends.
    pub status_read_at: Option<String>,
}

/// Now, as the status shows times.
pub(super) fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads what the status shows from an open state file (a `StateStore` derefs to its reader).
pub(super) fn read_status(store: &StateReader) -> Result<StoredStatus, StateError> {
    let runs = store.runs(STATUS_ROWS)?;
    let (rejections, rejected_total) = store.rejections(STATUS_ROWS)?;
    Ok(StoredStatus { snapshot_rows: store.snapshot_rows()?, rejected_total, runs, rejections, read_at: now_text() })
}

/// Unix time of a `YYYY-MM-DD HH:MM:SS` timestamp from the state file (UTC).
pub(super) fn stored_time_unix(text: &str) -> Option<f64> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc().timestamp() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_are_read_as_utc() {
        assert_eq!(stored_time_unix("1970-01-01 00:01:40"), Some(100.0));
        assert_eq!(stored_time_unix("garbage"), None);
    }
}
