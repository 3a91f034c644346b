//! The diff in one pass over the staging file. The snapshot's keys are indexed by their key
//! hash (24 bytes a row, sorted, with a directory of buckets), and each staged row looks its
//! key hash up: unchanged, changed, new, or a key seen twice. Only what the diff finds goes into
//! DuckDB: the changed, new, invalid and rejected rows, and the snapshot's keys that no staged
//! row names (`left_keys`). A run where 1% of 1,000,000 rows changed loads 10,000 rows, not
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

use duckdb::arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, Int64Builder, StringBuilder, UInt64Builder};
use duckdb::arrow::datatypes::{DataType, Field, Int64Type, Schema, UInt64Type};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{params, Connection};

use super::staging_file::{KeyFingerprint, StagedRow};
use super::store::StateStore;
use super::types::{query_error, StateError};
use crate::source::{key_hash, text_column};

/// The rows appended to DuckDB per flush.
const APPEND_ROWS: usize = 16_384;
/// The flag, in an entry's `rowid`, of a snapshot row with no row hash (its id is known, nothing
/// was delivered).
const NO_HASH: u64 = 1 << 63;
/// The flag, in an entry's `rowid`, of a snapshot row a staged row named (kept in the entry, so
/// a lookup touches one place).
const SEEN: u64 = 1 << 62;
/// The bits of an entry's `rowid` that are the row id.
const ROWID: u64 = !(NO_HASH | SEEN);

/// A snapshot row in the index.
#[derive(Debug, Clone, Copy)]
struct IndexEntry {
    key_hash: u64,
    row_hash: u64,
    /// Its `rowid`, with [`NO_HASH`] set when `row_hash` is NULL, and [`SEEN`] once a staged row
    /// named it.
    rowid: u64,
}

/// The snapshot's rows by key hash.
pub(super) struct SnapshotIndex {
    /// Sorted by key hash, each key hash once.
    entries: Vec<IndexEntry>,
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
        let mut statement = conn.prepare("SELECT pk, row_hash, rowid FROM snapshot").map_err(error)?;
        let mut entries = Vec::with_capacity(rows as usize);
        for batch in statement.stream_arrow([]).map_err(error)? {
            let batch = batch.map_err(error)?;
            let (keys, hashes, rowids) = (batch.column(0), batch.column(1), batch.column(2));
            let (Some(hashes), Some(rowids)) =
                (hashes.as_primitive_opt::<UInt64Type>(), rowids.as_primitive_opt::<Int64Type>())
            else {
                return Err(query_error(state, "the snapshot's row hashes or row ids read back with another type"));
            };
            let keys =
                text_column(keys).map_err(|e| query_error(state, format!("cannot read the snapshot's keys: {e}")))?;
            for (i, key) in keys.as_string::<i32>().iter().enumerate() {
                let Some(key) = key else { continue };
                let no_hash = if hashes.is_null(i) { NO_HASH } else { 0 };
                entries.push(IndexEntry {
                    key_hash: key_hash(key),
                    row_hash: hashes.value(i),
                    rowid: (rowids.value(i) as u64 & ROWID) | no_hash,
                });
            }
        }
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
        Ok(Some(SnapshotIndex { entries, directory, shift }))
    }

    /// The entry of a key hash.
    fn find(&self, key_hash: u64) -> Option<usize> {
        let b = key_hash.checked_shr(self.shift).unwrap_or(0) as usize;
        let (start, end) = (self.directory[b] as usize, self.directory[b + 1] as usize);
        (start..end).find(|&i| self.entries[i].key_hash == key_hash)
    }

    /// Whether the snapshot row `i` was acknowledged with the row hash `hash`.
    fn holds(&self, i: usize, hash: u64) -> bool {
        let entry = &self.entries[i];
        entry.rowid & NO_HASH == 0 && entry.row_hash == hash
    }

    /// Marks the snapshot row `i` named; true when it was already.
    fn see(&mut self, i: usize) -> bool {
        let entry = &mut self.entries[i];
        let seen = entry.rowid & SEEN != 0;
        entry.rowid |= SEEN;
        seen
    }

    /// The row ids of the snapshot rows no staged row named.
    fn unseen(&self) -> impl Iterator<Item = i64> + '_ {
        self.entries.iter().filter(|e| e.rowid & SEEN == 0).map(|e| (e.rowid & ROWID) as i64)
    }
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

impl StateStore {
    /// Diffs the staged rows against the snapshot in one pass over the staging file (see the
    /// module's text), writing `changed_all`, `dup_keys`, `invalid_now` and `left_keys`. With
    /// `full`, every valid row counts as changed. False, with nothing written, when the
    /// snapshot has two keys with the same key hash (the SQL diff must run).
    pub(super) fn diff_in_one_pass(&mut self, full: bool) -> Result<bool, StateError> {
        let (conn, path) = (&self.reader.conn, &self.reader.path);
        let Some(file) = self.staging.as_mut() else {
            return Err(query_error(path, "the diff ran before create_staging"));
        };
        let Some(mut index) = SnapshotIndex::build(conn, path)? else {
            return Ok(false);
        };
        let error = |e: duckdb::Error| query_error(path, e);
        conn.execute_batch(
            "CREATE OR REPLACE TEMP TABLE diff_rows (rownum BIGINT, pk VARCHAR, k UBIGINT, h UBIGINT, changed BOOLEAN, rejected BOOLEAN);
             CREATE OR REPLACE TEMP TABLE dup_rows (rownum BIGINT, pk VARCHAR);
             CREATE OR REPLACE TEMP TABLE left_rowids (r BIGINT);",
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
        let mut appender = conn.appender_to_catalog_and_db("left_rowids", "temp", "main").map_err(error)?;
        for rowid in index.unseen() {
            appender.append_row(params![rowid]).map_err(error)?;
        }
        appender.flush().map_err(error)?;
        drop(appender);
        // `left_keys` is read while the rowids are those of this scan: nothing wrote the snapshot.
        conn.execute_batch(
            "CREATE OR REPLACE TEMP TABLE left_keys AS
               SELECT pk FROM snapshot WHERE rowid IN (SELECT r FROM left_rowids);
             CREATE OR REPLACE TEMP TABLE dup_keys AS SELECT DISTINCT pk FROM dup_rows;
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
             DROP TABLE diff_rows; DROP TABLE dup_rows; DROP TABLE left_rowids;",
        )
        .map_err(error)?;
        file.fingerprint = Some(fingerprint.text());
        Ok(true)
    }
}
