//! The daemon's metrics against what ships with it: the exposition passes `promtool check
//! metrics`, the alert rules pass `promtool check rules`, every metric a dashboard or an alert
//! names is exported, and a real Prometheus scraping a daemon under a demo workload answers
//! every dashboard panel's query with data and every alert's query without error.
//!
//! The promtool and Prometheus tests fail (never skip) when the tools are missing:
//! `scripts/install-prometheus.sh` installs them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::daemon::{eventually, get_json, require_tool, DaemonProcess, PrometheusProcess};
use crate::common::Harness;
use hubsync::scheduler::RunningDaemon;
use serde_json::Value;

/// Metric names that Prometheus makes itself, allowed in alerts.
const PROMETHEUS_NAMES: [&str; 1] = ["up"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboards() -> Vec<PathBuf> {
    let dir = repo().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "the overview and per-sync dashboards");
    files
}

fn alert_rules() -> PathBuf {
    repo().join("prometheus/alerts.yml")
}

/// Every `hubsync_*` name in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("hubsync_") {
        let before_ok = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric();
        let tail = &rest[at..];
        let len = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        if before_ok {
            names.insert(tail[..len].to_string());
        }
        rest = &tail[len..];
    }
    names
}

/// Sample names in a text exposition.
fn exposed_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or("").to_string())
        .collect()
}

/// A demo workload: contacts with a few invalid emails (rejections) and companies.
async fn demo_harness() -> Harness {
    let h = Harness::new().await;
    h.db.exec(
        "CREATE TABLE users AS SELECT i AS user_id,
                CASE WHEN i % 50 = 0 THEN 'not-an-email-' || i ELSE 'user' || i || '@example.com' END AS email,
                'First' || i AS first_name, 'Last' || i AS last_name
         FROM generate_series(1, 400) AS i;
         CREATE TABLE accounts AS SELECT i AS account_id, 'Company ' || i AS name, 'company' || i || '.example.com' AS domain
         FROM generate_series(1, 60) AS i",
    )
    .await;
    h
}

const DEMO_SYNCS: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, first_name, last_name FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email", first_name = "firstname", last_name = "lastname" }
schedule = { interval_secs = 2 }

[[syncs]]
name = "companies"
model = "SELECT account_id, name, domain FROM accounts"
primary_key = "account_id"
object = "companies"
match = { column = "domain", property = "domain" }
fields = { name = "name", domain = "domain" }
schedule = { cron = "*/2 * * * * *" }
"#;

/// Runs an in-process daemon until both demo syncs have run, and returns its `/metrics`.
async fn exposition_after_runs() -> String {
    let h = demo_harness().await;
    h.write_config(DEMO_SYNCS);
    let daemon = RunningDaemon::start(h.config(), "127.0.0.1:0".parse().unwrap()).await.expect("start");
    let base = format!("http://{}", daemon.local_addr());
    eventually("both syncs to succeed", Duration::from_secs(90), || {
        let base = base.clone();
        async move {
            let all = get_json(&format!("{base}/syncs")).await;
            let done = all.as_array()?.iter().all(|s| s["last_run"]["status"] == "succeeded");
            done.then_some(())
        }
    })
    .await;
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    daemon.begin_shutdown();
    daemon.wait().await;
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_a_dashboard_or_an_alert_names_is_exported() {
    let exposition = exposition_after_runs().await;
    let exposed = exposed_names(&exposition);
    let mut used = BTreeSet::new();
    let mut files = dashboards();
    files.push(alert_rules());
    let mut missing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for name in metric_names(&text) {
            if !exposed.contains(&name) {
                missing.push(format!("{}: {name}", file.file_name().unwrap().to_string_lossy()));
            }
            used.insert(name);
        }
    }
    assert!(missing.is_empty(), "metrics used but not exported:\n{}\n\nexported:\n{exposed:#?}", missing.join("\n"));
    assert!(used.len() >= 15, "the dashboards use the metrics: {used:?}");
    for name in PROMETHEUS_NAMES {
        assert!(!name.starts_with("hubsync_"));
    }

    // What the issue asks to be exported is there.
    for wanted in [
        "hubsync_runs_total",
        "hubsync_run_duration_seconds_bucket",
        "hubsync_sync_last_success_timestamp_seconds",
        "hubsync_rows_read_total",
        "hubsync_changes_total",
        "hubsync_rejected_records_total",
        "hubsync_hubspot_requests_total",
        "hubsync_hubspot_request_duration_seconds_bucket",
        "hubsync_hubspot_retries_total",
        "hubsync_rate_budget_wait_seconds_total",
        "hubsync_rate_budget_remaining_requests",
        "hubsync_daily_quota_remaining_requests",
        "hubsync_snapshot_rows",
        "hubsync_removals_held",
        "hubsync_build_info",
    ] {
        assert!(exposed.contains(wanted), "{wanted} is not exported");
    }
    for operation in ["create", "update", "skip", "associate", "list_add", "list_remove", "archive", "clear", "unlink"]
    {
        assert!(exposition.contains(&format!("operation=\"{operation}\"")), "operation {operation}");
    }
    assert!(
        exposition.lines().any(|l| l.starts_with("hubsync_rejected_records_total")
            && l.contains("error_code=\"invalid_email\"")
            && !l.ends_with(" 0")),
        "the invalid emails were counted by code:\n{exposition}"
    );
    // Labels are bounded: no email, record id or message ever becomes a label value.
    assert!(!exposition.contains("example.com") && !exposition.contains("not-an-email"), "{exposition}");
}

#[tokio::test(flavor = "multi_thread")]
async fn promtool_accepts_the_exposition_and_the_alert_rules() {
    let promtool = require_tool("promtool");
    let exposition = exposition_after_runs().await;
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}");

    let out = Command::new(&promtool).args(["check", "rules"]).arg(alert_rules()).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool check rules:\n{said}");
    assert!(said.contains("SUCCESS: 7 rules found"), "{said}");

    let out = Command::new(&promtool)
        .args(["check", "config"])
        .arg(repo().join("prometheus/prometheus.yml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "the example scrape config: {}", String::from_utf8_lossy(&out.stderr));
}

/// Every panel query of a dashboard (with Grafana's variables filled in), with its panel title.
fn panel_queries(dashboard: &Path) -> Vec<(String, String)> {
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
                if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                    out.push((title.to_string(), expr.to_string()));
                }
                for (key, child) in map {
                    if key != "templating" {
                        walk(child, title, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, title, out)),
            _ => {}
        }
    }
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dashboard).unwrap()).unwrap();
    let mut out = Vec::new();
    walk(&json, "", &mut out);
    out.into_iter().map(|(title, expr)| (title, fill_variables(&expr))).collect()
}

fn fill_variables(expr: &str) -> String {
    [
        ("${__rate_interval}", "30s"),
        ("$__rate_interval", "30s"),
        ("${__interval}", "15s"),
        ("$__interval", "15s"),
        ("${__range}", "5m"),
        ("$__range", "5m"),
        ("${sync}", "contacts"),
        ("$sync", "contacts"),
    ]
    .iter()
    .fold(expr.to_string(), |e, (var, value)| e.replace(var, value))
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scraping_a_daemon_answers_every_panel_and_alert_query() {
    require_tool("prometheus");
    let h = demo_harness().await;
    h.write_config(DEMO_SYNCS);
    let daemon = DaemonProcess::start(h.dir.path(), &h.config_path()).await;
    let target = daemon.url.trim_start_matches("http://").to_string();
    let prometheus = PrometheusProcess::start(&target, &[alert_rules()]).await;

    // The workload: rows keep changing, so every run sends updates.
    let changer = {
        let url = h.db.url.clone();
        tokio::spawn(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            for round in 0.. {
                let sql = format!(
                    "UPDATE users SET last_name = 'Last' || user_id || '-{round}' WHERE user_id % 4 = {}",
                    round % 4
                );
                if client.batch_execute(&sql).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        })
    };

    // Enough scrapes for rates over 30 s, and several runs of each sync.
    let prom = &prometheus;
    eventually("runs scraped by Prometheus", Duration::from_secs(120), || async move {
        let answer = prom.query("sum by (sync) (hubsync_runs_total{outcome=\"succeeded\"}) >= 3").await;
        let synced = answer["data"]["result"].as_array().map_or(0, Vec::len);
        let scraped = prom.query("count_over_time(up{job=\"hubsync\"}[1m]) >= 15").await;
        let long_enough = scraped["data"]["result"].as_array().is_some_and(|r| !r.is_empty());
        (synced == 2 && long_enough).then_some(())
    })
    .await;
    changer.abort();

    let mut failures = Vec::new();
    let mut panels = 0;
    for file in dashboards() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (title, expr) in panel_queries(&file) {
            panels += 1;
            let answer = prometheus.query(&expr).await;
            if answer["status"] != "success" {
                failures.push(format!("{name} / {title}: does not run: {expr}\n  {}", answer["error"]));
            } else if answer["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
                failures.push(format!("{name} / {title}: no data: {expr}"));
            }
        }
    }
    assert!(panels >= 25, "{panels} panel queries");

    let rules = get_json(&format!("{}/api/v1/rules", prometheus.url)).await;
    let mut alerts = 0;
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            alerts += 1;
            let name = rule["name"].as_str().unwrap_or("?");
            let expr = rule["query"].as_str().unwrap_or("");
            let answer = prometheus.query(expr).await;
            if answer["status"] != "success" {
                failures.push(format!("alert {name}: does not run: {expr}\n  {}", answer["error"]));
            }
            if rule["health"] == "err" {
                failures.push(format!("alert {name}: evaluation failed: {}", rule["lastError"]));
            }
        }
    }
    assert_eq!(alerts, 7, "every alert rule was loaded: {rules}");
    assert!(failures.is_empty(), "{}\n\nPrometheus log:\n{}", failures.join("\n"), prometheus.log_text());
}
