//! The values the state store takes and gives: its error, changed rows, journal entries, run
//! counts and records, rejections and invalid rows. A leaf: every other state file uses it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What can go wrong with a state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open the state file {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("state file {path}: {message}")]
    Query { path: PathBuf, message: String },
}

impl StateError {
    /// Whether DuckDB ran out of the memory it was given (it spills what it can first).
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, StateError::Query { message, .. } if message.contains("Out of Memory Error"))
    }
}

/// A failed statement on the state file at `path`.
pub(super) fn query_error(path: &Path, e: impl std::fmt::Display) -> StateError {
    StateError::Query { path: path.to_path_buf(), message: e.to_string() }
}

/// One changed (or new) row, as the diff found it.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub n: i64,
    pub pk: String,
    pub match_value: Option<String>,
    pub hash: u64,
    pub hubspot_id: Option<String>,
    /// Property values HubSpot last acknowledged, or `None` if nothing was delivered yet.
    pub old_props: Option<BTreeMap<String, Option<String>>>,
    /// Current values, in the order of the sync's properties.
    pub values: Vec<Option<String>>,
    /// Association cells, in the order of the sync's associations.
    pub links: Vec<Option<String>>,
}

/// Totals of a diff.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffTotals {
    pub rows: u64,
    pub invalid: u64,
    pub changed: u64,
    /// Rows left out because they were refused for the same values before.
    pub held: u64,
}

/// One thing to remember about a record, written in the same transaction as its batch's
/// acknowledgement.
#[derive(Debug, Clone)]
pub enum Entry {
    /// HubSpot acknowledged these values for this record.
    Ack { pk: String, hubspot_id: String, hash: u64, props: String },
    /// The record's HubSpot id was learned (from a search or a read), nothing delivered.
    Id { pk: String, hubspot_id: String },
    /// HubSpot refused the record, or it could not be sent. `hash` is the row hash of the
    /// values refused: a rejection for the values themselves (see [`waits_for_change`]) is
    /// not sent again until the row's hash changes.
    Reject { pk: String, code: String, message: String, hash: Option<u64> },
    /// A create is about to be sent for this record, matched by `match_value`, in `batch`.
    /// Written (and committed) before the request leaves, so a create whose answer never
    /// arrives is reconciled by search instead of being sent again blindly.
    Intent { pk: String, match_value: String, batch: String },
    /// The record was merged into another in HubSpot: the key's id map moves to the surviving
    /// record `hubspot_id`. Its list memberships and links are made again for that id.
    Moved { pk: String, hubspot_id: String },
    /// The record is gone from HubSpot (deleted): the key's id and what was delivered to it are
    /// forgotten, so the row goes through its match rule again.
    Forget { pk: String },
    /// A create that was uncertain was looked up after the search index lag and not found:
    /// it did not happen, and the record may be created again.
    Settle { pk: String },
}

/// True for rejection codes that say the record's values are wrong (an invalid e-mail, a
/// number that is not one, a string too long, a conflict with another record's unique
/// value): sending the same values again cannot succeed, so the record waits until its row
/// changes (or `hubsync sync --retry-rejected`). Every other code (no answer, an uncertain
/// delivery, a server error, a rate limit) is transient and retried on every run.
pub fn waits_for_change(code: &str) -> bool {
    let code = code.trim().to_ascii_uppercase();
    code.starts_with("INVALID_")
        || matches!(
            code.as_str(),
            "VALIDATION_ERROR" | "CONFLICT" | "READ_ONLY_VALUE" | "MISSING_MATCH_VALUE" | "MISSING_ID"
        )
}

/// Counts of one run, as stored in `runs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunCounts {
    pub rows_read: u64,
    pub invalid: u64,
    pub unchanged: u64,
    pub created: u64,
    pub updated: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub associated: u64,
    pub association_rejected: u64,
    pub list_added: u64,
    pub list_removed: u64,
    pub requests: u64,
    /// Rows not sent because HubSpot refused the same values before (they wait for a change).
    pub held: u64,
    /// Creates whose answer was lost (gateway error, timeout, dropped connection, crash).
    pub uncertain: u64,
    /// Uncertain creates settled by a search after the index lag (found, or known not made).
    pub reconciled: u64,
    /// Records (and association targets, list members) found merged into another record in
    /// HubSpot: the id map moved to the survivor and the change went there.
    pub merged: u64,
    /// Records (and association targets, list members) found deleted in HubSpot: the id was
    /// forgotten and the row matched again (re-created by an upsert, skipped in update mode).
    pub vanished: u64,
    /// Records archived because their rows left the model (`on_delete = "archive"`).
    pub archived: u64,
    /// Records whose mapped properties were emptied because their rows left (`"clear"`).
    pub cleared: u64,
    /// Links hubsync made that were removed because no row asks for them (`remove_stale`).
    pub unlinked: u64,
    /// Records whose removals the delete guard held back (none of them was sent).
    pub removals_held: u64,
}

/// One stored run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    pub run_id: i64,
    pub trigger: String,
    pub full_resync: bool,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub counts: RunCounts,
    pub error: Option<String>,
}

/// One currently rejected record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejection {
    pub pk: String,
    pub code: String,
    pub message: String,
    pub attempts: i64,
    pub last_seen: String,
    /// True when the record waits for its row to change before it is sent again; false when
    /// it is retried on every run.
    pub waits_for_change: bool,
}

/// One row set aside before sending.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InvalidRow {
    pub row_number: i64,
    pub pk: Option<String>,
    pub code: String,
    pub message: String,
}

/// A create that may have happened: its intent was journaled, and no answer settled it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingCreate {
    pub pk: String,
    pub match_value: String,
    pub batch: String,
    /// Seconds since the create was sent.
    pub age_secs: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_rejections_wait_for_a_change_and_others_are_retried() {
        for code in ["INVALID_EMAIL", "INVALID_STRING", "INVALID_LONG", "CONFLICT", "MISSING_MATCH_VALUE"] {
            assert!(waits_for_change(code), "{code}");
        }
        for code in ["NO_RESULT", "DELIVERY_UNCERTAIN", "HTTP_502", "RETRIES_EXHAUSTED", "DUPLICATE_IN_BATCH"] {
            assert!(!waits_for_change(code), "{code}");
        }
    }
}
