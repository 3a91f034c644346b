//! Several requests in flight within a run (issue 14), against the emulator answering with a
//! latency: a SIGKILL in each delivery phase (records, associations, list members) and a rerun
//! leave exactly the model; a SIGTERM waits for the answers in flight, journals them and exits
//! 0; 5xx answers, dropped connections and a 429 burst with several in flight deliver every row
//! once without multiplying the 429s; nothing is sent after the daily limit is spent; two syncs
//! on one account share its in-flight cap and neither starves.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Harness, CONTACTS_SYNC};
use hubspot_emulator::{EmulatorConfig, FaultConfig, JournalEntry};
use hubsync::cli::Accounts;
use hubsync::sync::{run_sync, RunOptions, RunStatus};

/// Contacts, each linked to four of five companies, all in the sync's list.
const SYNC: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, first_name, companies FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email", first_name = "firstname" }
list = true

[[syncs.associations]]
to = "companies"
column = "companies"
match = "name"
"#;

const COMPANIES: [&str; 5] = ["Acme", "Globex", "Initech", "Umbrella", "Hooli"];
const ROWS: u32 = 1_500;
/// Four links per row: three association batches of 2,000.
const LINKS: usize = 4 * ROWS as usize;

async fn seed(h: &Harness, rows: u32) {
    for name in COMPANIES {
        h.emulator.insert_record("companies", &[("name", name)]);
    }
    // Row i skips company i % 5.
    h.db.exec(&format!(
        "CREATE TABLE users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email, 'First' || i AS first_name,
                (SELECT string_agg(c, ',') FROM unnest(ARRAY['Acme','Globex','Initech','Umbrella','Hooli'])
                   WITH ORDINALITY AS t(c, n) WHERE n - 1 <> i % 5) AS companies
         FROM generate_series(1, {rows}) AS i"
    ))
    .await;
}

/// The emulator holds every row once, with its four links (and, with `list`, in the list), and
/// nothing else.
fn assert_holds_exactly_the_model(h: &Harness, rows: u32, list: bool) {
    let records = h.emulator.records("contacts");
    assert_eq!(records.len(), rows as usize, "no contact missing, none duplicated");
    let emails: BTreeSet<&str> = records.iter().filter_map(|r| r.properties.get("email").map(String::as_str)).collect();
    assert_eq!(emails.len(), rows as usize, "every email once");
    let companies: std::collections::BTreeMap<String, String> = h
        .emulator
        .records("companies")
        .into_iter()
        .map(|r| (r.id, r.properties.get("name").cloned().unwrap_or_default()))
        .collect();
    assert_eq!(companies.len(), COMPANIES.len(), "no company created");
    let links: BTreeSet<(String, String)> = h
        .emulator
        .associations("contacts", "companies")
        .into_iter()
        .map(|a| (a.from_id, companies.get(&a.to_id).cloned().unwrap_or_default()))
        .collect();
    assert_eq!(links.len(), 4 * rows as usize, "every link once");
    let mut expected_links = BTreeSet::new();
    for r in &records {
        let email = r.properties.get("email").cloned().unwrap_or_default();
        let i: u32 = email.trim_start_matches("user").trim_end_matches("@example.com").parse().expect("user<i>");
        for (n, c) in COMPANIES.iter().enumerate() {
            if n as u32 != i % 5 {
                expected_links.insert((r.id.clone(), c.to_string()));
            }
        }
    }
    assert_eq!(links, expected_links, "exactly the model's links");
    if !list {
        return;
    }
    let list = h.emulator.list_by_name("contacts").expect("the sync's list");
    let members: BTreeSet<String> = h.emulator.list_members(&list.list_id).into_iter().collect();
    let ids: BTreeSet<String> = records.into_iter().map(|r| r.id).collect();
    assert_eq!(members, ids, "the list holds exactly the model's records");
}

/// `hubsync sync contacts` as a child process, its output in a log file.
fn start_sync(h: &Harness) -> (Child, std::path::PathBuf) {
    let log = h.dir.path().join(format!("sync-{}.log", uuid::Uuid::new_v4().simple()));
    let file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .current_dir(h.dir.path())
        .arg("--config")
        .arg(h.config_path())
        .args(["sync", "contacts"])
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .expect("start hubsync");
    (child, log)
}

/// Waits until `ready` holds, while the child still runs.
async fn wait_for(child: &mut Child, log: &std::path::Path, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the sync exited ({status}) before {what}:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// SIGKILLs the sync once `ready` holds, in the middle of a phase (`not_done` says it was),
/// then reruns it without latency and checks the emulator holds exactly the model.
async fn kill_when(phase: &str, ready: impl Fn(&Harness) -> bool, not_done: impl Fn(&Harness) -> bool) {
    let h = Harness::with_emulator(EmulatorConfig {
        faults: FaultConfig { latency_ms: 300, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    })
    .await;
    seed(&h, ROWS).await;
    // Two requests in flight at most: a phase of several batches has some answered, some not.
    h.write_config_with(SYNC, "max_in_flight = 2");
    let (mut child, log) = start_sync(&h);
    wait_for(&mut child, &log, phase, || ready(&h)).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert!(not_done(&h), "killed before the {phase} phase ended");
    let peak = h.emulator.peak_in_flight();
    assert!(peak >= 2, "{peak} requests in flight at most: the run did not pipeline");

    h.emulator.set_faults(FaultConfig::default());
    h.write_config(SYNC);
    let rerun = h.run("contacts").await;
    assert_eq!(rerun.status, RunStatus::Succeeded, "{:?}", rerun.error);
    assert_holds_exactly_the_model(&h, ROWS, true);
    // A third run has nothing left to send.
    h.emulator.clear_journal();
    let third = h.run("contacts").await;
    assert_eq!(third.counts.unchanged, ROWS as u64, "{:?}", third.counts);
    assert_eq!((third.counts.associated, third.counts.list_added), (0, 0), "{:?}", third.counts);
    assert_eq!(h.write_requests() + h.emulator.count_requests("PUT", "/memberships/"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_while_record_batches_are_in_flight_loses_and_duplicates_nothing() {
    kill_when(
        "records",
        |h| h.emulator.record_count("contacts") >= 500,
        |h| h.emulator.record_count("contacts") < 1_500,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_while_association_batches_are_in_flight_loses_and_duplicates_nothing() {
    kill_when(
        "associations",
        |h| h.emulator.associations("contacts", "companies").len() >= 2_000,
        |h| h.emulator.associations("contacts", "companies").len() < LINKS,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_while_list_requests_are_in_flight_loses_and_duplicates_nothing() {
    let members =
        |h: &Harness| h.emulator.list_by_name("contacts").map_or(0, |l| h.emulator.list_members(&l.list_id).len());
    kill_when("list members", move |h| members(h) >= 500, move |h| members(h) < ROWS as usize).await;
}

/// SIGTERM while the first batches are on the wire and the others wait for the rate budget:
/// the answers in flight are journaled, the waiting requests are never sent, the command exits
/// 0, and the rerun sends exactly what was not acknowledged.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_waits_for_the_answers_in_flight_journals_them_and_exits_0() {
    let h = Harness::with_emulator(EmulatorConfig {
        max_requests_per_10s: Some(8),
        faults: FaultConfig { latency_ms: 500, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    })
    .await;
    h.db.exec(
        "CREATE TABLE users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email, 'First' || i AS first_name
         FROM generate_series(1, 1500) AS i",
    )
    .await;
    let sync = CONTACTS_SYNC;
    h.write_config_with(sync, "max_requests_per_10s = 8");
    let (mut child, log) = start_sync(&h);
    // The object's properties come first; then the upserts start, 7 at once (8 per window).
    wait_for(&mut child, &log, "the properties read", || h.emulator.count_requests("GET", "/properties") >= 1).await;
    wait_for(&mut child, &log, "upserts in flight", || h.emulator.requests_in_flight() >= 3).await;
    let signalled = Instant::now();
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit 5 s after SIGTERM:\n{}", std::fs::read_to_string(&log).unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "a graceful stop exits 0 ({status}):\n{output}");
    assert!(signalled.elapsed() < Duration::from_secs(3), "requests waiting for the budget were not waited for");

    let journal = h.emulator.journal();
    let upserts: Vec<&JournalEntry> = journal.iter().filter(|e| e.path.contains("/batch/upsert")).collect();
    assert!(!upserts.is_empty(), "no upsert was sent before the signal:\n{output}");
    assert!(upserts.iter().all(|e| e.status == 200), "every request sent was answered: {upserts:#?}");
    assert!(
        upserts.iter().any(|e| e.answered_at > signalled),
        "the signal came after every answer, so this run did not test waiting for them"
    );
    let delivered = h.emulator.record_count("contacts");
    assert_eq!(delivered, 100 * upserts.len());
    assert!(delivered < 1_500, "stopped before the end");
    let status_json: serde_json::Value =
        serde_json::from_slice(&h.cli(&["status", "contacts", "--json"]).stdout).expect("status --json");
    let stopped = &status_json[0]["runs"][0];
    assert_eq!(stopped["status"], "cancelled", "{stopped}");
    let journaled =
        stopped["counts"]["created"].as_u64().unwrap_or(0) + stopped["counts"]["updated"].as_u64().unwrap_or(0);
    assert_eq!(journaled, delivered as u64, "every answer in flight was journaled: {stopped}");

    h.emulator.set_rate_limit(None);
    h.emulator.set_faults(FaultConfig::default());
    h.emulator.clear_journal();
    h.write_config(sync);
    let rerun = h.run("contacts").await;
    assert_eq!(rerun.status, RunStatus::Succeeded, "{:?}", rerun.error);
    assert_eq!(
        rerun.counts.created + rerun.counts.updated,
        1_500 - delivered as u64,
        "the rerun sends exactly what was not acknowledged"
    );
    assert_eq!(h.emulator.record_count("contacts"), 1_500);
}

/// A second SIGTERM does not wait for the answers in flight: `hubsync sync` exits at once (not
/// 0), and the next run still loses nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigterm_exits_at_once_and_the_next_run_loses_nothing() {
    let h = Harness::with_emulator(EmulatorConfig {
        faults: FaultConfig { latency_ms: 20_000, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    })
    .await;
    h.db.exec(
        "CREATE TABLE users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email, 'First' || i AS first_name
         FROM generate_series(1, 500) AS i",
    )
    .await;
    h.write_config(CONTACTS_SYNC);
    // The properties read takes 20 s: the first signal's graceful stop waits for it.
    let (mut child, log) = start_sync(&h);
    wait_for(&mut child, &log, "a request in flight", || h.emulator.requests_in_flight() >= 1).await;
    let term = |child: &Child| {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    };
    term(&child);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.try_wait().unwrap().is_none(), "the first signal waits for the answer in flight");
    let second = Instant::now();
    term(&child);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(second.elapsed() < Duration::from_secs(3), "the second signal did not exit at once");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!status.success(), "an immediate exit is not a clean one: {status}");

    h.emulator.set_faults(FaultConfig::default());
    let rerun = h.run("contacts").await;
    assert_eq!(rerun.status, RunStatus::Succeeded, "{:?}", rerun.error);
    assert_eq!(h.emulator.record_count("contacts"), 500);
}

/// Item (c): 5xx answers, dropped connections and a 429 burst while 8 batches are in flight.
/// Every row is delivered once, and the burst costs at most one 429 per request in flight.
#[tokio::test(flavor = "multi_thread")]
async fn faults_and_a_429_burst_with_eight_in_flight_deliver_every_row_once() {
    let faults = FaultConfig { latency_ms: 100, error_rate: 0.15, drop_rate: 0.1, ..FaultConfig::default() };
    let h = std::sync::Arc::new(
        Harness::with_emulator(EmulatorConfig { faults: faults.clone(), ..EmulatorConfig::default() }).await,
    );
    seed(&h, 2_000).await;
    // Without the list: creating one is not idempotent, and a 502 for it fails the run (the next
    // run finds it by name); list requests in flight are the SIGKILL test's.
    h.write_config_with(&SYNC.replace("list = true", ""), "max_in_flight = 8\nretry_max_attempts = 10");
    let burst = {
        let (h, faults) = (h.clone(), faults.clone());
        tokio::spawn(async move {
            // Once delivery runs at full width, the portal's window is full for 300 ms (and only
            // 429s come back meanwhile, so every request that meets one was in flight when it
            // began, or was sent after an answer that was a 429).
            while h.emulator.count_requests("POST", "/batch/upsert") < 1 || h.emulator.requests_in_flight() < 6 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            h.emulator.set_faults(FaultConfig { latency_ms: 100, burst_429_ms: 300, ..FaultConfig::default() });
            tokio::time::sleep(Duration::from_millis(400)).await;
            h.emulator.set_faults(faults);
        })
    };
    let run = h.run("contacts").await;
    burst.await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.counts.rejected, 0, "{:?}", run.counts);
    h.emulator.set_faults(FaultConfig::default());
    assert_holds_exactly_the_model(&h, 2_000, false);
    let journal = h.emulator.journal();
    let server_errors = journal.iter().filter(|e| (500..600).contains(&e.status)).count();
    let dropped = journal.iter().filter(|e| e.status == 0).count();
    assert!(server_errors > 0 && dropped > 0, "the emulator injected faults ({server_errors} 5xx, {dropped} drops)");
    let limited = h.emulator.count_status(429);
    assert!(limited > 0, "the burst caught no request");
    assert!(limited <= 8, "{limited} 429s: more than the 8 requests in flight when the burst began");
    assert!(h.emulator.peak_in_flight() > 2, "the run did not pipeline");
}

/// Item (d): the daily limit runs out mid-run with several in flight: nothing is sent after the
/// first 429 DAILY, nothing is retried, and every batch HubSpot applied is journaled.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_sent_or_retried_after_the_daily_limit() {
    let h = Harness::with_emulator(EmulatorConfig {
        // Fewer than the 8 requests the run starts at once: some of them surely meet the limit.
        daily_limit: Some(4),
        faults: FaultConfig { latency_ms: 200, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    })
    .await;
    h.db.exec(
        "CREATE TABLE users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email, 'First' || i AS first_name
         FROM generate_series(1, 3000) AS i",
    )
    .await;
    h.write_config_with(CONTACTS_SYNC, "max_in_flight = 8");
    let run = h.run("contacts").await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.as_deref().unwrap_or("").contains("daily API limit"), "{:?}", run.error);
    let journal = h.emulator.journal();
    let daily: Vec<&JournalEntry> = journal.iter().filter(|e| e.status == 429).collect();
    assert!(!daily.is_empty(), "requests in flight past the limit meet 429 DAILY");
    let first = daily.iter().map(|e| e.answered_at).min().unwrap();
    let late = journal.iter().filter(|e| e.received_at > first + Duration::from_millis(50)).count();
    assert_eq!(late, 0, "nothing is sent after the first 429 DAILY: {journal:#?}");
    assert!(daily.len() <= 8, "only requests in flight can meet it");
    assert_eq!(
        run.counts.created + run.counts.updated,
        h.emulator.record_count("contacts") as u64,
        "every applied batch is journaled"
    );
    assert_eq!(run.counts.requests, journal.len() as u64, "each attempt counted once: no retry");
}

/// No record is in two requests in flight: two rows share each e-mail, so their upserts write
/// one record; with 32 batches allowed in flight, the second row's batch waits until the first
/// one's is answered. The emulator's journal shows no two overlapping upserts with one e-mail.
#[tokio::test(flavor = "multi_thread")]
async fn two_rows_of_one_record_are_never_in_two_requests_in_flight() {
    let h = Harness::with_emulator(EmulatorConfig {
        faults: FaultConfig { latency_ms: 150, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    })
    .await;
    // Rows i and i + 1000 share an e-mail: batches 1-10 and 11-20 write the same records.
    h.db.exec(
        "CREATE TABLE users AS SELECT i AS user_id, 'user' || (i % 1000) || '@example.com' AS email,
                'First' || i AS first_name FROM generate_series(1, 2000) AS i",
    )
    .await;
    h.write_config(CONTACTS_SYNC);
    let run = h.run("contacts").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(h.emulator.record_count("contacts"), 1_000, "one record per e-mail");
    let journal = h.emulator.journal();
    let upserts: Vec<(&JournalEntry, BTreeSet<String>)> = journal
        .iter()
        .filter(|e| e.path.contains("/batch/upsert"))
        .map(|e| {
            let body: serde_json::Value = serde_json::from_str(e.body.as_deref().unwrap_or("{}")).unwrap();
            let emails =
                body["inputs"].as_array().into_iter().flatten().filter_map(|i| i["id"].as_str()).map(str::to_string);
            (e, emails.collect())
        })
        .collect();
    assert_eq!(upserts.len(), 20);
    assert!(h.emulator.peak_in_flight() >= 5, "the run did not pipeline");
    for (i, (a, emails_a)) in upserts.iter().enumerate() {
        for (b, emails_b) in &upserts[i + 1..] {
            let overlap = a.received_at < b.answered_at && b.received_at < a.answered_at;
            assert!(!overlap || emails_a.is_disjoint(emails_b), "two upserts in flight at once wrote the same record");
        }
    }
}

/// Item (e): two syncs on one account's client run side by side with 4 in flight at most: the
/// emulator never sees more than 4 at once, both syncs' upserts interleave (neither waits for
/// the other to finish), and the two runs' request counts add up to what the emulator received.
#[tokio::test(flavor = "multi_thread")]
async fn two_syncs_share_the_in_flight_cap_and_neither_starves() {
    let h = Harness::with_emulator(EmulatorConfig {
        faults: FaultConfig { latency_ms: 200, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    })
    .await;
    for table in ["users_a", "users_b"] {
        h.db.exec(&format!(
            "CREATE TABLE {table} AS SELECT i AS user_id, '{table}_' || i || '@example.com' AS email,
                    'First' || i AS first_name FROM generate_series(1, 1200) AS i"
        ))
        .await;
    }
    let sync = |name: &str, table: &str| {
        CONTACTS_SYNC.replace("name = \"contacts\"", &format!("name = \"{name}\"")).replace("users", table)
    };
    h.write_config_with(&format!("{}{}", sync("a", "users_a"), sync("b", "users_b")), "max_in_flight = 4");
    let config = h.config();
    let accounts = Accounts::build(&config).expect("accounts");
    let client = accounts.client("main").unwrap();
    let options = RunOptions { trigger: "test".into(), ..RunOptions::default() };
    let (a, b) = tokio::join!(
        run_sync(&config, config.sync("a").unwrap(), client, &options),
        run_sync(&config, config.sync("b").unwrap(), client, &options)
    );
    let (a, b) = (a.expect("run a"), b.expect("run b"));
    assert_eq!((a.status, b.status), (RunStatus::Succeeded, RunStatus::Succeeded), "{:?} {:?}", a.error, b.error);
    assert_eq!(h.emulator.record_count("contacts"), 2_400);
    let peak = h.emulator.peak_in_flight();
    assert!(peak <= 4, "{peak} in flight with max_in_flight = 4 shared by both syncs");
    assert!(peak >= 3, "{peak} in flight at most: the syncs did not pipeline");

    let journal = h.emulator.journal();
    let upserts_of = |table: &str| -> Vec<Instant> {
        let mut at: Vec<Instant> = journal
            .iter()
            .filter(|e| e.path.contains("/batch/upsert") && e.body.as_deref().is_some_and(|b| b.contains(table)))
            .map(|e| e.received_at)
            .collect();
        at.sort();
        at
    };
    let (ua, ub) = (upserts_of("users_a_"), upserts_of("users_b_"));
    assert_eq!((ua.len(), ub.len()), (12, 12));
    assert!(ub[0] < ua[11] && ua[0] < ub[11], "one sync waited for the other to finish");
    assert_eq!(a.counts.requests + b.counts.requests, journal.len() as u64, "each run counts its own requests");
}
