//! The diff in one pass over the staging file. The snapshot's keys are indexed by their key
//! hash (17 bytes a row: key hash, row hash and flags; sorted, with a directory of buckets),
//! and each staged row looks its key hash up: unchanged, changed, new, or a key seen twice. Only
//! what the diff finds goes into DuckDB: the changed, new, invalid and rejected rows, and the
//! snapshot's keys that no staged row names (`left_keys`, found by a second scan of the keys
//! when there are some). A run where 1% of 1,000,000 rows changed loads 10,000 rows, not
//! 1,000,000, and runs no join over the snapshot.
//!
//! The index holds key hashes, not keys. A staged row is unchanged only when both its key hash
//! and its row hash (which covers the key) equal a snapshot row's, so the chance of sending too
//! little is that of the no-change check (about 2^-64). A key seen twice is checked key by key,
//! on a second pass that reads only the rows with that key hash. A new key whose key hash is a
//! snapshot key's is sent as changed, as a new key is (the changed rows are joined with the
//! snapshot by key), but keeps that snapshot key from counting as left the model: a removal
//! missed with the same chance. Two snapshot keys with the same key hash cannot be told apart
//! by the index: the SQL diff runs instead (`staging.rs`).

use std::path::Path;
use std::sync::Arc;

use duckdb::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int64Builder, StringArray, StringBuilder, UInt64Builder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{params, Connection};

use super::staging_file::{KeyFingerprint, StagedRow};
use super::store::StateStore;
use super::types::{query_error, StateError};
use crate::source::{key_hash, text_column};

/// The rows appended to DuckDB per flush.
const APPEND_ROWS: usize = 16_384;
/// The flag of a snapshot row with no row hash (its id is known, nothing was delivered).
const NO_HASH: u8 = 1;
/// The flag of a snapshot row a staged row named.
const SEEN: u8 = 2;
/// DuckDB's memory limit while the index reads the snapshot: the pages of a scan are read
/// once, and DuckDB would otherwise keep every one of them (its buffer pool fills up to
/// `memory_limit`) beside the index, which grows with the snapshot too.
const INDEX_SCAN_MEMORY_MB: u64 = 8;

/// A snapshot row in the index: 16 bytes, and a byte of flags beside it.
#[derive(Debug, Clone, Copy)]
struct IndexEntry {
    key_hash: u64,
    row_hash: u64,
}

/// The snapshot's rows by key hash.
pub(super) struct SnapshotIndex {
    /// Sorted by key hash, each key hash once.
    entries: Vec<IndexEntry>,
    /// Per entry, [`NO_HASH`] and [`SEEN`].
    flags: Vec<u8>,
    /// `directory[b]` is the first entry whose key hash's top bits are `b` or more.
    directory: Vec<u32>,
    /// The key hash bits below a bucket's number.
    shift: u32,
}

impl SnapshotIndex {
    /// Indexes the snapshot's keys. `None` when two keys have the same key hash.
    pub(super) fn build(conn: &Connection, state: &Path) -> Result<Option<SnapshotIndex>, StateError> {
        let error = |e: duckdb::Error| query_error(state, e);
        let rows: i64 = conn.query_row("SELECT count(*) FROM snapshot", [], |r| r.get(0)).map_err(error)?;
        let mut entries = Vec::with_capacity(rows as usize);
        // The key hashes of the rows with no row hash: few (ids found but nothing delivered).
        let mut no_hash = Vec::new();
        for_each_snapshot_batch(conn, state, "SELECT pk, row_hash FROM snapshot", |keys, batch| {
            let Some(hashes) = batch.column(1).as_primitive_opt::<UInt64Type>() else {
                return Err(query_error(state, "the snapshot's row hashes read back with another type"));
            };
            for (i, key) in keys.iter().enumerate() {
                let Some(key) = key else { continue };
                let k = key_hash(key);
                if hashes.is_null(i) {
                    no_hash.push(k);
                }
                entries.push(IndexEntry { key_hash: k, row_hash: hashes.value(i) });
            }
            Ok(())
        })?;
        entries.sort_unstable_by_key(|e| e.key_hash);
        if entries.windows(2).any(|pair| pair[0].key_hash == pair[1].key_hash) {
            return Ok(None);
        }
        // About two entries a bucket.
        let bits = (usize::BITS - entries.len().leading_zeros()).saturating_sub(1).min(24);
        let shift = u64::BITS - bits;
        let bucket = |k: u64| k.checked_shr(shift).unwrap_or(0) as usize;
        let mut directory = Vec::with_capacity((1 << bits) + 1);
        let mut at = 0usize;
        for b in 0..(1usize << bits) {
            while at < entries.len() && bucket(entries[at].key_hash) < b {
                at += 1;
            }
            directory.push(at as u32);
        }
        directory.push(entries.len() as u32);
        let mut index = SnapshotIndex { flags: vec![0; entries.len()], entries, directory, shift };
        for k in no_hash {
            if let Some(i) = index.find(k) {
                index.flags[i] |= NO_HASH;
            }
        }
        Ok(Some(index))
    }

    /// The entry of a key hash.
    fn find(&self, key_hash: u64) -> Option<usize> {
        let b = key_hash.checked_shr(self.shift).unwrap_or(0) as usize;
        let (start, end) = (self.directory[b] as usize, self.directory[b + 1] as usize);
        (start..end).find(|&i| self.entries[i].key_hash == key_hash)
    }

    /// Whether the snapshot row `i` was acknowledged with the row hash `hash`.
    fn holds(&self, i: usize, hash: u64) -> bool {
        self.flags[i] & NO_HASH == 0 && self.entries[i].row_hash == hash
    }

    /// Marks the snapshot row `i` named; true when it was already.
    fn see(&mut self, i: usize) -> bool {
        let seen = self.flags[i] & SEEN != 0;
        self.flags[i] |= SEEN;
        seen
    }

    /// The key hashes of the snapshot rows no staged row named, sorted.
    fn unseen(&self) -> Vec<u64> {
        self.entries.iter().zip(&self.flags).filter(|(_, f)| *f & SEEN == 0).map(|(e, _)| e.key_hash).collect()
    }
}

/// Streams a query over the snapshot whose first column is its key, calling `each` with every
/// batch's keys (as text) and the batch.
fn for_each_snapshot_batch(
    conn: &Connection,
    state: &Path,
    sql: &str,
    mut each: impl FnMut(&StringArray, &RecordBatch) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let error = |e: duckdb::Error| query_error(state, e);
    let mut statement = conn.prepare(sql).map_err(error)?;
    for batch in statement.stream_arrow([]).map_err(error)? {
        let batch = batch.map_err(error)?;
        let keys = text_column(batch.column(0))
            .map_err(|e| query_error(state, format!("cannot read the snapshot's keys: {e}")))?;
        each(keys.as_string::<i32>(), &batch)?;
    }
    Ok(())
}

/// Rows appended to a temp table a batch at a time: `diff_rows` (row number, key, key hash, row
/// hash, changed, rejected).
struct DiffRows<'c> {
    conn: &'c Connection,
    state: &'c Path,
    schema: Arc<Schema>,
    rownums: Int64Builder,
    keys: StringBuilder,
    key_hashes: UInt64Builder,
    hashes: UInt64Builder,
    changed: BooleanBuilder,
    rejected: BooleanBuilder,
    pending: usize,
}

impl<'c> DiffRows<'c> {
    fn new(conn: &'c Connection, state: &'c Path) -> DiffRows<'c> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("rownum", DataType::Int64, false),
            Field::new("pk", DataType::Utf8, true),
            Field::new("k", DataType::UInt64, false),
            Field::new("h", DataType::UInt64, false),
            Field::new("changed", DataType::Boolean, false),
            Field::new("rejected", DataType::Boolean, false),
        ]));
        DiffRows {
            conn,
            state,
            schema,
            rownums: Int64Builder::new(),
            keys: StringBuilder::new(),
            key_hashes: UInt64Builder::new(),
            hashes: UInt64Builder::new(),
            changed: BooleanBuilder::new(),
            rejected: BooleanBuilder::new(),
            pending: 0,
        }
    }

    fn push(&mut self, row: &StagedRow<'_>, changed: bool) -> Result<(), StateError> {
        self.rownums.append_value(row.rownum);
        self.keys.append_option(row.key);
        self.key_hashes.append_value(row.key_hash);
        self.hashes.append_value(row.hash);
        self.changed.append_value(changed);
        self.rejected.append_value(row.rejected);
        self.pending += 1;
        if self.pending == APPEND_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StateError> {
        if self.pending == 0 {
            return Ok(());
        }
        self.pending = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.rownums.finish()),
            Arc::new(self.keys.finish()),
            Arc::new(self.key_hashes.finish()),
            Arc::new(self.hashes.finish()),
            Arc::new(self.changed.finish()),
            Arc::new(self.rejected.finish()),
        ];
        let state = self.state;
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| query_error(state, e))?;
        let mut appender =
            self.conn.appender_to_catalog_and_db("diff_rows", "temp", "main").map_err(|e| query_error(state, e))?;
        appender.append_record_batch(batch).map_err(|e| query_error(state, e))?;
        appender.flush().map_err(|e| query_error(state, e))
    }
}

/// Writes `left_keys`: the snapshot's keys whose key hash is in `unseen` (sorted). They are
/// found by a second scan of the keys, only when there are some, so the index need not hold
/// where each row is.
fn write_left_keys(conn: &Connection, state: &Path, unseen: &[u64]) -> Result<(), StateError> {
    let error = |e: duckdb::Error| query_error(state, e);
    conn.execute_batch("CREATE OR REPLACE TEMP TABLE left_keys (pk VARCHAR)").map_err(error)?;
    if unseen.is_empty() {
        return Ok(());
    }
    // Held until the scan ends: appending on the connection would end the scan's query.
    let mut keys = StringBuilder::new();
    for_each_snapshot_batch(conn, state, "SELECT pk FROM snapshot", |batch_keys, _| {
        for key in batch_keys.iter().flatten() {
            if unseen.binary_search(&key_hash(key)).is_ok() {
                keys.append_value(key);
            }
        }
        Ok(())
    })?;
    let schema = Arc::new(Schema::new(vec![Field::new("pk", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(keys.finish())]).map_err(|e| query_error(state, e))?;
    let mut appender = conn.appender_to_catalog_and_db("left_keys", "temp", "main").map_err(error)?;
    appender.append_record_batch(batch).map_err(error)?;
    appender.flush().map_err(error)
}

impl StateStore {
    /// The snapshot's index, read with DuckDB's memory limit at [`INDEX_SCAN_MEMORY_MB`] so that
    /// the pages of the scan do not stay beside it.
    fn build_index(&mut self) -> Result<Option<SnapshotIndex>, StateError> {
        let before = self.memory_mb;
        // Best effort: a limit DuckDB cannot free its memory down to leaves the limit as it was,
        // and a scan that runs out of the smaller limit runs again with the whole budget.
        if let Err(e) = self.set_memory_mb(INDEX_SCAN_MEMORY_MB.min(before)) {
            tracing::debug!(error = %e, "The snapshot's index is read at the run's memory limit.");
        }
        let built = self.at_full_budget_on_oom(|store| SnapshotIndex::build(&store.reader.conn, &store.reader.path));
        self.set_memory_mb(before.max(self.memory_mb))?;
        built
    }

    /// Diffs the staged rows against the snapshot in one pass over the staging file (see the
    /// module's text), writing `changed_all`, `dup_keys`, `invalid_now` and `left_keys`. With
    /// `full`, every valid row counts as changed. False, with nothing written, when the
    /// snapshot has two keys with the same key hash (the SQL diff must run).
    pub(super) fn diff_in_one_pass(&mut self, full: bool) -> Result<bool, StateError> {
        let Some(mut index) = self.build_index()? else {
            return Ok(false);
        };
        let (conn, path) = (&self.reader.conn, &self.reader.path);
        let Some(file) = self.staging.as_mut() else {
            return Err(query_error(path, "the diff ran before create_staging"));
        };
        let error = |e: duckdb::Error| query_error(path, e);
        conn.execute_batch(
            "CREATE OR REPLACE TEMP TABLE diff_rows (rownum BIGINT, pk VARCHAR, k UBIGINT, h UBIGINT, changed BOOLEAN, rejected BOOLEAN);
             CREATE OR REPLACE TEMP TABLE dup_rows (rownum BIGINT, pk VARCHAR);",
        )
        .map_err(error)?;
        // Key hashes named twice, and those of keys the snapshot does not hold (a key named
        // twice among them shows when they are sorted).
        let (mut twice, mut new) = (Vec::new(), Vec::new());
        let mut fingerprint = KeyFingerprint::default();
        let mut rows = DiffRows::new(conn, path);
        file.for_each_row(path, |row| {
            if row.key.is_none() {
                return rows.push(&row, false);
            }
            fingerprint.add(row.key_hash);
            let differs = match index.find(row.key_hash) {
                Some(i) => {
                    if index.see(i) {
                        twice.push(row.key_hash);
                    }
                    full || !index.holds(i, row.hash)
                }
                None => {
                    new.push(row.key_hash);
                    true
                }
            };
            if differs || row.rejected {
                rows.push(&row, differs && !row.rejected)?;
            }
            Ok(())
        })?;
        rows.flush()?;
        new.sort_unstable();
        twice.extend(new.windows(2).filter(|pair| pair[0] == pair[1]).map(|pair| pair[0]));
        drop(new);
        twice.sort_unstable();
        twice.dedup();
        if !twice.is_empty() {
            // Which of the rows with those key hashes share a key: a second pass reads only them.
            let mut named: std::collections::HashMap<String, Vec<(i64, u64)>> = std::collections::HashMap::new();
            file.for_each_row(path, |row| {
                if let (Some(key), Ok(_)) = (row.key, twice.binary_search(&row.key_hash)) {
                    named.entry(key.to_string()).or_default().push((row.rownum, row.key_hash));
                }
                Ok(())
            })?;
            let mut appender = conn.appender_to_catalog_and_db("dup_rows", "temp", "main").map_err(error)?;
            for (key, rows) in named.iter().filter(|(_, rows)| rows.len() > 1) {
                for (rownum, key_hash) in rows {
                    fingerprint.remove(*key_hash);
                    appender.append_row(params![rownum, key]).map_err(error)?;
                }
            }
            appender.flush().map_err(error)?;
        }
        let unseen = index.unseen();
        drop(index);
        write_left_keys(conn, path, &unseen)?;
        conn.execute_batch(
            "CREATE OR REPLACE TEMP TABLE dup_keys AS SELECT DISTINCT pk FROM dup_rows;
             CREATE OR REPLACE TEMP TABLE invalid_now AS
               SELECT d.rownum AS row_number, d.pk,
                      CASE WHEN d.pk IS NULL THEN 'NULL_PRIMARY_KEY'
                           WHEN d.dup THEN 'DUPLICATE_PRIMARY_KEY'
                           ELSE r.code END AS code,
                      CASE WHEN d.pk IS NULL THEN 'the primary key is null'
                           WHEN d.dup THEN 'the primary key appears in more than one row'
                           ELSE r.message END AS message
               FROM (SELECT rownum, pk, false AS dup FROM diff_rows
                     WHERE (pk IS NULL OR rejected) AND rownum NOT IN (SELECT rownum FROM dup_rows)
                     UNION ALL SELECT rownum, pk, true FROM dup_rows) d
               LEFT JOIN staging_rejects r ON r.rownum = d.rownum;
             CREATE OR REPLACE TEMP TABLE changed_all AS
               SELECT rownum, pk, k, h FROM diff_rows
               WHERE changed AND rownum NOT IN (SELECT rownum FROM dup_rows)
               ORDER BY rownum;
             DROP TABLE diff_rows; DROP TABLE dup_rows;",
        )
        .map_err(error)?;
        file.fingerprint = Some(fingerprint.text());
        Ok(true)
    }
}
