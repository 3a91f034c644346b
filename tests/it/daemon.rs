//! The long-running side against real PostgreSQL and the emulator: `hubsync run` on a schedule,
//! runs triggered through the admin API and `hubsync trigger --wait`, graceful and immediate
//! stops that lose nothing, two syncs sharing one account's rate limit, and the admin API's
//! token, bind and reset rules.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::daemon::{eventually, get_json, post_json, wait_request, DaemonProcess};
use crate::common::{text, Harness};
use hubspot_emulator::{EmulatorConfig, FaultConfig};
use hubsync::scheduler::RunningDaemon;
use hubsync::state::StateStore;
use hubsync::sync::RunStatus;
use serde_json::{json, Value};

/// A contacts sync on `table`, every `cron`.
fn contacts_sync(name: &str, table: &str, schedule: &str) -> String {
    format!(
        r#"
[[syncs]]
name = "{name}"
model = "SELECT user_id, email, first_name, last_name FROM {table}"
primary_key = "user_id"
object = "contacts"
match = {{ column = "email", property = "email" }}
fields = {{ email = "email", first_name = "firstname", last_name = "lastname" }}
schedule = {schedule}
"#
    )
}

async fn users(h: &Harness, table: &str, rows: u32) {
    h.db.exec(&format!(
        "CREATE TABLE {table} AS SELECT i AS user_id, '{table}' || i || '@example.com' AS email,
                'First' || i AS first_name, 'Last' || i AS last_name
         FROM generate_series(1, {rows}) AS i"
    ))
    .await;
}

/// Runs of `sync` in the state file, as the admin API shows them (newest first).
async fn runs(base: &str, sync: &str) -> Vec<Value> {
    get_json(&format!("{base}/syncs/{sync}")).await["runs"].as_array().cloned().unwrap_or_default()
}

fn firstnames_ending(h: &Harness, suffix: &str) -> usize {
    h.emulator
        .records("contacts")
        .iter()
        .filter(|r| r.properties.get("firstname").is_some_and(|v| v.ends_with(suffix)))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_on_schedule_takes_triggers_and_stops_gracefully_without_losing_anything() {
    const ROWS: u32 = 3000;
    let h = Harness::new().await;
    users(&h, "users", ROWS).await;
    // Every 3 seconds, with the 6-field (seconds) cron syntax.
    // Two requests in flight at most, so that a run of 30 batches is still sending when the
    // SIGTERM below comes.
    h.write_config_with(
        &format!(
            "[daemon]\nmax_concurrent_runs = 2\n{}",
            contacts_sync("contacts", "users", r#"{ cron = "*/3 * * * * *" }"#)
        ),
        "max_in_flight = 2",
    );
    let mut daemon = DaemonProcess::start(h.dir.path(), &h.config_path()).await;
    let base = daemon.url.clone();

    // At least two scheduled runs, the first of which delivered every row.
    let scheduled = eventually("two scheduled runs", Duration::from_secs(60), || {
        let base = base.clone();
        async move {
            let runs = runs(&base, "contacts").await;
            let done: Vec<Value> =
                runs.into_iter().filter(|r| r["trigger"] == "schedule" && r["status"] == "succeeded").collect();
            (done.len() >= 2).then_some(done)
        }
    })
    .await;
    assert_eq!(h.emulator.record_count("contacts"), ROWS as usize);
    assert_eq!(scheduled.last().unwrap()["counts"]["created"], ROWS, "the first run creates every contact");
    let status = get_json(&format!("{base}/syncs/contacts")).await;
    assert_eq!(status["schedule"]["kind"], "cron");
    assert_eq!(status["schedule"]["period_secs"], 3.0);
    assert!(status["next_run_at"].is_string(), "{status}");
    assert_eq!(status["snapshot_rows"], ROWS);

    // A full resync through the admin API: every row is sent again (by id). Runs need the token
    // the daemon generated in the state directory, as the config sets none.
    let token = std::fs::read_to_string(h.dir.path().join("state/admin-token")).expect("generated admin token");
    let (code, accepted) =
        post_json(&format!("{base}/syncs/contacts/run"), json!({"full": true}), Some(token.trim())).await;
    assert_eq!(code, 202, "{accepted}");
    let id = accepted["request_id"].as_u64().expect("request id");
    let done = wait_request(&base, "contacts", id, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["run"]["counts"]["updated"], ROWS, "{done}");

    // The same through `hubsync trigger --wait`.
    let out = h.cli(&["trigger", "contacts", "--full", "--wait", "--daemon", &base]);
    assert!(out.status.success(), "trigger failed: {}{}", text(&out.stdout), text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("full resync requested") && said.contains("succeeded"), "{said}");
    assert!(said.contains(&format!("{ROWS} updated")), "{said}");

    // `hubsync status --daemon` prints the same JSON as a table.
    let out = h.cli(&["status", "--daemon", &base]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("contacts") && table.contains("cron `*/3 * * * * *` (UTC)"), "{table}");

    // SIGTERM in the middle of a run: the batches in flight are committed, the process exits 0.
    h.emulator.set_faults(FaultConfig { latency_ms: 300, ..Default::default() });
    h.db.exec("UPDATE users SET first_name = first_name || '-v2'").await;
    h.emulator.clear_journal();
    let emulator = &h.emulator;
    eventually("the changed rows to be on their way", Duration::from_secs(30), || async move {
        (emulator.count_requests("POST", "/batch/update") >= 3).then_some(())
    })
    .await;
    daemon.signal(libc::SIGTERM);
    let exit = daemon.wait_exit(Duration::from_secs(30)).await;
    assert!(exit.success(), "a graceful stop exits 0, got {exit}:\n{}", daemon.log_text());
    h.emulator.set_faults(FaultConfig::default());

    let delivered = firstnames_ending(&h, "-v2");
    assert!(delivered > 0 && delivered < ROWS as usize, "stopped mid-run: {delivered} of {ROWS} delivered");
    {
        let config = h.config();
        let store = StateStore::open(&config.state_path(config.sync("contacts").unwrap())).unwrap();
        let last = &store.runs(1).unwrap()[0];
        assert_eq!(last.status, "cancelled", "{last:?}");
        assert_eq!(last.counts.updated as usize, delivered, "every acknowledged batch was committed");
    }

    // The next start sends exactly what was not acknowledged: nothing lost, nothing twice.
    let resumed = h.run("contacts").await;
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(resumed.counts.updated as usize, ROWS as usize - delivered);
    assert_eq!(firstnames_ending(&h, "-v2"), ROWS as usize);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_exits_at_once_and_the_next_start_loses_nothing() {
    const ROWS: u32 = 2000;
    let h = Harness::new().await;
    users(&h, "users", ROWS).await;
    // Two requests in flight at most: the batches go in waves, and the slow ones below come
    // after the first answers.
    h.write_config_with(&contacts_sync("contacts", "users", "{ interval_secs = 3600 }"), "max_in_flight = 2");
    h.emulator.set_faults(FaultConfig { latency_ms: 300, ..Default::default() });
    let mut daemon = DaemonProcess::start(h.dir.path(), &h.config_path()).await;
    let emulator = &h.emulator;
    eventually("the first batches", Duration::from_secs(30), || async move {
        (emulator.count_requests("POST", "/batch/upsert") >= 2).then_some(())
    })
    .await;
    // The next batch takes 20 s to answer, so a graceful stop cannot end before the second
    // signal: only an immediate exit can.
    h.emulator.set_faults(FaultConfig { latency_ms: 20_000, ..Default::default() });
    tokio::time::sleep(Duration::from_secs(1)).await;
    daemon.signal(libc::SIGTERM);
    let readyz = format!("{}/readyz", daemon.url);
    eventually("the graceful stop to begin", Duration::from_secs(10), || {
        let readyz = readyz.clone();
        async move { (reqwest::get(&readyz).await.ok()?.status() == 503).then_some(()) }
    })
    .await;
    let second = Instant::now();
    daemon.signal(libc::SIGTERM);
    let exit = daemon.wait_exit(Duration::from_secs(5)).await;
    assert!(second.elapsed() < Duration::from_secs(3), "the second signal exits at once");
    assert!(!exit.success(), "an immediate exit is not a clean one: {exit}");
    assert!(h.emulator.record_count("contacts") < ROWS as usize, "stopped before the end");

    h.emulator.set_faults(FaultConfig::default());
    let resumed = h.run("contacts").await;
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(h.emulator.record_count("contacts"), ROWS as usize);
    let again = h.run("contacts").await;
    assert_eq!(again.counts.unchanged, ROWS as u64, "everything is in the snapshot");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_syncs_on_one_account_share_its_rate_limit() {
    const LIMIT: u32 = 10;
    const ROWS: u32 = 600;
    let h = Harness::with_emulator(EmulatorConfig { max_requests_per_10s: Some(LIMIT), ..Default::default() }).await;
    users(&h, "users_a", ROWS).await;
    users(&h, "users_b", ROWS).await;
    let syncs = format!(
        "{}{}",
        contacts_sync("contacts_a", "users_a", "{ interval_secs = 3600 }"),
        contacts_sync("contacts_b", "users_b", "{ interval_secs = 3600 }")
    );
    h.write_config_with(&syncs, &format!("max_requests_per_10s = {LIMIT}"));
    let started = Instant::now();
    let daemon = DaemonProcess::start(h.dir.path(), &h.config_path()).await;
    let base = daemon.url.clone();

    let both_running = AtomicBool::new(false);
    let (both, base_ref) = (&both_running, base.as_str());
    eventually("both syncs to succeed", Duration::from_secs(120), || async move {
        let all = get_json(&format!("{base_ref}/syncs")).await;
        let all = all.as_array().cloned().unwrap_or_default();
        if all.iter().filter(|s| s["state"] == "running").count() == 2 {
            both.store(true, Ordering::SeqCst);
        }
        let ok = all.iter().all(|s| s["runs"].get(0).is_some_and(|r| r["status"] == "succeeded"));
        ok.then_some(())
    })
    .await;
    assert!(both_running.load(Ordering::SeqCst), "the two syncs ran side by side");
    assert_eq!(h.emulator.record_count("contacts"), 2 * ROWS as usize);
    assert_eq!(h.emulator.count_status(429), 0, "together they never exceeded the account's limit");
    // 12 upsert batches plus metadata requests at 10 per 10 s cannot take less than 10 s.
    assert!(started.elapsed() >= Duration::from_secs(10), "the shared budget paced them");
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    let waited = metrics
        .lines()
        .find(|l| l.starts_with("hubsync_rate_budget_wait_seconds_total{account=\"main\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(waited > 1.0, "requests waited on the shared budget ({waited} s):\n{metrics}");
    // Each run counts its own requests, not the other's: together they are every request the
    // emulator received.
    let all = get_json(&format!("{base}/syncs")).await;
    let per_run: Vec<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["runs"][0]["counts"]["requests"].as_u64().expect("requests of the last run"))
        .collect();
    assert_eq!(per_run.len(), 2);
    assert!(per_run.iter().all(|n| *n >= 7), "each run made its own 6 upserts and metadata reads: {per_run:?}");
    assert_eq!(per_run.iter().sum::<u64>() as usize, h.emulator.journal().len(), "{per_run:?}");
}

async fn authed_get(base: &str, path: &str) -> Value {
    let request = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth("s3cret");
    request.send().await.unwrap().json::<Value>().await.unwrap()
}

/// Runs `contacts` through the admin API (with the token) and returns the finished request.
async fn authed_run(base: &str) -> Value {
    let (code, accepted) = post_json(&format!("{base}/syncs/contacts/run"), json!({}), Some("s3cret")).await;
    assert_eq!(code, 202, "{accepted}");
    let id = accepted["request_id"].as_u64().unwrap();
    eventually("the run", Duration::from_secs(60), || async move {
        let info = authed_get(base, &format!("/syncs/contacts/requests/{id}")).await;
        (!matches!(info["state"].as_str(), Some("queued" | "running"))).then_some(info)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_requires_its_token_resets_and_refuses_open_binds() {
    let h = Harness::new().await;
    users(&h, "users", 250).await;
    let sync = contacts_sync("contacts", "users", r#"{ cron = "0 6 * * 1-5", timezone = "Europe/Paris" }"#);
    h.write_config(&format!("[daemon]\nadmin_token = \"s3cret\"\n{sync}"));
    let daemon = RunningDaemon::start(h.config(), "127.0.0.1:0".parse().unwrap()).await.expect("start");
    let base = format!("http://{}", daemon.local_addr());
    let client = reqwest::Client::new();

    assert_eq!(client.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(client.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
    for path in ["/syncs", "/metrics", "/syncs/contacts"] {
        let status = client.get(format!("{base}{path}")).send().await.unwrap().status();
        assert_eq!(status, 401, "{path} needs the token");
        let wrong = client.get(format!("{base}{path}")).bearer_auth("s3cre").send().await.unwrap().status();
        assert_eq!(wrong, 401, "{path} with a wrong token");
    }
    let (code, _) = post_json(&format!("{base}/syncs/contacts/run"), json!({}), None).await;
    assert_eq!(code, 401);
    let (code, body) = post_json(&format!("{base}/syncs/nope/run"), json!({}), Some("s3cret")).await;
    assert_eq!(code, 404);
    assert_eq!(body["syncs"], json!(["contacts"]));
    let (code, _) = post_json(&format!("{base}/syncs/contacts/run"), json!({"fool": true}), Some("s3cret")).await;
    assert_eq!(code, 400, "unknown body keys are refused");

    let status = authed_get(&base, "/syncs/contacts").await;
    assert_eq!(status["state"], "idle");
    assert_eq!(status["schedule"]["timezone"], "Europe/Paris");
    assert_eq!(status["schedule"]["period_secs"], 3.0 * 86_400.0, "the weekend is the longest gap");

    let first = authed_run(&base).await;
    assert_eq!(first["state"], "succeeded", "{first}");
    assert_eq!(first["run"]["counts"]["created"], 250);

    // Reset: the snapshot is forgotten, so the next run sends everything again (by id).
    let (code, body) = post_json(&format!("{base}/syncs/contacts/reset"), json!({}), Some("s3cret")).await;
    assert_eq!((code, &body["snapshot_rows"]), (200, &json!(0)), "{body}");
    let after_reset = authed_run(&base).await;
    assert_eq!(after_reset["run"]["counts"]["updated"], 250, "{after_reset}");
    assert_eq!(h.emulator.record_count("contacts"), 250, "ids were kept: no duplicates");

    let listed = authed_get(&base, "/syncs").await;
    assert_eq!(listed[0]["runs"].as_array().map(Vec::len), Some(2), "{listed}");
    assert_eq!(listed[0]["last_run"]["status"], "succeeded");

    daemon.begin_shutdown();
    assert_eq!(client.get(format!("{base}/readyz")).send().await.unwrap().status(), 503, "not ready while stopping");
    daemon.wait().await;

    // Anything but loopback needs a token, whether from the config or --listen.
    h.write_config(&contacts_sync("contacts", "users", "{ interval_secs = 60 }"));
    let err = RunningDaemon::start(h.config(), "0.0.0.0:0".parse().unwrap()).await.err().expect("refused");
    assert!(err.to_string().contains("without a token"), "{err}");
    h.write_config(&format!("[daemon]\nlisten = \"0.0.0.0:8484\"\n{sync}"));
    let out = h.cli(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("daemon.listen"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_schedules_name_their_key_and_trigger_needs_a_daemon() {
    let h = Harness::new().await;
    users(&h, "users", 1).await;
    h.write_config(&contacts_sync("contacts", "users", r#"{ cron = "*/5 * * *" }"#));
    let out = h.cli(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("syncs[0].schedule.cron"), "{}", text(&out.stderr));

    h.write_config(&contacts_sync("contacts", "users", "{ interval_secs = 60 }"));
    let port = crate::common::daemon::free_port();
    let out = h.cli(&["trigger", "contacts", "--daemon", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot reach the hubsync daemon"), "{}", text(&out.stderr));
}
