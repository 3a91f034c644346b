//! A sync run's metrics and the events that update them: runs and their outcome, rows read,
//! changes acknowledged and records rejected. Registered in the process's registry
//! (`telemetry`) on first use.

use std::sync::LazyLock;

use prometheus::{GaugeVec, HistogramVec, IntCounterVec, IntGaugeVec};

use crate::telemetry::{counter, float_gauge, gauge, histogram, unix_now};

use super::{RunStatus, RunSummary};

/// Run outcomes (`outcome` label).
/// `held`: everything was sent but the removals, which the delete guard held back.
pub const OUTCOMES: [&str; 4] = ["succeeded", "failed", "cancelled", "held"];

/// Change operations (`operation` label).
pub const OPERATIONS: [&str; 9] =
    ["create", "update", "skip", "associate", "list_add", "list_remove", "archive", "clear", "unlink"];

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

/// Every metric of a sync run.
pub struct SyncMetrics {
    /// Runs finished, by sync and outcome.
    pub runs_total: IntCounterVec,
    /// Duration of finished runs, by sync.
    pub run_duration_seconds: HistogramVec,
    /// Unix time of each sync's last successful run.
    pub last_success_timestamp_seconds: GaugeVec,
    /// 1 if the sync's last finished run succeeded, 0 if it failed.
    pub last_run_succeeded: IntGaugeVec,
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
    /// Creates whose answer was lost (gateway error, timeout, dropped connection), by sync.
    pub uncertain_creates_total: IntCounterVec,
    /// Uncertain creates settled by a search after the index lag, by sync and outcome
    /// (`found`: the create had happened, its id is learned; `not_found`: it had not).
    pub reconciled_creates_total: IntCounterVec,
    /// Rows not sent because HubSpot refused the same values before, by sync.
    pub rows_held_total: IntCounterVec,
    /// Records, association targets and list members found merged into another record
    /// (`merged`) or deleted (`deleted`) in HubSpot, by sync.
    pub vanished_records_total: IntCounterVec,
    /// Records whose removals the delete guard held in the sync's last run (0 when none).
    pub removals_held: IntGaugeVec,
}

/// What happened to a record hubsync knew the id of (`outcome` label of `vanished_records_total`).
pub const VANISHED: [&str; 2] = ["merged", "deleted"];

/// Outcomes of a reconciled create (`outcome` label).
pub const RECONCILED: [&str; 2] = ["found", "not_found"];

impl SyncMetrics {
    fn new() -> SyncMetrics {
        SyncMetrics {
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
            uncertain_creates_total: counter(
                "uncertain_creates_total",
                "Creates whose answer was lost (gateway error, timeout, dropped connection); never re-sent blindly.",
                &["sync"],
            ),
            reconciled_creates_total: counter(
                "reconciled_creates_total",
                "Uncertain creates settled by a search after the index lag: found (it had happened) or not_found.",
                &["sync", "outcome"],
            ),
            rows_held_total: counter(
                "rows_held_total",
                "Rows not sent because HubSpot refused the same values before; sent again once the row changes.",
                &["sync"],
            ),
            vanished_records_total: counter(
                "vanished_records_total",
                "Records, association targets and list members found merged into another record (merged; the id \
                 map moved to the survivor) or deleted (deleted; the row was matched again) in HubSpot.",
                &["sync", "outcome"],
            ),
            removals_held: gauge(
                "removals_held",
                "Records whose removals (archive, clear, unlink, list removal) the delete guard held in the sync's last run; run with --allow-deletes or raise max_deletes.",
                &["sync"],
            ),
        }
    }

    /// Creates a sync's series at zero, so dashboards and alerts see it from the start, and
    /// restores what its state file knows.
    pub fn register_sync(
        &self,
        sync: &str,
        last_success_unix: Option<f64>,
        last_run_succeeded: Option<bool>,
        snapshot_rows: Option<u64>,
    ) {
        for outcome in OUTCOMES {
            self.runs_total.with_label_values(&[sync, outcome]);
        }
        self.run_duration_seconds.with_label_values(&[sync]);
        self.rows_read_total.with_label_values(&[sync]);
        self.rows_invalid_total.with_label_values(&[sync]);
        for operation in OPERATIONS {
            self.changes_total.with_label_values(&[sync, operation]);
        }
        for code in ERROR_CODES {
            self.rejected_records_total.with_label_values(&[sync, code]);
        }
        self.uncertain_creates_total.with_label_values(&[sync]);
        for outcome in RECONCILED {
            self.reconciled_creates_total.with_label_values(&[sync, outcome]);
        }
        self.rows_held_total.with_label_values(&[sync]);
        for outcome in VANISHED {
            self.vanished_records_total.with_label_values(&[sync, outcome]);
        }
        self.removals_held.with_label_values(&[sync]);
        if let Some(ok) = last_run_succeeded {
            self.last_run_succeeded.with_label_values(&[sync]).set(i64::from(ok));
        }
        if let Some(at) = last_success_unix {
            self.last_success_timestamp_seconds.with_label_values(&[sync]).set(at);
        }
        if let Some(rows) = snapshot_rows {
            self.snapshot_rows.with_label_values(&[sync]).set(rows.min(i64::MAX as u64) as i64);
        }
    }
}

static METRICS: LazyLock<SyncMetrics> = LazyLock::new(SyncMetrics::new);

/// The sync metrics, registered on first use.
pub fn metrics() -> &'static SyncMetrics {
    &METRICS
}

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
            // Everything but the removals went: the records are fresh; `removals_held` alerts.
            RunStatus::Held => {
                m.last_success_timestamp_seconds.with_label_values(&[sync]).set(unix_now());
                m.last_run_succeeded.with_label_values(&[sync]).set(1);
            }
            RunStatus::Cancelled => {}
        }
        m.rows_read_total.with_label_values(&[sync]).inc_by(c.rows_read);
        m.rows_invalid_total.with_label_values(&[sync]).inc_by(c.invalid);
        m.rows_held_total.with_label_values(&[sync]).inc_by(c.held);
        for (operation, n) in [
            ("create", c.created),
            ("update", c.updated),
            ("skip", c.skipped),
            ("associate", c.associated),
            ("list_add", c.list_added),
            ("list_remove", c.list_removed),
            ("archive", c.archived),
            ("clear", c.cleared),
            ("unlink", c.unlinked),
        ] {
            m.changes_total.with_label_values(&[sync, operation]).inc_by(n);
        }
        if let Some(rows) = self.snapshot_rows {
            m.snapshot_rows.with_label_values(&[sync]).set(rows as i64);
        }
    }
}

/// The delete guard decided on a run's removals: `records` held (0 when they were sent or
/// there were none).
pub struct RemovalsHeld<'a> {
    pub sync: &'a str,
    pub records: u64,
}

impl RemovalsHeld<'_> {
    pub fn emit(&self) {
        if self.records > 0 {
            tracing::warn!(
                sync = self.sync,
                records = self.records,
                "The delete guard held this run's removals; nothing was archived, cleared, unlinked or unlisted."
            );
        }
        metrics().removals_held.with_label_values(&[self.sync]).set(self.records.min(i64::MAX as u64) as i64);
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

/// Creates of one batch got no certain answer; they are reconciled by search, not re-sent.
pub struct CreatesUncertain<'a> {
    pub sync: &'a str,
    pub records: usize,
    /// What happened to the request (the client's words, no record data).
    pub detail: &'a str,
}

impl CreatesUncertain<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            sync = self.sync,
            records = self.records,
            detail = self.detail,
            "Creates may have reached HubSpot without an answer; they are looked up by search before any is sent again."
        );
        metrics().uncertain_creates_total.with_label_values(&[self.sync]).inc_by(self.records as u64);
    }
}

/// Uncertain creates were looked up after the search index lag.
pub struct CreatesReconciled<'a> {
    pub sync: &'a str,
    /// Found: the create had happened; the record's id is learned.
    pub found: usize,
    /// Not found: the create had not happened; the record may be created.
    pub not_found: usize,
}

impl CreatesReconciled<'_> {
    pub fn emit(&self) {
        tracing::info!(
            sync = self.sync,
            found = self.found,
            not_found = self.not_found,
            "Uncertain creates reconciled by search."
        );
        let m = &metrics().reconciled_creates_total;
        m.with_label_values(&[self.sync, "found"]).inc_by(self.found as u64);
        m.with_label_values(&[self.sync, "not_found"]).inc_by(self.not_found as u64);
    }
}

/// Records hubsync knew by id were found merged into another or deleted in HubSpot.
pub struct RecordsVanished<'a> {
    pub sync: &'a str,
    /// Merged: the id map moved to the surviving record.
    pub merged: usize,
    /// Deleted: the id was forgotten and the row matched again.
    pub deleted: usize,
}

impl RecordsVanished<'_> {
    pub fn emit(&self) {
        if self.merged + self.deleted == 0 {
            return;
        }
        tracing::warn!(
            sync = self.sync,
            merged = self.merged,
            deleted = self.deleted,
            "Records were merged or deleted in HubSpot; merged ones now go to their surviving record, deleted ones \
             were matched again."
        );
        let m = &metrics().vanished_records_total;
        m.with_label_values(&[self.sync, "merged"]).inc_by(self.merged as u64);
        m.with_label_values(&[self.sync, "deleted"]).inc_by(self.deleted as u64);
    }
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
        let text = crate::telemetry::encode();
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let (name, kind) = (parts[2], parts[3]);
            assert!(name.starts_with("hubsync_"), "{name}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
        }
        assert!(text.contains("hubsync_runs_total{outcome=\"succeeded\",sync=\"s\"} 1"), "{text}");
    }
}
