//! The HubSpot client against the emulator over real HTTP, plus a few scripted servers for
//! answers the emulator never gives (a whole-batch 400 on update, a 429 with Retry-After).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use hubspot_client::{
    AssocOutcome, AssociationInput, ClientSettings, EndpointKind, HubSpotClient, HubSpotError, RateBudget, RetryReason,
    WriteInput, WriteOutcome,
};
use hubspot_emulator::{Emulator, EmulatorConfig, FaultConfig, StaticToken};
use hubspot_model::Secret;
use serde_json::{json, Value};

use crate::support::{client, client_with, contact, props, settings, written_id, TestResult, TOKEN};

#[tokio::test]
async fn upserts_250_contacts_in_3_requests_and_maps_shuffled_results() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let hs = client(&emu.base_url());
    let outcomes = hs.batch_upsert("contacts", "email", (0..250).map(contact).collect()).await?;

    assert_eq!(outcomes.len(), 250);
    assert_eq!(emu.count_requests("POST", "/crm/objects/2026-03/contacts/batch/upsert"), 3);
    assert_eq!(emu.record_count("contacts"), 250);
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.trace_id(), format!("pk-{i}"));
        assert!(matches!(o, WriteOutcome::Written { created: true, .. }), "{o:?}");
        // The emulator shuffles results: each id must be the record holding this input's email.
        let found = emu.find_by_property("contacts", "email", &format!("user{i}@example.com"));
        assert_eq!(found.len(), 1);
        assert_eq!(written_id(o), found[0].id);
        assert_eq!(found[0].properties.get("firstname").map(String::as_str), Some(format!("User {i}").as_str()));
    }

    // Upserting again updates: same ids, `created: false`.
    let again = hs.batch_upsert("contacts", "email", (0..10).map(contact).collect()).await?;
    for (a, b) in again.iter().zip(&outcomes) {
        assert!(matches!(a, WriteOutcome::Written { created: false, .. }));
        assert_eq!(written_id(a), written_id(b));
    }
    let stats = hs.stats();
    assert_eq!(stats.requests_to(EndpointKind::Upsert), 4);
    assert_eq!(stats.total_retries(), 0);
    Ok(())
}

#[tokio::test]
async fn a_207_rejects_only_the_invalid_email() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let hs = client(&emu.base_url());
    let mut inputs: Vec<WriteInput> = (0..10).map(contact).collect();
    inputs[4].id = Some("not-an-email".into());

    let outcomes = hs.batch_upsert("contacts", "email", inputs).await?;
    assert_eq!(emu.count_requests("POST", "/batch/upsert"), 1);
    for (i, o) in outcomes.iter().enumerate() {
        if i == 4 {
            match o {
                WriteOutcome::Rejected { trace_id, code, message } => {
                    assert_eq!(trace_id, "pk-4");
                    assert_eq!(code, "INVALID_EMAIL");
                    assert!(message.contains("not-an-email"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        } else {
            assert!(o.is_written(), "{o:?}");
        }
    }
    assert_eq!(emu.record_count("contacts"), 9);
    Ok(())
}

#[tokio::test]
async fn duplicates_and_missing_ids_are_rejected_locally() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let hs = client(&emu.base_url());
    let mut inputs = vec![contact(1), contact(2), contact(1), contact(3)];
    inputs[0].properties.insert("firstname".into(), "Old".into());
    inputs[2].trace_id = "pk-1-again".into();
    inputs[2].id = Some("USER1@example.com".into());
    inputs[3].id = None;

    let outcomes = hs.batch_upsert("contacts", "email", inputs).await?;
    assert_eq!(outcomes[0].code(), Some("DUPLICATE_IN_BATCH"));
    assert!(outcomes[1].is_written());
    assert!(outcomes[2].is_written());
    assert_eq!(outcomes[3].code(), Some("MISSING_ID"));
    // The last duplicate won.
    let found = emu.find_by_property("contacts", "email", "user1@example.com");
    assert_eq!(found[0].properties.get("firstname").map(String::as_str), Some("User 1"));
    Ok(())
}

#[tokio::test]
async fn a_create_conflict_is_bisected_to_the_existing_contact() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let existing = emu.insert_record("contacts", &[("email", "user5@example.com")]);
    let hs = client(&emu.base_url());
    let inputs: Vec<WriteInput> = (0..8)
        .map(|i| WriteInput {
            id: None,
            properties: props(&[("email", &format!("user{i}@example.com"))]),
            ..contact(i)
        })
        .collect();

    let outcomes = hs.batch_create("contacts", inputs).await?;
    for (i, o) in outcomes.iter().enumerate() {
        if i == 5 {
            match o {
                WriteOutcome::Rejected { code, message, .. } => {
                    assert_eq!(code, "CONFLICT");
                    assert!(message.contains(&existing), "{message}");
                }
                other => panic!("{other:?}"),
            }
        } else {
            assert!(matches!(o, WriteOutcome::Written { created: true, .. }), "{o:?}");
        }
    }
    assert_eq!(emu.record_count("contacts"), 8);
    // 8 -> 4+4 -> 2+2 (on the bad half) -> 1+1: 7 requests.
    assert_eq!(emu.count_requests("POST", "/batch/create"), 7);
    Ok(())
}

#[tokio::test]
async fn update_maps_missing_records_and_conflicts() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let a = emu.insert_record("contacts", &[("email", "a@example.com")]);
    let b = emu.insert_record("contacts", &[("email", "b@example.com")]);
    let hs = client(&emu.base_url());
    let input = |trace: &str, id: &str, p: &[(&str, &str)]| WriteInput {
        trace_id: trace.into(),
        id: Some(id.into()),
        properties: props(p),
    };
    let outcomes = hs
        .batch_update(
            "contacts",
            vec![
                input("a", &a, &[("firstname", "Ann")]),
                input("ghost", "999999", &[("firstname", "Nobody")]),
                // Taking another contact's email is a 409 for the whole batch: bisected.
                input("b", &b, &[("email", "a@example.com")]),
            ],
        )
        .await?;
    assert!(matches!(&outcomes[0], WriteOutcome::Written { id, created: false, .. } if *id == a));
    assert_eq!(outcomes[1].code(), Some("OBJECT_NOT_FOUND"));
    assert_eq!(outcomes[2].code(), Some("CONFLICT"));
    Ok(())
}

#[tokio::test]
async fn faults_still_deliver_everything() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    emu.set_faults(FaultConfig { error_rate: 0.3, ..Default::default() });
    let hs = client(&emu.base_url());
    let mut all = Vec::new();
    for start in (0..500).step_by(100) {
        all.extend(hs.batch_upsert("contacts", "email", (start..start + 100).map(contact).collect()).await?);
    }
    assert!(all.iter().all(WriteOutcome::is_written));
    assert_eq!(emu.record_count("contacts"), 500);
    let stats = hs.stats();
    assert!(stats.retries.get(&RetryReason::ServerError).copied().unwrap_or(0) > 0, "{stats:?}");
    assert!(emu.count_status(500) + emu.count_status(502) + emu.count_status(503) + emu.count_status(504) > 0);
    Ok(())
}

#[tokio::test]
async fn dropped_connections_are_retried_for_upserts_but_not_for_creates() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    emu.set_faults(FaultConfig { drop_rate: 1.0, ..Default::default() });
    let hs = client_with(ClientSettings { retry_max_attempts: 2, ..settings(&emu.base_url()) });

    let creates = (0..3).map(|i| WriteInput { id: None, ..contact(i) }).collect();
    let outcomes = hs.batch_create("contacts", creates).await?;
    assert!(outcomes.iter().all(|o| o.code() == Some("DELIVERY_UNCERTAIN")), "{outcomes:?}");
    assert_eq!(emu.count_requests("POST", "/batch/create"), 1, "a create is never sent twice");

    let err = hs.batch_upsert("contacts", "email", vec![contact(1)]).await.unwrap_err();
    assert!(matches!(err, HubSpotError::RetriesExhausted { attempts: 3, .. }), "{err}");
    assert_eq!(emu.count_requests("POST", "/batch/upsert"), 3);

    emu.set_faults(FaultConfig::default());
    let outcomes = hs.batch_upsert("contacts", "email", vec![contact(1)]).await?;
    assert!(outcomes[0].is_written());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_budget_keeps_two_clients_under_a_low_rate_limit() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    emu.set_rate_limit(Some(20));
    let s = ClientSettings { max_requests_per_10s: 20, ..settings(&emu.base_url()) };
    let budget = RateBudget::new(&s);
    // Two syncs writing to the same account share one budget.
    let a = HubSpotClient::new(s.clone(), budget.clone())?;
    let b = HubSpotClient::new(s, budget.clone())?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let hs = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { hs.batch_upsert("contacts", "email", vec![contact(i)]).await }));
    }
    for t in tasks {
        assert!(t.await??[0].is_written());
    }
    assert_eq!(emu.count_status(429), 0);
    assert_eq!(emu.record_count("contacts"), 60);
    assert_eq!(a.stats().requests_to(EndpointKind::Upsert) + b.stats().requests_to(EndpointKind::Upsert), 60);
    // 60 requests at 20 per window take two more windows.
    assert!(started.elapsed() >= Duration::from_secs(20));
    assert!(budget.waited_secs() > 0.0);
    Ok(())
}

#[tokio::test]
async fn headers_tighten_a_budget_configured_too_high() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    emu.set_rate_limit(Some(10));
    // Configured for 100, the portal allows 10: the first answer's headers correct the budget.
    let hs = client(&emu.base_url());
    for i in 0..15 {
        hs.batch_upsert("contacts", "email", vec![contact(i)]).await?;
    }
    assert_eq!(emu.count_status(429), 0);
    assert_eq!(hs.budget().snapshot().max_per_window, 10);
    Ok(())
}

#[tokio::test]
async fn search_finds_existing_records_with_few_searches() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let mut ids = BTreeMap::new();
    for i in 0..250 {
        let email = format!("person{i}@example.com");
        ids.insert(email.clone(), emu.insert_record("contacts", &[("email", &email)]));
    }
    let hs = client(&emu.base_url());

    let hits = hs
        .search_by_values(
            "contacts",
            "email",
            vec!["PERSON1@Example.com".into(), "person2@example.com".into(), "nobody@example.com".into()],
        )
        .await?;
    let mut hits: Vec<(String, String)> = hits;
    hits.sort();
    assert_eq!(
        hits,
        vec![
            ("person1@example.com".to_string(), ids["person1@example.com"].clone()),
            ("person2@example.com".to_string(), ids["person2@example.com"].clone()),
        ]
    );
    assert_eq!(emu.count_requests("POST", "/contacts/search"), 1);

    // 250 values: 3 searches of at most 100 values, no 429 from the search limit.
    let all = hs.search_by_values("contacts", "email", ids.keys().cloned().collect()).await?;
    assert_eq!(all.len(), 250);
    for (email, id) in &all {
        assert_eq!(&ids[email], id);
    }
    assert_eq!(emu.count_requests("POST", "/contacts/search"), 4);
    assert_eq!(emu.count_status(429), 0);
    Ok(())
}

#[tokio::test]
async fn batch_read_by_unique_property() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let id = emu.insert_record("contacts", &[("email", "known@example.com")]);
    let hs = client(&emu.base_url());
    let found = hs
        .batch_read_by_property("contacts", "email", vec!["Known@Example.com".into(), "unknown@example.com".into()])
        .await?;
    assert_eq!(found, vec![("Known@Example.com".to_string(), id)]);
    Ok(())
}

#[tokio::test]
async fn properties_and_upsert_on_a_custom_unique_property() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    emu.create_property(
        "companies",
        json!({"name": "external_id", "label": "External ID", "type": "string", "fieldType": "text",
               "groupName": "companyinformation", "hasUniqueValue": true}),
    );
    emu.insert_record("companies", &[("name", "Acme"), ("external_id", "c-1")]);
    let hs = client(&emu.base_url());

    let props = hs.list_properties("companies").await?;
    let ext = props.iter().find(|p| p.name == "external_id").expect("external_id listed");
    assert!(ext.has_unique_value && !ext.hubspot_defined && !ext.read_only_value);
    let name = props.iter().find(|p| p.name == "name").expect("name listed");
    assert!(!name.has_unique_value);

    let inputs = ["c-1", "c-2"]
        .iter()
        .map(|ext| WriteInput {
            trace_id: ext.to_string(),
            id: Some(ext.to_string()),
            properties: props_of(&[("name", &format!("Company {ext}"))]),
        })
        .collect();
    let outcomes = hs.batch_upsert("companies", "external_id", inputs).await?;
    assert!(matches!(outcomes[0], WriteOutcome::Written { created: false, .. }));
    assert!(matches!(outcomes[1], WriteOutcome::Written { created: true, .. }));
    assert_eq!(emu.record_count("companies"), 2);

    // Upserting on a property that is not unique fails every input with one request.
    let outcomes = hs
        .batch_upsert(
            "companies",
            "name",
            vec![WriteInput { trace_id: "x".into(), id: Some("Acme".into()), properties: props_of(&[]) }; 1],
        )
        .await?;
    assert_eq!(outcomes[0].code(), Some("VALIDATION_ERROR"));
    Ok(())
}

fn props_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    props(pairs)
}

#[tokio::test]
async fn lists_custom_object_schemas() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let type_id = emu.create_custom_object(
        json!({"name": "pets", "labels": {"singular": "Pet", "plural": "Pets"}, "properties": [{"name": "pet_name"}]}),
    );
    let hs = client(&emu.base_url());
    let schemas = hs.list_schemas().await?;
    let pets = schemas.iter().find(|s| s.name == "pets").expect("pets listed");
    assert_eq!(pets.object_type_id, type_id);
    assert_eq!(pets.labels_plural.as_deref(), Some("Pets"));
    assert!(pets.fully_qualified_name.ends_with("_pets"));
    assert_eq!(emu.count_requests("GET", "/crm-object-schemas/2026-03/schemas"), 1);
    Ok(())
}

#[tokio::test]
async fn associations_with_labels_and_a_missing_record() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let c1 = emu.insert_record("contacts", &[("email", "c1@example.com")]);
    let c2 = emu.insert_record("contacts", &[("email", "c2@example.com")]);
    let co = emu.insert_record("companies", &[("name", "Acme")]);
    let billing = emu.create_association_label("contacts", "companies", "Billing contact person");
    let hs = client(&emu.base_url());

    let labels = hs.association_labels("contacts", "companies").await?;
    assert!(labels.iter().any(|l| l.type_id == 279 && l.label.is_none() && l.category == "HUBSPOT_DEFINED"));
    assert!(labels.iter().any(|l| l.type_id == billing && l.category == "USER_DEFINED"));

    let unlabeled = ("HUBSPOT_DEFINED".to_string(), 279);
    let input = |trace: &str, from: &str, to: &str, types: Vec<(String, u32)>| AssociationInput {
        trace: trace.into(),
        from_id: from.into(),
        to_id: to.into(),
        types,
    };
    let outcomes = hs
        .batch_associate(
            "contacts",
            "companies",
            &[
                input("a", &c1, &co, vec![unlabeled.clone()]),
                input("b", &c2, "999999", vec![unlabeled.clone()]),
                // Same pair as "a": merged into one input with both types.
                input("a2", &c1, &co, vec![("USER_DEFINED".into(), billing)]),
            ],
        )
        .await?;
    assert!(matches!(&outcomes[0], AssocOutcome::Associated { trace } if trace == "a"));
    assert!(matches!(&outcomes[1], AssocOutcome::Rejected { code, .. } if code == "OBJECT_NOT_FOUND"), "{outcomes:?}");
    assert!(matches!(&outcomes[2], AssocOutcome::Associated { trace } if trace == "a2"));
    let links = emu.associations("contacts", "companies");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].from_id, c1);
    assert!(links[0].type_ids.contains(&279) && links[0].type_ids.contains(&billing), "{links:?}");
    assert_eq!(emu.count_requests("POST", "/crm/associations/2026-03/contacts/companies/batch/create"), 1);
    Ok(())
}

#[tokio::test]
async fn static_lists_lifecycle() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let ids: Vec<String> =
        (0..3).map(|i| emu.insert_record("contacts", &[("email", &format!("l{i}@example.com"))])).collect();
    let hs = client_with(ClientSettings { list_batch_size: 2, ..settings(&emu.base_url()) });

    assert_eq!(hs.find_list_by_name("0-1", "Sync: VIP / 2026").await?, None);
    let list = hs.create_list("0-1", "Sync: VIP / 2026").await?;
    assert_eq!(list.processing_type, "MANUAL");
    let found = hs.find_list_by_name("0-1", "sync: vip / 2026").await?.expect("found by name");
    assert_eq!(found.list_id, list.list_id);

    let mut add = ids.clone();
    add.push("987654321".into());
    let change = hs.list_add(&list.list_id, add).await?;
    assert_eq!(change.added.len(), 3);
    assert_eq!(change.missing, vec!["987654321".to_string()]);
    assert_eq!(emu.count_requests("PUT", "/memberships/add"), 2, "chunked at list_batch_size");

    let mut members = hs.list_members(&list.list_id).await?;
    members.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(members, expected);

    hs.list_remove(&list.list_id, vec![ids[0].clone()]).await?;
    assert_eq!(emu.list_members(&list.list_id).len(), 2);
    Ok(())
}

#[tokio::test]
async fn auth_failures_are_clear_and_never_show_the_token() -> TestResult {
    let config = EmulatorConfig {
        static_tokens: vec![StaticToken { token: TOKEN.into(), scopes: vec!["crm.objects.contacts.read".into()] }],
        ..EmulatorConfig::default()
    };
    let emu = Emulator::start(config).await?;

    let wrong = client_with(ClientSettings { token: Secret::new("pat-na1-wrong-token"), ..settings(&emu.base_url()) });
    let err = wrong.batch_upsert("contacts", "email", vec![contact(1)]).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Unauthorized { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains("wrong-token"));
    assert_eq!(emu.count_requests("POST", "/batch/upsert"), 1, "no retry on 401");

    let hs = client(&emu.base_url());
    let err = hs.batch_upsert("contacts", "email", vec![contact(1)]).await.unwrap_err();
    match &err {
        HubSpotError::MissingScopes { scopes, .. } => {
            assert!(scopes.contains(&"crm.objects.contacts.write".to_string()), "{scopes:?}")
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("crm.objects.contacts.write"));
    assert!(!format!("{err} {err:?}").contains(TOKEN));
    assert_eq!(emu.count_requests("POST", "/batch/upsert"), 2);
    Ok(())
}

// ----- scripted servers -----

/// Serves `handler` on a random port; returns the base URL.
async fn scripted<F>(handler: F) -> anyhow::Result<String>
where
    F: Fn(Method, Uri, Value) -> (StatusCode, Vec<(&'static str, String)>, String) + Clone + Send + Sync + 'static,
{
    let app = Router::new().fallback(move |method: Method, uri: Uri, body: String| {
        let handler = handler.clone();
        async move {
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let (status, headers, text) = handler(method, uri, body);
            let mut response = (status, text).into_response();
            response.headers_mut().insert("content-type", "application/json".parse().expect("header"));
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().expect("header"));
            }
            response
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// A batch/update that, like HubSpot without multi-status, fails the whole batch with a 400
/// that names no input when any input carries an invalid option.
#[tokio::test]
async fn a_whole_batch_400_on_update_is_bisected_to_the_bad_record() -> TestResult {
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    let base = scripted(move |_method, uri, body| {
        seen.fetch_add(1, Ordering::SeqCst);
        if uri.path() != "/crm/objects/2026-03/contacts/batch/update" {
            return (StatusCode::NOT_FOUND, vec![], "<html>wrong path</html>".into());
        }
        let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
        if inputs.iter().any(|i| i["properties"]["lifecyclestage"] == "bogus") {
            let message = r#"Property values were not valid: [{"isValid":false,"message":"bogus was not one of the allowed options: [lead, customer]","error":"INVALID_OPTION","name":"lifecyclestage"}]"#;
            let body = json!({"status": "error", "message": message, "correlationId": "c", "category": "VALIDATION_ERROR"});
            return (StatusCode::BAD_REQUEST, vec![], body.to_string());
        }
        // Results in reverse order, without trace ids: mapped back by record id.
        let results: Vec<Value> = inputs.iter().rev().map(|i| json!({"id": i["id"], "properties": {}})).collect();
        (StatusCode::OK, vec![], json!({"status": "COMPLETE", "results": results}).to_string())
    })
    .await?;
    let hs = client(&base);
    let inputs = (0..8)
        .map(|i| WriteInput {
            trace_id: format!("pk-{i}"),
            id: Some(format!("{}", 100 + i)),
            properties: props(&[("lifecyclestage", if i == 6 { "bogus" } else { "lead" })]),
        })
        .collect();
    let outcomes = hs.batch_update("contacts", inputs).await?;
    for (i, o) in outcomes.iter().enumerate() {
        if i == 6 {
            assert_eq!(
                o,
                &WriteOutcome::Rejected {
                    trace_id: "pk-6".into(),
                    code: "INVALID_OPTION".into(),
                    message: "bogus was not one of the allowed options: [lead, customer]".into()
                }
            );
        } else {
            assert_eq!(
                o,
                &WriteOutcome::Written { trace_id: format!("pk-{i}"), id: format!("{}", 100 + i), created: false }
            );
        }
    }
    // 8 -> 4+4 -> 2+2 -> 1+1.
    assert_eq!(requests.load(Ordering::SeqCst), 7);
    Ok(())
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() -> TestResult {
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    let base = scripted(move |_method, _uri, _body| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            let body = json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                              "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"});
            return (StatusCode::TOO_MANY_REQUESTS, vec![("retry-after", "1".to_string())], body.to_string());
        }
        (
            StatusCode::OK,
            vec![],
            json!({"results": [{"name": "email", "label": "Email", "type": "string", "fieldType": "text"}]})
                .to_string(),
        )
    })
    .await?;
    let hs = client(&base);
    let started = Instant::now();
    let props = hs.list_properties("contacts").await?;
    assert_eq!(props.len(), 1);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let stats = hs.stats();
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.retries.get(&RetryReason::RateLimited), Some(&1));
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    Ok(())
}

#[tokio::test]
async fn html_error_pages_and_daily_limits_become_typed_errors() -> TestResult {
    let base = scripted(|_method, uri, _body| {
        if uri.path().contains("/properties/") {
            return (StatusCode::NOT_FOUND, vec![("x-hubspot-notfound", "true".into())], "<html><body>Not found</body></html>".into());
        }
        let body = json!({"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT", "policyName": "DAILY"});
        (StatusCode::TOO_MANY_REQUESTS, vec![], body.to_string())
    })
    .await?;
    let hs = client(&base);
    let err = hs.list_properties("widgets").await.unwrap_err();
    assert!(matches!(err, HubSpotError::Unexpected { status: 404, .. }), "{err}");
    let err = hs.batch_upsert("contacts", "email", vec![contact(1)]).await.unwrap_err();
    assert!(matches!(err, HubSpotError::DailyLimit { .. }), "{err}");
    assert!(err.to_string().contains("midnight"));
    // The budget now refuses at once, without asking HubSpot.
    let err = hs.batch_upsert("contacts", "email", vec![contact(2)]).await.unwrap_err();
    assert!(matches!(err, HubSpotError::DailyLimit { .. }), "{err}");
    assert_eq!(hs.stats().requests_to(EndpointKind::Upsert), 1);
    Ok(())
}

/// Issue 16 item 8: a batch update naming a merged-away company answers 200 without a result
/// for it; the client reports that input as having no result and writes the other.
#[tokio::test]
async fn a_merged_away_id_in_a_batch_update_is_reported_without_a_result() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let survivor = emu.insert_record("companies", &[("name", "Survivor")]);
    let merged = emu.insert_record("companies", &[("name", "Merged")]);
    let other = emu.insert_record("companies", &[("name", "Other")]);
    emu.merge_records("companies", &survivor, &merged);
    let c = client(&emu.base_url());
    let inputs = vec![
        WriteInput { trace_id: "m".into(), id: Some(merged.clone()), properties: props(&[("description", "x")]) },
        WriteInput { trace_id: "o".into(), id: Some(other.clone()), properties: props(&[("description", "y")]) },
    ];
    let out = c.batch_update("companies", inputs).await?;
    match &out[0] {
        WriteOutcome::Rejected { trace_id, code, .. } => {
            assert_eq!(trace_id, "m");
            assert_eq!(code, hubspot_client::outcome_codes::NO_RESULT);
        }
        o => panic!("the merged-away input was reported written: {o:?}"),
    }
    assert_eq!(written_id(&out[1]), other);
    assert_eq!(emu.count_requests("POST", "/batch/update"), 1, "not retried");
    let kept = emu.records("companies").into_iter().find(|r| r.id == survivor).unwrap();
    assert!(!kept.properties.contains_key("description"));
    Ok(())
}

/// Issue 16 item 3: the emulator's default limit (100 per 10 s) sends headers with every
/// answer; a client configured lower keeps its own limit when HubSpot reports a higher one.
#[tokio::test]
async fn headers_reporting_a_higher_limit_leave_the_configured_one() -> TestResult {
    let emu = Emulator::start(EmulatorConfig { max_requests_per_10s: Some(190), ..EmulatorConfig::default() }).await?;
    let c = client_with(ClientSettings { max_requests_per_10s: 20, ..settings(&emu.base_url()) });
    c.list_properties("contacts").await?;
    let snap = c.budget().snapshot();
    assert_eq!(snap.server_remaining, Some(189));
    assert_eq!(snap.max_per_window, 20);
    assert_eq!(snap.remaining_in_window, 19);
    Ok(())
}

/// Issue 16: the labels answer lists the unlabeled default with `"label": null` beside
/// labeled types; the client reads both.
#[tokio::test]
async fn association_labels_read_null_and_text_labels() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let custom = emu.create_association_label("contacts", "companies", "Decision maker");
    let labels = client(&emu.base_url()).association_labels("contacts", "companies").await?;
    let by_id = |id: u32| labels.iter().find(|l| l.type_id == id).unwrap_or_else(|| panic!("no type {id}"));
    assert_eq!(by_id(279).label, None);
    assert_eq!(by_id(279).category, "HUBSPOT_DEFINED");
    assert_eq!(by_id(1).label.as_deref(), Some("Primary"));
    assert_eq!(by_id(custom).label.as_deref(), Some("Decision maker"));
    assert_eq!(by_id(custom).category, "USER_DEFINED");
    Ok(())
}

#[tokio::test]
async fn creates_a_unique_property_in_its_own_group_once() -> TestResult {
    use hubspot_client::{NewProperty, NewPropertyGroup};
    let emu = Emulator::start(EmulatorConfig {
        static_tokens: vec![
            StaticToken { token: TOKEN.into(), scopes: vec!["*".into()] },
            StaticToken { token: "pat-na1-no-schemas".into(), scopes: vec!["crm.objects.companies.write".into()] },
        ],
        ..EmulatorConfig::default()
    })
    .await?;
    let hs = client(&emu.base_url());
    let group = NewPropertyGroup { name: "hubsync".into(), label: "hubsync".into(), display_order: -1 };
    let property = NewProperty {
        name: "hubsync_key".into(),
        label: "hubsync key".into(),
        description: "set by hubsync".into(),
        type_: "string".into(),
        field_type: "text".into(),
        group_name: "hubsync".into(),
        has_unique_value: true,
        form_field: false,
    };
    assert!(hs.create_property_group("companies", &group).await?);
    assert!(!hs.create_property_group("companies", &group).await?, "a 409 means it exists");
    let created = hs.create_property("companies", &property).await?.expect("created");
    assert!(created.has_unique_value);
    assert_eq!(hs.create_property("companies", &property).await?, None, "a 409 means it exists");
    let listed = hs.list_properties("companies").await?;
    assert!(listed.iter().any(|p| p.name == "hubsync_key" && p.has_unique_value));

    let no_schemas =
        client_with(ClientSettings { token: Secret::new("pat-na1-no-schemas"), ..settings(&emu.base_url()) });
    match no_schemas.create_property("deals", &property).await {
        Err(HubSpotError::MissingScopes { scopes, .. }) => assert_eq!(scopes, vec!["crm.schemas.deals.write"]),
        other => panic!("expected MissingScopes, got {other:?}"),
    }
    assert_eq!(emu.count_requests("POST", "/crm/properties/2026-03/deals"), 1, "a 403 is not retried");
    Ok(())
}
