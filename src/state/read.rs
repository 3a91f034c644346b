//! Reading a state file: what `status`, `plan` and the daemon's status routes show. A reader
//! opened with [`StateReader::open_read_only`] never writes: no file or folder is created, no
//! schema is migrated and no journal is merged, so a status read cannot disturb a run or a
//! file that a newer hubsync wrote. [`super::StateStore`] reads through the same methods.

use std::path::{Path, PathBuf};

use duckdb::{params, AccessMode, Connection};

use super::types::{InvalidRow, PendingCreate, Rejection, RunCounts, RunRecord, StateError};

/// A state file opened for reading.
pub struct StateReader {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
}

/// Turns DuckDB's open error into words: its file lock means another process has the file.
pub(super) fn open_error(path: &Path, e: impl std::fmt::Display) -> StateError {
    let text = e.to_string();
    if let Some(sentence) = crate::source::storage_version_message(path, &text) {
        return StateError::Open { path: path.to_path_buf(), message: sentence };
    }
    // DuckDB's own words for a lock held by another process; other errors that merely
    // contain "lock" (a checksum error in a block, say) are reported as they are.
    let message = if text.contains("Could not set lock on file") || text.contains("Conflicting lock is held") {
        format!("{text}; another hubsync process is using this sync's state file (a run or the daemon)")
    } else {
        text
    };
    StateError::Open { path: path.to_path_buf(), message }
}

impl StateReader {
    /// Opens an existing state file read-only. A missing file is an error (`Open`) saying the
    /// sync has not run yet; callers that want to print "never run" check for the file first.
    pub fn open_read_only(path: &Path) -> Result<StateReader, StateError> {
        if !path.exists() {
            return Err(StateError::Open {
                path: path.to_path_buf(),
                message: "no state file: the sync has not run yet".into(),
            });
        }
        let config = duckdb::Config::default().access_mode(AccessMode::ReadOnly).map_err(|e| open_error(path, e))?;
        let conn = Connection::open_with_flags(path, config).map_err(|e| open_error(path, e))?;
        Ok(StateReader { conn, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn err(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Query { path: self.path.clone(), message: e.to_string() }
    }

    pub(super) fn batch(&self, sql: &str) -> Result<(), StateError> {
        self.conn.execute_batch(sql).map_err(|e| self.err(e))
    }

    pub(super) fn scalar_i64(&self, sql: &str) -> Result<i64, StateError> {
        self.conn.query_row(sql, [], |r| r.get(0)).map_err(|e| self.err(e))
    }

    /// True when `table` has `column`: a file written by an older hubsync and only ever read
    /// since lacks the columns added later.
    pub(super) fn has_column(&self, table: &str, column: &str) -> bool {
        self.conn
            .query_row(
                "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = ?",
                params![table, column],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .unwrap_or(false)
    }

    /// `expr` when the column it reads exists (its name is the first word inside any call),
    /// else `fallback`.
    fn column_or(&self, table: &str, expr: &str, fallback: &str) -> String {
        let column = expr.rsplit('(').next().unwrap_or(expr).split([',', ')']).next().unwrap_or(expr).trim();
        if self.has_column(table, column) {
            expr.to_string()
        } else {
            fallback.to_string()
        }
    }

    pub fn snapshot_rows(&self) -> Result<u64, StateError> {
        Ok(self.scalar_i64("SELECT count(*) FROM snapshot WHERE row_hash IS NOT NULL")? as u64)
    }

    pub fn known_ids(&self) -> Result<u64, StateError> {
        Ok(self.scalar_i64("SELECT count(*) FROM snapshot WHERE hubspot_id IS NOT NULL")? as u64)
    }

    /// The HubSpot id learned for a key, if any.
    pub fn hubspot_id(&self, pk: &str) -> Result<Option<String>, StateError> {
        let mut statement =
            self.conn.prepare("SELECT hubspot_id FROM snapshot WHERE pk = ?").map_err(|e| self.err(e))?;
        let mut rows = statement.query(params![pk]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(row) => row.get(0).map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }

    /// The latest runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        let mut statement = self
            .conn
            .prepare(&format!(
                "SELECT run_id, trigger, full_resync, strftime(started_at, '%Y-%m-%d %H:%M:%S'), \
                 strftime(finished_at, '%Y-%m-%d %H:%M:%S'), status, rows_read, invalid, unchanged, created, \
                 updated, skipped, rejected, requests, error, associated, association_rejected, list_added, \
                 list_removed, {} FROM runs ORDER BY run_id DESC LIMIT ?",
                self.column_or("runs", "held", "0")
                    + ", "
                    + &self.column_or("runs", "uncertain", "0")
                    + ", "
                    + &self.column_or("runs", "reconciled", "0")
                    + ", "
                    + &["merged", "vanished", "archived", "cleared", "unlinked", "removals_held"]
                        .map(|c| self.column_or("runs", c, "0"))
                        .join(", ")
            ))
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params![limit as i64], |r| {
                let n = |i: usize| -> duckdb::Result<u64> { Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0) as u64) };
                Ok(RunRecord {
                    run_id: r.get(0)?,
                    trigger: r.get(1)?,
                    full_resync: r.get(2)?,
                    started_at: r.get(3)?,
                    finished_at: r.get(4)?,
                    status: r.get(5)?,
                    counts: RunCounts {
                        rows_read: n(6)?,
                        invalid: n(7)?,
                        unchanged: n(8)?,
                        created: n(9)?,
                        updated: n(10)?,
                        skipped: n(11)?,
                        rejected: n(12)?,
                        requests: n(13)?,
                        associated: n(15)?,
                        association_rejected: n(16)?,
                        list_added: n(17)?,
                        list_removed: n(18)?,
                        held: n(19)?,
                        uncertain: n(20)?,
                        reconciled: n(21)?,
                        merged: n(22)?,
                        vanished: n(23)?,
                        archived: n(24)?,
                        cleared: n(25)?,
                        unlinked: n(26)?,
                        removals_held: n(27)?,
                    },
                    error: r.get(14)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Records currently rejected, most recent first, and their total.
    pub fn rejections(&self, limit: usize) -> Result<(Vec<Rejection>, u64), StateError> {
        let total = self.scalar_i64("SELECT count(*) FROM rejections")? as u64;
        let mut statement = self
            .conn
            .prepare(&format!(
                "SELECT pk, code, message, attempts, strftime(last_seen, '%Y-%m-%d %H:%M:%S'), {} FROM rejections \
                 ORDER BY last_seen DESC, pk LIMIT ?",
                self.column_or("rejections", "coalesce(on_change, false)", "false")
            ))
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params![limit as i64], |r| {
                Ok(Rejection {
                    pk: r.get(0)?,
                    code: r.get(1)?,
                    message: r.get(2)?,
                    attempts: r.get::<_, i32>(3)? as i64,
                    last_seen: r.get(4)?,
                    waits_for_change: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let list = rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        Ok((list, total))
    }

    /// Rows of the last run that were set aside, and their total.
    pub fn invalid_rows(&self, limit: usize) -> Result<(Vec<InvalidRow>, u64), StateError> {
        let total = self.scalar_i64("SELECT count(*) FROM invalid_rows")? as u64;
        let mut statement = self
            .conn
            .prepare("SELECT row_number, pk, code, message FROM invalid_rows ORDER BY row_number LIMIT ?")
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params![limit as i64], |r| {
                Ok(InvalidRow { row_number: r.get(0)?, pk: r.get(1)?, code: r.get(2)?, message: r.get(3)? })
            })
            .map_err(|e| self.err(e))?;
        let list = rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        Ok((list, total))
    }

    /// Creates that may have happened without an answer, oldest first (see `pending_creates`
    /// in `sql/migrations/001_base.sql`).
    pub fn pending_creates(&self) -> Result<Vec<PendingCreate>, StateError> {
        if !self.has_column("pending_creates", "pk") {
            return Ok(Vec::new());
        }
        let mut statement = self
            .conn
            .prepare("SELECT pk, match_value, batch, sent_at FROM pending_creates ORDER BY sent_at, pk")
            .map_err(|e| self.err(e))?;
        let now = chrono::Utc::now().naive_utc();
        let rows = statement
            .query_map([], |r| {
                let sent: Option<chrono::NaiveDateTime> = r.get(3)?;
                let age = sent.map_or(f64::MAX, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
                Ok(PendingCreate { pk: r.get(0)?, match_value: r.get(1)?, batch: r.get(2)?, age_secs: age })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}
