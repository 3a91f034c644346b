//! Safe to leave running on a shared host (issue 17): the admin API refuses forged `Host` and
//! `Origin` headers, web forms and untokened runs, and keeps its generated token from other OS
//! users; state files are private; a plain-http `base_url` to another host is refused before
//! any request; a huge interval and a demo over another project are refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::daemon::{post_json, wait_request};
use crate::common::{hubsync_cmd, text, Harness, CONTACTS_SYNC};
use hubsync::scheduler::RunningDaemon;
use serde_json::{json, Value};

/// A contacts sync with no schedule: nothing runs unless someone asks.
const SYNC: &str = CONTACTS_SYNC;

async fn users(h: &Harness) {
    h.db.exec(
        "CREATE TABLE users AS SELECT i AS user_id, 'u' || i || '@example.com' AS email, 'F' || i AS first_name
         FROM generate_series(1, 20) AS i",
    )
    .await;
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// Sends a request with raw headers; returns the status and the JSON answer.
async fn send(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some((content_type, body)) = body {
        request = request.header("content-type", content_type).body(body.to_string());
    }
    let r = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_refuses_forged_hosts_foreign_origins_forms_and_untokened_runs() {
    let h = Harness::new().await;
    users(&h).await;
    h.write_config(SYNC);
    let daemon = RunningDaemon::start(h.config(), "127.0.0.1:0".parse().unwrap()).await.expect("start");
    let port = daemon.local_addr().port();
    let base = format!("http://127.0.0.1:{port}");

    // The config sets no token, so the daemon generated one, private to its user.
    let state = h.dir.path().join("state");
    let token_file = state.join("admin-token");
    let token = std::fs::read_to_string(&token_file).expect("the generated token").trim().to_string();
    assert_eq!(token.len(), 64, "32 random bytes, hex");
    assert_eq!((mode(&state), mode(&token_file)), (0o700, 0o600));
    let bearer = format!("Bearer {token}");
    let run_url = format!("{base}/syncs/contacts/run");
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    // Read-only routes stay open on loopback, by IP address or `localhost`.
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let (code, body) = send(get.clone(), &format!("{base}/syncs"), &[("host", host.as_str())], None).await;
        assert_eq!(code, 200, "Host {host}: {body}");
    }
    assert_eq!(send(get.clone(), &format!("{base}/metrics"), &[], None).await.0, 200);

    // DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 sends its own Host.
    for host in [format!("evil.example:{port}"), format!("10.9.8.7:{port}"), "localhost.evil.example".into()] {
        let (code, body) = send(get.clone(), &format!("{base}/syncs"), &[("host", host.as_str())], None).await;
        assert_eq!(code, 403, "Host {host} is refused: {body}");
        let with_token = [("host", host.as_str()), ("authorization", bearer.as_str())];
        let (code, _) = send(post.clone(), &run_url, &with_token, Some(("application/json", "{}"))).await;
        assert_eq!(code, 403, "Host {host} is refused even with the token");
    }

    // A cross-site form POST (text/plain, no token), as any web page the operator opens can send.
    let form = Some(("text/plain", "{\"full\": true}"));
    let (code, body) = send(post.clone(), &run_url, &[("origin", "https://evil.example")], form).await;
    assert_eq!(code, 403, "a foreign Origin is refused: {body}");
    let (code, body) = send(post.clone(), &run_url, &[("origin", "null")], form).await;
    assert_eq!(code, 403, "an opaque Origin is refused: {body}");
    // Without an Origin (a local process), runs still need the token.
    let (code, body) = send(post.clone(), &run_url, &[], form).await;
    assert_eq!(code, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("admin-token"), "says where the token is: {body}");
    let (code, _) = post_json(&run_url, json!({"full": true}), None).await;
    assert_eq!(code, 401, "no token, no run");
    let (code, _) = post_json(&run_url, json!({}), Some("not-the-token")).await;
    assert_eq!(code, 401, "a wrong token, no run");
    let (code, _) = post_json(&format!("{base}/syncs/contacts/reset"), json!({}), None).await;
    assert_eq!(code, 401, "no token, no reset");
    // With the token, only JSON bodies.
    let auth = [("authorization", bearer.as_str())];
    for (content_type, body) in [("text/plain", "{\"full\": true}"), ("application/x-www-form-urlencoded", "full=true")]
    {
        let (code, answer) = send(post.clone(), &run_url, &auth, Some((content_type, body))).await;
        assert_eq!(code, 415, "{content_type} is refused: {answer}");
        let reset = format!("{base}/syncs/contacts/reset");
        assert_eq!(send(post.clone(), &reset, &auth, Some((content_type, body))).await.0, 415);
    }
    assert_eq!(h.write_requests(), 0, "nothing refused reached HubSpot");
    let status: Value = reqwest::get(format!("{base}/syncs/contacts")).await.unwrap().json().await.unwrap();
    assert_eq!((status["state"].as_str(), status["last_run"].is_null()), (Some("idle"), true), "{status}");

    // The API's own origin, the token and a JSON body: the run goes ahead.
    let own_origin = format!("http://127.0.0.1:{port}");
    let headers = [("authorization", bearer.as_str()), ("origin", own_origin.as_str())];
    let (code, accepted) = send(post.clone(), &run_url, &headers, Some(("application/json", "{}"))).await;
    assert_eq!(code, 202, "{accepted}");
    let done = wait_request(&base, "contacts", accepted["request_id"].as_u64().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(h.emulator.record_count("contacts"), 20);

    // `hubsync trigger` and `hubsync status --daemon` read the token from the state directory.
    let out = h.cli(&["trigger", "contacts", "--full", "--wait", "--daemon", &base]);
    assert!(out.status.success(), "trigger: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("20 updated"), "{}", text(&out.stdout));
    let out = h.cli(&["status", "--daemon", &base]);
    assert!(out.status.success(), "status --daemon: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("contacts"), "{}", text(&out.stdout));
    daemon.begin_shutdown();
    daemon.wait().await;

    // A second start keeps the same token.
    let daemon = RunningDaemon::start(h.config(), "127.0.0.1:0".parse().unwrap()).await.expect("restart");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    daemon.begin_shutdown();
    daemon.wait().await;
}

/// Runs `args` as `user` (with `runuser`); returns the exit code and what it printed.
fn as_user(user: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new("runuser").args(["-u", user, "--"]).args(args).output().expect("runuser");
    (out.status.code(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

/// A second OS user on the same host cannot read the generated token, the state files or the
/// credentials, and cannot start a run.
#[tokio::test(flavor = "multi_thread")]
async fn another_os_user_cannot_read_the_token_or_trigger_a_run() {
    const OTHER: &str = "hubsync-it-other";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED another_os_user_cannot_read_the_token_or_trigger_a_run: needs root to add a second OS user");
        return;
    }
    let exists = std::process::Command::new("id").arg(OTHER).output().is_ok_and(|o| o.status.success());
    if !exists {
        let added = std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER])
            .output();
        // Another test process may have added it at the same moment.
        let now = std::process::Command::new("id").arg(OTHER).output().is_ok_and(|o| o.status.success());
        if !now {
            eprintln!("SKIPPED another_os_user_cannot_read_the_token_or_trigger_a_run: useradd failed: {added:?}");
            return;
        }
    }
    let h = Harness::new().await;
    users(&h).await;
    h.write_config(SYNC);
    // The test folder itself is open to everyone, so only hubsync's own modes protect the state.
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let stored = h.cli_with_stdin(&["auth", "token", "--account", "main"], "pat-na1-stored\n");
    assert!(stored.status.success(), "auth token: {}", text(&stored.stderr));
    let daemon = RunningDaemon::start(h.config(), "127.0.0.1:0".parse().unwrap()).await.expect("start");
    let base = format!("http://{}", daemon.local_addr());
    let state = h.dir.path().join("state");
    let token_file = state.join("admin-token");
    assert!(token_file.is_file());

    let (code, said) = as_user(OTHER, &["cat", token_file.to_str().unwrap()]);
    assert_ne!(code, Some(0), "{OTHER} read the token file: {said}");
    assert!(said.contains("Permission denied"), "{said}");
    let (code, said) = as_user(OTHER, &["ls", state.to_str().unwrap()]);
    assert_ne!(code, Some(0), "{OTHER} listed the state directory: {said}");
    let credential = state.join("credentials/main.json");
    let (code, said) = as_user(OTHER, &["cat", credential.to_str().unwrap()]);
    assert_ne!(code, Some(0), "{OTHER} read the stored credential: {said}");

    // Even knowing the API's address, the other user cannot start a run or a reset: curl with a
    // JSON body (what a script would send) and with a form body.
    for (path, content_type) in [("run", "application/json"), ("run", "text/plain"), ("reset", "application/json")] {
        let (code, said) = as_user(
            OTHER,
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "POST",
                "-H",
                &format!("Content-Type: {content_type}"),
                "--data",
                "{\"full\": true}",
                &format!("{base}/syncs/contacts/{path}"),
            ],
        );
        assert_eq!((code, said.trim()), (Some(0), "401"), "{OTHER}: POST {path} ({content_type})");
    }
    // `hubsync trigger` as the other user finds no token it can read (the binary may sit in a
    // folder they cannot enter; then curl above is the proof).
    let (_, said) = as_user(OTHER, &[env!("CARGO_BIN_EXE_hubsync"), "--help"]);
    if said.contains("Usage") {
        let config = h.config_path();
        let (code, said) = as_user(
            OTHER,
            &[
                env!("CARGO_BIN_EXE_hubsync"),
                "--config",
                config.to_str().unwrap(),
                "trigger",
                "contacts",
                "--daemon",
                &base,
            ],
        );
        assert_ne!(code, Some(0), "{said}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.write_requests(), 0, "no run started");
    let status: Value = reqwest::get(format!("{base}/syncs/contacts")).await.unwrap().json().await.unwrap();
    assert!(status["last_run"].is_null() && status["state"] == "idle", "{status}");
    daemon.begin_shutdown();
    daemon.wait().await;
}

/// The state directory is 0700 (an existing looser one is tightened), its state files,
/// credentials and admin token 0600.
#[tokio::test(flavor = "multi_thread")]
async fn state_directory_and_files_are_private() {
    let h = Harness::new().await;
    users(&h).await;
    h.write_config(SYNC);
    let state = h.dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = h.cli(&["sync", "contacts"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&state), 0o700, "the state directory is tightened");
    let db = state.join("contacts.duckdb");
    assert_eq!(mode(&db), 0o600, "the state file");
    // A state file written by an older hubsync (0644) is left as it is by read-only commands
    // (`status` opens it read-only) and tightened by the next run.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(h.cli(&["status", "contacts"]).status.success());
    assert!(h.cli(&["sync", "contacts"]).status.success());
    assert_eq!(mode(&db), 0o600, "an old state file is tightened");
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    let stored = h.cli_with_stdin(&["auth", "token", "--account", "main"], "pat-na1-stored\n");
    assert!(stored.status.success(), "{}", text(&stored.stderr));
    assert_eq!(mode(&state.join("credentials")), 0o700);
    assert_eq!(mode(&state.join("credentials/main.json")), 0o600);
}

/// The machine's own address on a non-loopback interface, if it has one (no packet is sent).
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.254:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Listens on `ip`, forwards every connection to `to` (the emulator), and counts connections.
async fn counting_forwarder(
    ip: std::net::IpAddr,
    to: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind on the non-loopback address");
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_another_host_is_refused_before_any_request() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("SKIPPED plain_http_to_another_host_is_refused_before_any_request: this machine has no non-loopback address");
        return;
    };
    let h = Harness::new().await;
    users(&h).await;
    let emulator: std::net::SocketAddr = format!("127.0.0.1:{}", h.emulator.port()).parse().unwrap();
    let (remote, connections) = counting_forwarder(ip, emulator).await;
    let write = |extra: &str| {
        let text = format!(
            "[warehouses.pg]\ntype = \"postgres\"\nurl = \"{}\"\n\n[hubspot.main]\ntoken = \"test-token\"\nbase_url = \"http://{remote}\"\n{extra}\n{SYNC}",
            h.db.url
        );
        std::fs::write(h.config_path(), text).unwrap();
    };
    write("");
    for command in [&["validate"][..], &["sync", "contacts"], &["plan", "contacts"], &["run"]] {
        let out = h.cli(command);
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: exit code 2: {said}");
        assert!(said.contains("hubspot.main.base_url") && said.contains("unencrypted"), "{command:?}: {said}");
        assert!(said.contains("allow_insecure_http"), "names the way out: {said}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "no request reached the listener");
    assert_eq!(h.emulator.journal().len(), 0);

    write("allow_insecure_http = true");
    let out = h.cli(&["validate"]);
    assert!(out.status.success(), "with allow_insecure_http it proceeds: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(connections.load(Ordering::SeqCst) > 0, "requests went to {remote}");
    assert!(!h.emulator.journal().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_interval_is_a_config_error_naming_the_key() {
    let h = Harness::new().await;
    users(&h).await;
    for secs in ["9223372036854775807", "31622401"] {
        h.write_config(&format!("{SYNC}schedule = {{ interval_secs = {secs} }}\n"));
        for command in ["validate", "run"] {
            let out = h.cli(&[command]);
            let said = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} with {secs}: {said}");
            assert!(said.contains("syncs[0].schedule.interval_secs") && said.contains("366 days"), "{said}");
        }
    }
    h.write_config(&format!("{SYNC}schedule = {{ interval_secs = 31622400 }}\n"));
    let out = h.cli(&["validate"]);
    assert!(out.status.success(), "366 days is the longest interval: {}", text(&out.stderr));
}

#[test]
fn the_demo_refuses_a_folder_holding_another_project_and_reuses_its_own() {
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    std::fs::create_dir_all(project.join("state/credentials")).unwrap();
    std::fs::write(project.join("hubsync.toml"), "# my real config\n").unwrap();
    std::fs::write(project.join("state/credentials/main.json"), "{\"kind\": \"static\", \"token\": \"pat\"}").unwrap();
    let unused = root.path().join("unused.toml");
    let out = hubsync_cmd(root.path(), &unused, &["demo", "--dir", "project", "--contacts", "50"]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("project") && said.contains("not empty") && said.contains(".hubsync-demo"), "{said}");
    assert_eq!(std::fs::read_to_string(project.join("hubsync.toml")).unwrap(), "# my real config\n");
    assert!(project.join("state/credentials/main.json").exists(), "the credentials are still there");
    assert!(!project.join(".hubsync-demo").exists() && !project.join("warehouse.duckdb").exists());

    // A file is no folder.
    std::fs::write(root.path().join("afile"), "x").unwrap();
    let out = hubsync_cmd(root.path(), &unused, &["demo", "--dir", "afile", "--contacts", "50"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // An empty folder becomes a demo folder, which a second demo recognises and recreates.
    std::fs::create_dir(root.path().join("empty")).unwrap();
    for run in 1..=2 {
        let out = hubsync_cmd(root.path(), &unused, &["demo", "--dir", "empty", "--contacts", "50"]);
        assert!(out.status.success(), "demo run {run}: {}{}", text(&out.stdout), text(&out.stderr));
        assert!(text(&out.stdout).contains("50 created"), "run {run} starts afresh: {}", text(&out.stdout));
    }
    assert!(root.path().join("empty/.hubsync-demo").is_file());
}
