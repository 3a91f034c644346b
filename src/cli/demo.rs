//! `hubsync demo`: the whole product on embedded defaults. It writes a sample DuckDB warehouse,
//! starts the HubSpot emulator on loopback, runs real syncs, changes some rows, runs again and
//! prints what was sent each time.

use std::path::Path;

use serde_json::json;

use super::{Accounts, CliError};
use crate::config::Config;
use crate::sync::{self, RunOptions};
use hubspot_emulator::{Emulator, EmulatorConfig, FaultConfig};

fn failed(what: &str) -> impl Fn(duckdb::Error) -> CliError + '_ {
    move |e| CliError::Failed(format!("demo: {what}: {e}"))
}

/// Creates (or re-creates) the sample warehouse.
fn write_warehouse(path: &Path, contacts: u32) -> Result<(), CliError> {
    let _ = std::fs::remove_file(path);
    let conn = duckdb::Connection::open(path).map_err(failed("cannot create the warehouse"))?;
    let companies = (contacts / 10).max(10);
    conn.execute_batch(&format!(
        "CREATE TABLE companies AS
           SELECT i AS company_id, 'Company ' || i AS name, 'company' || i || '.example.com' AS domain,
                  10 + (i * 37) % 5000 AS employees
           FROM range(1, {companies} + 1) t(i);
         CREATE TABLE users AS
           SELECT i AS user_id,
                  'user' || i || '@example.com' AS email,
                  (['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken'])[1 + i % 8] AS first_name,
                  (['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Allen','Thompson'])[1 + (i // 8) % 8] AS last_name,
                  (['free','pro','enterprise'])[1 + i % 3] AS plan,
                  DATE '2024-01-01' + CAST(i % 700 AS INTEGER) AS signed_up,
                  CAST(TIMESTAMP '2026-01-01 00:00:00' + to_minutes(CAST(i * 17 AS BIGINT)) AS TIMESTAMPTZ) AS last_seen_at,
                  CAST(i * 1.25 AS DECIMAL(12,2)) AS lifetime_value,
                  i % 5 <> 0 AS is_active,
                  1 + i % {companies} AS company_id
           FROM range(1, {contacts} + 1) t(i);"
    ))
    .map_err(failed("cannot fill the warehouse"))?;
    Ok(())
}

/// Changes the warehouse the way a day of business would, including some bad rows.
fn change_warehouse(path: &Path, contacts: u32) -> Result<(), CliError> {
    let conn = duckdb::Connection::open(path).map_err(failed("cannot open the warehouse"))?;
    conn.execute_batch(&format!(
        "UPDATE users SET plan = 'enterprise', lifetime_value = lifetime_value + 100 WHERE user_id % 100 = 0;
         INSERT INTO users
           SELECT i, 'new' || i || '@example.com', 'New', 'Customer', 'free', DATE '2026-11-26',
                  TIMESTAMPTZ '2026-11-26 09:30:00+00', 0, true, 1
           FROM range({contacts} + 1, {contacts} + 21) t(i);
         INSERT INTO users VALUES
           ({contacts} + 21, 'not-an-email', 'Bad', 'Email', 'free', DATE '2026-11-26', NULL, 0, true, 1),
           ({contacts} + 22, 'also bad@', 'Bad', 'Email', 'pro', DATE '2026-11-26', NULL, 0, true, 1),
           (NULL, 'nokey@example.com', 'No', 'Key', 'free', DATE '2026-11-26', NULL, 0, true, 1);"
    ))
    .map_err(failed("cannot change the warehouse"))?;
    Ok(())
}

const CONFIG: &str = r#"# hubsync demo config: a DuckDB warehouse synced to a local HubSpot emulator.
state_dir = "state"

[warehouses.local]
type = "duckdb"
path = "warehouse.duckdb"

[hubspot.demo]
token = "${HUBSYNC_DEMO_TOKEN}"
base_url = "${HUBSYNC_DEMO_URL}"

[[syncs]]
name = "companies"
model = "SELECT company_id, name, domain, employees FROM companies"
primary_key = "company_id"
object = "companies"
match = { column = "company_id", property = "external_id" }
fields = { name = "name", domain = "domain", employees = "numberofemployees" }

[[syncs]]
name = "contacts"
model = "models/contacts.sql"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email", first_name = "firstname", last_name = "lastname", plan = "plan_tier", signed_up = "signup_date", last_seen_at = "last_seen_at", lifetime_value = "lifetime_value", is_active = "active_user" }
"#;

const CONTACTS_MODEL: &str = "-- Contacts: one row per user.
SELECT user_id, email, first_name, last_name, plan, signed_up, last_seen_at, lifetime_value, is_active
FROM users
";

/// The portal set-up a HubSpot admin would do once: the custom properties the syncs map to.
fn set_up_portal(emulator: &Emulator) {
    let prop = |name: &str, label: &str, type_: &str, field_type: &str| json!({"name": name, "label": label, "type": type_, "fieldType": field_type, "groupName": "hubsync_demo"});
    emulator.create_property(
        "companies",
        json!({"name": "external_id", "label": "External ID", "type": "string", "fieldType": "text",
               "groupName": "hubsync_demo", "hasUniqueValue": true}),
    );
    let mut plan = prop("plan_tier", "Plan tier", "enumeration", "select");
    plan["options"] = json!([
        {"label": "Free", "value": "free", "displayOrder": 0, "hidden": false},
        {"label": "Pro", "value": "pro", "displayOrder": 1, "hidden": false},
        {"label": "Enterprise", "value": "enterprise", "displayOrder": 2, "hidden": false}
    ]);
    emulator.create_property("contacts", plan);
    emulator.create_property("contacts", prop("signup_date", "Signup date", "date", "date"));
    emulator.create_property("contacts", prop("last_seen_at", "Last seen", "datetime", "date"));
    emulator.create_property("contacts", prop("lifetime_value", "Lifetime value", "number", "number"));
    let mut active = prop("active_user", "Active user", "bool", "booleancheckbox");
    active["options"] = json!([
        {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": false},
        {"label": "No", "value": "false", "displayOrder": 1, "hidden": false}
    ]);
    emulator.create_property("contacts", active);
}

fn requests_by_kind(emulator: &Emulator) -> String {
    let kinds = [
        ("batch upsert", "POST", "/batch/upsert"),
        ("batch update", "POST", "/batch/update"),
        ("batch create", "POST", "/batch/create"),
        ("batch read", "POST", "/batch/read"),
        ("search", "POST", "/search"),
        ("properties", "GET", "/properties/"),
    ];
    let parts: Vec<String> = kinds
        .iter()
        .map(|(label, method, path)| (label, emulator.count_requests(method, path)))
        .filter(|(_, n)| *n > 0)
        .map(|(label, n)| format!("{n} {label}"))
        .collect();
    if parts.is_empty() {
        "no requests".to_string()
    } else {
        parts.join(", ")
    }
}

async fn run_all(config: &Config, accounts: &Accounts, emulator: &Emulator, title: &str) -> Result<(), CliError> {
    println!("\n== {title} ==");
    for spec in &config.syncs {
        emulator.clear_journal();
        let options = RunOptions { trigger: "demo".into(), ..RunOptions::default() };
        let summary = sync::run_sync(config, spec, accounts.client(&spec.hubspot)?, &options).await?;
        super::output::print_summary(&summary);
        println!("  sent: {}", requests_by_kind(emulator));
        if let Some(error) = summary.error {
            return Err(CliError::Failed(format!("demo: sync `{}` failed: {error}", spec.name)));
        }
    }
    Ok(())
}

/// The file that marks a folder as made by `hubsync demo`, which may then recreate it.
pub const DEMO_MARKER: &str = ".hubsync-demo";

/// Makes sure the demo only ever recreates its own folder: a new or empty one, or one an earlier
/// demo made (it holds [`DEMO_MARKER`]). Anything else may be a real project, whose config and
/// `state/` (credentials included) the demo would overwrite.
fn claim_dir(dir: &Path) -> Result<(), CliError> {
    let io = |e: std::io::Error| CliError::Failed(format!("demo: cannot prepare {}: {e}", dir.display()));
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            let empty = entries.next().is_none();
            if !empty && !dir.join(DEMO_MARKER).is_file() {
                return Err(CliError::Config(format!(
                    "demo: {} is not empty and was not made by `hubsync demo` (it has no {DEMO_MARKER} file); the \
                     demo rewrites its folder's config, warehouse and state/, so it leaves this one alone. Pass a \
                     new or empty folder with --dir",
                    dir.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory || dir.is_file() => {
            return Err(CliError::Config(format!(
                "demo: {} is a file, not a folder; pass a folder with --dir",
                dir.display()
            )))
        }
        Err(e) => return Err(io(e)),
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(
        dir.join(DEMO_MARKER),
        "Made by `hubsync demo`, which recreates this folder's config, warehouse and state/ on every run.\n",
    )
    .map_err(io)
}

/// The emulator's answer latency in the demo unless `--latency-ms` says otherwise: real
/// HubSpot answers a batch write in a few hundred milliseconds.
pub const DEMO_LATENCY_MS: u64 = 200;

/// `hubsync demo`.
pub async fn demo(dir: &Path, contacts: u32, latency_ms: u64) -> Result<(), CliError> {
    let io = |e: std::io::Error| CliError::Failed(format!("demo: cannot prepare {}: {e}", dir.display()));
    claim_dir(dir)?;
    std::fs::create_dir_all(dir.join("models")).map_err(io)?;
    let _ = std::fs::remove_dir_all(dir.join("state"));
    let warehouse = dir.join("warehouse.duckdb");
    write_warehouse(&warehouse, contacts)?;
    std::fs::write(dir.join("models/contacts.sql"), CONTACTS_MODEL).map_err(io)?;
    std::fs::write(dir.join("hubsync.toml"), CONFIG).map_err(io)?;

    let emulator = Emulator::start(EmulatorConfig {
        max_requests_per_10s: Some(100),
        daily_limit: Some(250_000),
        faults: FaultConfig { latency_ms, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    })
    .await
    .map_err(|e| CliError::Failed(format!("demo: cannot start the HubSpot emulator: {e:#}")))?;
    set_up_portal(&emulator);
    println!(
        "HubSpot emulator listening on {} (100 requests per 10 s, like a Starter portal; answers after {latency_ms} ms).",
        emulator.base_url()
    );
    println!("Sample warehouse: {} ({contacts} users, {} companies).", warehouse.display(), (contacts / 10).max(10));

    let url = emulator.base_url();
    let env = move |name: &str| match name {
        "HUBSYNC_DEMO_TOKEN" => Some("demo-token".to_string()),
        "HUBSYNC_DEMO_URL" => Some(url.clone()),
        other => std::env::var(other).ok(),
    };
    let config = Config::load_with_env(&dir.join("hubsync.toml"), &env)?;
    let accounts = Accounts::build(&config)?;

    println!("\n== hubsync validate ==");
    for spec in &config.syncs {
        let findings = sync::validate_sync(&config, spec, accounts.client(&spec.hubspot)?).await;
        if findings.is_empty() {
            println!("sync `{}` is valid.", spec.name);
        }
        for f in findings {
            println!("{:?}: {}: {}", f.severity, f.key, f.message);
        }
    }

    run_all(&config, &accounts, &emulator, "run 1: first sync, everything is new").await?;

    change_warehouse(&warehouse, contacts)?;
    println!("\nChanged the warehouse: 1% of users changed plan and value, 20 users signed up, 2 users have invalid emails, 1 row has no key.");
    let contacts_sync = config.require_sync("contacts")?;
    let plan = sync::plan_sync(&config, contacts_sync, accounts.client(&contacts_sync.hubspot)?, false).await?;
    println!("\n== hubsync plan contacts ==");
    super::output::print_plan(&plan);

    run_all(&config, &accounts, &emulator, "run 2: only the changes are sent").await?;
    run_all(
        &config,
        &accounts,
        &emulator,
        "run 3: nothing changed; the rejected records wait for their rows to change, so nothing is sent",
    )
    .await?;

    println!("\n== hubsync status contacts ==");
    super::status_of(&config, contacts_sync, 5, false)?;
    println!(
        "The emulator now holds {} contacts and {} companies.",
        emulator.record_count("contacts"),
        emulator.record_count("companies")
    );
    println!(
        "Everything is in {}: the config, the warehouse, and one DuckDB state file per sync under state/ \
         (open one with any DuckDB client to query the snapshot, rejections and runs).",
        dir.display()
    );
    emulator.shutdown().await;
    Ok(())
}
