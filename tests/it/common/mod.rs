//! Shared test set-up: a fresh PostgreSQL database per test, the emulator, a config written to a
//! temp folder, and helpers to run syncs in-process or through the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hubspot_emulator::{Emulator, EmulatorConfig};
use hubsync::cli::Accounts;
use hubsync::config::Config;
use hubsync::sync::{run_sync, RunOptions, RunSummary};

/// The PostgreSQL server tests use: `HUBSYNC_TEST_DATABASE_URL`, or the local one.
pub fn admin_url() -> String {
    std::env::var("HUBSYNC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database created for one test and dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub client: tokio_postgres::Client,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let admin = admin_url();
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap_or_else(|e| {
            panic!(
                "these tests need PostgreSQL: cannot connect to {admin}: {e}. Start a server on 127.0.0.1:5432 \
                 (user postgres, trust auth) or set HUBSYNC_TEST_DATABASE_URL"
            )
        });
        tokio::spawn(conn);
        let name = format!("hubsync_test_{}", uuid::Uuid::new_v4().simple());
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        let url = match admin.rfind('/') {
            Some(pos) => format!("{}/{name}", &admin[..pos]),
            None => panic!("HUBSYNC_TEST_DATABASE_URL must end with /DATABASE"),
        };
        let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect to test database");
        tokio::spawn(conn);
        TestDb { name, url, client: db }
    }

    pub async fn exec(&self, sql: &str) {
        self.client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

/// A contacts sync matched on email, with no schedule.
pub const CONTACTS_SYNC: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, first_name FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email", first_name = "firstname" }
"#;

/// A test folder with a config pointing at a PostgreSQL database and the emulator.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub db: TestDb,
    pub emulator: Emulator,
}

impl Harness {
    pub async fn new() -> Harness {
        Self::with_emulator(EmulatorConfig::default()).await
    }

    /// A harness whose emulator keeps request bodies, so tests can check payloads.
    pub async fn with_emulator(config: EmulatorConfig) -> Harness {
        let config = EmulatorConfig { record_bodies: true, ..config };
        let db = TestDb::create().await;
        let emulator = Emulator::start(config).await.expect("start emulator");
        Harness { dir: tempfile::tempdir().expect("temp dir"), db, emulator }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hubsync.toml")
    }

    /// Writes `hubsync.toml`: the warehouse and account sections, then `syncs` (TOML text).
    pub fn write_config(&self, syncs: &str) {
        self.write_config_with(syncs, "");
    }

    /// Like `write_config`, with extra lines in the `[hubspot.main]` section.
    pub fn write_config_with(&self, syncs: &str, account_extra: &str) {
        let text = format!(
            "[warehouses.pg]\ntype = \"postgres\"\nurl = \"{}\"\n\n[hubspot.main]\ntoken = \"test-token\"\nbase_url = \"{}\"\n{account_extra}\n\n{syncs}",
            self.db.url,
            self.emulator.base_url()
        );
        std::fs::write(self.config_path(), text).expect("write config");
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path()).unwrap_or_else(|e| panic!("config: {e}"))
    }

    /// Runs one sync in-process.
    pub async fn run(&self, sync: &str) -> RunSummary {
        self.run_with(sync, false).await
    }

    pub async fn run_with(&self, sync: &str, full: bool) -> RunSummary {
        let config = self.config();
        let accounts = Accounts::build(&config).expect("accounts");
        let spec = config.sync(sync).expect("sync exists");
        let options = RunOptions { full, trigger: "test".into(), ..RunOptions::default() };
        run_sync(&config, spec, accounts.client(&spec.hubspot).unwrap(), &options).await.expect("run")
    }

    /// Runs the hubsync binary with the test config.
    pub fn cli(&self, args: &[&str]) -> Output {
        hubsync_cmd(self.dir.path(), &self.config_path(), args)
    }

    /// Runs the hubsync binary with the test config and `input` on stdin.
    pub fn cli_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_hubsync"))
            .current_dir(self.dir.path())
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run hubsync");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Write requests (batch create/update/upsert/archive) the emulator received.
    pub fn write_requests(&self) -> usize {
        ["/batch/create", "/batch/update", "/batch/upsert", "/batch/archive"]
            .iter()
            .map(|p| self.emulator.count_requests("POST", p))
            .sum()
    }
}

/// Runs the binary in `dir` with `--config config`.
pub fn hubsync_cmd(dir: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .current_dir(dir)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run hubsync")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Helpers for the daemon, its admin API and Prometheus (`tests/common/daemon.rs`).
pub mod daemon;
