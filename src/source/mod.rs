//! Warehouses: run a sync's model and stream its rows, already turned into HubSpot's text
//! values, to whoever stages them. Each kind of warehouse implements the [`Warehouse`] trait
//! (`warehouse.rs`) and [`Source`] holds one: `postgres.rs` streams a `COPY`; `duckdb.rs` reads
//! a DuckDB file. Both convert values in SQL (`kinds.rs` says how), so no row is held whole in
//! memory.
//!
//! A run reads the model twice, inside one snapshot where the warehouse has them (PostgreSQL):
//! first every row's key and hash (`stream_keys`, cheap: the values are hashed as they arrive and
//! dropped), then, once the diff knows which rows changed, only those rows' values. The second
//! read pushes the changed keys into the warehouse (`load_keys`, then `stream_loaded`: a temp
//! table of keys joined with the model), so only those rows leave it; when most rows changed,
//! or the warehouse cannot hold the keys, it scans the whole model and picks the rows by key
//! hash (`stream_filtered`). A run with nothing to send never makes the second read. `hash.rs`
//! holds the hash.

mod duckdb;
mod duckdb_file;
mod hash;
mod kinds;
mod postgres;
mod tls;
mod warehouse;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::WarehouseConfig;
pub(crate) use duckdb::text_column;
pub use duckdb_file::{is_lock_conflict, library_version as duckdb_library_version, storage_version_message};
pub use hash::{key_hash, seed as row_hash_seed, KeySet};
pub use kinds::{ColumnInfo, ValueKind};
pub use warehouse::{KeyRead, Warehouse};

/// Rows travel in chunks to keep channel overhead low: this many rows at most, and a chunk is
/// sent early once its values reach [`CHUNK_BYTES`], so the rows in flight stay within a few
/// MiB however wide they are.
pub const CHUNK_ROWS: usize = 2048;
/// The bytes of values after which a chunk of rows is sent, whatever its number of rows.
pub const CHUNK_BYTES: usize = 1 << 20;

/// The bytes of a row's values, for [`CHUNK_BYTES`].
pub fn row_bytes(row: &Row) -> usize {
    row.iter().map(|v| v.as_ref().map_or(1, |s| s.len() + 1)).sum()
}

/// One row: the requested columns' HubSpot values, `None` for SQL NULL.
pub type Row = Vec<Option<String>>;

/// One model row as the first read sees it: its key and the hash of the whole row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    /// The key column's HubSpot value, `None` for SQL NULL.
    pub key: Option<String>,
    /// [`key_hash`] of the key (0 without one).
    pub key_hash: u64,
    /// The row's hash, seeded with [`row_hash_seed`]. It covers the key as well as every value:
    /// the diff takes rows whose hashes sum to the snapshot's for the snapshot's rows
    /// (`state/staging.rs`).
    pub hash: u64,
    /// Why the row cannot be sent, when reading it showed so.
    pub rejected: Option<RowReject>,
}

/// A row the warehouse handed over but hubsync cannot send: set aside with a reason code, the
/// rest of the run goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowReject {
    /// A closed code, e.g. `INVALID_UTF8`.
    pub code: &'static str,
    pub message: String,
}

/// A chunk of the first read.
#[derive(Debug, Clone, Default)]
pub struct KeyChunk {
    pub keys: Vec<RowKey>,
    /// Per association column: whether some cell of the chunk is a `{ value, label }` object or
    /// an array of them.
    pub label_objects: Vec<bool>,
}

/// Whether an association cell uses the `{ value, label }` schema: an object, or an array
/// whose first element is one.
pub fn uses_label_objects(cell: &str) -> bool {
    let cell = cell.trim_start();
    match cell.as_bytes().first() {
        Some(b'{') => true,
        Some(b'[') => cell[1..].trim_start().starts_with('{'),
        _ => false,
    }
}

/// What can go wrong reading a warehouse. Messages name the warehouse and say what to check.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to warehouse `{warehouse}`: {message}")]
    Connect { warehouse: String, message: String },
    #[error("the model of sync `{sync}` failed on warehouse `{warehouse}`: {message}")]
    Query { sync: String, warehouse: String, message: String },
    #[error(
        "the model of sync `{sync}` ran longer than query_timeout_secs = {secs} on warehouse `{warehouse}`, so \
         hubsync cancelled it; make the model faster or raise [warehouses.{warehouse}] query_timeout_secs"
    )]
    Timeout { sync: String, warehouse: String, secs: u64 },
    #[error("the read of sync `{sync}` on warehouse `{warehouse}` was cancelled by a shutdown")]
    Cancelled { sync: String, warehouse: String },
    #[error("the model of sync `{sync}` has no column `{column}` (its columns: {available})")]
    MissingColumn { sync: String, column: String, available: String },
}

/// A connected warehouse, whichever kind it is. Every statement runs under the warehouse's
/// `query_timeout_secs` and the run's stop flag: either cancels it on the server, and the
/// connection is not used again.
pub struct Source {
    name: String,
    warehouse: Box<dyn Warehouse>,
    query_timeout: Duration,
    stop: Option<Arc<AtomicBool>>,
    /// Why the connection is of no more use, once a statement was cancelled.
    broken: Mutex<Option<SourceError>>,
}

/// How often a running statement looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

impl Source {
    /// Connects to the named warehouse.
    pub async fn connect(name: &str, config: &WarehouseConfig) -> Result<Source, SourceError> {
        let warehouse: Box<dyn Warehouse> = match config {
            WarehouseConfig::Postgres(c) => Box::new(postgres::PostgresSource::connect(name, c).await?),
            WarehouseConfig::Duckdb(c) => Box::new(duckdb::DuckDbSource::open(name, &c.path)?),
        };
        Ok(Source {
            name: name.to_string(),
            warehouse,
            query_timeout: config.query_timeout(),
            stop: None,
            broken: Mutex::new(None),
        })
    }

    /// Cancels the running statement when `stop` is set (a shutdown).
    pub fn with_stop(mut self, stop: Option<Arc<AtomicBool>>) -> Source {
        self.stop = stop;
        self
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Runs one statement of `sync` under the timeout and the stop flag.
    async fn guard<T>(
        &self,
        sync: &str,
        statement: impl Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        let cancelled = || SourceError::Cancelled { sync: sync.to_string(), warehouse: self.name.clone() };
        if let Some(e) = self.broken.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(e);
        }
        if self.stopping() {
            return Err(cancelled());
        }
        let stopped = async {
            while !self.stopping() {
                tokio::time::sleep(STOP_POLL).await;
            }
        };
        let error = tokio::select! {
            result = statement => return result,
            _ = tokio::time::sleep(self.query_timeout) => SourceError::Timeout {
                sync: sync.to_string(),
                warehouse: self.name.clone(),
                secs: self.query_timeout.as_secs(),
            },
            _ = stopped => cancelled(),
        };
        tracing::warn!(warehouse = %self.name, sync, error = %error, "Cancelling the warehouse query.");
        self.warehouse.cancel().await;
        *self.broken.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.clone());
        Err(error)
    }

    /// The model's columns and their kinds, without reading its rows.
    pub async fn describe(&self, sync: &str, sql: &str) -> Result<Vec<ColumnInfo>, SourceError> {
        self.guard(sync, self.warehouse.describe(sync, sql)).await
    }

    /// Runs the model and sends the `columns` of every row, as HubSpot values, to `tx` in
    /// chunks. Returns the number of rows read.
    pub async fn stream(
        &self,
        sync: &str,
        sql: &str,
        columns: &[ColumnInfo],
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, SourceError> {
        self.guard(sync, self.warehouse.stream_rows(sync, sql, columns, None, tx)).await
    }

    /// Starts a snapshot, so both reads of a run see the same rows (PostgreSQL: a
    /// `REPEATABLE READ` transaction). A DuckDB file is opened for each read; a write in between
    /// only means a row is sent with its newer values and found changed once more next run.
    pub async fn begin_snapshot(&self, sync: &str) -> Result<(), SourceError> {
        self.guard(sync, self.warehouse.begin_snapshot(sync)).await
    }

    /// Ends the snapshot.
    pub async fn end_snapshot(&self, sync: &str) -> Result<(), SourceError> {
        self.guard(sync, self.warehouse.end_snapshot(sync)).await
    }

    /// The first read: runs the model and sends every row's key and hash to `tx` in chunks.
    /// `columns` are the staged columns, the key first; the columns from `first_link` on hold
    /// associations. Returns the number of rows read.
    pub async fn stream_keys(
        &self,
        sync: &str,
        sql: &str,
        columns: &[ColumnInfo],
        first_link: usize,
        seed: u64,
        tx: mpsc::Sender<KeyChunk>,
    ) -> Result<u64, SourceError> {
        self.guard(sync, self.warehouse.stream_keys(KeyRead { sync, sql, columns, first_link, seed }, tx)).await
    }

    /// The second read, pushed down: loads the wanted keys (pages of the key column's HubSpot
    /// values) into the warehouse session. Returns false, having read no key, when the
    /// warehouse cannot hold them; then [`Source::stream_filtered`] reads the whole model.
    pub async fn load_keys(
        &self,
        sync: &str,
        key: &ColumnInfo,
        keys: mpsc::Receiver<Vec<String>>,
    ) -> Result<bool, SourceError> {
        self.guard(sync, self.warehouse.load_keys(sync, key, keys)).await
    }

    /// The second read, pushed down: only the rows of the keys [`Source::load_keys`] loaded
    /// leave the warehouse. Returns the rows it sent.
    pub async fn stream_loaded(
        &self,
        sync: &str,
        sql: &str,
        columns: &[ColumnInfo],
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, SourceError> {
        self.guard(sync, self.warehouse.stream_loaded(sync, sql, columns, tx)).await
    }

    /// The second read as a full scan: like [`Source::stream`], but only rows whose key's hash is
    /// in `keys` are sent on. Returns the rows the warehouse sent (all of them).
    pub async fn stream_filtered(
        &self,
        sync: &str,
        sql: &str,
        columns: &[ColumnInfo],
        keys: Arc<KeySet>,
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, SourceError> {
        self.guard(sync, self.warehouse.stream_rows(sync, sql, columns, Some(keys), tx)).await
    }

    /// Runs the model on PostgreSQL as `COPY (model) TO STDOUT` and discards the rows: the
    /// floor `hubsync bench` compares runs with. Returns the bytes received.
    pub async fn copy_to_nowhere(&self, sync: &str, sql: &str) -> Result<u64, SourceError> {
        self.guard(sync, self.warehouse.copy_to_nowhere(sync, sql)).await
    }
}

/// Picks the named columns out of a model's description, in the order asked.
pub fn select_columns(sync: &str, described: &[ColumnInfo], wanted: &[String]) -> Result<Vec<ColumnInfo>, SourceError> {
    wanted
        .iter()
        .map(|name| {
            described.iter().find(|c| &c.name == name).cloned().ok_or_else(|| SourceError::MissingColumn {
                sync: sync.to_string(),
                column: name.clone(),
                available: described.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_objects_are_objects_or_arrays_of_them() {
        assert!(uses_label_objects(r#"{"value": "Acme", "label": "Primary"}"#));
        assert!(uses_label_objects(r#"  [ {"value": 7}]"#));
        assert!(!uses_label_objects(r#"["Acme", "Globex"]"#));
        assert!(!uses_label_objects("Acme, Globex"));
        assert!(!uses_label_objects(""));
    }
}
