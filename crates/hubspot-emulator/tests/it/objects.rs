//! CRM objects over real HTTP: single and batch endpoints, both path families, HubSpot's
//! status codes and error bodies (HubSpot docs: CRM objects, recorded real answers; sources in docs/emulator.md).

use crate::support::{assert_error, contact_upserts, start, Api};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn create_answers_201_with_location_and_maintained_properties() {
    let em = start().await;
    let api = Api::new(&em);
    let resp = api
        .raw(
            Method::POST,
            "/crm/v3/objects/contacts",
            Some(&json!({"properties": {"email": "Ann@Example.com", "firstname": "Ann"}})),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert!(location.ends_with(&format!("/crm/v3/objects/contacts/{id}")));
    assert!(id.parse::<u64>().unwrap() > u64::from(u32::MAX), "ids are above 2^32 as on real portals");
    let p = &body["properties"];
    assert_eq!(p["email"], "ann@example.com");
    assert_eq!(p["firstname"], "Ann");
    assert_eq!(p["hs_object_id"], id);
    assert!(p["createdate"].as_str().unwrap().ends_with('Z'));
    assert_eq!(p["lastmodifieddate"], p["createdate"]);
    assert_eq!(body["archived"], false);
    assert_eq!(body["createdAt"], p["createdate"]);
    assert_eq!(em.record_count("contacts"), 1);
    assert_eq!(em.find_by_property("contact", "email", "ANN@example.com")[0].id, id);
}

#[tokio::test(flavor = "multi_thread")]
async fn dated_and_legacy_paths_serve_the_same_records() {
    let em = start().await;
    let api = Api::new(&em);
    let (status, created) = api.post("/crm/objects/2026-03/companies", json!({"properties": {"name": "Acme"}})).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap();
    for path in [
        format!("/crm/v3/objects/companies/{id}"),
        format!("/crm/objects/2026-09/0-2/{id}"),
        format!("/crm/objects/2031-01/company/{id}"),
    ] {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["properties"]["name"], "Acme");
        // Default read properties of companies, unset ones as null.
        assert_eq!(body["properties"]["domain"], Value::Null);
        assert!(body["properties"].get("hs_lastmodifieddate").is_some());
    }
    let (status, body) = api.get(&format!("/crm/v3/objects/companies/{id}?properties=name,industry")).await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = body["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["createdate", "hs_lastmodifieddate", "hs_object_id", "industry", "name"]);
    // A version that is not YYYY-MM is not a route.
    assert_eq!(api.get(&format!("/crm/objects/v3/companies/{id}")).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_records_answer_404_json_or_the_html_page_by_id_property() {
    let em = start().await;
    let api = Api::new(&em);
    let (status, body) = api.get("/crm/v3/objects/contacts/123456").await;
    assert_eq!(status, 404);
    assert_error(&body, Some("OBJECT_NOT_FOUND"), "Object not found.  objectId are usually numeric.");

    let resp = api.raw(Method::GET, "/crm/v3/objects/contacts/nobody@example.com?idProperty=email", None).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-hubspot-notfound"], "true");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));

    em.insert_record("contacts", &[("email", "somebody@example.com"), ("firstname", "Some")]);
    let (status, body) =
        api.get("/crm/v3/objects/contacts/SOMEBODY@example.com?idProperty=email&properties=firstname").await;
    assert_eq!(status, 200);
    assert_eq!(body["properties"]["firstname"], "Some");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_object_types_and_paths() {
    let em = start().await;
    let api = Api::new(&em);
    let (status, body) = api.get("/crm/v3/objects/widgets").await;
    assert_eq!(status, 400);
    assert_error(&body, None, "Unable to infer object type from: widgets");
    let resp = api.raw(Method::GET, "/crm/v3/nothing-here", None).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-hubspot-notfound"], "true");
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_updates_clears_and_refuses_read_only_properties() {
    let em = start().await;
    let api = Api::new(&em);
    let id = em.insert_record("contacts", &[("email", "a@example.com"), ("firstname", "A"), ("city", "Oslo")]);
    let path = format!("/crm/v3/objects/contacts/{id}");
    let (status, body) = api.patch(&path, json!({"properties": {"firstname": "B", "city": ""}})).await;
    assert_eq!(status, 200);
    assert_eq!(body["properties"]["firstname"], "B");
    assert!(body["properties"].get("city").is_none());
    assert_eq!(em.records("contacts")[0].properties.get("city"), None);

    let (status, body) = api.patch(&path, json!({"properties": {"createdate": "2020-01-01"}})).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        Some("VALIDATION_ERROR"),
        r#"Property values were not valid: [{"isValid":false,"message":"\"createdate\" is a read only property; its value cannot be set.","error":"READ_ONLY_VALUE","name":"createdate"}]"#,
    );
    assert_eq!(body["errors"][0]["code"], "READ_ONLY_VALUE");

    let (status, body) = api
        .patch("/crm/v3/objects/contacts/a@example.com?idProperty=email", json!({"properties": {"lastname": "L"}}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["properties"]["lastname"], "L");
    assert_eq!(api.patch("/crm/v3/objects/contacts/999", json!({"properties": {}})).await.0, 404);

    let (status, _) = api.delete(&path).await;
    assert_eq!(status, 204);
    assert_eq!(api.get(&path).await.0, 404);
    assert_eq!(em.record_count("contacts"), 0);
    // Archived records are readable with archived=true.
    let (status, body) = api.get(&format!("{path}?archived=true")).await;
    assert_eq!(status, 200);
    assert_eq!(body["archived"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn property_errors_carry_hubspots_codes_and_messages() {
    let em = start().await;
    let api = Api::new(&em);
    em.create_property("contacts", json!({"name": "renewal_date", "label": "Renewal", "type": "date", "fieldType": "date", "groupName": "contactinformation"}));

    let (status, body) = api.post("/crm/v3/objects/contacts", json!({"properties": {"testproperty": "x"}})).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        Some("VALIDATION_ERROR"),
        r#"Property values were not valid: [{"isValid":false,"message":"Property \"testproperty\" does not exist","error":"PROPERTY_DOESNT_EXIST","name":"testproperty","localizedErrorMessage":"Property \"testproperty\" does not exist","portalId":12345678}]"#,
    );
    assert_eq!(
        body["errors"],
        json!([{"message": "Property \"testproperty\" does not exist", "code": "PROPERTY_DOESNT_EXIST", "context": {"propertyName": ["testproperty"]}}])
    );

    let cases = [
        (json!({"email": "example.lcom"}), "INVALID_EMAIL", "Email address example.lcom is invalid"),
        (json!({"lifecyclestage": "hot"}), "INVALID_OPTION", "hot was not one of the allowed options: [Subscriber, Lead, Marketing Qualified Lead, Sales Qualified Lead, Opportunity, Customer, Evangelist, Other]"),
        (json!({"renewal_date": "1572480000001"}), "INVALID_DATE", "1572480000001 is at 0:0:0.1 UTC, not midnight!"),
        (json!({"renewal_date": "31/10/2019"}), "INVALID_LONG", "31/10/2019 was not a valid long."),
    ];
    for (properties, code, message) in cases {
        let (status, body) = api.post("/crm/v3/objects/contacts", json!({ "properties": properties })).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["category"], "VALIDATION_ERROR");
        assert_eq!(body["errors"][0]["code"], code);
        assert_eq!(body["errors"][0]["message"], message);
        assert!(body["message"].as_str().unwrap().contains(&format!("\"error\":\"{code}\"")));
    }
    let (status, body) =
        api.post("/crm/v3/objects/companies", json!({"properties": {"numberofemployees": "1/1/1"}})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        r#"Property values were not valid: [{"isValid":false,"message":"1/1/1 was not a valid number.","error":"INVALID_INTEGER","name":"numberofemployees"}]"#
    );
    // Dates are stored as HubSpot returns them.
    let (status, body) =
        api.post("/crm/v3/objects/contacts", json!({"properties": {"renewal_date": "1572480000000"}})).await;
    assert_eq!(status, 201);
    assert_eq!(body["properties"]["renewal_date"], "2019-10-31");
    assert_eq!(em.record_count("contacts"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_contact_email_is_a_409_conflict() {
    let em = start().await;
    let api = Api::new(&em);
    let id = em.insert_record("contacts", &[("email", "dup@example.com")]);
    let (status, body) =
        api.post("/crm/v3/objects/contacts", json!({"properties": {"email": "DUP@example.com"}})).await;
    assert_eq!(status, 409);
    assert_error(&body, Some("CONFLICT"), &format!("Contact already exists. Existing ID: {id}"));
    let (status, body) = api
        .post(
            "/crm/objects/2026-03/contacts/batch/create",
            json!({"inputs": [{"properties": {"email": "new@example.com"}}, {"properties": {"email": "dup@example.com"}}]}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["message"], format!("Contact already exists. Existing ID: {id}"));
    assert_eq!(em.record_count("contacts"), 1, "a conflicting batch writes nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_upsert_creates_then_updates_with_new_and_trace_ids_in_shuffled_order() {
    let em = start().await;
    let api = Api::new(&em);
    let (status, body) = api.post("/crm/v3/objects/contacts/batch/upsert", contact_upserts("u", 100)).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "COMPLETE");
    assert!(body["startedAt"].is_string() && body["completedAt"].is_string());
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 100);
    assert!(results.iter().all(|r| r["new"] == true));
    let order: Vec<String> = results.iter().map(|r| r["objectWriteTraceId"].as_str().unwrap().to_string()).collect();
    let input_order: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
    assert_ne!(order, input_order, "results come back shuffled");
    for r in results {
        let i: usize = r["objectWriteTraceId"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(r["properties"]["email"], format!("u{i}@example.com"));
        assert_eq!(r["properties"]["firstname"], format!("First{i}"));
    }
    assert_eq!(em.record_count("contacts"), 100);

    let (status, body) = api.post("/crm/objects/2026-03/contacts/batch/upsert", contact_upserts("u", 3)).await;
    assert_eq!(status, 200);
    assert!(body["results"].as_array().unwrap().iter().all(|r| r["new"] == false));
    assert_eq!(em.record_count("contacts"), 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_upsert_with_a_bad_input_is_207_with_trace_ids_and_400_without() {
    let em = start().await;
    let api = Api::new(&em);
    let body = json!({"inputs": [
        {"id": "good@example.com", "idProperty": "email", "objectWriteTraceId": "a", "properties": {"firstname": "G"}},
        {"id": "not-an-email", "idProperty": "email", "objectWriteTraceId": "b", "properties": {"firstname": "B"}},
    ]});
    let (status, out) = api.post("/crm/v3/objects/contacts/batch/upsert", body).await;
    assert_eq!(status, 207);
    assert_eq!(out["numErrors"], 1);
    assert_eq!(out["results"].as_array().unwrap().len(), 1);
    assert_eq!(out["results"][0]["objectWriteTraceId"], "a");
    assert_eq!(
        out["errors"],
        json!([{
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "Property values were not valid: [{\"isValid\":false,\"message\":\"Email address not-an-email is invalid\",\"error\":\"INVALID_EMAIL\",\"name\":\"email\"}]",
            "context": {"objectWriteTraceId": ["b"]},
        }])
    );
    assert_eq!(em.record_count("contacts"), 1);

    let body = json!({"inputs": [
        {"id": "other@example.com", "idProperty": "email", "properties": {"firstname": "G"}},
        {"id": "not-an-email", "idProperty": "email", "properties": {"firstname": "B"}},
    ]});
    let (status, out) = api.post("/crm/v3/objects/contacts/batch/upsert", body).await;
    assert_eq!(status, 400);
    assert_eq!(out["category"], "VALIDATION_ERROR");
    assert_eq!(out["errors"][0]["code"], "INVALID_EMAIL");
    assert_eq!(em.record_count("contacts"), 1, "a failed batch writes nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_needs_email_or_a_unique_property() {
    let em = start().await;
    let api = Api::new(&em);
    let upsert =
        |prop: &str| json!({"inputs": [{"id": "acme.com", "idProperty": prop, "properties": {"name": "Acme"}}]});
    let (status, body) = api.post("/crm/v3/objects/companies/batch/upsert", upsert("domain")).await;
    assert_eq!(status, 400);
    assert_error(&body, Some("VALIDATION_ERROR"), "Unable to perform update/upsert by non-unique 0-2 property domain");
    let (status, body) = api.post("/crm/v3/objects/companies/batch/upsert", upsert("hs_object_id")).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Unable to perform update/upsert by non-unique 0-2 property hs_object_id");

    em.create_property("companies", json!({"name": "external_id", "label": "External id", "type": "string", "fieldType": "text", "groupName": "companyinformation", "hasUniqueValue": true}));
    let (status, body) = api.post("/crm/v3/objects/companies/batch/upsert", upsert("external_id")).await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["new"], true);
    assert_eq!(body["results"][0]["properties"]["external_id"], "acme.com");
    let (status, body) = api.post("/crm/v3/objects/companies/batch/upsert", upsert("external_id")).await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["new"], false);
    assert_eq!(em.record_count("companies"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_ids_and_oversized_batches_are_refused_whole() {
    let em = start().await;
    let api = Api::new(&em);
    let body = json!({"inputs": [
        {"id": "x@example.com", "idProperty": "email", "properties": {}},
        {"id": "X@example.com", "idProperty": "email", "properties": {}},
    ]});
    let (status, out) = api.post("/crm/v3/objects/contacts/batch/upsert", body).await;
    assert_eq!(status, 400);
    assert_error(
        &out,
        Some("VALIDATION_ERROR"),
        "Duplicate IDs found in batch input: [X@example.com]. IDs must be unique",
    );
    assert_eq!(out["context"], json!({"ids": ["X@example.com"]}));

    let id = em.insert_record("contacts", &[("email", "y@example.com")]);
    let body =
        json!({"inputs": [{"id": id, "properties": {"firstname": "1"}}, {"id": id, "properties": {"firstname": "2"}}]});
    let (status, out) = api.post("/crm/v3/objects/contacts/batch/update", body).await;
    assert_eq!(status, 400);
    assert_eq!(out["message"], format!("Duplicate IDs found in batch input: [{id}]. IDs must be unique"));

    let (status, out) = api.post("/crm/v3/objects/contacts/batch/upsert", contact_upserts("big", 101)).await;
    assert_eq!(status, 400);
    assert_error(
        &out,
        Some("VALIDATION_ERROR"),
        "The maximum number of inputs supported in a batch is 100. Please reduce the number of items and try again",
    );
    assert_eq!(em.record_count("contacts"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_read_by_id_and_id_property_reports_missing_ids_in_a_207() {
    let em = start().await;
    let api = Api::new(&em);
    let a = em.insert_record("contacts", &[("email", "a@example.com"), ("firstname", "A")]);
    let (status, body) = api
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": a}, {"id": "404"}], "properties": ["firstname"]}),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(body["results"][0]["id"], a);
    assert_eq!(body["results"][0]["properties"]["firstname"], "A");
    assert_eq!(
        body["errors"],
        json!([{
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
            "context": {"ids": ["404"]},
        }])
    );
    let (status, body) = api
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": "a@example.com"}], "idProperty": "email", "properties": ["email"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["id"], a);
    assert!(body.get("errors").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_update_reports_missing_records_per_trace_id() {
    let em = start().await;
    let api = Api::new(&em);
    let a = em.insert_record("contacts", &[("email", "a@example.com")]);
    let body = json!({"inputs": [
        {"id": a, "properties": {"firstname": "Alive"}, "objectWriteTraceId": "1"},
        {"id": "90002", "properties": {"firstname": "Gone"}, "objectWriteTraceId": "2,3"},
    ]});
    let (status, out) = api.post("/crm/v3/objects/contacts/batch/update", body).await;
    assert_eq!(status, 207);
    assert_eq!(out["results"][0]["properties"]["firstname"], "Alive");
    assert_eq!(out["results"][0]["objectWriteTraceId"], "1");
    assert_eq!(out["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(out["errors"][0]["context"], json!({"ids": ["90002"], "objectWriteTraceId": ["2,3"]}));

    let body = json!({"inputs": [{"id": a, "idProperty": "hs_object_id", "properties": {"firstname": "X"}}]});
    let (status, out) = api.post("/crm/v3/objects/contacts/batch/update", body).await;
    assert_eq!(status, 400);
    assert_eq!(out["message"], "Unable to perform update/upsert by non-unique 0-1 property hs_object_id");

    let body =
        json!({"inputs": [{"id": "a@example.com", "idProperty": "email", "properties": {"firstname": "ByEmail"}}]});
    let (status, out) = api.post("/crm/v3/objects/contacts/batch/update", body).await;
    assert_eq!(status, 200);
    assert_eq!(out["results"][0]["properties"]["firstname"], "ByEmail");
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_create_and_archive() {
    let em = start().await;
    let api = Api::new(&em);
    let (status, out) = api
        .post(
            "/crm/v3/objects/deals/batch/create",
            json!({"inputs": [
                {"properties": {"dealname": "D1", "amount": "10.5", "dealstage": "closedwon", "closedate": "2024-05-01T10:00:00Z"}, "objectWriteTraceId": "d1"},
                {"properties": {"dealname": "D2", "dealstage": "nope"}, "objectWriteTraceId": "d2"},
            ]}),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(out["results"][0]["properties"]["closedate"], "2024-05-01T10:00:00.000Z");
    assert_eq!(out["errors"][0]["context"]["objectWriteTraceId"], json!(["d2"]));
    assert!(out["errors"][0]["message"].as_str().unwrap().contains("INVALID_OPTION"));
    let (status, out) =
        api.post("/crm/v3/objects/deals/batch/create", json!({"inputs": [{"properties": {"dealname": "D3"}}]})).await;
    assert_eq!(status, 201);
    let id = out["results"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(em.record_count("deals"), 2);
    let (status, _) =
        api.post("/crm/v3/objects/deals/batch/archive", json!({"inputs": [{"id": id}, {"id": "1"}]})).await;
    assert_eq!(status, 204);
    assert_eq!(em.record_count("deals"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_a_400_without_category() {
    let em = start().await;
    let api = Api::new(&em);
    let (status, body) = api
        .post_raw("/crm/v3/objects/contacts/batch/upsert", "application/json", "{\n  \"inputs\": [\n    {oops")
        .await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().starts_with("Invalid input JSON on line 3, column"), "{body}");
    assert!(body.get("category").is_none());
    let (status, body) = api.post_raw("/crm/v3/objects/contacts/batch/upsert", "application/json", "{}").await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("missing field `inputs`"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_pages_in_id_order() {
    let em = start().await;
    let api = Api::new(&em);
    let ids: Vec<String> = (0..5).map(|i| em.insert_record("tickets", &[("subject", &format!("T{i}"))])).collect();
    let (status, page) = api.get("/crm/v3/objects/tickets?limit=2&properties=subject").await;
    assert_eq!(status, 200);
    assert_eq!(page["results"][0]["id"], ids[0]);
    assert_eq!(page["results"][1]["properties"]["subject"], "T1");
    let after = page["paging"]["next"]["after"].as_str().unwrap().to_string();
    let (_, page) = api.get(&format!("/crm/v3/objects/tickets?limit=2&after={after}")).await;
    assert_eq!(page["results"][0]["id"], ids[2]);
    let after = page["paging"]["next"]["after"].as_str().unwrap().to_string();
    let (_, page) = api.get(&format!("/crm/v3/objects/tickets?limit=2&after={after}")).await;
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    assert!(page.get("paging").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn other_standard_objects_and_inline_associations() {
    let em = start().await;
    let api = Api::new(&em);
    let company = em.insert_record("companies", &[("name", "Acme")]);
    let (status, body) = api
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "c@example.com"}, "associations": [{"to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]}),
        )
        .await;
    assert_eq!(status, 201);
    let contact = body["id"].as_str().unwrap();
    let links = em.associations("contacts", "companies");
    assert_eq!((links[0].from_id.as_str(), links[0].to_id.as_str()), (contact, company.as_str()));
    assert_eq!(em.associations("companies", "contacts")[0].type_ids, vec![280]);

    let (status, body) = api
        .post("/crm/v3/objects/0-46", json!({"properties": {"hs_note_body": "Hi", "hs_timestamp": "1700000000000"}}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["properties"]["hs_timestamp"], "2023-11-14T22:13:20.000Z");
    assert!(body["properties"]["hs_createdate"].is_string());
    let (status, _) =
        api.post("/crm/v3/objects/line_items", json!({"properties": {"name": "Widget", "quantity": "2"}})).await;
    assert_eq!(status, 201);
}
