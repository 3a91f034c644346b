//! PostgreSQL warehouse: the model runs inside `COPY (SELECT <conversions> FROM (model)) TO
//! STDOUT`, so PostgreSQL does the value conversion and rows stream in text format at the speed
//! the server hands them over. TLS is negotiated as the URL's `sslmode` asks (`tls.rs`).

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_postgres::{CancelToken, Client};

use super::hash::{hash_bytes, key_hash, KeySet};
use super::kinds::{postgres_expr, postgres_kind, quote_ident, ColumnInfo};
use super::tls::{split_url, TlsFiles};
use super::warehouse::{KeyRead, Warehouse};
use super::{uses_label_objects, KeyChunk, Row, RowKey, RowReject, SourceError, CHUNK_BYTES, CHUNK_ROWS};
use crate::config::PostgresConfig;

pub struct PostgresSource {
    name: String,
    client: Client,
    /// What a cancel request needs: the server's address, the session's key, TLS.
    cancel: CancelToken,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    connect_timeout: Duration,
}

impl PostgresSource {
    /// Connects within `connect_timeout_secs`: TCP, TLS, start-up and authentication.
    pub async fn connect(name: &str, config: &PostgresConfig) -> Result<Self, SourceError> {
        let connect_error = |message: String| SourceError::Connect { warehouse: name.to_string(), message };
        let (url, mode, url_files) = split_url(config.url.expose());
        let tls_files = TlsFiles::resolve(
            &mode,
            url_files,
            config.sslrootcert.as_deref(),
            config.sslcert.as_deref(),
            config.sslkey.as_deref(),
        )
        .map_err(connect_error)?;
        let tls = tls_files.connector().map_err(connect_error)?;
        // tokio-postgres errors never echo the URL, so the password stays out.
        let pg_config: tokio_postgres::Config =
            url.parse().map_err(|e| connect_error(format!("the url is not a PostgreSQL connection url: {e}")))?;
        let host = match pg_config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "localhost".to_string(),
        };
        let connect_timeout = config.connect_timeout();
        let (client, connection) = match tokio::time::timeout(connect_timeout, pg_config.connect(tls.clone())).await {
            Ok(Ok(connected)) => connected,
            Ok(Err(e)) => {
                // A server's refusal is in the DbError behind tokio-postgres's bare "db error".
                let text = e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_string());
                return Err(connect_error(tls_files.explain(&e, &host).unwrap_or_else(|| {
                    format!("{text}; check the url (host, port, database, user) and that the server is up")
                })));
            }
            Err(_) => {
                return Err(connect_error(format!(
                    "the server did not complete the connection within connect_timeout_secs = {}; check that the \
                     url's host and port are a PostgreSQL server's and that it is up (or raise connect_timeout_secs)",
                    connect_timeout.as_secs()
                )))
            }
        };
        let warehouse = name.to_string();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(warehouse = %warehouse, error = %e, "Warehouse connection closed with an error.");
            }
        });
        // A SQL_ASCII database holds bytes in no encoding. Asking for UTF-8 makes the server fail
        // the whole read at the first byte that is not UTF-8; asking for SQL_ASCII passes the
        // bytes through, and each line that is not UTF-8 is rejected on its own.
        let encoding =
            client.query_one("SHOW server_encoding", &[]).await.ok().and_then(|r| r.try_get::<_, String>(0).ok());
        if encoding.as_deref() == Some("SQL_ASCII") {
            client
                .batch_execute("SET client_encoding = 'SQL_ASCII'")
                .await
                .map_err(|e| connect_error(format!("cannot set client_encoding for a SQL_ASCII database: {e}")))?;
        }
        let cancel = client.cancel_token();
        Ok(PostgresSource { name: name.to_string(), client, cancel, tls, connect_timeout })
    }

    fn query_error(&self, sync: &str, e: tokio_postgres::Error) -> SourceError {
        let message = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        SourceError::Query { sync: sync.to_string(), warehouse: self.name.clone(), message }
    }
}

impl PostgresSource {
    /// Sends PostgreSQL's cancel request on a connection of its own, within the connect timeout.
    pub async fn cancel(&self) {
        match tokio::time::timeout(self.connect_timeout, self.cancel.cancel_query(self.tls.clone())).await {
            Ok(Ok(())) => tracing::info!(warehouse = %self.name, "Cancel request sent to the warehouse."),
            Ok(Err(e)) => tracing::warn!(warehouse = %self.name, error = %e, "The cancel request failed."),
            Err(_) => tracing::warn!(warehouse = %self.name, "The cancel request timed out."),
        }
    }

    pub async fn describe(&self, sync: &str, sql: &str) -> Result<Vec<ColumnInfo>, SourceError> {
        let statement =
            self.client.prepare(&format!("SELECT * FROM ({sql}) AS m")).await.map_err(|e| self.query_error(sync, e))?;
        Ok(statement
            .columns()
            .iter()
            .map(|c| {
                let ty = c.type_();
                let is_array = matches!(ty.kind(), tokio_postgres::types::Kind::Array(_));
                ColumnInfo {
                    name: c.name().to_string(),
                    kind: postgres_kind(ty.name(), is_array),
                    type_name: ty.name().to_string(),
                }
            })
            .collect())
    }

    /// Starts the `REPEATABLE READ` transaction both reads of a run share.
    pub async fn begin_snapshot(&self, sync: &str) -> Result<(), SourceError> {
        self.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.map_err(|e| self.query_error(sync, e))
    }

    pub async fn end_snapshot(&self, sync: &str) -> Result<(), SourceError> {
        self.client.batch_execute("COMMIT").await.map_err(|e| self.query_error(sync, e))
    }

    /// Streams every row's key and hash. The key is converted as the second read converts it
    /// (rows are matched by it) and so are association cells (checked for `{ value, label }`
    /// objects); the other columns come as PostgreSQL prints them, which shows any change
    /// without paying for the conversions.
    pub async fn stream_keys(&self, read: KeyRead<'_>, tx: mpsc::Sender<KeyChunk>) -> Result<u64, SourceError> {
        let KeyRead { sync, sql, columns, first_link, seed } = read;
        let exprs: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 || i >= first_link {
                    postgres_expr(&c.name, c.kind)
                } else {
                    format!("m.{}", quote_ident(&c.name))
                }
            })
            .collect();
        let copy = format!("COPY (SELECT {} FROM ({sql}) AS m) TO STDOUT", exprs.join(", "));
        let stream = self.client.copy_out(copy.as_str()).await.map_err(|e| self.query_error(sync, e))?;
        futures::pin_mut!(stream);
        let names = columns.iter().map(|c| c.name.clone()).collect();
        let mut parser = KeyParser::new(seed, names, first_link);
        let mut rows = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.query_error(sync, e))?;
            for keys in parser.feed(&chunk) {
                rows += keys.keys.len() as u64;
                if tx.send(keys).await.is_err() {
                    return Ok(rows);
                }
            }
        }
        let rest = parser.finish();
        rows += rest.keys.len() as u64;
        if !rest.keys.is_empty() {
            let _ = tx.send(rest).await;
        }
        Ok(rows)
    }

    /// Loads the wanted keys into a temp table of this session's transaction (dropped at its
    /// end), `COPY`ing them in as they come. Inside a savepoint: a server that refuses temp
    /// tables (a hot standby, a read-only transaction, no `TEMP` privilege) leaves the snapshot
    /// as it was, and the second read scans the model instead.
    pub async fn load_keys(
        &self,
        sync: &str,
        key: &ColumnInfo,
        mut keys: mpsc::Receiver<Vec<String>>,
    ) -> Result<bool, SourceError> {
        let column_type = native_key_type(key).unwrap_or("text");
        let create = format!("SAVEPOINT hubsync_keys; CREATE TEMP TABLE {KEYS_TABLE} (k {column_type}) ON COMMIT DROP");
        if let Err(e) = self.client.batch_execute(&create).await {
            let reason = self.query_error(sync, e);
            self.client
                .batch_execute("ROLLBACK TO SAVEPOINT hubsync_keys")
                .await
                .map_err(|e| self.query_error(sync, e))?;
            tracing::info!(
                warehouse = %self.name,
                sync,
                reason = %reason,
                "The warehouse cannot hold the changed keys in a temp table; the second read scans the whole model."
            );
            return Ok(false);
        }
        let sink = self
            .client
            .copy_in(format!("COPY {KEYS_TABLE} (k) FROM STDIN").as_str())
            .await
            .map_err(|e| self.query_error(sync, e))?;
        futures::pin_mut!(sink);
        while let Some(page) = keys.recv().await {
            let mut buffer = BytesMut::with_capacity(page.iter().map(|k| k.len() + 1).sum());
            for key in &page {
                copy_text_field(key, &mut buffer);
                buffer.put_u8(b'\n');
            }
            sink.send(buffer.freeze()).await.map_err(|e| self.query_error(sync, e))?;
        }
        sink.finish().await.map_err(|e| self.query_error(sync, e))?;
        // Statistics let the planner pick a hash join for many keys and an index for few.
        self.client
            .batch_execute(&format!("RELEASE SAVEPOINT hubsync_keys; ANALYZE {KEYS_TABLE}"))
            .await
            .map_err(|e| self.query_error(sync, e))?;
        Ok(true)
    }

    /// Streams the rows of the keys `load_keys` loaded, converted to HubSpot values. The key is
    /// compared in its own type where its text converts back exactly (so an index on it can
    /// serve), else as the text the first read saw.
    pub async fn stream_loaded(
        &self,
        sync: &str,
        sql: &str,
        columns: &[ColumnInfo],
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, SourceError> {
        let key = &columns[0];
        let key_expr = match native_key_type(key) {
            Some(_) => format!("m.{}", quote_ident(&key.name)),
            None => postgres_expr(&key.name, key.kind),
        };
        let exprs: Vec<String> = columns.iter().map(|c| postgres_expr(&c.name, c.kind)).collect();
        let copy = format!(
            "COPY (SELECT {} FROM ({sql}) AS m WHERE {key_expr} IN (SELECT k FROM pg_temp.{KEYS_TABLE})) TO STDOUT",
            exprs.join(", ")
        );
        let parser = CopyTextParser::new(columns.len(), None).picked_by_server();
        self.copy_rows(sync, &copy, parser, tx).await
    }

    /// Streams the rows (only those whose key's hash is in `keys`, when given), converted to
    /// HubSpot values.
    pub async fn stream_rows(
        &self,
        sync: &str,
        sql: &str,
        columns: &[ColumnInfo],
        keys: Option<Arc<KeySet>>,
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, SourceError> {
        let exprs: Vec<String> = columns.iter().map(|c| postgres_expr(&c.name, c.kind)).collect();
        let copy = format!("COPY (SELECT {} FROM ({sql}) AS m) TO STDOUT", exprs.join(", "));
        self.copy_rows(sync, &copy, CopyTextParser::new(columns.len(), keys), tx).await
    }

    /// Runs a `COPY ... TO STDOUT` and sends the rows `parser` keeps to `tx` in chunks. Returns
    /// the rows the server sent.
    async fn copy_rows(
        &self,
        sync: &str,
        copy: &str,
        mut parser: CopyTextParser,
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, SourceError> {
        let stream = self.client.copy_out(copy).await.map_err(|e| self.query_error(sync, e))?;
        futures::pin_mut!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.query_error(sync, e))?;
            for batch in parser.feed(&chunk) {
                if tx.send(batch).await.is_err() {
                    return Ok(parser.received);
                }
            }
        }
        let rest = parser.finish();
        if !rest.is_empty() {
            let _ = tx.send(rest).await;
        }
        Ok(parser.received)
    }

    /// Runs `COPY (sql) TO STDOUT` on this connection and throws the rows away; returns the
    /// bytes received. This is the floor a sync's read is measured against (`hubsync bench`):
    /// what PostgreSQL and the wire cost alone.
    pub async fn copy_to_nowhere(&self, sync: &str, sql: &str) -> Result<u64, SourceError> {
        let copy = format!("COPY ({sql}) TO STDOUT");
        let stream = self.client.copy_out(copy.as_str()).await.map_err(|e| self.query_error(sync, e))?;
        futures::pin_mut!(stream);
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            bytes += chunk.map_err(|e| self.query_error(sync, e))?.len() as u64;
        }
        Ok(bytes)
    }
}

impl Warehouse for PostgresSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn cancel(&self) -> BoxFuture<'_, ()> {
        Box::pin(PostgresSource::cancel(self))
    }

    fn describe<'a>(&'a self, sync: &'a str, sql: &'a str) -> BoxFuture<'a, Result<Vec<ColumnInfo>, SourceError>> {
        Box::pin(PostgresSource::describe(self, sync, sql))
    }

    fn begin_snapshot<'a>(&'a self, sync: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(PostgresSource::begin_snapshot(self, sync))
    }

    fn end_snapshot<'a>(&'a self, sync: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(PostgresSource::end_snapshot(self, sync))
    }

    fn stream_keys<'a>(
        &'a self,
        read: KeyRead<'a>,
        tx: mpsc::Sender<KeyChunk>,
    ) -> BoxFuture<'a, Result<u64, SourceError>> {
        Box::pin(PostgresSource::stream_keys(self, read, tx))
    }

    fn stream_rows<'a>(
        &'a self,
        sync: &'a str,
        sql: &'a str,
        columns: &'a [ColumnInfo],
        keys: Option<Arc<KeySet>>,
        tx: mpsc::Sender<Vec<Row>>,
    ) -> BoxFuture<'a, Result<u64, SourceError>> {
        Box::pin(PostgresSource::stream_rows(self, sync, sql, columns, keys, tx))
    }

    fn load_keys<'a>(
        &'a self,
        sync: &'a str,
        key: &'a ColumnInfo,
        keys: mpsc::Receiver<Vec<String>>,
    ) -> BoxFuture<'a, Result<bool, SourceError>> {
        Box::pin(PostgresSource::load_keys(self, sync, key, keys))
    }

    fn stream_loaded<'a>(
        &'a self,
        sync: &'a str,
        sql: &'a str,
        columns: &'a [ColumnInfo],
        tx: mpsc::Sender<Vec<Row>>,
    ) -> BoxFuture<'a, Result<u64, SourceError>> {
        Box::pin(PostgresSource::stream_loaded(self, sync, sql, columns, tx))
    }

    fn copy_to_nowhere<'a>(&'a self, sync: &'a str, sql: &'a str) -> BoxFuture<'a, Result<u64, SourceError>> {
        Box::pin(PostgresSource::copy_to_nowhere(self, sync, sql))
    }
}

/// Splits `COPY ... TO STDOUT` output into lines; chunks may end anywhere in a line.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Calls `each` with every line `bytes` completes.
    fn feed(&mut self, bytes: &[u8], mut each: impl FnMut(&[u8])) {
        let mut start = 0;
        if !self.partial.is_empty() {
            let Some(end) = memchr(b'\n', bytes) else {
                self.partial.extend_from_slice(bytes);
                return;
            };
            self.partial.extend_from_slice(&bytes[..end]);
            each(&self.partial);
            self.partial.clear();
            start = end + 1;
        }
        while let Some(end) = memchr(b'\n', &bytes[start..]) {
            each(&bytes[start..start + end]);
            start += end + 1;
        }
        self.partial.extend_from_slice(&bytes[start..]);
    }

    /// The last line, when the output did not end with a newline.
    fn finish(&mut self, mut each: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            each(&self.partial);
            self.partial.clear();
        }
    }
}

/// The first field of a line: the key.
fn first_field(line: &[u8]) -> &[u8] {
    &line[..memchr(b'\t', line).unwrap_or(line.len())]
}

/// Whether a raw cell can be a `{ value, label }` object or an array of them, without
/// unescaping it: after spaces, a brace, a bracket or an escape.
fn may_hold_objects(field: &[u8]) -> bool {
    matches!(field.iter().find(|&&b| b != b' '), Some(b'{' | b'[' | b'\\'))
}

/// Reads the first read's lines: hashes each whole line, keeps its key and notes association
/// cells holding `{ value, label }` objects.
struct KeyParser {
    seed: u64,
    /// The column names, for rejections.
    names: Vec<String>,
    first_link: usize,
    lines: Lines,
    chunk: KeyChunk,
    /// Per association column: whether a cell with objects was seen; those need no more looking.
    seen_objects: Vec<bool>,
    unseen_objects: usize,
}

impl KeyParser {
    fn new(seed: u64, names: Vec<String>, first_link: usize) -> Self {
        let links = names.len().saturating_sub(first_link);
        KeyParser {
            seed,
            names,
            first_link,
            lines: Lines::default(),
            chunk: KeyChunk { keys: Vec::with_capacity(CHUNK_ROWS), label_objects: vec![false; links] },
            seen_objects: vec![false; links],
            unseen_objects: links,
        }
    }

    fn line(&mut self, line: &[u8]) {
        let key = parse_field(first_field(line));
        let key_hash = key.as_deref().map(key_hash).unwrap_or(0);
        if self.unseen_objects > 0 {
            let mut cells = line;
            for _ in 0..self.first_link {
                cells = memchr(b'\t', cells).map_or(&[][..], |tab| &cells[tab + 1..]);
            }
            for (j, field) in cells.split(|&b| b == b'\t').enumerate() {
                if j < self.seen_objects.len()
                    && !self.seen_objects[j]
                    && may_hold_objects(field)
                    && parse_field(field).is_some_and(|cell| uses_label_objects(&cell))
                {
                    self.seen_objects[j] = true;
                    self.chunk.label_objects[j] = true;
                    self.unseen_objects -= 1;
                }
            }
        }
        let rejected = std::str::from_utf8(line).is_err().then(|| self.not_utf8(line));
        self.chunk.keys.push(RowKey { key, key_hash, hash: hash_bytes(self.seed, line), rejected });
    }

    /// The rejection of a line holding bytes that are not UTF-8 (a `SQL_ASCII` database lets
    /// any byte in), naming the first such column.
    fn not_utf8(&self, line: &[u8]) -> RowReject {
        let column = line
            .split(|&b| b == b'\t')
            .position(|field| std::str::from_utf8(field).is_err())
            .and_then(|j| self.names.get(j))
            .map_or("?", String::as_str);
        RowReject {
            code: "INVALID_UTF8",
            message: format!(
                "column `{column}` holds bytes that are not UTF-8 (the database's encoding may be SQL_ASCII); fix \
                 the value, or convert it to UTF-8 in the model"
            ),
        }
    }

    fn take(&mut self) -> KeyChunk {
        let links = self.chunk.label_objects.len();
        std::mem::replace(
            &mut self.chunk,
            KeyChunk { keys: Vec::with_capacity(CHUNK_ROWS), label_objects: vec![false; links] },
        )
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<KeyChunk> {
        let mut lines = std::mem::take(&mut self.lines);
        let mut done = Vec::new();
        lines.feed(bytes, |line| {
            self.line(line);
            if self.chunk.keys.len() == CHUNK_ROWS {
                done.push(self.take());
            }
        });
        self.lines = lines;
        done
    }

    fn finish(mut self) -> KeyChunk {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|line| self.line(line));
        self.chunk
    }
}

/// Parses PostgreSQL's `COPY ... TO STDOUT` text format: tab-separated fields, `\N` for NULL,
/// backslash escapes, one row per line. Input chunks may split rows anywhere. With `keys`, only
/// rows whose key's hash is in the set are kept.
struct CopyTextParser {
    columns: usize,
    keys: Option<Arc<KeySet>>,
    /// The rows are those of wanted keys already (the server joined them with the keys).
    picked: bool,
    lines: Lines,
    batch: Vec<Row>,
    /// The bytes of the lines in `batch`.
    batch_bytes: usize,
    /// Lines the server sent.
    received: u64,
}

impl CopyTextParser {
    fn new(columns: usize, keys: Option<Arc<KeySet>>) -> Self {
        CopyTextParser {
            columns,
            keys,
            picked: false,
            lines: Lines::default(),
            batch: Vec::with_capacity(CHUNK_ROWS),
            batch_bytes: 0,
            received: 0,
        }
    }

    /// A parser of rows the server picked by key: every UTF-8 line is kept.
    fn picked_by_server(mut self) -> Self {
        self.picked = true;
        self
    }

    fn line(&mut self, line: &[u8]) {
        self.received += 1;
        if self.picked || self.keys.is_some() {
            if let Some(keys) = &self.keys {
                if !parse_field(first_field(line)).is_some_and(|key| keys.contains(key_hash(&key))) {
                    return;
                }
            }
            // A line that is not UTF-8 was rejected by the first read: never send its values.
            if std::str::from_utf8(line).is_err() {
                return;
            }
        }
        self.batch_bytes += line.len() + 1;
        self.batch.push(parse_line(line, self.columns));
    }

    /// Takes more bytes; returns the full chunks of rows completed so far.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Vec<Row>> {
        let mut lines = std::mem::take(&mut self.lines);
        let mut done = Vec::new();
        lines.feed(bytes, |line| {
            self.line(line);
            if self.batch.len() == CHUNK_ROWS || self.batch_bytes >= CHUNK_BYTES {
                let capacity = self.batch.len();
                done.push(std::mem::replace(&mut self.batch, Vec::with_capacity(capacity)));
                self.batch_bytes = 0;
            }
        });
        self.lines = lines;
        done
    }

    fn finish(&mut self) -> Vec<Row> {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|line| self.line(line));
        std::mem::take(&mut self.batch)
    }
}

/// The temp table the second read's keys are loaded into (`load_keys`).
const KEYS_TABLE: &str = "hubsync_wanted_keys";

/// The type a key column's HubSpot text converts back to exactly, for comparing the key in its
/// own type: integers and plain text. `None` compares the text.
fn native_key_type(key: &ColumnInfo) -> Option<&'static str> {
    match key.type_name.as_str() {
        "int2" | "int4" | "int8" => Some("int8"),
        "text" | "varchar" => Some("text"),
        "uuid" => Some("uuid"),
        _ => None,
    }
}

/// Appends `value` as one field of `COPY ... FROM STDIN` text format.
fn copy_text_field(value: &str, out: &mut BytesMut) {
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.put_slice(b"\\\\"),
            b'\n' => out.put_slice(b"\\n"),
            b'\r' => out.put_slice(b"\\r"),
            b'\t' => out.put_slice(b"\\t"),
            other => out.put_u8(other),
        }
    }
}

/// The position of the first `needle` in `haystack`, eight bytes at a time.
fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let repeated = LOW * u64::from(needle);
    let mut words = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ repeated;
        // Non-zero when some byte of `x` is zero; its lowest set bit marks the first such byte.
        let zero = x.wrapping_sub(LOW) & !x & HIGH;
        if zero != 0 {
            return Some(offset + (zero.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words.remainder().iter().position(|&b| b == needle).map(|p| offset + p)
}

fn parse_line(line: &[u8], columns: usize) -> Row {
    let mut row = Vec::with_capacity(columns);
    for field in line.split(|&b| b == b'\t') {
        row.push(parse_field(field));
    }
    row.resize(columns, None);
    row
}

fn parse_field(field: &[u8]) -> Option<String> {
    if field == b"\\N" {
        return None;
    }
    if !field.contains(&b'\\') {
        return Some(String::from_utf8_lossy(field).into_owned());
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let next = field[i + 1];
        i += 2;
        match next {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(next - b'0');
                let mut digits = 1;
                while digits < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    value = value * 8 + u32::from(field[i] - b'0');
                    i += 1;
                    digits += 1;
                }
                out.push(value as u8);
            }
            b'x' => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                    value = value * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    digits += 1;
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nulls_escapes_and_split_chunks() {
        let mut p = CopyTextParser::new(3, None);
        let mut rows: Vec<Row> = p.feed(b"1\ta\\tb\t\\N\n2\tline\\nbr").into_iter().flatten().collect();
        rows.extend(p.feed(b"eak\tback\\\\slash\n").into_iter().flatten());
        rows.extend(p.finish());
        assert_eq!(
            rows,
            vec![
                vec![Some("1".into()), Some("a\tb".into()), None],
                vec![Some("2".into()), Some("line\nbreak".into()), Some("back\\slash".into())],
            ]
        );
    }

    #[test]
    fn filtered_rows_are_those_of_the_wanted_keys() {
        let keys = Arc::new(KeySet::new(vec![key_hash("2"), key_hash("a\tb")]));
        let mut p = CopyTextParser::new(2, Some(keys));
        let mut rows: Vec<Row> = p.feed(b"1\tx\n2\ty\n\\N\tz\na\\tb\tw").into_iter().flatten().collect();
        rows.extend(p.finish());
        assert_eq!(rows, vec![vec![Some("2".into()), Some("y".into())], vec![Some("a\tb".into()), Some("w".into())]]);
    }

    #[test]
    fn key_parser_hashes_whole_lines_and_spots_label_objects() {
        let mut p = KeyParser::new(9, vec!["id".into(), "name".into(), "company".into()], 2);
        let mut chunks = p.feed(b"1\tAda\tAcme\n2\tGrace\t");
        chunks.extend(p.feed(b"{\"value\": \"Acme\"}\n\\N\tAlan\t\\N"));
        chunks.push(p.finish());
        let keys: Vec<RowKey> = chunks.iter().flat_map(|c| c.keys.clone()).collect();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0].key.as_deref(), Some("1"));
        assert_eq!(keys[0].key_hash, key_hash("1"));
        assert_eq!(keys[0].hash, hash_bytes(9, b"1\tAda\tAcme"));
        assert_eq!(keys[1].hash, hash_bytes(9, b"2\tGrace\t{\"value\": \"Acme\"}"));
        assert_eq!((keys[2].key.clone(), keys[2].key_hash), (None, 0));
        assert!(chunks.iter().any(|c| c.label_objects == vec![true]));
    }

    #[test]
    fn lines_that_are_not_utf8_are_rejected_by_column() {
        let mut p = KeyParser::new(1, vec!["id".into(), "name".into()], 2);
        let chunks = p.feed(b"1\tAda\n2\tRen\xe9e\n3\tJos\xc3\xa9\n");
        let keys: Vec<RowKey> = chunks.into_iter().flat_map(|c| c.keys).chain(p.finish().keys).collect();
        assert_eq!(keys.len(), 3);
        assert_eq!((keys[0].rejected.clone(), keys[2].rejected.clone()), (None, None));
        let rejected = keys[1].rejected.clone().expect("the Latin-1 line is rejected");
        assert_eq!(rejected.code, "INVALID_UTF8");
        assert!(rejected.message.starts_with("column `name` holds bytes that are not UTF-8"), "{}", rejected.message);
        assert_eq!(keys[1].key.as_deref(), Some("2"));

        let wanted = Arc::new(KeySet::new(vec![key_hash("1"), key_hash("2")]));
        let mut rows = CopyTextParser::new(2, Some(wanted));
        let mut read: Vec<Row> = rows.feed(b"1\tAda\n2\tRen\xe9e\n").into_iter().flatten().collect();
        read.extend(rows.finish());
        assert_eq!(read, vec![vec![Some("1".into()), Some("Ada".into())]]);
    }

    #[test]
    fn memchr_finds_the_first_match_anywhere() {
        let text = b"abcdefghijklmnopqrstuvwxyz\n0123456789\n";
        for needle in [b'a', b'h', b'i', b'p', b'z', b'\n', b'0', b'9'] {
            assert_eq!(memchr(needle, text), text.iter().position(|&b| b == needle), "{}", needle as char);
        }
        assert_eq!(memchr(b'!', text), None);
        assert_eq!(memchr(0x80, &[0x7f, 0x80, 0x81]), Some(1));
        assert_eq!(memchr(b'x', b""), None);
    }

    #[test]
    fn keys_copied_in_read_back_as_they_were() {
        for key in ["plain", "tab\there", "new\nline", "back\\slash", "cr\r", "\\.", "clé", ""] {
            let mut field = BytesMut::new();
            copy_text_field(key, &mut field);
            assert!(!field.contains(&b'\t') && !field.contains(&b'\n'), "{key:?}");
            assert_eq!(parse_field(&field).as_deref(), Some(key), "{key:?}");
        }
    }

    #[test]
    fn rows_picked_by_the_server_are_kept_unless_not_utf8() {
        let mut p = CopyTextParser::new(2, None).picked_by_server();
        let mut rows: Vec<Row> = p.feed(b"1\tAda\n2\tRen\xe9e\n3\tBo").into_iter().flatten().collect();
        rows.extend(p.finish());
        assert_eq!(rows, vec![vec![Some("1".into()), Some("Ada".into())], vec![Some("3".into()), Some("Bo".into())]]);
        assert_eq!(p.received, 3, "every line the server sent is counted");
    }

    #[test]
    fn octal_and_hex_escapes() {
        assert_eq!(parse_field(b"\\101\\x42"), Some("AB".into()));
        assert_eq!(parse_field(b""), Some(String::new()));
    }
}
