//! Associations v4 over real HTTP: labeled and default links, batch endpoints, labels API,
//! HubSpot's default type ids and the unlabeled link beside a labeled one (§3, §9).

use crate::support::{start, Api};
use hubspot_emulator::EmAssociation;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn single_put_answers_201_with_numeric_ids_as_recorded() {
    let em = start().await;
    let api = Api::new(&em);
    let contact = em.insert_record("contacts", &[("email", "a@example.com")]);
    let company = em.insert_record("companies", &[("name", "Acme")]);
    let (status, body) = api
        .put(
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
            json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        body,
        json!({
            "fromObjectTypeId": "0-1",
            "fromObjectId": contact.parse::<u64>().unwrap(),
            "toObjectTypeId": "0-2",
            "toObjectId": company.parse::<u64>().unwrap(),
            "labels": [],
        })
    );
    // The inverse exists with HubSpot's inverse type id.
    assert_eq!(
        em.associations("companies", "contacts"),
        vec![EmAssociation {
            from_id: company.clone(),
            to_id: contact.clone(),
            type_ids: vec![280],
            labels: vec![None]
        }]
    );

    // A labeled link carries the unlabeled default beside it.
    let (status, body) = api
        .put(
            &format!("/crm/objects/2026-03/contact/{contact}/associations/company/{company}"),
            json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["labels"], json!(["Primary"]));
    let links = em.associations("0-1", "0-2");
    assert_eq!(links[0].type_ids, vec![1, 279]);
    assert_eq!(links[0].labels, vec![Some("Primary".to_string()), None]);
    assert_eq!(em.associations("0-2", "0-1")[0].type_ids, vec![2, 280]);

    // GET lists the types with `label: null` for the unlabeled one.
    let (status, body) = api.get(&format!("/crm/v4/objects/contacts/{contact}/associations/companies")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"results": [{"toObjectId": company.parse::<u64>().unwrap(), "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"},
            {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null},
        ]}]})
    );

    let (status, _) = api.delete(&format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}")).await;
    assert_eq!(status, 204);
    assert!(em.associations("contacts", "companies").is_empty());
    assert!(em.associations("companies", "contacts").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_create_read_and_archive() {
    let em = start().await;
    let api = Api::new(&em);
    let deals: Vec<String> = (0..3).map(|i| em.insert_record("deals", &[("dealname", &format!("D{i}"))])).collect();
    let company = em.insert_record("companies", &[("name", "Acme")]);
    let inputs: Vec<Value> = deals
        .iter()
        .map(|d| json!({"from": {"id": d}, "to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}))
        .collect();
    let (status, body) =
        api.post("/crm/v4/associations/deals/companies/batch/create", json!({ "inputs": inputs })).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(body["results"].as_array().unwrap().len(), 3);
    assert!(body["results"].as_array().unwrap().iter().all(|r| r["labels"] == json!(["Primary"])));

    let lonely = em.insert_record("deals", &[("dealname", "Lonely")]);
    let (status, body) = api
        .post("/crm/associations/2026-03/0-3/0-2/batch/read", json!({"inputs": [{"id": deals[0]}, {"id": lonely}]}))
        .await;
    assert_eq!(status, 207);
    assert_eq!(body["results"][0]["from"]["id"], deals[0]);
    assert_eq!(body["results"][0]["to"][0]["toObjectId"], company.parse::<u64>().unwrap());
    assert_eq!(
        body["results"][0]["to"][0]["associationTypes"],
        json!([{"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"}, {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": null}])
    );
    assert!(body["results"][0].get("paging").is_none(), "paging only when there are more pages");
    assert_eq!(
        body["errors"],
        json!([{
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
            "message": format!("No company is associated with deal {lonely}."),
            "context": {"fromObjectId": [lonely], "fromObjectType": ["deal"], "toObjectType": ["company"]},
        }])
    );

    // Removing only the label keeps the default; removing the default removes everything.
    let labels_archive = json!({"inputs": [{"from": {"id": deals[0]}, "to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}]});
    assert_eq!(api.post("/crm/v4/associations/deals/companies/batch/labels/archive", labels_archive).await.0, 204);
    let d0 = |links: Vec<EmAssociation>| links.into_iter().find(|l| l.from_id == deals[0]).map(|l| l.type_ids);
    assert_eq!(d0(em.associations("deals", "companies")), Some(vec![341]));
    let labels_archive = json!({"inputs": [{"from": {"id": deals[1]}, "to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 341}]}]});
    assert_eq!(api.post("/crm/v4/associations/deals/companies/batch/labels/archive", labels_archive).await.0, 204);
    assert!(em.associations("deals", "companies").iter().all(|l| l.from_id != deals[1]));

    let archive = json!({"inputs": [{"from": {"id": deals[2]}, "to": [{"id": company}]}]});
    assert_eq!(api.post("/crm/v4/associations/deals/companies/batch/archive", archive).await.0, 204);
    assert_eq!(em.associations("deals", "companies").len(), 1);
    assert_eq!(em.associations("companies", "deals").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn default_associations_and_errors() {
    let em = start().await;
    let api = Api::new(&em);
    let ticket = em.insert_record("tickets", &[("subject", "Help")]);
    let contact = em.insert_record("contacts", &[("email", "t@example.com")]);
    let (status, body) = api
        .put(&format!("/crm/v4/objects/tickets/{ticket}/associations/default/contacts/{contact}"), json!(null))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["results"][0]["associationSpec"],
        json!({"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 16})
    );
    assert_eq!(body["results"][1]["associationSpec"]["associationTypeId"], 15);

    let other = em.insert_record("contacts", &[("email", "u@example.com")]);
    let (status, body) = api
        .post(
            "/crm/v4/associations/tickets/contacts/batch/associate/default",
            json!({"inputs": [{"from": {"id": ticket}, "to": {"id": other}}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
    assert_eq!(em.associations("tickets", "contacts").len(), 2);

    // A type id of another pair is refused; so is a wrong category.
    let wrong = json!({"inputs": [{"from": {"id": ticket}, "to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]});
    let (status, body) = api.post("/crm/v4/associations/tickets/contacts/batch/create", wrong).await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    let wrong = json!([{"associationCategory": "USER_DEFINED", "associationTypeId": 16}]);
    assert_eq!(
        api.put(&format!("/crm/v4/objects/tickets/{ticket}/associations/contacts/{contact}"), wrong).await.0,
        400
    );
    // A missing record in a batch is a per-input error.
    let missing = json!({"inputs": [{"from": {"id": ticket}, "to": {"id": "999"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 16}]}]});
    let (status, body) = api.post("/crm/v4/associations/tickets/contacts/batch/create", missing).await;
    assert_eq!(status, 207);
    assert_eq!(body["numErrors"], 1);
    let inputs: Vec<Value> = (0..1001).map(|i| json!({"id": i.to_string()})).collect();
    assert_eq!(api.post("/crm/v4/associations/tickets/contacts/batch/read", json!({ "inputs": inputs })).await.0, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn labels_api_and_user_defined_labels() {
    let em = start().await;
    let api = Api::new(&em);
    let (status, body) = api.get("/crm/v4/associations/contacts/companies/labels").await;
    assert_eq!(status, 200);
    let results = body["results"].as_array().unwrap();
    assert!(results.contains(&json!({"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null})));
    assert!(results.contains(&json!({"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"})));

    let (status, body) = api
        .post(
            "/crm/v4/associations/contacts/companies/labels",
            json!({"label": "Decision maker", "name": "decision_maker", "inverseLabel": "Decided by"}),
        )
        .await;
    assert_eq!(status, 200);
    let forward = body["results"][0]["typeId"].as_u64().unwrap() as u32;
    assert_eq!(body["results"][0]["category"], "USER_DEFINED");
    assert_eq!(body["results"][1]["label"], "Decided by");
    let (status, _) =
        api.post("/crm/v4/associations/contacts/companies/labels", json!({"label": "Bad", "name": "bad-name"})).await;
    assert_eq!(status, 400);

    let contact = em.insert_record("contacts", &[("email", "l@example.com")]);
    let company = em.insert_record("companies", &[("name", "L")]);
    let (status, body) = api
        .put(
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
            json!([{"associationCategory": "USER_DEFINED", "associationTypeId": forward}]),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["labels"], json!(["Decision maker"]));
    assert_eq!(em.associations("companies", "contacts")[0].labels, vec![None, Some("Decided by".to_string())]);
    assert_eq!(
        api.delete(&format!("/crm/v4/associations/contacts/companies/labels/{forward}")).await.0,
        400,
        "label in use"
    );

    let handle_label = em.create_association_label("deals", "tickets", "Escalation");
    assert!(handle_label > 1000);
    let (_, body) = api.get("/crm/v4/associations/0-3/0-5/labels").await;
    assert!(body["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["typeId"] == handle_label && l["label"] == "Escalation"));
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_objects_associate_once_declared() {
    let em = start().await;
    let api = Api::new(&em);
    let pets = em.create_custom_object(json!({"name": "pets", "labels": {"singular": "Pet", "plural": "Pets"}, "properties": [{"name": "pet_name"}], "associatedObjects": ["0-1"]}));
    let pet = em.insert_record(&pets, &[("pet_name", "Rex")]);
    let contact = em.insert_record("contacts", &[("email", "owner@example.com")]);
    let (status, labels) = api.get(&format!("/crm/v4/associations/{pets}/contacts/labels")).await;
    assert_eq!(status, 200);
    let default = labels["results"][0]["typeId"].clone();
    assert_eq!(labels["results"][0]["label"], Value::Null);
    let (status, _) = api
        .put(
            &format!("/crm/v4/objects/p_pets/{pet}/associations/contacts/{contact}"),
            json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": default}]),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(em.associations("pets", "contacts").len(), 1);
    // Companies were not declared: no definition, so no default type.
    let (_, labels) = api.get(&format!("/crm/v4/associations/{pets}/companies/labels")).await;
    assert_eq!(labels["results"], json!([]));
}
