//! Lists v3 over real HTTP: create, unique names, get by name, search, memberships with
//! HubSpot's field names, DYNAMIC lists refusing writes (HubSpot docs: lists v3, recorded real answers; sources in docs/emulator.md).

use crate::support::{assert_error, start, start_with, Api};
use serde_json::{json, Value};

async fn create_list(api: &Api, name: &str, processing: &str) -> String {
    let (status, body) =
        api.post("/crm/v3/lists", json!({"name": name, "objectTypeId": "0-1", "processingType": processing})).await;
    assert_eq!(status, 200, "{body}");
    body["list"]["listId"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_get_and_unique_names() {
    let em = start().await;
    let api = Api::new(&em);
    let (status, body) = api
        .post("/crm/lists/2026-03", json!({"name": "Sync: VIP", "objectTypeId": "0-1", "processingType": "MANUAL"}))
        .await;
    assert_eq!(status, 200);
    let list = &body["list"];
    assert_eq!(list["name"], "Sync: VIP");
    assert_eq!(list["objectTypeId"], "0-1");
    assert_eq!(list["processingType"], "MANUAL");
    assert_eq!(list["processingStatus"], "COMPLETE");
    assert_eq!(list["listVersion"], 1);
    let id = list["listId"].as_str().unwrap().to_string();

    let (status, body) = api
        .post("/crm/v3/lists", json!({"name": "sync: vip", "objectTypeId": "0-2", "processingType": "MANUAL"}))
        .await;
    assert_eq!(status, 400, "names are unique across the portal, case-insensitive");
    assert_eq!(body["category"], "VALIDATION_ERROR");
    let (status, _) = api.post("/crm/v3/lists", json!({"name": "x", "objectTypeId": "0-1"})).await;
    assert_eq!(status, 400);

    let (status, body) = api.get("/crm/v3/lists/object-type-id/0-1/name/SYNC:%20VIP").await;
    assert_eq!(status, 200);
    assert_eq!(body["list"]["listId"], id);
    let (status, body) = api.get(&format!("/crm/v3/lists/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["list"]["name"], "Sync: VIP");

    let (status, body) = api.get("/crm/v3/lists/object-type-id/0-1/name/Test%20List").await;
    assert_eq!(status, 404);
    assert_error(&body, Some("OBJECT_NOT_FOUND"), "List does not exist with name Test List and object type ID 0-1.");
    assert_eq!(body["subCategory"], "ListError.LIST_NAME_DOES_NOT_EXIST");

    let found = em.list_by_name("sync: vip").unwrap();
    assert_eq!(
        (found.list_id.as_str(), found.processing_type.as_str(), found.object_type_id.as_str()),
        (id.as_str(), "MANUAL", "0-1")
    );

    assert_eq!(api.delete(&format!("/crm/v3/lists/{id}")).await.0, 204);
    assert_eq!(api.get(&format!("/crm/v3/lists/{id}")).await.0, 404);
    assert!(em.list_by_name("Sync: VIP").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn memberships_answer_with_hubspots_field_names() {
    let em = start().await;
    let api = Api::new(&em);
    let id = create_list(&api, "Members", "MANUAL").await;
    let a = em.insert_record("contacts", &[("email", "a@example.com")]);
    let b = em.insert_record("contacts", &[("email", "b@example.com")]);
    let c = em.insert_record("contacts", &[("email", "c@example.com")]);

    let (status, body) = api.put(&format!("/crm/v3/lists/{id}/memberships/add"), json!([a, b, "999"])).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"recordsIdsAdded": [a, b], "recordIdsMissing": ["999"]}));
    // Current members are ignored.
    let (status, body) = api.put(&format!("/crm/v3/lists/{id}/memberships/add"), json!([a])).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({}));

    let (status, body) = api
        .put(
            &format!("/crm/lists/2026-03/{id}/memberships/add-and-remove"),
            json!({"recordIdsToAdd": [c], "recordIdsToRemove": [a]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"recordsIdsAdded": [c], "recordIdsRemoved": [a]}));
    let (status, body) =
        api.put(&format!("/crm/v3/lists/{id}/memberships/add-and-remove"), json!({"recordIdsToAdd": [a]})).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"recordsIdsAdded": [a]}));
    let (status, body) = api.put(&format!("/crm/v3/lists/{id}/memberships/remove"), json!([b])).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"recordIdsRemoved": [b]}));
    assert_eq!(em.list_members(&id), vec![a.clone(), c.clone()]);

    let (status, page) = api.get(&format!("/crm/v3/lists/{id}/memberships?limit=1")).await;
    assert_eq!(status, 200);
    assert_eq!(page["results"][0]["recordId"], a);
    assert!(page["results"][0]["membershipTimestamp"].is_string());
    assert_eq!(page["total"], 2);
    let after = page["paging"]["next"]["after"].as_str().unwrap();
    let (_, page) = api.get(&format!("/crm/v3/lists/{id}/memberships?limit=1&after={after}")).await;
    assert_eq!(page["results"][0]["recordId"], c);
    assert!(page.get("paging").is_none());

    let (status, body) = api.get(&format!("/crm/v3/lists/records/0-1/{c}/memberships")).await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["listId"], id);

    // Archiving a record takes it out of lists.
    api.delete(&format!("/crm/v3/objects/contacts/{c}")).await;
    assert_eq!(em.list_members(&id), vec![a.clone()]);
    assert_eq!(api.delete(&format!("/crm/v3/lists/{id}/memberships")).await.0, 204);
    assert!(em.list_members(&id).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamic_lists_refuse_writes_and_requests_have_a_cap() {
    let em = start_with(|c| c.list_membership_batch_limit = 3).await;
    let api = Api::new(&em);
    let a = em.insert_record("contacts", &[("email", "a@example.com")]);
    let dynamic = create_list(&api, "Dynamic", "DYNAMIC").await;
    let (status, body) = api.put(&format!("/crm/v3/lists/{dynamic}/memberships/add"), json!([a])).await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    let snapshot = create_list(&api, "Snapshot", "SNAPSHOT").await;
    assert_eq!(api.put(&format!("/crm/v3/lists/{snapshot}/memberships/add"), json!([a])).await.0, 200);
    let (status, _) = api.put(&format!("/crm/v3/lists/{snapshot}/memberships/add"), json!(["1", "2", "3", "4"])).await;
    assert_eq!(status, 400);
    let (status, body) = api.put("/crm/v3/lists/424242/memberships/add", json!([a])).await;
    assert_eq!(status, 404);
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");
    let (status, _) = api.put(&format!("/crm/v3/lists/{snapshot}/memberships/add"), json!({"not": "an array"})).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn search_lists() {
    let em = start().await;
    let api = Api::new(&em);
    for name in ["Alpha customers", "Beta customers", "Gamma"] {
        create_list(&api, name, "MANUAL").await;
    }
    let (status, body) = api.post("/crm/v3/lists/search", json!({"query": "customers", "count": 1})).await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 2);
    assert_eq!(body["hasMore"], true);
    assert_eq!(body["offset"], 1);
    assert_eq!(body["lists"][0]["name"], "Alpha customers");
    assert_eq!(body["lists"][0]["additionalProperties"]["hs_list_size"], "0");
    let (_, body) = api.post("/crm/v3/lists/search", json!({"query": "customers", "offset": 1})).await;
    assert_eq!(body["lists"][0]["name"], "Beta customers");
    assert_eq!(body["hasMore"], false);
    let (_, body) = api.post("/crm/v3/lists/search", json!({"processingTypes": ["DYNAMIC"]})).await;
    assert_eq!(body["lists"], Value::Array(vec![]));
}
