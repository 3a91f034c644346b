//! The emulator as a separate process (`hubsync emulator --port 0`), so that its memory is
//! neither the benchmark's nor inherited by the measured syncs: on Linux a child's peak memory
//! starts from its parent's (`fork` copies it, `exec` keeps the high-water mark), so the process
//! that starts the syncs must stay small. Set up over HubSpot's own properties API; read back
//! through the emulator's read-only `/_emulator/` endpoints.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::super::CliError;

/// One request as the emulator journaled it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Arrival time, since the emulator started.
    pub received: Duration,
}

/// A running `hubsync emulator` child process; stopped (SIGTERM) when dropped.
pub struct EmulatorProcess {
    child: Child,
    base_url: String,
    http: reqwest::Client,
    token: String,
}

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("bench: emulator: {what}: {e}"))
}

impl EmulatorProcess {
    /// Starts the emulator on a free port, with `max_requests_per_10s` as its burst limit (none
    /// when `None`), `latency_ms` added to every answer and no search limit; its log goes to
    /// `log`.
    pub fn start(
        exe: &Path,
        log: &Path,
        max_requests_per_10s: Option<u32>,
        latency_ms: u64,
        token: &str,
    ) -> Result<Self, CliError> {
        let stderr = std::fs::File::create(log).map_err(|e| failed(&format!("cannot create {}", log.display()), e))?;
        let mut command = Command::new(exe);
        command.args([
            "--log",
            "warn",
            "emulator",
            "--port",
            "0",
            "--search-requests-per-sec",
            "0",
            "--journal-capacity",
            "5000000",
        ]);
        // 0 turns the emulator's default burst limit (a real portal's) off.
        command.args(["--max-requests-per-10s", &max_requests_per_10s.unwrap_or(0).to_string()]);
        command.args(["--latency-ms", &latency_ms.to_string()]);
        command.env_remove("RUST_LOG").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
        let mut child = command.spawn().map_err(|e| failed("cannot start it", e))?;
        let stdout = child.stdout.take().ok_or_else(|| failed("no output", "stdout is not piped"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = match lines.next() {
            Some(Ok(line)) => line,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed("it stopped before listening", format!("see {}", log.display())));
            }
        };
        // Whatever else it prints is read and dropped, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let Some(base_url) = first.split_whitespace().find(|w| w.starts_with("http://")).map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed("unexpected first line", first));
        };
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(120)).build().map_err(|e| failed("http", e))?;
        Ok(EmulatorProcess { child, base_url, http, token: token.to_string() })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Creates a property as a HubSpot admin would (`POST /crm/properties/2026-03/{type}`).
    pub async fn create_property(&self, object_type: &str, body: Value) -> Result<(), CliError> {
        let url = format!("{}/crm/properties/2026-03/{object_type}", self.base_url);
        let reply =
            self.http.post(&url).bearer_auth(&self.token).json(&body).send().await.map_err(|e| failed("setup", e))?;
        if !reply.status().is_success() {
            let status = reply.status();
            let text = reply.text().await.unwrap_or_default();
            return Err(failed("cannot create a property", format!("{status}: {text}")));
        }
        Ok(())
    }

    async fn get(&self, path_and_query: &str) -> Result<Value, CliError> {
        let url = format!("{}{path_and_query}", self.base_url);
        let reply = self.http.get(&url).send().await.map_err(|e| failed("inspect", e))?;
        reply.json().await.map_err(|e| failed("inspect", e))
    }

    /// The requests numbered `since` and after, and the number the next one will get.
    pub async fn journal_since(&self, since: u64) -> Result<(Vec<Request>, u64), CliError> {
        let body = self.get(&format!("/_emulator/journal?since={since}")).await?;
        let next = body["next"].as_u64().unwrap_or(0);
        let entries = body["entries"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| Request {
                        method: e["method"].as_str().unwrap_or_default().to_string(),
                        path: e["path"].as_str().unwrap_or_default().to_string(),
                        status: e["status"].as_u64().unwrap_or(0) as u16,
                        received: Duration::from_micros(e["received_us"].as_u64().unwrap_or(0)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok((entries, next))
    }

    /// The number the next journaled request will get.
    pub async fn journal_next(&self) -> Result<u64, CliError> {
        Ok(self.journal_since(u64::MAX).await?.1)
    }

    /// Records per type, associations per pair (`from:to`) and members per list name.
    pub async fn counts(&self, records: &str, associations: &str, lists: &str) -> Result<Value, CliError> {
        self.get(&format!("/_emulator/counts?records={records}&associations={associations}&lists={lists}")).await
    }

    /// Stops the process (SIGTERM, as Ctrl-C would) and waits for it.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: `kill` only sends a signal, to the child this handle started and has not
            // reaped yet (`try_wait` just said it is running), so the pid is still its.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = self.child.wait();
        }
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}
