//! CRM objects, one record at a time: paged listing, get, create, update and archive
//! (HubSpot docs: CRM objects, error handling, recorded real answers; sources in docs/emulator.md). The batch endpoints are in `batch.rs`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::context::{resolve_type, Ctx};
use super::wire::Scalar;
use super::writes::{
    apply_links, archive_record, merged_survivor, non_unique, object_not_found, plan_links, unique_conflict,
    validation_reply, WriteInput,
};
use crate::auth::Access;
use crate::reply::{parse_body, HsResult, Reply};
use crate::store::{MergeError, Record, RecordJson, Selection};

const LIST_PAGE_MAX: usize = 100;

pub(crate) fn list(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
    let limit = match ctx.param("limit") {
        Some(l) => {
            l.trim().parse::<usize>().map_err(|_| Reply::validation(format!("limit {l} is not a valid number")))?
        }
        None => 10,
    }
    .clamp(1, LIST_PAGE_MAX);
    let after = ctx.param("after").and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
    let archived = ctx.flag("archived");
    let requested = ctx.list_param("properties");
    let store = ctx.store();
    let i = resolve_type(ctx, &store, name, Access::Read)?;
    let t = store.object_type(i);
    let names = t.read_selection(&requested);
    let selection = Selection::Named(&names);
    let mut page: Vec<&Record> = t
        .records
        .range(after.saturating_add(u64::from(after > 0))..)
        .map(|(_, r)| r)
        .filter(|r| r.archived == archived)
        .take(limit + 1)
        .collect();
    let next = if page.len() > limit {
        page.pop();
        page.last().map(|r| r.id)
    } else {
        None
    };
    let results: Vec<RecordJson<'_>> = page.into_iter().map(|record| t.json(record, &selection)).collect();
    let mut body = serde_json::Map::new();
    body.insert("results".into(), serde_json::to_value(&results).unwrap_or_default());
    if let Some(after) = next {
        body.insert(
            "paging".into(),
            json!({"next": {"after": after.to_string(), "link": format!("{}?after={after}", ctx.path)}}),
        );
    }
    Ok(Reply::json(200, &Value::Object(body)))
}

pub(crate) fn get(ctx: &Ctx<'_>, name: &str, id: &str) -> HsResult<Reply> {
    let id_property = ctx.param("idProperty").filter(|p| !p.is_empty() && *p != "hs_object_id");
    let archived = ctx.flag("archived");
    let requested = ctx.list_param("properties");
    let store = ctx.store();
    let i = resolve_type(ctx, &store, name, Access::Read)?;
    let t = store.object_type(i);
    let record = match id_property {
        Some(p) => {
            if !t.is_unique_key(p) {
                return Err(non_unique(&t.type_id, p));
            }
            // A missing record by idProperty is an HTML 404 (recorded real HubSpot answers, docs/emulator.md).
            t.find_unique(p, id).and_then(|rid| t.live(rid)).ok_or_else(Reply::not_found_page)?
        }
        None => id
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|rid| t.records.get(&rid))
            .filter(|r| r.archived == archived)
            // A merged-away record id reads the survivor (recorded real HubSpot answers, docs/emulator.md).
            .or_else(|| merged_survivor(t, id).filter(|_| !archived).and_then(|rid| t.live(rid)))
            .ok_or_else(|| object_not_found(id))?,
    };
    let names = t.read_selection(&requested);
    let selection = Selection::Named(&names);
    Ok(Reply::json(200, &t.json(record, &selection)))
}

pub(crate) fn create(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
    let input: WriteInput = parse_body(ctx.body)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve_type(ctx, store, name, Access::Write)?;
    let t = store.object_type(i);
    let nulls = t.written_nulls(&input.properties.0);
    let changes = t.check(input.properties.0, None).map_err(|e| validation_reply(&e, store.portal_id))?;
    match unique_conflict(t, &changes, None) {
        Ok(()) => {}
        Err(Ok(reply)) => return Err(reply),
        Err(Err(e)) => return Err(validation_reply(&[e], store.portal_id)),
    }
    let type_id = t.type_id.clone();
    let links = plan_links(store, &type_id, &input.associations)?;
    let id = store.next_id();
    let lag = store.index_lag_ms;
    store.object_type_mut(i).create(id, changes, ctx.now, lag);
    apply_links(store, &type_id, id, links);
    let t = store.object_type(i);
    let record = &t.records[&id];
    let location = format!("{}/{id}", ctx.path.trim_end_matches('/'));
    Ok(Reply::json(201, &t.json(record, &Selection::Written(&nulls))).with_header("Location", location))
}

pub(crate) fn update(ctx: &Ctx<'_>, name: &str, id: &str) -> HsResult<Reply> {
    let input: WriteInput = parse_body(ctx.body)?;
    let id_property = ctx.param("idProperty").filter(|p| !p.is_empty());
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve_type(ctx, store, name, Access::Write)?;
    let t = store.object_type(i);
    if let Some(p) = id_property.filter(|p| *p != "hs_object_id") {
        if !t.is_unique_key(p) {
            return Err(non_unique(&t.type_id, p));
        }
    }
    // A merged-away record id updates the survivor (recorded real HubSpot answers, docs/emulator.md).
    let by_record_id = id_property.is_none_or(|p| p == "hs_object_id");
    let rid = t
        .resolve_id(id, id_property)
        .or_else(|| by_record_id.then(|| merged_survivor(t, id)).flatten())
        .ok_or_else(|| object_not_found(id))?;
    let nulls = t.written_nulls(&input.properties.0);
    let changes = t.check(input.properties.0, t.live(rid)).map_err(|e| validation_reply(&e, store.portal_id))?;
    match unique_conflict(t, &changes, Some(rid)) {
        Ok(()) => {}
        Err(Ok(reply)) => return Err(reply),
        Err(Err(e)) => return Err(validation_reply(&[e], store.portal_id)),
    }
    let lag = store.index_lag_ms;
    store.object_type_mut(i).update(rid, changes, ctx.now, lag).ok_or_else(|| object_not_found(id))?;
    let t = store.object_type(i);
    let record = t.live(rid).ok_or_else(|| object_not_found(id))?;
    Ok(Reply::json(200, &t.json(record, &Selection::Written(&nulls))))
}

pub(crate) fn archive(ctx: &Ctx<'_>, name: &str, id: &str) -> HsResult<Reply> {
    let id_property = ctx.param("idProperty").filter(|p| !p.is_empty());
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve_type(ctx, store, name, Access::Write)?;
    if let Some(rid) = store.object_type(i).resolve_id(id, id_property) {
        archive_record(store, i, rid, ctx.now);
    }
    Ok(Reply::empty(204))
}

/// The body of `POST /crm/v3/objects/{contacts|companies}/merge`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MergeBody {
    #[serde(default)]
    primary_object_id: Option<Scalar>,
    #[serde(default)]
    object_id_to_merge: Option<Scalar>,
}

/// Merges `objectIdToMerge` into `primaryObjectId` (contacts and companies) and answers 200
/// with the surviving record. From then on the merged-away id reads and PATCHes the survivor
/// and batch updates leave it out (HubSpot docs: CRM objects, recorded real answers; sources in docs/emulator.md).
pub(crate) fn merge(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
    let body: MergeBody = parse_body(ctx.body)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve_type(ctx, store, name, Access::Write)?;
    let t = store.object_type(i);
    if !matches!(t.type_id.as_str(), "0-1" | "0-2") {
        return Err(Reply::validation(format!(
            "Merging {} is not supported; the emulator merges contacts and companies.",
            t.name
        )));
    }
    let id = |v: &Option<Scalar>| v.as_ref().map(|s| s.0.trim().to_string()).filter(|s| !s.is_empty());
    let (Some(primary), Some(merged)) = (id(&body.primary_object_id), id(&body.object_id_to_merge)) else {
        return Err(Reply::validation("Missing required fields: primaryObjectId, objectIdToMerge"));
    };
    let parse = |s: &str| s.parse::<u64>().map_err(|_| object_not_found(s));
    let (p, m) = (parse(&primary)?, parse(&merged)?);
    store.merge(i, p, m, ctx.now).map_err(|e| match e {
        MergeError::NotFound(id) => object_not_found(&id.to_string()),
        MergeError::SameRecord => Reply::validation(format!("Cannot merge record {primary} with itself.")),
    })?;
    let t = store.object_type(i);
    let record = t.live(p).ok_or_else(|| object_not_found(&primary))?;
    Ok(Reply::json(200, &t.json(record, &Selection::AllSet)))
}
