//! The commands of the long-running side: `hubsync run` (the daemon itself), and `hubsync
//! trigger` and `hubsync status --daemon`, which talk to a running daemon over its admin API.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::output::Table;
use super::CliError;
use crate::auth::load_admin_token;
use crate::config::{Config, Secret};
use crate::scheduler::{DaemonError, RunningDaemon};

/// How often `trigger --wait` asks how the run is going.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

impl From<DaemonError> for CliError {
    fn from(e: DaemonError) -> Self {
        match e {
            DaemonError::Config(m) => CliError::Config(m),
            other => CliError::Failed(other.to_string()),
        }
    }
}

/// `hubsync run`: runs every sync on its schedule and serves the admin API until SIGTERM or
/// SIGINT. The first signal stops gracefully (exit 0), a second one exits at once.
pub async fn run(config_path: &Path, listen: Option<&str>) -> Result<(), CliError> {
    use tokio::signal::unix::{signal, SignalKind};

    let config = Config::load(config_path)?;
    let listen: SocketAddr = match listen {
        Some(text) => text.trim().parse().map_err(|_| {
            CliError::Config(format!("--listen: `{text}` is not an IP:port address, e.g. 127.0.0.1:8484"))
        })?,
        None => config.daemon.listen,
    };
    let signal_error = |e: std::io::Error| CliError::Failed(format!("cannot listen for signals: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut int = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let syncs = config.syncs.len();
    let daemon = RunningDaemon::start(config, listen).await?;
    eprintln!("hubsync: {syncs} sync(s); admin API on http://{}", daemon.local_addr());

    let first = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    eprintln!("hubsync: {first}: stopping after the batches in flight (send it again to exit at once)");
    daemon.begin_shutdown();
    tokio::select! {
        _ = daemon.wait() => Ok(()),
        code = async {
            tokio::select! {
                _ = term.recv() => 143,
                _ = int.recv() => 130,
            }
        } => {
            eprintln!("hubsync: second signal: exiting now; the next start keeps every acknowledged batch");
            std::process::exit(code);
        }
    }
}

/// Where the daemon is and how to talk to it.
struct DaemonClient {
    base: String,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl DaemonClient {
    /// The URL from `--daemon`, else from `daemon.listen` in the config; the token from the
    /// config, else `HUBSYNC_ADMIN_TOKEN`, else the one the daemon generated in the config's state
    /// directory (`<state_dir>/admin-token`).
    fn new(config_path: &Path, url: Option<&str>) -> Result<DaemonClient, CliError> {
        let config = match (Config::load(config_path), url) {
            (Ok(config), _) => Some(config),
            // With an explicit URL the config only brings the token: go on without it (the
            // daemon's 401 says what to set), e.g. on a machine without the warehouse's secrets.
            (Err(_), Some(_)) => None,
            (Err(e), _) => return Err(e.into()),
        };
        let base = match (url, &config) {
            (Some(url), _) => url.trim().trim_end_matches('/').to_string(),
            (None, Some(config)) => {
                let mut addr = config.daemon.listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(if addr.is_ipv4() {
                        [127, 0, 0, 1].into()
                    } else {
                        std::net::Ipv6Addr::LOCALHOST.into()
                    });
                }
                format!("http://{addr}")
            }
            (None, None) => unreachable!("a missing config without --daemon is an error above"),
        };
        if url::Url::parse(&base).is_err() {
            return Err(CliError::Config(format!("--daemon: `{base}` is not a URL, e.g. http://127.0.0.1:8484")));
        }
        let generated = |c: &Config| match load_admin_token(&c.state_dir) {
            Ok(token) => token,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the daemon's generated admin token.");
                None
            }
        };
        let token = config
            .as_ref()
            .and_then(|c| c.daemon.admin_token.clone())
            .or_else(|| std::env::var("HUBSYNC_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()).map(Secret::new))
            .or_else(|| config.as_ref().and_then(generated));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CliError::Failed(format!("cannot build an HTTP client: {e}")))?;
        Ok(DaemonClient { base, token, http })
    }

    fn unreachable(&self, e: &reqwest::Error) -> CliError {
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            cause = format!("{cause}: {s}");
            source = s.source();
        }
        CliError::Failed(format!(
            "cannot reach the hubsync daemon at {}: {cause} (start it with `hubsync run`, pass --daemon URL, or run \
             the sync in this process with `hubsync sync`)",
            self.base
        ))
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, CliError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let message = value.get("error").and_then(Value::as_str).unwrap_or("no reason given");
        let mut text = format!("the daemon at {} answered {status}: {message}", self.base);
        if let Some(known) = value.get("syncs").and_then(Value::as_array) {
            let names: Vec<&str> = known.iter().filter_map(Value::as_str).collect();
            text.push_str(&format!(" (defined syncs: {})", names.join(", ")));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            text.push_str(
                " (run this command as the daemon's user with its config, so it reads <state_dir>/admin-token, or set \
                 daemon.admin_token in the config or HUBSYNC_ADMIN_TOKEN)",
            );
        }
        Err(CliError::Failed(text))
    }
}

/// `hubsync trigger <sync>`: asks the daemon to run a sync now; with `--wait`, follows the run
/// to its end and fails if the run did not succeed.
pub async fn trigger(
    config_path: &Path,
    sync: &str,
    full: bool,
    allow_deletes: bool,
    wait: bool,
    daemon_url: Option<&str>,
) -> Result<(), CliError> {
    let client = DaemonClient::new(config_path, daemon_url)?;
    let path = format!("/syncs/{}", encode(sync));
    let body = if allow_deletes {
        serde_json::json!({ "full": full, "allow_deletes": true })
    } else {
        serde_json::json!({ "full": full })
    };
    let accepted = client.call(reqwest::Method::POST, &format!("{path}/run"), Some(body)).await?;
    let id = accepted.get("request_id").and_then(Value::as_u64).ok_or_else(|| {
        CliError::Failed(format!("the daemon at {} did not return a request id: {accepted}", client.base))
    })?;
    let kind = if full { "full resync" } else { "run" };
    println!("sync `{sync}`: {kind} requested (request {id}).");
    if !wait {
        return Ok(());
    }
    let mut last_state = String::from("queued");
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        let info = client.call(reqwest::Method::GET, &format!("{path}/requests/{id}"), None).await?;
        let state = info.get("state").and_then(Value::as_str).unwrap_or("unknown").to_string();
        if state == last_state {
            continue;
        }
        match state.as_str() {
            "running" => println!("sync `{sync}`: running."),
            "succeeded" => {
                println!("sync `{sync}`: {}", describe_run(info.get("run").unwrap_or(&Value::Null)));
                return Ok(());
            }
            "held" => {
                let run = info.get("run").unwrap_or(&Value::Null);
                println!("sync `{sync}`: {}", describe_run(run));
                let error = run.get("error").and_then(Value::as_str).unwrap_or("the delete guard held the removals");
                return Err(CliError::Held(format!("sync `{sync}`: {error}")));
            }
            "failed" | "cancelled" => {
                let run = info.get("run").unwrap_or(&Value::Null);
                println!("sync `{sync}`: {}", describe_run(run));
                let error = run.get("error").and_then(Value::as_str).unwrap_or("no reason given");
                return Err(CliError::Failed(format!("sync `{sync}`: the run {state}: {error}")));
            }
            "dropped" => {
                let error = info.get("error").and_then(Value::as_str).unwrap_or("no reason given");
                return Err(CliError::Failed(format!("sync `{sync}`: the run never started: {error}")));
            }
            _ => {}
        }
        last_state = state;
    }
}

/// `hubsync status --daemon URL`: the daemon's view of every sync (or one), as a table or JSON.
pub async fn daemon_status(config_path: &Path, url: &str, sync: Option<&str>, json: bool) -> Result<(), CliError> {
    let client = DaemonClient::new(config_path, Some(url))?;
    let value = match sync {
        Some(name) => client.call(reqwest::Method::GET, &format!("/syncs/{}", encode(name)), None).await?,
        None => client.call(reqwest::Method::GET, "/syncs", None).await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
        return Ok(());
    }
    let syncs = match &value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    print!("{}", render_status(&syncs));
    if let (Some(_), Some(one)) = (sync, syncs.first()) {
        print!("{}", render_details(one));
    }
    Ok(())
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

fn count(v: &Value, key: &str) -> u64 {
    v.get("counts").and_then(|c| c.get(key)).and_then(Value::as_u64).unwrap_or(0)
}

/// One line about a finished run (a `RunSummary` as JSON).
fn describe_run(run: &Value) -> String {
    format!(
        "{} in {:.1} s: {} rows read, {} created, {} updated, {} skipped, {} rejected, {} requests",
        text(run, "status"),
        run.get("duration_secs").and_then(Value::as_f64).unwrap_or(0.0),
        count(run, "rows_read"),
        count(run, "created"),
        count(run, "updated"),
        count(run, "skipped"),
        count(run, "rejected"),
        count(run, "requests"),
    )
}

/// The table `status --daemon` prints: one row per sync.
pub fn render_status(syncs: &[Value]) -> String {
    let mut table = Table::new(&[
        "sync", "state", "schedule", "next run", "last run", "finished", "rows", "written", "rejected", "snapshot",
    ]);
    for s in syncs {
        let schedule = s.get("schedule").map(|sc| text(sc, "description")).unwrap_or_else(|| "-".into());
        let last = s.get("runs").and_then(Value::as_array).and_then(|r| r.first()).cloned().unwrap_or(Value::Null);
        let (status, finished, rows, written) = if last.is_null() {
            ("never run".to_string(), "-".to_string(), "-".to_string(), "-".to_string())
        } else {
            (
                text(&last, "status"),
                text(&last, "finished_at"),
                count(&last, "rows_read").to_string(),
                (count(&last, "created") + count(&last, "updated")).to_string(),
            )
        };
        let state = match s.get("running").and_then(|r| r.get("trigger")).and_then(Value::as_str) {
            Some(trigger) => format!("running ({trigger})"),
            None => text(s, "state"),
        };
        table.row(vec![
            text(s, "sync"),
            state,
            schedule,
            text(s, "next_run_at"),
            status,
            finished,
            rows,
            written,
            text(s, "rejected_total"),
            text(s, "snapshot_rows"),
        ]);
    }
    table.render()
}

/// The runs and rejections of one sync, under the table.
fn render_details(s: &Value) -> String {
    let mut out = String::new();
    if let Some(runs) = s.get("runs").and_then(Value::as_array).filter(|r| !r.is_empty()) {
        let mut table =
            Table::new(&["run", "trigger", "started", "status", "rows", "created", "updated", "rejected", "error"]);
        for r in runs {
            table.row(vec![
                text(r, "run_id"),
                text(r, "trigger"),
                text(r, "started_at"),
                text(r, "status"),
                count(r, "rows_read").to_string(),
                count(r, "created").to_string(),
                count(r, "updated").to_string(),
                count(r, "rejected").to_string(),
                text(r, "error"),
            ]);
        }
        out.push_str("\nlast runs:\n");
        out.push_str(&table.render());
    }
    if let Some(rejections) = s.get("rejections").and_then(Value::as_array).filter(|r| !r.is_empty()) {
        let mut table = Table::new(&["key", "code", "attempts", "message"]);
        for r in rejections {
            table.row(vec![text(r, "pk"), text(r, "code"), text(r, "attempts"), text(r, "message")]);
        }
        out.push_str(&format!("\nrejected records ({} in all):\n", text(s, "rejected_total")));
        out.push_str(&table.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_table_shows_every_sync() {
        let syncs = vec![
            json!({"sync": "contacts", "state": "idle", "schedule": {"description": "every 60 s"},
                   "next_run_at": "2026-01-01T00:01:00Z", "rejected_total": 2, "snapshot_rows": 10,
                   "runs": [{"status": "succeeded", "finished_at": "2026-01-01 00:00:05",
                             "counts": {"rows_read": 10, "created": 7, "updated": 3}}]}),
            json!({"sync": "deals", "state": "running", "running": {"trigger": "api"}, "runs": []}),
        ];
        let out = render_status(&syncs);
        assert!(out.contains("contacts") && out.contains("every 60 s") && out.contains("succeeded"), "{out}");
        assert!(out.contains("running (api)") && out.contains("never run"), "{out}");
    }
}
