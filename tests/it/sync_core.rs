//! The core sync against real PostgreSQL and the emulator over real HTTP: delivery in full
//! batches, no-change runs, field-level updates, matching by search, custom objects,
//! rejections and their retry, modes, and value conversion.

use crate::common::{text, Harness};
use hubsync::sync::RunStatus;
use serde_json::json;

const CONTACTS_SYNC: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT user_id, email, first_name, last_name, plan FROM users"
primary_key = "user_id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email", first_name = "firstname", last_name = "lastname", plan = "plan_tier" }
"#;

fn plan_property() -> serde_json::Value {
    json!({"name": "plan_tier", "label": "Plan", "type": "enumeration", "fieldType": "select", "groupName": "contactinformation",
           "options": [{"label": "Free", "value": "free", "displayOrder": 0, "hidden": false},
                       {"label": "Pro", "value": "pro", "displayOrder": 1, "hidden": false},
                       {"label": "Enterprise", "value": "enterprise", "displayOrder": 2, "hidden": false}]})
}

async fn contacts_harness(rows: u32) -> Harness {
    let h = Harness::new().await;
    h.emulator.create_property("contacts", plan_property());
    h.db.exec(&format!(
        "CREATE TABLE users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email, 'First' || i AS first_name,
                'Last' || i AS last_name, (ARRAY['free','pro','enterprise'])[1 + i % 3] AS plan
         FROM generate_series(1, {rows}) AS i"
    ))
    .await;
    h.write_config(CONTACTS_SYNC);
    h
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_contacts_then_nothing_then_only_the_changed_properties() {
    let h = contacts_harness(10_000).await;

    let first = h.run("contacts").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_eq!(first.counts.created, 10_000);
    assert_eq!(h.emulator.record_count("contacts"), 10_000);
    assert!(h.write_requests() <= 100, "{} write requests", h.write_requests());
    let ada = h.emulator.find_by_property("contacts", "email", "user42@example.com");
    assert_eq!(ada.len(), 1);
    assert_eq!(ada[0].properties.get("firstname").map(String::as_str), Some("First42"));
    assert_eq!(ada[0].properties.get("plan_tier").map(String::as_str), Some("free"));

    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.counts.unchanged, 10_000);
    assert_eq!(h.write_requests(), 0, "a run with no change must not write");
    assert_eq!(second.counts.requests, 0, "a run with no change makes no request at all");

    h.db.exec(
        "UPDATE users SET first_name = first_name || 'x', last_name = last_name || 'y', plan = 'enterprise'
         WHERE user_id % 3 = 0 AND user_id <= 450",
    )
    .await;
    h.emulator.clear_journal();
    let third = h.run("contacts").await;
    assert_eq!(third.counts.updated, 150);
    assert_eq!(h.write_requests(), 2, "150 changed rows are 2 batches");
    assert_eq!(h.emulator.count_requests("POST", "/batch/update"), 2, "known ids are updated by id");
    let bodies = h.emulator.request_bodies("POST", "/batch/update");
    assert_eq!(bodies.len(), 2);
    for body in bodies {
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        for input in body["inputs"].as_array().unwrap() {
            let mut keys: Vec<&str> = input["properties"].as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort();
            assert_eq!(keys, vec!["firstname", "lastname", "plan_tier"]);
        }
    }
    let changed = h.emulator.find_by_property("contacts", "email", "user300@example.com");
    assert_eq!(changed[0].properties.get("plan_tier").map(String::as_str), Some("enterprise"));
    assert_eq!(changed[0].properties.get("lastname").map(String::as_str), Some("Last300y"));
    let untouched = h.emulator.find_by_property("contacts", "email", "user301@example.com");
    assert_eq!(untouched[0].properties.get("lastname").map(String::as_str), Some("Last301"));
}

#[tokio::test(flavor = "multi_thread")]
async fn companies_on_a_non_unique_name_are_searched_once_and_never_duplicated() {
    let h = Harness::new().await;
    for i in 1..=40 {
        h.emulator.insert_record("companies", &[("name", &format!("Company {i}")), ("city", "Old")]);
    }
    h.db.exec(
        "CREATE TABLE accounts AS SELECT i AS account_id, 'Company ' || i AS name, 'City' || i AS city
         FROM generate_series(1, 250) AS i",
    )
    .await;
    h.write_config(
        r#"
[[syncs]]
name = "companies"
model = "SELECT account_id, name, city FROM accounts"
primary_key = "account_id"
object = "companies"
match = { column = "name", property = "name" }
fields = { city = "city" }
"#,
    );
    let validate = h.cli(&["validate"]);
    assert!(validate.status.success(), "{}", text(&validate.stderr));
    let out = text(&validate.stdout);
    assert!(out.contains("warning") && out.contains("external_id"), "validate warns about a non-unique match: {out}");

    let first = h.run("companies").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_eq!(first.counts.created, 210);
    assert_eq!(first.counts.updated, 40);
    assert_eq!(h.emulator.count_requests("POST", "/search"), 3, "250 names are 3 searches of 100 values");
    assert_eq!(h.emulator.record_count("companies"), 250, "found companies are not created again");
    for i in [1, 40, 41, 250] {
        let found = h.emulator.find_by_property("companies", "name", &format!("Company {i}"));
        assert_eq!(found.len(), 1, "Company {i} exists once");
        assert_eq!(found[0].properties.get("city").map(String::as_str), Some(format!("City{i}").as_str()));
    }

    h.db.exec("UPDATE accounts SET city = city || ' North'").await;
    h.emulator.clear_journal();
    let second = h.run("companies").await;
    assert_eq!(second.counts.updated, 250);
    assert_eq!(h.emulator.count_requests("POST", "/search"), 0, "ids learned once are reused");
    assert_eq!(h.emulator.count_requests("POST", "/batch/update"), 3);
    assert_eq!(h.emulator.record_count("companies"), 250);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_object_syncs_end_to_end() {
    let h = Harness::new().await;
    let type_id = h.emulator.create_custom_object(json!({
        "name": "pets",
        "labels": {"singular": "Pet", "plural": "Pets"},
        "primaryDisplayProperty": "pet_name",
        "requiredProperties": ["pet_name"],
        "properties": [
            {"name": "pet_name", "label": "Name", "type": "string", "fieldType": "text"},
            {"name": "pet_id", "label": "Pet id", "type": "string", "fieldType": "text", "hasUniqueValue": true},
            {"name": "weight_kg", "label": "Weight", "type": "number", "fieldType": "number"}
        ],
        "associatedObjects": ["CONTACT"]
    }));
    assert!(type_id.starts_with("2-"), "{type_id}");
    h.db.exec(
        "CREATE TABLE pets AS SELECT 'pet-' || i AS id, 'Rex ' || i AS name, (i * 1.5)::numeric(6,2) AS weight
         FROM generate_series(1, 120) AS i",
    )
    .await;
    h.write_config(
        r#"
[[syncs]]
name = "pets"
model = "SELECT id, name, weight FROM pets"
primary_key = "id"
object = "pets"
match = { column = "id", property = "pet_id" }
fields = { name = "pet_name", weight = "weight_kg" }
"#,
    );
    let run = h.run("pets").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.counts.created, 120);
    assert_eq!(h.emulator.record_count(&type_id), 120);
    assert_eq!(h.emulator.count_requests("POST", &format!("/{type_id}/batch/upsert")), 2);
    let rex = h.emulator.find_by_property(&type_id, "pet_id", "pet-3");
    assert_eq!(rex[0].properties.get("weight_kg").map(String::as_str), Some("4.5"), "numbers without trailing zeros");

    h.db.exec("UPDATE pets SET name = 'Fido' WHERE id = 'pet-3'").await;
    h.emulator.clear_journal();
    let second = h.run("pets").await;
    assert_eq!(second.counts.updated, 1);
    assert_eq!(h.write_requests(), 1);
    let fido = h.emulator.find_by_property(&type_id, "pet_id", "pet-3");
    assert_eq!(fido[0].properties.get("pet_name").map(String::as_str), Some("Fido"));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_emails_are_rejected_with_reasons_then_delivered_once_fixed() {
    let h = contacts_harness(300).await;
    h.db.exec("UPDATE users SET email = 'broken-' || user_id WHERE user_id IN (7, 150, 299)").await;
    h.db.exec("INSERT INTO users VALUES (NULL, 'nokey@example.com', 'No', 'Key', 'free'), (5, 'dup@example.com', 'D', 'U', 'pro')")
        .await;

    let first = h.run("contacts").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_eq!(first.counts.rejected, 3);
    assert_eq!(first.counts.invalid, 3, "a null key and both rows of a repeated key are set aside");
    assert_eq!(first.counts.created, 296, "300 rows, less user 5 (repeated key) and 3 bad emails");
    assert_eq!(h.emulator.record_count("contacts"), 296);

    let status = h.cli(&["status", "contacts"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let out = text(&status.stdout);
    assert!(out.contains("INVALID_EMAIL"), "{out}");
    assert!(out.contains("broken-150"), "the reason names the bad value: {out}");
    assert!(out.contains("DUPLICATE_PRIMARY_KEY") && out.contains("NULL_PRIMARY_KEY"), "{out}");

    h.db.exec("UPDATE users SET email = 'fixed' || user_id || '@example.com' WHERE email LIKE 'broken-%'").await;
    h.db.exec("DELETE FROM users WHERE user_id IS NULL OR email = 'dup@example.com'").await;
    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.counts.rejected, 0);
    assert_eq!(second.counts.created, 4, "the 3 fixed rows and row 5, no longer repeated");
    assert_eq!(h.emulator.find_by_property("contacts", "email", "fixed150@example.com").len(), 1);
    assert_eq!(h.emulator.record_count("contacts"), 300);
    let status = text(&h.cli(&["status", "contacts"]).stdout);
    assert!(status.contains("0 rejected"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn update_mode_skips_missing_records_and_create_mode_skips_existing_ones() {
    let h = contacts_harness(150).await;
    for i in 1..=20 {
        h.emulator.insert_record("contacts", &[("email", &format!("user{i}@example.com")), ("firstname", "Old")]);
    }
    h.write_config(&format!("{}\nmode = \"update\"\n", CONTACTS_SYNC.trim_end()));
    let update = h.run("contacts").await;
    assert_eq!(update.status, RunStatus::Succeeded, "{:?}", update.error);
    assert_eq!((update.counts.updated, update.counts.skipped, update.counts.created), (20, 130, 0));
    assert_eq!(h.emulator.record_count("contacts"), 20);
    let one = h.emulator.find_by_property("contacts", "email", "user1@example.com");
    assert_eq!(one[0].properties.get("firstname").map(String::as_str), Some("First1"));

    let create = contacts_harness(150).await;
    for i in 1..=20 {
        create.emulator.insert_record("contacts", &[("email", &format!("user{i}@example.com")), ("firstname", "Old")]);
    }
    create.write_config(&format!("{}\nmode = \"create\"\n", CONTACTS_SYNC.trim_end()));
    let run = create.run("contacts").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!((run.counts.created, run.counts.skipped, run.counts.updated), (130, 20, 0));
    assert_eq!(create.emulator.record_count("contacts"), 150);
    let kept = create.emulator.find_by_property("contacts", "email", "user1@example.com");
    assert_eq!(
        kept[0].properties.get("firstname").map(String::as_str),
        Some("Old"),
        "create mode leaves existing records"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_types_become_hubspot_values() {
    let h = Harness::new().await;
    for (name, type_, field) in [
        ("n_int", "number", "number"),
        ("n_num", "number", "number"),
        ("n_float", "number", "number"),
        ("d_date", "date", "date"),
        ("d_ts", "datetime", "date"),
        ("d_tstz", "datetime", "date"),
        ("b_bool", "bool", "booleancheckbox"),
        ("j_json", "string", "text"),
    ] {
        h.emulator.create_property(
            "contacts",
            json!({"name": name, "label": name, "type": type_, "fieldType": field, "groupName": "contactinformation",
                   "options": if type_ == "bool" { json!([{"label":"Yes","value":"true","displayOrder":0,"hidden":false},{"label":"No","value":"false","displayOrder":1,"hidden":false}]) } else { json!([]) }}),
        );
    }
    h.emulator.create_property(
        "contacts",
        json!({"name": "tags", "label": "Tags", "type": "enumeration", "fieldType": "checkbox", "groupName": "contactinformation",
               "options": [{"label":"A","value":"a","displayOrder":0,"hidden":false},{"label":"B","value":"b","displayOrder":1,"hidden":false}]}),
    );
    h.db.exec(
        "SET TIME ZONE 'Europe/Paris';
         CREATE TABLE t AS SELECT 1 AS id, 'typed@example.com'::text AS email, 9007199254740993::bigint AS n_int,
           12.50::numeric(10,2) AS n_num, 0.1::float8 AS n_float, DATE '2024-03-05' AS d_date,
           TIMESTAMP '2024-03-05 14:30:15.250' AS d_ts, TIMESTAMPTZ '2024-03-05 15:30:15+01' AS d_tstz,
           true AS b_bool, '{\"a\": [1, 2]}'::jsonb AS j_json, ARRAY['a','b'] AS tags",
    )
    .await;
    h.write_config(
        r#"
[[syncs]]
name = "typed"
model = "SELECT * FROM t"
primary_key = "id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { n_int = "n_int", n_num = "n_num", n_float = "n_float", d_date = "d_date", d_ts = "d_ts", d_tstz = "d_tstz", b_bool = "b_bool", j_json = "j_json", tags = "tags" }
"#,
    );
    let run = h.run("typed").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.counts.rejected, 0);
    let bodies = h.emulator.request_bodies("POST", "/batch/upsert");
    let body: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    let p = &body["inputs"][0]["properties"];
    assert_eq!(p["n_int"], "9007199254740993", "64-bit integers keep every digit");
    assert_eq!(p["n_num"], "12.5");
    assert_eq!(p["n_float"], "0.1", "no float noise");
    assert_eq!(p["d_date"], "2024-03-05");
    assert_eq!(p["d_ts"], "2024-03-05T14:30:15.250Z");
    assert_eq!(p["d_tstz"], "2024-03-05T14:30:15.000Z", "time zones become UTC");
    assert_eq!(p["b_bool"], "true");
    assert_eq!(p["j_json"], "{\"a\": [1, 2]}");
    assert_eq!(p["tags"], "a;b", "arrays are multi-select values");
}

#[tokio::test(flavor = "multi_thread")]
async fn mapping_another_column_sends_it_once_for_every_row() {
    let h = contacts_harness(250).await;
    assert_eq!(h.run("contacts").await.counts.created, 250);

    // The same rows, one more mapped column: every row's hash changes with the mapping, and
    // only the new property is sent.
    h.write_config(
        &CONTACTS_SYNC.replace("plan = \"plan_tier\"", "plan = \"plan_tier\", user_id = \"external_user_id\""),
    );
    h.emulator.create_property(
        "contacts",
        json!({"name": "external_user_id", "label": "External user id", "type": "string", "fieldType": "text", "groupName": "contactinformation"}),
    );
    h.emulator.clear_journal();
    let remapped = h.run("contacts").await;
    assert_eq!(remapped.status, RunStatus::Succeeded, "{:?}", remapped.error);
    assert_eq!(remapped.counts.updated, 250);
    assert_eq!(h.emulator.count_requests("POST", "/batch/update"), 3);
    for body in h.emulator.request_bodies("POST", "/batch/update") {
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        for input in body["inputs"].as_array().unwrap() {
            let keys: Vec<&str> = input["properties"].as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, vec!["external_user_id"]);
        }
    }

    h.emulator.clear_journal();
    let again = h.run("contacts").await;
    assert_eq!(again.counts.unchanged, 250);
    assert_eq!(h.emulator.journal().len(), 0, "the new mapping's hashes are remembered");
}
