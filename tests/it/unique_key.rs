//! Idempotent creates through hubsync's own unique key property (`unique_key_property = true`):
//! companies matched on their non-unique `name` are upserted by `hubsync_key` when search does
//! not find them, so gateway errors after the write, SIGKILLs and search lag leave exactly one
//! company per row. Without the schema write scope, the journaled create path is used.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::{text, Harness};
use hubspot_emulator::{EmulatorConfig, FaultConfig, StaticToken};
use hubsync::sync::{RunStatus, KEY_GROUP, KEY_PROPERTY};
use serde_json::Value;

const SYNC: &str = r#"
[[syncs]]
name = "firms"
model = "SELECT id, name, city FROM firms"
primary_key = "id"
object = "companies"
match = { column = "name", property = "name" }
fields = { name = "name", city = "city" }
unique_key_property = true
"#;

async fn harness(rows: u32, emulator: EmulatorConfig, lag_secs: u64) -> Harness {
    let h = Harness::with_emulator(emulator).await;
    h.db.exec(&format!(
        "CREATE TABLE firms AS SELECT i AS id, 'Firm ' || i AS name, 'City' || (i % 7) AS city
         FROM generate_series(1, {rows}) AS i"
    ))
    .await;
    h.write_config_with(SYNC, &format!("search_index_lag_secs = {lag_secs}\nretry_max_attempts = 10"));
    h
}

/// Exactly one company per model row, no name twice.
fn assert_one_company_per_row(h: &Harness, rows: u32) {
    let records = h.emulator.records("companies");
    let names: Vec<&str> = records.iter().filter_map(|r| r.properties.get("name").map(String::as_str)).collect();
    let distinct: HashSet<&str> = names.iter().copied().collect();
    assert_eq!(distinct.len(), names.len(), "no name appears twice");
    assert_eq!(records.len(), rows as usize, "one company per model row");
    for i in 1..=rows {
        assert!(distinct.contains(format!("Firm {i}").as_str()), "Firm {i} is in HubSpot");
    }
}

/// Every company carries the key of its row: `firms:<id>` for `Firm <id>`.
fn assert_every_company_has_its_key(h: &Harness) {
    for r in h.emulator.records("companies") {
        let name = r.properties.get("name").cloned().unwrap_or_default();
        let id = name.trim_start_matches("Firm ");
        assert_eq!(r.properties.get(KEY_PROPERTY), Some(&format!("firms:{id}")), "{name}");
    }
}

fn key_property(h: &Harness) -> Option<Value> {
    h.emulator.properties("companies").into_iter().find(|p| p["name"] == KEY_PROPERTY)
}

#[tokio::test(flavor = "multi_thread")]
async fn companies_by_name_with_the_key_survive_gateway_errors_after_the_write() {
    let rows = 1_000;
    let found_first = 40;
    let emulator = EmulatorConfig {
        search_index_lag_ms: 1_000,
        faults: FaultConfig { error_after_write_rate: 0.2, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    };
    let h = harness(rows, emulator, 2).await;
    // Some companies exist already, without a key: search finds them, and they get one.
    for i in 1..=found_first {
        h.emulator.insert_record("companies", &[("name", &format!("Firm {i}"))]);
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let run = h.run("firms").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let errors = h.emulator.count_status(502) + h.emulator.count_status(504);
    assert!(errors > 0, "the emulator answered some upserts with 502/504 after writing them");
    assert_eq!(h.emulator.count_requests("POST", "/companies/batch/create"), 0, "nothing is created blindly");
    assert!(h.emulator.count_requests("POST", "/companies/batch/upsert") > 0);
    assert_eq!((run.counts.uncertain, run.counts.rejected), (0, 0), "{:?}", run.counts);
    assert_eq!(run.counts.created, u64::from(rows - found_first), "{:?}", run.counts);
    assert_eq!(run.counts.updated, u64::from(found_first), "{:?}", run.counts);
    assert_one_company_per_row(&h, rows);
    assert_every_company_has_its_key(&h);

    let key = key_property(&h).expect("hubsync_key exists");
    assert_eq!(key["hasUniqueValue"], true);
    assert_eq!(key["groupName"], KEY_GROUP);
    assert_eq!(key["type"], "string");
    let groups = reqwest::Client::new()
        .get(format!("{}/crm/properties/2026-03/companies/groups/{KEY_GROUP}", h.emulator.base_url()))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(groups.status(), 200, "the key's property group exists");

    // Nothing left to do: the next run sends nothing and creates no property again.
    h.emulator.set_faults(FaultConfig::default());
    h.emulator.clear_journal();
    let again = h.run("firms").await;
    assert_eq!(again.counts.unchanged, u64::from(rows), "{:?}", again.counts);
    assert_eq!(h.write_requests(), 0);
    assert_eq!(h.emulator.count_requests("POST", "/crm/properties/"), 0, "the property is created once");
}

#[tokio::test(flavor = "multi_thread")]
async fn companies_by_name_with_the_key_survive_sigkills_with_search_lag() {
    let rows = 800;
    let emulator = EmulatorConfig {
        search_index_lag_ms: 5_000,
        faults: FaultConfig { latency_ms: 40, error_after_write_rate: 0.1, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    };
    let h = harness(rows, emulator, 6).await;
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let mut random_ms = |max: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % max
    };
    for kill in 0..5 {
        let before = h.emulator.record_count("companies");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
            .arg("--config")
            .arg(h.config_path())
            .args(["sync", "firms"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start hubsync");
        // Kill while upserts are in flight: once this run has written something, after a
        // random moment more.
        let deadline = Instant::now() + Duration::from_secs(60);
        while h.emulator.record_count("companies") == before && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(random_ms(400))).await;
        let _ = child.kill();
        child.wait().unwrap();
        let now = h.emulator.record_count("companies");
        assert!(now <= rows as usize, "kill {kill}: {now} companies for {rows} rows");
    }
    // Straight after the last kill, while search still lags the last writes.
    let last = h.run("firms").await;
    assert_eq!(last.status, RunStatus::Succeeded, "{:?}", last.error);
    assert_eq!(h.emulator.count_requests("POST", "/companies/batch/create"), 0);
    assert_one_company_per_row(&h, rows);
    assert_every_company_has_its_key(&h);
    let status = text(&h.cli(&["status", "firms"]).stdout);
    assert!(status.contains("interrupted"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_schema_scope_creates_are_journaled_instead() {
    let rows = 300;
    let emulator = EmulatorConfig {
        search_index_lag_ms: 1_000,
        static_tokens: vec![StaticToken {
            token: "test-token".into(),
            scopes: ["crm.objects.companies.read", "crm.objects.companies.write", "crm.schemas.companies.read"]
                .map(String::from)
                .to_vec(),
        }],
        faults: FaultConfig { error_after_write_rate: 0.2, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    };
    let h = harness(rows, emulator, 2).await;
    let out = h.cli(&["sync", "firms"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot use its unique key property"), "a clear warning: {stderr}");
    assert!(stderr.contains("crm.schemas.companies.write"), "it names the scope: {stderr}");
    assert_eq!(stderr.matches("cannot use its unique key property").count(), 1, "once: {stderr}");
    assert!(key_property(&h).is_none(), "no property without the scope");
    assert!(h.emulator.count_requests("POST", "/companies/batch/create") > 0, "the journaled create path");
    assert_eq!(h.emulator.count_requests("POST", "/companies/batch/upsert"), 0);
    assert_one_company_per_row(&h, rows);
    assert!(h.emulator.records("companies").iter().all(|r| !r.properties.contains_key(KEY_PROPERTY)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_holding_the_rows_key_wins_over_what_search_finds() {
    // A run made company "Firm 1" with key `firms:1` and crashed before journaling it; the
    // portal also has an older "Firm 1" of its own. Search finds the older one (lowest id), but
    // the key says which record is the row's: it is updated, the older one is left alone.
    let h = harness(3, EmulatorConfig::default(), 1).await;
    h.emulator.create_property(
        "companies",
        serde_json::json!({"name": KEY_PROPERTY, "label": "hubsync key", "type": "string", "fieldType": "text",
                           "groupName": KEY_GROUP, "hasUniqueValue": true}),
    );
    let older = h.emulator.insert_record("companies", &[("name", "Firm 1")]);
    let ours = h.emulator.insert_record("companies", &[("name", "Firm 1"), (KEY_PROPERTY, "firms:1")]);
    let run = h.run("firms").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.counts.rejected, 0, "{:?}", run.counts);
    let records = h.emulator.records("companies");
    assert_eq!(records.len(), 4, "the older Firm 1, and one company per row");
    let get = |id: &str| records.iter().find(|r| r.id == id).unwrap();
    assert_eq!(get(&ours).properties.get("city").map(String::as_str), Some("City1"), "the row's record is updated");
    assert!(!get(&older).properties.contains_key("city"), "the other company is left alone");
    assert!(!get(&older).properties.contains_key(KEY_PROPERTY));
    // And it stays that way: the row now goes by the id of its own record.
    h.emulator.clear_journal();
    let again = h.run("firms").await;
    assert_eq!((again.counts.unchanged, again.counts.rejected), (3, 0), "{:?}", again.counts);
    assert_eq!(h.write_requests(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_says_what_the_key_needs_and_contacts_cannot_have_it() {
    let h = harness(5, EmulatorConfig::default(), 1).await;
    let out = h.cli(&["validate"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "a warning, not an error: {stdout}{}", text(&out.stderr));
    assert!(stdout.contains("syncs[0].unique_key_property"), "{stdout}");
    assert!(stdout.contains("creates the unique property `hubsync_key`"), "{stdout}");
    assert!(stdout.contains("crm.schemas.companies.write"), "{stdout}");
    assert!(!stdout.contains("is not a unique property of companies"), "no advice to do what is done: {stdout}");
    assert_eq!(h.emulator.count_requests("POST", "/crm/properties/"), 0, "validate creates nothing");
    // Once the property exists, validate has nothing to say about it.
    assert_eq!(h.run("firms").await.status, RunStatus::Succeeded);
    let again = text(&h.cli(&["validate"]).stdout);
    assert!(!again.contains("unique_key_property"), "{again}");

    h.write_config_with(&SYNC.replace("object = \"companies\"", "object = \"contacts\""), "");
    let out = h.cli(&["validate"]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("syncs[0].unique_key_property") && all.contains("contacts cannot use"), "{all}");
}
