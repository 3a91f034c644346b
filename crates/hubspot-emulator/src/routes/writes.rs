//! What single and batch record writes share: the write input, HubSpot's validation and
//! not-found errors, unique-value conflicts, inline associations, and archiving a record
//! (HubSpot docs: batch limits, error handling, recorded real answers; sources in docs/emulator.md).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::wire::{AssocTypeSpec, IdRef, Props, Text};
use crate::reply::{HsError, HsResult, Reply};
use crate::store::{Changes, ObjectType, PropError, Store};

/// Inputs per object batch request (using-object-apis § Limits).
pub(crate) const BATCH_LIMIT: usize = 100;

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

/// One input's validation failure inside a 207 (recorded real HubSpot answers, docs/emulator.md).
pub(crate) fn trace_error(errors: &[PropError], portal_id: u64, trace: &str) -> Value {
    json!({
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": validation_message(errors, portal_id),
        "context": {"objectWriteTraceId": [trace]},
    })
}

pub(crate) fn non_unique(type_id: &str, property: &str) -> Reply {
    Reply::validation(format!("Unable to perform update/upsert by non-unique {type_id} property {property}"))
}

pub(crate) fn duplicate_ids(ids: &[String]) -> Reply {
    HsError::new(400, format!("Duplicate IDs found in batch input: [{}]. IDs must be unique", ids.join(", ")))
        .context(json!({"ids": ids}))
        .category("VALIDATION_ERROR")
        .reply()
}

pub(crate) fn contact_exists(id: u64) -> Reply {
    Reply::error(409, "CONFLICT", format!("Contact already exists. Existing ID: {id}"))
}

pub(crate) fn object_not_found(id: &str) -> Reply {
    HsError::new(404, "Object not found.  objectId are usually numeric.")
        .context(json!({"id": [id]}))
        .category("OBJECT_NOT_FOUND")
        .reply()
}

pub(crate) fn not_found_message(t: &ObjectType) -> String {
    format!(
        "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
        t.upper_name()
    )
}

/// A unique value held by another record: a 409 for contact email, else a property error.
pub(crate) fn unique_conflict(
    t: &ObjectType,
    changes: &Changes,
    except: Option<u64>,
) -> Result<(), Result<Reply, PropError>> {
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
pub(crate) fn merged_survivor(t: &ObjectType, id: &str) -> Option<u64> {
    id.trim().parse::<u64>().ok().and_then(|rid| t.survivor_of(rid))
}

/// Moves an input's `objectWriteTraceId` out (empty counts as none).
pub(crate) fn take_trace<'a>(input: &mut WriteInput<'a>) -> Option<Cow<'a, str>> {
    input.object_write_trace_id.take().map(|s| s.0).filter(|s| !s.is_empty())
}

/// A checked inline association: type id and target.
pub(crate) struct PlannedLink {
    to_type: String,
    to_id: u64,
    type_id: u32,
}

/// The 400 for inline associations naming a record that does not exist (recorded real HubSpot answers, docs/emulator.md; the recorded answer says `INVALID_FROM_OBJECT` for the missing target).
pub(crate) fn invalid_associations(to_type_id: &str, to_id: &str) -> Reply {
    HsError::new(400, "one or more associations are not valid")
        .category("BAD_REQUEST")
        .errors(json!([{
            "message": format!("{to_type_id}={to_id} is not a valid object"),
            "context": {"validationResult": ["INVALID_FROM_OBJECT"]},
        }]))
        .reply()
}

pub(crate) fn plan_links(
    store: &Store,
    from_type: &str,
    associations: &[InlineAssociation],
) -> HsResult<Vec<PlannedLink>> {
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

pub(crate) fn apply_links(store: &mut Store, from_type: &str, from_id: u64, links: Vec<PlannedLink>) {
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
