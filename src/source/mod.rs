//! Warehouses: run a sync's model and stream its rows, already turned into HubSpot's text
//! values, to whoever stages them. Each kind of warehouse implements the [`Warehouse`] trait
//! (`warehouse.rs`) and [`Source`] holds one: `postgres.rs` streams a `COPY`; `duckdb.rs` reads
//! a DuckDB file. Both convert values in SQL (`kinds.rs` says how), so no row is held whole in
//! memory.
//!
//! A run reads the model twice, inside one snapshot where the warehouse has them (PostgreSQL):
//! first every row's key and hash (`stream_keys`, cheap: the values are hashed as they arrive and
//! dropped), then, once the diff knows which rows changed, only those rows' values
//! (`stream_filtered`). A run with nothing to send never makes the second read. `hash.rs` holds
//! the hash.

mod duckdb;
mod hash;
mod kinds;
mod postgres;
mod warehouse;

use tokio::sync::mpsc;

use crate::config::WarehouseConfig;
pub use hash::{key_hash, seed as row_hash_seed, KeySet};
pub use kinds::{ColumnInfo, ValueKind};
pub use warehouse::{KeyRead, Warehouse};

/// Rows travel in chunks to keep channel overhead low.
pub const CHUNK_ROWS: usize = 2048;

/// One row: the requested columns' HubSpot values, `None` for SQL NULL.
pub type Row = Vec<Option<String>>;

/// One model row as the first read sees it: its key and the hash of the whole row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    /// The key column's HubSpot value, `None` for SQL NULL.
    pub key: Option<String>,
    /// [`key_hash`] of the key (0 without one).
    pub key_hash: u64,
    /// The row's hash, seeded with [`row_hash_seed`].
    pub hash: u64,
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
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to warehouse `{warehouse}`: {message}")]
    Connect { warehouse: String, message: String },
    #[error("the model of sync `{sync}` failed on warehouse `{warehouse}`: {message}")]
    Query { sync: String, warehouse: String, message: String },
    #[error("the model of sync `{sync}` has no column `{column}` (its columns: {available})")]
    MissingColumn { sync: String, column: String, available: String },
}

/// A connected warehouse, whichever kind it is.
pub struct Source {
    warehouse: Box<dyn Warehouse>,
}

impl Source {
    /// Connects to the named warehouse.
    pub async fn connect(name: &str, config: &WarehouseConfig) -> Result<Source, SourceError> {
        let warehouse: Box<dyn Warehouse> = match config {
            WarehouseConfig::Postgres { url } => Box::new(postgres::PostgresSource::connect(name, url).await?),
            WarehouseConfig::Duckdb { path } => Box::new(duckdb::DuckDbSource::open(name, path)?),
        };
        Ok(Source { warehouse })
    }

    /// The model's columns and their kinds, without reading its rows.
    pub async fn describe(&self, sync: &str, sql: &str) -> Result<Vec<ColumnInfo>, SourceError> {
        self.warehouse.describe(sync, sql).await
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
        self.warehouse.stream_rows(sync, sql, columns, None, tx).await
    }

    /// Starts a snapshot, so both reads of a run see the same rows (PostgreSQL: a
    /// `REPEATABLE READ` transaction). A DuckDB file is opened for each read; a write in between
    /// only means a row is sent with its newer values and found changed once more next run.
    pub async fn begin_snapshot(&self, sync: &str) -> Result<(), SourceError> {
        self.warehouse.begin_snapshot(sync).await
    }

    /// Ends the snapshot.
    pub async fn end_snapshot(&self, sync: &str) -> Result<(), SourceError> {
        self.warehouse.end_snapshot(sync).await
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
        self.warehouse.stream_keys(KeyRead { sync, sql, columns, first_link, seed }, tx).await
    }

    /// The second read: like [`Source::stream`], but only rows whose key's hash is in `keys`.
    pub async fn stream_filtered(
        &self,
        sync: &str,
        sql: &str,
        columns: &[ColumnInfo],
        keys: std::sync::Arc<KeySet>,
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, SourceError> {
        self.warehouse.stream_rows(sync, sql, columns, Some(keys), tx).await
    }

    /// Runs the model on PostgreSQL as `COPY (model) TO STDOUT` and discards the rows: the
    /// floor `hubsync bench` compares runs with. Returns the bytes received.
    pub async fn copy_to_nowhere(&self, sync: &str, sql: &str) -> Result<u64, SourceError> {
        self.warehouse.copy_to_nowhere(sync, sql).await
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
