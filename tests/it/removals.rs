//! Rows that leave the model (issue 13) against PostgreSQL and the emulator: `on_delete`
//! archives or clears exactly the records whose rows left and restores those that come back,
//! `remove_stale` removes only hubsync's own stale links, and the delete guard holds removals
//! that are too many (by count, by share, or from a model that returned no rows) until
//! `--allow-deletes`, while everything else is still sent. `plan` shows each kind of change.

use std::collections::BTreeSet;

use crate::common::{text, Harness};
use hubsync::cli::Accounts;
use hubsync::sync::{run_sync, RunOptions, RunStatus, RunSummary};

/// A contacts sync of `users` with extra settings (`on_delete`, `max_deletes`, `list`, ...).
fn contacts_sync(extra: &str) -> String {
    format!(
        r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, first_name FROM users"
primary_key = "user_id"
object = "contacts"
match = {{ column = "email", property = "email" }}
fields = {{ email = "email", first_name = "firstname" }}
{extra}
"#
    )
}

async fn users(h: &Harness, n: u32) {
    h.db.exec(&format!(
        "CREATE TABLE users AS SELECT i AS user_id, 'u' || i || '@example.com' AS email, 'First ' || i AS first_name \
         FROM generate_series(1, {n}) i"
    ))
    .await;
}

async fn run_allowing(h: &Harness, sync: &str) -> RunSummary {
    let config = h.config();
    let accounts = Accounts::build(&config).expect("accounts");
    let spec = config.sync(sync).expect("sync exists");
    let options = RunOptions { trigger: "test".into(), allow_deletes: true, ..RunOptions::default() };
    run_sync(&config, spec, accounts.client(&spec.hubspot).unwrap(), &options).await.expect("run")
}

fn emails(h: &Harness) -> BTreeSet<String> {
    h.emulator.records("contacts").into_iter().filter_map(|r| r.properties.get("email").cloned()).collect()
}

fn firstname(h: &Harness, email: &str) -> Option<String> {
    let found = h.emulator.find_by_property("contacts", "email", email);
    assert_eq!(found.len(), 1, "{email}: {found:?}");
    found[0].properties.get("firstname").cloned().filter(|v| !v.is_empty())
}

fn expected_emails(range: impl Iterator<Item = u32>) -> BTreeSet<String> {
    range.map(|i| format!("u{i}@example.com")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn archive_removes_exactly_the_rows_that_left_once_and_returning_rows_come_back_as_new_records() {
    let h = Harness::new().await;
    users(&h, 300).await;
    h.write_config(&contacts_sync(r#"on_delete = "archive""#));
    let first = h.run("contacts").await;
    assert_eq!((first.status, first.counts.created), (RunStatus::Succeeded, 300), "{:?}", first.error);
    let old_id = h.emulator.find_by_property("contacts", "email", "u5@example.com")[0].id.clone();

    // 30 of 300 rows leave: exactly 10%, within the default max_deletes.
    h.db.exec("DELETE FROM users WHERE user_id <= 30").await;
    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!(second.counts.archived, 30);
    assert_eq!(h.emulator.count_requests("POST", "/contacts/batch/archive"), 1);
    assert_eq!(emails(&h), expected_emails(31..=300), "exactly the rows that left are archived");

    // Handled once: the next run sends nothing.
    h.emulator.clear_journal();
    let third = h.run("contacts").await;
    assert_eq!(third.counts.archived, 0);
    assert_eq!(h.emulator.journal().len(), 0, "an unchanged run sends nothing: {:?}", h.emulator.journal());

    // 10 come back: upserted by email, they get new records (the archived ones stay archived).
    h.db.exec("INSERT INTO users SELECT i, 'u' || i || '@example.com', 'Back ' || i FROM generate_series(1, 10) i")
        .await;
    let fourth = h.run("contacts").await;
    assert_eq!(fourth.status, RunStatus::Succeeded, "{:?}", fourth.error);
    assert_eq!((fourth.counts.created, fourth.counts.archived), (10, 0));
    assert_eq!(emails(&h), expected_emails((1..=10).chain(31..=300)));
    assert_eq!(firstname(&h, "u5@example.com").as_deref(), Some("Back 5"));
    let new_id = h.emulator.find_by_property("contacts", "email", "u5@example.com")[0].id.clone();
    assert_ne!(new_id, old_id, "the emulator creates a new record for a unique value after an archive");
    let state = h.cli(&["status", "contacts", "--json"]);
    assert!(state.status.success(), "{}", text(&state.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn archives_go_100_per_request() {
    let h = Harness::new().await;
    users(&h, 260).await;
    h.write_config(&contacts_sync("on_delete = \"archive\"\nmax_deletes = \"100%\""));
    h.run("contacts").await;
    h.db.exec("DELETE FROM users WHERE user_id <= 250").await;
    h.emulator.clear_journal();
    let run = h.run("contacts").await;
    assert_eq!((run.status, run.counts.archived), (RunStatus::Succeeded, 250), "{:?}", run.error);
    assert_eq!(h.emulator.count_requests("POST", "/contacts/batch/archive"), 3, "100 + 100 + 50");
    assert_eq!(h.emulator.record_count("contacts"), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn clear_empties_the_mapped_properties_keeps_the_records_and_restores_returning_rows() {
    let h = Harness::new().await;
    users(&h, 300).await;
    h.write_config(&contacts_sync(r#"on_delete = "clear""#));
    h.run("contacts").await;
    h.db.exec("DELETE FROM users WHERE user_id > 270").await;
    h.emulator.clear_journal();
    let run = h.run("contacts").await;
    assert_eq!((run.status, run.counts.cleared), (RunStatus::Succeeded, 30), "{:?}", run.error);
    assert_eq!(h.emulator.count_requests("POST", "/contacts/batch/update"), 1);
    assert_eq!(h.emulator.record_count("contacts"), 300, "cleared records stay");
    for i in 1..=300 {
        let expected = (i <= 270).then(|| format!("First {i}"));
        assert_eq!(firstname(&h, &format!("u{i}@example.com")), expected, "row {i}");
    }
    // Handled once.
    h.emulator.clear_journal();
    h.run("contacts").await;
    assert_eq!(h.emulator.journal().len(), 0);

    // 10 come back: their records are updated by id with every value again.
    h.db.exec("INSERT INTO users SELECT i, 'u' || i || '@example.com', 'First ' || i FROM generate_series(271, 280) i")
        .await;
    let back = h.run("contacts").await;
    assert_eq!((back.counts.updated, back.counts.created), (10, 0), "{:?}", back.error);
    assert_eq!(h.emulator.record_count("contacts"), 300);
    for i in 271..=300 {
        let expected = (i <= 280).then(|| format!("First {i}"));
        assert_eq!(firstname(&h, &format!("u{i}@example.com")), expected, "row {i}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_leaves_records_alone_and_a_change_under_the_limit_unlists_without_the_flag() {
    let h = Harness::new().await;
    users(&h, 300).await;
    h.write_config(&contacts_sync("list = true"));
    h.run("contacts").await;
    h.db.exec("DELETE FROM users WHERE user_id <= 30").await;
    h.emulator.clear_journal();
    let run = h.run("contacts").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!((run.counts.list_removed, run.counts.archived, run.counts.cleared), (30, 0, 0));
    assert_eq!(h.write_requests(), 0, "on_delete = nothing touches no record");
    assert_eq!(h.emulator.record_count("contacts"), 300);
    assert_eq!(firstname(&h, "u1@example.com").as_deref(), Some("First 1"));
    let list = h.emulator.list_by_name("contacts").unwrap();
    assert_eq!(h.emulator.list_members(&list.list_id).len(), 270);

    // 10 come back: their records were never touched, so only the list takes them back.
    h.db.exec("INSERT INTO users SELECT i, 'u' || i || '@example.com', 'First ' || i FROM generate_series(1, 10) i")
        .await;
    h.emulator.clear_journal();
    let back = h.run("contacts").await;
    assert_eq!((back.counts.list_added, back.counts.created, back.counts.updated), (10, 0, 0), "{:?}", back.error);
    assert_eq!(h.write_requests(), 0);
    assert_eq!(h.emulator.list_members(&list.list_id).len(), 280);
    assert_eq!(h.emulator.record_count("contacts"), 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emptied_model_archives_and_unlists_nothing_until_allow_deletes() {
    let h = Harness::new().await;
    users(&h, 300).await;
    // Even a limit that allows everything does not let an empty model remove anything.
    h.write_config(&contacts_sync("on_delete = \"archive\"\nmax_deletes = \"100%\"\nlist = true"));
    h.run("contacts").await;
    let list = h.emulator.list_by_name("contacts").unwrap();
    assert_eq!(h.emulator.list_members(&list.list_id).len(), 300);

    h.db.exec("DELETE FROM users").await;
    h.emulator.clear_journal();
    let out = h.cli(&["sync", "contacts"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains("300 removals held: the model returned 0 rows, the snapshot has 300")
            && said.contains("hubsync sync contacts --allow-deletes"),
        "{said}"
    );
    assert_eq!(h.emulator.count_requests("POST", "/batch/archive"), 0);
    assert_eq!(h.emulator.count_requests("PUT", "/memberships/remove"), 0);
    assert_eq!(h.emulator.record_count("contacts"), 300);
    assert_eq!(h.emulator.list_members(&list.list_id).len(), 300);
    let status = text(&h.cli(&["status", "contacts"]).stdout);
    assert!(status.contains("held") && status.contains("300 removals held"), "{status}");
    let json = text(&h.cli(&["status", "contacts", "--json"]).stdout);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value[0]["runs"][0]["status"], "held", "{json}");
    assert_eq!(value[0]["runs"][0]["counts"]["removals_held"], 300, "{json}");

    // Still held on the next run; with --allow-deletes exactly the held removals go.
    assert_eq!(h.cli(&["sync", "contacts"]).status.code(), Some(3));
    h.emulator.clear_journal();
    let out = h.cli(&["sync", "contacts", "--allow-deletes"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(h.emulator.record_count("contacts"), 0);
    assert_eq!(h.emulator.count_requests("POST", "/contacts/batch/archive"), 3);
    assert_eq!(h.emulator.count_requests("PUT", "/memberships/remove"), 1);
    assert!(h.emulator.list_members(&list.list_id).is_empty());
    h.emulator.clear_journal();
    let after = h.cli(&["sync", "contacts"]);
    assert!(after.status.success(), "{}", text(&after.stderr));
    assert_eq!(h.write_requests(), 0, "nothing is left to remove");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guard_holds_over_a_count_and_over_a_share_but_still_sends_everything_else() {
    let h = Harness::new().await;
    users(&h, 300).await;
    h.write_config(&contacts_sync("on_delete = \"archive\"\nmax_deletes = 20"));
    h.run("contacts").await;
    h.db.exec(
        "DELETE FROM users WHERE user_id <= 30; UPDATE users SET first_name = 'Changed' WHERE user_id = 100; \
         INSERT INTO users VALUES (301, 'u301@example.com', 'New')",
    )
    .await;
    let held = h.run("contacts").await;
    assert_eq!(held.status, RunStatus::Held, "{:?}", held.error);
    let message = held.error.clone().unwrap_or_default();
    assert!(
        message.starts_with("30 removals held: the model returned 271 rows, the snapshot has 301")
            && message.contains("max_deletes = 20 allows 20"),
        "{message}"
    );
    assert_eq!((held.counts.created, held.counts.updated, held.counts.archived), (1, 1, 0));
    assert_eq!(held.counts.removals_held, 30);
    assert_eq!(h.emulator.record_count("contacts"), 301, "nothing archived, the new record created");
    assert_eq!(firstname(&h, "u100@example.com").as_deref(), Some("Changed"));

    // The same change against the default share (10% of 301 is 30.1): 31 leaving is held.
    h.write_config(&contacts_sync(r#"on_delete = "archive""#));
    h.db.exec("DELETE FROM users WHERE user_id = 31").await;
    let share = h.run("contacts").await;
    assert_eq!(share.status, RunStatus::Held);
    assert!(share.error.as_deref().unwrap_or("").contains("max_deletes = \"10%\" allows 30"), "{:?}", share.error);

    let allowed = run_allowing(&h, "contacts").await;
    assert_eq!((allowed.status, allowed.counts.archived), (RunStatus::Succeeded, 31), "{:?}", allowed.error);
    assert_eq!(emails(&h), expected_emails(32..=301));
}

const LINKED: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, companies, roles FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email" }
max_deletes = "100%"

[[syncs.associations]]
to = "companies"
column = "companies"
match = "name"
remove_stale = true

[[syncs.associations]]
to = "companies"
column = "roles"
match = "name"
remove_stale = true
"#;

/// (contact email, company name) -> labels, as the emulator holds them.
fn links(h: &Harness) -> std::collections::BTreeMap<(String, String), BTreeSet<String>> {
    let names: std::collections::BTreeMap<String, String> = h
        .emulator
        .records("companies")
        .into_iter()
        .map(|r| (r.id, r.properties.get("name").cloned().unwrap_or_default()))
        .collect();
    let mut mails: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for r in h.emulator.records("contacts") {
        mails.insert(r.id, r.properties.get("email").cloned().unwrap_or_default());
    }
    h.emulator
        .associations("contacts", "companies")
        .into_iter()
        .map(|a| {
            let key = (mails.get(&a.from_id).cloned().unwrap_or(a.from_id), names[&a.to_id].clone());
            (key, a.labels.into_iter().flatten().collect())
        })
        .collect()
}

fn pair(email: &str, company: &str, labels: &[&str]) -> ((String, String), BTreeSet<String>) {
    ((email.to_string(), company.to_string()), labels.iter().map(|l| l.to_string()).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_stale_removes_only_hubsyncs_own_stale_links() {
    let h = Harness::new().await;
    for name in ["Acme", "Globex", "Initech", "Umbrella"] {
        h.emulator.insert_record("companies", &[("name", name)]);
    }
    h.emulator.create_association_label("contacts", "companies", "Decision maker");
    h.db.exec(
        r#"CREATE TABLE users (user_id int, email text, companies jsonb, roles jsonb);
           INSERT INTO users VALUES
             (1, 'ada@example.com', '["Acme", "Globex"]', '{"value": "Initech", "label": "Decision maker"}'),
             (2, 'grace@example.com', '"Umbrella"', NULL),
             (3, 'alan@example.com', '"Acme"', NULL);"#,
    )
    .await;
    h.write_config(LINKED);
    let first = h.run("contacts").await;
    assert_eq!((first.status, first.counts.associated), (RunStatus::Succeeded, 5), "{:?}", first.error);

    // A link made by hand, outside hubsync, between Alan and Umbrella.
    let alan = h.emulator.find_by_property("contacts", "email", "alan@example.com")[0].id.clone();
    let umbrella = h.emulator.find_by_property("companies", "name", "Umbrella")[0].id.clone();
    let response = reqwest::Client::new()
        .put(format!(
            "{}/crm/v4/objects/contacts/{alan}/associations/default/companies/{umbrella}",
            h.emulator.base_url()
        ))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());

    // Ada drops Globex and keeps Initech without its label; Grace leaves the model.
    h.db.exec(
        r#"UPDATE users SET companies = '["Acme"]', roles = '{"value": "Initech", "label": null}' WHERE user_id = 1;
           DELETE FROM users WHERE user_id = 2;"#,
    )
    .await;
    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    let held = links(&h);
    let expected: std::collections::BTreeMap<_, _> = [
        pair("ada@example.com", "Acme", &[]),
        pair("ada@example.com", "Initech", &[]),
        pair("alan@example.com", "Acme", &[]),
        pair("alan@example.com", "Umbrella", &[]),
    ]
    .into_iter()
    .collect();
    assert_eq!(held, expected, "stale links and labels gone, the hand-made link kept");
    assert_eq!(second.counts.unlinked, 3, "Ada-Globex, Ada-Initech's label, Grace-Umbrella");
    assert_eq!(h.emulator.count_requests("POST", "/batch/labels/archive"), 1);
    assert_eq!(h.emulator.count_requests("POST", "/contacts/companies/batch/archive"), 1);
    assert_eq!(h.emulator.record_count("contacts"), 3, "on_delete = nothing keeps Grace's record");

    // Nothing is removed twice; Grace coming back is linked again.
    h.emulator.clear_journal();
    h.run("contacts").await;
    assert_eq!(h.emulator.count_requests("POST", "/associations/"), 0);
    h.db.exec(r#"INSERT INTO users VALUES (2, 'grace@example.com', '"Umbrella"', NULL)"#).await;
    let back = h.run("contacts").await;
    assert_eq!(back.counts.associated, 1, "{:?}", back.error);
    assert!(links(&h).contains_key(&("grace@example.com".to_string(), "Umbrella".to_string())));
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_archives_links_list_changes_and_the_guard() {
    let h = Harness::new().await;
    for name in ["Acme", "Globex"] {
        h.emulator.insert_record("companies", &[("name", name)]);
    }
    h.db.exec(
        "CREATE TABLE users AS SELECT i AS user_id, 'u' || i || '@example.com' AS email, 'Acme' AS company \
         FROM generate_series(1, 20) i",
    )
    .await;
    let sync = r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, company FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email" }
on_delete = "archive"
max_deletes = 5
list = true

[[syncs.associations]]
to = "companies"
column = "company"
match = "name"
remove_stale = true
"#;
    h.write_config(sync);
    let first = h.run("contacts").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    h.db.exec(
        "DELETE FROM users WHERE user_id <= 3; UPDATE users SET company = 'Globex' WHERE user_id IN (4, 5, 6); \
         INSERT INTO users VALUES (21, 'u21@example.com', 'Globex')",
    )
    .await;
    h.emulator.clear_journal();
    let out = h.cli(&["plan", "contacts"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    let line = |label: &str| said.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or("").to_string();
    assert!(line("archive (row left the model)").contains(" 3 "), "{said}");
    assert!(line("remove stale association").contains(" 3 "), "only the changed rows' links: {said}");
    assert!(line("associate").contains(" 4 "), "{said}");
    assert!(line("remove from list").contains(" 3 "), "{said}");
    assert!(said.contains("the delete guard would hold the removals: 6 removals held"), "{said}");
    let sampled =
        |words: &[&str]| said.lines().any(|l| l.split_whitespace().take(words.len()).eq(words.iter().copied()));
    assert!(
        sampled(&["1", "archive", "record"])
            && sampled(&["4", "unlink", "companies", "Acme"])
            && sampled(&["2", "list", "remove"])
            && sampled(&["21", "associate", "companies", "Globex"]),
        "samples: {said}"
    );
    assert_eq!(h.write_requests(), 0, "plan sends nothing");
    let json: serde_json::Value = serde_json::from_str(&text(&h.cli(&["plan", "contacts", "--json"]).stdout)).unwrap();
    assert_eq!((json["archive"].as_u64(), json["list_removes"].as_u64()), (Some(3), Some(3)), "{json}");
    assert_eq!(json["removal_records"], 6);

    // Within the limit, the plan says so and the run sends it.
    h.write_config(&sync.replace("max_deletes = 5", "max_deletes = 6"));
    let said = text(&h.cli(&["plan", "contacts"]).stdout);
    assert!(!said.contains("would hold") && said.contains("6 record(s) lose something"), "{said}");
    let run = h.run("contacts").await;
    assert_eq!((run.status, run.counts.archived, run.counts.unlinked), (RunStatus::Succeeded, 3, 3), "{:?}", run.error);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_holds_removals_until_a_run_request_allows_them() {
    use crate::common::daemon::{post_json, wait_request, DaemonProcess};
    use serde_json::json;
    use std::time::Duration;

    let h = Harness::new().await;
    users(&h, 40).await;
    h.write_config(&contacts_sync(r#"on_delete = "archive""#));
    h.run("contacts").await;
    h.db.exec("DELETE FROM users").await;
    let daemon = DaemonProcess::start(h.dir.path(), &h.config_path()).await;
    let base = daemon.url.clone();
    let token = std::fs::read_to_string(h.dir.path().join("state/admin-token")).expect("generated admin token");
    let run = |body: serde_json::Value| {
        let (base, token) = (base.clone(), token.trim().to_string());
        async move {
            let (code, accepted) = post_json(&format!("{base}/syncs/contacts/run"), body, Some(&token)).await;
            assert_eq!(code, 202, "{accepted}");
            wait_request(&base, "contacts", accepted["request_id"].as_u64().unwrap(), Duration::from_secs(60)).await
        }
    };
    let held = run(json!({})).await;
    assert_eq!(held["state"], "held", "{held}");
    assert!(held["run"]["error"].as_str().unwrap_or("").contains("40 removals held"), "{held}");
    assert_eq!(h.emulator.record_count("contacts"), 40);
    let out = h.cli(&["trigger", "contacts", "--wait", "--daemon", &base]);
    assert_eq!(out.status.code(), Some(3), "{}{}", text(&out.stdout), text(&out.stderr));

    let allowed = run(json!({"allow_deletes": true})).await;
    assert_eq!(allowed["state"], "succeeded", "{allowed}");
    assert_eq!(allowed["run"]["counts"]["archived"], 40, "{allowed}");
    assert_eq!(h.emulator.record_count("contacts"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_stale_link_of_a_changed_row_is_still_removed_by_a_later_allow_deletes() {
    let h = Harness::new().await;
    for name in ["Acme", "Globex", "Initech"] {
        h.emulator.insert_record("companies", &[("name", name)]);
    }
    h.db.exec(
        r#"CREATE TABLE users (user_id int, email text, companies jsonb, roles jsonb);
           INSERT INTO users VALUES (1, 'ada@example.com', '["Acme", "Globex"]', NULL);"#,
    )
    .await;
    h.write_config(&LINKED.replace(r#"max_deletes = "100%""#, "max_deletes = 0"));
    h.run("contacts").await;
    h.db.exec(r#"UPDATE users SET companies = '["Acme", "Initech"]'"#).await;
    let held = h.run("contacts").await;
    assert_eq!((held.status, held.counts.associated, held.counts.removals_held), (RunStatus::Held, 1, 1));
    assert!(links(&h).contains_key(&("ada@example.com".to_string(), "Globex".to_string())), "held");
    // The row is unchanged from now on; the stale link is remembered, and still held.
    let again = h.run("contacts").await;
    assert_eq!((again.status, again.counts.removals_held), (RunStatus::Held, 1), "{:?}", again.error);
    let allowed = run_allowing(&h, "contacts").await;
    assert_eq!((allowed.status, allowed.counts.unlinked), (RunStatus::Succeeded, 1), "{:?}", allowed.error);
    let companies: BTreeSet<String> = links(&h).into_keys().map(|(_, company)| company).collect();
    assert_eq!(companies, BTreeSet::from(["Acme".to_string(), "Initech".to_string()]));
    assert_eq!(h.run("contacts").await.status, RunStatus::Succeeded, "nothing is left to hold");
}
