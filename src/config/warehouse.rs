//! The `[warehouses.NAME]` sections: one variant per kind of warehouse, each field documented
//! and defaulted here. `source::Source::connect` turns them into connections.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::problem::Problem;
use super::Secret;

/// A warehouse, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum WarehouseConfig {
    /// A PostgreSQL database, read with a streaming `COPY`.
    Postgres(PostgresConfig),
    /// A DuckDB database file, opened read-only.
    Duckdb(DuckDbConfig),
}

/// `type = "postgres"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL, e.g. `postgres://user:pass@host:5432/db?sslmode=verify-full`, or libpq's
    /// `key=value` form. `sslmode` is libpq's: `disable`, `prefer` (the default), `require`,
    /// `verify-ca`, `verify-full`; `sslrootcert`, `sslcert` and `sslkey` may be given here too.
    pub url: Secret,
    /// Seconds allowed to open a connection: TCP, TLS, start-up and authentication together.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Seconds one warehouse statement may run (each read of the model, from its start to its
    /// last row); the query is then cancelled on the server.
    #[serde(default = "default_query_timeout_secs")]
    pub query_timeout_secs: u64,
    /// PEM file of the CA certificates the server's certificate must chain to (a private CA,
    /// RDS's or Cloud SQL's bundle). Relative to the config file.
    pub sslrootcert: Option<PathBuf>,
    /// PEM file of a client certificate, for servers that ask for one (`cert` in pg_hba.conf).
    pub sslcert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub sslkey: Option<PathBuf>,
}

/// `type = "duckdb"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuckDbConfig {
    /// Path of the `.duckdb` file, relative to the config file's folder.
    pub path: PathBuf,
    /// Seconds one read of the model may take; the query is then interrupted.
    #[serde(default = "default_query_timeout_secs")]
    pub query_timeout_secs: u64,
}

/// Default of `connect_timeout_secs`.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// Default of `query_timeout_secs`.
pub const DEFAULT_QUERY_TIMEOUT_SECS: u64 = 3600;

fn default_connect_timeout_secs() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_SECS
}
fn default_query_timeout_secs() -> u64 {
    DEFAULT_QUERY_TIMEOUT_SECS
}

impl PostgresConfig {
    /// A config with the defaults, for a URL given on the command line.
    pub fn from_url(url: &str) -> PostgresConfig {
        PostgresConfig {
            url: Secret::new(url),
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
            query_timeout_secs: DEFAULT_QUERY_TIMEOUT_SECS,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}

impl WarehouseConfig {
    /// How long one statement may run.
    pub fn query_timeout(&self) -> Duration {
        Duration::from_secs(match self {
            WarehouseConfig::Postgres(c) => c.query_timeout_secs,
            WarehouseConfig::Duckdb(c) => c.query_timeout_secs,
        })
    }

    /// Makes file paths absolute against the config file's folder and checks the settings.
    pub(super) fn resolve(self, base: &Path, key: &str, problems: &mut Vec<Problem>) -> WarehouseConfig {
        let mut at_least_one = |field: &str, value: u64| {
            if value == 0 {
                problems.push(Problem {
                    key: format!("{key}.{field}"),
                    message: "must be at least 1".into(),
                    hint: Some("a number of seconds".into()),
                });
            }
        };
        match self {
            WarehouseConfig::Postgres(mut c) => {
                at_least_one("connect_timeout_secs", c.connect_timeout_secs);
                at_least_one("query_timeout_secs", c.query_timeout_secs);
                for (field, file) in
                    [("sslrootcert", &mut c.sslrootcert), ("sslcert", &mut c.sslcert), ("sslkey", &mut c.sslkey)]
                {
                    let Some(path) = file.as_mut() else { continue };
                    *path = base.join(&*path);
                    if let Err(e) = std::fs::metadata(&*path) {
                        problems.push(Problem {
                            key: format!("{key}.{field}"),
                            message: format!("cannot read {}: {e}", path.display()),
                            hint: Some("a PEM file; relative paths are relative to the config file's folder".into()),
                        });
                    }
                }
                if c.sslcert.is_some() != c.sslkey.is_some() {
                    problems.push(Problem {
                        key: format!("{key}.{}", if c.sslcert.is_some() { "sslkey" } else { "sslcert" }),
                        message: "sslcert and sslkey go together".into(),
                        hint: Some("set both: the client certificate and its private key".into()),
                    });
                }
                WarehouseConfig::Postgres(c)
            }
            WarehouseConfig::Duckdb(mut c) => {
                at_least_one("query_timeout_secs", c.query_timeout_secs);
                c.path = base.join(&c.path);
                WarehouseConfig::Duckdb(c)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        warehouses: std::collections::BTreeMap<String, WarehouseConfig>,
    }

    fn parse(text: &str) -> Result<File, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let file = parse("[warehouses.pg]\ntype = \"postgres\"\nurl = \"postgres://h/db\"\n").unwrap();
        let WarehouseConfig::Postgres(pg) = &file.warehouses["pg"] else { panic!("not postgres") };
        assert_eq!((pg.connect_timeout_secs, pg.query_timeout_secs), (10, 3600));
        let err = parse("[warehouses.pg]\ntype = \"postgres\"\nurl = \"u\"\ncolour = 1\n").unwrap_err();
        assert!(err.contains("unknown field `colour`"), "{err}");
        let err = parse("[warehouses.d]\ntype = \"duckdb\"\npath = \"w.duckdb\"\nurl = \"u\"\n").unwrap_err();
        assert!(err.contains("unknown field `url`"), "{err}");
    }

    #[test]
    fn zero_timeouts_and_lone_client_certificates_are_problems() {
        let file = parse(
            "[warehouses.pg]\ntype = \"postgres\"\nurl = \"u\"\nquery_timeout_secs = 0\nsslcert = \"/nonexistent/c.pem\"\n",
        )
        .unwrap();
        let mut problems = Vec::new();
        let w = file.warehouses["pg"].clone().resolve(Path::new("/base"), "warehouses.pg", &mut problems);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["warehouses.pg.query_timeout_secs", "warehouses.pg.sslcert", "warehouses.pg.sslkey"]);
        assert_eq!(w.query_timeout(), Duration::from_secs(0));
    }
}
