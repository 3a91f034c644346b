//! Zero duplicates on the search-and-create path (a match property that is not unique), through
//! gateway errors after the write, SIGKILLs in the middle of creates, and dropped connections,
//! with HubSpot's search index lagging the writes. Each test ends with the emulator holding
//! exactly one record per model row.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::{text, Harness};
use hubspot_emulator::{EmulatorConfig, FaultConfig};
use hubsync::sync::RunStatus;
use serde_json::json;

/// One shape of the search-and-create path.
#[derive(Clone, Copy)]
struct Case {
    object: &'static str,
    /// The non-unique property records are matched on.
    property: &'static str,
    sync: &'static str,
}

const COMPANIES: Case = Case {
    object: "companies",
    property: "name",
    sync: r#"
[[syncs]]
name = "firms"
model = "SELECT id, name, city FROM firms"
primary_key = "id"
object = "companies"
match = { column = "name", property = "name" }
fields = { name = "name", city = "city" }
"#,
};

const CONTACTS: Case = Case {
    object: "contacts",
    property: "member_code",
    sync: r#"
[[syncs]]
name = "firms"
model = "SELECT id, name, city FROM firms"
primary_key = "id"
object = "contacts"
match = { column = "name", property = "member_code" }
fields = { name = "member_code", city = "city" }
"#,
};

async fn harness(case: Case, rows: u32, emulator: EmulatorConfig, lag_secs: u64) -> Harness {
    let h = Harness::with_emulator(emulator).await;
    if case.object == "contacts" {
        h.emulator.create_property(
            "contacts",
            json!({"name": "member_code", "label": "Member code", "type": "string", "fieldType": "text",
                   "groupName": "contactinformation"}),
        );
    }
    h.db.exec(&format!(
        "CREATE TABLE firms AS SELECT i AS id, 'Firm ' || i AS name, 'City' || (i % 7) AS city
         FROM generate_series(1, {rows}) AS i"
    ))
    .await;
    h.write_config_with(case.sync, &format!("search_index_lag_secs = {lag_secs}\nretry_max_attempts = 10"));
    h
}

/// The emulator holds exactly one record per model row, and no match value twice.
fn assert_one_record_per_row(h: &Harness, case: Case, rows: u32) {
    let records = h.emulator.records(case.object);
    let values: Vec<&str> =
        records.iter().filter_map(|r| r.properties.get(case.property).map(String::as_str)).collect();
    let distinct: HashSet<&str> = values.iter().copied().collect();
    assert_eq!(distinct.len(), values.len(), "no {} appears twice", case.property);
    assert_eq!(records.len(), rows as usize, "one {} record per model row", case.object);
    for i in 1..=rows {
        assert!(distinct.contains(format!("Firm {i}").as_str()), "Firm {i} is in HubSpot");
    }
}

fn gateway_errors(h: &Harness) -> usize {
    h.emulator.count_status(502) + h.emulator.count_status(504)
}

async fn gateway_errors_after_the_write(case: Case) {
    let rows = 1_000;
    let emulator = EmulatorConfig {
        search_index_lag_ms: 1_000,
        faults: FaultConfig { error_after_write_rate: 0.2, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    };
    let h = harness(case, rows, emulator, 2).await;
    let run = h.run("firms").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let errors = gateway_errors(&h);
    assert!(errors > 0, "the emulator answered some creates with 502/504 after writing them");
    assert!(run.counts.uncertain > 0, "{:?}", run.counts);
    assert!(run.counts.reconciled >= run.counts.uncertain, "{:?}", run.counts);
    assert_eq!(run.counts.created, rows as u64, "{:?}", run.counts);
    assert_eq!(run.counts.rejected, 0, "{:?}", run.counts);
    assert_one_record_per_row(&h, case, rows);
    assert!(
        h.emulator.properties(case.object).iter().all(|p| p["name"] != "hubsync_key"),
        "without consent hubsync adds no property"
    );
    let summary = text(&h.cli(&["status", "firms"]).stdout);
    assert!(summary.contains("uncertain") && summary.contains("reconciled"), "{summary}");
    let metrics = hubsync::telemetry::encode();
    assert!(metrics.contains("hubsync_uncertain_creates_total{sync=\"firms\"}"), "{metrics}");

    // Nothing left to do: the next run sends nothing.
    h.emulator.set_faults(FaultConfig::default());
    h.emulator.clear_journal();
    let again = h.run("firms").await;
    assert_eq!(again.counts.unchanged, rows as u64, "{:?}", again.counts);
    assert_eq!(h.write_requests(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn companies_by_name_survive_gateway_errors_after_the_write() {
    gateway_errors_after_the_write(COMPANIES).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn contacts_by_a_custom_property_survive_gateway_errors_after_the_write() {
    gateway_errors_after_the_write(CONTACTS).await;
}

async fn sigkills_during_creates(case: Case) {
    let rows = 800;
    let emulator = EmulatorConfig {
        search_index_lag_ms: 5_000,
        faults: FaultConfig { latency_ms: 40, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    };
    let h = harness(case, rows, emulator, 6).await;
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random_ms = |max: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % max
    };
    for kill in 0..5 {
        let before = h.emulator.record_count(case.object);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
            .arg("--config")
            .arg(h.config_path())
            .args(["sync", "firms"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start hubsync");
        // Kill while creates are in flight: once this run has created something, after a
        // random moment more.
        let deadline = Instant::now() + Duration::from_secs(60);
        while h.emulator.record_count(case.object) == before && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(random_ms(400))).await;
        let _ = child.kill();
        child.wait().unwrap();
        let now = h.emulator.record_count(case.object);
        assert!(now <= rows as usize, "kill {kill}: {now} records for {rows} rows");
    }
    let last = h.run("firms").await;
    assert_eq!(last.status, RunStatus::Succeeded, "{:?}", last.error);
    assert_one_record_per_row(&h, case, rows);
    let status = text(&h.cli(&["status", "firms"]).stdout);
    assert!(status.contains("interrupted"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn companies_by_name_survive_sigkills_during_creates_with_search_lag() {
    sigkills_during_creates(COMPANIES).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn contacts_by_a_custom_property_survive_sigkills_during_creates_with_search_lag() {
    sigkills_during_creates(CONTACTS).await;
}

async fn dropped_connections_after_the_write(case: Case) {
    let rows = 1_000;
    let emulator = EmulatorConfig {
        search_index_lag_ms: 2_000,
        faults: FaultConfig { drop_after_write_rate: 0.25, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    };
    let h = harness(case, rows, emulator, 3).await;
    let run = h.run("firms").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert!(run.counts.uncertain > 0, "some answers were lost after the write: {:?}", run.counts);
    assert_eq!(run.counts.rejected, 0, "{:?}", run.counts);
    assert_one_record_per_row(&h, case, rows);
    // A second run while the index may still lag creates nothing new.
    h.emulator.set_faults(FaultConfig::default());
    let again = h.run("firms").await;
    assert_eq!(again.counts.created, 0, "{:?}", again.counts);
    assert_one_record_per_row(&h, case, rows);
}

#[tokio::test(flavor = "multi_thread")]
async fn companies_by_name_survive_dropped_connections_after_the_write() {
    dropped_connections_after_the_write(COMPANIES).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn contacts_by_a_custom_property_survive_dropped_connections_after_the_write() {
    dropped_connections_after_the_write(CONTACTS).await;
}
