//! The benchmark's warehouse: a PostgreSQL database with a random name, created for one run of
//! `hubsync bench` and dropped at its end, holding synthetic contacts and companies built with
//! `generate_series` (nothing to download).

use std::time::Instant;

use tokio_postgres::NoTls;

use super::super::CliError;
use crate::config::{PostgresConfig, WarehouseConfig};
use crate::source::Source;

/// The contacts table's model: ten columns of mixed types (the key, text, integer, numeric,
/// boolean, date, timestamp with time zone) and the company each contact belongs to.
pub const CONTACTS_MODEL: &str = "SELECT id, email, first_name, plan, score, lifetime_value, is_active, signed_up, \
     last_seen_at, company_id FROM bench_contacts";
/// The contacts model with one more column: `notes`, 128 characters of text per row (the
/// issue's "model that carries a 128-character text column").
pub const CONTACTS_TEXT_MODEL: &str = "SELECT id, email, first_name, plan, score, lifetime_value, is_active, \
     signed_up, last_seen_at, company_id, notes FROM bench_contacts";
/// The companies table's model.
pub const COMPANIES_MODEL: &str = "SELECT company_id, name, domain, employees FROM bench_companies";
/// The rate-limited case's model: the same columns, its own table.
pub const RATE_LIMITED_MODEL: &str = "SELECT id, email, first_name, plan, score, lifetime_value, is_active, \
     signed_up, last_seen_at, company_id FROM bench_rl_contacts";

/// The `notes` column of the text variant: 128 characters, starting with the row's id.
const TEXT_COLUMN: &str = ", rpad('Notes on contact ' || i || ': ', 128, \
     'the quick brown fox jumps over the lazy dog 0123456789 ') AS notes";

fn failed(what: &str) -> impl Fn(tokio_postgres::Error) -> CliError + '_ {
    move |e| {
        let detail = e.as_db_error().map(|db| db.message().to_string()).unwrap_or_else(|| e.to_string());
        CliError::Failed(format!("bench: {what}: {detail}"))
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, CliError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(|e| {
        CliError::Failed(format!(
            "bench: cannot connect to PostgreSQL ({e}); start a server or pass --postgres-url (the URL of a \
             database the user may CREATE DATABASE from)"
        ))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "Benchmark database connection closed.");
        }
    });
    Ok(client)
}

/// The URL of database `name` on the server of `admin_url`.
pub fn database_url(admin_url: &str, name: &str) -> Result<String, CliError> {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let Some(slash) = base[scheme_end..].find('/').map(|i| i + scheme_end) else {
        return Err(CliError::Config(
            "bench: --postgres-url must name a database, e.g. postgres://postgres@127.0.0.1:5432/postgres".into(),
        ));
    };
    Ok(match query {
        Some(query) => format!("{}/{name}?{query}", &base[..slash]),
        None => format!("{}/{name}", &base[..slash]),
    })
}

/// A database created for this benchmark run. Call [`BenchDatabase::drop_database`] at the end,
/// whatever happened.
pub struct BenchDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
    client: tokio_postgres::Client,
}

impl BenchDatabase {
    pub async fn create(admin_url: &str) -> Result<BenchDatabase, CliError> {
        let admin = connect(admin_url).await?;
        let name = format!("hubsync_bench_{}", uuid::Uuid::new_v4().simple());
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.map_err(failed("cannot create a database"))?;
        let url = database_url(admin_url, &name)?;
        let client = match connect(&url).await {
            Ok(client) => client,
            Err(e) => {
                let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await;
                return Err(e);
            }
        };
        Ok(BenchDatabase { admin_url: admin_url.to_string(), name, url, client })
    }

    /// Drops the database (closing every connection to it).
    pub async fn drop_database(self) -> Result<(), CliError> {
        let BenchDatabase { admin_url, name, client, .. } = self;
        drop(client);
        let admin = connect(&admin_url).await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .map_err(failed("cannot drop the benchmark database"))
    }

    pub async fn server_version(&self) -> String {
        match self.client.query_one("SHOW server_version", &[]).await {
            Ok(row) => row.get::<_, String>(0),
            Err(_) => "unknown".into(),
        }
    }

    async fn exec(&self, what: &str, sql: &str) -> Result<(), CliError> {
        self.client.batch_execute(sql).await.map_err(failed(what))
    }

    /// (Re)creates `bench_companies` (`companies` rows) and `bench_contacts` (`contacts` rows,
    /// contact `i` at company `1 + i % companies`); with `text_column`, the contacts also carry
    /// `notes`, 128 characters of text that differ from row to row.
    pub async fn build_model(&self, contacts: u64, companies: u64, text_column: bool) -> Result<(), CliError> {
        self.exec(
            "cannot build the companies",
            &format!(
                "DROP TABLE IF EXISTS bench_companies;
                 CREATE TABLE bench_companies AS
                   SELECT i AS company_id, 'Company ' || i AS name, 'company' || i || '.example.com' AS domain,
                          10 + (i * 37) % 5000 AS employees
                   FROM generate_series(1::bigint, {companies}::bigint) AS i;"
            ),
        )
        .await?;
        let notes = if text_column { TEXT_COLUMN } else { "" };
        self.build_contacts("bench_contacts", contacts, companies, notes).await?;
        self.exec("cannot analyze the model", "ANALYZE bench_companies; ANALYZE bench_contacts;").await
    }

    /// (Re)creates the rate-limited case's table of `contacts` rows.
    pub async fn build_rate_limited_model(&self, contacts: u64) -> Result<(), CliError> {
        self.build_contacts("bench_rl_contacts", contacts, 1, "").await?;
        self.exec("cannot analyze the model", "ANALYZE bench_rl_contacts;").await
    }

    /// `extra` adds columns after `company_id` (`, expr AS name`).
    async fn build_contacts(&self, table: &str, contacts: u64, companies: u64, extra: &str) -> Result<(), CliError> {
        self.exec(
            "cannot build the contacts",
            &format!(
                "DROP TABLE IF EXISTS {table};
                 CREATE TABLE {table} AS
                   SELECT i AS id,
                          'user' || i || '@example.com' AS email,
                          (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken'])[1 + i % 8] AS first_name,
                          (ARRAY['free','pro','enterprise'])[1 + i % 3] AS plan,
                          ((i * 7919) % 1000)::integer AS score,
                          ((i % 100000) * 1.25)::numeric(12,2) AS lifetime_value,
                          i % 5 <> 0 AS is_active,
                          DATE '2024-01-01' + (i % 700)::integer AS signed_up,
                          TIMESTAMPTZ '2026-01-01 00:00:00+00' + make_interval(mins => ((i * 17) % 500000)::integer)
                            AS last_seen_at,
                          1 + i % {companies} AS company_id{extra}
                   FROM generate_series(1::bigint, {contacts}::bigint) AS i;"
            ),
        )
        .await
    }

    /// Changes 1% of the contacts (`id % 100 = 0`): plan, score, lifetime value and company.
    /// Returns how many rows changed.
    pub async fn change_one_percent(&self, companies: u64) -> Result<u64, CliError> {
        let changed = self
            .client
            .execute(
                &format!(
                    "UPDATE bench_contacts SET
                       plan = CASE plan WHEN 'free' THEN 'pro' WHEN 'pro' THEN 'enterprise' ELSE 'free' END,
                       score = score + 1, lifetime_value = lifetime_value + 10,
                       company_id = 1 + company_id % {companies}
                     WHERE id % 100 = 0"
                ),
                &[],
            )
            .await
            .map_err(failed("cannot change the contacts"))?;
        // Leave the table as a clean scan would find it, so the run after is not paying for the
        // update's dead rows, nor sharing the machine with the writes of the pages the update
        // and the vacuum dirtied (nearly every page: one row in a hundred changed). CHECKPOINT
        // needs a superuser or `pg_checkpoint`; without either, the writes happen when
        // PostgreSQL gets to them.
        self.exec("cannot vacuum the contacts", "VACUUM ANALYZE bench_contacts").await?;
        if let Err(e) = self.client.batch_execute("CHECKPOINT").await {
            eprintln!(
                "bench: no CHECKPOINT after the update ({e}): the 1%-changed run may share the machine with its writes"
            );
        }
        Ok(changed)
    }
}

/// One timing of the floor.
pub struct Floor {
    pub secs: f64,
    pub bytes: u64,
}

/// The floor: `COPY (model) TO STDOUT` through hubsync's own PostgreSQL client (same
/// connection code and TLS negotiation as a sync), the bytes thrown away.
pub async fn measure_floor(url: &str, model: &str) -> Result<Floor, CliError> {
    let config = WarehouseConfig::Postgres(PostgresConfig::from_url(url));
    let source = Source::connect("bench", &config).await.map_err(|e| CliError::Failed(format!("bench: {e}")))?;
    let started = Instant::now();
    let bytes =
        source.copy_to_nowhere("floor", model).await.map_err(|e| CliError::Failed(format!("bench: floor: {e}")))?;
    Ok(Floor { secs: started.elapsed().as_secs_f64(), bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_the_server_and_the_options() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "b1").unwrap(),
            "postgres://postgres@127.0.0.1:5432/b1"
        );
        assert_eq!(
            database_url("postgres://u:p@db.example.com/app?sslmode=require", "b1").unwrap(),
            "postgres://u:p@db.example.com/b1?sslmode=require"
        );
        assert!(database_url("postgres://127.0.0.1:5432", "b1").is_err());
    }
}
