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
    let commands = listed_commands(&top);
    for command in
        ["validate", "plan", "sync", "status", "run", "trigger", "fields", "reset", "auth", "demo", "emulator", "bench"]
    {
        assert!(commands.iter().any(|c| c == command), "{command} is listed with a description: {top}");
    }
    let mut checked = 0;
    let mut queue: Vec<Vec<String>> = commands.iter().filter(|c| *c != "help").map(|c| vec![c.clone()]).collect();
    while let Some(command) = queue.pop() {
        let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
        args.push("--help");
        let help = hubsync_cmd(dir.path(), &config, &args);
        let name = command.join(" ");
        assert!(help.status.success(), "{name} --help");
        let help = text(&help.stdout);
        let undescribed = undescribed_options(&help);
        assert!(undescribed.is_empty(), "`{name}` options without help: {undescribed:?}\n{help}");
        checked += help.lines().filter(|l| l.trim_start().starts_with('-')).count();
        for sub in listed_commands(&help).into_iter().filter(|c| c != "help") {
            queue.push(command.iter().cloned().chain([sub]).collect());
        }
    }
    assert!(checked > 40, "the options were found: {checked}");
    // The checker itself catches an option with no description.
    assert_eq!(undescribed_options("Options:\n      --full\n  -h, --help  Print help\n"), ["--full"]);
}

/// The subcommands the top-level help lists, each with its description on its line.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A wrapped description continues on a line indented deeper than the names.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            words.next().map(|_| name.to_string())
        })
        .collect()
}

/// The options of a help text that carry no description: none after the option on its line
/// (separated by two spaces, as clap prints it), and none on the more indented line after it.
fn undescribed_options(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if !trimmed.starts_with('-') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let same_line = trimmed.split("  ").skip(1).any(|part| !part.trim().is_empty());
        let next_line = lines.get(i + 1).is_some_and(|next| {
            let next_trimmed = next.trim_start();
            !next_trimmed.is_empty() && next.len() - next_trimmed.len() > indent && !next_trimmed.starts_with('-')
        });
        if !same_line && !next_line {
            missing.push(trimmed.split_whitespace().next().unwrap_or(trimmed).trim_end_matches(',').to_string());
        }
    }
    missing
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

/// `fields`, `sync --all`, `sync --full` and `reset` through the binary, counted at the emulator.
#[tokio::test(flavor = "multi_thread")]
async fn fields_sync_all_full_and_reset_from_the_command_line() {
    let h = Harness::new().await;
    h.db.exec(
        "CREATE TABLE users AS SELECT g AS user_id, 'u' || g || '@example.com' AS email, 'F' || g AS first_name \
         FROM generate_series(1, 150) g",
    )
    .await;
    let second = GOOD_SYNC.replace("name = \"contacts\"", "name = \"contacts_again\"");
    h.write_config(&format!("{GOOD_SYNC}\n{second}"));

    let out = h.cli(&["fields", "contacts"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let firstname = stdout.lines().find(|l| l.split_whitespace().next() == Some("firstname"));
    assert!(firstname.is_some_and(|l| l.contains("first_name")), "the mapped column is shown: {stdout}");
    assert!(stdout.lines().any(|l| l.split_whitespace().next() == Some("email")), "{stdout}");
    assert_eq!(h.write_requests(), 0, "fields writes nothing");

    // --all runs both syncs: 150 rows each, 2 upserts of 100 each.
    let out = h.cli(&["sync", "--all", "--json"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(h.emulator.count_requests("POST", "/contacts/batch/upsert"), 4);
    assert_eq!(h.emulator.records("contacts").len(), 150);

    // Nothing changed: a plain run sends nothing, --full sends every row again.
    let out = h.cli(&["sync", "contacts"]);
    assert!(out.status.success());
    assert_eq!(h.emulator.count_requests("POST", "/contacts/batch/"), 4, "an unchanged model sends nothing");
    let out = h.cli(&["sync", "contacts", "--full"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(h.emulator.count_requests("POST", "/contacts/batch/"), 6, "--full sends all 150 rows again");

    // reset forgets the snapshot: the next run sends every row, by id (ids are kept).
    let out = h.cli(&["reset", "contacts_again"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("snapshot forgotten"), "{}", text(&out.stdout));
    let out = h.cli(&["sync", "contacts_again"]);
    assert!(out.status.success());
    assert_eq!(h.emulator.count_requests("POST", "/contacts/batch/"), 8, "after reset every row is sent again");
    assert_eq!(h.emulator.records("contacts").len(), 150, "reset creates no record");
    let out = h.cli(&["sync", "contacts"]);
    assert!(out.status.success());
    assert_eq!(h.emulator.count_requests("POST", "/contacts/batch/"), 8, "the other sync's snapshot is untouched");
}

/// The README's test command checks what the tests need before running them, and says so.
#[test]
fn the_test_script_checks_postgres_and_prometheus_first() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test.sh");
    let out = std::process::Command::new(&script).arg("--prerequisites").output().expect("run scripts/test.sh");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("PostgreSQL answers at"), "{said}");
    assert!(said.contains("prometheus and promtool are installed"), "{said}");
    assert!(!said.contains("checking the import graph"), "--prerequisites runs no test: {said}");
    // And then the tools really are there.
    for tool in ["prometheus", "promtool"] {
        crate::common::daemon::require_tool(tool);
    }
}
