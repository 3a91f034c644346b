//! Pure request building: URLs on the dated paths, JSON bodies, batching and deduplication.
//! Nothing here does I/O; every function is tested with literal JSON.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{json, Map, Value};
use url::Url;

use super::types::{AssociationInput, NewProperty, NewPropertyGroup, WriteInput};

/// Inputs per object batch request (HubSpot: "limited to 100 inputs per request").
pub const OBJECT_BATCH_LIMIT: usize = 100;
/// Inputs per association batch create request.
pub const ASSOCIATION_BATCH_LIMIT: usize = 2_000;
/// Values in one search `IN` filter.
pub const SEARCH_VALUES_LIMIT: usize = 100;
/// Results per search page (HubSpot's maximum).
pub const SEARCH_PAGE_LIMIT: usize = 200;
/// Results one search query can page through.
pub const SEARCH_RESULT_CAP: usize = 10_000;
/// Longest search body HubSpot accepts, in characters.
pub const SEARCH_BODY_MAX_CHARS: usize = 3_000;
/// Members per list memberships page (HubSpot's maximum).
pub const LIST_MEMBERS_PAGE_LIMIT: usize = 250;

/// The paths of one API version under one base URL.
#[derive(Debug, Clone)]
pub struct Paths {
    base: Url,
    version: String,
}

impl Paths {
    pub fn new(base_url: &str, version: &str) -> Result<Paths, url::ParseError> {
        let base = Url::parse(base_url)?;
        Ok(Paths { base, version: version.to_string() })
    }

    /// The base URL with `segments` appended, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `POST /crm/objects/{ver}/{type}/batch/{op}` (op: upsert, update, create, read).
    pub fn object_batch(&self, object_type: &str, op: &str) -> Url {
        self.url(&["crm", "objects", &self.version, object_type, "batch", op])
    }

    /// `POST /crm/objects/{ver}/{type}/search`.
    pub fn search(&self, object_type: &str) -> Url {
        self.url(&["crm", "objects", &self.version, object_type, "search"])
    }

    /// `GET /crm/properties/{ver}/{type}`.
    pub fn properties(&self, object_type: &str) -> Url {
        let mut url = self.url(&["crm", "properties", &self.version, object_type]);
        url.query_pairs_mut().append_pair("archived", "false");
        url
    }

    /// `POST /crm/properties/{ver}/{type}`: creates a property.
    pub fn property_create(&self, object_type: &str) -> Url {
        self.url(&["crm", "properties", &self.version, object_type])
    }

    /// `POST /crm/properties/{ver}/{type}/groups`: creates a property group.
    pub fn property_groups(&self, object_type: &str) -> Url {
        self.url(&["crm", "properties", &self.version, object_type, "groups"])
    }

    /// `GET /crm-object-schemas/{ver}/schemas` (the dated path exists in HubSpot's 2026-03 spec).
    pub fn schemas(&self) -> Url {
        self.url(&["crm-object-schemas", &self.version, "schemas"])
    }

    /// `GET /crm-object-schemas/v3/schemas`, the legacy path, tried when the dated one is missing.
    pub fn schemas_legacy(&self) -> Url {
        self.url(&["crm-object-schemas", "v3", "schemas"])
    }

    /// `POST /crm/associations/{ver}/{from}/{to}/batch/create`.
    pub fn association_batch_create(&self, from_type: &str, to_type: &str) -> Url {
        self.url(&["crm", "associations", &self.version, from_type, to_type, "batch", "create"])
    }

    /// `POST /crm/associations/{ver}/{from}/{to}/batch/archive` (every type between each pair),
    /// or with `labels`, `.../batch/labels/archive` (only the listed types).
    pub fn association_batch_archive(&self, from_type: &str, to_type: &str, labels: bool) -> Url {
        if labels {
            self.url(&["crm", "associations", &self.version, from_type, to_type, "batch", "labels", "archive"])
        } else {
            self.url(&["crm", "associations", &self.version, from_type, to_type, "batch", "archive"])
        }
    }

    /// `GET /crm/associations/{ver}/{from}/{to}/labels`.
    pub fn association_labels(&self, from_type: &str, to_type: &str) -> Url {
        self.url(&["crm", "associations", &self.version, from_type, to_type, "labels"])
    }

    /// `POST /crm/lists/{ver}`.
    pub fn lists(&self) -> Url {
        self.url(&["crm", "lists", &self.version])
    }

    /// `GET /crm/lists/{ver}/object-type-id/{objectTypeId}/name/{name}`.
    pub fn list_by_name(&self, object_type_id: &str, name: &str) -> Url {
        self.url(&["crm", "lists", &self.version, "object-type-id", object_type_id, "name", name])
    }

    /// `GET /crm/objects/{ver}/{type}/{id}?properties=hs_object_id`: one record by its id, with
    /// only its id (a merged-away id answers with the surviving record).
    pub fn object_by_id(&self, object_type: &str, id: &str) -> Url {
        let mut url = self.url(&["crm", "objects", &self.version, object_type, id]);
        url.query_pairs_mut().append_pair("properties", "hs_object_id");
        url
    }

    /// `GET /crm/lists/{ver}/{listId}`.
    pub fn list_by_id(&self, list_id: &str) -> Url {
        self.url(&["crm", "lists", &self.version, list_id])
    }

    /// `PUT /crm/lists/{ver}/{listId}/memberships/{add|remove|add-and-remove}`.
    pub fn list_memberships_change(&self, list_id: &str, change: &str) -> Url {
        self.url(&["crm", "lists", &self.version, list_id, "memberships", change])
    }

    /// `GET /crm/lists/{ver}/{listId}/memberships?limit=250[&after=..]`.
    pub fn list_memberships(&self, list_id: &str, after: Option<&str>) -> Url {
        let mut url = self.url(&["crm", "lists", &self.version, list_id, "memberships"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("limit", &LIST_MEMBERS_PAGE_LIMIT.to_string());
            if let Some(after) = after {
                q.append_pair("after", after);
            }
        }
        url
    }
}

/// The wire `objectWriteTraceId` of the input at `position` in a request. Short positional ids
/// are unique within the request whatever the callers' trace ids look like.
pub fn wire_trace(position: usize) -> String {
    position.to_string()
}

fn properties_json(input: &WriteInput) -> Value {
    Value::Object(input.properties.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// `batch/upsert` body: `{inputs:[{id, idProperty, properties, objectWriteTraceId}]}`.
pub fn upsert_body(id_property: &str, inputs: &[&WriteInput]) -> Value {
    let inputs: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            json!({
                "id": input.id.clone().unwrap_or_default(),
                "idProperty": id_property,
                "properties": properties_json(input),
                "objectWriteTraceId": wire_trace(i),
            })
        })
        .collect();
    json!({ "inputs": inputs })
}

/// `batch/update` body: `{inputs:[{id, properties, objectWriteTraceId}]}` (ids are record ids).
pub fn update_body(inputs: &[&WriteInput]) -> Value {
    let inputs: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            json!({
                "id": input.id.clone().unwrap_or_default(),
                "properties": properties_json(input),
                "objectWriteTraceId": wire_trace(i),
            })
        })
        .collect();
    json!({ "inputs": inputs })
}

/// `batch/create` body: `{inputs:[{properties, objectWriteTraceId}]}`. The trace ids turn a bad
/// input into a 207 entry instead of failing the whole batch.
pub fn create_body(inputs: &[&WriteInput]) -> Value {
    let inputs: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            json!({
                "properties": properties_json(input),
                "objectWriteTraceId": wire_trace(i),
            })
        })
        .collect();
    json!({ "inputs": inputs })
}

/// True when `id_property` names the record id itself (then `idProperty` is left out).
pub fn is_record_id_property(id_property: &str) -> bool {
    id_property.is_empty() || id_property == "hs_object_id"
}

/// `batch/read` body by a unique property: `{inputs:[{id}], idProperty, properties:[idProperty]}`.
pub fn read_body(id_property: &str, values: &[String]) -> Value {
    let inputs: Vec<Value> = values.iter().map(|v| json!({ "id": v })).collect();
    let mut body = Map::new();
    body.insert("inputs".into(), Value::Array(inputs));
    if is_record_id_property(id_property) {
        body.insert("properties".into(), json!(["hs_object_id"]));
    } else {
        body.insert("idProperty".into(), json!(id_property));
        body.insert("properties".into(), json!([id_property]));
    }
    Value::Object(body)
}

/// Search body: one `IN` filter on `property`. hubsync reads every page, so it needs no order
/// for its own sake; it sorts by record id only so that `after` (an offset into the sorted
/// result) pages through a set that records written meanwhile cannot reshuffle. `sorts` uses
/// the object form of HubSpot's guides; the published spec types it as strings (`"-name"`),
/// and real portals (and the emulator) accept both.
pub fn search_body(property: &str, values: &[String], after: Option<&str>) -> Value {
    let mut body = json!({
        "filterGroups": [{ "filters": [{ "propertyName": property, "operator": "IN", "values": values }] }],
        "properties": [property],
        "sorts": [{ "propertyName": "hs_object_id", "direction": "ASCENDING" }],
        "limit": SEARCH_PAGE_LIMIT,
    });
    if let (Some(after), Some(obj)) = (after, body.as_object_mut()) {
        obj.insert("after".into(), json!(after));
    }
    body
}

/// Groups search values so each search has at most `SEARCH_VALUES_LIMIT` values and its body
/// (with room for the longest `after`) stays under `SEARCH_BODY_MAX_CHARS`. Values too long to
/// fit any search are returned separately.
pub fn search_chunks(property: &str, values: &[String]) -> (Vec<Vec<String>>, Vec<String>) {
    let overhead = search_body(property, &[], Some(&SEARCH_RESULT_CAP.to_string())).to_string().len();
    let room = SEARCH_BODY_MAX_CHARS.saturating_sub(overhead);
    let mut chunks: Vec<Vec<String>> = Vec::new();
    let mut too_long = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut used = 0;
    for value in values {
        // The value's JSON form plus a comma.
        let cost = Value::String(value.clone()).to_string().len() + 1;
        if cost > room {
            too_long.push(value.clone());
            continue;
        }
        if !current.is_empty() && (current.len() >= SEARCH_VALUES_LIMIT || used + cost > room) {
            chunks.push(std::mem::take(&mut current));
            used = 0;
        }
        used += cost;
        current.push(value.clone());
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    (chunks, too_long)
}

/// Lowercases and dedupes search values (HubSpot wants `IN` values on string properties in
/// lowercase), keeping first-seen order and dropping empty ones.
pub fn normalize_search_values(values: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values.into_iter().map(|v| v.to_lowercase()).filter(|v| !v.is_empty() && seen.insert(v.clone())).collect()
}

/// Association `batch/create` body.
pub fn association_create_body(inputs: &[&AssociationInput]) -> Value {
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|input| {
            let types: Vec<Value> = input
                .types
                .iter()
                .map(|(category, type_id)| json!({ "associationCategory": category, "associationTypeId": type_id }))
                .collect();
            json!({ "from": { "id": input.from_id }, "to": { "id": input.to_id }, "types": types })
        })
        .collect();
    json!({ "inputs": inputs })
}

/// `PropertyGroupCreate` body.
pub fn property_group_body(group: &NewPropertyGroup) -> Value {
    json!({ "name": group.name, "label": group.label, "displayOrder": group.display_order })
}

/// `PropertyCreate` body.
pub fn property_create_body(p: &NewProperty) -> Value {
    json!({
        "name": p.name,
        "label": p.label,
        "description": p.description,
        "type": p.type_,
        "fieldType": p.field_type,
        "groupName": p.group_name,
        "hasUniqueValue": p.has_unique_value,
        "formField": p.form_field,
        "hidden": false,
    })
}

/// Object `batch/archive` body: `{inputs:[{id}]}`.
pub fn archive_body(ids: &[String]) -> Value {
    let inputs: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
    json!({ "inputs": inputs })
}

/// Association `batch/archive` body: `{inputs:[{from:{id}, to:[{id}, ...]}]}`, one input per
/// from record with every target to unlink from it, in first-seen order.
pub fn association_archive_body(pairs: &[(String, String)]) -> Value {
    let mut order: Vec<&str> = Vec::new();
    let mut tos: HashMap<&str, Vec<Value>> = HashMap::new();
    for (from, to) in pairs {
        let entry = tos.entry(from.as_str()).or_insert_with(|| {
            order.push(from.as_str());
            Vec::new()
        });
        entry.push(json!({ "id": to }));
    }
    let inputs: Vec<Value> = order
        .iter()
        .map(|from| json!({ "from": { "id": from }, "to": tos.remove(from).unwrap_or_default() }))
        .collect();
    json!({ "inputs": inputs })
}

/// Static list create body.
pub fn list_create_body(object_type_id: &str, name: &str) -> Value {
    json!({ "name": name, "objectTypeId": object_type_id, "processingType": "MANUAL" })
}

/// Membership add/remove body: a bare array of record ids.
pub fn membership_body(record_ids: &[String]) -> Value {
    json!(record_ids)
}

/// Splits `adds` and `removes` record ids into add-and-remove requests of at most `cap` ids in
/// all: removes first, adds in the room left, so a change that fits in one request is one
/// request. Each pair is (adds, removes) index ranges.
pub fn add_and_remove_chunks(adds: usize, removes: usize, cap: usize) -> Vec<(Range<usize>, Range<usize>)> {
    let cap = cap.max(1);
    let (mut a, mut r, mut out) = (0, 0, Vec::new());
    while a < adds || r < removes {
        let take_r = (removes - r).min(cap);
        let take_a = (adds - a).min(cap - take_r);
        out.push((a..a + take_a, r..r + take_r));
        a += take_a;
        r += take_r;
    }
    out
}

/// The body of `PUT .../memberships/add-and-remove`: both arrays, in one request.
pub fn add_and_remove_body(add: &[String], remove: &[String]) -> Value {
    json!({ "recordIdsToAdd": add, "recordIdsToRemove": remove })
}

/// The dedupe key of a write input: ids compare exactly, except emails, which HubSpot matches
/// without case.
pub fn dedupe_key(id: &str, id_property: Option<&str>) -> String {
    match id_property {
        Some(p) if p.eq_ignore_ascii_case("email") => id.trim().to_lowercase(),
        _ => id.to_string(),
    }
}

/// Splits positions into the last occurrence of each key (kept, in input order) and the earlier
/// occurrences (superseded). HubSpot fails a whole batch on duplicate ids, and the last value
/// is the one that should win.
pub fn dedupe_keep_last<K: std::hash::Hash + Eq>(keys: &[K]) -> (Vec<usize>, Vec<usize>) {
    let mut last: HashMap<&K, usize> = HashMap::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        last.insert(k, i);
    }
    let mut kept = Vec::with_capacity(last.len());
    let mut superseded = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if last.get(k) == Some(&i) {
            kept.push(i);
        } else {
            superseded.push(i);
        }
    }
    (kept, superseded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn input(trace: &str, id: Option<&str>, props: &[(&str, &str)]) -> WriteInput {
        WriteInput {
            trace_id: trace.into(),
            id: id.map(str::to_string),
            properties: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn builds_dated_paths() {
        let p = Paths::new("https://api.hubapi.com", "2026-03").unwrap();
        assert_eq!(
            p.object_batch("contacts", "upsert").as_str(),
            "https://api.hubapi.com/crm/objects/2026-03/contacts/batch/upsert"
        );
        assert_eq!(p.search("2-123").as_str(), "https://api.hubapi.com/crm/objects/2026-03/2-123/search");
        assert_eq!(
            p.properties("companies").as_str(),
            "https://api.hubapi.com/crm/properties/2026-03/companies?archived=false"
        );
        assert_eq!(p.schemas().as_str(), "https://api.hubapi.com/crm-object-schemas/2026-03/schemas");
        assert_eq!(p.schemas_legacy().as_str(), "https://api.hubapi.com/crm-object-schemas/v3/schemas");
        assert_eq!(
            p.association_batch_create("contacts", "companies").as_str(),
            "https://api.hubapi.com/crm/associations/2026-03/contacts/companies/batch/create"
        );
        assert_eq!(
            p.association_labels("0-1", "0-2").as_str(),
            "https://api.hubapi.com/crm/associations/2026-03/0-1/0-2/labels"
        );
        assert_eq!(p.lists().as_str(), "https://api.hubapi.com/crm/lists/2026-03");
        assert_eq!(
            p.list_by_name("0-1", "Sync: VIP/2026 #1").as_str(),
            "https://api.hubapi.com/crm/lists/2026-03/object-type-id/0-1/name/Sync:%20VIP%2F2026%20%231"
        );
        assert_eq!(
            p.list_memberships_change("42", "add").as_str(),
            "https://api.hubapi.com/crm/lists/2026-03/42/memberships/add"
        );
        assert_eq!(
            p.list_memberships("42", Some("abc")).as_str(),
            "https://api.hubapi.com/crm/lists/2026-03/42/memberships?limit=250&after=abc"
        );
        assert_eq!(
            p.object_by_id("companies", "56503292710").as_str(),
            "https://api.hubapi.com/crm/objects/2026-03/companies/56503292710?properties=hs_object_id"
        );
        assert_eq!(p.list_by_id("42").as_str(), "https://api.hubapi.com/crm/lists/2026-03/42");
    }

    #[test]
    fn base_urls_with_ports_and_prefixes() {
        let p = Paths::new("http://127.0.0.1:8123/", "2026-03").unwrap();
        assert_eq!(p.lists().as_str(), "http://127.0.0.1:8123/crm/lists/2026-03");
        let p = Paths::new("http://proxy.local/hubspot/", "2026-09").unwrap();
        assert_eq!(p.lists().as_str(), "http://proxy.local/hubspot/crm/lists/2026-09");
    }

    #[test]
    fn upsert_body_carries_trace_ids_and_id_property() {
        let a = input("pk-1", Some("a@x.com"), &[("firstname", "Ada"), ("email", "a@x.com")]);
        let b = input("pk-2", Some("b@x.com"), &[]);
        assert_eq!(
            upsert_body("email", &[&a, &b]),
            json!({"inputs": [
                {"id": "a@x.com", "idProperty": "email", "properties": {"email": "a@x.com", "firstname": "Ada"}, "objectWriteTraceId": "0"},
                {"id": "b@x.com", "idProperty": "email", "properties": {}, "objectWriteTraceId": "1"}
            ]})
        );
    }

    #[test]
    fn update_and_create_bodies() {
        let a = input("pk-1", Some("101"), &[("name", "")]);
        assert_eq!(
            update_body(&[&a]),
            json!({"inputs": [{"id": "101", "properties": {"name": ""}, "objectWriteTraceId": "0"}]})
        );
        let c = input("pk-9", None, &[("name", "Acme")]);
        assert_eq!(
            create_body(&[&c]),
            json!({"inputs": [{"properties": {"name": "Acme"}, "objectWriteTraceId": "0"}]})
        );
    }

    #[test]
    fn read_body_by_property_or_record_id() {
        let values = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            read_body("external_id", &values),
            json!({"inputs": [{"id": "a"}, {"id": "b"}], "idProperty": "external_id", "properties": ["external_id"]})
        );
        assert_eq!(
            read_body("hs_object_id", &values),
            json!({"inputs": [{"id": "a"}, {"id": "b"}], "properties": ["hs_object_id"]})
        );
    }

    #[test]
    fn search_body_uses_an_in_filter() {
        let values = vec!["a@x.com".to_string()];
        assert_eq!(
            search_body("email", &values, Some("200")),
            json!({
                "filterGroups": [{"filters": [{"propertyName": "email", "operator": "IN", "values": ["a@x.com"]}]}],
                "properties": ["email"],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "limit": 200,
                "after": "200"
            })
        );
        assert!(search_body("email", &values, None).get("after").is_none());
    }

    #[test]
    fn search_values_are_lowercased_and_chunked() {
        let values = normalize_search_values(vec!["A@X.com".into(), "a@x.com".into(), "".into(), "B".into()]);
        assert_eq!(values, vec!["a@x.com".to_string(), "b".to_string()]);

        let many: Vec<String> = (0..250).map(|i| format!("{i}")).collect();
        let (chunks, too_long) = search_chunks("external_id", &many);
        assert!(too_long.is_empty());
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![100, 100, 50]);

        // Long values: the body limit splits earlier than 100 values.
        let long: Vec<String> = (0..100).map(|i| format!("{i:0>40}@example.com")).collect();
        let (chunks, _) = search_chunks("email", &long);
        assert!(chunks.len() > 1);
        for chunk in &chunks {
            let body = search_body("email", chunk, Some("10000")).to_string();
            assert!(body.len() <= SEARCH_BODY_MAX_CHARS, "{}", body.len());
        }
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 100);

        let (chunks, too_long) = search_chunks("email", &["x".repeat(5000)]);
        assert!(chunks.is_empty());
        assert_eq!(too_long.len(), 1);
    }

    #[test]
    fn archive_bodies() {
        assert_eq!(archive_body(&["1".into(), "2".into()]), json!({"inputs": [{"id": "1"}, {"id": "2"}]}));
        let pairs = vec![("1".to_string(), "7".to_string()), ("2".into(), "8".into()), ("1".into(), "9".into())];
        assert_eq!(
            association_archive_body(&pairs),
            json!({"inputs": [
                {"from": {"id": "1"}, "to": [{"id": "7"}, {"id": "9"}]},
                {"from": {"id": "2"}, "to": [{"id": "8"}]}
            ]})
        );
        let paths = Paths::new("https://api.hubapi.com", "2026-03").unwrap();
        assert_eq!(
            paths.association_batch_archive("contacts", "companies", true).as_str(),
            "https://api.hubapi.com/crm/associations/2026-03/contacts/companies/batch/labels/archive"
        );
        assert_eq!(
            paths.object_batch("contacts", "archive").as_str(),
            "https://api.hubapi.com/crm/objects/2026-03/contacts/batch/archive"
        );
    }

    #[test]
    fn association_and_list_bodies() {
        let a = AssociationInput {
            trace: "t".into(),
            from_id: "1".into(),
            to_id: "2".into(),
            types: vec![("HUBSPOT_DEFINED".into(), 279), ("USER_DEFINED".into(), 28)],
        };
        assert_eq!(
            association_create_body(&[&a]),
            json!({"inputs": [{"from": {"id": "1"}, "to": {"id": "2"}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279},
                {"associationCategory": "USER_DEFINED", "associationTypeId": 28}
            ]}]})
        );
        assert_eq!(
            list_create_body("0-1", "Sync: VIP"),
            json!({"name": "Sync: VIP", "objectTypeId": "0-1", "processingType": "MANUAL"})
        );
        assert_eq!(membership_body(&["1".into(), "2".into()]), json!(["1", "2"]));
        assert_eq!(
            add_and_remove_body(&["1".into()], &["2".into(), "3".into()]),
            json!({"recordIdsToAdd": ["1"], "recordIdsToRemove": ["2", "3"]})
        );
    }

    #[test]
    fn add_and_remove_requests_carry_both_and_stay_under_the_cap() {
        assert_eq!(add_and_remove_chunks(3, 2, 500), vec![(0..3, 0..2)]);
        assert_eq!(add_and_remove_chunks(0, 0, 500), vec![]);
        assert_eq!(add_and_remove_chunks(4, 3, 5), vec![(0..2, 0..3), (2..4, 3..3)]);
        assert_eq!(add_and_remove_chunks(1, 7, 3), vec![(0..0, 0..3), (0..0, 3..6), (0..1, 6..7)]);
    }

    #[test]
    fn dedupe_keeps_the_last() {
        let keys = vec!["a", "b", "a", "c", "b"];
        let (kept, superseded) = dedupe_keep_last(&keys);
        assert_eq!(kept, vec![2, 3, 4]);
        assert_eq!(superseded, vec![0, 1]);
        assert_eq!(dedupe_key(" A@X.com", Some("email")), "a@x.com");
        assert_eq!(dedupe_key("ABC", Some("external_id")), "ABC");
    }
}
