//! Records and lists that change in HubSpot behind the sync's back, against PostgreSQL and the
//! emulator: a record merged into another (the update lands on the survivor in the same run and
//! the id map moves), a record deleted (an upsert re-creates it in the same run, update mode
//! skips and counts it), association targets merged or deleted, a list deleted (created again
//! and refilled) or renamed (still found by its id), and list changes sent as add-and-remove.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::common::{text, Harness, CONTACTS_SYNC};
use hubsync::state::{list_checked_key, StateReader, StateStore};
use hubsync::sync::RunStatus;

fn state_path(h: &Harness, sync: &str) -> PathBuf {
    h.dir.path().join("state").join(format!("{sync}.duckdb"))
}

/// The HubSpot id the sync's state holds for a model key.
fn mapped_id(h: &Harness, sync: &str, pk: &str) -> Option<String> {
    StateReader::open_read_only(&state_path(h, sync)).unwrap().hubspot_id(pk).unwrap()
}

fn rejections(h: &Harness, sync: &str) -> u64 {
    StateReader::open_read_only(&state_path(h, sync)).unwrap().rejections(10).unwrap().1
}

fn contact_id(h: &Harness, email: &str) -> String {
    let found = h.emulator.find_by_property("contacts", "email", email);
    assert_eq!(found.len(), 1, "one live contact with {email}");
    found[0].id.clone()
}

/// Requests whose path ends with `suffix` (`count_requests` matches anywhere in the path).
fn requests_ending(h: &Harness, method: &str, suffix: &str) -> usize {
    h.emulator.journal().iter().filter(|e| e.method == method && e.path.ends_with(suffix)).count()
}

async fn users(h: &Harness) {
    h.db.exec(
        "CREATE TABLE users (user_id int, email text, first_name text);
         INSERT INTO users VALUES (1, 'ada@example.com', 'Ada'), (2, 'grace@example.com', 'Grace'),
                                  (3, 'alan@example.com', 'Alan');",
    )
    .await;
}

const COMPANIES_SYNC: &str = r#"
[[syncs]]
name = "companies"
model = "SELECT firm_id, name, domain FROM firms"
primary_key = "firm_id"
object = "companies"
match = { column = "domain", property = "domain" }
fields = { name = "name", domain = "domain" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_update_of_a_merged_company_lands_on_the_survivor_in_the_same_run() {
    let h = Harness::new().await;
    h.db.exec(
        "CREATE TABLE firms (firm_id int, name text, domain text);
         INSERT INTO firms VALUES (1, 'Acme', 'acme.example'), (2, 'Globex', 'globex.example');",
    )
    .await;
    h.write_config(COMPANIES_SYNC);
    let first = h.run("companies").await;
    assert_eq!((first.status, first.counts.created), (RunStatus::Succeeded, 2), "{:?}", first.error);
    let acme = mapped_id(&h, "companies", "1").expect("acme's id is known");

    // Someone merges Acme into a company they made by hand.
    let survivor =
        h.emulator.insert_record("companies", &[("name", "Acme Holdings"), ("domain", "acme-holdings.example")]);
    h.emulator.merge_records("companies", &survivor, &acme);
    h.db.exec("UPDATE firms SET name = 'Acme Corporation' WHERE firm_id = 1").await;
    h.emulator.clear_journal();
    let second = h.run("companies").await;
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!((second.counts.updated, second.counts.merged, second.counts.rejected), (1, 1, 0));
    assert_eq!(h.emulator.count_requests("POST", "/batch/update"), 2, "the update, then the same to the survivor");
    assert_eq!(requests_ending(&h, "GET", &format!("/companies/{acme}")), 1, "the merged-away id is read once");
    let held = h.emulator.records("companies");
    let kept = held.iter().find(|r| r.id == survivor).expect("the survivor is there");
    assert_eq!(kept.properties.get("name").map(String::as_str), Some("Acme Corporation"));
    assert_eq!(held.len(), 2, "no company was created");
    assert_eq!(mapped_id(&h, "companies", "1").as_deref(), Some(survivor.as_str()), "the id map moved");
    assert_eq!(rejections(&h, "companies"), 0, "no rejection is left");

    h.emulator.clear_journal();
    let third = h.run("companies").await;
    assert_eq!(third.counts.requests, 0, "an unchanged run sends nothing");
    h.db.exec("UPDATE firms SET name = 'Acme Inc' WHERE firm_id = 1").await;
    h.emulator.clear_journal();
    let fourth = h.run("companies").await;
    assert_eq!((fourth.counts.updated, fourth.counts.merged), (1, 0));
    assert_eq!(h.emulator.count_requests("POST", "/batch/update"), 1, "later updates go straight to the survivor");

    let status = h.cli(&["status", "companies"]);
    let out = text(&status.stdout);
    assert!(status.status.success(), "{out}{}", text(&status.stderr));
    assert!(out.contains("merged") && out.contains("vanished"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contact_deleted_in_hubspot_is_created_again_in_the_same_run() {
    let h = Harness::new().await;
    users(&h).await;
    h.write_config(CONTACTS_SYNC);
    let first = h.run("contacts").await;
    assert_eq!(first.counts.created, 3, "{:?}", first.error);
    let old = contact_id(&h, "ada@example.com");
    assert!(h.emulator.archive_record("contacts", &old));

    h.db.exec("UPDATE users SET first_name = 'Augusta' WHERE user_id = 1").await;
    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!((second.counts.vanished, second.counts.created, second.counts.rejected), (1, 1, 0));
    let new = contact_id(&h, "ada@example.com");
    assert_ne!(new, old, "a new record");
    let record = h.emulator.find_by_property("contacts", "email", "ada@example.com").remove(0);
    assert_eq!(record.properties.get("firstname").map(String::as_str), Some("Augusta"), "with every value");
    assert_eq!(mapped_id(&h, "contacts", "1").as_deref(), Some(new.as_str()));
    assert_eq!(rejections(&h, "contacts"), 0);
    assert_eq!(h.emulator.count_requests("POST", "/batch/upsert"), 1);

    h.emulator.clear_journal();
    let third = h.run("contacts").await;
    assert_eq!((third.counts.requests, third.counts.vanished), (0, 0), "nothing is left to do");
}

#[tokio::test(flavor = "multi_thread")]
async fn in_update_mode_a_deleted_record_is_skipped_and_counted() {
    let h = Harness::new().await;
    users(&h).await;
    for email in ["ada@example.com", "grace@example.com", "alan@example.com"] {
        h.emulator.insert_record("contacts", &[("email", email)]);
    }
    h.write_config(&CONTACTS_SYNC.replace("object = \"contacts\"", "object = \"contacts\"\nmode = \"update\""));
    let first = h.run("contacts").await;
    assert_eq!(first.counts.updated, 3, "{:?}", first.error);
    let old = contact_id(&h, "grace@example.com");
    assert!(h.emulator.archive_record("contacts", &old));

    h.db.exec("UPDATE users SET first_name = 'Grace B.' WHERE user_id = 2").await;
    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!(
        (second.counts.vanished, second.counts.skipped, second.counts.rejected, second.counts.created),
        (1, 1, 0, 0)
    );
    assert!(h.emulator.find_by_property("contacts", "email", "grace@example.com").is_empty(), "nothing is created");
    assert_eq!(h.emulator.count_requests("POST", "/batch/read"), 1, "matched again by email, not found");
    assert_eq!(mapped_id(&h, "contacts", "2"), None, "the id is forgotten");
    assert_eq!(rejections(&h, "contacts"), 0);
}

const LINKED_SYNC: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, first_name, company FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email", first_name = "firstname" }

[[syncs.associations]]
to = "companies"
column = "company"
match = "name"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn association_targets_merged_or_deleted_are_linked_where_they_are_now() {
    let h = Harness::new().await;
    let acme = h.emulator.insert_record("companies", &[("name", "Acme")]);
    let globex = h.emulator.insert_record("companies", &[("name", "Globex")]);
    h.db.exec(
        "CREATE TABLE users (user_id int, email text, first_name text, company text);
         INSERT INTO users VALUES (1, 'ada@example.com', 'Ada', 'Acme'), (2, 'grace@example.com', 'Grace', 'Globex');",
    )
    .await;
    h.write_config(LINKED_SYNC);
    let first = h.run("contacts").await;
    assert_eq!((first.counts.created, first.counts.associated), (2, 2), "{:?}", first.error);

    // Acme is merged into another company; Globex is deleted and made again by hand.
    let holdings = h.emulator.insert_record("companies", &[("name", "Acme Holdings")]);
    h.emulator.merge_records("companies", &holdings, &acme);
    assert!(h.emulator.archive_record("companies", &globex));
    let new_globex = h.emulator.insert_record("companies", &[("name", "Globex")]);
    // New rows name the companies whose ids the sync looked up before.
    h.db.exec(
        "INSERT INTO users VALUES (3, 'alan@example.com', 'Alan', 'Acme'), (4, 'edsger@example.com', 'Edsger', 'Globex')",
    )
    .await;
    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!((second.counts.associated, second.counts.association_rejected), (2, 0));
    assert_eq!((second.counts.merged, second.counts.vanished), (1, 1));
    let links: BTreeSet<(String, String)> =
        h.emulator.associations("contacts", "companies").into_iter().map(|a| (a.from_id, a.to_id)).collect();
    let (alan, edsger) = (contact_id(&h, "alan@example.com"), contact_id(&h, "edsger@example.com"));
    assert!(links.contains(&(alan, holdings.clone())), "linked to the survivor: {links:?}");
    assert!(links.contains(&(edsger, new_globex.clone())), "linked to the company that has the value now: {links:?}");

    // The lookups moved with them: a third row is linked at once, without a failed attempt.
    h.db.exec("INSERT INTO users VALUES (5, 'barbara@example.com', 'Barbara', 'Acme')").await;
    h.emulator.clear_journal();
    let third = h.run("contacts").await;
    assert_eq!((third.counts.associated, third.counts.merged, third.counts.vanished), (1, 0, 0));
    assert_eq!(h.emulator.count_requests("POST", "/associations/"), 1);
    let barbara = contact_id(&h, "barbara@example.com");
    assert!(h
        .emulator
        .associations("contacts", "companies")
        .iter()
        .any(|a| a.from_id == barbara && a.to_id == holdings));
}

const LIST_SYNC: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, first_name FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email", first_name = "firstname" }
list = { name = "Synced users" }
"#;

fn members(h: &Harness, list_id: &str) -> BTreeSet<String> {
    h.emulator.list_members(list_id).into_iter().collect()
}

fn model_ids(h: &Harness, emails: &[&str]) -> BTreeSet<String> {
    emails.iter().map(|e| contact_id(h, e)).collect()
}

/// Makes the next run read the list by id, as it does once an hour.
fn age_list_check(h: &Harness, list_id: &str) {
    let mut store = StateStore::open(&state_path(h, "contacts")).unwrap();
    store.meta_set(&list_checked_key(list_id), "0").unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_deleted_in_hubspot_is_created_again_and_refilled() {
    let h = Harness::new().await;
    users(&h).await;
    h.write_config(LIST_SYNC);
    let first = h.run("contacts").await;
    assert_eq!(first.counts.list_added, 3, "{:?}", first.error);
    let old = h.emulator.list_by_name("Synced users").unwrap().list_id;

    // Deleted, then a run with a membership change: the change meets the 404.
    assert!(h.emulator.delete_list(&old));
    h.db.exec("INSERT INTO users VALUES (4, 'edsger@example.com', 'Edsger')").await;
    let out = h.cli(&["sync", "contacts"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(log.contains("deleted in HubSpot"), "a warning says the list is made again: {log}");
    let again = h.emulator.list_by_name("Synced users").expect("the list exists again");
    assert_ne!(again.list_id, old);
    let all = ["ada@example.com", "grace@example.com", "alan@example.com", "edsger@example.com"];
    assert_eq!(members(&h, &again.list_id), model_ids(&h, &all), "refilled with every model record");

    // Deleted again, and the model does not change: the hourly check by id finds out.
    assert!(h.emulator.delete_list(&again.list_id));
    age_list_check(&h, &again.list_id);
    h.emulator.clear_journal();
    let third = h.run("contacts").await;
    assert_eq!((third.status, third.counts.list_added), (RunStatus::Succeeded, 4), "{:?}", third.error);
    let third_list = h.emulator.list_by_name("Synced users").expect("made again");
    assert_eq!(members(&h, &third_list.list_id), model_ids(&h, &all));
    assert_eq!(h.write_requests(), 0, "no record is sent again");

    h.emulator.clear_journal();
    let fourth = h.run("contacts").await;
    assert_eq!(fourth.counts.requests, 0, "then an unchanged run sends nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_list_is_found_by_its_id_and_changes_go_in_one_add_and_remove() {
    let h = Harness::new().await;
    users(&h).await;
    h.write_config(LIST_SYNC);
    h.run("contacts").await;
    let list = h.emulator.list_by_name("Synced users").unwrap().list_id;
    assert!(h.emulator.rename_list(&list, "Customers (renamed by a person)"));
    age_list_check(&h, &list);

    // One row leaves, one arrives: one request carries both.
    h.db.exec("DELETE FROM users WHERE user_id = 2; INSERT INTO users VALUES (4, 'edsger@example.com', 'Edsger')")
        .await;
    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!((second.counts.list_added, second.counts.list_removed), (1, 1));
    assert_eq!(requests_ending(&h, "PUT", "/memberships/add-and-remove"), 1);
    assert_eq!(requests_ending(&h, "PUT", "/memberships/add") + requests_ending(&h, "PUT", "/memberships/remove"), 0);
    assert_eq!(requests_ending(&h, "GET", &format!("/lists/2026-03/{list}")), 1, "read by id");
    assert!(h.emulator.list_by_name("Synced users").is_none(), "no list was made under the old name");
    assert_eq!(
        members(&h, &list),
        model_ids(&h, &["ada@example.com", "alan@example.com", "edsger@example.com"]),
        "the renamed list is still the sync's list"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_member_merged_away_is_added_as_its_survivor() {
    let h = Harness::new().await;
    users(&h).await;
    h.write_config(CONTACTS_SYNC);
    h.run("contacts").await;
    let grace = contact_id(&h, "grace@example.com");
    let survivor = h.emulator.insert_record("contacts", &[("email", "grace.hopper@example.com")]);
    h.emulator.merge_records("contacts", &survivor, &grace);

    // The list comes later: its first adds name a merged-away id.
    h.write_config(LIST_SYNC);
    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!((second.counts.list_added, second.counts.merged), (3, 1));
    let list = h.emulator.list_by_name("Synced users").unwrap().list_id;
    let expected: BTreeSet<String> =
        [contact_id(&h, "ada@example.com"), survivor.clone(), contact_id(&h, "alan@example.com")].into();
    assert_eq!(members(&h, &list), expected);
    assert_eq!(mapped_id(&h, "contacts", "2").as_deref(), Some(survivor.as_str()));
    h.emulator.clear_journal();
    assert_eq!(h.run("contacts").await.counts.requests, 0, "an unchanged run sends nothing");
}
