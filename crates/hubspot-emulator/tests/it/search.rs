//! CRM search over real HTTP: operators, groups, paging, HubSpot's limits, the per-second
//! search limit and the index lag (HubSpot docs: search, usage guidelines; sources in docs/emulator.md).

use std::time::Duration;

use crate::support::{assert_error, start, start_with, Api};
use reqwest::Method;
use serde_json::{json, Value};

fn ids(body: &Value) -> Vec<String> {
    body["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

async fn search(api: &Api, object: &str, body: Value) -> (u16, Value) {
    api.post(&format!("/crm/v3/objects/{object}/search"), body).await
}

fn filter(property: &str, operator: &str, value: Value) -> Value {
    json!({"propertyName": property, "operator": operator, "value": value})
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_and_groups() {
    let em = start_with(|c| c.search_requests_per_sec = None).await;
    let api = Api::new(&em);
    let alice = em.insert_record(
        "contacts",
        &[("email", "alice@hubspot.com"), ("firstname", "Alice"), ("lastname", "Smith"), ("lifecyclestage", "lead")],
    );
    let bob = em.insert_record(
        "contacts",
        &[("email", "bob@example.com"), ("firstname", "Bob"), ("lastname", "Jones"), ("lifecyclestage", "customer")],
    );
    // Carol is given a stage so that the default one (lead) does not match her.
    let carol =
        em.insert_record("contacts", &[("firstname", "Carol"), ("lastname", "Smith"), ("lifecyclestage", "other")]);

    let one = |f: Value| json!({"filterGroups": [{"filters": [f]}]});
    let cases = vec![
        (one(filter("firstname", "EQ", json!("alice"))), vec![&alice]),
        (one(filter("lastname", "NEQ", json!("Smith"))), vec![&bob]),
        (
            one(json!({"propertyName": "email", "operator": "IN", "values": ["bob@example.com", "alice@hubspot.com"]})),
            vec![&alice, &bob],
        ),
        (one(json!({"propertyName": "email", "operator": "IN", "values": ["BOB@example.com"]})), vec![]),
        (one(json!({"propertyName": "email", "operator": "HAS_PROPERTY"})), vec![&alice, &bob]),
        (one(json!({"propertyName": "email", "operator": "NOT_HAS_PROPERTY"})), vec![&carol]),
        (one(filter("email", "CONTAINS_TOKEN", json!("*@hubspot.com"))), vec![&alice]),
        (one(filter("lifecyclestage", "EQ", json!("Lead"))), vec![]),
        (one(filter("lifecyclestage", "EQ", json!("lead"))), vec![&alice]),
        (one(filter("hs_object_id", "GT", json!(alice.clone()))), vec![&bob, &carol]),
        (
            one(json!({"propertyName": "hs_object_id", "operator": "BETWEEN", "value": alice, "highValue": bob})),
            vec![&alice, &bob],
        ),
        // Filters in a group are ANDed, groups are ORed.
        (
            json!({"filterGroups": [
                {"filters": [filter("firstname", "EQ", json!("Alice")), filter("lastname", "NEQ", json!("Smith"))]},
                {"filters": [{"propertyName": "email", "operator": "NOT_HAS_PROPERTY"}]},
            ]}),
            vec![&carol],
        ),
        (json!({"query": "jones"}), vec![&bob]),
        (json!({}), vec![&alice, &bob, &carol]),
    ];
    for (body, expected) in cases {
        let (status, out) = search(&api, "contacts", body.clone()).await;
        assert_eq!(status, 200, "{body} -> {out}");
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(ids(&out), expected, "{body}");
        assert_eq!(out["total"], expected.len());
    }
    let (_, out) = search(
        &api,
        "contacts",
        json!({"sorts": [{"propertyName": "firstname", "direction": "DESCENDING"}], "properties": ["firstname"]}),
    )
    .await;
    assert_eq!(ids(&out), vec![carol.clone(), bob.clone(), alice.clone()]);
    let keys: Vec<&str> = out["results"][0]["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["createdate", "firstname", "hs_object_id", "lastmodifieddate"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_with_after_and_association_filters() {
    let em = start_with(|c| c.search_requests_per_sec = None).await;
    let api = Api::new(&em);
    let company = em.insert_record("companies", &[("name", "Acme")]);
    let mut contacts = Vec::new();
    for i in 0..5 {
        contacts.push(em.insert_record("contacts", &[("firstname", &format!("P{i}"))]));
    }
    let (status, page) = search(&api, "contacts", json!({"limit": 2})).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), contacts[..2].to_vec());
    assert_eq!(page["paging"]["next"]["after"], "2");
    let (_, page) = search(&api, "contacts", json!({"limit": 2, "after": "4"})).await;
    assert_eq!(ids(&page), contacts[4..].to_vec());
    assert!(page.get("paging").is_none());

    let (status, _) = api
        .put(
            &format!("/crm/v4/objects/contacts/{}/associations/companies/{company}", contacts[1]),
            json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]),
        )
        .await;
    assert_eq!(status, 201);
    let (_, out) = search(
        &api,
        "contacts",
        json!({"filterGroups": [{"filters": [filter("associations.company", "EQ", json!(company))]}]}),
    )
    .await;
    assert_eq!(ids(&out), vec![contacts[1].clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_are_hubspots() {
    let em = start_with(|c| c.search_requests_per_sec = None).await;
    let api = Api::new(&em);
    let f = || filter("firstname", "EQ", json!("x"));
    let too_many_groups = json!({"filterGroups": (0..6).map(|_| json!({"filters": [f()]})).collect::<Vec<_>>()});
    let too_many_in_group = json!({"filterGroups": [{"filters": (0..7).map(|_| f()).collect::<Vec<_>>()}]});
    let too_many_total = json!({"filterGroups": (0..4).map(|_| json!({"filters": (0..5).map(|_| f()).collect::<Vec<_>>()})).collect::<Vec<_>>()});
    let just_enough = json!({"filterGroups": (0..3).map(|_| json!({"filters": (0..6).map(|_| f()).collect::<Vec<_>>()})).collect::<Vec<_>>()});
    for body in [
        too_many_groups,
        too_many_in_group,
        too_many_total,
        json!({"limit": 201}),
        json!({"limit": 200, "after": "9900"}),
        json!({"query": "x".repeat(3000)}),
    ] {
        let (status, out) = search(&api, "contacts", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(out["category"], "VALIDATION_ERROR");
    }
    assert_eq!(search(&api, "contacts", just_enough).await.0, 200);
    assert_eq!(search(&api, "contacts", json!({"limit": 200, "after": "9800"})).await.0, 200);
    let (status, out) =
        search(&api, "contacts", json!({"filterGroups": [{"filters": [filter("nope", "EQ", json!("x"))]}]})).await;
    assert_eq!(status, 400);
    assert_eq!(out["message"], "Property \"nope\" does not exist");
    let (status, out) = search(&api, "widgets", json!({})).await;
    assert_eq!(status, 400);
    assert_error(&out, None, "Unable to infer object type from: widgets");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_has_its_own_per_second_limit_and_no_rate_limit_headers() {
    let em = start_with(|c| c.max_requests_per_10s = Some(100)).await;
    let api = Api::new(&em);
    let mut statuses = Vec::new();
    let mut last_429 = None;
    for _ in 0..7 {
        let resp = api.raw(Method::POST, "/crm/objects/2026-03/contacts/search", Some(&json!({}))).await;
        assert!(resp.headers().get("x-hubspot-ratelimit-max").is_none(), "search answers carry no rate-limit headers");
        let status = resp.status().as_u16();
        statuses.push(status);
        if status == 429 {
            last_429 = Some(resp.json::<Value>().await.unwrap());
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    let body = last_429.expect("the sixth search in a second is limited");
    assert_eq!(body["status"], "error");
    assert_eq!(body["message"], "You have reached your secondly limit.");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "SECONDLY");
    assert!(body.get("category").is_none());
    // Search does not count against the 10-second window.
    let resp = api.raw(Method::GET, "/crm/v3/objects/contacts", None).await;
    assert_eq!(resp.headers()["x-hubspot-ratelimit-remaining"], "99");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(search(&api, "contacts", json!({})).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_reach_search_after_the_index_lag() {
    let em = start_with(|c| {
        c.search_index_lag_ms = 400;
        c.search_requests_per_sec = None;
    })
    .await;
    let api = Api::new(&em);
    let by_name = |name: &str| json!({"filterGroups": [{"filters": [filter("firstname", "EQ", json!(name))]}], "properties": ["firstname"]});
    let (status, created) = api.post("/crm/v3/objects/contacts", json!({"properties": {"firstname": "Lagging"}})).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(search(&api, "contacts", by_name("Lagging")).await.1["total"], 0, "not indexed yet");
    assert_eq!(api.get(&format!("/crm/v3/objects/contacts/{id}")).await.0, 200, "reads see it at once");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ids(&search(&api, "contacts", by_name("Lagging")).await.1), vec![id.clone()]);

    api.patch(&format!("/crm/v3/objects/contacts/{id}"), json!({"properties": {"firstname": "Renamed"}})).await;
    let (_, out) = search(&api, "contacts", by_name("Lagging")).await;
    assert_eq!(out["results"][0]["properties"]["firstname"], "Lagging", "search still sees the old value");
    assert_eq!(search(&api, "contacts", by_name("Renamed")).await.1["total"], 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(search(&api, "contacts", by_name("Renamed")).await.1["total"], 1);
    assert_eq!(search(&api, "contacts", by_name("Lagging")).await.1["total"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn archived_records_leave_search() {
    let em = start().await;
    let api = Api::new(&em);
    let id = em.insert_record("deals", &[("dealname", "Gone"), ("amount", "5")]);
    let body = json!({"filterGroups": [{"filters": [filter("amount", "GTE", json!(5))]}]});
    assert_eq!(search(&api, "deals", body.clone()).await.1["total"], 1);
    api.delete(&format!("/crm/v3/objects/deals/{id}")).await;
    assert_eq!(search(&api, "deals", body).await.1["total"], 0);
}
