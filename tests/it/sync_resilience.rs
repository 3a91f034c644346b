//! A run survives what production throws at it: a SIGKILL in the middle of delivery, HubSpot's
//! 5xx answers, dropped connections and 429 bursts, and a tight rate limit.

use std::time::{Duration, Instant};

use crate::common::{text, Harness};
use hubspot_emulator::{EmulatorConfig, FaultConfig};
use hubsync::sync::RunStatus;

const SYNC: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, first_name, city FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email", first_name = "firstname", city = "city" }
"#;

async fn users(h: &Harness, n: u32) {
    h.db.exec(&format!(
        "CREATE TABLE users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email, 'First' || i AS first_name,
                'City' || (i % 50) AS city FROM generate_series(1, {n}) AS i"
    ))
    .await;
}

/// Every model row is in the emulator exactly once, with the model's values.
fn assert_holds_exactly_the_model(h: &Harness, n: u32) {
    let records = h.emulator.records("contacts");
    assert_eq!(records.len(), n as usize, "no record missing, none duplicated");
    let mut emails: Vec<&str> = records.iter().filter_map(|r| r.properties.get("email").map(String::as_str)).collect();
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len(), n as usize, "every email once");
    for i in [1, n / 2, n] {
        let found = h.emulator.find_by_property("contacts", "email", &format!("user{i}@example.com"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].properties.get("firstname").map(String::as_str), Some(format!("First{i}").as_str()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_delivery_then_a_new_run_leaves_exactly_the_model() {
    let h = Harness::new().await;
    users(&h, 3_000).await;
    // Four batches in flight at most, so the kill lands after the first answers were journaled
    // and before the last batches were sent.
    h.write_config_with(SYNC, "max_in_flight = 4");
    // Slow HubSpot down so the kill lands while batches are in flight.
    h.emulator.set_faults(FaultConfig { latency_ms: 60, ..FaultConfig::default() });

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .arg("--config")
        .arg(h.config_path())
        .args(["sync", "contacts"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start hubsync");
    let deadline = Instant::now() + Duration::from_secs(120);
    while h.emulator.record_count("contacts") < 700 {
        assert!(Instant::now() < deadline, "the first run never got going");
        assert!(child.try_wait().unwrap().is_none(), "the first run ended before it could be killed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let delivered_before_kill = h.emulator.record_count("contacts");
    assert!(delivered_before_kill < 3_000, "killed mid-delivery ({delivered_before_kill} delivered)");

    h.emulator.set_faults(FaultConfig::default());
    let rerun = h.run("contacts").await;
    assert_eq!(rerun.status, RunStatus::Succeeded, "{:?}", rerun.error);
    assert_holds_exactly_the_model(&h, 3_000);
    let status = text(&h.cli(&["status", "contacts"]).stdout);
    assert!(status.contains("interrupted"), "the killed run is recorded as interrupted: {status}");
    // The killed run's record keeps the counts of the batches it journaled.
    let json: serde_json::Value =
        serde_json::from_slice(&h.cli(&["status", "contacts", "--json"]).stdout).expect("status --json");
    let killed = &json[0]["runs"][1];
    assert_eq!(killed["status"], "interrupted", "{killed}");
    let journaled = killed["counts"]["created"].as_u64().unwrap_or(0);
    assert!(journaled > 0 && journaled <= delivered_before_kill as u64, "{killed}");
    assert_eq!(journaled % 100, 0, "whole batches are journaled: {killed}");
    assert_eq!(
        journaled + rerun.counts.created + rerun.counts.updated,
        3_000,
        "what the killed run journaled and what the rerun sent make up the model: {killed}"
    );

    h.emulator.clear_journal();
    let third = h.run("contacts").await;
    assert_eq!(third.counts.unchanged, 3_000);
    assert_eq!(h.write_requests(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_and_429_bursts_do_not_lose_rows() {
    let h = Harness::with_emulator(EmulatorConfig {
        faults: FaultConfig {
            error_rate: 0.2,
            drop_rate: 0.05,
            locked_rate: 0.03,
            burst_429: 3,
            ..FaultConfig::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    users(&h, 2_000).await;
    h.write_config_with(SYNC, "retry_max_attempts = 10");
    let run = h.run("contacts").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.counts.rejected, 0);
    assert_holds_exactly_the_model(&h, 2_000);
    let server_errors: usize = [500, 502, 503, 504].iter().map(|s| h.emulator.count_status(*s)).sum();
    assert!(server_errors > 0, "the emulator did inject 5xx answers");
    assert_eq!(h.emulator.count_status(429), 3, "the 429 burst was met and waited out");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tight_rate_limit_is_respected_without_429s() {
    let h =
        Harness::with_emulator(EmulatorConfig { max_requests_per_10s: Some(10), ..EmulatorConfig::default() }).await;
    users(&h, 1_500).await;
    h.write_config_with(SYNC, "max_requests_per_10s = 10");
    let started = Instant::now();
    let run = h.run("contacts").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(h.emulator.count_status(429), 0, "the budget kept the run under the limit");
    assert_eq!(h.emulator.record_count("contacts"), 1_500);
    // 15 upserts + 1 properties read = 16 requests at 10 per 10 s take more than 10 s.
    assert!(started.elapsed() >= Duration::from_secs(10));
}
