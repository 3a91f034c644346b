//! Lists v3 (HubSpot docs: lists v3, recorded real answers; sources in docs/emulator.md): create, get by id or name, search, delete, and the
//! membership endpoints with HubSpot's own field names (`recordsIdsAdded`).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::context::Ctx;
use super::wire::Scalar;
use crate::auth::{list_scopes, Access};
use crate::clock;
use crate::reply::{parse_body, HsError, HsResult, Reply};
use crate::store::lists::List;
use crate::store::Store;

const SEARCH_MAX: usize = 500;
const MEMBERSHIP_PAGE_MAX: usize = 250;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    name: Option<String>,
    object_type_id: Option<String>,
    processing_type: Option<String>,
    #[serde(default)]
    filter_branch: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchBody {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    count: Option<usize>,
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    processing_types: Option<Vec<String>>,
    #[serde(default)]
    list_ids: Option<Vec<Scalar>>,
    #[serde(default)]
    object_type_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddAndRemove {
    #[serde(default)]
    record_ids_to_add: Vec<Scalar>,
    #[serde(default)]
    record_ids_to_remove: Vec<Scalar>,
}

fn list_not_found(id: &str) -> Reply {
    HsError::new(404, format!("List does not exist with ID {id}."))
        .category("OBJECT_NOT_FOUND")
        .sub_category("ListError.LIST_DOES_NOT_EXIST")
        .reply()
}

fn find<'s>(store: &'s Store, id: &str) -> HsResult<&'s List> {
    id.trim().parse::<u64>().ok().and_then(|i| store.lists.get(i)).ok_or_else(|| list_not_found(id))
}

pub(crate) fn create(ctx: &Ctx<'_>) -> HsResult<Reply> {
    ctx.require(&list_scopes(Access::Write))?;
    let body: CreateBody = parse_body(ctx.body)?;
    let mut missing = Vec::new();
    if body.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        missing.push("name");
    }
    if body.object_type_id.as_deref().is_none_or(str::is_empty) {
        missing.push("objectTypeId");
    }
    if body.processing_type.as_deref().is_none_or(str::is_empty) {
        missing.push("processingType");
    }
    if !missing.is_empty() {
        return Err(Reply::validation(format!("Missing required fields: {}", missing.join(", "))));
    }
    let name = body.name.unwrap_or_default();
    let processing = body.processing_type.unwrap_or_default();
    if !matches!(processing.as_str(), "MANUAL" | "DYNAMIC" | "SNAPSHOT") {
        return Err(Reply::validation(format!("processingType {processing} is not one of MANUAL, DYNAMIC, SNAPSHOT")));
    }
    let mut guard = ctx.store();
    let store = &mut *guard;
    let requested_type = body.object_type_id.unwrap_or_default();
    let type_id = store
        .type_id_of(&requested_type)
        .ok_or_else(|| Reply::validation(format!("Unable to infer object type from: {requested_type}")))?;
    let list = store
        .lists
        .create(name.trim(), &type_id, &processing, body.filter_branch, ctx.now)
        .map_err(|()| Reply::validation(format!("A list with the name {} already exists.", name.trim())))?;
    Ok(Reply::json(200, &json!({"list": list.to_json()})))
}

pub(crate) fn get(ctx: &Ctx<'_>, id: &str) -> HsResult<Reply> {
    ctx.require(&list_scopes(Access::Read))?;
    let store = ctx.store();
    let list = find(&store, id)?;
    Ok(Reply::json(200, &json!({"list": list.to_json_with_size()})))
}

pub(crate) fn by_name(ctx: &Ctx<'_>, object_type_id: &str, name: &str) -> HsResult<Reply> {
    ctx.require(&list_scopes(Access::Read))?;
    let store = ctx.store();
    let type_id = store.type_id_of(object_type_id);
    match store.lists.by_name(name).filter(|l| Some(&l.object_type_id) == type_id.as_ref()) {
        Some(list) => Ok(Reply::json(200, &json!({"list": list.to_json_with_size()}))),
        None => {
            Err(HsError::new(404, format!("List does not exist with name {name} and object type ID {object_type_id}."))
                .category("OBJECT_NOT_FOUND")
                .sub_category("ListError.LIST_NAME_DOES_NOT_EXIST")
                .context(json!({"listName": [name], "objectTypeId": [object_type_id]}))
                .reply()
                .with_header("x-hubspot-notfound", "true"))
        }
    }
}

pub(crate) fn delete(ctx: &Ctx<'_>, id: &str) -> HsResult<Reply> {
    ctx.require(&list_scopes(Access::Write))?;
    let mut store = ctx.store();
    let list_id = find(&store, id)?.id;
    store.lists.delete(list_id);
    Ok(Reply::empty(204))
}

pub(crate) fn rename(ctx: &Ctx<'_>, id: &str) -> HsResult<Reply> {
    ctx.require(&list_scopes(Access::Write))?;
    let name = ctx.param("listName").map(str::trim).filter(|n| !n.is_empty()).map(String::from);
    let name = name.ok_or_else(|| Reply::validation("listName is required"))?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let list_id = find(store, id)?.id;
    store
        .lists
        .rename(list_id, &name, ctx.now)
        .map_err(|()| Reply::validation(format!("A list with the name {name} already exists.")))?;
    let list = find(store, id)?;
    Ok(Reply::json(200, &json!({"updatedList": list.to_json()})))
}

pub(crate) fn search(ctx: &Ctx<'_>) -> HsResult<Reply> {
    ctx.require(&list_scopes(Access::Read))?;
    let body: SearchBody =
        if ctx.body.iter().all(u8::is_ascii_whitespace) { SearchBody::default() } else { parse_body(ctx.body)? };
    let count = body.count.unwrap_or(20).min(SEARCH_MAX);
    let offset = body.offset.unwrap_or(0);
    let query = body.query.unwrap_or_default().to_lowercase();
    let ids: Option<Vec<u64>> =
        body.list_ids.filter(|l| !l.is_empty()).map(|l| l.iter().filter_map(|s| s.0.trim().parse().ok()).collect());
    let types = body.processing_types.filter(|t| !t.is_empty());
    let store = ctx.store();
    let object_type = body.object_type_id.and_then(|t| store.type_id_of(&t));
    let matching: Vec<&List> = store
        .lists
        .all()
        .filter(|l| query.is_empty() || l.name.to_lowercase().contains(&query))
        .filter(|l| ids.as_ref().is_none_or(|ids| ids.contains(&l.id)))
        .filter(|l| types.as_ref().is_none_or(|t| t.contains(&l.processing_type)))
        .filter(|l| object_type.as_ref().is_none_or(|t| *t == l.object_type_id))
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching.iter().skip(offset).take(count).map(|l| l.to_search_json()).collect();
    let next = offset + page.len();
    Ok(Reply::json(200, &json!({"lists": page, "offset": next, "hasMore": next < total, "total": total})))
}

/// Record ids from a request body: parsed, deduplicated, with the unparsable ones kept
/// apart (they are "missing").
fn split_ids(raw: &[Scalar]) -> (Vec<u64>, Vec<String>) {
    let mut ids = Vec::with_capacity(raw.len());
    let mut bad = Vec::new();
    for s in raw {
        match s.0.trim().parse::<u64>() {
            Ok(id) if !ids.contains(&id) => ids.push(id),
            Ok(_) => {}
            Err(_) => bad.push(s.0.clone()),
        }
    }
    (ids, bad)
}

/// Adds and removes members of a static list; the answer holds only non-empty arrays.
fn update_members(ctx: &Ctx<'_>, id: &str, add: &[Scalar], remove: &[Scalar]) -> HsResult<Reply> {
    ctx.require(&list_scopes(Access::Write))?;
    let limit = ctx.shared.config.list_membership_batch_limit;
    if add.len() + remove.len() > limit {
        return Err(Reply::validation(format!(
            "Too many record ids: {} given, at most {limit} per request.",
            add.len() + remove.len()
        )));
    }
    let mut guard = ctx.store();
    let store = &mut *guard;
    let list = find(store, id)?;
    if !list.is_static() {
        return Err(Reply::validation(format!(
            "List {} is a {} list; memberships can only be changed on MANUAL or SNAPSHOT lists.",
            list.id, list.processing_type
        )));
    }
    let (list_id, type_id) = (list.id, list.object_type_id.clone());
    let (add_ids, mut missing) = split_ids(add);
    let (remove_ids, bad_remove) = split_ids(remove);
    missing.extend(bad_remove);
    let (add_ok, add_missing): (Vec<u64>, Vec<u64>) =
        add_ids.into_iter().partition(|r| store.record_exists(&type_id, *r));
    let (remove_ok, remove_missing): (Vec<u64>, Vec<u64>) =
        remove_ids.into_iter().partition(|r| store.record_exists(&type_id, *r));
    missing.extend(add_missing.iter().chain(&remove_missing).map(u64::to_string));
    let Some(list) = store.lists.get_mut(list_id) else { return Err(list_not_found(id)) };
    let added = list.add(&add_ok, ctx.now);
    let removed = list.remove(&remove_ok, ctx.now);
    let mut body = Map::new();
    let strings = |ids: Vec<u64>| Value::from(ids.into_iter().map(|i| i.to_string()).collect::<Vec<_>>());
    if !added.is_empty() {
        body.insert("recordsIdsAdded".into(), strings(added));
    }
    if !removed.is_empty() {
        body.insert("recordIdsRemoved".into(), strings(removed));
    }
    if !missing.is_empty() {
        body.insert("recordIdsMissing".into(), Value::from(missing));
    }
    Ok(Reply::json(200, &Value::Object(body)))
}

pub(crate) fn add(ctx: &Ctx<'_>, id: &str) -> HsResult<Reply> {
    let ids: Vec<Scalar> = parse_body(ctx.body)?;
    update_members(ctx, id, &ids, &[])
}

pub(crate) fn remove(ctx: &Ctx<'_>, id: &str) -> HsResult<Reply> {
    let ids: Vec<Scalar> = parse_body(ctx.body)?;
    update_members(ctx, id, &[], &ids)
}

pub(crate) fn add_and_remove(ctx: &Ctx<'_>, id: &str) -> HsResult<Reply> {
    let body: AddAndRemove = parse_body(ctx.body)?;
    update_members(ctx, id, &body.record_ids_to_add, &body.record_ids_to_remove)
}

pub(crate) fn add_from(ctx: &Ctx<'_>, id: &str, source: &str) -> HsResult<Reply> {
    ctx.require(&list_scopes(Access::Write))?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let source_members: Vec<u64> = find(store, source)?.members.keys().copied().collect();
    if source_members.len() >= 100_000 {
        return Err(Reply::validation("The source list must have fewer than 100,000 members."));
    }
    let target = find(store, id)?;
    if !target.is_static() {
        return Err(Reply::validation("Memberships can only be changed on MANUAL or SNAPSHOT lists."));
    }
    let target_id = target.id;
    if let Some(list) = store.lists.get_mut(target_id) {
        list.add(&source_members, ctx.now);
    }
    Ok(Reply::empty(204))
}

pub(crate) fn clear(ctx: &Ctx<'_>, id: &str) -> HsResult<Reply> {
    ctx.require(&list_scopes(Access::Write))?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let list = find(store, id)?;
    if !list.is_static() {
        return Err(Reply::validation("Memberships can only be changed on MANUAL or SNAPSHOT lists."));
    }
    let list_id = list.id;
    if let Some(list) = store.lists.get_mut(list_id) {
        let members: Vec<u64> = list.members.keys().copied().collect();
        list.remove(&members, ctx.now);
    }
    Ok(Reply::empty(204))
}

pub(crate) fn memberships(ctx: &Ctx<'_>, id: &str, join_order: bool) -> HsResult<Reply> {
    ctx.require(&list_scopes(Access::Read))?;
    let limit =
        ctx.param("limit").and_then(|l| l.trim().parse::<usize>().ok()).unwrap_or(100).clamp(1, MEMBERSHIP_PAGE_MAX);
    let after = ctx.param("after").and_then(|a| a.trim().parse::<usize>().ok()).unwrap_or(0);
    let store = ctx.store();
    let list = find(&store, id)?;
    let mut members: Vec<(u64, i64)> = list.members.iter().map(|(id, t)| (*id, *t)).collect();
    if join_order {
        members.sort_by_key(|(id, t)| (*t, *id));
    }
    let page: Vec<Value> = members
        .iter()
        .skip(after)
        .take(limit)
        .map(|(id, t)| json!({"recordId": id.to_string(), "membershipTimestamp": clock::iso_millis(*t)}))
        .collect();
    let next = after + page.len();
    let mut body = json!({"results": page, "total": members.len()});
    if next < members.len() {
        body["paging"] = json!({"next": {"after": next.to_string()}});
    }
    Ok(Reply::json(200, &body))
}

pub(crate) fn record_memberships(ctx: &Ctx<'_>, object_type_id: &str, record_id: &str) -> HsResult<Reply> {
    ctx.require(&list_scopes(Access::Read))?;
    let store = ctx.store();
    let type_id = store.type_id_of(object_type_id);
    let rid = record_id.trim().parse::<u64>().ok();
    let results: Vec<Value> = store
        .lists
        .all()
        .filter(|l| Some(&l.object_type_id) == type_id.as_ref())
        .filter_map(|l| rid.and_then(|r| l.members.get(&r)).map(|t| (l, *t)))
        .map(|(l, t)| {
            json!({
                "listId": l.id.to_string(),
                "listVersion": l.version,
                "firstAddedTimestamp": clock::iso_millis(t),
                "lastAddedTimestamp": clock::iso_millis(t),
            })
        })
        .collect();
    let total = results.len();
    Ok(Reply::json(200, &json!({"results": results, "total": total})))
}
