//! The commands behind `hubsync`'s command line: each loads the config, does one job, prints
//! plain words or JSON, and maps failures to an exit code (2 for a bad config, 1 otherwise).

mod auth;
mod bench;
mod daemon;
mod demo;
mod output;

use std::path::Path;

pub use crate::accounts::Accounts;
pub use auth::{auth_login, auth_status, auth_token};
pub use bench::{bench, BenchOptions};
pub use daemon::{daemon_status, run, trigger};
pub use demo::{demo, DEMO_LATENCY_MS};

use crate::config::{Config, ConfigError};
use crate::state::{StateLimits, StateReader, StateStore};
use crate::sync::{self, RunOptions, RunStatus, Severity};
use output::{print_plan, print_status, print_summary, StatusView, Table};

/// How a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The config (or what it points to) is wrong: exit code 2.
    #[error("{0}")]
    Config(String),
    /// The command could not do its job: exit code 1.
    #[error("{0}")]
    Failed(String),
    /// A run sent everything but its removals, which the delete guard held: exit code 3.
    #[error("{0}")]
    Held(String),
}

/// The exit code of a run whose removals the delete guard held.
pub const EXIT_HELD: u8 = 3;

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) => 2,
            CliError::Failed(_) => 1,
            CliError::Held(_) => EXIT_HELD,
        }
    }
}

impl From<crate::accounts::AccountError> for CliError {
    fn from(e: crate::accounts::AccountError) -> Self {
        CliError::Config(e.0)
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::Config(e.to_string())
    }
}

impl From<sync::SyncError> for CliError {
    fn from(e: sync::SyncError) -> Self {
        match e {
            sync::SyncError::Config { .. } => CliError::Config(e.to_string()),
            other => CliError::Failed(other.to_string()),
        }
    }
}

impl From<crate::state::StateError> for CliError {
    fn from(e: crate::state::StateError) -> Self {
        CliError::Failed(e.to_string())
    }
}

/// Sets up logging to stderr; `filter` is an `EnvFilter` directive, overridden by `RUST_LOG`.
pub fn init_logging(filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    let filter =
        tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// `hubsync validate`.
pub async fn validate(config_path: &Path) -> Result<(), CliError> {
    let config = Config::load(config_path)?;
    let accounts = Accounts::build(&config)?;
    let mut errors = 0;
    for spec in &config.syncs {
        let client = accounts.client(&spec.hubspot)?;
        let findings = sync::validate_sync(&config, spec, client).await;
        if findings.is_empty() {
            println!(
                "ok       sync `{}`: {} -> {} ({} fields)",
                spec.name,
                spec.warehouse,
                spec.object,
                spec.fields.len()
            );
        }
        for f in findings {
            let label = match f.severity {
                Severity::Error => {
                    errors += 1;
                    "error  "
                }
                Severity::Warning => "warning",
            };
            println!("{label}  {}: {}: {}", config.path.display(), f.key, f.message);
        }
    }
    if errors > 0 {
        return Err(CliError::Config(format!(
            "{errors} problem(s) in {}; fix them before running a sync",
            config.path.display()
        )));
    }
    println!("{}: {} sync(s) valid.", config.path.display(), config.syncs.len());
    Ok(())
}

/// `hubsync plan <sync>`.
pub async fn plan(config_path: &Path, name: &str, full: bool, json: bool) -> Result<(), CliError> {
    let config = Config::load(config_path)?;
    let spec = config.require_sync(name)?;
    let accounts = Accounts::build(&config)?;
    let plan = sync::plan_sync(&config, spec, accounts.client(&spec.hubspot)?, full).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&plan).unwrap_or_default());
    } else {
        print_plan(&plan);
    }
    Ok(())
}

/// How `hubsync sync` was asked to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncFlags {
    pub full: bool,
    pub retry_rejected: bool,
    pub allow_deletes: bool,
    pub json: bool,
}

/// `hubsync sync <sync>...`: runs the syncs one after another; fails if any run failed (exit
/// code 1), or, when none failed, if the delete guard held a run's removals (exit code 3).
pub async fn sync(config_path: &Path, names: &[String], all: bool, flags: SyncFlags) -> Result<(), CliError> {
    let SyncFlags { full, retry_rejected, allow_deletes, json } = flags;
    let config = Config::load(config_path)?;
    let specs: Vec<_> = if all {
        config.syncs.iter().collect()
    } else if names.is_empty() {
        let known: Vec<&str> = config.syncs.iter().map(|s| s.name.as_str()).collect();
        return Err(CliError::Config(format!(
            "name the sync(s) to run, or pass --all (defined syncs: {})",
            known.join(", ")
        )));
    } else {
        names.iter().map(|n| config.require_sync(n)).collect::<Result<_, _>>()?
    };
    let accounts = Accounts::build(&config)?;
    let stop = stop_on_signal()?;
    let stopped = || stop.load(std::sync::atomic::Ordering::SeqCst);
    let (mut failed, mut held) = (Vec::new(), Vec::new());
    for spec in specs {
        if stopped() {
            // A graceful stop is not a failure: the next run goes on from here.
            eprintln!("hubsync: sync `{}` not started: stopped by a signal", spec.name);
            continue;
        }
        let options = RunOptions {
            full,
            trigger: "cli".into(),
            stop: Some(stop.clone()),
            progress: !json,
            retry_rejected,
            allow_deletes,
        };
        let summary = sync::run_sync(&config, spec, accounts.client(&spec.hubspot)?, &options).await?;
        if json {
            println!("{}", serde_json::to_string(&summary).unwrap_or_default());
        } else {
            print_summary(&summary);
        }
        let stopped_by_signal = summary.status == RunStatus::Cancelled && stopped();
        match summary.status {
            RunStatus::Succeeded => {}
            RunStatus::Held => held.push(format!("{}: {}", summary.sync, summary.error.unwrap_or_default())),
            _ if stopped_by_signal => {}
            _ => failed.push(format!("{}: {}", summary.sync, summary.error.unwrap_or_default())),
        }
    }
    if !failed.is_empty() {
        Err(CliError::Failed(format!("sync failed: {}", failed.join("; "))))
    } else if !held.is_empty() {
        Err(CliError::Held(held.join("; ")))
    } else {
        Ok(())
    }
}

/// A flag set by the first SIGTERM or SIGINT: the run in progress cancels its warehouse query,
/// or starts no new request, waits for the answers of those in flight and journals them, and
/// stops; the command then exits 0. A second signal exits at once.
fn stop_on_signal() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>, CliError> {
    use tokio::signal::unix::{signal, SignalKind};

    let signal_error = |e: std::io::Error| CliError::Failed(format!("cannot listen for signals: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut int = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        eprintln!("hubsync: {first}: stopping after the requests in flight (send it again to exit at once)");
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        let code = tokio::select! {
            _ = term.recv() => 143,
            _ = int.recv() => 130,
        };
        eprintln!("hubsync: second signal: exiting now; the next run keeps every acknowledged batch");
        std::process::exit(code);
    });
    Ok(stop)
}

/// `hubsync status [<sync>]`: reads the state files only (read-only), never HubSpot.
pub fn status(config_path: &Path, name: Option<&str>, limit: usize, json: bool) -> Result<(), CliError> {
    let config = Config::load(config_path)?;
    let specs: Vec<_> = match name {
        Some(n) => vec![config.require_sync(n)?],
        None => config.syncs.iter().collect(),
    };
    let mut all = Vec::new();
    for spec in specs {
        if let Some(value) = status_of(&config, spec, limit, json)? {
            all.push(value);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    }
    Ok(())
}

/// Prints one sync's status, or returns it as JSON.
pub(crate) fn status_of(
    config: &Config,
    spec: &crate::config::SyncSpec,
    limit: usize,
    json: bool,
) -> Result<Option<serde_json::Value>, CliError> {
    let path = config.state_path(spec);
    if !path.exists() {
        if !json {
            println!("sync `{}`: never run (no state file at {})\n", spec.name, path.display());
        }
        return Ok(None);
    }
    // Read-only: a status never creates, migrates or merges the file, so it cannot disturb a
    // run (and works on a file a newer hubsync wrote).
    let store = StateReader::open_read_only(&path)?;
    let runs = store.runs(limit)?;
    let (rejections, rejected_total) = store.rejections(limit)?;
    let (invalid, invalid_total) = store.invalid_rows(limit)?;
    let snapshot_rows = store.snapshot_rows()?;
    let (link_failures, link_failures_total) = store.link_failures(limit)?;
    let pending_creates = store.pending_creates()?.len() as u64;
    if json {
        return Ok(Some(serde_json::json!({
            "sync": spec.name, "snapshot_rows": snapshot_rows, "runs": runs, "pending_creates": pending_creates,
            "rejected_total": rejected_total, "rejections": rejections,
            "invalid_total": invalid_total, "invalid_rows": invalid,
            "association_failures_total": link_failures_total, "association_failures": link_failures,
        })));
    }
    print_status(&StatusView {
        sync: &spec.name,
        snapshot_rows,
        runs: &runs,
        rejections: &rejections,
        rejected_total,
        invalid: &invalid,
        invalid_total,
        link_failures: &link_failures,
        link_failures_total,
        pending_creates,
    });
    Ok(None)
}

/// `hubsync fields <sync>`: the object's properties, fresh from the Properties API.
pub async fn fields(config_path: &Path, name: &str) -> Result<(), CliError> {
    let config = Config::load(config_path)?;
    let spec = config.require_sync(name)?;
    let accounts = Accounts::build(&config)?;
    let meta = sync::resolve_object(accounts.client(&spec.hubspot)?, spec).await?;
    let mut table = Table::new(&["property", "label", "type", "field type", "unique", "read-only", "mapped from"]);
    let mut properties = meta.properties.clone();
    properties.sort_by(|a, b| a.name.cmp(&b.name));
    for p in &properties {
        let mapped = spec.fields.iter().find(|(_, prop)| *prop == &p.name).map(|(c, _)| c.as_str()).unwrap_or("");
        let unique = if meta.is_unique(&p.name) { "yes" } else { "" };
        let read_only = if p.read_only_value { "yes" } else { "" };
        table.row(vec![
            p.name.clone(),
            p.label.clone(),
            p.type_.clone(),
            p.field_type.clone(),
            unique.into(),
            read_only.into(),
            mapped.into(),
        ]);
    }
    println!("{} ({}), {} properties:", spec.object, meta.type_id, properties.len());
    table.print();
    Ok(())
}

/// `hubsync reset <sync>`.
pub fn reset(config_path: &Path, name: &str) -> Result<(), CliError> {
    let config = Config::load(config_path)?;
    let spec = config.require_sync(name)?;
    let mut store = StateStore::open_with(&config.state_path(spec), &StateLimits::of(&config))?;
    store.reset_snapshot()?;
    println!("sync `{name}`: snapshot forgotten; the next run compares against nothing (HubSpot ids are kept).");
    Ok(())
}
