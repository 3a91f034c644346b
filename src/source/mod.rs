//! Warehouses: run a sync's model and stream its rows, already turned into HubSpot's text
//! values, to whoever stages them. `postgres.rs` streams a `COPY`; `duckdb.rs` reads a DuckDB
//! file. Both convert values in SQL (`kinds.rs` says how), so no row is held whole in memory.

mod duckdb;
mod kinds;
mod postgres;

use tokio::sync::mpsc;

use crate::config::WarehouseConfig;
pub use kinds::{ColumnInfo, ValueKind};

/// Rows travel in chunks to keep channel overhead low.
pub const CHUNK_ROWS: usize = 2048;

/// One row: the requested columns' HubSpot values, `None` for SQL NULL.
pub type Row = Vec<Option<String>>;

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

/// A connected warehouse.
pub enum Source {
    Postgres(postgres::PostgresSource),
    DuckDb(duckdb::DuckDbSource),
}

impl Source {
    /// Connects to the named warehouse.
    pub async fn connect(name: &str, config: &WarehouseConfig) -> Result<Source, SourceError> {
        match config {
            WarehouseConfig::Postgres { url } => {
                Ok(Source::Postgres(postgres::PostgresSource::connect(name, url).await?))
            }
            WarehouseConfig::Duckdb { path } => Ok(Source::DuckDb(duckdb::DuckDbSource::open(name, path)?)),
        }
    }

    /// The model's columns and their kinds, without reading its rows.
    pub async fn describe(&self, sync: &str, sql: &str) -> Result<Vec<ColumnInfo>, SourceError> {
        match self {
            Source::Postgres(s) => s.describe(sync, sql).await,
            Source::DuckDb(s) => s.describe(sync, sql).await,
        }
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
        match self {
            Source::Postgres(s) => s.stream(sync, sql, columns, tx).await,
            Source::DuckDb(s) => s.stream(sync, sql, columns, tx).await,
        }
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
