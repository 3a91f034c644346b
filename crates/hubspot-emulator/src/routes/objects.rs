//! CRM objects: single get/create/update/archive, paged listing, and the batch endpoints
//! (hubspot-api.md §1.2–§1.5, §1.7, §9).

use std::borrow::Cow;
use std::sync::Arc;

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::associations::AssocTypeSpec;
use super::{BatchOp, Ctx, IdRef, Props, Text};
use crate::auth::{object_scopes, Access};
use crate::clock;
use crate::reply::{parse_body, HsError, HsResult, Reply};
use crate::store::{Changes, FastSet, ObjectType, PropError, Record, RecordJson, Selection, Store};

/// Inputs per object batch request (using-object-apis § Limits).
pub(crate) const BATCH_LIMIT: usize = 100;
/// Inputs per batch read that asks for property histories.
const HISTORY_BATCH_LIMIT: usize = 50;
const LIST_PAGE_MAX: usize = 100;

/// One input of batch create/update/upsert, and the body of single create/update.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WriteInput<'a> {
    #[serde(default, borrow)]
    pub id: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub id_property: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub properties: Props<'a>,
    #[serde(default, borrow)]
    pub object_write_trace_id: Option<Text<'a>>,
    #[serde(default)]
    pub associations: Vec<InlineAssociation>,
}

/// `associations[]` on create: `{to: {id}, types: [...]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct InlineAssociation {
    pub to: IdRef,
    #[serde(default)]
    pub types: Vec<AssocTypeSpec>,
}

#[derive(Debug, Deserialize)]
struct Inputs<T> {
    inputs: Vec<T>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadBody {
    inputs: Vec<IdRef>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    properties_with_history: Vec<String>,
    #[serde(default)]
    id_property: Option<String>,
}

pub(crate) fn unknown_type(name: &str) -> Reply {
    HsError::new(400, format!("Unable to infer object type from: {name}")).reply()
}

/// Resolves an object type by any of its names and checks the caller's scopes for it.
pub(crate) fn resolve_type(ctx: &Ctx<'_>, store: &Store, name: &str, access: Access) -> HsResult<usize> {
    let i = store.resolve(name).ok_or_else(|| unknown_type(name))?;
    let t = store.object_type(i);
    ctx.require(&object_scopes(&t.type_id, t.is_custom(), access))?;
    Ok(i)
}

#[derive(Serialize)]
struct ValidationItem<'a> {
    #[serde(rename = "isValid")]
    is_valid: bool,
    message: &'a str,
    error: &'a str,
    name: &'a str,
    #[serde(rename = "localizedErrorMessage", skip_serializing_if = "Option::is_none")]
    localized: Option<&'a str>,
    #[serde(rename = "portalId", skip_serializing_if = "Option::is_none")]
    portal_id: Option<u64>,
}

/// `Property values were not valid: [...]` with the JSON list HubSpot embeds.
pub(crate) fn validation_message(errors: &[PropError], portal_id: u64) -> String {
    let items: Vec<ValidationItem<'_>> = errors
        .iter()
        .map(|e| ValidationItem {
            is_valid: false,
            message: &e.message,
            error: e.code,
            name: &e.name,
            localized: e.doesnt_exist.then_some(e.message.as_str()),
            portal_id: e.doesnt_exist.then_some(portal_id),
        })
        .collect();
    format!("Property values were not valid: {}", serde_json::to_string(&items).unwrap_or_default())
}

/// The whole-request 400 for invalid property values.
pub(crate) fn validation_reply(errors: &[PropError], portal_id: u64) -> Reply {
    let details: Vec<Value> = errors
        .iter()
        .map(|e| json!({"message": e.message, "code": e.code, "context": {"propertyName": [e.name]}}))
        .collect();
    HsError::new(400, validation_message(errors, portal_id)).errors(json!(details)).category("VALIDATION_ERROR").reply()
}

/// One input's validation failure inside a 207 (hubspot-api.md §9).
fn trace_error(errors: &[PropError], portal_id: u64, trace: &str) -> Value {
    json!({
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": validation_message(errors, portal_id),
        "context": {"objectWriteTraceId": [trace]},
    })
}

fn non_unique(type_id: &str, property: &str) -> Reply {
    Reply::validation(format!("Unable to perform update/upsert by non-unique {type_id} property {property}"))
}

fn duplicate_ids(ids: &[String]) -> Reply {
    HsError::new(400, format!("Duplicate IDs found in batch input: [{}]. IDs must be unique", ids.join(", ")))
        .context(json!({"ids": ids}))
        .category("VALIDATION_ERROR")
        .reply()
}

pub(crate) fn too_many_inputs(limit: usize) -> Reply {
    Reply::validation(format!(
        "The maximum number of inputs supported in a batch is {limit}. Please reduce the number of items and try again"
    ))
}

fn contact_exists(id: u64) -> Reply {
    Reply::error(409, "CONFLICT", format!("Contact already exists. Existing ID: {id}"))
}

fn object_not_found(id: &str) -> Reply {
    HsError::new(404, "Object not found.  objectId are usually numeric.")
        .context(json!({"id": [id]}))
        .category("OBJECT_NOT_FOUND")
        .reply()
}

fn not_found_message(t: &ObjectType) -> String {
    format!(
        "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
        t.upper_name()
    )
}

/// A unique value held by another record: a 409 for contact email, else a property error.
fn unique_conflict(t: &ObjectType, changes: &Changes, except: Option<u64>) -> Result<(), Result<Reply, PropError>> {
    match t.conflict(changes, except) {
        None => Ok(()),
        Some(c) if t.is_contact() && &*c.property == "email" => Err(Ok(contact_exists(c.existing_id))),
        Some(c) => Err(Err(PropError {
            name: c.property.to_string(),
            code: "DUPLICATE_VALUE",
            message: format!(
                "Property \"{}\" value {} already exists on {} {}",
                c.property, c.value, t.singular, c.existing_id
            ),
            doesnt_exist: false,
        })),
    }
}

/// The survivor of a merged-away record id, if `id` is one.
fn merged_survivor(t: &ObjectType, id: &str) -> Option<u64> {
    id.trim().parse::<u64>().ok().and_then(|rid| t.survivor_of(rid))
}

/// Moves an input's `objectWriteTraceId` out (empty counts as none).
fn take_trace<'a>(input: &mut WriteInput<'a>) -> Option<Cow<'a, str>> {
    input.object_write_trace_id.take().map(|s| s.0).filter(|s| !s.is_empty())
}

/// A checked inline association: type id and target.
struct PlannedLink {
    to_type: String,
    to_id: u64,
    type_id: u32,
}

/// The 400 for inline associations naming a record that does not exist (hubspot-api.md
/// §9.1; the recorded answer says `INVALID_FROM_OBJECT` for the missing target).
fn invalid_associations(to_type_id: &str, to_id: &str) -> Reply {
    HsError::new(400, "one or more associations are not valid")
        .category("BAD_REQUEST")
        .errors(json!([{
            "message": format!("{to_type_id}={to_id} is not a valid object"),
            "context": {"validationResult": ["INVALID_FROM_OBJECT"]},
        }]))
        .reply()
}

fn plan_links(store: &Store, from_type: &str, associations: &[InlineAssociation]) -> HsResult<Vec<PlannedLink>> {
    let mut out = Vec::new();
    for a in associations {
        let to_id = a.to.id.0.trim().parse::<u64>().ok();
        for spec in &a.types {
            let type_id = spec.association_type_id;
            let Some(def) = store.associations.get_type(type_id).filter(|d| d.from == from_type) else {
                return Err(Reply::validation(format!(
                    "association type id {type_id} doesn't exist between {from_type} and the target object"
                )));
            };
            let Some(to_id) = to_id.filter(|id| store.record_exists(&def.to, *id)) else {
                return Err(invalid_associations(&def.to, &a.to.id.0));
            };
            out.push(PlannedLink { to_type: def.to.clone(), to_id, type_id });
        }
    }
    Ok(out)
}

fn apply_links(store: &mut Store, from_type: &str, from_id: u64, links: Vec<PlannedLink>) {
    for l in links {
        // Checked by plan_links; a failure here cannot happen and would only skip the link.
        let _ = store.associations.link(from_type, from_id, &l.to_type, l.to_id, &[l.type_id], false);
    }
}

/// Archives a record and drops its associations and list memberships.
pub(crate) fn archive_record(store: &mut Store, type_index: usize, id: u64, now: i64) -> bool {
    let type_id = store.object_type(type_index).type_id.clone();
    if !store.object_type_mut(type_index).archive(id, now) {
        return false;
    }
    store.associations.forget_record(&type_id, id);
    store.lists.forget_record(&type_id, id);
    true
}

/// `{status, results, numErrors?, errors?, startedAt, completedAt}`.
struct BatchJson<'a> {
    results: Vec<RecordJson<'a>>,
    errors: Vec<Value>,
    started_at: i64,
    completed_at: i64,
}

impl Serialize for BatchJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("status", "COMPLETE")?;
        map.serialize_entry("results", &self.results)?;
        if !self.errors.is_empty() {
            map.serialize_entry("numErrors", &self.errors.len())?;
            map.serialize_entry("errors", &self.errors)?;
        }
        map.serialize_entry("startedAt", &clock::iso_millis(self.started_at))?;
        map.serialize_entry("completedAt", &clock::iso_millis(self.completed_at))?;
        map.end()
    }
}

fn batch_reply(status: u16, results: Vec<RecordJson<'_>>, errors: Vec<Value>, started_at: i64) -> Reply {
    let status = if errors.is_empty() { status } else { 207 };
    // Stay under glibc's 64 KiB free-consolidation threshold for a full batch.
    let capacity = 256 + results.len() * 512 + errors.len() * 512;
    Reply::json_sized(status, &BatchJson { results, errors, started_at, completed_at: clock::now_ms() }, capacity)
}

// ---------------------------------------------------------------- single records

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
            // A missing record by idProperty is an HTML 404 (hubspot-api.md §9).
            t.find_unique(p, id).and_then(|rid| t.live(rid)).ok_or_else(Reply::not_found_page)?
        }
        None => id
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|rid| t.records.get(&rid))
            .filter(|r| r.archived == archived)
            // A merged-away record id reads the survivor (hubspot-api.md §9.1).
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
    Ok(Reply::json(201, &t.json(record, &Selection::AllSet)).with_header("Location", location))
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
    // A merged-away record id updates the survivor (hubspot-api.md §9.1).
    let by_record_id = id_property.is_none_or(|p| p == "hs_object_id");
    let rid = t
        .resolve_id(id, id_property)
        .or_else(|| by_record_id.then(|| merged_survivor(t, id)).flatten())
        .ok_or_else(|| object_not_found(id))?;
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
    Ok(Reply::json(200, &t.json(record, &Selection::AllSet)))
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

// ---------------------------------------------------------------- batches

pub(crate) fn batch(ctx: &Ctx<'_>, name: &str, op: BatchOp) -> HsResult<Reply> {
    match op {
        BatchOp::Create => batch_create(ctx, name),
        BatchOp::Read => batch_read(ctx, name),
        BatchOp::Update => batch_update(ctx, name),
        BatchOp::Upsert => batch_upsert(ctx, name),
        BatchOp::Archive => batch_archive(ctx, name),
    }
}

fn parse_inputs<'a, T: Deserialize<'a>>(body: &'a [u8], limit: usize) -> HsResult<Vec<T>> {
    let parsed: Inputs<T> = parse_body(body)?;
    if parsed.inputs.len() > limit {
        return Err(too_many_inputs(limit));
    }
    Ok(parsed.inputs)
}

/// What one write input will do once the whole batch has been checked.
enum Plan {
    Create(Changes),
    Update(u64, Changes),
    Invalid(Vec<PropError>),
    Missing,
    /// A merged-away id on batch update: dropped from the answer.
    Merged,
}

/// Refuses the whole batch (400) when an input failed validation and carries no trace id:
/// only with trace ids does HubSpot answer per input (207).
fn whole_batch_failure(plans: &[Plan], traces: &[Option<Cow<'_, str>>], portal_id: u64) -> HsResult<()> {
    for (plan, trace) in plans.iter().zip(traces) {
        if let (Plan::Invalid(errors), None) = (plan, trace) {
            return Err(validation_reply(errors, portal_id));
        }
    }
    Ok(())
}

fn batch_create(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
    let mut inputs: Vec<WriteInput> = parse_inputs(ctx.body, BATCH_LIMIT)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve_type(ctx, store, name, Access::Write)?;
    let t = store.object_type(i);
    let traces: Vec<Option<Cow<'_, str>>> = inputs.iter_mut().map(take_trace).collect();
    let mut plans = Vec::with_capacity(inputs.len());
    let mut seen: FastSet<(Arc<str>, String)> = FastSet::default();
    let mut duplicates = Vec::new();
    for input in &mut inputs {
        let plan = match t.check(std::mem::take(&mut input.properties.0), None) {
            Ok(changes) => {
                for (name, value) in changes.0.iter().filter(|(n, v)| !v.is_empty() && t.is_unique_key(n)) {
                    if !seen.insert((name.clone(), t.unique_key(name, value).into_owned())) {
                        duplicates.push(value.clone());
                    }
                }
                match unique_conflict(t, &changes, None) {
                    Ok(()) => Plan::Create(changes),
                    Err(Ok(reply)) => return Err(reply),
                    Err(Err(e)) => Plan::Invalid(vec![e]),
                }
            }
            Err(errors) => Plan::Invalid(errors),
        };
        plans.push(plan);
    }
    if !duplicates.is_empty() {
        return Err(duplicate_ids(&duplicates));
    }
    whole_batch_failure(&plans, &traces, store.portal_id)?;
    let type_id = t.type_id.clone();
    let mut links = Vec::with_capacity(inputs.len());
    for input in &inputs {
        links.push(plan_links(store, &type_id, &input.associations)?);
    }
    let lag = store.index_lag_ms;
    let mut done: Vec<(u64, Option<Cow<'_, str>>)> = Vec::with_capacity(plans.len());
    let mut errors = Vec::new();
    for ((plan, trace), links) in plans.into_iter().zip(traces).zip(links) {
        match plan {
            Plan::Create(changes) => {
                let id = store.next_id();
                store.object_type_mut(i).create(id, changes, ctx.now, lag);
                apply_links(store, &type_id, id, links);
                done.push((id, trace));
            }
            Plan::Invalid(e) => errors.push(trace_error(&e, store.portal_id, trace.as_deref().unwrap_or_default())),
            Plan::Update(..) | Plan::Missing | Plan::Merged => {}
        }
    }
    store.shuffle(&mut done);
    let t = store.object_type(i);
    let results = done
        .iter()
        .filter_map(|(id, trace)| t.records.get(id).map(|record| (record, trace)))
        .map(|(record, trace)| RecordJson { trace_id: trace.as_deref(), ..t.json(record, &Selection::AllSet) })
        .collect();
    Ok(batch_reply(201, results, errors, ctx.now))
}

fn batch_read(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
    let body: ReadBody = parse_body(ctx.body)?;
    if body.inputs.len() > BATCH_LIMIT {
        return Err(too_many_inputs(BATCH_LIMIT));
    }
    if !body.properties_with_history.is_empty() && body.inputs.len() > HISTORY_BATCH_LIMIT {
        return Err(Reply::validation(format!(
            "The maximum number of inputs supported in a batch request for property histories is {HISTORY_BATCH_LIMIT}. Please reduce the number of items and try again"
        )));
    }
    let archived = ctx.flag("archived");
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve_type(ctx, store, name, Access::Read)?;
    let t = store.object_type(i);
    let id_property = body.id_property.as_deref().filter(|p| !p.is_empty() && *p != "hs_object_id");
    if let Some(p) = id_property {
        if !t.is_unique_key(p) {
            return Err(non_unique(&t.type_id, p));
        }
    }
    let mut found: Vec<u64> = Vec::with_capacity(body.inputs.len());
    let mut missing: Vec<String> = Vec::new();
    let mut seen = FastSet::default();
    for input in &body.inputs {
        let raw = &input.id.0;
        let rid = match id_property {
            Some(p) => t.find_unique(p, raw),
            None => {
                raw.trim().parse::<u64>().ok().filter(|id| t.records.get(id).is_some_and(|r| r.archived == archived))
            }
        };
        match rid {
            Some(rid) if seen.insert(rid) => found.push(rid),
            Some(_) => {}
            None => missing.push(raw.clone()),
        }
    }
    store.shuffle(&mut found);
    let t = store.object_type(i);
    let names = t.read_selection(&body.properties);
    let selection = Selection::Named(&names);
    let results = found.iter().filter_map(|id| t.records.get(id)).map(|record| t.json(record, &selection)).collect();
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": not_found_message(t),
            "context": {"ids": missing},
        })]
    };
    Ok(batch_reply(200, results, errors, ctx.now))
}

/// The unique key of an update/upsert input for duplicate detection.
fn input_key(t: &ObjectType, id_property: Option<&str>, id: &str) -> String {
    match id_property {
        Some(p) => t.unique_key(p, id).into_owned(),
        None => id.trim().to_string(),
    }
}

fn batch_update(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
    let mut inputs: Vec<WriteInput> = parse_inputs(ctx.body, BATCH_LIMIT)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve_type(ctx, store, name, Access::Write)?;
    let t = store.object_type(i);
    let mut seen = FastSet::default();
    let mut duplicates = Vec::new();
    for input in &inputs {
        let id_property = input.id_property.as_deref().filter(|p| !p.is_empty());
        if let Some(p) = id_property {
            // The record id goes in `id` without idProperty; hs_object_id is not unique.
            if p == "hs_object_id" || !t.is_unique_key(p) {
                return Err(non_unique(&t.type_id, p));
            }
        }
        let id = input.id.as_ref().map(|s| &*s.0).unwrap_or_default();
        if !seen.insert(input_key(t, id_property, id)) {
            duplicates.push(id.to_string());
        }
    }
    if !duplicates.is_empty() {
        return Err(duplicate_ids(&duplicates));
    }
    let traces: Vec<Option<Cow<'_, str>>> = inputs.iter_mut().map(take_trace).collect();
    let mut plans = Vec::with_capacity(inputs.len());
    for input in &mut inputs {
        let id = input.id.as_ref().map(|s| &*s.0).unwrap_or_default();
        let id_property = input.id_property.as_deref().filter(|p| !p.is_empty());
        let plan = match t.resolve_id(id, id_property) {
            // HubSpot leaves a merged-away id out of the answer, without an error (§9.1).
            None if id_property.is_none() && t.is_merged_away(id) => Plan::Merged,
            None => Plan::Missing,
            Some(rid) => match t.check(std::mem::take(&mut input.properties.0), t.live(rid)) {
                Ok(changes) => match unique_conflict(t, &changes, Some(rid)) {
                    Ok(()) => Plan::Update(rid, changes),
                    Err(Ok(reply)) => return Err(reply),
                    Err(Err(e)) => Plan::Invalid(vec![e]),
                },
                Err(errors) => Plan::Invalid(errors),
            },
        };
        plans.push(plan);
    }
    whole_batch_failure(&plans, &traces, store.portal_id)?;
    let not_found = not_found_message(t);
    let lag = store.index_lag_ms;
    let mut done: Vec<(u64, Option<Cow<'_, str>>)> = Vec::with_capacity(plans.len());
    let mut errors = Vec::new();
    let mut missing_untraced = Vec::new();
    for ((plan, trace), input) in plans.into_iter().zip(traces).zip(&inputs) {
        let id = input.id.as_ref().map(|s| s.0.to_string()).unwrap_or_default();
        match plan {
            Plan::Update(rid, changes) => {
                store.object_type_mut(i).update(rid, changes, ctx.now, lag);
                done.push((rid, trace));
            }
            Plan::Missing => match trace {
                Some(trace) => errors.push(json!({
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": not_found,
                    "context": {"ids": [id], "objectWriteTraceId": [trace]},
                })),
                None => missing_untraced.push(id),
            },
            Plan::Invalid(e) => errors.push(trace_error(&e, store.portal_id, trace.as_deref().unwrap_or_default())),
            Plan::Create(_) | Plan::Merged => {}
        }
    }
    if !missing_untraced.is_empty() {
        errors.push(json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": not_found,
            "context": {"ids": missing_untraced},
        }));
    }
    store.shuffle(&mut done);
    let t = store.object_type(i);
    let results = done
        .iter()
        .filter_map(|(id, trace)| t.records.get(id).map(|record| (record, trace)))
        .map(|(record, trace)| RecordJson { trace_id: trace.as_deref(), ..t.json(record, &Selection::AllSet) })
        .collect();
    Ok(batch_reply(200, results, errors, ctx.now))
}

fn batch_upsert(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
    let mut inputs: Vec<WriteInput> = parse_inputs(ctx.body, BATCH_LIMIT)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve_type(ctx, store, name, Access::Write)?;
    let t = store.object_type(i);
    // The normalized key of each input, computed once for duplicates and lookups.
    let mut keys = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let p = input.id_property.as_deref().filter(|p| !p.is_empty()).unwrap_or("hs_object_id");
        if !t.is_unique_key(p) {
            return Err(non_unique(&t.type_id, p));
        }
        // Keys borrow from the request body, not from `inputs`, which is changed below.
        let key = match input.id.as_ref().map(|s| &s.0) {
            Some(Cow::Borrowed(id)) => t.unique_key(p, id),
            Some(Cow::Owned(id)) => Cow::Owned(t.unique_key(p, id).into_owned()),
            None => Cow::Borrowed(""),
        };
        keys.push(key);
    }
    let mut seen = FastSet::with_capacity_and_hasher(inputs.len(), Default::default());
    let mut duplicates = Vec::new();
    for (input, key) in inputs.iter().zip(&keys) {
        if !seen.insert((input.id_property.as_deref(), key.as_ref())) {
            duplicates.push(input.id.as_ref().map(|s| s.0.to_string()).unwrap_or_default());
        }
    }
    drop(seen);
    if !duplicates.is_empty() {
        return Err(duplicate_ids(&duplicates));
    }
    let traces: Vec<Option<Cow<'_, str>>> = inputs.iter_mut().map(take_trace).collect();
    let mut plans = Vec::with_capacity(inputs.len());
    for (input, key) in inputs.iter_mut().zip(&keys) {
        let p = input.id_property.as_deref().filter(|p| !p.is_empty()).unwrap_or("hs_object_id");
        let existing = t.find_key(p, key);
        let mut properties = std::mem::take(&mut input.properties.0);
        if existing.is_none() && !properties.iter().any(|(n, _)| n == p) {
            let value = input.id.take().map(|s| s.0).unwrap_or_default();
            properties.push((input.id_property.clone().unwrap_or(Cow::Borrowed("hs_object_id")), Some(value)));
        }
        let plan = match t.check(properties, existing.and_then(|rid| t.live(rid))) {
            Ok(changes) => match unique_conflict(t, &changes, existing) {
                Ok(()) => match existing {
                    Some(rid) => Plan::Update(rid, changes),
                    None => Plan::Create(changes),
                },
                Err(Ok(reply)) => return Err(reply),
                Err(Err(e)) => Plan::Invalid(vec![e]),
            },
            Err(errors) => Plan::Invalid(errors),
        };
        plans.push(plan);
    }
    whole_batch_failure(&plans, &traces, store.portal_id)?;
    let lag = store.index_lag_ms;
    let mut done: Vec<(u64, bool, Option<Cow<'_, str>>)> = Vec::with_capacity(plans.len());
    let mut errors = Vec::new();
    for (plan, trace) in plans.into_iter().zip(traces) {
        match plan {
            Plan::Create(changes) => {
                let id = store.next_id();
                store.object_type_mut(i).create(id, changes, ctx.now, lag);
                done.push((id, true, trace));
            }
            Plan::Update(rid, changes) => {
                store.object_type_mut(i).update(rid, changes, ctx.now, lag);
                done.push((rid, false, trace));
            }
            Plan::Invalid(e) => errors.push(trace_error(&e, store.portal_id, trace.as_deref().unwrap_or_default())),
            Plan::Missing | Plan::Merged => {}
        }
    }
    store.shuffle(&mut done);
    let t = store.object_type(i);
    let results = done
        .iter()
        .filter_map(|(id, new, trace)| t.records.get(id).map(|record| (record, *new, trace)))
        .map(|(record, new, trace)| RecordJson {
            trace_id: trace.as_deref(),
            new: Some(new),
            ..t.json(record, &Selection::AllSet)
        })
        .collect();
    Ok(batch_reply(200, results, errors, ctx.now))
}

fn batch_archive(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
    let inputs: Vec<IdRef> = parse_inputs(ctx.body, BATCH_LIMIT)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve_type(ctx, store, name, Access::Write)?;
    for input in &inputs {
        if let Ok(id) = input.id.0.trim().parse::<u64>() {
            archive_record(store, i, id, ctx.now);
        }
    }
    Ok(Reply::empty(204))
}
