//! The warehouse side: the DuckDB warehouse on any runtime flavour, timeouts and cancellation of
//! PostgreSQL queries, TLS with a private CA, model text rules, rows that are not UTF-8, and
//! DuckDB files hubsync cannot read.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{text, Harness};
use hubsync::sync::RunStatus;

/// Writes `hubsync.toml` with the given warehouse sections, the emulator's account, and `syncs`.
fn write_config(h: &Harness, warehouses: &str, syncs: &str) {
    let text = format!(
        "{warehouses}\n\n[hubspot.main]\ntoken = \"test-token\"\nbase_url = \"{}\"\n\n{syncs}",
        h.emulator.base_url()
    );
    std::fs::write(h.config_path(), text).expect("write config");
}

const DUCKDB_CONTACTS: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT id, email, first_name, tags FROM users"
primary_key = "id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email", first_name = "firstname", tags = "lastname" }
"#;

fn duckdb_users(path: &Path, n: u32) {
    let conn = duckdb::Connection::open(path).expect("create the DuckDB warehouse");
    conn.execute_batch(&format!(
        "CREATE TABLE users AS SELECT i AS id, 'user' || i || '@example.com' AS email, 'First' || i AS first_name,
                {{'tier': i % 3, 'beta': i % 2 = 0}} AS tags
         FROM range(1, {n} + 1) t(i)"
    ))
    .expect("fill the DuckDB warehouse");
}

/// `block_in_place` panics on a current-thread runtime; the DuckDB warehouse must not use it.
#[tokio::test(flavor = "current_thread")]
async fn duckdb_warehouse_syncs_on_a_current_thread_runtime() {
    let h = Harness::new().await;
    duckdb_users(&h.dir.path().join("w.duckdb"), 250);
    write_config(&h, "[warehouses.local]\ntype = \"duckdb\"\npath = \"w.duckdb\"", DUCKDB_CONTACTS);

    let first = h.run("contacts").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_eq!(first.counts.created, 250);
    assert_eq!(h.emulator.record_count("contacts"), 250);
    let found = h.emulator.find_by_property("contacts", "email", "user7@example.com");
    assert_eq!(found[0].properties.get("firstname").map(String::as_str), Some("First7"));
    // A STRUCT goes as its JSON text: the bundled DuckDB's json extension works.
    assert_eq!(found[0].properties.get("lastname").map(String::as_str), Some(r#"{"tier":1,"beta":false}"#));

    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.counts.unchanged, 250);
    assert_eq!(h.write_requests(), 0);
}

const SLEEPY_SYNC: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT 1 AS id, 'sleepy@example.com' AS email FROM pg_sleep(60)"
primary_key = "id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email" }
"#;

/// Statements of the test's database still running `pg_sleep`, other than the asking one.
async fn sleeping_queries(h: &Harness) -> i64 {
    h.db.client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' \
             AND query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()",
            &[&h.db.name],
        )
        .await
        .expect("read pg_stat_activity")
        .get(0)
}

/// Waits until the count of sleeping queries is `want`; false if it is not within `secs`.
async fn wait_for_sleeping(h: &Harness, want: i64, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if sleeping_queries(h).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A server that accepts connections and never says a word.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_fails_within_the_connect_timeout() {
    let h = Harness::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    write_config(
        &h,
        &format!(
            "[warehouses.silent]\ntype = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:{port}/db\"\nconnect_timeout_secs = 1"
        ),
        DUCKDB_CONTACTS,
    );
    let started = Instant::now();
    let summary = h.run("contacts").await;
    let took = started.elapsed();
    assert_eq!(summary.status, RunStatus::Failed);
    let error = summary.error.unwrap_or_default();
    assert!(error.contains("warehouse `silent`"), "names the warehouse: {error}");
    assert!(error.contains("connect_timeout_secs = 1"), "names the setting: {error}");
    assert!(took < Duration::from_secs(4), "failed after {took:?}, the timeout is 1 s");
    assert_eq!(h.emulator.record_count("contacts"), 0);
    silent.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_over_its_timeout_is_cancelled_on_the_server() {
    let h = Harness::new().await;
    write_config(
        &h,
        &format!("[warehouses.pg]\ntype = \"postgres\"\nurl = \"{}\"\nquery_timeout_secs = 2", h.db.url),
        SLEEPY_SYNC,
    );
    let started = Instant::now();
    let summary = h.run("contacts").await;
    let took = started.elapsed();
    assert_eq!(summary.status, RunStatus::Failed);
    let error = summary.error.unwrap_or_default();
    assert!(error.contains("query_timeout_secs = 2 on warehouse `pg`"), "{error}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(8), "took {took:?}");
    assert!(wait_for_sleeping(&h, 0, 3).await, "the query still runs on the server");
    assert_eq!(h.emulator.record_count("contacts"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_long_query_cancels_it_and_exits() {
    let h = Harness::new().await;
    h.write_config(SLEEPY_SYNC);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .arg("--config")
        .arg(h.config_path())
        .args(["sync", "contacts"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start hubsync");
    assert!(wait_for_sleeping(&h, 1, 30).await, "the model never started on the server");
    let pid = child.id() as libc::pid_t;
    // SAFETY: signalling our own child, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let signalled = Instant::now();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(signalled.elapsed() < Duration::from_secs(5), "exited {:?} after SIGTERM", signalled.elapsed());
    // A graceful stop is not a failure (issue 14): the run is cancelled and the command exits 0.
    assert!(output.status.success(), "{:?}", output.status);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(text(&output.stdout).contains("cancelled"), "{}", text(&output.stdout));
    assert!(wait_for_sleeping(&h, 0, 3).await, "the query still runs on the server");
    let status = text(&h.cli(&["status", "contacts"]).stdout);
    assert!(status.contains("cancelled"), "the run is recorded as cancelled: {status}");
}

/// A database in a given encoding on the test server, dropped at the end.
struct EncodedDb {
    name: String,
    url: String,
    client: tokio_postgres::Client,
}

impl EncodedDb {
    async fn create(encoding: &str) -> EncodedDb {
        let admin = crate::common::admin_url();
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        let name = format!("hubsync_test_{}", uuid::Uuid::new_v4().simple());
        client
            .batch_execute(&format!(
                "CREATE DATABASE {name} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ))
            .await
            .expect("create database");
        let url = format!("{}/{name}", &admin[..admin.rfind('/').unwrap()]);
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        EncodedDb { name, url, client }
    }
}

impl Drop for EncodedDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&crate::common::admin_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_that_is_not_utf8_is_rejected_and_the_others_are_delivered() {
    let h = Harness::new().await;
    let db = EncodedDb::create("SQL_ASCII").await;
    db.client
        .batch_execute(
            "CREATE TABLE users (id int, email text, first_name text);
             INSERT INTO users VALUES (1, 'ada@example.com', 'Ada'), (2, 'renee@example.com', E'Ren\\xe9e'),
                                      (3, 'jose@example.com', 'José');",
        )
        .await
        .expect("fill the SQL_ASCII database");
    let sync = r#"
[[syncs]]
name = "contacts"
model = "SELECT id, email, first_name FROM users"
primary_key = "id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email", first_name = "firstname" }
"#;
    write_config(&h, &format!("[warehouses.legacy]\ntype = \"postgres\"\nurl = \"{}\"", db.url), sync);
    let summary = h.run("contacts").await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{:?}", summary.error);
    assert_eq!((summary.counts.rows_read, summary.counts.invalid, summary.counts.created), (3, 1, 2));
    assert_eq!(h.emulator.record_count("contacts"), 2);
    assert!(h.emulator.find_by_property("contacts", "email", "renee@example.com").is_empty());
    let jose = h.emulator.find_by_property("contacts", "email", "jose@example.com");
    assert_eq!(jose[0].properties.get("firstname").map(String::as_str), Some("José"));
    let status = h.cli(&["status", "contacts", "--json"]);
    let status = text(&status.stdout);
    assert!(status.contains("INVALID_UTF8"), "{status}");
    assert!(status.contains("column `first_name` holds bytes that are not UTF-8"), "{status}");

    // Fixed in the warehouse, the row goes next run; the others are not sent again.
    db.client.batch_execute("UPDATE users SET first_name = 'Renee' WHERE id = 2").await.unwrap();
    h.emulator.clear_journal();
    let fixed = h.run("contacts").await;
    assert_eq!((fixed.counts.invalid, fixed.counts.created, fixed.counts.unchanged), (0, 1, 2));
}

const DOLLAR_MODEL: &str = "SELECT id, email, $$it's $${not_a_name} $1; -- kept$$ || first_name AS first_name,
       '$${HOME}' AS note
FROM ${HUBSYNC_IT_TABLE}; -- every user";

#[tokio::test(flavor = "multi_thread")]
async fn models_end_with_semicolons_and_comments_and_keep_dollar_quotes() {
    let h = Harness::new().await;
    h.db.exec("CREATE TABLE people AS SELECT 1 AS id, 'ada@example.com' AS email, 'Ada' AS first_name").await;
    std::fs::write(h.dir.path().join("people.sql"), DOLLAR_MODEL.replace("email,", "'file.' || email AS email,"))
        .unwrap();
    let syncs = format!(
        r#"
[[syncs]]
name = "inline"
model = """{DOLLAR_MODEL}"""
primary_key = "id"
object = "contacts"
match = {{ column = "email", property = "email" }}
fields = {{ email = "email", first_name = "firstname", note = "lastname" }}

[[syncs]]
name = "file"
model = "people.sql"
primary_key = "id"
object = "contacts"
match = {{ column = "email", property = "email" }}
fields = {{ email = "email", first_name = "firstname", note = "lastname" }}
"#
    );
    h.write_config(&syncs);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .arg("--config")
        .arg(h.config_path())
        .args(["sync", "--all"])
        .env("HUBSYNC_IT_TABLE", "people")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}{}", text(&output.stdout), text(&output.stderr));
    for email in ["ada@example.com", "file.ada@example.com"] {
        let found = h.emulator.find_by_property("contacts", "email", email);
        assert_eq!(found.len(), 1, "{email}");
        let props = &found[0].properties;
        assert_eq!(props.get("firstname").map(String::as_str), Some("it's ${not_a_name} $1; -- keptAda"));
        assert_eq!(props.get("lastname").map(String::as_str), Some("${HOME}"), "$${{NAME}} is the escape");
    }

    // Without the variable, both models say so, each with its key.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .arg("--config")
        .arg(h.config_path())
        .arg("validate")
        .env_remove("HUBSYNC_IT_TABLE")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("HUBSYNC_IT_TABLE"), "{stderr}");
}

/// A small DuckDB file.
fn small_duckdb(path: &Path) {
    let conn = duckdb::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE users AS SELECT 1 AS id, 'a@example.com' AS email, 'A' AS first_name, {'x': 1} AS tags",
    )
    .unwrap();
}

/// DuckDB's checksum of a block: 5381, XOR-ed with every 8-byte word times a constant.
fn duckdb_checksum(data: &[u8]) -> u64 {
    data.chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap()).wrapping_mul(0xbf58_476d_1ce4_e5b9))
        .fold(5381, |sum, w| sum ^ w)
}

/// Makes the main header (the first 4096 bytes: checksum, `DUCK`, storage version, ...) claim
/// storage version `version`, with a checksum that matches.
fn claim_storage_version(path: &Path, version: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[8..12], b"DUCK", "a DuckDB file");
    bytes[12..20].copy_from_slice(&version.to_le_bytes());
    let checksum = duckdb_checksum(&bytes[8..4096]);
    bytes[0..8].copy_from_slice(&checksum.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn files_of_a_newer_duckdb_are_named_with_both_versions() {
    let h = Harness::new().await;
    let warehouse = h.dir.path().join("w.duckdb");
    small_duckdb(&warehouse);
    claim_storage_version(&warehouse, 70);
    write_config(&h, "[warehouses.local]\ntype = \"duckdb\"\npath = \"w.duckdb\"", DUCKDB_CONTACTS);
    let summary = h.run("contacts").await;
    assert_eq!(summary.status, RunStatus::Failed);
    let error = summary.error.unwrap_or_default();
    let version = hubsync::source::duckdb_library_version();
    assert!(
        error.contains(&format!(
            "the DuckDB file {} was written by a newer version of DuckDB (storage version 70)",
            warehouse.display()
        )),
        "{error}"
    );
    assert!(error.contains(&format!("hubsync's DuckDB {version} reads storage versions 64 to 69 only")), "{error}");
    assert!(!error.contains("https://"), "DuckDB's own text is replaced: {error}");

    // A state file too: the file, what wrote it, what hubsync reads.
    std::fs::remove_file(&warehouse).unwrap();
    small_duckdb(&warehouse);
    let state = h.config().state_path(h.config().sync("contacts").unwrap());
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    small_duckdb(&state);
    claim_storage_version(&state, 51);
    let out = h.cli(&["sync", "contacts"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "the DuckDB file {} was written by DuckDB version v0.8.0 or v0.8.1 (storage version 51)",
            state.display()
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_held_lock_is_reported_as_another_process() {
    let h = Harness::new().await;
    duckdb_users(&h.dir.path().join("w.duckdb"), 3);
    write_config(&h, "[warehouses.local]\ntype = \"duckdb\"\npath = \"w.duckdb\"", DUCKDB_CONTACTS);
    let state = h.config().state_path(h.config().sync("contacts").unwrap());
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();

    // A corrupt block: DuckDB's message says "block", which is not a lock.
    small_duckdb(&state);
    let mut bytes = std::fs::read(&state).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&state, bytes).unwrap();
    let out = h.cli(&["sync", "contacts"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("Corrupt database file") && stderr.contains("block"), "{stderr}");
    assert!(!stderr.contains("another hubsync process"), "{stderr}");

    // The file held open for writing by another process (this test's).
    std::fs::remove_file(&state).unwrap();
    let held = duckdb::Connection::open(&state).unwrap();
    let out = h.cli(&["sync", "contacts"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("another hubsync process is using this sync's state file"), "{stderr}");
    drop(held);
    let out = h.cli(&["sync", "contacts"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
