//! The binary as a user runs it: invalid configs, validate, plan, help, and the demo.

use crate::common::{hubsync_cmd, text, Harness};

const GOOD_SYNC: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, first_name FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { first_name = "firstname" }
"#;

/// Each broken config gives one clear message naming the file and the key, and exit code 2.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_configs_name_the_file_and_key_and_exit_2() {
    let h = Harness::new().await;
    h.db.exec("CREATE TABLE users AS SELECT 1 AS user_id, 'a@example.com' AS email, 'A' AS first_name").await;
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "unknown key",
            "name = \"contacts\"",
            "name = \"contacts\"\ncolour = \"blue\"",
            &["syncs[0].colour", "unknown field `colour`"],
        ),
        (
            "missing env var",
            "token = \"test-token\"",
            "token = \"${HUBSYNC_TEST_UNSET_TOKEN}\"",
            &["hubspot.main.token", "HUBSYNC_TEST_UNSET_TOKEN"],
        ),
        (
            "model file missing",
            "model = \"SELECT user_id, email, first_name FROM users\"",
            "model = \"models/nope.sql\"",
            &["syncs[0].model", "nope.sql"],
        ),
        ("unknown standard object id", "object = \"contacts\"", "object = \"0-999\"", &["syncs[0].object", "0-999"]),
        (
            "unknown object type",
            "object = \"contacts\"",
            "object = \"widgets\"",
            &["syncs[0].object", "unknown object type `widgets`"],
        ),
        (
            "undefined warehouse",
            "name = \"contacts\"",
            "name = \"contacts\"\nwarehouse = \"snowflake\"",
            &["syncs[0].warehouse", "`snowflake` is not defined"],
        ),
        ("bad mode", "name = \"contacts\"", "name = \"contacts\"\nmode = \"mirror\"", &["syncs[0].mode", "mirror"]),
        (
            "unknown property",
            "first_name = \"firstname\"",
            "first_name = \"first_nam\"",
            &["syncs[0].fields.first_name", "`first_nam` does not exist"],
        ),
        (
            "missing column",
            "first_name = \"firstname\"",
            "nickname = \"firstname\"",
            &["syncs[0].fields.nickname", "no column `nickname`"],
        ),
        ("not TOML", "[[syncs]]", "[[syncs]\n", &["line", "not valid TOML"]),
    ];
    for (what, from, to, expected) in cases {
        h.write_config(GOOD_SYNC);
        let config = std::fs::read_to_string(h.config_path()).unwrap();
        assert!(config.contains(from), "case {what}: `{from}` is in the base config");
        std::fs::write(h.config_path(), config.replacen(from, to, 1)).unwrap();
        let out = h.cli(&["validate"]);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "case {what}: exit code 2, got {:?}: {all}", out.status.code());
        assert!(all.contains("hubsync.toml"), "case {what}: names the file: {all}");
        for e in *expected {
            assert!(all.contains(e), "case {what}: says `{e}`: {all}");
        }
    }
    h.write_config(GOOD_SYNC);
    let ok = h.cli(&["validate"]);
    assert!(ok.status.success(), "the base config is valid: {}{}", text(&ok.stdout), text(&ok.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_counts_and_field_changes_without_sending() {
    let h = Harness::new().await;
    h.db.exec("CREATE TABLE users AS SELECT i AS user_id, 'u' || i || '@example.com' AS email, 'F' || i AS first_name FROM generate_series(1, 250) i").await;
    h.write_config(GOOD_SYNC);
    let out = h.cli(&["plan", "contacts"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(
        plan.lines().any(|l| l.contains("upsert by unique property") && l.split_whitespace().any(|w| w == "250")),
        "{plan}"
    );
    assert_eq!(h.write_requests(), 0, "plan sends nothing");
    assert!(h.cli(&["sync", "contacts"]).status.success());
    h.db.exec("UPDATE users SET first_name = 'Changed' WHERE user_id = 7").await;
    h.emulator.clear_journal();
    let out = h.cli(&["plan", "contacts", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan --json");
    assert_eq!(plan["update_by_id"], 1);
    assert_eq!(plan["unchanged"], 249);
    assert_eq!(plan["samples"][0]["changes"]["firstname"], serde_json::json!(["F7", "Changed"]));
    assert_eq!(h.write_requests(), 0, "plan sends nothing");
}

#[test]
fn every_command_and_option_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("none.toml");
    let top = text(&hubsync_cmd(dir.path(), &config, &["--help"]).stdout);
    for command in ["validate", "plan", "sync", "status", "fields", "reset", "demo", "emulator"] {
        assert!(top.contains(command), "{command} is listed: {top}");
        let help = hubsync_cmd(dir.path(), &config, &[command, "--help"]);
        assert!(help.status.success());
        let help = text(&help.stdout);
        for line in help.lines().filter(|l| l.trim_start().starts_with("--")) {
            let described = line.split_whitespace().count() > 1 || help.contains(line.trim());
            assert!(described, "`{command}` option without help: {line}");
        }
    }
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = hubsync_cmd(dir.path(), &dir.path().join("hubsync.toml"), &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("hubsync.toml") && err.contains("cannot read"), "{err}");
}

#[test]
fn the_demo_runs_real_syncs_on_the_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = hubsync_cmd(dir.path(), &dir.path().join("unused.toml"), &["demo", "--dir", "demo", "--contacts", "600"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("run 1"), "{stdout}");
    assert!(stdout.contains("600 created"), "run 1 creates every contact: {stdout}");
    assert!(stdout.contains("INVALID_EMAIL"), "run 2 shows the rejected emails: {stdout}");
    assert!(stdout.contains("20 created, 6 updated"), "run 2 sends only the changes: {stdout}");
    assert!(stdout.contains("0 HubSpot requests"), "run 3 sends nothing: {stdout}");
    assert!(dir.path().join("demo/state/contacts.duckdb").exists());
}
