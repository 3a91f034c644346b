//! DuckDB warehouse: a `.duckdb` file opened read-only on a blocking thread; values are
//! converted to HubSpot text in SQL and sent on in chunks. Every DuckDB call runs on
//! `spawn_blocking`'s threads, never on the runtime's own, so any runtime flavour works (a
//! current-thread runtime has no thread `block_in_place` could hand its tasks to).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use duckdb::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use duckdb::arrow::compute::cast;
use duckdb::arrow::datatypes::DataType;
use duckdb::arrow::error::ArrowError;
use duckdb::{AccessMode, Connection, InterruptHandle};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::duckdb_file::storage_version_message;
use super::hash::{hash_values, key_hash, KeySet};
use super::kinds::{duckdb_expr, duckdb_kind, ColumnInfo};
use super::warehouse::{KeyRead, Warehouse};
use super::{row_bytes, uses_label_objects, KeyChunk, Row, RowKey, SourceError, CHUNK_BYTES, CHUNK_ROWS};

#[derive(Clone)]
pub struct DuckDbSource {
    name: String,
    path: PathBuf,
    /// Interrupts the statement of the connection open now, if any.
    running: Arc<Mutex<Option<Arc<InterruptHandle>>>>,
    /// The connection both reads of a run share, from `begin_snapshot` to `end_snapshot`: one
    /// read-only transaction, so both see the same rows (and the keys the second read wants).
    held: Arc<Mutex<Option<Connection>>>,
}

/// The temp table the second read's keys are loaded into (`load_keys`).
const KEYS_TABLE: &str = "hubsync_wanted_keys";

impl DuckDbSource {
    pub fn open(name: &str, path: &Path) -> Result<Self, SourceError> {
        if !path.exists() {
            return Err(SourceError::Connect {
                warehouse: name.to_string(),
                message: format!("the DuckDB file {} does not exist", path.display()),
            });
        }
        Ok(DuckDbSource {
            name: name.to_string(),
            path: path.to_path_buf(),
            running: Arc::default(),
            held: Arc::default(),
        })
    }

    fn connect(&self) -> Result<Connection, SourceError> {
        let config = duckdb::Config::default().access_mode(AccessMode::ReadOnly).map_err(|e| self.connect_error(e))?;
        Connection::open_with_flags(&self.path, config).map_err(|e| self.connect_error(e))
    }

    fn connect_error(&self, e: duckdb::Error) -> SourceError {
        let text = e.to_string();
        let message = storage_version_message(&self.path, &text)
            .unwrap_or_else(|| format!("cannot open {}: {text}", self.path.display()));
        SourceError::Connect { warehouse: self.name.clone(), message }
    }

    fn query_error(&self, sync: &str, e: duckdb::Error) -> SourceError {
        SourceError::Query { sync: sync.to_string(), warehouse: self.name.clone(), message: e.to_string() }
    }

    /// Runs `work` on a blocking thread with the snapshot's connection, or a fresh read-only
    /// one outside a snapshot.
    async fn on_blocking_thread<T: Send + 'static>(
        &self,
        sync: &str,
        work: impl FnOnce(&DuckDbSource, &Connection) -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let held = this.held.lock().unwrap_or_else(|e| e.into_inner());
            let fresh;
            let conn = match held.as_ref() {
                Some(conn) => conn,
                None => {
                    fresh = this.connect()?;
                    &fresh
                }
            };
            *this.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.interrupt_handle());
            let result = work(&this, conn);
            *this.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
            result
        })
        .await
        .map_err(|e| SourceError::Query {
            sync: sync.to_string(),
            warehouse: self.name.clone(),
            message: format!("the reading thread stopped: {e}"),
        })?
    }

    /// Runs `query` on a blocking thread and hands every row's values, as text, to `each`, then
    /// `None` once the rows are done; stops early when `each` returns false. Returns the number
    /// of rows read.
    async fn read_rows(
        &self,
        sync: &str,
        query: String,
        width: usize,
        mut each: impl FnMut(Option<Row>) -> bool + Send + 'static,
    ) -> Result<u64, SourceError> {
        let sync_name = sync.to_string();
        self.on_blocking_thread(sync, move |this, conn| {
            let q = |e: duckdb::Error| this.query_error(&sync_name, e);
            let mut statement = conn.prepare(&query).map_err(q)?;
            // Streamed a vector at a time: a materialized result would hold the whole model.
            let batches = statement.stream_arrow([]).map_err(q)?;
            let mut count = 0u64;
            for batch in batches {
                let batch = batch.map_err(q)?;
                let mut columns = Vec::with_capacity(width);
                for i in 0..width.min(batch.num_columns()) {
                    let text = text_column(batch.column(i)).map_err(|e| SourceError::Query {
                        sync: sync_name.clone(),
                        warehouse: this.name.clone(),
                        message: format!("cannot read a column as text: {e}"),
                    })?;
                    columns.push(text);
                }
                let strings: Vec<&StringArray> = columns.iter().map(|c| c.as_string::<i32>()).collect();
                for r in 0..batch.num_rows() {
                    let mut values: Row = Vec::with_capacity(width);
                    for s in &strings {
                        values.push((!s.is_null(r)).then(|| s.value(r).to_string()));
                    }
                    values.resize(width, None);
                    count += 1;
                    if !each(Some(values)) {
                        return Ok(count);
                    }
                }
            }
            each(None);
            Ok(count)
        })
        .await
    }

    fn query(sql: &str, columns: &[ColumnInfo]) -> String {
        let exprs: Vec<String> = columns.iter().map(|c| duckdb_expr(&c.name, c.kind)).collect();
        format!("SELECT {} FROM ({sql}) AS m", exprs.join(", "))
    }
}

impl DuckDbSource {
    pub async fn cancel(&self) {
        if let Some(handle) = self.running.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            handle.interrupt();
        }
    }

    /// Opens the connection both reads share and starts its read-only transaction.
    pub async fn begin_snapshot(&self, sync: &str) -> Result<(), SourceError> {
        let this = self.clone();
        let sync_name = sync.to_string();
        let conn = tokio::task::spawn_blocking(move || {
            let conn = this.connect()?;
            conn.execute_batch("BEGIN TRANSACTION").map_err(|e| this.query_error(&sync_name, e))?;
            Ok::<_, SourceError>(conn)
        })
        .await
        .map_err(|e| self.thread_stopped(sync, e))??;
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn);
        Ok(())
    }

    /// Ends the snapshot's transaction and closes its connection.
    pub async fn end_snapshot(&self, sync: &str) -> Result<(), SourceError> {
        let this = self.clone();
        let sync_name = sync.to_string();
        // On a blocking thread: a read being interrupted still holds the connection.
        tokio::task::spawn_blocking(move || {
            let Some(conn) = this.held.lock().unwrap_or_else(|e| e.into_inner()).take() else { return Ok(()) };
            conn.execute_batch("COMMIT").map_err(|e| this.query_error(&sync_name, e))
        })
        .await
        .map_err(|e| self.thread_stopped(sync, e))?
    }

    fn thread_stopped(&self, sync: &str, e: tokio::task::JoinError) -> SourceError {
        SourceError::Query {
            sync: sync.to_string(),
            warehouse: self.name.clone(),
            message: format!("the reading thread stopped: {e}"),
        }
    }

    /// Loads the wanted keys into a temp table of the snapshot's connection.
    pub async fn load_keys(&self, sync: &str, mut keys: mpsc::Receiver<Vec<String>>) -> Result<bool, SourceError> {
        if self.held.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
            return Ok(false);
        }
        let sync_name = sync.to_string();
        self.on_blocking_thread(sync, move |this, conn| {
            let q = |e| this.query_error(&sync_name, e);
            conn.execute_batch(&format!("CREATE OR REPLACE TEMP TABLE {KEYS_TABLE} (k VARCHAR)")).map_err(q)?;
            let mut appender = conn.appender_to_catalog_and_db(KEYS_TABLE, "temp", "main").map_err(q)?;
            while let Some(page) = keys.blocking_recv() {
                for key in &page {
                    appender.append_row(duckdb::params![key]).map_err(q)?;
                }
            }
            appender.flush().map_err(q)?;
            Ok(true)
        })
        .await
    }

    /// Streams the rows of the keys `load_keys` loaded, converted to HubSpot values.
    pub async fn stream_loaded(
        &self,
        sync: &str,
        sql: &str,
        columns: &[ColumnInfo],
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, SourceError> {
        let key = duckdb_expr(&columns[0].name, columns[0].kind);
        let query =
            format!("{} WHERE {key} IN (SELECT k FROM temp.main.{KEYS_TABLE})", DuckDbSource::query(sql, columns));
        let mut batch = Vec::with_capacity(CHUNK_ROWS);
        let mut bytes = 0usize;
        self.read_rows(sync, query, columns.len(), move |values| {
            let Some(values) = values else {
                let rest = std::mem::take(&mut batch);
                return rest.is_empty() || tx.blocking_send(rest).is_ok();
            };
            bytes += row_bytes(&values);
            batch.push(values);
            if batch.len() == CHUNK_ROWS || bytes >= CHUNK_BYTES {
                bytes = 0;
                let full = std::mem::replace(&mut batch, Vec::with_capacity(CHUNK_ROWS));
                return tx.blocking_send(full).is_ok();
            }
            true
        })
        .await
    }

    pub async fn describe(&self, sync: &str, sql: &str) -> Result<Vec<ColumnInfo>, SourceError> {
        let sql = format!("DESCRIBE SELECT * FROM ({sql}) AS m");
        let sync_name = sync.to_string();
        self.on_blocking_thread(sync, move |this, conn| {
            let mut statement = conn.prepare(&sql).map_err(|e| this.query_error(&sync_name, e))?;
            let rows = statement
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(|e| this.query_error(&sync_name, e))?;
            rows.map(|r| {
                let (name, type_name) = r.map_err(|e| this.query_error(&sync_name, e))?;
                Ok(ColumnInfo { kind: duckdb_kind(&type_name), name, type_name })
            })
            .collect()
        })
        .await
    }

    /// Streams every row's key and the hash of its converted values.
    pub async fn stream_keys(&self, read: KeyRead<'_>, tx: mpsc::Sender<KeyChunk>) -> Result<u64, SourceError> {
        let KeyRead { sync, sql, columns, first_link, seed } = read;
        let links = columns.len().saturating_sub(first_link);
        let new_chunk = move || KeyChunk { keys: Vec::with_capacity(CHUNK_ROWS), label_objects: vec![false; links] };
        let mut chunk = new_chunk();
        let mut buffer = Vec::new();
        self.read_rows(sync, DuckDbSource::query(sql, columns), columns.len(), move |values| {
            let Some(values) = values else {
                let rest = std::mem::replace(&mut chunk, new_chunk());
                return rest.keys.is_empty() || tx.blocking_send(rest).is_ok();
            };
            for (j, cell) in values.iter().skip(first_link).enumerate() {
                if cell.as_deref().is_some_and(uses_label_objects) {
                    chunk.label_objects[j] = true;
                }
            }
            let key = values.first().cloned().flatten();
            let key_hash = key.as_deref().map(key_hash).unwrap_or(0);
            // DuckDB's strings are always UTF-8, so nothing is rejected while reading.
            chunk.keys.push(RowKey { key, key_hash, hash: hash_values(seed, &values, &mut buffer), rejected: None });
            if chunk.keys.len() == CHUNK_ROWS {
                let full = std::mem::replace(&mut chunk, new_chunk());
                return tx.blocking_send(full).is_ok();
            }
            true
        })
        .await
    }

    /// Streams the rows (only those whose key's hash is in `keys`, when given), converted to
    /// HubSpot values. Returns the number of rows read.
    pub async fn stream_rows(
        &self,
        sync: &str,
        sql: &str,
        columns: &[ColumnInfo],
        keys: Option<Arc<KeySet>>,
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, SourceError> {
        let mut batch = Vec::with_capacity(CHUNK_ROWS);
        let mut bytes = 0usize;
        self.read_rows(sync, DuckDbSource::query(sql, columns), columns.len(), move |values| {
            let Some(values) = values else {
                let rest = std::mem::take(&mut batch);
                return rest.is_empty() || tx.blocking_send(rest).is_ok();
            };
            if let Some(keys) = &keys {
                if !values.first().cloned().flatten().is_some_and(|key| keys.contains(key_hash(&key))) {
                    return true;
                }
            }
            bytes += row_bytes(&values);
            batch.push(values);
            if batch.len() == CHUNK_ROWS || bytes >= CHUNK_BYTES {
                bytes = 0;
                let full = std::mem::replace(&mut batch, Vec::with_capacity(CHUNK_ROWS));
                return tx.blocking_send(full).is_ok();
            }
            true
        })
        .await
    }
}

impl Warehouse for DuckDbSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn cancel(&self) -> BoxFuture<'_, ()> {
        Box::pin(DuckDbSource::cancel(self))
    }

    fn describe<'a>(&'a self, sync: &'a str, sql: &'a str) -> BoxFuture<'a, Result<Vec<ColumnInfo>, SourceError>> {
        Box::pin(DuckDbSource::describe(self, sync, sql))
    }

    fn begin_snapshot<'a>(&'a self, sync: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(DuckDbSource::begin_snapshot(self, sync))
    }

    fn end_snapshot<'a>(&'a self, sync: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(DuckDbSource::end_snapshot(self, sync))
    }

    fn load_keys<'a>(
        &'a self,
        sync: &'a str,
        _key: &'a ColumnInfo,
        keys: mpsc::Receiver<Vec<String>>,
    ) -> BoxFuture<'a, Result<bool, SourceError>> {
        Box::pin(DuckDbSource::load_keys(self, sync, keys))
    }

    fn stream_loaded<'a>(
        &'a self,
        sync: &'a str,
        sql: &'a str,
        columns: &'a [ColumnInfo],
        tx: mpsc::Sender<Vec<Row>>,
    ) -> BoxFuture<'a, Result<u64, SourceError>> {
        Box::pin(DuckDbSource::stream_loaded(self, sync, sql, columns, tx))
    }

    fn stream_keys<'a>(
        &'a self,
        read: KeyRead<'a>,
        tx: mpsc::Sender<KeyChunk>,
    ) -> BoxFuture<'a, Result<u64, SourceError>> {
        Box::pin(DuckDbSource::stream_keys(self, read, tx))
    }

    fn stream_rows<'a>(
        &'a self,
        sync: &'a str,
        sql: &'a str,
        columns: &'a [ColumnInfo],
        keys: Option<Arc<KeySet>>,
        tx: mpsc::Sender<Vec<Row>>,
    ) -> BoxFuture<'a, Result<u64, SourceError>> {
        Box::pin(DuckDbSource::stream_rows(self, sync, sql, columns, keys, tx))
    }
}

/// A column DuckDB exported as Arrow, as UTF-8 text (`StringArray`): as it is when it is that
/// already, else through Arrow's cast (other string layouts, numbers, dates).
pub(crate) fn text_column(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    match column.data_type() {
        DataType::Utf8 => Ok(column.clone()),
        _ => cast(column, &DataType::Utf8),
    }
}
