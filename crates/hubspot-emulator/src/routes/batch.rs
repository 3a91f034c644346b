//! CRM objects in batches: create, read, update, upsert and archive, up to 100 inputs each,
//! with HubSpot's whole-batch 400s, per-input 207s keyed by `objectWriteTraceId`, and
//! shuffled results (HubSpot docs: CRM objects, recorded real answers; sources in docs/emulator.md).

use std::borrow::Cow;
use std::sync::Arc;

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::context::{resolve_type, Ctx};
use super::wire::{too_many_inputs, IdRef};
use super::writes::{
    apply_links, archive_record, duplicate_ids, non_unique, not_found_message, plan_links, take_trace, trace_error,
    unique_conflict, validation_reply, WriteInput, BATCH_LIMIT,
};
use crate::auth::Access;
use crate::clock;
use crate::reply::{parse_body, HsResult, Reply};
use crate::store::{Changes, FastSet, ObjectType, PropError, RecordJson, Selection};

/// Inputs per batch read that asks for property histories.
const HISTORY_BATCH_LIMIT: usize = 50;

/// What each applied input's answer shows of its record (see `Done::nulls`).
fn selections<'a>(done: &'a [Done<'_>]) -> Vec<Selection<'a>> {
    done.iter().map(|d| Selection::Written(&d.nulls)).collect()
}

/// The answer's results for the applied inputs; `with_new` adds upserts' `new` flag.
fn results<'a>(
    t: &'a ObjectType,
    done: &'a [Done<'a>],
    selections: &'a [Selection<'a>],
    with_new: bool,
) -> Vec<RecordJson<'a>> {
    done.iter()
        .zip(selections)
        .filter_map(|(d, selection)| {
            let record = t.records.get(&d.id)?;
            Some(RecordJson {
                trace_id: d.trace.as_deref(),
                new: with_new.then_some(d.new),
                ..t.json(record, selection)
            })
        })
        .collect()
}

/// One applied write input, for the answer: its record, whether it was created (upserts),
/// its trace id, and the known properties it wrote as `null`.
struct Done<'a> {
    id: u64,
    new: bool,
    trace: Option<Cow<'a, str>>,
    nulls: Vec<Arc<str>>,
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

pub(crate) fn create(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
    let mut inputs: Vec<WriteInput> = parse_inputs(ctx.body, BATCH_LIMIT)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve_type(ctx, store, name, Access::Write)?;
    let t = store.object_type(i);
    let traces: Vec<Option<Cow<'_, str>>> = inputs.iter_mut().map(take_trace).collect();
    let mut nulls: Vec<Vec<Arc<str>>> = inputs.iter().map(|input| t.written_nulls(&input.properties.0)).collect();
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
    let mut done: Vec<Done<'_>> = Vec::with_capacity(plans.len());
    let mut errors = Vec::new();
    for (((plan, trace), links), nulls) in plans.into_iter().zip(traces).zip(links).zip(nulls.iter_mut()) {
        match plan {
            Plan::Create(changes) => {
                let id = store.next_id();
                store.object_type_mut(i).create(id, changes, ctx.now, lag);
                apply_links(store, &type_id, id, links);
                done.push(Done { id, new: true, trace, nulls: std::mem::take(nulls) });
            }
            Plan::Invalid(e) => errors.push(trace_error(&e, store.portal_id, trace.as_deref().unwrap_or_default())),
            Plan::Update(..) | Plan::Missing | Plan::Merged => {}
        }
    }
    store.shuffle(&mut done);
    let t = store.object_type(i);
    let selections = selections(&done);
    let results = results(t, &done, &selections, false);
    Ok(batch_reply(201, results, errors, ctx.now))
}

pub(crate) fn read(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
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

pub(crate) fn update(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
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
    let mut nulls: Vec<Vec<Arc<str>>> = inputs.iter().map(|input| t.written_nulls(&input.properties.0)).collect();
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
    let mut done: Vec<Done<'_>> = Vec::with_capacity(plans.len());
    let mut errors = Vec::new();
    let mut missing_untraced = Vec::new();
    for (((plan, trace), input), nulls) in plans.into_iter().zip(traces).zip(&inputs).zip(nulls.iter_mut()) {
        let id = input.id.as_ref().map(|s| s.0.to_string()).unwrap_or_default();
        match plan {
            Plan::Update(rid, changes) => {
                store.object_type_mut(i).update(rid, changes, ctx.now, lag);
                done.push(Done { id: rid, new: false, trace, nulls: std::mem::take(nulls) });
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
    let selections = selections(&done);
    let results = results(t, &done, &selections, false);
    Ok(batch_reply(200, results, errors, ctx.now))
}

pub(crate) fn upsert(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
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
    let mut nulls: Vec<Vec<Arc<str>>> = inputs.iter().map(|input| t.written_nulls(&input.properties.0)).collect();
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
    let mut done: Vec<Done<'_>> = Vec::with_capacity(plans.len());
    let mut errors = Vec::new();
    for ((plan, trace), nulls) in plans.into_iter().zip(traces).zip(nulls.iter_mut()) {
        match plan {
            Plan::Create(changes) => {
                let id = store.next_id();
                store.object_type_mut(i).create(id, changes, ctx.now, lag);
                done.push(Done { id, new: true, trace, nulls: std::mem::take(nulls) });
            }
            Plan::Update(rid, changes) => {
                store.object_type_mut(i).update(rid, changes, ctx.now, lag);
                done.push(Done { id: rid, new: false, trace, nulls: std::mem::take(nulls) });
            }
            Plan::Invalid(e) => errors.push(trace_error(&e, store.portal_id, trace.as_deref().unwrap_or_default())),
            Plan::Missing | Plan::Merged => {}
        }
    }
    store.shuffle(&mut done);
    let t = store.object_type(i);
    let selections = selections(&done);
    let results = results(t, &done, &selections, true);
    Ok(batch_reply(200, results, errors, ctx.now))
}

pub(crate) fn archive(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
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
