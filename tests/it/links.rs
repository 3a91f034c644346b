//! Associations and list membership against PostgreSQL and the emulator: one-to-many links,
//! labels, links that wait for their target, never removing a link, and a list kept equal to
//! the model with only membership changes sent.

use std::collections::BTreeSet;

use crate::common::{text, Harness};
use hubsync::sync::RunStatus;

const SYNC: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, first_name, companies, roles FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { first_name = "firstname" }

[[syncs.associations]]
to = "companies"
column = "companies"
match = "name"

[[syncs.associations]]
to = "companies"
column = "roles"
match = "name"
"#;

fn company_ids(h: &Harness) -> std::collections::BTreeMap<String, String> {
    h.emulator
        .records("companies")
        .into_iter()
        .map(|r| (r.properties.get("name").cloned().unwrap_or_default(), r.id))
        .collect()
}

fn contact_id(h: &Harness, email: &str) -> String {
    h.emulator.find_by_property("contacts", "email", email)[0].id.clone()
}

/// (contact id, company id) -> label names, as the emulator holds them.
fn links(h: &Harness) -> std::collections::BTreeMap<(String, String), BTreeSet<String>> {
    h.emulator
        .associations("contacts", "companies")
        .into_iter()
        .map(|a| ((a.from_id, a.to_id), a.labels.into_iter().flatten().collect()))
        .collect()
}

async fn seed(h: &Harness) {
    for name in ["Acme", "Globex", "Initech", "Umbrella", "Hooli"] {
        h.emulator.insert_record("companies", &[("name", name)]);
    }
    h.emulator.create_association_label("contacts", "companies", "Decision maker");
    h.db.exec(
        r#"CREATE TABLE users (user_id int, email text, first_name text, companies jsonb, roles jsonb);
           INSERT INTO users VALUES
             (1, 'ada@example.com', 'Ada', '["Acme", "Globex", "Initech"]', '{"value": "Acme", "label": "Decision maker"}'),
             (2, 'grace@example.com', 'Grace', '"Umbrella, Hooli"', '[{"value": "Hooli", "label": ["Decision maker", "Billing contact"]}]'),
             (3, 'alan@example.com', 'Alan', NULL, '{"value": "Globex", "label": null}');"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn contacts_link_to_many_companies_with_labels_and_only_new_links_are_sent() {
    let h = Harness::new().await;
    seed(&h).await;
    h.write_config(SYNC);
    let validate = h.cli(&["validate"]);
    assert!(validate.status.success(), "{}{}", text(&validate.stdout), text(&validate.stderr));

    let run = h.run("contacts").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.counts.association_rejected, 0);
    let c = company_ids(&h);
    let (ada, grace, alan) =
        (contact_id(&h, "ada@example.com"), contact_id(&h, "grace@example.com"), contact_id(&h, "alan@example.com"));
    let held = links(&h);
    let pairs: BTreeSet<(String, String)> = held.keys().cloned().collect();
    let expected: BTreeSet<(String, String)> = [
        (&ada, "Acme"),
        (&ada, "Globex"),
        (&ada, "Initech"),
        (&grace, "Umbrella"),
        (&grace, "Hooli"),
        (&alan, "Globex"),
    ]
    .into_iter()
    .map(|(from, to)| (from.clone(), c[to].clone()))
    .collect();
    assert_eq!(pairs, expected, "exactly the model's associations");
    let labels = |from: &String, to: &str| held[&(from.clone(), c[to].clone())].clone();
    assert_eq!(labels(&ada, "Acme"), BTreeSet::from(["Decision maker".to_string()]));
    assert_eq!(labels(&grace, "Hooli"), BTreeSet::from(["Decision maker".to_string(), "Billing contact".to_string()]));
    assert!(labels(&ada, "Globex").is_empty(), "an unlabeled link has only the default type");

    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.counts.associated, 0);
    assert_eq!(h.emulator.count_requests("POST", "/associations/"), 0, "no association request on an unchanged run");
    assert_eq!(h.emulator.count_requests("GET", "/labels"), 0);

    // Moving Alan to Initech adds that link and keeps the old one.
    h.db.exec(r#"UPDATE users SET roles = '{"value": "Initech", "label": null}' WHERE user_id = 3"#).await;
    h.emulator.clear_journal();
    let third = h.run("contacts").await;
    assert_eq!(third.counts.associated, 1);
    assert_eq!(h.emulator.count_requests("POST", "/batch/create"), 1);
    let held = links(&h);
    assert!(held.contains_key(&(alan.clone(), c["Initech"].clone())), "the new company is linked");
    assert!(held.contains_key(&(alan.clone(), c["Globex"].clone())), "the old link stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_label_fails_validate_naming_the_label_and_the_pair() {
    let h = Harness::new().await;
    seed(&h).await;
    h.db.exec(r#"UPDATE users SET roles = '{"value": "Acme", "label": "Chief Rocket Officer"}' WHERE user_id = 1"#)
        .await;
    h.write_config(SYNC);
    let out = h.cli(&["validate"]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("Chief Rocket Officer") && all.contains("contacts to companies"), "{all}");
    assert!(all.contains("syncs[0].associations[1]"), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_waits_for_its_company_and_is_made_once_it_appears() {
    let h = Harness::new().await;
    seed(&h).await;
    h.db.exec(r#"INSERT INTO users VALUES (4, 'ken@example.com', 'Ken', '"Bell Labs"', NULL)"#).await;
    h.write_config(SYNC);
    let first = h.run("contacts").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_eq!(first.counts.association_rejected, 1);
    let status = text(&h.cli(&["status", "contacts"]).stdout);
    assert!(status.contains("ASSOCIATION_TARGET_NOT_FOUND") && status.contains("Bell Labs"), "{status}");

    let bell = h.emulator.insert_record("companies", &[("name", "Bell Labs")]);
    let second = h.run("contacts").await;
    assert_eq!(second.counts.associated, 1);
    assert_eq!(second.counts.association_rejected, 0);
    assert!(links(&h).contains_key(&(contact_id(&h, "ken@example.com"), bell)));
    let status = text(&h.cli(&["status", "contacts"]).stdout);
    assert!(!status.contains("ASSOCIATION_TARGET_NOT_FOUND"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_holds_exactly_the_model_and_only_changes_are_sent() {
    let h = Harness::new().await;
    h.db.exec(
        "CREATE TABLE users AS SELECT i AS user_id, 'u' || i || '@example.com' AS email FROM generate_series(1, 230) i",
    )
    .await;
    h.write_config(
        r#"
[[syncs]]
name = "vip-users"
model = "SELECT user_id, email FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email" }
list = true
"#,
    );
    let model_ids = |h: &Harness, range: Vec<u32>| -> BTreeSet<String> {
        range.into_iter().map(|i| contact_id(h, &format!("u{i}@example.com"))).collect()
    };
    let first = h.run("vip-users").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    let list = h.emulator.list_by_name("vip-users").expect("the list is created with the sync's name");
    assert_eq!(list.processing_type, "MANUAL");
    let members: BTreeSet<String> = h.emulator.list_members(&list.list_id).into_iter().collect();
    assert_eq!(members, model_ids(&h, (1..=230).collect()));

    h.db.exec("DELETE FROM users WHERE user_id = 17; INSERT INTO users VALUES (231, 'u231@example.com')").await;
    h.emulator.clear_journal();
    let second = h.run("vip-users").await;
    assert_eq!((second.counts.list_added, second.counts.list_removed), (1, 1));
    // A run with both adds and removes sends them in one add-and-remove request.
    assert_eq!(h.emulator.count_requests("PUT", "/memberships/add-and-remove"), 1);
    assert_eq!(h.emulator.count_requests("PUT", "/memberships/"), 1, "one membership request in all");
    let members: BTreeSet<String> = h.emulator.list_members(&list.list_id).into_iter().collect();
    let expected = model_ids(&h, (1..=231).filter(|i| *i != 17).collect());
    assert_eq!(members, expected);

    h.emulator.clear_journal();
    h.run("vip-users").await;
    assert_eq!(h.emulator.journal().len(), 0, "an unchanged run sends nothing");

    // A row leaving the model is the run's only change: no record to send, but the list loses
    // the member (a run with nothing to send still notices that the model's keys changed).
    h.db.exec("DELETE FROM users WHERE user_id = 42").await;
    h.emulator.clear_journal();
    let third = h.run("vip-users").await;
    assert_eq!((third.counts.list_added, third.counts.list_removed), (0, 1));
    assert_eq!(h.emulator.count_requests("PUT", "/memberships/remove"), 1);
    let members: BTreeSet<String> = h.emulator.list_members(&list.list_id).into_iter().collect();
    assert_eq!(members, model_ids(&h, (1..=231).filter(|i| *i != 17 && *i != 42).collect()));

    h.emulator.clear_journal();
    h.run("vip-users").await;
    assert_eq!(h.emulator.journal().len(), 0, "an unchanged run sends nothing");
}
