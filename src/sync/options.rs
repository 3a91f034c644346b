//! How a run is asked for and how it ended: the values the CLI, the daemon and the tests
//! exchange with the runner. A leaf: the run lifecycle, delivery and the metrics share them.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::state::RunCounts;

/// How a run was asked for.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Send every row, not only the changed ones.
    pub full: bool,
    /// What started the run: `cli`, `schedule`, `api`, `demo`.
    pub trigger: String,
    /// Set to stop (graceful shutdown): the warehouse query is cancelled, or no new HubSpot
    /// request starts and the answers of those in flight are journaled before the run returns.
    pub stop: Option<Arc<AtomicBool>>,
    /// Show a progress bar when stderr is a terminal.
    pub progress: bool,
    /// Send again the records HubSpot refused for their values, although their rows did not
    /// change (by default they wait for a change; transient failures are always retried).
    pub retry_rejected: bool,
    /// Send removals the delete guard would hold (more than `max_deletes`, or a model that
    /// returned no rows).
    pub allow_deletes: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Succeeded,
    Failed,
    Cancelled,
    /// Everything was sent but the removals, which the delete guard held back.
    Held,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Held => "held",
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub sync: String,
    pub run_id: i64,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub duration_secs: f64,
    pub error: Option<String>,
    /// Where the time went, phase by phase (`hubsync sync --json`, `hubsync bench`).
    pub phases: Phases,
}

/// The time a run spent in each phase, in seconds, and how its second read went. Phases a run
/// did not reach stay 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Phases {
    /// Opening the state file and merging what a crashed run left.
    pub open_secs: f64,
    /// The first read: every row's key and hash streamed into the state database.
    pub read1_secs: f64,
    /// The diff against the snapshot, and building the table of changes.
    pub diff_secs: f64,
    /// The second read: the changed rows' values.
    pub read2_secs: f64,
    /// Rows the warehouse sent to the second read: the changed rows when their keys were pushed
    /// into the query, every row when it scanned the model.
    pub read2_rows: u64,
    /// Whether the second read pushed the changed keys into the warehouse query.
    pub read2_pushed_keys: bool,
    /// Sending the records and journaling the answers.
    pub deliver_secs: f64,
    /// Associations and list memberships.
    pub links_secs: f64,
    /// Merging the journal into the snapshot (after delivery, and at the end).
    pub merge_secs: f64,
    /// The process's peak memory when each phase ended.
    pub peak_rss_mb: PeakRss,
}

/// The process's peak resident memory (`VmHWM`, in MB) when each phase of a run ended, in the
/// order they run: the first figure that reaches the last one is the phase that set the peak.
/// It is the process's, so syncs the daemon runs at the same time share it; 0 where the system
/// does not say (`/proc/self/status` is Linux's), and for phases the run did not reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct PeakRss {
    /// The first read.
    pub read1: f64,
    /// The diff of keys and hashes.
    pub diff: f64,
    /// The second read.
    pub read2: f64,
    /// The table of changes (part of `diff_secs`).
    pub changes: f64,
    /// Sending the records.
    pub deliver: f64,
    /// The merge after delivery.
    pub merge_delivered: f64,
    /// Associations, removals and list memberships.
    pub links: f64,
    /// The last merge, at the end of the run.
    pub merge: f64,
}

impl PeakRss {
    /// The process's peak resident memory so far, in MB; 0 where the system does not say.
    pub fn now() -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kb = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0);
        kb as f64 / 1024.0
    }
}
