//! The second read of a run brings only the changed rows: their keys are pushed into the
//! warehouse query (a temp table of keys joined with the model), on PostgreSQL and DuckDB, with
//! bigint and text keys; a warehouse that cannot hold the keys (a read-only transaction) is
//! scanned instead; and both reads see one PostgreSQL snapshot even when the model's rows
//! change in between.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::Harness;
use hubsync::sync::{RunStatus, RunSummary};

/// Sync `contacts` of `users` keyed by `key` (a bigint or a text column).
fn users_sync(model: &str, key: &str) -> String {
    format!(
        r#"
[[syncs]]
name = "contacts"
model = "{model}"
primary_key = "{key}"
object = "contacts"
match = {{ column = "email", property = "email" }}
fields = {{ email = "email", first_name = "firstname" }}
"#
    )
}

/// The first names the update batches of the last run carried, sorted.
fn updated_first_names(h: &Harness) -> Vec<String> {
    let mut names: Vec<String> = h
        .emulator
        .request_bodies("POST", "/batch/update")
        .iter()
        .flat_map(|body| {
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            body["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["properties"]["firstname"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names
}

fn succeeded(run: &RunSummary) {
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
}

/// The rows of a first run, then of a run after `changed` rows changed: the first scans the
/// model (every row is new), the second gets exactly the changed rows from the warehouse.
async fn only_changed_rows_are_read(h: &Harness, rows: u64, change: &str, changed: &[&str]) {
    let first = h.run("contacts").await;
    succeeded(&first);
    assert_eq!(first.counts.created, rows);
    assert!(!first.phases.read2_pushed_keys, "every row is new: the model is scanned");
    assert_eq!(first.phases.read2_rows, rows);

    h.db.exec(change).await;
    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    succeeded(&second);
    assert_eq!(second.counts.updated, changed.len() as u64);
    assert!(second.phases.read2_pushed_keys, "{:?}", second.phases);
    assert_eq!(second.phases.read2_rows, changed.len() as u64, "only the changed rows leave the warehouse");
    assert_eq!(updated_first_names(h), changed);

    h.emulator.clear_journal();
    let third = h.run("contacts").await;
    succeeded(&third);
    assert_eq!((third.counts.unchanged, third.phases.read2_rows), (rows, 0), "nothing changed: no second read");
    assert_eq!(h.write_requests(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_second_read_brings_only_the_changed_rows_by_bigint_key() {
    let h = Harness::new().await;
    h.db.exec(
        "CREATE TABLE users AS SELECT i::bigint AS user_id, 'user' || i || '@example.com' AS email, 'First' || i AS first_name
         FROM generate_series(1, 1000) AS i;
         CREATE UNIQUE INDEX ON users (user_id);",
    )
    .await;
    h.write_config(&users_sync("SELECT user_id, email, first_name FROM users", "user_id"));
    only_changed_rows_are_read(
        &h,
        1000,
        "UPDATE users SET first_name = 'Changed' || user_id WHERE user_id IN (3, 500, 999)",
        &["Changed3", "Changed500", "Changed999"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_second_read_brings_only_the_changed_rows_by_text_key_with_escapes() {
    let h = Harness::new().await;
    // Keys with a tab, a backslash, a quote, a newline and non-ASCII text travel through COPY.
    h.db.exec(
        "CREATE TABLE users AS SELECT
                CASE i % 4 WHEN 0 THEN 'k' || i || E'\\tback\\\\slash'
                           WHEN 1 THEN 'k' || i || ' l''apostrophe'
                           WHEN 2 THEN 'k' || i || E'\\nline'
                           ELSE 'clé-' || i END AS code,
                'user' || i || '@example.com' AS email, 'First' || i AS first_name
         FROM generate_series(1, 400) AS i",
    )
    .await;
    h.write_config(&users_sync("SELECT code, email, first_name FROM users", "code"));
    only_changed_rows_are_read(
        &h,
        400,
        "UPDATE users SET first_name = 'Changed' || substr(email, 5, 3) WHERE email IN \
         ('user100@example.com', 'user201@example.com', 'user302@example.com', 'user399@example.com')",
        &["Changed100", "Changed201", "Changed302", "Changed399"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warehouse_that_cannot_hold_the_keys_is_scanned_instead() {
    let h = Harness::new().await;
    h.db.exec(
        "CREATE TABLE users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email, 'First' || i AS first_name
         FROM generate_series(1, 300) AS i",
    )
    .await;
    h.write_config(&users_sync("SELECT user_id, email, first_name FROM users", "user_id"));
    succeeded(&h.run("contacts").await);
    // A read-only transaction (as on a hot standby) refuses the temp table of keys.
    h.db.exec("UPDATE users SET first_name = 'Changed' || user_id WHERE user_id IN (10, 20)").await;
    h.db.exec(&format!("ALTER DATABASE {} SET default_transaction_read_only = on", h.db.name)).await;
    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    succeeded(&second);
    assert!(!second.phases.read2_pushed_keys);
    assert_eq!(second.phases.read2_rows, 300, "the whole model was scanned");
    assert_eq!(second.counts.updated, 2);
    assert_eq!(updated_first_names(&h), ["Changed10", "Changed20"]);
}

fn write_duckdb_config(h: &Harness, syncs: &str) {
    let text = format!(
        "[warehouses.local]\ntype = \"duckdb\"\npath = \"w.duckdb\"\n\n[hubspot.main]\ntoken = \"test-token\"\nbase_url = \"{}\"\n\n{syncs}",
        h.emulator.base_url()
    );
    std::fs::write(h.config_path(), text).expect("write config");
}

fn duckdb_exec(path: &Path, sql: &str) {
    let conn = duckdb::Connection::open(path).expect("open the DuckDB warehouse");
    conn.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn duckdb_second_read_brings_only_the_changed_rows_by_bigint_and_text_keys() {
    for (key, expr) in [("id", "i::BIGINT"), ("code", "'code ' || i || ' \\ \t'")] {
        let h = Harness::new().await;
        let path = h.dir.path().join("w.duckdb");
        duckdb_exec(
            &path,
            &format!(
                "CREATE TABLE users AS SELECT {expr} AS {key}, 'user' || i || '@example.com' AS email,
                        'First' || i AS first_name FROM range(1, 501) t(i)"
            ),
        );
        write_duckdb_config(&h, &users_sync(&format!("SELECT {key}, email, first_name FROM users"), key));
        let first = h.run("contacts").await;
        succeeded(&first);
        assert_eq!((first.counts.created, first.phases.read2_rows), (500, 500), "{key}");

        duckdb_exec(
            &path,
            "UPDATE users SET first_name = 'Changed' || substr(email, 5, 1) WHERE email LIKE 'user4_@%'",
        );
        h.emulator.clear_journal();
        let second = h.run("contacts").await;
        succeeded(&second);
        assert_eq!(second.counts.updated, 10, "{key}");
        assert!(second.phases.read2_pushed_keys, "{key}: {:?}", second.phases);
        assert_eq!(second.phases.read2_rows, 10, "{key}: only the changed rows are read");
        assert_eq!(updated_first_names(&h), vec!["Changed4"; 10], "{key}");
    }
}

/// The sync's own session, once it runs the model.
async fn sync_reading(h: &Harness) -> bool {
    let row =
        h.db.client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND state = 'active' AND query LIKE 'COPY (SELECT%'",
                &[],
            )
            .await
            .unwrap();
    row.get::<_, i64>(0) > 0
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_changed_between_the_reads_are_read_as_the_first_read_saw_them() {
    let h = Harness::new().await;
    h.db.exec(
        "CREATE TABLE users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email, 'First' || i AS first_name
         FROM generate_series(1, 200) AS i",
    )
    .await;
    // A model that takes 10 ms a row, so a write can land while the first read runs.
    h.write_config(&users_sync(
        // Correlated with the row, so PostgreSQL sleeps per row rather than once.
        "SELECT u.user_id, u.email, u.first_name FROM users u, LATERAL (SELECT pg_sleep(0.01 + 0 * u.user_id) AS nap) s",
        "user_id",
    ));
    succeeded(&h.run("contacts").await);

    h.db.exec("UPDATE users SET first_name = 'Second' WHERE user_id <= 5").await;
    h.emulator.clear_journal();
    let run = {
        let config = h.config();
        tokio::spawn(async move {
            let accounts = hubsync::cli::Accounts::build(&config).expect("accounts");
            let spec = config.sync("contacts").expect("sync");
            let options = hubsync::sync::RunOptions { trigger: "test".into(), ..Default::default() };
            hubsync::sync::run_sync(&config, spec, accounts.client(&spec.hubspot).unwrap(), &options).await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sync_reading(&h).await {
        assert!(Instant::now() < deadline, "the sync never started reading");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first read's snapshot is taken; this commits before the second read starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.db.exec("UPDATE users SET first_name = 'Third' WHERE user_id <= 5").await;
    let second = run.await.unwrap().expect("run");
    succeeded(&second);
    assert!(second.duration_secs > 1.0, "the first read outlasted the write: {:?}", second.phases);
    assert_eq!(second.counts.updated, 5);
    assert_eq!(updated_first_names(&h), vec!["Second"; 5], "the second read saw the first read's snapshot");

    // The next run sees the write and sends it.
    h.emulator.clear_journal();
    let third = h.run("contacts").await;
    succeeded(&third);
    assert_eq!(third.counts.updated, 5);
    assert_eq!(updated_first_names(&h), vec!["Third"; 5]);
}
