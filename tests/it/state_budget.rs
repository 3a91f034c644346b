//! The memory budget of a run's state database (`state_memory_mb`): a big first sync at the
//! minimum budget spills instead of failing, its work tables never reach the state file, and a
//! budget below the minimum is refused by the config check.

use crate::common::{text, Harness};
use hubsync::sync::RunStatus;

const ROWS: u64 = 200_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_200k_row_first_sync_at_the_minimum_budget_spills_and_succeeds() {
    let h = Harness::new().await;
    h.db.exec(&format!(
        "CREATE TABLE users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email,
                'First' || i || ' ' || repeat('x', 40) AS first_name
         FROM generate_series(1, {ROWS}) AS i"
    ))
    .await;
    // The minimum budget (MIN_STATE_MEMORY_MB) and one thread.
    let text = format!(
        "state_memory_mb = 128\nstate_threads = 1\n\n[warehouses.pg]\ntype = \"postgres\"\nurl = \"{}\"\n\n\
         [hubspot.main]\ntoken = \"test-token\"\nbase_url = \"{}\"\n\n{}",
        h.db.url,
        h.emulator.base_url(),
        crate::common::CONTACTS_SYNC
    );
    std::fs::write(h.config_path(), text).unwrap();

    let first = h.run("contacts").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_eq!(first.counts.created, ROWS);
    assert_eq!(h.emulator.record_count("contacts"), ROWS as usize);

    // 1% changed, at the same budget: the changed keys go to the warehouse, the journal is
    // merged in place.
    h.db.exec("UPDATE users SET first_name = 'Changed' || user_id WHERE user_id % 100 = 0").await;
    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!(second.counts.updated, ROWS / 100);
    assert_eq!(second.phases.read2_rows, ROWS / 100);
    let ada = h.emulator.find_by_property("contacts", "email", "user4200@example.com");
    assert_eq!(ada[0].properties.get("firstname").map(String::as_str), Some("Changed4200"));

    // The work tables were temporary: none is in the state file.
    let path = h.config().state_path(h.config().sync("contacts").unwrap());
    let conn = duckdb::Connection::open_with_flags(
        &path,
        duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly).unwrap(),
    )
    .unwrap();
    let mut statement = conn.prepare("SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1").unwrap();
    let tables: Vec<String> = statement.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    for work in ["staging", "staging_rows", "changes", "changed_keys", "dup_keys", "wanted_keys"] {
        assert!(!tables.iter().any(|t| t == work), "work table {work} in the state file: {tables:?}");
    }
    assert!(tables.iter().any(|t| t == "snapshot"), "{tables:?}");
}

#[test]
fn a_budget_below_the_minimum_is_refused_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hubsync.toml");
    std::fs::write(
        &path,
        "state_memory_mb = 32\nstate_threads = 0\n[warehouses.pg]\ntype = \"postgres\"\nurl = \"postgres://x@127.0.0.1/db\"\n",
    )
    .unwrap();
    let output = crate::common::hubsync_cmd(dir.path(), &path, &["validate"]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("state_memory_mb") && stderr.contains("minimum of 128"), "{stderr}");
    assert!(stderr.contains("state_threads"), "{stderr}");
}
