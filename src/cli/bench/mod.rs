//! `hubsync bench`: measures hubsync against the limits of the job (issue #6).
//!
//! It builds a synthetic PostgreSQL model of N contacts and N/100 companies with
//! `generate_series`, starts the HubSpot emulator as a separate process, and runs each measured
//! sync as a child process (`hubsync sync NAME --json`), so wall time, CPU time and peak memory
//! are the sync's own. Requests are counted per endpoint from the emulator's journal and
//! compared with the fewest that could carry the change. For each N: the companies' first sync, the
//! contacts' first sync, the floor (`COPY (model) TO STDOUT` discarded), a run with no change
//! and a run after 1% of the contacts changed. Then the cases at HubSpot's answer times
//! (`latency.rs`): a rate-limited first sync at each emulator latency (0, 300, 1,000 ms) and each
//! limit (100 and 190 per 10 s), and a first sync of 1,000,000 contacts at 300 ms with no rate
//! limit. It prints Markdown tables and writes the same figures as JSON.
//!
//! Files: `warehouse.rs` (the PostgreSQL model and the floor), `emulator.rs` (the emulator
//! process), `child.rs` (running a measured sync), `report.rs` (figures, targets, tables),
//! `latency.rs` (the cases at realistic latencies, their figures and tables).

mod child;
mod emulator;
mod latency;
mod report;
mod warehouse;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::CliError;
use child::SyncCommand;
use emulator::EmulatorProcess;
use report::{
    evaluate, evaluate_text_column, rss_mb, Checks, Fewest, FloorReport, Machine, Ratios, Report, Requests, RunReport,
    SizeReport, NO_CHANGE, ONE_PERCENT,
};
use warehouse::{
    measure_floor, BenchDatabase, COMPANIES_MODEL, CONTACTS_MODEL, CONTACTS_TEXT_MODEL, RATE_LIMITED_MODEL,
};

/// `hubsync bench`: what to measure. Inert options; `bench` runs them.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchOptions {
    /// Model sizes in contacts, comma-separated (each with one company per 100 contacts).
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_value = "100000,1000000")]
    pub rows: Vec<u64>,
    /// A PostgreSQL database URL; the benchmark creates a database with a random name on that
    /// server and drops it at the end, also on failure (plain connection; the user needs CREATEDB).
    #[arg(
        long,
        value_name = "URL",
        env = "HUBSYNC_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    pub postgres_url: String,
    /// Folder of the JSON results: `bench-<timestamp>.json` and `latest.json`.
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    pub out: PathBuf,
    /// Folder of the measured runs' configs, state files and logs (recreated for each case).
    #[arg(long, value_name = "DIR", default_value = "target/bench/work")]
    pub dir: PathBuf,
    /// Skip the rate-limited case.
    #[arg(long)]
    pub skip_rate_limited: bool,
    /// Skip the runs of the contacts model with a 128-character text column (each size is
    /// otherwise measured twice: the ten-column model, then with the text column).
    #[arg(long)]
    pub skip_text_column: bool,
    /// `state_memory_mb` of the measured syncs (unset: hubsync's default), to measure another
    /// memory budget.
    #[arg(long, value_name = "MIB")]
    pub state_memory_mb: Option<u64>,
    /// `state_threads` of the measured syncs (unset: hubsync's default).
    #[arg(long, value_name = "N")]
    pub state_threads: Option<usize>,
    /// Contacts sent in each cell of the rate-limited case (a first sync: one batch upsert per
    /// 100); more than 100 per request of the highest limit, so a window's worth is measured.
    #[arg(long, value_name = "N", default_value_t = 30_000)]
    pub rate_limited_rows: u64,
    /// Requests per rolling 10 s the emulator allows, and the account is set to, in the
    /// rate-limited case, comma-separated: one cell per limit and latency (100 Free/Starter,
    /// 190 Professional/Enterprise).
    #[arg(long, alias = "rate-limit", value_name = "N,...", value_delimiter = ',', default_value = "100,190")]
    pub rate_limits: Vec<u32>,
    /// The emulator's answer latencies in the rate-limited case, in ms, comma-separated (real
    /// HubSpot batch writes take hundreds of ms).
    #[arg(long, value_name = "MS,...", value_delimiter = ',', default_value = "0,300,1000")]
    pub latencies_ms: Vec<u64>,
    /// The account's `max_in_flight` in the rate-limited and throughput cases.
    #[arg(long, value_name = "N", default_value_t = hubspot_client::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Skip the throughput case (a large first sync at a realistic latency, no rate limit).
    #[arg(long)]
    pub skip_throughput: bool,
    /// Contacts in the throughput case's first sync.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub throughput_rows: u64,
    /// The emulator's answer latency in the throughput case, in ms.
    #[arg(long, value_name = "MS", default_value_t = 300)]
    pub throughput_latency_ms: u64,
    /// Timings of the floor and of the no-change run per size; the best of each counts (the
    /// no-change run's peak memory is the highest of its timings).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub repeats: u32,
}

/// The emulator ignores the token; the config still needs one.
const TOKEN: &str = "bench-token";

/// The config of the measured syncs, read with `${VAR}`s the child gets in its environment.
fn config_toml(max_requests_per_10s: u32, syncs: &str) -> String {
    config_toml_with(max_requests_per_10s, "", syncs)
}

/// `config_toml` with more lines (`key = value\n`) in the account's section.
fn config_toml_with(max_requests_per_10s: u32, account_extra: &str, syncs: &str) -> String {
    format!(
        r#"# Written by `hubsync bench`.
state_dir = "state"

[warehouses.pg]
type = "postgres"
url = "${{HUBSYNC_BENCH_WAREHOUSE}}"

[hubspot.bench]
token = "${{HUBSYNC_BENCH_TOKEN}}"
base_url = "${{HUBSYNC_BENCH_URL}}"
max_requests_per_10s = {max_requests_per_10s}
daily_limit = 1000000000
timeout_secs = 120
{account_extra}{syncs}"#
    )
}

const CONTACT_FIELDS: &str = r#"fields = { email = "email", first_name = "firstname", plan = "plan_tier", score = "score", lifetime_value = "lifetime_value", is_active = "active_user", signed_up = "signup_date", last_seen_at = "last_seen_at" }"#;

/// A config with `--state-memory-mb` and `--state-threads` at its top, when given.
fn with_state_budget(options: &BenchOptions, config: String) -> String {
    let mut top = String::new();
    if let Some(mb) = options.state_memory_mb {
        top.push_str(&format!("state_memory_mb = {mb}\n"));
    }
    if let Some(threads) = options.state_threads {
        top.push_str(&format!("state_threads = {threads}\n"));
    }
    top + &config
}

/// The contacts model a size is measured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelVariant {
    /// The ten columns of `CONTACTS_MODEL`.
    Standard,
    /// The same with `notes`, 128 characters of text mapped to a property.
    TextColumn,
}

impl ModelVariant {
    fn contacts_model(self) -> &'static str {
        match self {
            ModelVariant::Standard => CONTACTS_MODEL,
            ModelVariant::TextColumn => CONTACTS_TEXT_MODEL,
        }
    }

    /// The contacts sync's `fields`.
    fn fields(self) -> String {
        match self {
            ModelVariant::Standard => CONTACT_FIELDS.to_string(),
            ModelVariant::TextColumn => CONTACT_FIELDS.replace(" }", r#", notes = "bench_notes" }"#),
        }
    }

    /// The folder of a size's runs.
    fn dir_name(self, contacts: u64) -> String {
        match self {
            ModelVariant::Standard => format!("rows-{contacts}"),
            ModelVariant::TextColumn => format!("rows-{contacts}-text128"),
        }
    }
}

fn size_syncs(variant: ModelVariant) -> String {
    let contacts_model = variant.contacts_model();
    let contact_fields = variant.fields();
    format!(
        r#"
[[syncs]]
name = "companies"
model = "{COMPANIES_MODEL}"
primary_key = "company_id"
object = "companies"
match = {{ column = "company_id", property = "external_id" }}
fields = {{ name = "name", domain = "domain", employees = "numberofemployees" }}

[[syncs]]
name = "contacts"
model = "{contacts_model}"
primary_key = "id"
object = "contacts"
match = {{ column = "email", property = "email" }}
{contact_fields}
list = true

[[syncs.associations]]
to = "companies"
column = "company_id"
match = "external_id"
"#
    )
}

fn rate_limited_syncs() -> String {
    format!(
        r#"
[[syncs]]
name = "contacts"
model = "{RATE_LIMITED_MODEL}"
primary_key = "id"
object = "contacts"
match = {{ column = "email", property = "email" }}
{CONTACT_FIELDS}
"#
    )
}

/// The portal set-up a HubSpot admin would do once: the properties the syncs map to.
async fn set_up_portal(emulator: &EmulatorProcess) -> Result<(), CliError> {
    let prop = |name: &str, type_: &str, field_type: &str| json!({"name": name, "label": name, "type": type_, "fieldType": field_type, "groupName": "hubsync_bench"});
    let mut external_id = prop("external_id", "string", "text");
    external_id["hasUniqueValue"] = json!(true);
    emulator.create_property("companies", external_id).await?;
    let option =
        |value: &str, order: u32| json!({"label": value, "value": value, "displayOrder": order, "hidden": false});
    let mut plan = prop("plan_tier", "enumeration", "select");
    plan["options"] = json!([option("free", 0), option("pro", 1), option("enterprise", 2)]);
    emulator.create_property("contacts", plan).await?;
    emulator.create_property("contacts", prop("score", "number", "number")).await?;
    emulator.create_property("contacts", prop("lifetime_value", "number", "number")).await?;
    let mut active = prop("active_user", "bool", "booleancheckbox");
    active["options"] = json!([option("true", 0), option("false", 1)]);
    emulator.create_property("contacts", active).await?;
    emulator.create_property("contacts", prop("signup_date", "date", "date")).await?;
    emulator.create_property("contacts", prop("last_seen_at", "datetime", "date")).await?;
    emulator.create_property("contacts", prop("bench_notes", "string", "textarea")).await?;
    Ok(())
}

/// Starts an emulator process for one case, its log in `dir`, and sets up its portal.
async fn start_emulator(
    exe: &Path,
    dir: &Path,
    max_requests_per_10s: Option<u32>,
    latency_ms: u64,
) -> Result<EmulatorProcess, CliError> {
    std::fs::create_dir_all(dir).map_err(io_error(format!("cannot create {}", dir.display())))?;
    let emulator = EmulatorProcess::start(exe, &dir.join("emulator.log"), max_requests_per_10s, latency_ms, TOKEN)?;
    set_up_portal(&emulator).await?;
    Ok(emulator)
}

fn io_error(what: String) -> impl Fn(std::io::Error) -> CliError {
    move |e| CliError::Failed(format!("bench: {what}: {e}"))
}

/// Writes a config into a fresh folder and says how to run its syncs.
fn prepare(
    exe: &Path,
    dir: &Path,
    config: &str,
    db: &BenchDatabase,
    emulator: &EmulatorProcess,
) -> Result<SyncCommand, CliError> {
    let _ = std::fs::remove_dir_all(dir.join("state"));
    std::fs::create_dir_all(dir).map_err(io_error(format!("cannot create {}", dir.display())))?;
    let path = dir.join("hubsync.toml");
    std::fs::write(&path, config).map_err(io_error(format!("cannot write {}", path.display())))?;
    Ok(SyncCommand {
        exe: exe.to_path_buf(),
        config: path,
        env: vec![
            ("HUBSYNC_BENCH_WAREHOUSE".into(), db.url.clone()),
            ("HUBSYNC_BENCH_URL".into(), emulator.base_url().to_string()),
            ("HUBSYNC_BENCH_TOKEN".into(), TOKEN.into()),
        ],
    })
}

/// Runs one sync as a child process and counts what the emulator received meanwhile.
async fn measured(
    command: &SyncCommand,
    emulator: &EmulatorProcess,
    sync: &str,
    kind: &str,
    rows: u64,
    fewest: Fewest,
) -> Result<(RunReport, Vec<Duration>), CliError> {
    eprintln!("bench:   {sync}, {kind} ({rows} rows)…");
    let since = emulator.journal_next().await?;
    let log = command.config.with_file_name(format!("{sync}-{}.log", kind.replace([' ', '%'], "-")));
    let run = command.run(sync, &log).await?;
    let (journal, _) = emulator.journal_since(since).await?;
    let requests = Requests::count(journal.iter().map(|e| (e.method.as_str(), e.path.as_str(), e.status)));
    let arrivals = journal.iter().map(|e| e.received).collect();
    let wall_secs = run.wall.as_secs_f64();
    let report = RunReport {
        sync: sync.into(),
        kind: kind.into(),
        rows,
        wall_secs,
        cpu_secs: run.cpu.as_secs_f64(),
        rows_per_sec: rows as f64 / wall_secs.max(1e-9),
        peak_rss_mb: rss_mb(run.peak_rss_bytes),
        requests,
        fewest,
        ratios: Ratios::new(&requests, &fewest),
        summary: run.summary,
    };
    eprintln!(
        "bench:     {:.2} s, {:.0} MB peak, {} requests ({} records, {} associations, {} list, {} lookups, {} other)",
        report.wall_secs,
        report.peak_rss_mb,
        requests.total,
        requests.records,
        requests.associations,
        requests.list_memberships,
        requests.lookups,
        requests.other
    );
    Ok((report, arrivals))
}

/// Two timings of the same run: the faster one, with the higher peak memory and every request
/// either made.
fn fold_repeat(a: RunReport, b: RunReport) -> RunReport {
    let peak_rss_mb = a.peak_rss_mb.max(b.peak_rss_mb);
    let requests = Requests {
        records: a.requests.records + b.requests.records,
        associations: a.requests.associations + b.requests.associations,
        list_memberships: a.requests.list_memberships + b.requests.list_memberships,
        lookups: a.requests.lookups + b.requests.lookups,
        other: a.requests.other + b.requests.other,
        total: a.requests.total + b.requests.total,
        status_429: a.requests.status_429 + b.requests.status_429,
    };
    let mut best = if b.wall_secs < a.wall_secs { b } else { a };
    best.peak_rss_mb = peak_rss_mb;
    best.ratios = Ratios::new(&requests, &best.fewest);
    best.requests = requests;
    best
}

/// The floor of a model: the best of `runs` timings.
async fn floor(url: &str, model: &str, rows: u64, runs: u32) -> Result<FloorReport, CliError> {
    let mut timings = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs.max(1) {
        let f = measure_floor(url, model).await?;
        timings.push(f.secs);
        bytes = f.bytes;
    }
    let secs = timings.iter().copied().fold(f64::INFINITY, f64::min);
    eprintln!("bench:   floor: {secs:.2} s (best of {})", timings.len());
    Ok(FloorReport { rows, runs_secs: timings, secs, bytes, rows_per_sec: rows as f64 / secs.max(1e-9) })
}

/// Every run of one model size.
async fn measure_size(
    options: &BenchOptions,
    exe: &Path,
    db: &BenchDatabase,
    contacts: u64,
    variant: ModelVariant,
) -> Result<SizeReport, CliError> {
    let companies = (contacts / 100).max(1);
    let with_text = variant == ModelVariant::TextColumn;
    let described = if with_text { " (with a 128-character text column)" } else { "" };
    eprintln!("bench: {contacts} contacts{described}, {companies} companies: building the model…");
    db.build_model(contacts, companies, with_text).await?;
    let dir = options.dir.join(variant.dir_name(contacts));
    let emulator = start_emulator(exe, &dir, None, 0).await?;
    let config = with_state_budget(options, config_toml(1_000_000, &size_syncs(variant)));
    let command = prepare(exe, &dir, &config, db, &emulator)?;

    let mut runs = Vec::new();
    let first = |n| Fewest::new(n, n, n);
    runs.push(
        measured(&command, &emulator, "companies", "first sync", companies, Fewest::new(companies, 0, 0)).await?.0,
    );
    runs.push(measured(&command, &emulator, "contacts", "first sync", contacts, first(contacts)).await?.0);
    let floor = floor(&db.url, variant.contacts_model(), contacts, options.repeats).await?;
    let mut no_change: Option<RunReport> = None;
    for _ in 0..options.repeats.max(1) {
        let (run, _) = measured(&command, &emulator, "contacts", NO_CHANGE, contacts, Fewest::default()).await?;
        no_change = Some(match no_change {
            None => run,
            Some(best) => fold_repeat(best, run),
        });
    }
    let no_change = no_change.ok_or_else(|| CliError::Failed("bench: no no-change run".into()))?;
    let no_change_over_floor = no_change.wall_secs / floor.secs;
    runs.push(no_change);
    let changed = db.change_one_percent(companies).await?;
    let relinked = if companies > 1 { changed } else { 0 };
    runs.push(
        measured(&command, &emulator, "contacts", ONE_PERCENT, contacts, Fewest::new(changed, relinked, 0)).await?.0,
    );

    let held = emulator.counts("contacts,companies", "contacts:companies", "contacts").await?;
    let count = |v: &serde_json::Value| v.as_u64().unwrap_or(0) as usize;
    let checks = Checks {
        contacts: (count(&held["records"]["contacts"]), contacts),
        companies: (count(&held["records"]["companies"]), companies),
        associations: (count(&held["associations"]["contacts:companies"]), contacts + relinked),
        list_members: (count(&held["lists"]["contacts"]), contacts),
    };
    emulator.stop();
    if !checks.ok() {
        return Err(CliError::Failed(format!(
            "bench: after the runs of {contacts} contacts, HubSpot does not hold what the model says \
             (held, wanted): {checks:?}"
        )));
    }
    Ok(SizeReport { contacts, companies, runs, floor, no_change_over_floor, checks })
}

/// A `kB` field of a `/proc` file, e.g. `MemTotal` of `/proc/meminfo` or `VmHWM` of
/// `/proc/self/status`.
fn proc_kb(file: &str, field: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()))
        })
        .unwrap_or(0)
}

fn machine(postgres: String) -> Machine {
    let memory_kb = proc_kb("/proc/meminfo", "MemTotal");
    Machine {
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        memory_mb: memory_kb / 1024,
        postgres,
        hubsync: env!("CARGO_PKG_VERSION").to_string(),
        profile: if cfg!(debug_assertions) { "debug" } else { "release" }.to_string(),
        bench_process_peak_rss_mb: 0.0,
    }
}

async fn measure_all(options: &BenchOptions, exe: &Path, db: &BenchDatabase) -> Result<Report, CliError> {
    let started_at = chrono::Utc::now();
    let machine = machine(db.server_version().await);
    let mut sizes = Vec::new();
    for &contacts in &options.rows {
        sizes.push(measure_size(options, exe, db, contacts, ModelVariant::Standard).await?);
    }
    let mut text_column = Vec::new();
    if !options.skip_text_column {
        for &contacts in &options.rows {
            text_column.push(measure_size(options, exe, db, contacts, ModelVariant::TextColumn).await?);
        }
    }
    let rate_limited =
        if options.skip_rate_limited { Vec::new() } else { latency::measure_rate_limited(options, exe, db).await? };
    let throughput =
        if options.skip_throughput { None } else { Some(latency::measure_throughput(options, exe, db).await?) };
    let mut targets = evaluate(&sizes, &rate_limited);
    targets.extend(evaluate_text_column(&text_column));
    let mut machine = machine;
    machine.bench_process_peak_rss_mb = proc_kb("/proc/self/status", "VmHWM") as f64 / 1024.0;
    Ok(Report {
        started_at: started_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        machine,
        sizes,
        text_column,
        rate_limited,
        throughput,
        targets,
    })
}

/// Writes `bench-<timestamp>.json` and `latest.json` into `out`; returns the first's path.
fn write_json(report: &Report, out: &Path) -> Result<PathBuf, CliError> {
    std::fs::create_dir_all(out).map_err(io_error(format!("cannot create {}", out.display())))?;
    let text = serde_json::to_string_pretty(report).unwrap_or_default();
    let stamp = report.started_at.replace([':', '-'], "");
    let path = out.join(format!("bench-{stamp}.json"));
    std::fs::write(&path, &text).map_err(io_error(format!("cannot write {}", path.display())))?;
    let latest = out.join("latest.json");
    std::fs::write(&latest, &text).map_err(io_error(format!("cannot write {}", latest.display())))?;
    Ok(path)
}

/// `hubsync bench`.
pub async fn bench(options: &BenchOptions) -> Result<(), CliError> {
    if options.rows.is_empty() || options.rows.iter().any(|n| *n < 100) {
        return Err(CliError::Config("bench: --rows takes sizes of at least 100 contacts, e.g. 100000,1000000".into()));
    }
    if !options.skip_rate_limited {
        let highest = options.rate_limits.iter().copied().max().unwrap_or(0);
        if options.rate_limits.is_empty() || options.rate_limits.contains(&0) || options.latencies_ms.is_empty() {
            return Err(CliError::Config(
                "bench: the rate-limited case needs --rate-limits of at least 1 and --latencies-ms, e.g. \
                 --rate-limits 100,190 --latencies-ms 0,300,1000 (or --skip-rate-limited)"
                    .into(),
            ));
        }
        if options.rate_limited_rows <= u64::from(highest) * 100 {
            return Err(CliError::Config(format!(
                "bench: the rate-limited case needs more than {highest} requests to measure a rate: pass \
                 --rate-limited-rows above {}",
                u64::from(highest) * 100
            )));
        }
    }
    if options.max_in_flight == 0 {
        return Err(CliError::Config("bench: --max-in-flight must be at least 1".into()));
    }
    if !options.skip_throughput && options.throughput_rows < 100 {
        return Err(CliError::Config("bench: --throughput-rows takes at least 100 contacts".into()));
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Failed(format!("bench: cannot find the hubsync executable: {e}")))?;
    let db = BenchDatabase::create(&options.postgres_url).await?;
    eprintln!("bench: database {} created; it is dropped at the end.", db.name);
    let outcome = tokio::select! {
        report = measure_all(options, &exe, &db) => report,
        _ = tokio::signal::ctrl_c() => Err(CliError::Failed("bench: interrupted".into())),
    };
    let dropped = db.drop_database().await;
    let report = outcome?;
    dropped?;
    print!("{}", report.markdown());
    let path = write_json(&report, &options.out)?;
    eprintln!("bench: figures written to {} and latest.json beside it.", path.display());
    Ok(())
}
