//! DuckDB warehouse: a `.duckdb` file opened read-only on a blocking thread; values are
//! converted to HubSpot text in SQL and sent on in chunks. Every DuckDB call runs on
//! `spawn_blocking`'s threads, never on the runtime's own, so any runtime flavour works (a
//! current-thread runtime has no thread `block_in_place` could hand its tasks to).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use duckdb::{AccessMode, Connection, InterruptHandle};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::duckdb_file::storage_version_message;
use super::hash::{hash_values, key_hash, KeySet};
use super::kinds::{duckdb_expr, duckdb_kind, ColumnInfo};
use super::warehouse::{KeyRead, Warehouse};
use super::{uses_label_objects, KeyChunk, Row, RowKey, SourceError, CHUNK_ROWS};

#[derive(Clone)]
pub struct DuckDbSource {
    name: String,
    path: PathBuf,
    /// Interrupts the statement of the connection open now, if any.
    running: Arc<Mutex<Option<Arc<InterruptHandle>>>>,
}

impl DuckDbSource {
    pub fn open(name: &str, path: &Path) -> Result<Self, SourceError> {
        if !path.exists() {
            return Err(SourceError::Connect {
                warehouse: name.to_string(),
                message: format!("the DuckDB file {} does not exist", path.display()),
            });
        }
        Ok(DuckDbSource { name: name.to_string(), path: path.to_path_buf(), running: Arc::default() })
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

    /// Runs `work` with a fresh read-only connection on a blocking thread.
    async fn on_blocking_thread<T: Send + 'static>(
        &self,
        sync: &str,
        work: impl FnOnce(&DuckDbSource, Connection) -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = this.connect()?;
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
            let mut statement = conn.prepare(&query).map_err(|e| this.query_error(&sync_name, e))?;
            let mut rows = statement.query([]).map_err(|e| this.query_error(&sync_name, e))?;
            let mut count = 0u64;
            while let Some(row) = rows.next().map_err(|e| this.query_error(&sync_name, e))? {
                let mut values: Row = Vec::with_capacity(width);
                for i in 0..width {
                    values.push(row.get::<_, Option<String>>(i).map_err(|e| this.query_error(&sync_name, e))?);
                }
                count += 1;
                if !each(Some(values)) {
                    return Ok(count);
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
    /// HubSpot values. Returns the number of rows sent.
    pub async fn stream_rows(
        &self,
        sync: &str,
        sql: &str,
        columns: &[ColumnInfo],
        keys: Option<Arc<KeySet>>,
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, SourceError> {
        let mut batch = Vec::with_capacity(CHUNK_ROWS);
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
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
            counter.fetch_add(1, Ordering::Relaxed);
            batch.push(values);
            if batch.len() == CHUNK_ROWS {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(CHUNK_ROWS));
                return tx.blocking_send(full).is_ok();
            }
            true
        })
        .await?;
        Ok(sent.load(Ordering::Relaxed))
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
