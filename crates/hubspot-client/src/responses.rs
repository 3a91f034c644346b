//! Pure reading of HubSpot's answers: batch results and 207 errors mapped back to inputs, the
//! decision to bisect a whole-batch failure, and the metadata, search and list answers.
//!
//! Everything is read leniently from `serde_json::Value`: ids may be JSON numbers or strings,
//! optional fields may be missing, and results come back in random order.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::errors::{value_to_string, ApiError};
use super::requests::dedupe_key;
use super::types::{
    outcome_codes, AssocOutcome, AssociationInput, AssociationLabel, ListInfo, MembershipChange, PropertyInfo,
    SchemaInfo, WriteInput, WriteOutcome,
};

/// Which batch write endpoint a chunk went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    Upsert,
    Update,
    Create,
}

impl WriteOp {
    /// The path segment after `batch/`.
    pub fn path(self) -> &'static str {
        match self {
            WriteOp::Upsert => "upsert",
            WriteOp::Update => "update",
            WriteOp::Create => "create",
        }
    }
}

/// What to do with one chunk's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<O> {
    /// One outcome per input of the chunk, in chunk order.
    Outcomes(Vec<O>),
    /// HubSpot named the inputs that failed the whole request: reject those, resend the rest
    /// (positions in the chunk).
    RejectAndResend { rejected: Vec<(usize, O)>, resend: Vec<usize> },
    /// The whole chunk failed for an input HubSpot did not name: split it in halves and resend.
    Bisect,
    /// Not a per-input matter (auth, unknown object type, HTML error page, server error): the
    /// caller turns the answer into an error.
    Fail,
}

/// Messages of whole-batch errors that are about the request, not one input: bisecting them
/// would only repeat the same error once per input.
fn is_request_level(e: &ApiError) -> bool {
    let m = e.message.to_ascii_lowercase();
    m.contains("non-unique")
        || m.contains("invalid input json")
        || m.contains("unable to infer object type")
        || m.contains("unknown object type")
        || m.contains("maximum number of inputs")
}

/// Reads a failed (non-2xx) answer of a batch that can be bisected.
fn failed_batch_verdict<I, O>(
    status: u16,
    body: &str,
    chunk: &[&I],
    bisect_conflicts: bool,
    named: impl Fn(&ApiError) -> Vec<usize>,
    reject: impl Fn(&I, &str, &str) -> O,
) -> Verdict<O> {
    let parsed = ApiError::parse(body);
    let per_input = match status {
        400 => true,
        409 => bisect_conflicts,
        // A 404 names missing records only when HubSpot says so in JSON; an HTML page or
        // another category means a wrong path or object type.
        404 => parsed.as_ref().is_some_and(|e| e.category.as_deref() == Some("OBJECT_NOT_FOUND")),
        _ => false,
    };
    if !per_input || chunk.is_empty() {
        return Verdict::Fail;
    }
    let err = parsed.unwrap_or_else(|| ApiError { message: super::errors::excerpt(body, ""), ..ApiError::default() });
    let code = err.code_or(&format!("HTTP_{status}"));
    let message = err.best_message();
    if is_request_level(&err) || chunk.len() == 1 {
        return Verdict::Outcomes(chunk.iter().map(|i| reject(i, &code, &message)).collect());
    }
    let mut positions = named(&err);
    positions.sort_unstable();
    positions.dedup();
    positions.retain(|p| *p < chunk.len());
    if !positions.is_empty() && positions.len() < chunk.len() {
        let rejected = positions.iter().map(|p| (*p, reject(chunk[*p], &code, &message))).collect();
        let named: HashSet<usize> = positions.into_iter().collect();
        let resend = (0..chunk.len()).filter(|p| !named.contains(p)).collect();
        return Verdict::RejectAndResend { rejected, resend };
    }
    Verdict::Bisect
}

fn rejected(input: &WriteInput, code: &str, message: &str) -> WriteOutcome {
    WriteOutcome::Rejected { trace_id: input.trace_id.clone(), code: code.to_string(), message: message.to_string() }
}

/// Positions named by an error's `objectWriteTraceId` context (our positional wire ids).
fn traced_positions(err: &ApiError, len: usize) -> Vec<usize> {
    err.context_values("objectWriteTraceId")
        .iter()
        .filter_map(|t| t.parse::<usize>().ok())
        .filter(|p| *p < len)
        .collect()
}

/// Positions whose id appears in an error's `ids` context (e.g. OBJECT_NOT_FOUND).
fn id_positions(err: &ApiError, chunk: &[&WriteInput], id_property: Option<&str>) -> Vec<usize> {
    let ids: HashSet<String> = err.context_values("ids").iter().map(|v| dedupe_key(v, id_property)).collect();
    if ids.is_empty() {
        return Vec::new();
    }
    chunk
        .iter()
        .enumerate()
        .filter(|(_, input)| input.id.as_deref().is_some_and(|id| ids.contains(&dedupe_key(id, id_property))))
        .map(|(p, _)| p)
        .collect()
}

/// Reads the answer to one batch write chunk.
pub fn interpret_write(
    op: WriteOp,
    id_property: Option<&str>,
    status: u16,
    body: &str,
    chunk: &[&WriteInput],
) -> Verdict<WriteOutcome> {
    if !(200..300).contains(&status) {
        return failed_batch_verdict(
            status,
            body,
            chunk,
            true,
            |err| {
                let mut p = traced_positions(err, chunk.len());
                p.extend(id_positions(err, chunk, id_property));
                p
            },
            rejected,
        );
    }
    match serde_json::from_str::<Value>(body) {
        Ok(value) if value.is_object() => Verdict::Outcomes(map_write_results(op, id_property, &value, chunk)),
        _ => Verdict::Fail,
    }
}

/// Maps a 200/201/207 batch answer to one outcome per input.
pub fn map_write_results(
    op: WriteOp,
    id_property: Option<&str>,
    answer: &Value,
    chunk: &[&WriteInput],
) -> Vec<WriteOutcome> {
    let n = chunk.len();
    let mut out: Vec<Option<WriteOutcome>> = vec![None; n];
    let mut unmatched_results: Vec<(String, bool)> = Vec::new();

    let by_key: HashMap<String, usize> = chunk
        .iter()
        .enumerate()
        .filter_map(|(p, i)| i.id.as_deref().map(|id| (dedupe_key(id, id_property), p)))
        .collect();

    for result in answer.get("results").and_then(Value::as_array).into_iter().flatten() {
        let Some(id) = result.get("id").and_then(value_to_string) else {
            continue;
        };
        let created = match op {
            WriteOp::Create => true,
            WriteOp::Update => false,
            WriteOp::Upsert => result.get("new").and_then(Value::as_bool).unwrap_or(false),
        };
        let mut position = result
            .get("objectWriteTraceId")
            .and_then(value_to_string)
            .and_then(|t| t.parse::<usize>().ok())
            .filter(|p| *p < n);
        if position.is_none() {
            // Fall back on the id itself: the record id for update, the unique value for upsert.
            let key = match op {
                WriteOp::Update => Some(id.clone()),
                WriteOp::Upsert => id_property.and_then(|p| result.get("properties")?.get(p)).and_then(value_to_string),
                WriteOp::Create => None,
            };
            position = key.and_then(|k| by_key.get(&dedupe_key(&k, id_property)).copied());
        }
        match position {
            Some(p) if out[p].is_none() => {
                out[p] = Some(WriteOutcome::Written { trace_id: chunk[p].trace_id.clone(), id, created });
            }
            _ => unmatched_results.push((id, created)),
        }
    }

    let mut unattributed: Vec<ApiError> = Vec::new();
    for entry in answer.get("errors").and_then(Value::as_array).into_iter().flatten() {
        let err = ApiError::from_value(entry);
        let mut positions = traced_positions(&err, n);
        if positions.is_empty() {
            positions = id_positions(&err, chunk, id_property);
        }
        if positions.is_empty() {
            unattributed.push(err);
            continue;
        }
        let code = err.code_or("UNKNOWN_ERROR");
        let message = err.best_message();
        for p in positions {
            if out[p].is_none() {
                out[p] = Some(rejected(chunk[p], &code, &message));
            }
        }
    }

    // One result and one input left over: they belong together.
    let missing: Vec<usize> = (0..n).filter(|p| out[*p].is_none()).collect();
    if missing.len() == 1 && unmatched_results.len() == 1 {
        let (id, created) = unmatched_results.remove(0);
        let p = missing[0];
        out[p] = Some(WriteOutcome::Written { trace_id: chunk[p].trace_id.clone(), id, created });
    }

    out.into_iter()
        .enumerate()
        .map(|(p, o)| {
            o.unwrap_or_else(|| match unattributed.first() {
                Some(err) => rejected(
                    chunk[p],
                    &err.code_or("UNKNOWN_ERROR"),
                    &format!(
                        "HubSpot reported an error without naming the input, and no result for \
                         this one: {}",
                        err.best_message()
                    ),
                ),
                None if op == WriteOp::Create => rejected(
                    chunk[p],
                    outcome_codes::DELIVERY_UNCERTAIN,
                    "HubSpot acknowledged the batch but returned no result for this input; it may \
                     or may not have been created.",
                ),
                None => rejected(
                    chunk[p],
                    outcome_codes::NO_RESULT,
                    "HubSpot acknowledged the batch but returned no result for this input (a \
                     merged or deleted record?).",
                ),
            })
        })
        .collect()
}

fn assoc_rejected(input: &AssociationInput, code: &str, message: &str) -> AssocOutcome {
    AssocOutcome::Rejected { trace: input.trace.clone(), code: code.to_string(), message: message.to_string() }
}

/// An id from an association answer: `fromObjectId` / `toObjectId` (number or string) or
/// `from.id` / `to.id`.
fn assoc_side(result: &Value, flat: &str, nested: &str) -> Option<String> {
    result.get(flat).and_then(value_to_string).or_else(|| result.get(nested)?.get("id").and_then(value_to_string))
}

/// Positions of association inputs an error names: context lists of from/to ids, an `ids`
/// list, or both ids appearing in the message.
fn assoc_positions(err: &ApiError, chunk: &[&AssociationInput]) -> Vec<usize> {
    let mut froms: Vec<String> = Vec::new();
    let mut tos: Vec<String> = Vec::new();
    let mut ids: HashSet<String> = HashSet::new();
    for (key, values) in &err.context {
        let k = key.to_ascii_lowercase();
        if k.starts_with("from") {
            froms.extend(values.iter().cloned());
        } else if k.starts_with("to") {
            tos.extend(values.iter().cloned());
        } else if matches!(k.as_str(), "ids" | "id" | "objectid" | "objectids" | "recordid" | "recordids") {
            ids.extend(values.iter().cloned());
        }
    }
    let mut positions: Vec<usize> = Vec::new();
    if !froms.is_empty() && froms.len() == tos.len() {
        let pairs: HashSet<(&str, &str)> =
            froms.iter().map(String::as_str).zip(tos.iter().map(String::as_str)).collect();
        positions.extend(
            chunk
                .iter()
                .enumerate()
                .filter(|(_, i)| pairs.contains(&(i.from_id.as_str(), i.to_id.as_str())))
                .map(|(p, _)| p),
        );
    } else if !froms.is_empty() || !tos.is_empty() {
        let froms: HashSet<&str> = froms.iter().map(String::as_str).collect();
        let tos: HashSet<&str> = tos.iter().map(String::as_str).collect();
        positions.extend(
            chunk
                .iter()
                .enumerate()
                .filter(|(_, i)| {
                    (froms.is_empty() || froms.contains(i.from_id.as_str()))
                        && (tos.is_empty() || tos.contains(i.to_id.as_str()))
                })
                .map(|(p, _)| p),
        );
    }
    if positions.is_empty() && !ids.is_empty() {
        positions.extend(
            chunk
                .iter()
                .enumerate()
                .filter(|(_, i)| ids.contains(&i.from_id) || ids.contains(&i.to_id))
                .map(|(p, _)| p),
        );
    }
    if positions.is_empty() {
        let tokens: HashSet<&str> = err
            .message
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
            .filter(|t| !t.is_empty())
            .collect();
        positions.extend(
            chunk
                .iter()
                .enumerate()
                .filter(|(_, i)| tokens.contains(i.from_id.as_str()) && tokens.contains(i.to_id.as_str()))
                .map(|(p, _)| p),
        );
    }
    positions
}

/// Reads the answer to one association batch create chunk.
pub fn interpret_associations(status: u16, body: &str, chunk: &[&AssociationInput]) -> Verdict<AssocOutcome> {
    if !(200..300).contains(&status) {
        return failed_batch_verdict(status, body, chunk, false, |err| assoc_positions(err, chunk), assoc_rejected);
    }
    let Ok(answer) = serde_json::from_str::<Value>(body) else {
        // A 2xx without a readable body: HubSpot accepted the batch.
        if body.trim().is_empty() {
            return Verdict::Outcomes(
                chunk.iter().map(|i| AssocOutcome::Associated { trace: i.trace.clone() }).collect(),
            );
        }
        return Verdict::Fail;
    };
    let n = chunk.len();
    let mut out: Vec<Option<AssocOutcome>> = vec![None; n];
    let by_pair: HashMap<(&str, &str), usize> =
        chunk.iter().enumerate().map(|(p, i)| ((i.from_id.as_str(), i.to_id.as_str()), p)).collect();
    for result in answer.get("results").and_then(Value::as_array).into_iter().flatten() {
        let from = assoc_side(result, "fromObjectId", "from");
        let to = assoc_side(result, "toObjectId", "to");
        if let (Some(from), Some(to)) = (from, to) {
            if let Some(p) = by_pair.get(&(from.as_str(), to.as_str())) {
                out[*p] = Some(AssocOutcome::Associated { trace: chunk[*p].trace.clone() });
            }
        }
    }
    let confirmed: Vec<bool> = out.iter().map(Option::is_some).collect();
    let mut unattributed: Vec<ApiError> = Vec::new();
    for entry in answer.get("errors").and_then(Value::as_array).into_iter().flatten() {
        let err = ApiError::from_value(entry);
        // An id may name a record on either side, so only inputs without a result take the
        // error: a pair HubSpot confirmed stays confirmed.
        let positions: Vec<usize> = assoc_positions(&err, chunk).into_iter().filter(|p| !confirmed[*p]).collect();
        if positions.is_empty() {
            unattributed.push(err);
            continue;
        }
        let code = err.code_or("UNKNOWN_ERROR");
        let message = err.best_message();
        for p in positions {
            if out[p].is_none() {
                out[p] = Some(assoc_rejected(chunk[p], &code, &message));
            }
        }
    }
    Verdict::Outcomes(
        out.into_iter()
            .enumerate()
            .map(|(p, o)| {
                o.unwrap_or_else(|| match unattributed.first() {
                    // Without a result and with an error HubSpot did not tie to an input, the
                    // safe reading is "not associated": the next run sends it again.
                    Some(err) => assoc_rejected(
                        chunk[p],
                        &err.code_or("UNKNOWN_ERROR"),
                        &format!(
                            "HubSpot reported an error without naming the pair, and no result \
                             for this one: {}",
                            err.best_message()
                        ),
                    ),
                    None => AssocOutcome::Associated { trace: chunk[p].trace.clone() },
                })
            })
            .collect(),
    )
}

fn results_array(body: &str) -> Result<Vec<Value>, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    match value.get("results") {
        Some(Value::Array(items)) => Ok(items.clone()),
        _ => Err("the body has no `results` list".to_string()),
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(value_to_string).unwrap_or_default()
}

fn flag(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool).unwrap_or(false)
}

/// Reads `GET /crm/properties/{ver}/{type}`.
pub fn parse_properties(body: &str) -> Result<Vec<PropertyInfo>, String> {
    Ok(results_array(body)?.iter().filter(|p| p.get("name").is_some()).map(property_info).collect())
}

/// Reads one `Property` (the answer of a property create).
pub fn parse_property(body: &str) -> Result<PropertyInfo, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    if v.get("name").and_then(Value::as_str).is_none() {
        return Err("the property has no name".to_string());
    }
    Ok(property_info(&v))
}

fn property_info(p: &Value) -> PropertyInfo {
    PropertyInfo {
        name: text(p, "name"),
        label: text(p, "label"),
        type_: text(p, "type"),
        field_type: text(p, "fieldType"),
        has_unique_value: flag(p.get("hasUniqueValue")),
        read_only_value: flag(p.get("modificationMetadata").and_then(|m| m.get("readOnlyValue")))
            || flag(p.get("calculated")),
        options: p
            .get("options")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("value").and_then(value_to_string))
            .collect(),
        hubspot_defined: flag(p.get("hubspotDefined")),
    }
}

/// Reads `GET /crm-object-schemas/{ver}/schemas`.
pub fn parse_schemas(body: &str) -> Result<Vec<SchemaInfo>, String> {
    Ok(results_array(body)?
        .iter()
        .map(|s| SchemaInfo {
            object_type_id: text(s, "objectTypeId"),
            name: text(s, "name"),
            fully_qualified_name: text(s, "fullyQualifiedName"),
            labels_plural: s.get("labels").and_then(|l| l.get("plural")).and_then(Value::as_str).map(str::to_string),
        })
        .collect())
}

/// Reads `GET /crm/associations/{ver}/{from}/{to}/labels`.
pub fn parse_labels(body: &str) -> Result<Vec<AssociationLabel>, String> {
    results_array(body)?
        .iter()
        .map(|l| {
            let type_id = l
                .get("typeId")
                .and_then(value_to_string)
                .and_then(|t| t.parse::<u32>().ok())
                .ok_or_else(|| format!("a label has no numeric typeId: {l}"))?;
            Ok(AssociationLabel {
                category: text(l, "category"),
                type_id,
                label: l.get("label").and_then(Value::as_str).map(str::to_string),
            })
        })
        .collect()
}

/// Reads the id of a single record answer (`{"id": "...", "properties": {...}}`); the id may be
/// a string or a number, and `properties.hs_object_id` stands in for a missing `id`.
pub fn parse_record_id(body: &str) -> Result<String, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    value
        .get("id")
        .and_then(value_to_string)
        .or_else(|| value.get("properties")?.get("hs_object_id").and_then(value_to_string))
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| "the record has no id".to_string())
}

/// Reads a list answer: `{"list": {...}}` (or the list object itself).
pub fn parse_list(body: &str) -> Result<ListInfo, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let list = value.get("list").unwrap_or(&value);
    let list_id = list.get("listId").and_then(value_to_string).ok_or_else(|| "the answer has no listId".to_string())?;
    Ok(ListInfo {
        list_id,
        name: text(list, "name"),
        object_type_id: text(list, "objectTypeId"),
        processing_type: text(list, "processingType"),
        size: list
            .get("size")
            .and_then(value_to_string)
            .or_else(|| list.get("additionalProperties")?.get("hs_list_size").and_then(value_to_string))
            .and_then(|s| s.parse().ok()),
    })
}

fn string_list(value: &Value, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .find_map(|k| value.get(*k).and_then(Value::as_array))
        .into_iter()
        .flatten()
        .filter_map(value_to_string)
        .collect()
}

/// Reads a memberships add/remove answer. HubSpot spells the added list `recordsIdsAdded`;
/// older docs say `recordIdsAdded`; empty lists may be left out.
pub fn parse_membership_change(body: &str) -> MembershipChange {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    MembershipChange {
        added: string_list(&value, &["recordsIdsAdded", "recordIdsAdded"]),
        removed: string_list(&value, &["recordIdsRemoved", "recordsIdsRemoved"]),
        missing: string_list(&value, &["recordIdsMissing", "recordsIdsMissing"]),
    }
}

/// The `paging.next.after` cursor of a page, if there is a next page.
fn next_after(value: &Value) -> Option<String> {
    value.get("paging")?.get("next")?.get("after").and_then(value_to_string).filter(|a| !a.is_empty())
}

/// Reads one memberships page: record ids and the next cursor.
pub fn parse_members_page(body: &str) -> Result<(Vec<String>, Option<String>), String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let ids = value
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| match r {
            Value::Object(_) => r.get("recordId").and_then(value_to_string),
            other => value_to_string(other),
        })
        .collect();
    Ok((ids, next_after(&value)))
}

/// One search page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// (property value as HubSpot returns it, record id).
    pub hits: Vec<(String, String)>,
    pub total: Option<u64>,
    pub after: Option<String>,
}

/// Reads one search page for `property`.
pub fn parse_search_page(body: &str, property: &str) -> Result<SearchPage, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let results =
        value.get("results").and_then(Value::as_array).ok_or_else(|| "the body has no `results` list".to_string())?;
    let hits = results
        .iter()
        .filter_map(|r| {
            let id = r.get("id").and_then(value_to_string)?;
            let v = r.get("properties")?.get(property).and_then(value_to_string)?;
            Some((v, id))
        })
        .collect();
    Ok(SearchPage { hits, total: value.get("total").and_then(Value::as_u64), after: next_after(&value) })
}

/// Records found by a batch read, (value, record id), and the errors other than "not found".
pub type ReadResults = (Vec<(String, String)>, Vec<ApiError>);

/// Reads a batch read answer: (requested value, record id) for every record found. Values come
/// back as HubSpot stores them (emails lowercased); they are matched to the requested values
/// case-insensitively and returned as requested. `OBJECT_NOT_FOUND` errors are the normal
/// "absent" answer; other errors are returned for logging.
pub fn parse_read_results(body: &str, id_property: &str, requested: &[String]) -> Result<ReadResults, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let by_lower: HashMap<String, &String> = requested.iter().map(|v| (v.to_lowercase(), v)).collect();
    let record_ids = super::requests::is_record_id_property(id_property);
    let mut found = Vec::new();
    for r in value.get("results").and_then(Value::as_array).into_iter().flatten() {
        let Some(id) = r.get("id").and_then(value_to_string) else {
            continue;
        };
        let returned = if record_ids {
            Some(id.clone())
        } else {
            r.get("properties").and_then(|p| p.get(id_property)).and_then(value_to_string)
        };
        let Some(returned) = returned else {
            continue;
        };
        let value = by_lower.get(&returned.to_lowercase()).map(|v| (*v).clone()).unwrap_or(returned);
        found.push((value, id));
    }
    let errors = value
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(ApiError::from_value)
        .filter(|e| e.category.as_deref() != Some("OBJECT_NOT_FOUND"))
        .collect();
    Ok((found, errors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(trace: &str, id: Option<&str>) -> WriteInput {
        WriteInput { trace_id: trace.into(), id: id.map(str::to_string), properties: Default::default() }
    }

    fn written(trace: &str, id: &str, created: bool) -> WriteOutcome {
        WriteOutcome::Written { trace_id: trace.into(), id: id.into(), created }
    }

    #[test]
    fn shuffled_upsert_results_map_by_trace_id() {
        let inputs = [input("pk-a", Some("a@x.com")), input("pk-b", Some("b@x.com")), input("pk-c", Some("c@x.com"))];
        let chunk: Vec<&WriteInput> = inputs.iter().collect();
        let body = json!({"status": "COMPLETE", "results": [
            {"id": "303", "objectWriteTraceId": "2", "new": true, "properties": {"email": "c@x.com"}},
            {"id": "101", "objectWriteTraceId": "0", "new": false, "properties": {"email": "a@x.com"}},
            {"id": 202, "objectWriteTraceId": "1", "new": false, "properties": {}}
        ]})
        .to_string();
        assert_eq!(
            interpret_write(WriteOp::Upsert, Some("email"), 200, &body, &chunk),
            Verdict::Outcomes(vec![
                written("pk-a", "101", false),
                written("pk-b", "202", false),
                written("pk-c", "303", true)
            ])
        );
    }

    #[test]
    fn upsert_without_trace_echo_maps_by_id_property() {
        let inputs = [input("pk-a", Some("A@x.com")), input("pk-b", Some("b@x.com"))];
        let chunk: Vec<&WriteInput> = inputs.iter().collect();
        let body = json!({"results": [
            {"id": "2", "new": true, "properties": {"email": "b@x.com"}},
            {"id": "1", "new": false, "properties": {"email": "a@x.com"}}
        ]})
        .to_string();
        assert_eq!(
            interpret_write(WriteOp::Upsert, Some("email"), 200, &body, &chunk),
            Verdict::Outcomes(vec![written("pk-a", "1", false), written("pk-b", "2", true)])
        );
    }

    #[test]
    fn partial_207_rejects_only_the_bad_input() {
        let inputs =
            [input("pk-a", Some("a@x.com")), input("pk-b", Some("not-an-email")), input("pk-c", Some("c@x.com"))];
        let chunk: Vec<&WriteInput> = inputs.iter().collect();
        let body = json!({"status": "COMPLETE",
            "results": [{"id": "3", "objectWriteTraceId": "2", "new": true}, {"id": "1", "objectWriteTraceId": "0", "new": false}],
            "numErrors": 1,
            "errors": [{"status": "error", "category": "VALIDATION_ERROR",
                "message": "Property values were not valid: [{\"isValid\":false,\"message\":\"Email address not-an-email is invalid\",\"error\":\"INVALID_EMAIL\",\"name\":\"email\"}]",
                "context": {"objectWriteTraceId": ["1"]}}]})
        .to_string();
        let Verdict::Outcomes(out) = interpret_write(WriteOp::Upsert, Some("email"), 207, &body, &chunk) else {
            panic!("expected outcomes");
        };
        assert_eq!(out[0], written("pk-a", "1", false));
        assert_eq!(
            out[1],
            WriteOutcome::Rejected {
                trace_id: "pk-b".into(),
                code: "INVALID_EMAIL".into(),
                message: "Email address not-an-email is invalid".into()
            }
        );
        assert_eq!(out[2], written("pk-c", "3", true));
    }

    #[test]
    fn update_object_not_found_by_ids() {
        let inputs = [input("pk-a", Some("11")), input("pk-b", Some("12"))];
        let chunk: Vec<&WriteInput> = inputs.iter().collect();
        let body = json!({"status": "COMPLETE", "results": [{"id": "11", "properties": {}}],
            "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Could not get some CONTACT objects", "context": {"ids": ["12"]}}]})
        .to_string();
        let Verdict::Outcomes(out) = interpret_write(WriteOp::Update, None, 207, &body, &chunk) else {
            panic!("expected outcomes");
        };
        assert_eq!(out[0], written("pk-a", "11", false));
        assert_eq!(out[1].code(), Some("OBJECT_NOT_FOUND"));
    }

    #[test]
    fn create_results_are_created_and_missing_ones_uncertain() {
        let inputs = [input("pk-a", None), input("pk-b", None)];
        let chunk: Vec<&WriteInput> = inputs.iter().collect();
        let body = json!({"results": [{"id": "9", "objectWriteTraceId": "1"}]}).to_string();
        let Verdict::Outcomes(out) = interpret_write(WriteOp::Create, None, 201, &body, &chunk) else {
            panic!("expected outcomes");
        };
        assert_eq!(out[0].code(), Some("DELIVERY_UNCERTAIN"));
        assert_eq!(out[1], written("pk-b", "9", true));
        // A single unmatched result pairs with the single input left.
        let body = json!({"results": [{"id": "9"}]}).to_string();
        assert_eq!(
            interpret_write(WriteOp::Create, None, 201, &body, &chunk[..1]),
            Verdict::Outcomes(vec![written("pk-a", "9", true)])
        );
    }

    #[test]
    fn whole_batch_failures_bisect_or_reject() {
        let inputs = [input("pk-a", Some("1")), input("pk-b", Some("2"))];
        let chunk: Vec<&WriteInput> = inputs.iter().collect();
        let invalid = r#"{"status":"error","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"x was not one of the allowed options\",\"error\":\"INVALID_OPTION\",\"name\":\"stage\"}]","correlationId":"c","category":"VALIDATION_ERROR"}"#;
        assert_eq!(interpret_write(WriteOp::Update, None, 400, invalid, &chunk), Verdict::Bisect);
        assert_eq!(
            interpret_write(WriteOp::Update, None, 400, invalid, &chunk[1..]),
            Verdict::Outcomes(vec![WriteOutcome::Rejected {
                trace_id: "pk-b".into(),
                code: "INVALID_OPTION".into(),
                message: "x was not one of the allowed options".into()
            }])
        );
        let conflict = r#"{"status":"error","message":"Contact already exists. Existing ID: 377","correlationId":"c","category":"CONFLICT"}"#;
        assert_eq!(interpret_write(WriteOp::Create, None, 409, conflict, &chunk), Verdict::Bisect);
        // A request-level error is not bisected: every input gets it.
        let non_unique = r#"{"status":"error","message":"Unable to perform update/upsert by non-unique 0-2 property domain","category":"VALIDATION_ERROR"}"#;
        let Verdict::Outcomes(out) = interpret_write(WriteOp::Upsert, Some("domain"), 400, non_unique, &chunk) else {
            panic!("expected outcomes");
        };
        assert!(out.iter().all(|o| o.code() == Some("VALIDATION_ERROR")));
        // A 400 naming inputs rejects them and resends the rest.
        let dup = r#"{"status":"error","message":"Duplicate IDs found in batch input: [2]. IDs must be unique","context":{"ids":["2"]},"category":"VALIDATION_ERROR"}"#;
        match interpret_write(WriteOp::Update, None, 400, dup, &chunk) {
            Verdict::RejectAndResend { rejected, resend } => {
                assert_eq!(rejected.len(), 1);
                assert_eq!(rejected[0].0, 1);
                assert_eq!(resend, vec![0]);
            }
            other => panic!("{other:?}"),
        }
        // HTML 404s, auth failures and server errors are not per input.
        assert_eq!(interpret_write(WriteOp::Update, None, 404, "<html>nope</html>", &chunk), Verdict::Fail);
        assert_eq!(interpret_write(WriteOp::Update, None, 401, "{}", &chunk), Verdict::Fail);
        assert_eq!(interpret_write(WriteOp::Update, None, 500, "{}", &chunk), Verdict::Fail);
        assert_eq!(interpret_write(WriteOp::Update, None, 200, "<html>", &chunk), Verdict::Fail);
        // A non-JSON 400 on a single input still becomes a rejection.
        assert_eq!(
            interpret_write(WriteOp::Update, None, 400, "bad", &chunk[..1]),
            Verdict::Outcomes(vec![WriteOutcome::Rejected {
                trace_id: "pk-a".into(),
                code: "HTTP_400".into(),
                message: "bad".into()
            }])
        );
    }

    fn assoc(trace: &str, from: &str, to: &str) -> AssociationInput {
        AssociationInput {
            trace: trace.into(),
            from_id: from.into(),
            to_id: to.into(),
            types: vec![("HUBSPOT_DEFINED".into(), 279)],
        }
    }

    #[test]
    fn association_results_accept_numeric_ids_and_map_errors() {
        let inputs = [assoc("a", "1", "10"), assoc("b", "2", "20"), assoc("c", "3", "30")];
        let chunk: Vec<&AssociationInput> = inputs.iter().collect();
        let body = json!({"status": "COMPLETE",
            "results": [
                {"fromObjectTypeId": "0-1", "fromObjectId": 3, "toObjectTypeId": "0-2", "toObjectId": 30, "labels": []},
                {"fromObjectTypeId": "0-1", "fromObjectId": "1", "toObjectTypeId": "0-2", "toObjectId": "10", "labels": []}
            ],
            "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "No company with id 20", "context": {"toObjectId": ["20"], "fromObjectId": ["2"]}}]})
        .to_string();
        let Verdict::Outcomes(out) = interpret_associations(207, &body, &chunk) else {
            panic!("expected outcomes");
        };
        assert!(out[0].is_associated());
        assert_eq!(
            out[1],
            AssocOutcome::Rejected {
                trace: "b".into(),
                code: "OBJECT_NOT_FOUND".into(),
                message: "No company with id 20".into()
            }
        );
        assert!(out[2].is_associated());

        // Attribution by ids in the message.
        let body = json!({"results": [],
            "errors": [{"category": "VALIDATION_ERROR", "message": "Association from 2 to 20 is not allowed"}]})
        .to_string();
        let Verdict::Outcomes(out) = interpret_associations(207, &body, &chunk[1..2]) else {
            panic!("expected outcomes");
        };
        assert!(!out[0].is_associated());
        assert_eq!(interpret_associations(400, "{\"message\":\"bad\"}", &chunk), Verdict::Bisect);
    }

    #[test]
    fn reads_properties() {
        let body = json!({"results": [
            {"name": "email", "label": "Email", "type": "string", "fieldType": "text", "hasUniqueValue": false,
             "hubspotDefined": true, "modificationMetadata": {"readOnlyValue": false, "archivable": false}},
            {"name": "stage", "label": "Stage", "type": "enumeration", "fieldType": "select",
             "options": [{"label": "Lead", "value": "lead"}, {"label": "Customer", "value": "customer"}]},
            {"name": "score", "label": "Score", "type": "number", "fieldType": "calculation_equation", "calculated": true},
            {"name": "ext_id", "label": "Ext", "type": "string", "fieldType": "text", "hasUniqueValue": true}
        ]})
        .to_string();
        let props = parse_properties(&body).unwrap();
        assert_eq!(props.len(), 4);
        assert!(props[0].hubspot_defined && !props[0].read_only_value);
        assert_eq!(props[1].options, vec!["lead".to_string(), "customer".to_string()]);
        assert!(props[2].read_only_value);
        assert!(props[3].has_unique_value && !props[3].hubspot_defined);
        assert!(parse_properties("<html>").is_err());
    }

    #[test]
    fn reads_schemas_labels_and_lists() {
        let schemas = parse_schemas(
            &json!({"results": [{"objectTypeId": "2-123", "name": "pets", "fullyQualifiedName": "p99_pets", "labels": {"singular": "Pet", "plural": "Pets"}}]}).to_string(),
        )
        .unwrap();
        assert_eq!(
            schemas,
            vec![SchemaInfo {
                object_type_id: "2-123".into(),
                name: "pets".into(),
                fully_qualified_name: "p99_pets".into(),
                labels_plural: Some("Pets".into())
            }]
        );
        let labels = parse_labels(
            &json!({"results": [{"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"}, {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null}]}).to_string(),
        )
        .unwrap();
        assert_eq!(labels[1], AssociationLabel { category: "HUBSPOT_DEFINED".into(), type_id: 279, label: None });
        let list = parse_list(
            &json!({"list": {"listId": 42, "name": "VIP", "objectTypeId": "0-1", "processingType": "MANUAL", "additionalProperties": {"hs_list_size": "7"}}}).to_string(),
        )
        .unwrap();
        assert_eq!(list.list_id, "42");
        assert_eq!(list.size, Some(7));
        assert!(parse_list("{}").is_err());
    }

    #[test]
    fn reads_a_single_record_id() {
        assert_eq!(
            parse_record_id(r#"{"id":"56514030382","properties":{"hs_object_id":"56514030382"}}"#).unwrap(),
            "56514030382"
        );
        assert_eq!(parse_record_id(r#"{"id":7,"properties":{}}"#).unwrap(), "7");
        assert_eq!(parse_record_id(r#"{"properties":{"hs_object_id":"9"}}"#).unwrap(), "9");
        assert!(parse_record_id("<html>").is_err());
        assert!(parse_record_id(r#"{"properties":{}}"#).is_err());
    }

    #[test]
    fn reads_membership_answers_in_both_spellings() {
        let c = parse_membership_change(r#"{"recordsIdsAdded":["1",2],"recordIdsMissing":["9"]}"#);
        assert_eq!(c.added, vec!["1".to_string(), "2".to_string()]);
        assert_eq!(c.missing, vec!["9".to_string()]);
        let c = parse_membership_change(r#"{"recordIdsAdded":["3"]}"#);
        assert_eq!(c.added, vec!["3".to_string()]);
        assert_eq!(parse_membership_change(""), MembershipChange::default());
        let (ids, after) = parse_members_page(
            r#"{"results":[{"recordId":"5","membershipTimestamp":"t"},{"recordId":6}],"paging":{"next":{"after":"abc"}}}"#,
        )
        .unwrap();
        assert_eq!(ids, vec!["5".to_string(), "6".to_string()]);
        assert_eq!(after.as_deref(), Some("abc"));
        let (_, after) = parse_members_page(r#"{"results":[]}"#).unwrap();
        assert_eq!(after, None);
    }

    #[test]
    fn reads_search_and_read_answers() {
        let page = parse_search_page(
            r#"{"total":2,"results":[{"id":"1","properties":{"email":"a@x.com"}},{"id":"2","properties":{"email":null}}],"paging":{"next":{"after":"200"}}}"#,
            "email",
        )
        .unwrap();
        assert_eq!(page.hits, vec![("a@x.com".to_string(), "1".to_string())]);
        assert_eq!(page.total, Some(2));
        assert_eq!(page.after.as_deref(), Some("200"));

        let (found, errors) = parse_read_results(
            r#"{"status":"COMPLETE","results":[{"id":"7","properties":{"email":"a@x.com"}}],"numErrors":1,
               "errors":[{"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects","context":{"ids":["b@x.com"]}}]}"#,
            "email",
            &["A@x.com".to_string(), "b@x.com".to_string()],
        )
        .unwrap();
        assert_eq!(found, vec![("A@x.com".to_string(), "7".to_string())]);
        assert!(errors.is_empty());
    }
}
