//! Associations and list membership, delivered after the records of the same run and diffed
//! like them: only associations not yet delivered are sent (syncing never removes one), and
//! only list membership changes are sent.
//!
//! They start once every record request of the run has been answered and the journal merged,
//! so both ends of an association, and each list member, have ids. Lookups of associated
//! records, association batches and list membership requests go through the run's pipeline
//! (`pipeline.rs`): several in flight, each answer recorded in its own transaction as it
//! arrives. Each batch holds distinct associations (or members), so no two requests in flight
//! carry the same one. On a stop, no new request starts and the answers in flight are recorded;
//! `links_due` keeps the records whose links are not all through for the next run.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::blocking::blocking;
use super::object::{object_meta, resolve_object_name, ObjectMeta};
use super::pipeline::Pipeline;
use super::SyncError;
use crate::config::{AssociationConfig, SyncSpec};
use crate::state::{LinkCandidate, LinkFailure, Run, StateStore};
use hubspot_client::{
    outcome_codes, AssocOutcome, AssociationInput, AssociationLabel, HubSpotClient, HubSpotError, MembershipChange,
};
use hubspot_model::objects;

mod vanished;

/// Associations per v4 batch create request (HubSpot's documented limit).
pub const ASSOCIATION_BATCH_SIZE: usize = hubspot_client::ASSOCIATION_BATCH_LIMIT;
/// Association batches in flight at most (fewer when the account's `max_in_flight` is lower):
/// 32,000 links, enough to use a 190-per-10-s limit while HubSpot answers within 800 ms. Each
/// batch in flight holds its 2,000 links and their request (32 of them held about 70 MB while
/// the client copied each batch's inputs twice; it borrows them now).
const ASSOCIATION_BATCHES_IN_FLIGHT: usize = 16;
/// Record ids per list membership request (Lists v3 documents no maximum; v1 allowed 500).
pub const LIST_BATCH_SIZE: usize = hubspot_client::DEFAULT_LIST_BATCH_SIZE;
/// Values per lookup of associated records (batch read or search).
const LOOKUP_BATCH_SIZE: usize = 100;
const PAGE_ROWS: usize = 5_000;

/// One value of an association cell, with the labels asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkValue {
    pub value: String,
    pub labels: Vec<String>,
}

/// Parses one association cell: a value, a comma-separated list, a JSON array of values, a
/// `{ value, label }` object or an array of them. With `schema` (some row of the sync uses
/// `{ value, label }` objects), every row must use them.
pub fn parse_link_cell(cell: &str, schema: bool) -> Result<Vec<LinkValue>, String> {
    let text = cell.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let parsed = if text.starts_with('[') || text.starts_with('{') || text.starts_with('"') {
        serde_json::from_str::<Value>(text).ok()
    } else {
        None
    };
    let (values, uses_schema) = match parsed {
        Some(Value::Object(_)) => (vec![schema_object(parsed.as_ref().unwrap_or(&Value::Null))?], true),
        Some(Value::Array(items)) => {
            let objects = items.iter().filter(|v| v.is_object()).count();
            if objects > 0 && objects < items.len() {
                return Err("the array mixes plain values and { value, label } objects".into());
            }
            if objects > 0 {
                (items.iter().map(schema_object).collect::<Result<Vec<_>, _>>()?, true)
            } else {
                let mut values = Vec::new();
                for item in items.iter().filter(|i| !i.is_null()) {
                    let Some(v) = scalar(item) else { return Err(format!("`{item}` is not a string or a number")) };
                    if !v.trim().is_empty() {
                        values.push(LinkValue { value: v.trim().to_string(), labels: Vec::new() });
                    }
                }
                (values, false)
            }
        }
        Some(Value::String(inner)) => return parse_link_cell(&inner, schema),
        _ => (
            text.split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| LinkValue { value: v.to_string(), labels: Vec::new() })
                .collect(),
            false,
        ),
    };
    if schema && !uses_schema && !values.is_empty() {
        return Err("this row gives plain values, but other rows of the sync use { value, label } objects; \
                    every row must use the same schema"
            .into());
    }
    Ok(values)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn schema_object(v: &Value) -> Result<LinkValue, String> {
    let Some(map) = v.as_object() else { return Err(format!("`{v}` is not a {{ value, label }} object")) };
    if let Some(extra) = map.keys().find(|k| *k != "value" && *k != "label") {
        return Err(format!("unknown key `{extra}` (an association object has `value` and `label`)"));
    }
    let value = match map.get("value").and_then(scalar) {
        Some(value) if !value.trim().is_empty() => value.trim().to_string(),
        _ => return Err(format!("`{v}` has no `value` (a string or a number)")),
    };
    let labels = match map.get("label") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|l| l.as_str().map(|s| s.trim().to_string()).ok_or_else(|| format!("label `{l}` is not a string")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(format!("label `{other}` is not a string, an array of strings or null")),
    };
    Ok(LinkValue { value, labels })
}

/// The canonical form of a set of labels, as stored.
pub fn label_key(labels: &[String]) -> String {
    let mut sorted: Vec<String> = labels.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted.join("\n")
}

/// The stable key of an association rule in the state.
pub fn rule_key(rule: &AssociationConfig) -> String {
    format!("{}|{}|{}|{}", rule.to, rule.column, rule.match_property, rule.type_name.as_deref().unwrap_or(""))
}

/// An association rule resolved against the portal.
pub struct ResolvedRule {
    pub key: String,
    pub rule: AssociationConfig,
    pub target: ObjectMeta,
    /// Types sent when the row gives no label.
    pub default_types: Vec<(String, u32)>,
    /// Label name (lower-case) -> (category, type id).
    pub labels: HashMap<String, (String, u32)>,
    pub target_unique: bool,
}

impl ResolvedRule {
    /// The types for a set of labels, or the name of a label that does not exist.
    pub fn types_for(&self, labels: &[String]) -> Result<Vec<(String, u32)>, String> {
        if labels.is_empty() {
            return Ok(self.default_types.clone());
        }
        labels.iter().map(|l| self.labels.get(&l.to_lowercase()).cloned().ok_or_else(|| l.clone())).collect()
    }
}

/// Resolves every association rule of a sync: target object, its properties, labels and types.
pub async fn resolve_rules(
    client: &HubSpotClient,
    sync: &SyncSpec,
    from: &ObjectMeta,
) -> Result<Vec<ResolvedRule>, SyncError> {
    let mut rules = Vec::new();
    for (j, rule) in sync.associations.iter().enumerate() {
        let key_of = |field: &str| format!("{}.associations[{j}].{field}", sync.key);
        let target = resolve_object_name(client, sync, &rule.to, &key_of("to")).await?;
        if target.property(&rule.match_property).is_none() && rule.match_property != "hs_object_id" {
            return Err(SyncError::Config {
                sync: sync.name.clone(),
                key: key_of("match"),
                message: format!("property `{}` does not exist on {}", rule.match_property, rule.to),
            });
        }
        let api_labels: Vec<AssociationLabel> = client.association_labels(&from.path_name, &target.path_name).await?;
        let labels = api_labels
            .iter()
            .filter_map(|l| l.label.as_ref().map(|name| (name.to_lowercase(), (l.category.clone(), l.type_id))))
            .collect();
        let default_types = match &rule.type_name {
            Some(name) => {
                let defined = objects::DEFINED_ASSOCIATION_TYPES.iter().find(|t| {
                    (t.name == name || t.type_id.to_string() == *name)
                        && t.from_type_id == from.type_id
                        && t.to_type_id == target.type_id
                });
                let from_api = name.parse::<u32>().ok().and_then(|id| api_labels.iter().find(|l| l.type_id == id));
                match (defined, from_api) {
                    (Some(t), _) => vec![("HUBSPOT_DEFINED".to_string(), t.type_id)],
                    (None, Some(l)) => vec![(l.category.clone(), l.type_id)],
                    (None, None) => {
                        return Err(SyncError::Config {
                            sync: sync.name.clone(),
                            key: key_of("type"),
                            message: format!(
                                "association type `{name}` does not exist from {} to {}",
                                sync.object, rule.to
                            ),
                        })
                    }
                }
            }
            None => {
                let default = objects::default_association_type(&from.type_id, &target.type_id).or_else(|| {
                    api_labels.iter().find(|l| l.label.is_none() && l.category == "HUBSPOT_DEFINED").map(|l| l.type_id)
                });
                match default {
                    Some(id) => vec![("HUBSPOT_DEFINED".to_string(), id)],
                    None => {
                        return Err(SyncError::Config {
                            sync: sync.name.clone(),
                            key: key_of("to"),
                            message: format!("HubSpot has no association type from {} to {}", sync.object, rule.to),
                        })
                    }
                }
            }
        };
        let target_unique = target.is_unique(&rule.match_property);
        rules.push(ResolvedRule {
            key: rule_key(rule),
            rule: rule.clone(),
            target,
            default_types,
            labels,
            target_unique,
        });
    }
    Ok(rules)
}

/// Looks up associated records by value, 100 values per request (several in flight), and
/// remembers their ids as each answer arrives.
async fn look_up_targets(client: &HubSpotClient, store: &mut StateStore, rule: &ResolvedRule) -> Result<(), SyncError> {
    let values = blocking(|| store.unresolved_targets(&rule.key))?;
    let property = &rule.rule.match_property;
    let (object, path) = (rule.target.type_id.clone(), rule.target.path_name.clone());
    if property == "hs_object_id" {
        let found: Vec<(String, String)> = values.iter().map(|v| (v.clone(), v.clone())).collect();
        return blocking(|| store.remember_targets(&object, property, &found)).map_err(SyncError::from);
    }
    let mut flight: Pipeline<Result<Vec<(String, String)>, HubSpotError>> = Pipeline::new(client);
    let mut failure: Option<HubSpotError> = None;
    let mut remember =
        |answer: Result<Vec<(String, String)>, HubSpotError>, failure: &mut Option<HubSpotError>| match answer {
            Ok(found) => blocking(|| store.remember_targets(&object, property, &found)),
            Err(e) => {
                failure.get_or_insert(e);
                Ok(())
            }
        };
    for chunk in values.chunks(LOOKUP_BATCH_SIZE) {
        while flight.is_full() {
            if let Some(answer) = flight.next().await {
                remember(answer, &mut failure)?;
            }
        }
        if failure.is_some() || client.stopping() {
            break;
        }
        let (client, path, property, chunk) = (client.clone(), path.clone(), property.clone(), chunk.to_vec());
        let unique = rule.target_unique;
        flight.send(async move {
            if unique {
                client.batch_read_by_property(&path, &property, chunk).await
            } else {
                client.search_by_values(&path, &property, chunk).await
            }
        });
    }
    while let Some(answer) = flight.next().await {
        remember(answer, &mut failure)?;
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Delivers the associations of changed rows, of rows whose associations failed before and of
/// rows an interrupted run left due. `label_objects` says, per association, whether some row of
/// the model uses `{ value, label }` objects (then every row must). Returns true when stopped
/// before the end (every batch sent has been answered and recorded by then).
pub async fn deliver_associations(
    client: &HubSpotClient,
    sync: &SyncSpec,
    from: &ObjectMeta,
    run: &mut Run<'_>,
    first_cell: usize,
    label_objects: &[bool],
) -> Result<bool, SyncError> {
    let rules = resolve_rules(client, sync, from).await?;
    let targets: Vec<(String, String, String)> =
        rules.iter().map(|r| (r.key.clone(), r.target.type_id.clone(), r.rule.match_property.clone())).collect();
    blocking(|| run.begin_links(&targets))?;
    let schema: Vec<bool> = (0..rules.len()).map(|j| label_objects.get(j).copied().unwrap_or(false)).collect();

    let mut failures: Vec<LinkFailure> = Vec::new();
    let fail = |link: &LinkCandidate, code: &str, message: String| LinkFailure {
        assoc: link.assoc.clone(),
        from_pk: link.from_pk.clone(),
        to_value: link.to_value.clone(),
        labels: link.labels.clone(),
        code: code.to_string(),
        message,
    };
    blocking(|| run.prepare_link_inputs(first_cell, rules.len()))?;
    let mut after = 0i64;
    loop {
        let rows = blocking(|| run.link_input_page(after, PAGE_ROWS, rules.len()))?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        let mut candidates = Vec::new();
        for (_, pk, cells) in rows {
            for (j, cell) in cells.iter().enumerate() {
                let Some(cell) = cell else { continue };
                let rule = &rules[j];
                match parse_link_cell(cell, schema[j]) {
                    Ok(values) => {
                        for v in values {
                            let link = LinkCandidate {
                                assoc: rule.key.clone(),
                                from_pk: pk.clone(),
                                to_value: v.value,
                                labels: label_key(&v.labels),
                            };
                            match rule.types_for(&v.labels) {
                                Ok(_) => candidates.push(link),
                                Err(label) => failures.push(fail(
                                    &link,
                                    "UNKNOWN_ASSOCIATION_LABEL",
                                    format!(
                                        "association label `{label}` does not exist from {} to {}",
                                        sync.object, rule.rule.to
                                    ),
                                )),
                            }
                        }
                    }
                    Err(reason) => {
                        let link = LinkCandidate {
                            assoc: rule.key.clone(),
                            from_pk: pk.clone(),
                            to_value: cell.clone(),
                            labels: String::new(),
                        };
                        failures.push(fail(
                            &link,
                            "INVALID_ASSOCIATION_VALUE",
                            format!("column `{}`: {reason}", rule.rule.column),
                        ));
                    }
                }
            }
        }
        blocking(|| run.append_link_candidates(&candidates))?;
    }
    blocking(|| run.narrow_links())?;
    for rule in &rules {
        look_up_targets(client, run, rule).await?;
    }
    if client.stopping() {
        return Ok(true);
    }
    blocking(|| run.prepare_pending_links())?;
    let mut flight = LinkFlight {
        pipeline: Pipeline::with_cap(client, ASSOCIATION_BATCHES_IN_FLIGHT),
        client: client.clone(),
        failure: None,
        lost: BTreeMap::new(),
    };

    let by_key: HashMap<&str, &ResolvedRule> = rules.iter().map(|r| (r.key.as_str(), r)).collect();
    let mut buffers: BTreeMap<String, Vec<(LinkCandidate, AssociationInput)>> = BTreeMap::new();
    let mut after = 0i64;
    loop {
        let page = blocking(|| run.pending_links_page(after, PAGE_ROWS))?;
        let Some(last) = page.last() else { break };
        after = last.n;
        for pending in page {
            let Some(rule) = by_key.get(pending.link.assoc.as_str()) else { continue };
            let (Some(from_id), Some(to_id)) = (pending.from_id.clone(), pending.to_id.clone()) else {
                let failure = if pending.from_id.is_none() {
                    fail(&pending.link, "RECORD_NOT_DELIVERED", "the record itself is not in HubSpot yet (rejected, skipped or not sent), so it cannot be linked; retried on the next run".into())
                } else {
                    fail(
                        &pending.link,
                        "ASSOCIATION_TARGET_NOT_FOUND",
                        format!(
                            "no {} record has {} = `{}` yet; the link is retried on every run until it appears",
                            rule.rule.to, rule.rule.match_property, pending.link.to_value
                        ),
                    )
                };
                failures.push(failure);
                continue;
            };
            let labels: Vec<String> = if pending.link.labels.is_empty() {
                Vec::new()
            } else {
                pending.link.labels.split('\n').map(str::to_string).collect()
            };
            let types = rule.types_for(&labels).unwrap_or_else(|_| rule.default_types.clone());
            let input = AssociationInput { trace: pending.n.to_string(), from_id, to_id, types };
            let buffer = buffers.entry(rule.key.clone()).or_default();
            buffer.push((pending.link, input));
            if buffer.len() >= ASSOCIATION_BATCH_SIZE {
                let batch = std::mem::take(buffer);
                if flight.make_room(run, &mut failures).await? {
                    return flight.finish(run, &mut failures).await;
                }
                send_links(&mut flight.pipeline, client, from, rule, batch);
            }
        }
    }
    for (key, batch) in buffers {
        if let (Some(rule), false) = (by_key.get(key.as_str()), batch.is_empty()) {
            if flight.make_room(run, &mut failures).await? {
                return flight.finish(run, &mut failures).await;
            }
            send_links(&mut flight.pipeline, client, from, rule, batch);
        }
    }
    if flight.finish(run, &mut failures).await? {
        return Ok(true);
    }
    // Links to a record HubSpot does not know: one end may have been merged or deleted; each is
    // read once, then linked to its survivor or looked up again (`links/vanished.rs`).
    for (key, lost) in std::mem::take(&mut flight.lost) {
        let Some(rule) = by_key.get(key.as_str()) else { continue };
        let delivered = vanished::relink(client, &sync.name, from, rule, lost, run, &mut failures).await?;
        run.counts.associated += delivered.len() as u64;
        blocking(|| run.record_links_counted(&delivered))?;
    }
    run.counts.association_rejected = failures.len() as u64;
    blocking(|| run.replace_link_failures(&failures).and_then(|_| run.clear_links_due()))?;
    Ok(false)
}

/// An association batch and its answer: the links, and their inputs in the same order.
struct LinkAnswer {
    /// The association rule's key.
    rule: String,
    links: Vec<LinkCandidate>,
    inputs: Vec<AssociationInput>,
    outcomes: Result<Vec<AssocOutcome>, HubSpotError>,
}

/// The association batches in flight, and the first error an answer brought.
struct LinkFlight {
    pipeline: Pipeline<LinkAnswer>,
    /// The run's handle, whose stop flag says whether a new batch may start.
    client: HubSpotClient,
    failure: Option<HubSpotError>,
    /// Per rule, the links HubSpot answered `OBJECT_NOT_FOUND`, relinked once all are answered.
    lost: BTreeMap<String, Vec<(LinkCandidate, AssociationInput, String)>>,
}

impl LinkFlight {
    /// Records the answers that arrived, and waits for answers while the pipeline is full.
    /// True when no new batch may start (stopping, or an answer failed).
    async fn make_room(&mut self, run: &mut Run<'_>, failures: &mut Vec<LinkFailure>) -> Result<bool, SyncError> {
        while let Some(answer) = self.pipeline.arrived() {
            self.record(answer, run, failures)?;
        }
        while self.pipeline.is_full() {
            if let Some(answer) = self.pipeline.next().await {
                self.record(answer, run, failures)?;
            }
        }
        Ok(self.failure.is_some() || self.client.stopping())
    }

    /// Records every answer still to come. Returns the first error, else whether stopped.
    async fn finish(&mut self, run: &mut Run<'_>, failures: &mut Vec<LinkFailure>) -> Result<bool, SyncError> {
        while let Some(answer) = self.pipeline.next().await {
            self.record(answer, run, failures)?;
        }
        match self.failure.take() {
            Some(HubSpotError::Stopped { .. }) => Ok(true),
            Some(e) => Err(e.into()),
            None => Ok(self.client.stopping()),
        }
    }

    fn record(
        &mut self,
        answer: LinkAnswer,
        run: &mut Run<'_>,
        failures: &mut Vec<LinkFailure>,
    ) -> Result<(), SyncError> {
        match answer.outcomes {
            Ok(outcomes) => {
                let lost = commit_links(answer.links, answer.inputs, outcomes, run, failures)?;
                if !lost.is_empty() {
                    self.lost.entry(answer.rule).or_default().extend(lost);
                }
                Ok(())
            }
            Err(e) => {
                self.failure.get_or_insert(e);
                Ok(())
            }
        }
    }
}

/// Starts one association batch.
fn send_links(
    pipeline: &mut Pipeline<LinkAnswer>,
    client: &HubSpotClient,
    from: &ObjectMeta,
    rule: &ResolvedRule,
    batch: Vec<(LinkCandidate, AssociationInput)>,
) {
    // The client reads the inputs where they are: a batch in flight holds one copy of its links.
    let (links, inputs): (Vec<LinkCandidate>, Vec<AssociationInput>) = batch.into_iter().unzip();
    let (client, from_path, to_path) = (client.clone(), from.path_name.clone(), rule.target.path_name.clone());
    let key = rule.key.clone();
    pipeline.send(async move {
        let outcomes = client.batch_associate(&from_path, &to_path, &inputs).await;
        LinkAnswer { rule: key, links, inputs, outcomes }
    });
}

/// Records an association batch's answer in one transaction: the associations HubSpot made,
/// and the ones it refused among the run's failures. Returns the links answered
/// `OBJECT_NOT_FOUND` (one end may have been merged or deleted), with HubSpot's message.
fn commit_links(
    links: Vec<LinkCandidate>,
    inputs: Vec<AssociationInput>,
    outcomes: Vec<AssocOutcome>,
    run: &mut Run<'_>,
    failures: &mut Vec<LinkFailure>,
) -> Result<Vec<(LinkCandidate, AssociationInput, String)>, SyncError> {
    let mut by_trace: HashMap<String, (LinkCandidate, AssociationInput)> =
        links.into_iter().zip(inputs).map(|(link, input)| (input.trace.clone(), (link, input))).collect();
    let mut delivered = Vec::new();
    let mut lost = Vec::new();
    for outcome in outcomes {
        match outcome {
            AssocOutcome::Associated { trace } => {
                if let Some((link, input)) = by_trace.remove(&trace) {
                    delivered.push((link, input.from_id, input.to_id));
                }
            }
            // Not sent, because the run is stopping: still due, for the next run.
            AssocOutcome::Rejected { code, .. } if code == outcome_codes::STOPPED => {}
            AssocOutcome::Rejected { trace, code, message } if code == "OBJECT_NOT_FOUND" => {
                if let Some((link, input)) = by_trace.remove(&trace) {
                    lost.push((link, input, message));
                }
            }
            AssocOutcome::Rejected { trace, code, message } => {
                if let Some((link, _)) = by_trace.remove(&trace) {
                    failures.push(LinkFailure {
                        assoc: link.assoc,
                        from_pk: link.from_pk,
                        to_value: link.to_value,
                        labels: link.labels,
                        code,
                        message,
                    });
                }
            }
        }
    }
    run.counts.associated += delivered.len() as u64;
    blocking(|| run.record_links_counted(&delivered))?;
    Ok(lost)
}

/// Keeps the sync's MANUAL list equal to the model's records: finds or creates it, then adds
/// and removes members in batches (several in flight), recording each acknowledged batch as its
/// answer arrives. Without `send_removes` (the delete guard held the run's removals), only
/// members are added. Returns true when stopped before the end.
pub async fn sync_list(
    client: &HubSpotClient,
    sync: &SyncSpec,
    list_name: &str,
    meta_slot: &mut Option<ObjectMeta>,
    run: &mut Run<'_>,
    send_removes: bool,
) -> Result<bool, SyncError> {
    match sync_list_once(client, sync, list_name, meta_slot, run, send_removes).await {
        // A membership change answered 404: the list was deleted in HubSpot since it was last
        // read. It is created again and refilled, once.
        Err(SyncError::HubSpot(e)) if e.is_not_found() => {
            let meta_key = format!("list:{list_name}");
            if let Some(list_id) = blocking(|| run.meta_get(&meta_key))? {
                vanished::list_deleted(sync, run, &meta_key, &list_id)?;
            }
            sync_list_once(client, sync, list_name, meta_slot, run, send_removes).await
        }
        other => other,
    }
}

async fn sync_list_once(
    client: &HubSpotClient,
    sync: &SyncSpec,
    list_name: &str,
    meta_slot: &mut Option<ObjectMeta>,
    run: &mut Run<'_>,
    send_removes: bool,
) -> Result<bool, SyncError> {
    let meta_key = format!("list:{list_name}");
    let list_id = match vanished::stored_list(client, sync, run, &meta_key).await? {
        Some(id) => id,
        None => {
            let object = object_meta(meta_slot, client, sync).await?;
            let list = match client.find_list_by_name(&object.type_id, list_name).await? {
                Some(list) => list,
                None => client.create_list(&object.type_id, list_name).await?,
            };
            if list.processing_type == "DYNAMIC" {
                return Err(SyncError::Config {
                    sync: sync.name.clone(),
                    key: format!("{}.list", sync.key),
                    message: format!(
                        "list `{list_name}` exists and is an active (DYNAMIC) list, whose members HubSpot computes; \
                         name another list, or delete that one"
                    ),
                });
            }
            blocking(|| run.meta_set(&meta_key, &list.list_id))?;
            list.list_id
        }
    };
    // The fingerprint is kept when the list held every valid row of the model. If the model's
    // keys are those it was taken of, and the list still holds as many members as the model
    // has valid rows, the list is right already, whatever this run sent, and the joins that
    // would find no change are skipped: members are only ever dropped (a record merged or
    // deleted in HubSpot, `sql/merge_vanished.sql`), so the same count means the same keys,
    // each with the id the snapshot holds now.
    let (fingerprint, valid_rows) = blocking(|| run.model_fingerprint())?;
    let fingerprint_key = format!("list-fingerprint:{list_id}");
    if blocking(|| run.meta_get(&fingerprint_key))?.as_deref() == Some(fingerprint.as_str())
        && blocking(|| run.list_member_count(&list_id))? == valid_rows
    {
        return Ok(false);
    }
    let (adds, removes) = blocking(|| run.prepare_list_changes(&list_id))?;
    let removes = if send_removes { removes } else { 0 };
    // Both at once: one add-and-remove request carries them (one request at a time).
    let (adds, removes) =
        vanished::send_adds_and_removes(client, sync, meta_slot, run, &list_id, adds, removes).await?;
    // Removes and adds never name the same record, so they may be in flight together.
    let mut flight = MemberFlight { pipeline: Pipeline::new(client), failure: None, missing: Vec::new() };
    let changes = (0..removes).step_by(LIST_BATCH_SIZE).map(|offset| (true, offset));
    for (removing, offset) in changes.chain((0..adds).step_by(LIST_BATCH_SIZE).map(|offset| (false, offset))) {
        if flight.make_room(run, &list_id).await? || client.stopping() {
            return flight.finish(run, &list_id).await.map(|_| true);
        }
        // Read a batch at a time, so memory does not grow with the list.
        let chunk = blocking(|| run.list_changes_page(removing, offset, LIST_BATCH_SIZE))?;
        send_members(&mut flight.pipeline, client, &list_id, removing, chunk);
    }
    let stopped = flight.finish(run, &list_id).await?;
    // Adds HubSpot reported missing members in: each read once (merged: added as the
    // survivor; deleted: forgotten), then the rest of the batch is recorded.
    for (chunk, missing) in std::mem::take(&mut flight.missing) {
        let added = vanished::settle_missing(client, sync, meta_slot, run, &list_id, chunk, &missing).await?;
        blocking(|| run.record_list_added(&list_id, &added))?;
        run.counts.list_added += added.len() as u64;
    }
    if stopped || client.stopping() {
        return Ok(true);
    }
    // The list now holds the model's rows that have an id; when that is every valid row, the
    // next run can tell from the fingerprint alone that nothing changed.
    if blocking(|| run.list_member_count(&list_id))? == valid_rows {
        blocking(|| run.meta_set(&fingerprint_key, &fingerprint))?;
    } else {
        blocking(|| run.meta_delete(&fingerprint_key))?;
    }
    Ok(false)
}

/// A list membership request (`removing`: a remove, else an add) and its answer.
struct MemberAnswer {
    removing: bool,
    chunk: Vec<(String, String)>,
    answered: Result<MembershipChange, HubSpotError>,
}

/// The list membership requests in flight, and the first error an answer brought.
struct MemberFlight {
    pipeline: Pipeline<MemberAnswer>,
    failure: Option<HubSpotError>,
    /// Add batches in which HubSpot reported members missing (`recordIdsMissing`), with those
    /// ids: recorded once settled (`links/vanished.rs`).
    missing: Vec<MissingMembers>,
}

/// An add batch's members (`(pk, id)`), and the ids HubSpot reported missing among them.
type MissingMembers = (Vec<(String, String)>, Vec<String>);

impl MemberFlight {
    /// Records the answers that arrived, and waits for answers while the pipeline is full.
    /// True when an answer failed (no new request may start).
    async fn make_room(&mut self, run: &mut Run<'_>, list_id: &str) -> Result<bool, SyncError> {
        while let Some(answer) = self.pipeline.arrived() {
            self.record(answer, run, list_id)?;
        }
        while self.pipeline.is_full() {
            if let Some(answer) = self.pipeline.next().await {
                self.record(answer, run, list_id)?;
            }
        }
        Ok(self.failure.is_some())
    }

    /// Records every answer still to come. Returns the first error, else whether a request
    /// was not sent because the run is stopping.
    async fn finish(&mut self, run: &mut Run<'_>, list_id: &str) -> Result<bool, SyncError> {
        while let Some(answer) = self.pipeline.next().await {
            self.record(answer, run, list_id)?;
        }
        match self.failure.take() {
            Some(HubSpotError::Stopped { .. }) => Ok(true),
            Some(e) => Err(e.into()),
            None => Ok(false),
        }
    }

    /// Records one acknowledged membership batch, in one transaction.
    fn record(&mut self, answer: MemberAnswer, run: &mut Run<'_>, list_id: &str) -> Result<(), SyncError> {
        let MemberAnswer { removing, chunk, answered } = answer;
        let change = match answered {
            Ok(change) => change,
            Err(e) => {
                self.failure.get_or_insert(e);
                return Ok(());
            }
        };
        if !removing && !change.missing.is_empty() {
            self.missing.push((chunk, change.missing));
        } else if removing {
            blocking(|| run.record_list_removed(list_id, &chunk))?;
            run.counts.list_removed += chunk.len() as u64;
        } else {
            blocking(|| run.record_list_added(list_id, &chunk))?;
            run.counts.list_added += chunk.len() as u64;
        }
        Ok(())
    }
}

/// Starts one list membership request for `chunk`'s record ids.
fn send_members(
    pipeline: &mut Pipeline<MemberAnswer>,
    client: &HubSpotClient,
    list_id: &str,
    removing: bool,
    chunk: Vec<(String, String)>,
) {
    let ids: Vec<String> = chunk.iter().map(|(_, id)| id.clone()).collect();
    let (client, list_id) = (client.clone(), list_id.to_string());
    pipeline.send(async move {
        let answered =
            if removing { client.list_remove(&list_id, ids).await } else { client.list_add(&list_id, ids).await };
        MemberAnswer { removing, chunk, answered }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(value: &str, labels: &[&str]) -> LinkValue {
        LinkValue { value: value.into(), labels: labels.iter().map(|l| l.to_string()).collect() }
    }

    #[test]
    fn plain_values_arrays_and_comma_lists() {
        assert_eq!(parse_link_cell("Acme", false).unwrap(), vec![v("Acme", &[])]);
        assert_eq!(
            parse_link_cell("Acme, Globex ,,Initech", false).unwrap(),
            vec![v("Acme", &[]), v("Globex", &[]), v("Initech", &[])]
        );
        assert_eq!(parse_link_cell(r#"["Acme", 42]"#, false).unwrap(), vec![v("Acme", &[]), v("42", &[])]);
        assert!(parse_link_cell("  ", false).unwrap().is_empty());
        assert_eq!(parse_link_cell(r#""Umbrella, Hooli""#, false).unwrap(), vec![v("Umbrella", &[]), v("Hooli", &[])]);
    }

    #[test]
    fn label_objects() {
        assert_eq!(
            parse_link_cell(r#"{"value": "Acme", "label": "Billing contact, Primary"}"#, true).unwrap(),
            vec![v("Acme", &["Billing contact", "Primary"])]
        );
        assert_eq!(
            parse_link_cell(r#"[{"value": 7, "label": ["A"]}, {"value": "B", "label": null}]"#, true).unwrap(),
            vec![v("7", &["A"]), v("B", &[])]
        );
    }

    #[test]
    fn schema_breaks_are_rejected_with_a_reason() {
        assert!(parse_link_cell("Acme", true).unwrap_err().contains("same schema"));
        assert!(parse_link_cell(r#"[{"value": "A"}, "B"]"#, true).unwrap_err().contains("mixes"));
        assert!(parse_link_cell(r#"{"label": "A"}"#, true).unwrap_err().contains("no `value`"));
        assert!(parse_link_cell(r#"{"value": "A", "colour": 1}"#, true).unwrap_err().contains("unknown key"));
    }

    #[test]
    fn label_keys_are_canonical() {
        assert_eq!(label_key(&["b".into(), "a".into(), "b".into()]), "a\nb");
        assert_eq!(label_key(&[]), "");
    }
}
