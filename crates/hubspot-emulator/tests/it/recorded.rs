//! Issue 16: the emulator answers as recorded real HubSpot does (recorded real HubSpot answers, docs/emulator.md).
//! One test per recorded fact, each checking the exact status, headers and body shape.

use crate::support::{assert_error, start, start_with, Api};
use reqwest::Method;
use serde_json::{json, Value};

const PORTAL: u64 = 12_345_678;

fn url(type_id: &str, id: &str) -> String {
    format!("https://app.hubspot.com/contacts/{PORTAL}/record/{type_id}/{id}")
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_in_an_answer_carries_its_url() {
    let em = start_with(|c| c.shuffle_results = false).await;
    let api = Api::new(&em);
    let (status, created) =
        api.post("/crm/v3/objects/contacts", json!({"properties": {"email": "a@example.com"}})).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["url"], url("0-1", &id));
    assert_eq!(keys(&created), ["archived", "createdAt", "id", "properties", "updatedAt", "url"]);

    let (status, read) = api.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(read["url"], url("0-1", &id));
    let (status, patched) =
        api.patch(&format!("/crm/objects/2026-03/contacts/{id}"), json!({"properties": {"firstname": "A"}})).await;
    assert_eq!(status, 200);
    assert_eq!(patched["url"], url("0-1", &id));

    let (status, search) = api.post("/crm/v3/objects/contacts/search", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(search["results"][0]["url"], url("0-1", &id));

    let (status, batch) =
        api.post("/crm/v3/objects/deals/batch/create", json!({"inputs": [{"properties": {"dealname": "D"}}]})).await;
    assert_eq!(status, 201);
    let deal = batch["results"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(batch["results"][0]["url"], url("0-3", &deal));
    let (status, batch) = api
        .post(
            "/crm/v3/objects/deals/batch/update",
            json!({"inputs": [{"id": deal, "properties": {"dealname": "E"}, "objectWriteTraceId": "t1"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(batch["results"][0]["url"], url("0-3", &deal));
    let resp = api
        .raw(
            Method::POST,
            "/crm/v3/objects/contacts/batch/upsert",
            Some(&json!({"inputs": [{"id": "a@example.com", "idProperty": "email", "objectWriteTraceId": "u1", "properties": {"lastname": "B"}}]})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    // The recorded order of the keys: ..., archived, objectWriteTraceId, url, new.
    let tail = format!(r#""archived":false,"objectWriteTraceId":"u1","url":"{}","new":false}}"#, url("0-1", &id));
    assert!(text.contains(&tail), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn null_for_an_unknown_property_is_ignored() {
    let em = start().await;
    let api = Api::new(&em);
    let (status, body) = api
        .post("/crm/v3/objects/deals", json!({"properties": {"dealname": "D", "priority": null, "pipeline": null}}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["properties"].get("priority").is_none(), "{body}");
    // A known property written as null is echoed as null.
    assert_eq!(body["properties"].get("pipeline"), Some(&Value::Null), "{body}");
    assert_eq!(body["properties"]["dealname"], "D");
    let id = body["id"].as_str().unwrap();
    assert!(!em.records("deals")[0].properties.contains_key("priority"));
    // The same in updates and batches.
    let (status, body) = api
        .patch(&format!("/crm/v3/objects/deals/{id}"), json!({"properties": {"priority": null, "dealstage": null}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["properties"].get("priority").is_none());
    assert_eq!(body["properties"].get("dealstage"), Some(&Value::Null));
    let (status, body) = api
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": [{"id": "n@example.com", "idProperty": "email", "properties": {"nickname": null, "phone": null}}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let p = &body["results"][0]["properties"];
    assert!(p.get("nickname").is_none(), "{p}");
    assert_eq!(p.get("phone"), Some(&Value::Null), "{p}");
    assert_eq!(p["email"], "n@example.com");
    // A value for it is still refused.
    let (status, body) = api.post("/crm/v3/objects/deals", json!({"properties": {"priority": "high"}})).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        Some("VALIDATION_ERROR"),
        &format!(
            r#"Property values were not valid: [{{"isValid":false,"message":"Property \"priority\" does not exist","error":"PROPERTY_DOESNT_EXIST","name":"priority","localizedErrorMessage":"Property \"priority\" does not exist","portalId":{PORTAL}}}]"#
        ),
    );
    assert_eq!(body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
    assert_eq!(em.record_count("deals"), 1);
}

fn assert_rate_headers(resp: &reqwest::Response, max: u32, remaining: u32) {
    let h = resp.headers();
    assert_eq!(h["x-hubspot-ratelimit-interval-milliseconds"], "10000", "{h:?}");
    assert_eq!(h["x-hubspot-ratelimit-max"], max.to_string().as_str());
    assert_eq!(h["x-hubspot-ratelimit-remaining"], remaining.to_string().as_str());
    assert_eq!(h["x-hubspot-ratelimit-secondly"], max.div_ceil(10).to_string().as_str());
    assert!(h["x-hubspot-ratelimit-secondly-remaining"].to_str().unwrap().parse::<u32>().is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_headers_on_every_non_search_answer_by_default() {
    // The default is a real portal's limit: 100 per 10 s (Free/Starter private app).
    let em = start().await;
    assert_eq!(em.config().max_requests_per_10s, Some(hubspot_emulator::DEFAULT_MAX_REQUESTS_PER_10S));
    let api = Api::new(&em);
    let resp = api.raw(Method::POST, "/crm/v3/objects/contacts", Some(&json!({"properties": {}}))).await;
    assert_eq!(resp.status(), 201);
    assert_rate_headers(&resp, 100, 99);
    // A JSON 404, the HTML 404 of a missing contact by email, and an unknown path.
    let resp = api.raw(Method::GET, "/crm/v3/objects/contacts/1", None).await;
    assert_eq!(resp.status(), 404);
    assert_rate_headers(&resp, 100, 98);
    let resp = api.raw(Method::GET, "/crm/v3/objects/contacts/nobody@example.com?idProperty=email", None).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-hubspot-notfound"], "true");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_rate_headers(&resp, 100, 97);
    let resp = api.raw(Method::GET, "/crm/v3/nothing-here", None).await;
    assert_eq!(resp.status(), 404);
    assert_rate_headers(&resp, 100, 96);
    // Search and the association labels read carry none.
    let resp = api.raw(Method::POST, "/crm/v3/objects/contacts/search", Some(&json!({}))).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-hubspot-ratelimit-max").is_none());
    let resp = api.raw(Method::GET, "/crm/v4/associations/contacts/companies/labels", None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-hubspot-ratelimit-max").is_none());

    // Tests can raise the limit or turn it off.
    em.set_rate_limit(Some(190));
    let resp = api.raw(Method::GET, "/crm/v3/objects/contacts", None).await;
    assert_rate_headers(&resp, 190, 189);
    em.set_rate_limit(None);
    let resp = api.raw(Method::GET, "/crm/v3/objects/contacts", None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-hubspot-ratelimit-max").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_answer_with_permissions_and_settings_and_a_lean_create() {
    let em = start().await;
    let api = Api::new(&em);
    let (status, created) =
        api.post("/crm/v3/lists", json!({"name": "VIP", "objectTypeId": "0-1", "processingType": "MANUAL"})).await;
    assert_eq!(status, 200, "{created}");
    let list = &created["list"];
    assert_eq!(list["listPermissions"], json!({"teamsWithEditAccess": [], "usersWithEditAccess": []}));
    assert_eq!(list["membershipSettings"], json!({"membershipTeamId": null, "includeUnassigned": null}));
    assert!(list.get("additionalProperties").is_none(), "{list}");
    assert!(list.get("size").is_none(), "no size on create: {list}");
    for key in [
        "listId",
        "listVersion",
        "name",
        "objectTypeId",
        "processingStatus",
        "processingType",
        "createdAt",
        "createdById",
        "updatedAt",
        "updatedById",
        "filtersUpdatedAt",
    ] {
        assert!(list.get(key).is_some(), "{key} in {list}");
    }
    let (status, by_name) = api.get("/crm/v3/lists/object-type-id/0-1/name/vip").await;
    assert_eq!(status, 200);
    assert_eq!(by_name["list"]["size"], 0);
    assert_eq!(by_name["list"]["listPermissions"], list["listPermissions"]);
    assert!(by_name["list"].get("additionalProperties").is_none());

    let resp = api.raw(Method::GET, "/crm/v3/lists/object-type-id/0-1/name/Marketing%20List", None).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-hubspot-notfound"], "true");
    let body: Value = resp.json().await.unwrap();
    assert_error(
        &body,
        Some("OBJECT_NOT_FOUND"),
        "List does not exist with name Marketing List and object type ID 0-1.",
    );
    assert_eq!(body["subCategory"], "ListError.LIST_NAME_DOES_NOT_EXIST");
    assert_eq!(body["context"], json!({"listName": ["Marketing List"], "objectTypeId": ["0-1"]}));
}

#[tokio::test(flavor = "multi_thread")]
async fn created_properties_name_their_user_and_a_duplicate_is_409() {
    let em = start().await;
    let api = Api::new(&em);
    let def = json!({"name": "favorite_color", "label": "Favorite color", "type": "string", "fieldType": "text", "groupName": "contactinformation"});
    let (status, created) = api.post("/crm/v3/properties/contacts", def.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert!(created["createdUserId"].is_string(), "{created}");
    assert!(created["updatedUserId"].is_string(), "{created}");
    let (status, body) = api.post("/crm/v3/properties/contacts", def).await;
    assert_eq!(status, 409);
    assert_error(&body, Some("OBJECT_ALREADY_EXISTS"), "A property named 'favorite_color' already exists.");
    assert_eq!(body["subCategory"], "Properties.PROPERTY_WITH_NAME_EXISTS");
    assert_eq!(body["context"], json!({"name": ["favorite_color"]}));
}

#[tokio::test(flavor = "multi_thread")]
async fn inline_associations_to_a_missing_record_are_a_400() {
    let em = start().await;
    let api = Api::new(&em);
    let body = json!({
        "properties": {"email": "a@example.com"},
        "associations": [{"to": {"id": "999999999"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 4}]}],
    });
    let (status, out) = api.post("/crm/v3/objects/contacts", body.clone()).await;
    assert_eq!(status, 400, "{out}");
    assert_error(&out, Some("BAD_REQUEST"), "one or more associations are not valid");
    assert_eq!(
        out["errors"],
        json!([{"message": "0-3=999999999 is not a valid object", "context": {"validationResult": ["INVALID_FROM_OBJECT"]}}])
    );
    let (status, out) = api.post("/crm/v3/objects/contacts/batch/create", json!({"inputs": [body]})).await;
    assert_eq!(status, 400);
    assert_eq!(out["category"], "BAD_REQUEST");
    assert_eq!(em.record_count("contacts"), 0, "nothing was created");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_number_gets_invalid_integer_and_a_date_invalid_long() {
    let em = start().await;
    let api = Api::new(&em);
    let (status, body) = api.post("/crm/v3/objects/deals", json!({"properties": {"amount": "not-a-number"}})).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        Some("VALIDATION_ERROR"),
        r#"Property values were not valid: [{"isValid":false,"message":"not-a-number was not a valid number.","error":"INVALID_INTEGER","name":"amount"}]"#,
    );
    assert_eq!(
        body["errors"],
        json!([{"message": "not-a-number was not a valid number.", "code": "INVALID_INTEGER", "context": {"propertyName": ["amount"]}}])
    );
    let (status, body) = api.post("/crm/v3/objects/deals", json!({"properties": {"closedate": "soon"}})).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], "INVALID_LONG");
    assert_eq!(body["errors"][0]["message"], "soon was not a valid long.");
}

#[tokio::test(flavor = "multi_thread")]
async fn merged_away_ids_are_dropped_by_batch_update_and_follow_the_survivor() {
    let em = start_with(|c| c.shuffle_results = false).await;
    let api = Api::new(&em);
    let survivor = em.insert_record("companies", &[("name", "Survivor")]);
    let merged = em.insert_record("companies", &[("name", "Merged"), ("industry", "BANKING")]);
    let other = em.insert_record("companies", &[("name", "Other")]);
    em.merge_records("companies", &survivor, &merged);

    let (status, body) = api
        .post(
            "/crm/v3/objects/companies/batch/update",
            json!({"inputs": [
                {"id": merged, "properties": {"description": "x"}, "objectWriteTraceId": "m"},
                {"id": other, "properties": {"description": "y"}, "objectWriteTraceId": "o"},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{body}");
    assert_eq!(results[0]["id"], other);
    assert!(body.get("errors").is_none() && body.get("numErrors").is_none(), "{body}");
    let records = em.records("companies");
    assert_eq!(records.len(), 2);
    let kept = records.iter().find(|r| r.id == survivor).unwrap();
    assert!(!kept.properties.contains_key("description"), "the dropped input changed nothing");
    assert_eq!(kept.properties["hs_merged_object_ids"], merged);
    assert_eq!(kept.properties["industry"], "BANKING", "empty values are filled from the merged record");
    assert_eq!(kept.properties["name"], "Survivor");

    let (status, read) = api.get(&format!("/crm/v3/objects/companies/{merged}")).await;
    assert_eq!(status, 200);
    assert_eq!(read["id"], survivor);
    let (status, patched) =
        api.patch(&format!("/crm/v3/objects/companies/{merged}"), json!({"properties": {"description": "z"}})).await;
    assert_eq!(status, 200);
    assert_eq!(patched["id"], survivor);
    assert_eq!(patched["properties"]["description"], "z");
    assert_eq!(patched["url"], url("0-2", &survivor));
}

#[tokio::test(flavor = "multi_thread")]
async fn records_carry_hubspots_system_properties() {
    let em = start().await;
    let api = Api::new(&em);
    let (_, contact) = api
        .post("/crm/v3/objects/contacts", json!({"properties": {"email": "new@testdomain.com", "firstname": "New"}}))
        .await;
    let id = contact["id"].as_str().unwrap();
    let p = &contact["properties"];
    assert_eq!(
        keys(p),
        [
            "createdate",
            "email",
            "firstname",
            "hs_all_contact_vids",
            "hs_email_domain",
            "hs_is_contact",
            "hs_object_id",
            "hs_object_source",
            "hs_object_source_id",
            "hs_object_source_label",
            "lastmodifieddate",
            "lifecyclestage",
        ]
    );
    assert_eq!(p["hs_all_contact_vids"], id);
    assert_eq!(p["hs_email_domain"], "testdomain.com");
    assert_eq!(p["hs_is_contact"], "true");
    assert_eq!(p["hs_object_source"], "INTEGRATION");
    assert_eq!(p["hs_object_source_label"], "INTEGRATION");
    assert_eq!(p["lifecyclestage"], "lead");
    assert_eq!(p["lastmodifieddate"], p["createdate"]);

    let (_, company) =
        api.post("/crm/v3/objects/companies", json!({"properties": {"name": "Acme", "domain": "acme.com"}})).await;
    let p = &company["properties"];
    for key in ["createdate", "hs_lastmodifieddate", "hs_object_id", "hs_object_source", "num_associated_contacts"] {
        assert!(p.get(key).is_some(), "{key} in {p}");
    }
    assert_eq!(p["website"], "acme.com");
    assert_eq!(p["lifecyclestage"], "lead");
    assert!(p.get("lastmodifieddate").is_none());

    let (_, deal) = api
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "D", "amount": "10", "dealstage": "closedwon"}}),
        )
        .await;
    let p = &deal["properties"];
    assert_eq!(p["hs_createdate"], p["createdate"]);
    assert_eq!(p["hs_is_closed"], "true");
    assert_eq!(p["amount_in_home_currency"], "10");
    assert_eq!(p["days_to_close"], "0");
    assert!(p.get("hs_lastmodifieddate").is_some() && p.get("hs_object_source_id").is_some());
    // They are read-only.
    let (status, body) = api.post("/crm/v3/objects/deals", json!({"properties": {"hs_is_closed": "false"}})).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], "READ_ONLY_VALUE");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_sorts_as_strings_or_objects() {
    let em = start().await;
    let api = Api::new(&em);
    let a = em.insert_record("contacts", &[("firstname", "Ann")]);
    let b = em.insert_record("contacts", &[("firstname", "Bob")]);
    for sorts in [json!(["-firstname"]), json!([{"propertyName": "firstname", "direction": "DESCENDING"}])] {
        let (status, body) = api.post("/crm/v3/objects/contacts/search", json!({"sorts": sorts})).await;
        assert_eq!(status, 200, "{body}");
        let ids: Vec<&str> = body["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [b.as_str(), a.as_str()], "{sorts}");
    }
    for sorts in [json!(["firstname"]), json!([{"propertyName": "firstname"}])] {
        let (_, body) = api.post("/crm/v3/objects/contacts/search", json!({"sorts": sorts})).await;
        assert_eq!(body["results"][0]["id"], a, "{sorts}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn association_labels_keep_null_for_the_unlabeled_type() {
    let em = start().await;
    let api = Api::new(&em);
    let custom = em.create_association_label("contacts", "companies", "Decision maker");
    let (status, body) = api.get("/crm/v4/associations/contacts/companies/labels").await;
    assert_eq!(status, 200);
    let results = body["results"].as_array().unwrap();
    assert!(results.contains(&json!({"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null})), "{body}");
    assert!(results.contains(&json!({"category": "USER_DEFINED", "typeId": custom, "label": "Decision maker"})));
}
