//! The DuckDB state store of one sync: staging, diff, journal of acknowledgements, merge, runs.
//! One store is owned by one task at a time; DuckDB's file lock keeps a second process out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use duckdb::{params, Connection, ToSql};

use crate::source::{is_lock_conflict, key_hash, storage_version_message, KeySet, Row, RowKey};

const SCHEMA: &str = include_str!("../../sql/schema.sql");
const MERGE_JOURNAL_LAST: &str = include_str!("../../sql/merge_journal_last.sql");
const MERGE_SWAP: &str = include_str!("../../sql/merge.sql");
const MERGE_IN_PLACE: &str = include_str!("../../sql/merge_in_place.sql");
const MERGE_REJECTIONS: &str = include_str!("../../sql/merge_rejections.sql");
/// A journal with fewer entries than the snapshot's rows divided by this is merged in place;
/// a bigger one rewrites the snapshot (cheaper than replacing most of its rows one by one).
const IN_PLACE_RATIO: i64 = 8;

/// What can go wrong with a state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open the state file {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("state file {path}: {message}")]
    Query { path: PathBuf, message: String },
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
}

/// One thing to remember about a record, written in the same transaction as its batch's
/// acknowledgement.
#[derive(Debug, Clone)]
pub enum Entry {
    /// HubSpot acknowledged these values for this record.
    Ack { pk: String, hubspot_id: String, hash: u64, props: String },
    /// The record's HubSpot id was learned (from a search or a read), nothing delivered.
    Id { pk: String, hubspot_id: String },
    /// HubSpot refused the record, or it could not be sent.
    Reject { pk: String, code: String, message: String },
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
}

/// One row set aside before sending.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InvalidRow {
    pub row_number: i64,
    pub pk: Option<String>,
    pub code: String,
    pub message: String,
}

pub struct StateStore {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    next_seq: i64,
}

impl StateStore {
    /// Opens (or creates) a state file, and merges what a crashed run left in the journal.
    pub fn open(path: &Path) -> Result<StateStore, StateError> {
        let open_error = |message: String| StateError::Open { path: path.to_path_buf(), message };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| open_error(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| {
            let text = e.to_string();
            if let Some(sentence) = storage_version_message(path, &text) {
                open_error(sentence)
            } else if is_lock_conflict(&text) {
                open_error(format!(
                    "{text}; another hubsync process is running this sync (or a DuckDB client opened the file \
                     for writing: open it read-only)"
                ))
            } else {
                open_error(text)
            }
        })?;
        let mut store = StateStore { conn, path: path.to_path_buf(), next_seq: 0 };
        store.batch(SCHEMA)?;
        store.next_seq = store.scalar_i64("SELECT coalesce(max(seq), 0) + 1 FROM journal")?;
        if store.merge_journal()? {
            tracing::info!(path = %path.display(), "Merged acknowledgements left by an interrupted run.");
        }
        store.batch(
            "UPDATE runs SET status = 'interrupted', finished_at = now()::TIMESTAMP, \
             error = 'the process stopped before the run finished' WHERE status = 'running'",
        )?;
        Ok(store)
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

    /// Starts a run record and returns its id.
    pub fn begin_run(&mut self, trigger: &str, full: bool) -> Result<i64, StateError> {
        let run_id = self.scalar_i64("SELECT coalesce(max(run_id), 0) + 1 FROM runs")?;
        self.conn
            .execute(
                "INSERT INTO runs (run_id, trigger, full_resync, started_at, status) \
                 VALUES (?, ?, ?, now()::TIMESTAMP, 'running')",
                params![run_id, trigger, full],
            )
            .map_err(|e| self.err(e))?;
        Ok(run_id)
    }

    /// Closes a run record.
    pub fn finish_run(
        &mut self,
        run_id: i64,
        status: &str,
        counts: &RunCounts,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        let c = counts;
        self.conn
            .execute(
                "UPDATE runs SET finished_at = now()::TIMESTAMP, status = ?, rows_read = ?, invalid = ?, \
                 unchanged = ?, created = ?, updated = ?, skipped = ?, rejected = ?, associated = ?, \
                 association_rejected = ?, list_added = ?, list_removed = ?, requests = ?, error = ? \
                 WHERE run_id = ?",
                params![
                    status,
                    c.rows_read as i64,
                    c.invalid as i64,
                    c.unchanged as i64,
                    c.created as i64,
                    c.updated as i64,
                    c.skipped as i64,
                    c.rejected as i64,
                    c.associated as i64,
                    c.association_rejected as i64,
                    c.list_added as i64,
                    c.list_removed as i64,
                    c.requests as i64,
                    error,
                    run_id
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Replaces the staging table with an empty one: one row per model row, with its number,
    /// key (`c0`), key hash (`k`), row hash (`h`), and why the source rejected it, if it did.
    pub fn create_staging(&mut self) -> Result<(), StateError> {
        self.batch(
            "CREATE OR REPLACE TABLE staging (rownum BIGINT, c0 VARCHAR, k UBIGINT, h UBIGINT, \
             reject_code VARCHAR, reject_message VARCHAR)",
        )
    }

    /// Appends the first read's rows to the staging table; `first_rownum` numbers the first.
    pub fn append_staging(&mut self, first_rownum: i64, keys: &[RowKey]) -> Result<(), StateError> {
        let mut appender = self.conn.appender("staging").map_err(|e| self.err(e))?;
        for (i, row) in keys.iter().enumerate() {
            let rownum = first_rownum + i as i64;
            appender
                .append_row(params![
                    rownum,
                    row.key,
                    row.key_hash,
                    row.hash,
                    row.rejected.as_ref().map(|r| r.code),
                    row.rejected.as_ref().map(|r| r.message.as_str())
                ])
                .map_err(|e| query_error(&self.path, e))?;
        }
        appender.flush().map_err(|e| query_error(&self.path, e))?;
        Ok(())
    }

    /// Replaces the table of the values read by the second read with an empty one of `width`
    /// value columns (`c0` = key, `c1` = match value, then one per property, then association
    /// cells).
    pub fn create_staging_rows(&mut self, width: usize) -> Result<(), StateError> {
        let columns: Vec<String> = (0..width).map(|i| format!("c{i} VARCHAR")).collect();
        self.batch(&format!("CREATE OR REPLACE TABLE staging_rows (rownum BIGINT, {})", columns.join(", ")))
    }

    /// Appends rows of values; `first_rownum` numbers the first of them.
    pub fn append_staging_rows(&mut self, first_rownum: i64, rows: &[Row]) -> Result<(), StateError> {
        let mut appender = self.conn.appender("staging_rows").map_err(|e| self.err(e))?;
        for (i, row) in rows.iter().enumerate() {
            let rownum = first_rownum + i as i64;
            let mut values: Vec<&dyn ToSql> = Vec::with_capacity(row.len() + 1);
            values.push(&rownum);
            for v in row {
                values.push(v);
            }
            appender.append_row(duckdb::appender_params_from_iter(values)).map_err(|e| query_error(&self.path, e))?;
        }
        appender.flush().map_err(|e| query_error(&self.path, e))?;
        Ok(())
    }

    /// Diffs the staged keys and hashes against the snapshot: sets aside invalid rows (null or
    /// repeated key, or rejected by the source, e.g. `INVALID_UTF8`) and writes the keys of the rows to send to `changed_keys`. With `full`,
    /// every valid row counts as changed.
    pub fn diff_keys(&mut self, run_id: Option<i64>, full: bool) -> Result<DiffTotals, StateError> {
        self.batch(&format!(
            "CREATE OR REPLACE TABLE dup_keys AS
               SELECT c0 AS pk FROM staging
               WHERE c0 IS NOT NULL AND k IN (SELECT k FROM staging GROUP BY k HAVING count(*) > 1)
               GROUP BY c0 HAVING count(*) > 1;
             CREATE OR REPLACE TABLE invalid_now AS
               SELECT rownum AS row_number, c0 AS pk,
                      CASE WHEN c0 IS NULL THEN 'NULL_PRIMARY_KEY'
                           WHEN c0 IN (SELECT pk FROM dup_keys) THEN 'DUPLICATE_PRIMARY_KEY'
                           ELSE reject_code END AS code,
                      CASE WHEN c0 IS NULL THEN 'the primary key is null'
                           WHEN c0 IN (SELECT pk FROM dup_keys) THEN 'the primary key appears in more than one row'
                           ELSE reject_message END AS message
               FROM staging
               WHERE c0 IS NULL OR c0 IN (SELECT pk FROM dup_keys) OR reject_code IS NOT NULL;
             CREATE OR REPLACE TABLE changed_keys AS
               SELECT c.rownum, c.c0 AS pk, c.k, c.h
               FROM (SELECT * FROM staging
                     WHERE c0 IS NOT NULL AND reject_code IS NULL AND c0 NOT IN (SELECT pk FROM dup_keys)) c
               LEFT JOIN snapshot s ON s.pk = c.c0
               WHERE {full} OR s.row_hash IS NULL OR s.row_hash <> c.h;"
        ))?;
        if let Some(run_id) = run_id {
            self.batch(&format!(
                "BEGIN; DELETE FROM invalid_rows; \
                 INSERT INTO invalid_rows SELECT {run_id}, row_number, pk, code, message FROM invalid_now; COMMIT;"
            ))?;
        }
        let rows = self.scalar_i64("SELECT count(*) FROM staging")? as u64;
        let invalid = self.scalar_i64("SELECT count(*) FROM invalid_now")? as u64;
        let changed = self.scalar_i64("SELECT count(*) FROM changed_keys")? as u64;
        Ok(DiffTotals { rows, invalid, changed })
    }

    /// The key hashes of the rows whose values the second read must bring: the changed rows,
    /// and, with `links`, the rows whose associations failed before (they are retried).
    pub fn wanted_keys(&self, links: bool) -> Result<KeySet, StateError> {
        let mut hashes = Vec::new();
        {
            let mut statement = self.conn.prepare("SELECT k FROM changed_keys").map_err(|e| self.err(e))?;
            let rows = statement.query_map([], |r| r.get::<_, u64>(0)).map_err(|e| self.err(e))?;
            for k in rows {
                hashes.push(k.map_err(|e| self.err(e))?);
            }
        }
        if links {
            let mut statement =
                self.conn.prepare("SELECT DISTINCT from_pk FROM association_rejections").map_err(|e| self.err(e))?;
            let rows = statement.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
            for pk in rows {
                hashes.push(key_hash(&pk.map_err(|e| self.err(e))?));
            }
        }
        Ok(KeySet::new(hashes))
    }

    /// Joins the changed keys with the values the second read brought into `changes`, the rows
    /// to send, in model order (read back by position: a window numbering them would have to
    /// hold them all in memory); returns how many. A key the second read did not find (its row
    /// left the model in between) is not sent this run; a key it found twice (a model whose keys
    /// changed between the reads) is sent once.
    pub fn build_changes(&mut self, props: &[String], links: usize) -> Result<u64, StateError> {
        let values: Vec<String> = (0..props.len() + links).map(|i| format!(", r.c{}", i + 2)).collect();
        let repeated = self.scalar_i64("SELECT count(*) - count(DISTINCT c0) FROM staging_rows")? > 0;
        let rows = if repeated {
            "(SELECT * FROM staging_rows QUALIFY row_number() OVER (PARTITION BY c0 ORDER BY rownum) = 1)"
        } else {
            "staging_rows"
        };
        self.batch(&format!(
            "CREATE OR REPLACE TABLE changes AS
               SELECT k.rownum, k.pk, r.c1 AS match_value, k.h AS row_hash,
                      s.hubspot_id, CASE WHEN s.row_hash IS NULL THEN NULL ELSE s.props END AS old_props{}
               FROM changed_keys k
               JOIN {rows} r ON r.c0 = k.pk
               LEFT JOIN snapshot s ON s.pk = k.pk
               ORDER BY k.rownum;",
            values.concat()
        ))?;
        Ok(self.scalar_i64("SELECT count(*) FROM changes")? as u64)
    }

    /// Reads the changed rows numbered `(after, after + limit]` (from 1, in model order).
    pub fn changes_page(
        &self,
        after: i64,
        limit: usize,
        props: &[String],
        links: usize,
    ) -> Result<Vec<ChangeRow>, StateError> {
        let values: Vec<String> = (0..props.len() + links).map(|i| format!(", c{}", i + 2)).collect();
        let sql = format!(
            "SELECT rowid + 1 AS n, pk, match_value, row_hash, hubspot_id, old_props{} FROM changes \
             WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
            values.concat()
        );
        let mut statement = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let upto = after + limit as i64;
        let rows = statement
            .query_map(params![after, upto], |r| {
                let old_props: Option<String> = r.get(5)?;
                let mut values = Vec::with_capacity(props.len());
                for i in 0..props.len() {
                    values.push(r.get::<_, Option<String>>(6 + i)?);
                }
                let mut link_cells = Vec::with_capacity(links);
                for j in 0..links {
                    link_cells.push(r.get::<_, Option<String>>(6 + props.len() + j)?);
                }
                Ok(ChangeRow {
                    n: r.get(0)?,
                    pk: r.get(1)?,
                    match_value: r.get(2)?,
                    hash: r.get(3)?,
                    hubspot_id: r.get(4)?,
                    old_props: old_props.and_then(|json| serde_json::from_str(&json).ok()),
                    values,
                    links: link_cells,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Writes entries in one transaction: called once per acknowledged HubSpot batch, so the
    /// snapshot can only ever advance by what HubSpot accepted.
    pub fn record(&mut self, run_id: i64, entries: &[Entry]) -> Result<(), StateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(|e| query_error(&self.path, e))?;
        {
            let mut appender = tx.appender("journal").map_err(|e| query_error(&self.path, e))?;
            let now = chrono::Utc::now().naive_utc();
            for (i, entry) in entries.iter().enumerate() {
                let seq = self.next_seq + i as i64;
                let none: Option<String> = None;
                let no_hash: Option<u64> = None;
                let result =
                    match entry {
                        Entry::Ack { pk, hubspot_id, hash, props } => appender
                            .append_row(params![seq, run_id, "ack", pk, hubspot_id, hash, props, none, none, now]),
                        Entry::Id { pk, hubspot_id } => appender
                            .append_row(params![seq, run_id, "id", pk, hubspot_id, no_hash, none, none, none, now]),
                        Entry::Reject { pk, code, message } => appender
                            .append_row(params![seq, run_id, "reject", pk, none, no_hash, none, code, message, now]),
                    };
                result.map_err(|e| query_error(&self.path, e))?;
            }
            appender.flush().map_err(|e| query_error(&self.path, e))?;
        }
        tx.commit().map_err(|e| query_error(&self.path, e))?;
        self.next_seq += entries.len() as i64;
        Ok(())
    }

    /// Folds the journal into the snapshot and the rejections, in one transaction. An empty
    /// journal costs one count, not a rewrite of the snapshot; a small one replaces only its
    /// keys' rows. Returns whether anything merged.
    pub fn merge_journal(&mut self) -> Result<bool, StateError> {
        let entries = self.scalar_i64("SELECT count(*) FROM journal")?;
        if entries == 0 {
            return Ok(false);
        }
        let snapshot_rows = self.scalar_i64("SELECT count(*) FROM snapshot")?;
        let snapshot = if entries * IN_PLACE_RATIO < snapshot_rows { MERGE_IN_PLACE } else { MERGE_SWAP };
        self.batch(&format!(
            "BEGIN TRANSACTION;\n{MERGE_JOURNAL_LAST}\n{snapshot}\nDROP VIEW journal_last;\n{MERGE_REJECTIONS}\nCOMMIT;"
        ))
        .inspect_err(|_| {
            let _ = self.conn.execute_batch("ROLLBACK");
        })?;
        Ok(true)
    }

    /// Drops the run's working tables. The big ones are temporary (never written to the file),
    /// so a process that stops without dropping them leaves nothing behind either.
    pub fn drop_work_tables(&mut self) -> Result<(), StateError> {
        self.batch(
            "DROP TABLE IF EXISTS staging; DROP TABLE IF EXISTS changes; DROP TABLE IF EXISTS dup_keys; \
             DROP TABLE IF EXISTS invalid_now; DROP TABLE IF EXISTS link_candidates; DROP TABLE IF EXISTS link_targets; \
             DROP TABLE IF EXISTS pending_links; DROP TABLE IF EXISTS staging_rows; DROP TABLE IF EXISTS changed_keys; \
             DROP TABLE IF EXISTS link_inputs; DROP TABLE IF EXISTS list_adds; DROP TABLE IF EXISTS list_removes;",
        )
    }

    /// Forgets what was delivered (ids stay known), so the next run compares against nothing.
    pub fn reset_snapshot(&mut self) -> Result<(), StateError> {
        self.merge_journal()?;
        self.batch("UPDATE snapshot SET row_hash = NULL, props = NULL, delivered_at = NULL")
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
            .prepare(
                "SELECT run_id, trigger, full_resync, strftime(started_at, '%Y-%m-%d %H:%M:%S'), \
                 strftime(finished_at, '%Y-%m-%d %H:%M:%S'), status, rows_read, invalid, unchanged, created, \
                 updated, skipped, rejected, requests, error, associated, association_rejected, list_added, \
                 list_removed FROM runs ORDER BY run_id DESC LIMIT ?",
            )
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
            .prepare(
                "SELECT pk, code, message, attempts, strftime(last_seen, '%Y-%m-%d %H:%M:%S') FROM rejections \
                 ORDER BY last_seen DESC, pk LIMIT ?",
            )
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params![limit as i64], |r| {
                Ok(Rejection {
                    pk: r.get(0)?,
                    code: r.get(1)?,
                    message: r.get(2)?,
                    attempts: r.get::<_, i32>(3)? as i64,
                    last_seen: r.get(4)?,
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
}
