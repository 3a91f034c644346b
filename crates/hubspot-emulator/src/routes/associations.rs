//! Associations v4 (HubSpot docs: associations v4; sources in docs/emulator.md): single PUT/DELETE/GET on a record, the batch
//! endpoints, and the labels API.

use serde::Deserialize;
use serde_json::{json, Value};

use super::context::{resolve_type, Ctx};
use super::wire::{batch_body, too_many_inputs, AssocTypeSpec, IdRef, Scalar};
use crate::auth::Access;
use crate::reply::{parse_body, HsError, HsResult, Reply};
use crate::store::associations::{AssociationError, MAX_LABELS_PER_PAIR};
use crate::store::Store;

/// Inputs per association batch create (associate-records guide).
const BATCH_CREATE_LIMIT: usize = 2_000;
/// Inputs per association batch read.
const BATCH_READ_LIMIT: usize = 1_000;
/// Targets per page in reads ("Limit 500 per call").
const PAGE: usize = 500;

#[derive(Debug, Deserialize)]
struct Inputs<T> {
    inputs: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct PairInput {
    from: IdRef,
    to: IdRef,
    #[serde(default)]
    types: Vec<AssocTypeSpec>,
}

#[derive(Debug, Deserialize)]
struct ReadInput {
    id: Scalar,
    #[serde(default)]
    after: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
struct ArchiveInput {
    from: IdRef,
    #[serde(default)]
    to: Vec<IdRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LabelCreate {
    label: Option<String>,
    name: Option<String>,
    #[serde(default)]
    inverse_label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LabelUpdate {
    association_type_id: u32,
    label: Option<String>,
    #[serde(default)]
    inverse_label: Option<String>,
}

/// Both sides of an association request, resolved.
struct Pair {
    from: String,
    to: String,
    from_name: String,
    to_name: String,
}

fn resolve_pair(ctx: &Ctx<'_>, store: &Store, from: &str, to: &str, access: Access) -> HsResult<Pair> {
    let f = store.object_type(resolve_type(ctx, store, from, access)?);
    let t = store.object_type(resolve_type(ctx, store, to, access)?);
    Ok(Pair {
        from: f.type_id.clone(),
        to: t.type_id.clone(),
        from_name: f.singular.clone(),
        to_name: t.singular.clone(),
    })
}

fn error_reply(e: AssociationError, pair: &Pair) -> Reply {
    match e {
        AssociationError::UnknownType(id) => Reply::validation(format!(
            "Association type id {id} does not exist between {} and {}.",
            pair.from_name, pair.to_name
        )),
        AssociationError::PairNotDeclared => Reply::validation(format!(
            "There is no association definition between {} and {}.",
            pair.from_name, pair.to_name
        )),
        AssociationError::TooManyLabels => Reply::validation(format!(
            "You can create up to {MAX_LABELS_PER_PAIR} association labels between {} and {}.",
            pair.from_name, pair.to_name
        )),
        AssociationError::LabelExists(label) => Reply::validation(format!(
            "An association label {label} already exists between {} and {}.",
            pair.from_name, pair.to_name
        )),
        AssociationError::LabelInUse => {
            Reply::validation("This association label is still used by records; remove it from them first.")
        }
        AssociationError::DefaultNotDeletable => {
            Reply::validation("HubSpot-defined association types cannot be changed.")
        }
    }
}

fn parse_id(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

fn missing_record(name: &str, id: &str) -> Reply {
    HsError::new(404, format!("No {name} with id {id} exists.")).category("OBJECT_NOT_FOUND").reply()
}

/// Checks each spec's type id and category; returns the type ids.
fn type_ids(store: &Store, pair: &Pair, specs: &[AssocTypeSpec]) -> HsResult<Vec<u32>> {
    let mut ids = Vec::with_capacity(specs.len());
    for spec in specs {
        let def = store
            .associations
            .get_type(spec.association_type_id)
            .filter(|d| d.from == pair.from && d.to == pair.to)
            .ok_or_else(|| error_reply(AssociationError::UnknownType(spec.association_type_id), pair))?;
        if let Some(category) = &spec.association_category {
            if category != def.category() {
                return Err(Reply::validation(format!(
                    "Association type id {} is {}, not {category}.",
                    def.type_id,
                    def.category()
                )));
            }
        }
        ids.push(spec.association_type_id);
    }
    Ok(ids)
}

fn types_json(store: &Store, types: &[u32]) -> Vec<Value> {
    types.iter().filter_map(|t| store.associations.get_type(*t)).map(|t| t.to_json()).collect()
}

fn labels_of(store: &Store, types: &[u32]) -> Vec<String> {
    types.iter().filter_map(|t| store.associations.get_type(*t)).filter_map(|t| t.label.clone()).collect()
}

/// `LabelsBetweenObjectPair`; ids are JSON numbers, as real HubSpot answers (§9).
fn pair_json(store: &Store, pair: &Pair, from_id: u64, to_id: u64, types: &[u32]) -> Value {
    json!({
        "fromObjectTypeId": pair.from,
        "fromObjectId": from_id,
        "toObjectTypeId": pair.to,
        "toObjectId": to_id,
        "labels": labels_of(store, types),
    })
}

fn default_json(store: &Store, from_id: u64, to_id: u64, type_id: u32) -> Value {
    let category = store.associations.get_type(type_id).map(|t| t.category()).unwrap_or("HUBSPOT_DEFINED");
    json!({
        "from": {"id": from_id.to_string()},
        "to": {"id": to_id.to_string()},
        "associationSpec": {"associationCategory": category, "associationTypeId": type_id},
    })
}

pub(crate) fn put_default(ctx: &Ctx<'_>, from: &str, from_id: &str, to: &str, to_id: &str) -> HsResult<Reply> {
    let mut guard = ctx.store();
    let store = &mut *guard;
    let pair = resolve_pair(ctx, store, from, to, Access::Write)?;
    let f = parse_id(from_id)
        .filter(|id| store.record_exists(&pair.from, *id))
        .ok_or_else(|| missing_record(&pair.from_name, from_id))?;
    let t = parse_id(to_id)
        .filter(|id| store.record_exists(&pair.to, *id))
        .ok_or_else(|| missing_record(&pair.to_name, to_id))?;
    store.associations.link(&pair.from, f, &pair.to, t, &[], false).map_err(|e| error_reply(e, &pair))?;
    let forward = store.associations.default_type(&pair.from, &pair.to).unwrap_or_default();
    let backward = store.associations.default_type(&pair.to, &pair.from).unwrap_or_default();
    let results = vec![default_json(store, f, t, forward), default_json(store, t, f, backward)];
    Ok(Reply::json(200, &batch_body(results, Vec::new(), ctx.now)))
}

pub(crate) fn put_labeled(ctx: &Ctx<'_>, from: &str, from_id: &str, to: &str, to_id: &str) -> HsResult<Reply> {
    let specs: Vec<AssocTypeSpec> = parse_body(ctx.body)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let pair = resolve_pair(ctx, store, from, to, Access::Write)?;
    let f = parse_id(from_id)
        .filter(|id| store.record_exists(&pair.from, *id))
        .ok_or_else(|| missing_record(&pair.from_name, from_id))?;
    let t = parse_id(to_id)
        .filter(|id| store.record_exists(&pair.to, *id))
        .ok_or_else(|| missing_record(&pair.to_name, to_id))?;
    let ids = type_ids(store, &pair, &specs)?;
    let types = store.associations.link(&pair.from, f, &pair.to, t, &ids, true).map_err(|e| error_reply(e, &pair))?;
    Ok(Reply::json(201, &pair_json(store, &pair, f, t, &types)))
}

pub(crate) fn delete(ctx: &Ctx<'_>, from: &str, from_id: &str, to: &str, to_id: &str) -> HsResult<Reply> {
    let mut guard = ctx.store();
    let store = &mut *guard;
    let pair = resolve_pair(ctx, store, from, to, Access::Write)?;
    if let (Some(f), Some(t)) = (parse_id(from_id), parse_id(to_id)) {
        store.associations.unlink(&pair.from, f, &pair.to, t);
    }
    Ok(Reply::empty(204))
}

/// The `to` entries of one record, from `after` on, at most `PAGE`; and the next cursor.
fn page_of(store: &Store, pair: &Pair, from_id: u64, after: Option<u64>, limit: usize) -> (Vec<Value>, Option<u64>) {
    let Some(targets) = store.associations.targets(&pair.from, from_id, &pair.to) else { return (Vec::new(), None) };
    let mut page: Vec<(&u64, &Vec<u32>)> = targets
        .range(after.map(|a| a.saturating_add(1)).unwrap_or(0)..)
        .filter(|(to_id, _)| store.record_exists(&pair.to, **to_id))
        .take(limit + 1)
        .collect();
    let next = if page.len() > limit {
        page.pop();
        page.last().map(|(id, _)| **id)
    } else {
        None
    };
    let entries = page
        .into_iter()
        .map(|(to_id, types)| json!({"toObjectId": to_id, "associationTypes": types_json(store, types)}))
        .collect();
    (entries, next)
}

pub(crate) fn list(ctx: &Ctx<'_>, from: &str, from_id: &str, to: &str) -> HsResult<Reply> {
    let limit = ctx.param("limit").and_then(|l| l.trim().parse::<usize>().ok()).unwrap_or(PAGE).clamp(1, PAGE);
    let after = ctx.param("after").and_then(parse_id);
    let store = ctx.store();
    let pair = resolve_pair(ctx, &store, from, to, Access::Read)?;
    let (results, next) = match parse_id(from_id) {
        Some(f) => page_of(&store, &pair, f, after, limit),
        None => (Vec::new(), None),
    };
    let mut body = json!({"results": results});
    if let Some(next) = next {
        body["paging"] = json!({"next": {"after": next.to_string(), "link": format!("{}?after={next}", ctx.path)}});
    }
    Ok(Reply::json(200, &body))
}

pub(crate) fn batch_create(ctx: &Ctx<'_>, from: &str, to: &str) -> HsResult<Reply> {
    let inputs = parse_inputs::<PairInput>(ctx, BATCH_CREATE_LIMIT)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let pair = resolve_pair(ctx, store, from, to, Access::Write)?;
    let mut planned = Vec::with_capacity(inputs.len());
    for input in &inputs {
        planned.push(type_ids(store, &pair, &input.types)?);
    }
    let mut results = Vec::with_capacity(inputs.len());
    let mut errors = Vec::new();
    for (input, ids) in inputs.iter().zip(planned) {
        let f = parse_id(&input.from.id.0).filter(|id| store.record_exists(&pair.from, *id));
        let t = parse_id(&input.to.id.0).filter(|id| store.record_exists(&pair.to, *id));
        match (f, t) {
            (Some(f), Some(t)) => {
                let types = store
                    .associations
                    .link(&pair.from, f, &pair.to, t, &ids, true)
                    .map_err(|e| error_reply(e, &pair))?;
                results.push(pair_json(store, &pair, f, t, &types));
            }
            (None, _) => errors.push(not_found_entry(&pair.from_name, &input.from.id.0)),
            (_, None) => errors.push(not_found_entry(&pair.to_name, &input.to.id.0)),
        }
    }
    store.shuffle(&mut results);
    let status = if errors.is_empty() { 201 } else { 207 };
    Ok(Reply::json(status, &batch_body(results, errors, ctx.now)))
}

fn not_found_entry(name: &str, id: &str) -> Value {
    json!({
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": format!("No {name} with id {id} exists."),
        "context": {"objectId": [id]},
    })
}

pub(crate) fn batch_default(ctx: &Ctx<'_>, from: &str, to: &str) -> HsResult<Reply> {
    let inputs = parse_inputs::<PairInput>(ctx, BATCH_CREATE_LIMIT)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let pair = resolve_pair(ctx, store, from, to, Access::Write)?;
    let mut results = Vec::with_capacity(inputs.len() * 2);
    let mut errors = Vec::new();
    for input in &inputs {
        let f = parse_id(&input.from.id.0).filter(|id| store.record_exists(&pair.from, *id));
        let t = parse_id(&input.to.id.0).filter(|id| store.record_exists(&pair.to, *id));
        match (f, t) {
            (Some(f), Some(t)) => {
                store.associations.link(&pair.from, f, &pair.to, t, &[], false).map_err(|e| error_reply(e, &pair))?;
                let forward = store.associations.default_type(&pair.from, &pair.to).unwrap_or_default();
                let backward = store.associations.default_type(&pair.to, &pair.from).unwrap_or_default();
                results.push(default_json(store, f, t, forward));
                results.push(default_json(store, t, f, backward));
            }
            (None, _) => errors.push(not_found_entry(&pair.from_name, &input.from.id.0)),
            (_, None) => errors.push(not_found_entry(&pair.to_name, &input.to.id.0)),
        }
    }
    let status = if errors.is_empty() { 200 } else { 207 };
    Ok(Reply::json(status, &batch_body(results, errors, ctx.now)))
}

pub(crate) fn batch_read(ctx: &Ctx<'_>, from: &str, to: &str) -> HsResult<Reply> {
    let inputs = parse_inputs::<ReadInput>(ctx, BATCH_READ_LIMIT)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let pair = resolve_pair(ctx, store, from, to, Access::Read)?;
    let mut results = Vec::with_capacity(inputs.len());
    let mut errors = Vec::new();
    for input in &inputs {
        let after = input.after.as_ref().and_then(|a| parse_id(&a.0));
        let (to, next) = match parse_id(&input.id.0).filter(|id| store.record_exists(&pair.from, *id)) {
            Some(f) => page_of(store, &pair, f, after, PAGE),
            None => (Vec::new(), None),
        };
        if to.is_empty() {
            errors.push(json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": format!("No {} is associated with {} {}.", pair.to_name, pair.from_name, input.id.0),
                "context": {
                    "fromObjectId": [input.id.0],
                    "fromObjectType": [pair.from_name],
                    "toObjectType": [pair.to_name],
                },
            }));
            continue;
        }
        let mut entry = json!({"from": {"id": input.id.0}, "to": to});
        if let Some(next) = next {
            entry["paging"] = json!({"next": {"after": next.to_string(), "link": null}});
        }
        results.push(entry);
    }
    store.shuffle(&mut results);
    let status = if errors.is_empty() { 200 } else { 207 };
    Ok(Reply::json(status, &batch_body(results, errors, ctx.now)))
}

pub(crate) fn batch_archive(ctx: &Ctx<'_>, from: &str, to: &str) -> HsResult<Reply> {
    let inputs = parse_inputs::<ArchiveInput>(ctx, BATCH_CREATE_LIMIT)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let pair = resolve_pair(ctx, store, from, to, Access::Write)?;
    for input in &inputs {
        let Some(f) = parse_id(&input.from.id.0) else { continue };
        for target in &input.to {
            if let Some(t) = parse_id(&target.id.0) {
                store.associations.unlink(&pair.from, f, &pair.to, t);
            }
        }
    }
    Ok(Reply::empty(204))
}

pub(crate) fn batch_labels_archive(ctx: &Ctx<'_>, from: &str, to: &str) -> HsResult<Reply> {
    let inputs = parse_inputs::<PairInput>(ctx, BATCH_CREATE_LIMIT)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let pair = resolve_pair(ctx, store, from, to, Access::Write)?;
    let mut planned = Vec::with_capacity(inputs.len());
    for input in &inputs {
        planned.push(type_ids(store, &pair, &input.types)?);
    }
    for (input, ids) in inputs.iter().zip(planned) {
        if let (Some(f), Some(t)) = (parse_id(&input.from.id.0), parse_id(&input.to.id.0)) {
            store.associations.unlink_types(&pair.from, f, &pair.to, t, &ids).map_err(|e| error_reply(e, &pair))?;
        }
    }
    Ok(Reply::empty(204))
}

pub(crate) fn labels(ctx: &Ctx<'_>, from: &str, to: &str) -> HsResult<Reply> {
    let mut guard = ctx.store();
    let store = &mut *guard;
    let pair = resolve_pair(ctx, store, from, to, Access::Read)?;
    // Standard pairs always have their defaults, even ones objects.rs does not list.
    let _ = store.associations.default_or_declare(&pair.from, &pair.to);
    let results: Vec<Value> = store.associations.labels(&pair.from, &pair.to).iter().map(|t| t.to_json()).collect();
    Ok(Reply::json(200, &json!({"results": results})))
}

pub(crate) fn label_create(ctx: &Ctx<'_>, from: &str, to: &str) -> HsResult<Reply> {
    let body: LabelCreate = parse_body(ctx.body)?;
    let label = body.label.filter(|l| !l.trim().is_empty()).ok_or_else(|| Reply::validation("label is required"))?;
    let name = body.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| Reply::validation("name is required"))?;
    if name.contains('-') || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Reply::validation(format!(
            "Association label name {name} is invalid: it can't contain hyphens or start with a number."
        )));
    }
    let mut guard = ctx.store();
    let store = &mut *guard;
    let pair = resolve_pair(ctx, store, from, to, Access::Write)?;
    let (forward, backward) = store
        .associations
        .create_label(&pair.from, &pair.to, &label, &name, body.inverse_label.as_deref())
        .map_err(|e| error_reply(e, &pair))?;
    let mut ids = vec![forward];
    if backward != forward {
        ids.push(backward);
    }
    Ok(Reply::json(200, &json!({"results": types_json(store, &ids)})))
}

pub(crate) fn label_update(ctx: &Ctx<'_>, from: &str, to: &str) -> HsResult<Reply> {
    let body: LabelUpdate = parse_body(ctx.body)?;
    let label = body.label.filter(|l| !l.trim().is_empty()).ok_or_else(|| Reply::validation("label is required"))?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let pair = resolve_pair(ctx, store, from, to, Access::Write)?;
    store
        .associations
        .update_label(&pair.from, &pair.to, body.association_type_id, &label, body.inverse_label.as_deref())
        .map_err(|e| error_reply(e, &pair))?;
    Ok(Reply::empty(204))
}

pub(crate) fn label_delete(ctx: &Ctx<'_>, from: &str, to: &str, type_id: &str) -> HsResult<Reply> {
    let mut guard = ctx.store();
    let store = &mut *guard;
    let pair = resolve_pair(ctx, store, from, to, Access::Write)?;
    let id = type_id.trim().parse::<u32>().map_err(|_| error_reply(AssociationError::UnknownType(0), &pair))?;
    store.associations.delete_label(&pair.from, &pair.to, id).map_err(|e| error_reply(e, &pair))?;
    Ok(Reply::empty(204))
}

fn parse_inputs<T: serde::de::DeserializeOwned>(ctx: &Ctx<'_>, limit: usize) -> HsResult<Vec<T>> {
    let body: Inputs<T> = parse_body(ctx.body)?;
    if body.inputs.len() > limit {
        return Err(too_many_inputs(limit));
    }
    Ok(body.inputs)
}
