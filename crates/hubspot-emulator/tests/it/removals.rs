//! Issues 12 and 13: archiving records and associations, merging records, deleting lists,
//! upserting a unique value again after an archive, and faults that strike after a write
//! was applied (HubSpot docs: CRM objects, associations v4, lists v3, error handling; sources in docs/emulator.md).

use crate::support::{assert_error, contact_upserts, start, start_with, Api};
use hubspot_emulator::FaultConfig;
use reqwest::Method;
use serde_json::{json, Value};

/// `POST` with a JSON body, answering status and the raw body text.
async fn post_text(api: &Api, path: &str, body: Value) -> (u16, String) {
    let resp = api.raw(Method::POST, path, Some(&body)).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn object_batch_archive_answers_204_for_up_to_100() {
    let em = start().await;
    let api = Api::new(&em);
    let ids: Vec<String> = (0..3).map(|i| em.insert_record("contacts", &[("firstname", &format!("C{i}"))])).collect();
    let contact = em.insert_record("contacts", &[("email", "gone@example.com")]);
    let company = em.insert_record("companies", &[("name", "Acme")]);
    em.create_association_label("contacts", "companies", "Owner");
    let (status, _) = api
        .put(&format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}"), json!(null))
        .await;
    assert_eq!(status, 200);
    // Unknown and malformed ids are ignored; the answer is an empty 204.
    let body = json!({"inputs": [{"id": ids[0]}, {"id": ids[1]}, {"id": contact}, {"id": "999"}, {"id": "x"}]});
    let (status, text) = post_text(&api, "/crm/objects/2026-03/contacts/batch/archive", body).await;
    assert_eq!((status, text.as_str()), (204, ""));
    let live: Vec<String> = em.records("contacts").into_iter().map(|r| r.id).collect();
    assert_eq!(live, vec![ids[2].clone()]);
    assert!(em.associations("contacts", "companies").is_empty(), "archived records lose their associations");
    let (status, read) = api.get(&format!("/crm/v3/objects/contacts/{}?archived=true", ids[0])).await;
    assert_eq!(status, 200);
    assert_eq!(read["archived"], true);
    // More than 100 inputs: HubSpot's batch cap.
    let inputs: Vec<Value> = (0..101).map(|i| json!({"id": i.to_string()})).collect();
    let (status, body) = api.post("/crm/v3/objects/contacts/batch/archive", json!({ "inputs": inputs })).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        Some("VALIDATION_ERROR"),
        "The maximum number of inputs supported in a batch is 100. Please reduce the number of items and try again",
    );
    assert_eq!(em.record_count("contacts"), 1);
    // A body that is not JSON gets HubSpot's parse error, not a panic.
    let (status, body) =
        api.post_raw("/crm/v3/objects/contacts/batch/archive", "application/json", "{\"inputs\": [").await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().starts_with("Invalid input JSON"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn association_batch_archive_and_labels_archive_answer_204() {
    let em = start().await;
    let api = Api::new(&em);
    let contact = em.insert_record("contacts", &[("firstname", "A")]);
    let companies: Vec<String> =
        (0..2).map(|i| em.insert_record("companies", &[("name", &format!("Co{i}"))])).collect();
    let types = json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]);
    let inputs: Vec<Value> =
        companies.iter().map(|c| json!({"from": {"id": contact}, "to": {"id": c}, "types": types})).collect();
    let (status, _) =
        api.post("/crm/v4/associations/contacts/companies/batch/create", json!({ "inputs": inputs })).await;
    assert_eq!(status, 201);
    let types_of = |em: &hubspot_emulator::Emulator, to: &str| {
        em.associations("contacts", "companies").into_iter().find(|a| a.to_id == to).map(|a| a.type_ids)
    };
    assert_eq!(types_of(&em, &companies[0]), Some(vec![1, 279]));

    // labels/archive removes only the listed label, both ways.
    let body = json!({"inputs": [{"from": {"id": contact}, "to": {"id": companies[0]}, "types": types}]});
    let (status, text) =
        post_text(&api, "/crm/associations/2026-03/contacts/companies/batch/labels/archive", body).await;
    assert_eq!((status, text.as_str()), (204, ""));
    assert_eq!(types_of(&em, &companies[0]), Some(vec![279]));
    let back = em.associations("companies", "contacts");
    assert_eq!(back.iter().find(|a| a.from_id == companies[0]).map(|a| a.type_ids.clone()), Some(vec![280]));

    // batch/archive removes every type between each pair.
    let body = json!({"inputs": [{"from": {"id": contact}, "to": [{"id": companies[0]}, {"id": companies[1]}]}]});
    let (status, text) = post_text(&api, "/crm/v4/associations/contacts/companies/batch/archive", body).await;
    assert_eq!((status, text.as_str()), (204, ""));
    assert!(em.associations("contacts", "companies").is_empty());
    assert!(em.associations("companies", "contacts").is_empty());

    // An unknown label type is refused.
    let body = json!({"inputs": [{"from": {"id": contact}, "to": {"id": companies[0]}, "types": [{"associationCategory": "USER_DEFINED", "associationTypeId": 987654}]}]});
    let (status, out) = api.post("/crm/v4/associations/contacts/companies/batch/labels/archive", body).await;
    assert_eq!(status, 400);
    assert_error(
        &out,
        Some("VALIDATION_ERROR"),
        "Association type id 987654 does not exist between contact and company.",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_contacts_and_companies() {
    let em = start().await;
    let api = Api::new(&em);
    let primary = em.insert_record("contacts", &[("email", "keep@example.com"), ("firstname", "Keep")]);
    let merged = em.insert_record("contacts", &[("email", "old@example.com"), ("lastname", "Old")]);
    let company = em.insert_record("companies", &[("name", "Acme")]);
    em.create_association_label("contacts", "companies", "Owner");
    let path = format!("/crm/v4/objects/contacts/{merged}/associations/default/companies/{company}");
    assert_eq!(api.put(&path, json!(null)).await.0, 200);

    let (status, body) = api
        .post("/crm/v3/objects/contacts/merge", json!({"primaryObjectId": primary, "objectIdToMerge": merged}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], primary);
    assert_eq!(body["archived"], false);
    assert_eq!(body["url"], format!("https://app.hubspot.com/contacts/12345678/record/0-1/{primary}"));
    let p = &body["properties"];
    assert_eq!(p["hs_merged_object_ids"], merged);
    let mut vids = [primary.clone(), merged.clone()];
    vids.sort();
    assert_eq!(p["hs_all_contact_vids"], vids.join(";"));
    assert_eq!(
        (&p["email"], &p["firstname"], &p["lastname"]),
        (&json!("keep@example.com"), &json!("Keep"), &json!("Old"))
    );
    assert_eq!(em.record_count("contacts"), 1);
    let links = em.associations("contacts", "companies");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].from_id, primary, "the survivor takes the associations");
    // The merged-away id reads the survivor.
    let (status, read) = api.get(&format!("/crm/v3/objects/contacts/{merged}")).await;
    assert_eq!((status, read["id"].clone()), (200, json!(primary)));

    // Companies, on the dated path; errors.
    let a = em.insert_record("companies", &[("name", "A")]);
    let b = em.insert_record("companies", &[("name", "B")]);
    let (status, body) =
        api.post("/crm/objects/2026-03/companies/merge", json!({"primaryObjectId": a, "objectIdToMerge": b})).await;
    assert_eq!(status, 200);
    assert_eq!(body["properties"]["hs_merged_object_ids"], b);
    let (status, body) =
        api.post("/crm/v3/objects/companies/merge", json!({"primaryObjectId": a, "objectIdToMerge": "424242"})).await;
    assert_eq!(status, 404);
    assert_error(&body, Some("OBJECT_NOT_FOUND"), "Object not found.  objectId are usually numeric.");
    assert_eq!(body["context"], json!({"id": ["424242"]}));
    let (status, body) =
        api.post("/crm/v3/objects/companies/merge", json!({"primaryObjectId": a, "objectIdToMerge": a})).await;
    assert_eq!(status, 400);
    assert_error(&body, Some("VALIDATION_ERROR"), &format!("Cannot merge record {a} with itself."));
    let (status, body) = api.post("/crm/v3/objects/companies/merge", json!({"primaryObjectId": a})).await;
    assert_eq!(status, 400);
    assert_error(&body, Some("VALIDATION_ERROR"), "Missing required fields: primaryObjectId, objectIdToMerge");
    let (status, body) =
        api.post("/crm/v3/objects/deals/merge", json!({"primaryObjectId": "1", "objectIdToMerge": "2"})).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        Some("VALIDATION_ERROR"),
        "Merging deals is not supported; the emulator merges contacts and companies.",
    );
    let (status, body) = api.post_raw("/crm/v3/objects/companies/merge", "application/json", "nope").await;
    assert_eq!(status, 400);
    assert!(body.get("category").is_none(), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_delete_answers_204_then_the_list_is_gone() {
    let em = start().await;
    let api = Api::new(&em);
    let (_, created) =
        api.post("/crm/v3/lists", json!({"name": "Gone", "objectTypeId": "0-1", "processingType": "MANUAL"})).await;
    let id = created["list"]["listId"].as_str().unwrap().to_string();
    let resp = api.raw(Method::DELETE, &format!("/crm/lists/2026-03/{id}"), None).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.text().await.unwrap(), "");
    assert!(em.list_by_name("Gone").is_none());
    let (status, body) = api.get(&format!("/crm/v3/lists/{id}")).await;
    assert_eq!(status, 404);
    assert_error(&body, Some("OBJECT_NOT_FOUND"), &format!("List does not exist with ID {id}."));
    assert_eq!(body["subCategory"], "ListError.LIST_DOES_NOT_EXIST");
    let (status, _) = api.delete(&format!("/crm/v3/lists/{id}")).await;
    assert_eq!(status, 404, "a second delete finds nothing");
    // The name is free again.
    let (status, _) =
        api.post("/crm/v3/lists", json!({"name": "Gone", "objectTypeId": "0-1", "processingType": "MANUAL"})).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upsert_after_an_archive_creates_a_new_record() {
    let em = start_with(|c| c.shuffle_results = false).await;
    let api = Api::new(&em);
    let (_, first) = api.post("/crm/v3/objects/contacts/batch/upsert", contact_upserts("again", 1)).await;
    let old = first["results"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(first["results"][0]["new"], true);
    let (status, _) = api.post("/crm/v3/objects/contacts/batch/archive", json!({"inputs": [{"id": old}]})).await;
    assert_eq!(status, 204);
    // The archived record's email is free: the upsert creates a new record with a new id.
    let (status, second) = api.post("/crm/v3/objects/contacts/batch/upsert", contact_upserts("again", 1)).await;
    assert_eq!(status, 200);
    let result = &second["results"][0];
    assert_eq!(result["new"], true);
    assert_ne!(result["id"], old);
    assert_eq!(result["properties"]["email"], "again0@example.com");
    let live = em.find_by_property("contacts", "email", "again0@example.com");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, result["id"].as_str().unwrap());
    // The archived one stays in the recycle bin, readable with archived=true.
    let (status, read) = api.get(&format!("/crm/v3/objects/contacts/{old}?archived=true")).await;
    assert_eq!((status, read["archived"].clone()), (200, json!(true)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_error_after_the_write_leaves_the_records_in_place() {
    let em = start_with(|c| c.faults.error_after_write_rate = 1.0).await;
    let api = Api::new(&em);
    let resp = api.raw(Method::POST, "/crm/v3/objects/contacts/batch/upsert", Some(&contact_upserts("w", 3))).await;
    let status = resp.status().as_u16();
    assert!(status == 502 || status == 504, "{status}");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(resp.headers().get("x-hubspot-ratelimit-max").is_none());
    let text = resp.text().await.unwrap();
    assert!(text.contains(&format!("<title>{status} ")), "{text}");
    assert_eq!(em.record_count("contacts"), 3, "the write was applied");
    let (status, _) =
        api.post("/crm/v3/objects/deals/batch/create", json!({"inputs": [{"properties": {"dealname": "D"}}]})).await;
    assert!(status == 502 || status == 504);
    let (status, _) = api.post("/crm/v3/objects/deals", json!({"properties": {"dealname": "E"}})).await;
    assert!(status == 502 || status == 504);
    assert_eq!(em.record_count("deals"), 2);
    // Reads, updates and failed writes are not hit.
    assert_eq!(api.get("/crm/v3/objects/contacts").await.0, 200);
    let (status, _) = api.post("/crm/v3/objects/deals", json!({"properties": {"nope": "x"}})).await;
    assert_eq!(status, 400);
    let id = em.records("deals")[0].id.clone();
    assert_eq!(
        api.patch(&format!("/crm/v3/objects/deals/{id}"), json!({"properties": {"dealname": "F"}})).await.0,
        200
    );
    assert_eq!(em.count_status(502) + em.count_status(504), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_connection_after_the_write_leaves_the_records_in_place() {
    let em = start().await;
    em.set_faults(FaultConfig { drop_after_write_rate: 1.0, ..FaultConfig::default() });
    let api = Api::new(&em);
    let sent = api
        .client
        .post(format!("{}/crm/v3/objects/contacts/batch/upsert", api.base))
        .bearer_auth("t")
        .json(&contact_upserts("dw", 2))
        .send()
        .await;
    assert!(sent.is_err(), "the connection closes without an answer");
    assert_eq!(em.record_count("contacts"), 2, "the write was applied");
    assert_eq!(em.count_status(0), 1);
    em.set_faults(FaultConfig::default());
    let (status, out) = api.post("/crm/v3/objects/contacts/batch/upsert", contact_upserts("dw", 2)).await;
    assert_eq!(status, 200);
    assert!(out["results"].as_array().unwrap().iter().all(|r| r["new"] == false), "the retry finds them");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_handle_archives_records_and_deletes_and_renames_lists_as_a_person_would() {
    let em = start().await;
    let api = Api::new(&em);
    let ada = em.insert_record("contacts", &[("email", "ada@example.com")]);
    let grace = em.insert_record("contacts", &[("email", "grace@example.com")]);
    let (status, list) =
        api.post("/crm/v3/lists", json!({"name": "People", "objectTypeId": "0-1", "processingType": "MANUAL"})).await;
    assert_eq!(status, 200);
    let list_id = list["list"]["listId"].as_str().unwrap().to_string();
    let (status, _) = api.put(&format!("/crm/v3/lists/{list_id}/memberships/add"), json!([ada, grace])).await;
    assert_eq!(status, 200);

    // Archived: gone from reads by id (404 JSON), from the list, and its email is free.
    assert!(em.archive_record("contacts", &ada));
    assert!(!em.archive_record("contacts", &ada), "only a live record can be archived");
    let (status, body) = api.get(&format!("/crm/objects/2026-03/contacts/{ada}?properties=hs_object_id")).await;
    assert_eq!((status, body["category"].as_str()), (404, Some("OBJECT_NOT_FOUND")));
    assert_eq!(em.list_members(&list_id), vec![grace.clone()]);
    assert!(em.find_by_property("contacts", "email", "ada@example.com").is_empty());

    // A merged-away or archived id added to a list is reported missing, not added.
    let survivor = em.insert_record("contacts", &[("email", "grace.hopper@example.com")]);
    em.merge_records("contacts", &survivor, &grace);
    let (status, body) = api.put(&format!("/crm/v3/lists/{list_id}/memberships/add"), json!([grace, ada])).await;
    assert_eq!(status, 200);
    let mut missing: Vec<String> =
        body["recordIdsMissing"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    missing.sort();
    let mut expected = vec![ada.clone(), grace.clone()];
    expected.sort();
    assert_eq!(missing, expected, "{body}");
    assert!(body.get("recordsIdsAdded").is_none(), "{body}");
    let (status, body) = api.get(&format!("/crm/objects/2026-03/contacts/{grace}?properties=hs_object_id")).await;
    assert_eq!((status, body["id"].as_str()), (200, Some(survivor.as_str())), "a merged-away id reads the survivor");

    // Renamed: the same id under the new name; deleted: gone by id and by name.
    assert!(em.rename_list(&list_id, "People (renamed)"));
    let (status, body) = api.get(&format!("/crm/lists/2026-03/{list_id}")).await;
    assert_eq!((status, body["list"]["name"].as_str()), (200, Some("People (renamed)")));
    assert!(em.list_by_name("People").is_none());
    assert!(em.delete_list(&list_id));
    assert!(!em.delete_list(&list_id));
    assert!(!em.rename_list(&list_id, "Again"));
    let (status, _) = api.get(&format!("/crm/lists/2026-03/{list_id}")).await;
    assert_eq!(status, 404);
    let (status, _) = api.put(&format!("/crm/v3/lists/{list_id}/memberships/add"), json!([survivor])).await;
    assert_eq!(status, 404, "a membership change of a deleted list is a 404");
}
