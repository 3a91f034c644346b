//! DuckDB warehouse: a `.duckdb` file opened read-only on a blocking thread; values are
//! converted to HubSpot text in SQL and sent on in chunks.

use std::path::{Path, PathBuf};

use duckdb::{AccessMode, Connection};
use tokio::sync::mpsc;

use super::kinds::{duckdb_expr, duckdb_kind, ColumnInfo};
use super::{Row, SourceError, CHUNK_ROWS};

pub struct DuckDbSource {
    name: String,
    path: PathBuf,
}

impl DuckDbSource {
    pub fn open(name: &str, path: &Path) -> Result<Self, SourceError> {
        if !path.exists() {
            return Err(SourceError::Connect {
                warehouse: name.to_string(),
                message: format!("the DuckDB file {} does not exist", path.display()),
            });
        }
        Ok(DuckDbSource { name: name.to_string(), path: path.to_path_buf() })
    }

    fn connect(&self) -> Result<Connection, SourceError> {
        let config = duckdb::Config::default().access_mode(AccessMode::ReadOnly).map_err(|e| self.connect_error(e))?;
        Connection::open_with_flags(&self.path, config).map_err(|e| self.connect_error(e))
    }

    fn connect_error(&self, e: duckdb::Error) -> SourceError {
        SourceError::Connect {
            warehouse: self.name.clone(),
            message: format!("cannot open {}: {e}", self.path.display()),
        }
    }

    fn query_error(&self, sync: &str, e: duckdb::Error) -> SourceError {
        SourceError::Query { sync: sync.to_string(), warehouse: self.name.clone(), message: e.to_string() }
    }

    pub async fn describe(&self, sync: &str, sql: &str) -> Result<Vec<ColumnInfo>, SourceError> {
        let conn = self.connect()?;
        let sql = format!("DESCRIBE SELECT * FROM ({sql}) AS m");
        tokio::task::block_in_place(|| {
            let mut statement = conn.prepare(&sql).map_err(|e| self.query_error(sync, e))?;
            let rows = statement
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(|e| self.query_error(sync, e))?;
            rows.map(|r| {
                let (name, type_name) = r.map_err(|e| self.query_error(sync, e))?;
                Ok(ColumnInfo { kind: duckdb_kind(&type_name), name, type_name })
            })
            .collect()
        })
    }

    pub async fn stream(
        &self,
        sync: &str,
        sql: &str,
        columns: &[ColumnInfo],
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, SourceError> {
        let exprs: Vec<String> = columns.iter().map(|c| duckdb_expr(&c.name, c.kind)).collect();
        let query = format!("SELECT {} FROM ({sql}) AS m", exprs.join(", "));
        let conn = self.connect()?;
        let width = columns.len();
        let sync_name = sync.to_string();
        let this = DuckDbSource { name: self.name.clone(), path: self.path.clone() };
        tokio::task::spawn_blocking(move || -> Result<u64, SourceError> {
            let mut statement = conn.prepare(&query).map_err(|e| this.query_error(&sync_name, e))?;
            let mut rows = statement.query([]).map_err(|e| this.query_error(&sync_name, e))?;
            let mut batch = Vec::with_capacity(CHUNK_ROWS);
            let mut count = 0u64;
            while let Some(row) = rows.next().map_err(|e| this.query_error(&sync_name, e))? {
                let mut values: Row = Vec::with_capacity(width);
                for i in 0..width {
                    values.push(row.get::<_, Option<String>>(i).map_err(|e| this.query_error(&sync_name, e))?);
                }
                batch.push(values);
                count += 1;
                if batch.len() == CHUNK_ROWS {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(CHUNK_ROWS));
                    if tx.blocking_send(full).is_err() {
                        return Ok(count);
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
            Ok(count)
        })
        .await
        .map_err(|e| SourceError::Query {
            sync: sync.to_string(),
            warehouse: self.name.clone(),
            message: format!("the reading thread stopped: {e}"),
        })?
    }
}
