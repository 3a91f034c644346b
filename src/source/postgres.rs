//! PostgreSQL warehouse: the model runs inside `COPY (SELECT <conversions> FROM (model)) TO
//! STDOUT`, so PostgreSQL does the value conversion and rows stream in text format at the speed
//! the server hands them over. TLS is negotiated as the URL's `sslmode` asks.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::hash::{hash_bytes, key_hash, KeySet};
use super::kinds::{postgres_expr, postgres_kind, quote_ident, ColumnInfo};
use super::warehouse::{KeyRead, Warehouse};
use super::{uses_label_objects, KeyChunk, Row, RowKey, SourceError, CHUNK_ROWS};
use hubspot_model::Secret;

pub struct PostgresSource {
    name: String,
    client: Client,
}

/// TLS as libpq does it: `prefer` (the default) and `require` encrypt without checking the
/// server's certificate; `verify-ca` and `verify-full` check it against the web PKI roots.
fn tls_connector(verify: bool) -> tokio_postgres_rustls::MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(EncryptOnly(provider))).with_no_client_auth()
    };
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// Accepts any server certificate but still checks the handshake signatures: libpq's
/// `sslmode=require`.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Splits libpq's `verify-ca`/`verify-full` off the URL (tokio-postgres knows only
/// disable/prefer/require) and says whether certificates must be verified.
fn tls_mode(url: &str) -> (String, bool) {
    for mode in ["verify-full", "verify-ca"] {
        let needle = format!("sslmode={mode}");
        if url.contains(&needle) {
            return (url.replace(&needle, "sslmode=require"), true);
        }
    }
    (url.to_string(), false)
}

impl PostgresSource {
    pub async fn connect(name: &str, url: &Secret) -> Result<Self, SourceError> {
        let (url, verify) = tls_mode(url.expose());
        let (client, connection) =
            tokio_postgres::connect(&url, tls_connector(verify)).await.map_err(|e| SourceError::Connect {
                warehouse: name.to_string(),
                // tokio-postgres errors never echo the URL, so the password stays out.
                message: format!("{e}; check the url (host, port, database, user) and that the server is up"),
            })?;
        let warehouse = name.to_string();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(warehouse = %warehouse, error = %e, "Warehouse connection closed with an error.");
            }
        });
        Ok(PostgresSource { name: name.to_string(), client })
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
        let mut parser = KeyParser::new(seed, first_link, columns.len().saturating_sub(first_link));
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
        let stream = self.client.copy_out(copy.as_str()).await.map_err(|e| self.query_error(sync, e))?;
        futures::pin_mut!(stream);
        let mut parser = CopyTextParser::new(columns.len(), keys);
        let mut rows = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.query_error(sync, e))?;
            for batch in parser.feed(&chunk) {
                rows += batch.len() as u64;
                if tx.send(batch).await.is_err() {
                    return Ok(rows);
                }
            }
        }
        let rest = parser.finish();
        rows += rest.len() as u64;
        if !rest.is_empty() {
            let _ = tx.send(rest).await;
        }
        Ok(rows)
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
    first_link: usize,
    lines: Lines,
    chunk: KeyChunk,
    /// Per association column: whether a cell with objects was seen; those need no more looking.
    seen_objects: Vec<bool>,
    unseen_objects: usize,
}

impl KeyParser {
    fn new(seed: u64, first_link: usize, links: usize) -> Self {
        KeyParser {
            seed,
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
        self.chunk.keys.push(RowKey { key, key_hash, hash: hash_bytes(self.seed, line) });
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
    lines: Lines,
    batch: Vec<Row>,
}

impl CopyTextParser {
    fn new(columns: usize, keys: Option<Arc<KeySet>>) -> Self {
        CopyTextParser { columns, keys, lines: Lines::default(), batch: Vec::with_capacity(CHUNK_ROWS) }
    }

    fn line(&mut self, line: &[u8]) {
        if let Some(keys) = &self.keys {
            let wanted = parse_field(first_field(line)).is_some_and(|key| keys.contains(key_hash(&key)));
            if !wanted {
                return;
            }
        }
        self.batch.push(parse_line(line, self.columns));
    }

    /// Takes more bytes; returns the full chunks of rows completed so far.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Vec<Row>> {
        let mut lines = std::mem::take(&mut self.lines);
        let mut done = Vec::new();
        lines.feed(bytes, |line| {
            self.line(line);
            if self.batch.len() == CHUNK_ROWS {
                done.push(std::mem::replace(&mut self.batch, Vec::with_capacity(CHUNK_ROWS)));
            }
        });
        self.lines = lines;
        done
    }

    fn finish(mut self) -> Vec<Row> {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|line| self.line(line));
        self.batch
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
        let mut p = KeyParser::new(9, 2, 1);
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
    fn verify_modes_become_require_with_verification() {
        assert_eq!(tls_mode("postgres://h/db?sslmode=verify-full"), ("postgres://h/db?sslmode=require".into(), true));
        assert_eq!(tls_mode("postgres://h/db?sslmode=require"), ("postgres://h/db?sslmode=require".into(), false));
    }

    #[test]
    fn octal_and_hex_escapes() {
        assert_eq!(parse_field(b"\\101\\x42"), Some("AB".into()));
        assert_eq!(parse_field(b""), Some(String::new()));
    }
}
