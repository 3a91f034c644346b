//! PostgreSQL warehouse: the model runs inside `COPY (SELECT <conversions> FROM (model)) TO
//! STDOUT`, so PostgreSQL does the value conversion and rows stream in text format at the speed
//! the server hands them over. TLS is negotiated as the URL's `sslmode` asks.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::kinds::{postgres_expr, postgres_kind, ColumnInfo};
use super::{Row, SourceError, CHUNK_ROWS};
use crate::config::Secret;

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

    pub async fn stream(
        &self,
        sync: &str,
        sql: &str,
        columns: &[ColumnInfo],
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64, SourceError> {
        let exprs: Vec<String> = columns.iter().map(|c| postgres_expr(&c.name, c.kind)).collect();
        let copy = format!("COPY (SELECT {} FROM ({sql}) AS m) TO STDOUT", exprs.join(", "));
        let stream = self.client.copy_out(copy.as_str()).await.map_err(|e| self.query_error(sync, e))?;
        futures::pin_mut!(stream);
        let mut parser = CopyTextParser::new(columns.len());
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
}

/// Parses PostgreSQL's `COPY ... TO STDOUT` text format: tab-separated fields, `\N` for NULL,
/// backslash escapes, one row per line. Input chunks may split rows anywhere.
struct CopyTextParser {
    columns: usize,
    pending: Vec<u8>,
    batch: Vec<Row>,
}

impl CopyTextParser {
    fn new(columns: usize) -> Self {
        CopyTextParser { columns, pending: Vec::new(), batch: Vec::with_capacity(CHUNK_ROWS) }
    }

    /// Takes more bytes; returns the full chunks of rows completed so far.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Vec<Row>> {
        self.pending.extend_from_slice(bytes);
        let mut done = Vec::new();
        let mut start = 0;
        while let Some(pos) = memchr(b'\n', &self.pending[start..]) {
            let line = &self.pending[start..start + pos];
            let row = parse_line(line, self.columns);
            self.batch.push(row);
            if self.batch.len() == CHUNK_ROWS {
                done.push(std::mem::replace(&mut self.batch, Vec::with_capacity(CHUNK_ROWS)));
            }
            start += pos + 1;
        }
        self.pending.drain(..start);
        done
    }

    fn finish(mut self) -> Vec<Row> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.batch.push(parse_line(&line, self.columns));
        }
        self.batch
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
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
        let mut p = CopyTextParser::new(3);
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
