//! Authentication: stored private app tokens, missing-scope messages that name the sync, the
//! operation and the scope, and secrets that never reach any output.

mod common;

use common::{text, Harness};
use hubsync::emulator::{EmulatorConfig, StaticToken};
use hubsync::sync::RunStatus;

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

fn stdin_cli(h: &Harness, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .current_dir(h.dir.path())
        .arg("--config")
        .arg(h.config_path())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hubsync");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
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
    let out = stdin_cli(&h, &["auth", "token", "--account", "main"], &format!("{FULL}\n"));
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

    let empty = stdin_cli(&h, &["auth", "token", "--account", "main"], "\n");
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
    let out = stdin_cli(&h, &["--log", "trace", "auth", "token", "--account", "main"], FULL);
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
