//! State files written by an older hubsync: `tests/fixtures/state-v1.duckdb` was written by the
//! hubsync of commit 005f114 (before schema versions existed) after two runs of the sync below
//! (five contacts, their companies, a list) against a fresh emulator holding the three
//! companies. This hubsync migrates it on open and carries on from it: nothing that file says
//! was delivered is sent again.

use std::path::{Path, PathBuf};

use crate::common::{text, Harness};
use hubsync::state::{StateReader, SCHEMA_VERSION};
use hubsync::sync::RunStatus;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state-v1.duckdb");

/// The sync the fixture was written by (`tests/fixtures/README.md`).
const FIXTURE_SYNC: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, first_name, company FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email", first_name = "firstname" }
list = { name = "Fixture members" }

[[syncs.associations]]
to = "companies"
column = "company"
match = "name"
"#;

const EMAILS: [&str; 5] =
    ["ada@example.com", "grace@example.com", "alan@example.com", "edsger@example.com", "barbara@example.com"];

fn state_path(h: &Harness) -> PathBuf {
    h.dir.path().join("state").join("contacts.duckdb")
}

/// The schema version a state file records, read without writing it.
fn file_version(path: &Path) -> i64 {
    let config = duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly).unwrap();
    let conn = duckdb::Connection::open_with_flags(path, config).unwrap();
    let has: i64 = conn
        .query_row("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'", [], |r| r.get(0))
        .unwrap();
    if has == 0 {
        return 0;
    }
    conn.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0)).unwrap()
}

/// A harness whose emulator holds what the older hubsync delivered: the same companies, then
/// the same sync run once on a fresh state file (the emulator gives ids in order, so the
/// records get the ids the fixture knows).
async fn harness_like_the_fixture() -> Harness {
    let h = Harness::new().await;
    for name in ["Acme", "Globex", "Initech"] {
        h.emulator.insert_record("companies", &[("name", name)]);
    }
    h.db.exec(
        "CREATE TABLE users (user_id int, email text, first_name text, company text);
         INSERT INTO users VALUES
           (1, 'ada@example.com', 'Ada', 'Acme'), (2, 'grace@example.com', 'Grace', 'Globex'),
           (3, 'alan@example.com', 'Alan', 'Acme'), (4, 'edsger@example.com', 'Edsger', 'Initech'),
           (5, 'barbara@example.com', 'Barbara', NULL);",
    )
    .await;
    h.write_config(FIXTURE_SYNC);
    let twin = h.run("contacts").await;
    assert_eq!((twin.status, twin.counts.created, twin.counts.list_added), (RunStatus::Succeeded, 5, 5));
    let path = state_path(&h);
    std::fs::remove_file(&path).unwrap();
    let _ = std::fs::remove_file(path.with_extension("duckdb.wal"));
    std::fs::copy(FIXTURE, &path).unwrap();
    h
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_file_of_an_older_hubsync_is_migrated_and_nothing_delivered_is_sent_again() {
    let h = harness_like_the_fixture().await;
    let path = state_path(&h);
    assert_eq!(file_version(&path), 0, "the fixture predates schema versions");
    {
        let fixture = StateReader::open_read_only(&path).unwrap();
        for (i, email) in EMAILS.iter().enumerate() {
            let id = h.emulator.find_by_property("contacts", "email", email)[0].id.clone();
            let pk = (i + 1).to_string();
            assert_eq!(fixture.hubspot_id(&pk).unwrap(), Some(id), "the emulator holds the fixture's record {pk}");
        }
        assert_eq!(fixture.runs(10).unwrap().len(), 2);
    }

    // Read-only commands read the older file as it is, and leave it so.
    for args in [["status", "contacts"], ["plan", "contacts"]] {
        let out = h.cli(&args);
        assert!(out.status.success(), "{args:?}: {}{}", text(&out.stdout), text(&out.stderr));
    }
    let plan = text(&h.cli(&["plan", "contacts"]).stdout);
    assert!(plan.contains("5 unchanged") && plan.contains("nothing to send"), "{plan}");
    assert_eq!(file_version(&path), 0, "status and plan do not migrate the file");

    h.emulator.clear_journal();
    let run = h.run("contacts").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.counts.unchanged, 5);
    assert_eq!(run.counts.requests, 0, "nothing is sent again: {:?}", h.emulator.journal());
    assert_eq!(file_version(&path), SCHEMA_VERSION as i64, "migrated to this hubsync's schema");
    let reader = StateReader::open_read_only(&path).unwrap();
    let runs = reader.runs(10).unwrap();
    assert_eq!(runs.len(), 3, "the older runs are kept");
    assert_eq!(runs[1].counts.created, 0, "the older second run: nothing to do");
    assert_eq!(runs[2].counts.created, 5, "the older first run");
    drop(reader);

    // A change goes by the id the older hubsync learned, and only the change goes.
    h.db.exec("UPDATE users SET first_name = 'Augusta' WHERE user_id = 1; UPDATE users SET company = 'Globex' WHERE user_id = 5")
        .await;
    h.emulator.clear_journal();
    let next = h.run("contacts").await;
    // Ada's name changed (an update by id); Barbara's company only (a link, no property to send).
    assert_eq!((next.counts.updated, next.counts.created, next.counts.associated), (1, 0, 1), "{:?}", next.error);
    assert_eq!(h.emulator.count_requests("POST", "/batch/update"), 1);
    assert_eq!(h.emulator.count_requests("POST", "/batch/upsert"), 0);
    assert_eq!(h.emulator.count_requests("PUT", "/memberships/"), 0, "the list already holds them");
    let ada = h.emulator.find_by_property("contacts", "email", "ada@example.com").remove(0);
    assert_eq!(ada.properties.get("firstname").map(String::as_str), Some("Augusta"));
    assert_eq!(h.emulator.record_count("contacts"), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_file_of_a_newer_hubsync_is_refused_naming_the_file_and_both_versions() {
    let h = harness_like_the_fixture().await;
    let path = state_path(&h);
    h.run("contacts").await;
    let newer = SCHEMA_VERSION as i64 + 1;
    duckdb::Connection::open(&path)
        .unwrap()
        .execute("INSERT INTO schema_version VALUES (?, 'from a newer hubsync', now()::TIMESTAMP)", [newer])
        .unwrap();
    h.emulator.clear_journal();
    let out = h.cli(&["sync", "contacts"]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("contacts.duckdb"), "names the file: {all}");
    assert!(all.contains(&format!("version {newer}")) && all.contains(&format!("up to {SCHEMA_VERSION}")), "{all}");
    assert_eq!(h.emulator.journal().len(), 0, "nothing is sent");
    assert_eq!(file_version(&path), newer, "the file is left as it was");
}
