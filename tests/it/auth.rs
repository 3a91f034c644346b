//! Authentication: stored private app tokens, the whole OAuth flow (authorize, callback, code
//! exchange, refresh before expiry and on a 401, a refused refresh), missing-scope messages that
//! name the sync, the operation and the scope, and secrets that never reach any output.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::daemon::{free_port, DaemonProcess};
use crate::common::{text, Harness};
use hubspot_emulator::{EmulatorConfig, OAuthClient, StaticToken};
use hubsync::config::Secret;
use hubsync::sync::RunStatus;
use serde_json::Value;

const READ_ONLY: &str = "pat-na1-readonly-5e3c7a1f-secret";
const FULL: &str = "pat-na1-full-9b1d44e2-secret";

const DEALS_SYNC: &str = r#"
[[syncs]]
name = "deals"
model = "SELECT id, name, amount FROM deals_src"
primary_key = "id"
object = "deals"
match = { column = "name", property = "dealname" }
fields = { name = "dealname", amount = "amount" }
"#;

fn emulator() -> EmulatorConfig {
    EmulatorConfig {
        static_tokens: vec![
            StaticToken {
                token: READ_ONLY.into(),
                scopes: vec!["crm.objects.deals.read".into(), "crm.schemas.deals.read".into()],
            },
            StaticToken { token: FULL.into(), scopes: vec!["*".into()] },
        ],
        ..Default::default()
    }
}

/// Writes the config with `token` (or no token line when `None`).
fn write_config(h: &Harness, token: Option<&str>) {
    let token_line = token.map(|t| format!("token = \"{t}\"\n")).unwrap_or_default();
    let text = format!(
        "[warehouses.pg]\ntype = \"postgres\"\nurl = \"{}\"\n\n[hubspot.main]\n{token_line}base_url = \"{}\"\n\n{DEALS_SYNC}",
        h.db.url,
        h.emulator.base_url()
    );
    std::fs::write(h.config_path(), text).expect("write config");
}

async fn deals_harness() -> Harness {
    let h = Harness::with_emulator(emulator()).await;
    h.db.exec("CREATE TABLE deals_src AS SELECT i AS id, 'Deal ' || i AS name, i * 100 AS amount FROM generate_series(1, 5) AS i")
        .await;
    h
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_token_without_the_write_scope_names_the_sync_and_the_scope() {
    let h = deals_harness().await;
    write_config(&h, Some(READ_ONLY));
    let summary = h.run("deals").await;
    assert_eq!(summary.status, RunStatus::Failed);
    let error = summary.error.unwrap_or_default();
    assert!(error.contains("sync `deals` needs crm.objects.deals.write"), "{error}");
    assert!(!error.contains(READ_ONLY));
    // One 403 stops the sync: no retry loop.
    assert_eq!(h.write_requests(), 1, "a 403 must not be retried");
    assert_eq!(h.emulator.record_count("deals"), 0);

    // `validate` finds the same gap before anything is sent, with the operation named.
    let out = h.cli(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("sync `deals` needs crm.objects.deals.write to upsert deals"), "{shown}");
    assert_eq!(h.emulator.record_count("deals"), 0);

    // The same token works once it is swapped for one with the scope; the state survived.
    write_config(&h, Some(FULL));
    let summary = h.run("deals").await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{:?}", summary.error);
    assert_eq!(h.emulator.record_count("deals"), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_token_is_used_and_status_never_shows_it() {
    let h = deals_harness().await;
    write_config(&h, None);
    let out = h.cli_with_stdin(&["auth", "token", "--account", "main"], &format!("{FULL}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = h.dir.path().join("state/credentials/main.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let status = h.cli(&["auth", "status"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let shown = text(&status.stdout);
    assert!(shown.contains("account `main`: private app token (stored)"), "{shown}");
    assert!(!shown.contains(FULL) && !text(&status.stderr).contains(FULL));

    let summary = h.run("deals").await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{:?}", summary.error);
    assert_eq!(h.emulator.record_count("deals"), 5);

    let empty = h.cli_with_stdin(&["auth", "token", "--account", "main"], "\n");
    assert!(!empty.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_any_output_even_at_debug_level() {
    let h = deals_harness().await;
    write_config(&h, Some(READ_ONLY));
    let mut outputs = Vec::new();
    for args in [
        &["--log", "trace", "validate"][..],
        &["--log", "trace", "sync", "deals"],
        &["--log", "trace", "sync", "deals", "--json"],
        &["--log", "trace", "status"],
        &["--log", "trace", "status", "--json"],
        &["--log", "trace", "auth", "status"],
    ] {
        let out = h.cli(args);
        outputs.push((args.join(" "), text(&out.stdout), text(&out.stderr)));
    }
    // The failed sync's error reached the run history too.
    assert!(outputs[1].2.contains("sync `deals` needs crm.objects.deals.write"), "{}", outputs[1].2);
    write_config(&h, None);
    let out = h.cli_with_stdin(&["--log", "trace", "auth", "token", "--account", "main"], FULL);
    outputs.push(("auth token".into(), text(&out.stdout), text(&out.stderr)));
    for args in [&["--log", "trace", "sync", "deals"][..], &["--log", "trace", "auth", "status"]] {
        let out = h.cli(args);
        outputs.push((args.join(" "), text(&out.stdout), text(&out.stderr)));
    }
    for (command, stdout, stderr) in &outputs {
        for secret in [READ_ONLY, FULL] {
            assert!(!stdout.contains(secret), "`{command}` printed a token on stdout:\n{stdout}");
            assert!(!stderr.contains(secret), "`{command}` printed a token on stderr:\n{stderr}");
        }
    }
}

const CLIENT_ID: &str = "hubsync-test-app";
const CLIENT_SECRET: &str = "cs-4d2f9e71-client-secret";

fn oauth_emulator() -> EmulatorConfig {
    EmulatorConfig {
        static_tokens: vec![StaticToken { token: FULL.into(), scopes: vec!["*".into()] }],
        oauth_clients: vec![OAuthClient {
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET),
            scopes: Vec::new(),
        }],
        ..Default::default()
    }
}

/// The config of an OAuth app with a loopback redirect on `port`, plus `extra_syncs`.
fn write_oauth_config(h: &Harness, port: u16, extra_syncs: &str) {
    let text = format!(
        "[warehouses.pg]\ntype = \"postgres\"\nurl = \"{}\"\n\n[hubspot.main]\nbase_url = \"{}\"\n\
         client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
         redirect_uri = \"http://127.0.0.1:{port}/oauth-callback\"\n\n{DEALS_SYNC}\n{extra_syncs}",
        h.db.url,
        h.emulator.base_url()
    );
    std::fs::write(h.config_path(), text).expect("write config");
}

/// `hubsync auth login` running as a child process.
struct Login {
    child: Child,
    /// The authorize link it printed.
    url: String,
    /// What it printed up to the link.
    head: Vec<String>,
    /// The rest of its stdout, read as it comes.
    tail: std::thread::JoinHandle<String>,
}

impl Login {
    fn spawn(h: &Harness) -> Child {
        Command::new(env!("CARGO_BIN_EXE_hubsync"))
            .current_dir(h.dir.path())
            .arg("--config")
            .arg(h.config_path())
            .args(["--log", "trace", "auth", "login", "--account", "main", "--timeout", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hubsync auth login")
    }

    fn start(h: &Harness) -> Login {
        let mut child = Login::spawn(h);
        let mut head = Vec::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut link = None;
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                break;
            }
            head.push(line.trim_end().to_string());
            if let Some(url) = line.split_whitespace().find(|w| w.contains("/oauth/authorize?")) {
                link = Some(url.to_string());
                break;
            }
        }
        match link {
            Some(url) => {
                let tail = std::thread::spawn(move || String::from_utf8_lossy(&read_all(stdout)).into_owned());
                Login { child, url, head, tail }
            }
            None => {
                let out = child.wait_with_output().unwrap();
                panic!("auth login ended before printing a link: {head:?}\n{}", text(&out.stderr));
            }
        }
    }

    /// Waits for the command to end; its exit status, stdout and stderr.
    fn finish(mut self) -> (std::process::ExitStatus, String, String) {
        let status = wait_child(&mut self.child);
        let stderr = text(&read_all(self.child.stderr.take().unwrap()));
        let stdout = format!("{}\n{}", self.head.join("\n"), self.tail.join().unwrap());
        (status, stdout, stderr)
    }
}

/// Walks a login: opens the link as a browser would (HubSpot redirects to the loopback
/// callback), and returns everything the command printed.
async fn login(h: &Harness) -> (String, String) {
    let login = Login::start(h);
    let page = reqwest::get(&login.url).await.expect("follow the authorize link");
    assert_eq!(page.status(), 200, "the callback page");
    assert!(page.text().await.unwrap().contains("Signed in"));
    let (status, stdout, stderr) = login.finish();
    assert!(status.success(), "auth login failed: {stdout}\n{stderr}");
    (stdout, stderr)
}

/// `hubsync --log trace sync deals`: whether it succeeded, and its output (also kept in `outputs`).
fn sync_cli(h: &Harness, outputs: &mut Vec<(String, String, String)>, label: &str) -> (bool, String, String) {
    let out = h.cli(&["--log", "trace", "sync", "deals"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    outputs.push((label.to_string(), stdout.clone(), stderr.clone()));
    (out.status.success(), stdout, stderr)
}

fn read_all(mut r: impl std::io::Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}

fn wait_child(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("auth login did not end in 30 s");
}

fn credential(h: &Harness) -> Value {
    serde_json::from_str(&std::fs::read_to_string(h.dir.path().join("state/credentials/main.json")).unwrap()).unwrap()
}

fn token_posts(h: &Harness) -> usize {
    h.emulator.count_requests("POST", "/oauth/v1/token")
}

fn deal_amounts(h: &Harness) -> Vec<String> {
    let mut amounts: Vec<String> =
        h.emulator.records("deals").iter().map(|r| r.properties.get("amount").cloned().unwrap_or_default()).collect();
    amounts.sort();
    amounts
}

#[tokio::test(flavor = "multi_thread")]
async fn the_oauth_flow_refreshes_tokens_and_asks_for_a_new_login_only_when_needed() {
    let h = Harness::with_emulator(oauth_emulator()).await;
    h.db.exec("CREATE TABLE deals_src AS SELECT i AS id, 'Deal ' || i AS name, i * 100 AS amount FROM generate_series(1, 5) AS i")
        .await;
    let port = free_port();
    write_oauth_config(&h, port, "");
    let mut outputs: Vec<(String, String, String)> = Vec::new();
    let mut secrets: Vec<String> = vec![CLIENT_SECRET.into(), FULL.into()];

    // A private app token stored first is deleted by the login.
    let out = h.cli_with_stdin(&["auth", "token", "--account", "main"], FULL);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A callback that does not carry the login's state is refused; the login goes on waiting.
    let mut pending = Login::start(&h);
    let forged =
        reqwest::get(format!("http://127.0.0.1:{port}/oauth-callback?code=stolen&state=forged")).await.unwrap();
    assert_eq!(forged.status(), 400);
    assert!(pending.child.try_wait().unwrap().is_none(), "a forged callback must not end the login");
    let url = pending.url.clone();
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 200);
    let (status, stdout, stderr) = pending.finish();
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("signed in with OAuth to portal 12345678"), "{stdout}");
    assert!(stdout.contains("the private app token stored for `main` was deleted"), "{stdout}");
    outputs.push(("auth login".into(), stdout, stderr));
    // The authorize link asked for the scopes the deals sync needs, and the code was exchanged once.
    let asked: Vec<(String, String)> = url::Url::parse(&url).unwrap().query_pairs().into_owned().collect();
    let scope = asked.iter().find(|(k, _)| k == "scope").map(|(_, v)| v.clone()).unwrap();
    assert!(scope.contains("crm.objects.deals.write") && scope.contains("crm.schemas.deals.read"), "{scope}");
    assert_eq!(token_posts(&h), 1);

    let stored = credential(&h);
    assert_eq!(stored["kind"], "oauth", "the login replaced the stored private app token");
    assert!(!stored.to_string().contains(FULL));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = h.dir.path().join("state/credentials/main.json");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    secrets.push(stored["access_token"].as_str().unwrap().to_string());
    secrets.push(stored["refresh_token"].as_str().unwrap().to_string());

    let status = h.cli(&["--log", "trace", "auth", "status"]);
    let shown = text(&status.stdout);
    assert!(status.status.success(), "{shown}{}", text(&status.stderr));
    assert!(shown.contains("OAuth"), "{shown}");
    assert!(shown.contains("portal id: 12345678"), "{shown}");
    assert!(shown.contains("crm.objects.deals.write"), "{shown}");
    outputs.push(("auth status".into(), shown, text(&status.stderr)));

    // The first run uses the access token from the login.
    let (ok, _, err) = sync_cli(&h, &mut outputs, "sync with a fresh token");
    assert!(ok, "{err}");
    assert_eq!(h.emulator.record_count("deals"), 5);
    assert_eq!((token_posts(&h), h.emulator.count_status(401)), (1, 0));

    // Half an hour later, on both sides: the client refreshes before sending, so HubSpot never
    // sees the expired token.
    let mut aged = credential(&h);
    aged["expires_at_ms"] = Value::from(chrono::Utc::now().timestamp_millis() - 1000);
    std::fs::write(h.dir.path().join("state/credentials/main.json"), aged.to_string()).unwrap();
    h.emulator.expire_access_tokens();
    h.db.exec("UPDATE deals_src SET amount = amount + 1").await;
    let (ok, _, err) = sync_cli(&h, &mut outputs, "sync after expiry");
    assert!(ok, "{err}");
    assert_eq!((token_posts(&h), h.emulator.count_status(401)), (2, 0), "one refresh, before any request");
    assert_eq!(deal_amounts(&h), ["101", "201", "301", "401", "501"]);
    let refreshed = credential(&h);
    assert_ne!(refreshed["access_token"], stored["access_token"], "the refreshed token was stored");
    secrets.push(refreshed["access_token"].as_str().unwrap().to_string());

    // HubSpot expires the token early: its 401 EXPIRED_AUTHENTICATION is answered by one
    // refresh and the request is sent again.
    h.emulator.expire_access_tokens();
    h.db.exec("UPDATE deals_src SET amount = amount + 1").await;
    let (ok, _, err) = sync_cli(&h, &mut outputs, "sync after a 401");
    assert!(ok, "{err}");
    assert_eq!((token_posts(&h), h.emulator.count_status(401)), (3, 1), "one 401, one refresh");
    assert_eq!(deal_amounts(&h), ["102", "202", "302", "402", "502"]);
    secrets.push(credential(&h)["access_token"].as_str().unwrap().to_string());

    // The app is uninstalled: the refresh is refused, the run stops with one clear message, and
    // nothing is lost.
    h.emulator.revoke_refresh_tokens();
    h.emulator.expire_access_tokens();
    h.db.exec("UPDATE deals_src SET amount = amount + 1").await;
    let writes = h.write_requests();
    let (ok, stdout, err) = sync_cli(&h, &mut outputs, "sync with a revoked login");
    assert!(!ok);
    let both = format!("{stdout}{err}");
    assert!(both.contains("`hubsync auth login --account main` again"), "{both}");
    assert_eq!(h.write_requests(), writes, "nothing is sent without a token");
    assert_eq!(token_posts(&h), 4, "a refused refresh is not retried");

    // A new login, and the next run delivers what the failed one could not.
    let (stdout, stderr) = login(&h).await;
    assert!(stdout.contains("signed in with OAuth to portal 12345678"), "{stdout}");
    outputs.push(("second auth login".into(), stdout, stderr));
    let again = credential(&h);
    secrets.push(again["access_token"].as_str().unwrap().to_string());
    secrets.push(again["refresh_token"].as_str().unwrap().to_string());
    let (ok, _, err) = sync_cli(&h, &mut outputs, "sync after the new login");
    assert!(ok, "{err}");
    assert_eq!(deal_amounts(&h), ["103", "203", "303", "403", "503"]);

    // A sync added after the login needs scopes the login did not ask for: `validate` names them.
    write_oauth_config(
        &h,
        port,
        "[[syncs]]\nname = \"companies\"\nmodel = \"SELECT id, name FROM deals_src\"\nprimary_key = \"id\"\n\
         object = \"companies\"\nmatch = { column = \"name\", property = \"domain\" }\nfields = { name = \"name\" }\n",
    );
    let out = h.cli(&["--log", "trace", "validate"]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{shown}{}", text(&out.stderr));
    assert!(shown.contains("sync `companies` needs crm.objects.companies.write to upsert companies"), "{shown}");
    assert!(!shown.lines().any(|l| l.starts_with("error") && l.contains("syncs[0]")), "deals is fine: {shown}");
    outputs.push(("validate".into(), shown, text(&out.stderr)));

    // The daemon's metrics and status, and the run history.
    let daemon = DaemonProcess::start(h.dir.path(), &h.config_path()).await;
    for path in ["/metrics", "/syncs", "/syncs/deals"] {
        let body = reqwest::get(format!("{}{path}", daemon.url)).await.unwrap().text().await.unwrap();
        outputs.push((path.to_string(), body, String::new()));
    }
    drop(daemon);
    for args in [&["status"][..], &["status", "--json"]] {
        let out = h.cli(args);
        outputs.push((args.join(" "), text(&out.stdout), text(&out.stderr)));
    }
    for entry in std::fs::read_dir(h.dir.path()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().ends_with(".log") {
            outputs.push((
                entry.path().display().to_string(),
                std::fs::read_to_string(entry.path()).unwrap(),
                String::new(),
            ));
        }
    }
    for (command, stdout, stderr) in &outputs {
        for secret in &secrets {
            assert!(!stdout.contains(secret.as_str()), "`{command}` printed a secret on stdout:\n{stdout}");
            assert!(!stderr.contains(secret.as_str()), "`{command}` printed a secret on stderr:\n{stderr}");
        }
    }
}
