//! Helpers for tests of the long-running side: the daemon as a child process, signals, the
//! admin API over HTTP, and a real Prometheus.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().unwrap().port()
}

/// `hubsync run` as a child process, killed when dropped.
pub struct DaemonProcess {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl DaemonProcess {
    /// Starts `hubsync run` in `dir` and waits until `/readyz` answers 200.
    pub async fn start(dir: &Path, config: &Path) -> DaemonProcess {
        let port = free_port();
        let log = dir.join(format!("daemon-{port}.log"));
        let file = std::fs::File::create(&log).expect("daemon log");
        let child = Command::new(env!("CARGO_BIN_EXE_hubsync"))
            .current_dir(dir)
            .arg("--config")
            .arg(config)
            .args(["--log", "info", "run", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start hubsync run");
        let mut daemon = DaemonProcess { child, url: format!("http://127.0.0.1:{port}"), log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("hubsync run exited with {status} before it was ready:\n{}", daemon.log_text());
            }
            if let Ok(r) = reqwest::get(format!("{}/readyz", daemon.url)).await {
                if r.status().is_success() {
                    return daemon;
                }
            }
            assert!(Instant::now() < deadline, "hubsync run not ready in 30 s:\n{}", daemon.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "hubsync run did not exit in {timeout:?}:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GET a JSON document.
pub async fn get_json(url: &str) -> Value {
    let r = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "GET {url}: {status} {body}");
    body
}

/// POST a JSON body; returns the status and the JSON answer.
pub async fn post_json(url: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Follows a run request of the admin API to its end; returns the request's final JSON.
pub async fn wait_request(base: &str, sync: &str, id: u64, timeout: Duration) -> Value {
    let url = format!("{base}/syncs/{sync}/requests/{id}");
    eventually(&format!("request {id} of {sync}"), timeout, || {
        let url = url.clone();
        async move {
            let info = get_json(&url).await;
            let state = info["state"].as_str().unwrap_or("").to_string();
            (!matches!(state.as_str(), "queued" | "running")).then_some(info)
        }
    })
    .await
}

/// Finds a tool on PATH, or fails the test saying how to install it.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` is not installed, and this test needs it. Install Prometheus (Debian: `apt-get install prometheus`, \
         or run scripts/install-prometheus.sh)."
    );
}

/// A real Prometheus on a free loopback port with its own storage, killed when dropped.
pub struct PrometheusProcess {
    pub child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl PrometheusProcess {
    /// Starts Prometheus scraping `target` (`host:port`) every second, with `rule_files`.
    pub async fn start(target: &str, rule_files: &[PathBuf]) -> PrometheusProcess {
        let binary = require_tool("prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let rules: Vec<String> = rule_files.iter().map(|p| format!("  - {}", p.display())).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{}\nscrape_configs:\n  \
             - job_name: hubsync\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules.join("\n")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start prometheus");
        let mut prometheus = PrometheusProcess { child, url: format!("http://127.0.0.1:{port}"), dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = prometheus.child.try_wait().unwrap() {
                panic!("prometheus exited with {status}:\n{}", prometheus.log_text());
            }
            if let Ok(r) = reqwest::get(format!("{}/-/ready", prometheus.url)).await {
                if r.status().is_success() {
                    return prometheus;
                }
            }
            assert!(Instant::now() < deadline, "prometheus not ready in 30 s:\n{}", prometheus.log_text());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Runs an instant query; returns the whole answer (`status`, `data` or `error`).
    pub async fn query(&self, expr: &str) -> Value {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("query {expr}: {e}"));
        r.json().await.unwrap_or(Value::Null)
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
