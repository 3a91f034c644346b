//! PostgreSQL TLS as libpq does it, with rustls.
//!
//! - `sslmode=prefer` (the default) and `require` encrypt but do not check the server's
//!   certificate: they keep a passive listener out, not a server in the middle. Given an
//!   `sslrootcert`, `require` checks the certificate as `verify-ca` does (libpq's rule).
//! - `verify-ca` checks that the certificate chains to a trusted CA; `verify-full` also that it
//!   names the host connected to.
//! - The trusted CAs are those of `sslrootcert` (a PEM file: a private CA, RDS's or Cloud SQL's
//!   bundle), or the web PKI roots without one (or with `sslrootcert=system`).
//! - `sslcert` and `sslkey` give a client certificate to servers that ask for one.
//!
//! `sslrootcert`, `sslcert` and `sslkey` may be in the URL, as with libpq, or in the config.
//! tokio-postgres knows neither them nor the `verify-*` modes, so [`split_url`] takes them out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// libpq's `sslmode`, as far as TLS goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// `disable`, `prefer`, `require`: any certificate.
    Nothing,
    /// `verify-ca`: the chain, not the name.
    Ca,
    /// `verify-full`: the chain and the name.
    Full,
}

/// The TLS settings of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub verify: Verify,
    /// `None`: the web PKI roots.
    pub rootcert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

const TLS_KEYS: [&str; 3] = ["sslrootcert", "sslcert", "sslkey"];

/// Takes the TLS settings tokio-postgres does not know out of a URL (`postgres://...?k=v`) or a
/// `key=value` connection string: returns what tokio-postgres should get, the `sslmode` and
/// the files it names.
pub fn split_url(url: &str) -> (String, String, Vec<(String, String)>) {
    let mut mode = String::new();
    let mut files = Vec::new();
    let mut take = |key: &str, value: &str| -> Option<String> {
        if key == "sslmode" {
            mode = value.to_string();
            return matches!(value, "verify-ca" | "verify-full").then(|| "require".to_string());
        }
        if TLS_KEYS.contains(&key) {
            files.push((key.to_string(), value.to_string()));
            return Some(String::new());
        }
        None
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let (k, v) = (decode(k), decode(v));
                    match take(&k, &v) {
                        Some(replaced) if replaced.is_empty() => {}
                        Some(replaced) => kept.push(format!("{k}={replaced}")),
                        None => kept.push(pair.to_string()),
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value, text) in key_values(url) {
            match take(&key, &value) {
                Some(replaced) if replaced.is_empty() => {}
                Some(replaced) => kept.push(format!("{key}={replaced}")),
                None => kept.push(text.to_string()),
            }
        }
        kept.join(" ")
    };
    (rest, mode, files)
}

/// Percent-decodes a URL parameter (`%2F` -> `/`); a `%` not followed by two hex digits stays.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `key=value` pairs of a libpq connection string, with the text each took.
fn key_values(text: &str) -> Vec<(String, String, &str)> {
    let bytes = text.as_bytes();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = text[start..i].to_string();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
        }
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        let quoted = i < bytes.len() && bytes[i] == b'\'';
        if quoted {
            i += 1;
        }
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'\\' && i + 1 < bytes.len() {
                value.push(bytes[i + 1]);
                i += 2;
                continue;
            }
            if (quoted && b == b'\'') || (!quoted && b.is_ascii_whitespace()) {
                i += 1;
                break;
            }
            value.push(b);
            i += 1;
        }
        pairs.push((key, String::from_utf8_lossy(&value).into_owned(), text[start..i.min(text.len())].trim_end()));
    }
    pairs
}

impl TlsFiles {
    /// The settings from the URL's `sslmode` and files, and the config's files; a file named in
    /// both places is an error.
    pub fn resolve(
        mode: &str,
        from_url: Vec<(String, String)>,
        rootcert: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<TlsFiles, String> {
        let mut files = [rootcert.map(Path::to_path_buf), cert.map(Path::to_path_buf), key.map(Path::to_path_buf)];
        for (name, value) in from_url {
            let slot = TLS_KEYS.iter().position(|k| *k == name).expect("split_url keeps only TLS keys");
            if files[slot].is_some() {
                return Err(format!("{name} is set both in the url and in the config; keep one"));
            }
            files[slot] = Some(PathBuf::from(value));
        }
        let [rootcert, cert, key] = files;
        let rootcert = rootcert.filter(|p| p.as_os_str() != "system");
        let verify = match mode {
            "verify-full" => Verify::Full,
            "verify-ca" => Verify::Ca,
            "require" if rootcert.is_some() => Verify::Ca,
            _ => Verify::Nothing,
        };
        if cert.is_some() != key.is_some() {
            return Err("sslcert and sslkey go together: set both, the certificate and its private key".into());
        }
        Ok(TlsFiles { verify, rootcert, cert, key })
    }

    /// The rustls connector these settings describe.
    pub fn connector(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up failed: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.verify {
            Verify::Nothing => Arc::new(EncryptOnly(provider.clone())),
            verify => {
                let roots = self.roots()?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("cannot use the CA certificates: {e}"))?;
                Arc::new(ChainCheck { webpki, check_name: verify == Verify::Full })
            }
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect())
                    .map_err(|e| format!("cannot read the client certificate sslcert = {}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("cannot read the client key sslkey = {}: {e}", key.display()))?;
                builder.with_client_auth_cert(certs, key).map_err(|e| format!("the client certificate: {e}"))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> Result<rustls::RootCertStore, String> {
        let mut roots = rustls::RootCertStore::empty();
        let Some(path) = &self.rootcert else {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            return Ok(roots);
        };
        let read = |e: &dyn std::fmt::Display| format!("cannot read sslrootcert = {}: {e}", path.display());
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| read(&e))?;
        for cert in certs {
            roots.add(cert.map_err(|e| read(&e))?).map_err(|e| read(&e))?;
        }
        if roots.is_empty() {
            return Err(read(&"the file holds no PEM certificate"));
        }
        Ok(roots)
    }

    /// Words for a refused server certificate, or `None` when `error` is not one.
    pub fn explain(&self, error: &tokio_postgres::Error, host: &str) -> Option<String> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        let mut found = None;
        while let Some(e) = source {
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                found = Some(tls.clone());
                break;
            }
            if let Some(tls) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
                if let Some(tls) = tls.downcast_ref::<rustls::Error>() {
                    found = Some(tls.clone());
                    break;
                }
            }
            source = e.source();
        }
        let rustls::Error::InvalidCertificate(certificate) = found? else { return None };
        let trusted = match &self.rootcert {
            Some(path) => format!("the CA certificates in sslrootcert = {}", path.display()),
            None => "the web PKI roots (no sslrootcert is set)".to_string(),
        };
        Some(match certificate {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "the server's TLS certificate is not signed by {trusted} ({certificate:?}); set sslrootcert to the \
                 PEM file of the CA that signed it (for RDS or Cloud SQL, their CA bundle)"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
                "the server's TLS certificate is not valid for host `{host}`; connect with a host name the \
                 certificate names, or use sslmode=verify-ca to check the CA only"
            ),
            other => format!("the server's TLS certificate was refused: {other:?}"),
        })
    }
}

/// The web PKI check against the given roots, with or without the host name.
#[derive(Debug)]
struct ChainCheck {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for ChainCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Accepts any server certificate but still checks the handshake signatures: libpq's
/// `sslmode=require`.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn urls_lose_what_tokio_postgres_does_not_know() {
        let (rest, mode, files) =
            split_url("postgres://u:p@db/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x");
        assert_eq!(rest, "postgres://u:p@db/app?sslmode=require&application_name=x");
        assert_eq!(mode, "verify-full");
        assert_eq!(files, pairs(&[("sslrootcert", "/etc/ca.pem")]));
        let (rest, mode, files) = split_url("postgres://db/app?sslmode=require");
        assert_eq!((rest.as_str(), mode.as_str(), files.len()), ("postgres://db/app?sslmode=require", "require", 0));
        assert_eq!(split_url("postgres://db/app?sslcert=c.pem&sslkey=k.pem").0, "postgres://db/app");
    }

    #[test]
    fn key_value_strings_too() {
        let (rest, mode, files) =
            split_url("host=db dbname=app sslmode=verify-ca sslrootcert='/my certs/ca.pem' user=u");
        assert_eq!(rest, "host=db dbname=app sslmode=require user=u");
        assert_eq!(mode, "verify-ca");
        assert_eq!(files, pairs(&[("sslrootcert", "/my certs/ca.pem")]));
    }

    #[test]
    fn modes_and_files_resolve_as_libpq_does() {
        let ca = Some(Path::new("/ca.pem"));
        let resolve = |mode: &str, url: &[(&str, &str)], root: Option<&Path>| {
            TlsFiles::resolve(mode, pairs(url), root, None, None)
        };
        assert_eq!(resolve("verify-full", &[], None).unwrap().verify, Verify::Full);
        assert_eq!(resolve("require", &[], None).unwrap().verify, Verify::Nothing);
        assert_eq!(resolve("require", &[], ca).unwrap().verify, Verify::Ca);
        assert_eq!(resolve("prefer", &[], ca).unwrap().verify, Verify::Nothing);
        assert_eq!(resolve("verify-ca", &[("sslrootcert", "system")], None).unwrap().rootcert, None);
        let both = resolve("verify-full", &[("sslrootcert", "/other.pem")], ca).unwrap_err();
        assert!(both.contains("both in the url and in the config"), "{both}");
        let lone = TlsFiles::resolve("require", pairs(&[("sslcert", "c.pem")]), None, None, None).unwrap_err();
        assert!(lone.contains("go together"), "{lone}");
    }
}
