//! The warehouse side: the DuckDB warehouse on any runtime flavour, timeouts and cancellation of
//! PostgreSQL queries, TLS with a private CA, model text rules, rows that are not UTF-8, and
//! DuckDB files hubsync cannot read.

use std::path::Path;

use crate::common::Harness;
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
model = "SELECT id, email, first_name FROM users"
primary_key = "id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email", first_name = "firstname" }
"#;

fn duckdb_users(path: &Path, n: u32) {
    let conn = duckdb::Connection::open(path).expect("create the DuckDB warehouse");
    conn.execute_batch(&format!(
        "CREATE TABLE users AS SELECT i AS id, 'user' || i || '@example.com' AS email, 'First' || i AS first_name
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

    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.counts.unchanged, 250);
    assert_eq!(h.write_requests(), 0);
}
