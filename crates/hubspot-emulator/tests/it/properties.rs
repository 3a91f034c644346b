//! The properties API and custom object schemas over real HTTP (HubSpot docs: properties; sources in docs/emulator.md).

use crate::support::{assert_error, start, Api};
use serde_json::{json, Value};

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no property {name}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn standard_objects_come_with_hubspots_default_properties() {
    let em = start().await;
    let api = Api::new(&em);
    let (status, contacts) = api.get("/crm/v3/properties/contacts").await;
    assert_eq!(status, 200);
    for name in
        ["email", "firstname", "lastname", "phone", "company", "website", "jobtitle", "city", "state", "country", "zip"]
    {
        assert_eq!(find(&contacts, name)["type"], "string", "{name}");
    }
    let stage = find(&contacts, "lifecyclestage");
    assert_eq!(stage["type"], "enumeration");
    assert_eq!(
        stage["options"][0],
        json!({"label": "Subscriber", "value": "subscriber", "description": "", "displayOrder": 0, "hidden": false})
    );
    for name in ["hs_object_id", "createdate", "lastmodifieddate", "hs_object_source", "hs_email_domain"] {
        let p = find(&contacts, name);
        assert_eq!(p["modificationMetadata"]["readOnlyValue"], true, "{name}");
        assert_eq!(p["hubspotDefined"], true);
    }
    // Contacts have `lastmodifieddate` only (recorded real HubSpot answers, docs/emulator.md).
    assert!(contacts["results"].as_array().unwrap().iter().all(|p| p["name"] != "hs_lastmodifieddate"));
    assert_eq!(find(&contacts, "createdate")["type"], "datetime");

    let (_, companies) = api.get("/crm/properties/2026-03/companies").await;
    assert_eq!(find(&companies, "domain")["hasUniqueValue"], false, "domain is not unique in most portals");
    assert_eq!(find(&companies, "numberofemployees")["type"], "number");
    assert_eq!(find(&companies, "annualrevenue")["type"], "number");
    assert_eq!(find(&companies, "industry")["type"], "enumeration");
    let (_, deals) = api.get("/crm/v3/properties/0-3").await;
    assert_eq!(find(&deals, "amount")["type"], "number");
    assert_eq!(find(&deals, "dealstage")["type"], "enumeration");
    assert_eq!(find(&deals, "closedate")["type"], "datetime");
    let (_, tickets) = api.get("/crm/v3/properties/tickets").await;
    assert_eq!(find(&tickets, "hs_ticket_priority")["type"], "enumeration");
    for name in
        ["subject", "content", "hs_pipeline", "hs_pipeline_stage", "hs_object_id", "createdate", "hs_lastmodifieddate"]
    {
        find(&tickets, name);
    }
    assert_eq!(em.properties("contacts").len(), contacts["results"].as_array().unwrap().len());
}

#[tokio::test(flavor = "multi_thread")]
async fn create_get_update_and_archive_a_property() {
    let em = start().await;
    let api = Api::new(&em);
    let body = json!({
        "name": "plan", "label": "Plan", "type": "enumeration", "fieldType": "select", "groupName": "contactinformation",
        "options": [{"label": "Free", "value": "free"}, {"label": "Pro", "value": "pro"}],
    });
    let (status, created) = api.post("/crm/v3/properties/contacts", body.clone()).await;
    assert_eq!(status, 201);
    assert_eq!(created["name"], "plan");
    assert_eq!(created["options"][1]["value"], "pro");
    assert_eq!(created["hasUniqueValue"], false);
    assert!(created.get("hubspotDefined").is_none());

    let (status, out) = api.post("/crm/v3/properties/contacts", body).await;
    assert_eq!(status, 409);
    assert_error(&out, Some("OBJECT_ALREADY_EXISTS"), "A property named 'plan' already exists.");

    let (status, got) = api.get("/crm/properties/2026-03/contacts/plan").await;
    assert_eq!(status, 200);
    assert_eq!(got["label"], "Plan");
    assert_eq!(api.get("/crm/v3/properties/contacts/nope").await.0, 404);

    // Values are checked against the options.
    let (status, _) = api.post("/crm/v3/objects/contacts", json!({"properties": {"plan": "gold"}})).await;
    assert_eq!(status, 400);
    let (status, updated) = api
        .patch(
            "/crm/v3/properties/contacts/plan",
            json!({"options": [{"label": "Gold", "value": "gold"}], "label": "Tier"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(updated["label"], "Tier");
    assert_eq!(api.post("/crm/v3/objects/contacts", json!({"properties": {"plan": "gold"}})).await.0, 201);
    let (status, _) = api.patch("/crm/v3/properties/contacts/plan", json!({"hasUniqueValue": true})).await;
    assert_eq!(status, 400, "hasUniqueValue can't be changed");

    let (status, _) = api.delete("/crm/v3/properties/contacts/plan").await;
    assert_eq!(status, 204);
    assert_eq!(api.get("/crm/v3/properties/contacts/plan").await.0, 404);
    let (status, out) = api.post("/crm/v3/objects/contacts", json!({"properties": {"plan": "gold"}})).await;
    assert_eq!(status, 400);
    assert_eq!(out["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
    assert_eq!(api.delete("/crm/v3/properties/contacts/email").await.0, 400, "HubSpot-defined properties stay");
}

#[tokio::test(flavor = "multi_thread")]
async fn property_definitions_are_validated() {
    let em = start().await;
    let api = Api::new(&em);
    let bad = [
        json!({"name": "x", "label": "X", "type": "string", "groupName": "g"}),
        json!({"name": "x", "label": "X", "type": "string", "fieldType": "number", "groupName": "g"}),
        json!({"name": "x", "label": "X", "type": "text", "fieldType": "text", "groupName": "g"}),
        json!({"name": "Bad-Name", "label": "X", "type": "string", "fieldType": "text", "groupName": "g"}),
    ];
    for body in bad {
        let (status, out) = api.post("/crm/v3/properties/contacts", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(out["category"], "VALIDATION_ERROR");
    }
    for i in 0..10 {
        let body = json!({"name": format!("key_{i}"), "label": "K", "type": "string", "fieldType": "text", "groupName": "g", "hasUniqueValue": true});
        assert_eq!(api.post("/crm/v3/properties/deals", body).await.0, 201);
    }
    let body = json!({"name": "key_10", "label": "K", "type": "string", "fieldType": "text", "groupName": "g", "hasUniqueValue": true});
    assert_eq!(api.post("/crm/v3/properties/deals", body).await.0, 400, "ten unique properties per object");

    let (status, out) = api
        .post(
            "/crm/v3/properties/companies/batch/create",
            json!({"inputs": [
                {"name": "tier", "label": "Tier", "type": "string", "fieldType": "text", "groupName": "companyinformation"},
                {"name": "domain", "label": "Dup", "type": "string", "fieldType": "text", "groupName": "companyinformation"},
            ]}),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(out["results"][0]["name"], "tier");
    assert_eq!(out["errors"][0]["category"], "OBJECT_ALREADY_EXISTS");
    let (status, out) = api
        .post("/crm/v3/properties/companies/batch/read", json!({"inputs": [{"name": "tier"}, {"name": "name"}]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(out["results"].as_array().unwrap().len(), 2);
    let (status, groups) = api.get("/crm/v3/properties/companies/groups").await;
    assert_eq!(status, 200);
    assert!(groups["results"].as_array().unwrap().iter().any(|g| g["name"] == "companyinformation"));
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_objects_by_every_name() {
    let em = start().await;
    let api = Api::new(&em);
    let schema = json!({
        "name": "pets",
        "labels": {"singular": "Pet", "plural": "Pets"},
        "primaryDisplayProperty": "pet_name",
        "requiredProperties": ["pet_name"],
        "searchableProperties": ["pet_name"],
        "properties": [
            {"name": "pet_name", "label": "Name", "hasUniqueValue": true},
            {"name": "age", "label": "Age", "type": "number", "fieldType": "number"},
        ],
        "associatedObjects": ["CONTACT", "0-2"],
    });
    let (status, created) = api.post("/crm-object-schemas/v3/schemas", schema.clone()).await;
    assert_eq!(status, 201, "{created}");
    let type_id = created["objectTypeId"].as_str().unwrap().to_string();
    assert!(type_id.starts_with("2-"));
    assert_eq!(created["fullyQualifiedName"], "p12345678_pets");
    assert_eq!(created["labels"]["plural"], "Pets");
    let assoc_targets: Vec<&str> =
        created["associations"].as_array().unwrap().iter().map(|a| a["toObjectTypeId"].as_str().unwrap()).collect();
    assert!(assoc_targets.contains(&"0-1") && assoc_targets.contains(&"0-2") && assoc_targets.contains(&"0-46"));
    let pet_name = created["properties"].as_array().unwrap().iter().find(|p| p["name"] == "pet_name").unwrap();
    assert_eq!((pet_name["type"].as_str(), pet_name["fieldType"].as_str()), (Some("string"), Some("text")));

    let (status, out) = api.post("/crm-object-schemas/v3/schemas", schema).await;
    assert_eq!(status, 409, "{out}");
    let (status, list) = api.get("/crm/v3/schemas").await;
    assert_eq!(status, 200);
    assert_eq!(list["results"][0]["objectTypeId"], type_id);
    assert_eq!(api.get("/crm-object-schemas/v3/schemas/p12345678_pets").await.0, 200);

    let (status, pet) =
        api.post(&format!("/crm/v3/objects/{type_id}"), json!({"properties": {"pet_name": "Rex", "age": "3"}})).await;
    assert_eq!(status, 201);
    assert!(pet["properties"]["hs_createdate"].is_string());
    let id = pet["id"].as_str().unwrap();
    for name in [type_id.as_str(), "p12345678_pets", "p_pets", "pets"] {
        let (status, got) = api.get(&format!("/crm/objects/2026-03/{name}/{id}?properties=pet_name")).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(got["properties"]["pet_name"], "Rex");
    }
    let (status, out) = api
        .post(
            &format!("/crm/v3/objects/{type_id}/batch/upsert"),
            json!({"inputs": [{"id": "Rex", "idProperty": "pet_name", "properties": {"age": "4"}}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(out["results"][0]["new"], false);
    assert_eq!(em.records("pets")[0].properties["age"], "4");
    assert_eq!(em.record_count(&type_id), 1);

    let (status, _) = api.delete(&format!("/crm-object-schemas/v3/schemas/{type_id}")).await;
    assert_eq!(status, 400, "a schema with records can't be deleted");
    api.delete(&format!("/crm/v3/objects/pets/{id}")).await;
    assert_eq!(api.delete(&format!("/crm-object-schemas/v3/schemas/{type_id}")).await.0, 204);
    assert_eq!(api.get("/crm/v3/objects/pets").await.0, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn handle_creates_custom_objects_and_properties() {
    let em = start().await;
    let type_id = em.create_custom_object(json!({"name": "lender", "labels": {"singular": "Lender", "plural": "Lenders"}, "properties": [{"name": "code", "hasUniqueValue": true}]}));
    assert!(type_id.starts_with("2-"));
    let id = em.insert_record("p_lender", &[("code", "L1")]);
    assert_eq!(em.records(&type_id)[0].id, id);
    assert!(em.properties("lender").iter().any(|p| p["name"] == "code" && p["hasUniqueValue"] == true));
}

/// What hubsync's unique key property relies on: a property group of its own, a property with
/// `hasUniqueValue` in it, batch upsert by that property (created, then updated, never twice),
/// and the 403 for a token without the schema write scope.
#[tokio::test(flavor = "multi_thread")]
async fn property_groups_and_upsert_by_a_created_unique_property() {
    use hubspot_emulator::StaticToken;
    let em = crate::support::start_with(|c| {
        c.static_tokens = vec![
            StaticToken { token: "pat-na1-all".into(), scopes: vec!["*".into()] },
            StaticToken {
                token: "pat-na1-records".into(),
                scopes: vec!["crm.objects.companies.read".into(), "crm.objects.companies.write".into()],
            },
        ];
    })
    .await;
    let api = Api::with_token(&em, Some("pat-na1-all"));
    let group = json!({"name": "hubsync", "label": "hubsync", "displayOrder": -1});
    let (status, created) = api.post("/crm/properties/2026-03/companies/groups", group.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created, json!({"name": "hubsync", "label": "hubsync", "displayOrder": -1, "archived": false}));
    let (status, again) = api.post("/crm/properties/2026-03/companies/groups", group).await;
    assert_eq!(status, 409, "group names are unique");
    assert_eq!(again["category"], "OBJECT_ALREADY_EXISTS");
    let (status, one) = api.get("/crm/v3/properties/companies/groups/hubsync").await;
    assert_eq!((status, one["label"].as_str()), (200, Some("hubsync")));
    let (status, _) = api.get("/crm/v3/properties/companies/groups/nope").await;
    assert_eq!(status, 404);
    let (_, all) = api.get("/crm/v3/properties/companies/groups").await;
    let names: Vec<&str> = all["results"].as_array().unwrap().iter().filter_map(|g| g["name"].as_str()).collect();
    assert!(names.contains(&"hubsync") && names.contains(&"companyinformation"), "{names:?}");
    let (status, bad) = api.post("/crm/v3/properties/companies/groups", json!({"name": "x"})).await;
    assert_eq!(status, 400);
    assert_eq!(bad["category"], "VALIDATION_ERROR");

    // Without crm.schemas.companies.write: 403 MISSING_SCOPES naming it, nothing created.
    let records_only = Api::with_token(&em, Some("pat-na1-records"));
    let key = json!({"name": "hubsync_key", "label": "hubsync key", "type": "string", "fieldType": "text",
                     "groupName": "hubsync", "hasUniqueValue": true});
    for path in ["/crm/properties/2026-03/companies", "/crm/properties/2026-03/companies/groups"] {
        let (status, body) = records_only.post(path, key.clone()).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(body["category"], "MISSING_SCOPES");
        assert_eq!(body["errors"][0]["context"]["requiredGranularScopes"], json!(["crm.schemas.companies.write"]));
    }
    assert!(em.properties("companies").iter().all(|p| p["name"] != "hubsync_key"));

    let (status, prop) = api.post("/crm/properties/2026-03/companies", key.clone()).await;
    assert_eq!(status, 201, "{prop}");
    assert_eq!((prop["hasUniqueValue"].as_bool(), prop["groupName"].as_str()), (Some(true), Some("hubsync")));
    assert_eq!(api.post("/crm/properties/2026-03/companies", key).await.0, 409);

    let upsert = |name: &str| {
        json!({"inputs": [{"id": "firms:1", "idProperty": "hubsync_key", "objectWriteTraceId": "t1",
                           "properties": {"name": name, "hubsync_key": "firms:1"}}]})
    };
    let (status, first) = records_only.post("/crm/objects/2026-03/companies/batch/upsert", upsert("Acme")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["results"][0]["new"], true);
    let id = first["results"][0]["id"].clone();
    let (status, second) = records_only.post("/crm/objects/2026-03/companies/batch/upsert", upsert("Acme Inc")).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!((second["results"][0]["new"].as_bool(), &second["results"][0]["id"]), (Some(false), &id));
    assert_eq!(em.records("companies").len(), 1, "an upsert by a unique property never creates twice");
    // A second record cannot take the same value.
    let (status, dup) = records_only
        .post(
            "/crm/objects/2026-03/companies/batch/create",
            json!({"inputs": [{"objectWriteTraceId": "t2", "properties": {"name": "Other", "hubsync_key": "firms:1"}}]}),
        )
        .await;
    assert_eq!(status, 207, "{dup}");
    assert!(dup["errors"][0]["message"].as_str().unwrap().contains("already exists"), "{dup}");
}
