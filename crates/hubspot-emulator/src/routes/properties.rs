//! The properties API and the custom object schemas API (HubSpot docs: properties; sources in docs/emulator.md).

use serde::Deserialize;
use serde_json::{json, Value};

use super::context::{unknown_type, Ctx};
use super::wire::batch_body;
use crate::auth::{property_scopes, schema_scopes, Access};
use crate::reply::{parse_body, HsError, HsResult, Reply};
use crate::store::properties::{is_valid_property_name, PropOption, PropType, PropertyCreate};
use crate::store::{CustomSchema, PropertyGroup, Store};

/// Unique properties allowed per object (properties guide: ten).
const MAX_UNIQUE: usize = 10;
/// Engagement types every custom object can be associated with (schemas guide).
const ENGAGEMENTS: &[&str] = &["0-46", "0-27", "0-48", "0-49", "0-47"];

fn resolve(ctx: &Ctx<'_>, store: &Store, name: &str, access: Access) -> HsResult<usize> {
    let i = store.resolve(name).ok_or_else(|| unknown_type(name))?;
    let t = store.object_type(i);
    ctx.require(&property_scopes(&t.type_id, &t.name, t.is_custom(), access))?;
    Ok(i)
}

fn property_not_found(name: &str, object_type: &str) -> Reply {
    HsError::new(404, format!("Unable to find property {name} for object type {object_type}"))
        .category("OBJECT_NOT_FOUND")
        .reply()
}

/// The 409 for a duplicate property name, as recorded (recorded real HubSpot answers, docs/emulator.md).
fn already_exists(name: &str) -> Reply {
    HsError::new(409, format!("A property named '{name}' already exists."))
        .category("OBJECT_ALREADY_EXISTS")
        .sub_category("Properties.PROPERTY_WITH_NAME_EXISTS")
        .context(json!({"name": [name]}))
        .reply()
}

fn default_group(store: &Store, i: usize) -> String {
    let t = store.object_type(i);
    t.properties().next().map(|p| p.group_name.clone()).unwrap_or_else(|| format!("{}information", t.singular))
}

/// Validates and adds a property; the `Err` is the HubSpot answer.
fn add_property(store: &mut Store, i: usize, body: PropertyCreate, now: i64) -> HsResult<Value> {
    let group = default_group(store, i);
    let def = body.build(now, &group, false).map_err(Reply::validation)?;
    let t = store.object_type(i);
    if t.property(&def.name).is_some() {
        return Err(already_exists(&def.name));
    }
    if def.has_unique_value && t.unique_count() >= MAX_UNIQUE {
        return Err(Reply::validation(format!("You can have up to {MAX_UNIQUE} unique properties per object.")));
    }
    let json = def.to_json();
    store.object_type_mut(i).add_property(def);
    Ok(json)
}

pub(crate) fn list(ctx: &Ctx<'_>, object_type: &str) -> HsResult<Reply> {
    let archived = ctx.flag("archived");
    let store = ctx.store();
    let i = resolve(ctx, &store, object_type, Access::Read)?;
    let results: Vec<Value> =
        store.object_type(i).properties().filter(|p| p.archived == archived).map(|p| p.to_json()).collect();
    Ok(Reply::json(200, &json!({"results": results})))
}

pub(crate) fn get(ctx: &Ctx<'_>, object_type: &str, name: &str) -> HsResult<Reply> {
    let store = ctx.store();
    let i = resolve(ctx, &store, object_type, Access::Read)?;
    let p = store.object_type(i).property(name).ok_or_else(|| property_not_found(name, object_type))?;
    Ok(Reply::json(200, &p.to_json()))
}

pub(crate) fn create(ctx: &Ctx<'_>, object_type: &str) -> HsResult<Reply> {
    let body: PropertyCreate = parse_body(ctx.body)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve(ctx, store, object_type, Access::Write)?;
    let json = add_property(store, i, body, ctx.now)?;
    Ok(Reply::json(201, &json))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PropertyUpdate {
    label: Option<String>,
    #[serde(rename = "type")]
    ptype: Option<String>,
    field_type: Option<String>,
    group_name: Option<String>,
    description: Option<String>,
    options: Option<Vec<PropOption>>,
    display_order: Option<i64>,
    hidden: Option<bool>,
    form_field: Option<bool>,
    has_unique_value: Option<bool>,
}

pub(crate) fn update(ctx: &Ctx<'_>, object_type: &str, name: &str) -> HsResult<Reply> {
    let body: PropertyUpdate = parse_body(ctx.body)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve(ctx, store, object_type, Access::Write)?;
    let current = store.object_type(i).property(name).ok_or_else(|| property_not_found(name, object_type))?.clone();
    if body.has_unique_value.is_some_and(|u| u != current.has_unique_value) {
        return Err(Reply::validation(format!("hasUniqueValue of property {name} can't be changed.")));
    }
    if current.hubspot_defined && (body.ptype.is_some() || body.field_type.is_some()) {
        return Err(Reply::validation(format!("The type of HubSpot-defined property {name} can't be changed.")));
    }
    let ptype = match &body.ptype {
        Some(t) => PropType::parse(t).ok_or_else(|| Reply::validation(format!("{t} is not a valid property type")))?,
        None => current.ptype,
    };
    let field_type = body.field_type.clone().unwrap_or_else(|| current.field_type.clone());
    if !ptype.allows_field_type(&field_type) {
        return Err(Reply::validation(format!(
            "fieldType {field_type} is not valid for a property of type {}",
            ptype.as_str()
        )));
    }
    let Some(p) = store.object_type_mut(i).property_mut(name) else {
        return Err(property_not_found(name, object_type));
    };
    p.ptype = ptype;
    p.field_type = field_type;
    if let Some(v) = body.label {
        p.label = v;
    }
    if let Some(v) = body.group_name {
        p.group_name = v;
    }
    if let Some(v) = body.description {
        p.description = v;
    }
    if let Some(v) = body.options {
        p.options = v;
    }
    if let Some(v) = body.display_order {
        p.display_order = v;
    }
    if let Some(v) = body.hidden {
        p.hidden = v;
    }
    if let Some(v) = body.form_field {
        p.form_field = v;
    }
    p.updated_at = ctx.now;
    Ok(Reply::json(200, &p.to_json()))
}

pub(crate) fn archive(ctx: &Ctx<'_>, object_type: &str, name: &str) -> HsResult<Reply> {
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve(ctx, store, object_type, Access::Write)?;
    let t = store.object_type(i);
    let Some(p) = t.property(name) else { return Ok(Reply::empty(204)) };
    if p.hubspot_defined {
        return Err(Reply::validation(format!("HubSpot-defined property {name} can't be archived.")));
    }
    store.object_type_mut(i).archive_property(name, ctx.now);
    Ok(Reply::empty(204))
}

#[derive(Debug, Deserialize)]
struct Inputs<T> {
    inputs: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct NameRef {
    name: String,
}

pub(crate) fn batch_create(ctx: &Ctx<'_>, object_type: &str) -> HsResult<Reply> {
    let body: Inputs<PropertyCreate> = parse_body(ctx.body)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve(ctx, store, object_type, Access::Write)?;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in body.inputs {
        let name = input.name.clone().unwrap_or_default();
        match add_property(store, i, input, ctx.now) {
            Ok(json) => results.push(json),
            Err(reply) => {
                let detail: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
                errors.push(json!({
                    "status": "error",
                    "category": detail["category"],
                    "message": detail["message"],
                    "context": {"propertyName": [name]},
                }));
            }
        }
    }
    let status = if errors.is_empty() { 201 } else { 207 };
    Ok(Reply::json(status, &batch_body(results, errors, ctx.now)))
}

pub(crate) fn batch_read(ctx: &Ctx<'_>, object_type: &str) -> HsResult<Reply> {
    let body: Inputs<NameRef> = parse_body(ctx.body)?;
    let store = ctx.store();
    let i = resolve(ctx, &store, object_type, Access::Read)?;
    let t = store.object_type(i);
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in &body.inputs {
        match t.property(&input.name) {
            Some(p) => results.push(p.to_json()),
            None => missing.push(input.name.clone()),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!("Unable to find some properties for object type {object_type}"),
            "context": {"properties": missing},
        })]
    };
    let status = if errors.is_empty() { 200 } else { 207 };
    Ok(Reply::json(status, &batch_body(results, errors, ctx.now)))
}

pub(crate) fn batch_archive(ctx: &Ctx<'_>, object_type: &str) -> HsResult<Reply> {
    let body: Inputs<NameRef> = parse_body(ctx.body)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve(ctx, store, object_type, Access::Write)?;
    for input in &body.inputs {
        if store.object_type(i).property(&input.name).is_some_and(|p| !p.hubspot_defined) {
            store.object_type_mut(i).archive_property(&input.name, ctx.now);
        }
    }
    Ok(Reply::empty(204))
}

fn group_json(name: &str, group: &PropertyGroup) -> Value {
    json!({"name": name, "label": group.label, "displayOrder": group.display_order, "archived": false})
}

pub(crate) fn groups(ctx: &Ctx<'_>, object_type: &str) -> HsResult<Reply> {
    let store = ctx.store();
    let i = resolve(ctx, &store, object_type, Access::Read)?;
    let results: Vec<Value> = store.object_type(i).groups().iter().map(|(name, g)| group_json(name, g)).collect();
    Ok(Reply::json(200, &json!({"results": results})))
}

pub(crate) fn group_get(ctx: &Ctx<'_>, object_type: &str, name: &str) -> HsResult<Reply> {
    let store = ctx.store();
    let i = resolve(ctx, &store, object_type, Access::Read)?;
    match store.object_type(i).groups().get(name) {
        Some(g) => Ok(Reply::json(200, &group_json(name, g))),
        None => Err(HsError::new(404, format!("Unable to find property group {name} for object type {object_type}"))
            .category("OBJECT_NOT_FOUND")
            .reply()),
    }
}

/// The body of `POST /crm/v3/properties/{objectType}/groups` (`PropertyGroupCreate`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupCreate {
    name: Option<String>,
    label: Option<String>,
    display_order: Option<i64>,
}

/// Creates a property group: 201 with the `PropertyGroup`, 409 when the name is taken (as the
/// legacy groups API documents; the v3 body is not recorded, so it follows the property one).
pub(crate) fn group_create(ctx: &Ctx<'_>, object_type: &str) -> HsResult<Reply> {
    let body: GroupCreate = parse_body(ctx.body)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = resolve(ctx, store, object_type, Access::Write)?;
    let missing: Vec<&str> = [("name", &body.name), ("label", &body.label)]
        .into_iter()
        .filter(|(_, v)| v.as_deref().is_none_or(str::is_empty))
        .map(|(field, _)| field)
        .collect();
    if !missing.is_empty() {
        return Err(Reply::validation(format!("Missing required property group fields: {}", missing.join(", "))));
    }
    let name = body.name.unwrap_or_default();
    if !is_valid_property_name(&name) {
        return Err(Reply::validation(format!(
            "Property group name {name} is invalid: use lowercase letters, numbers and underscores, starting with a letter"
        )));
    }
    let group =
        PropertyGroup { label: body.label.unwrap_or_default(), display_order: body.display_order.unwrap_or(-1) };
    let json = group_json(&name, &group);
    if !store.object_type_mut(i).add_group(&name, group) {
        return Err(HsError::new(409, format!("A property group named '{name}' already exists."))
            .category("OBJECT_ALREADY_EXISTS")
            .context(json!({"name": [name]}))
            .reply());
    }
    Ok(Reply::json(201, &json))
}

// ---------------------------------------------------------------- custom object schemas

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaCreate {
    name: Option<String>,
    labels: Option<Value>,
    #[serde(default)]
    properties: Vec<PropertyCreate>,
    primary_display_property: Option<String>,
    #[serde(default)]
    secondary_display_properties: Vec<String>,
    #[serde(default)]
    searchable_properties: Vec<String>,
    #[serde(default)]
    required_properties: Vec<String>,
    #[serde(default)]
    associated_objects: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaUpdate {
    labels: Option<Value>,
    primary_display_property: Option<String>,
    secondary_display_properties: Option<Vec<String>>,
    searchable_properties: Option<Vec<String>>,
    required_properties: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaAssociation {
    from_object_type_id: Option<String>,
    to_object_type_id: String,
    #[serde(default)]
    name: Option<String>,
}

fn schema_not_found(name: &str) -> Reply {
    HsError::new(404, format!("Unable to find object type {name}")).category("OBJECT_NOT_FOUND").reply()
}

fn custom_index(store: &Store, name: &str) -> HsResult<usize> {
    store.resolve(name).filter(|i| store.object_type(*i).is_custom()).ok_or_else(|| schema_not_found(name))
}

fn schema_json(store: &Store, i: usize) -> Value {
    let t = store.object_type(i);
    t.schema_json(store.portal_id, store.associations.schema_associations(&t.type_id))
}

/// Creates a custom object from an `ObjectSchemaEgg`; shared by the API and the handle.
pub(crate) fn create_schema(store: &mut Store, body: Value, now: i64) -> HsResult<usize> {
    let body: SchemaCreate = serde_json::from_value(body).map_err(|e| Reply::invalid_json(&e))?;
    let name = body.name.unwrap_or_default();
    let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(Reply::validation(format!(
            "Object name {name:?} is invalid: use letters, numbers and underscores, starting with a letter."
        )));
    }
    let labels = body.labels.filter(|l| l.get("singular").is_some() && l.get("plural").is_some());
    let labels = labels.ok_or_else(|| Reply::validation("labels.singular and labels.plural are required"))?;
    if store.resolve(&name).is_some() {
        return Err(Reply::error(
            409,
            "OBJECT_ALREADY_EXISTS",
            format!("Object type with name {name} already exists."),
        ));
    }
    let group = format!("{}_information", name.to_ascii_lowercase());
    let mut props = Vec::with_capacity(body.properties.len());
    for p in body.properties {
        props.push(p.build(now, &group, true).map_err(Reply::validation)?);
    }
    let known = |n: &String| props.iter().any(|p| &*p.name == n.as_str());
    if let Some(missing) = body.required_properties.iter().find(|n| !known(n)) {
        return Err(Reply::validation(format!("Required property {missing} is not defined in properties.")));
    }
    if let Some(p) = body.primary_display_property.as_ref().filter(|p| !known(p)) {
        return Err(Reply::validation(format!("Primary display property {p} is not defined in properties.")));
    }
    if props.iter().filter(|p| p.has_unique_value).count() > MAX_UNIQUE {
        return Err(Reply::validation(format!("You can have up to {MAX_UNIQUE} unique properties per object.")));
    }
    let mut associated = Vec::new();
    for o in &body.associated_objects {
        associated.push(store.type_id_of(o).ok_or_else(|| unknown_type(o))?);
    }
    let schema = CustomSchema {
        id: store.next_custom_type_id().trim_start_matches("2-").to_string(),
        fully_qualified_name: format!("p{}_{}", store.portal_id, name),
        name,
        labels,
        primary_display_property: body.primary_display_property,
        secondary_display_properties: body.secondary_display_properties,
        searchable_properties: body.searchable_properties,
        required_properties: body.required_properties,
        created_at: now,
        updated_at: now,
    };
    let i = store.add_custom_type(schema, props);
    let type_id = store.object_type(i).type_id.clone();
    for other in associated.iter().map(String::as_str).chain(ENGAGEMENTS.iter().copied()) {
        store.associations.declare(&type_id, other);
    }
    Ok(i)
}

pub(crate) fn schemas_list(ctx: &Ctx<'_>) -> HsResult<Reply> {
    ctx.require(&schema_scopes(Access::Read))?;
    let store = ctx.store();
    let results: Vec<Value> = (0..store.types().count())
        .filter(|i| store.object_type(*i).is_custom())
        .map(|i| schema_json(&store, i))
        .collect();
    Ok(Reply::json(200, &json!({"results": results})))
}

pub(crate) fn schema_create(ctx: &Ctx<'_>) -> HsResult<Reply> {
    ctx.require(&schema_scopes(Access::Write))?;
    let body: Value = parse_body(ctx.body)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = create_schema(store, body, ctx.now)?;
    Ok(Reply::json(201, &schema_json(store, i)))
}

pub(crate) fn schema_get(ctx: &Ctx<'_>, object_type: &str) -> HsResult<Reply> {
    ctx.require(&schema_scopes(Access::Read))?;
    let store = ctx.store();
    let i = custom_index(&store, object_type)?;
    Ok(Reply::json(200, &schema_json(&store, i)))
}

pub(crate) fn schema_update(ctx: &Ctx<'_>, object_type: &str) -> HsResult<Reply> {
    ctx.require(&schema_scopes(Access::Write))?;
    let body: SchemaUpdate = parse_body(ctx.body)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = custom_index(store, object_type)?;
    let t = store.object_type(i);
    let unknown = body
        .required_properties
        .iter()
        .flatten()
        .chain(body.primary_display_property.iter())
        .find(|p| t.property(p).is_none())
        .cloned();
    if let Some(p) = unknown {
        return Err(Reply::validation(format!("Property {p} is not defined on {object_type}.")));
    }
    if let Some(schema) = store.object_type_mut(i).schema.as_mut() {
        if let Some(v) = body.labels {
            schema.labels = v;
        }
        if let Some(v) = body.primary_display_property {
            schema.primary_display_property = Some(v);
        }
        if let Some(v) = body.secondary_display_properties {
            schema.secondary_display_properties = v;
        }
        if let Some(v) = body.searchable_properties {
            schema.searchable_properties = v;
        }
        if let Some(v) = body.required_properties {
            schema.required_properties = v;
        }
        schema.updated_at = ctx.now;
    }
    Ok(Reply::json(200, &schema_json(store, i)))
}

pub(crate) fn schema_delete(ctx: &Ctx<'_>, object_type: &str) -> HsResult<Reply> {
    ctx.require(&schema_scopes(Access::Write))?;
    let mut store = ctx.store();
    let i = custom_index(&store, object_type)?;
    if store.object_type(i).records.values().any(|r| !r.archived) {
        return Err(Reply::validation(format!(
            "Object type {object_type} still has records; delete them before deleting the schema."
        )));
    }
    store.remove_custom_type(i);
    Ok(Reply::empty(204))
}

pub(crate) fn schema_association_create(ctx: &Ctx<'_>, object_type: &str) -> HsResult<Reply> {
    ctx.require(&schema_scopes(Access::Write))?;
    let body: SchemaAssociation = parse_body(ctx.body)?;
    let mut guard = ctx.store();
    let store = &mut *guard;
    let i = custom_index(store, object_type)?;
    let from = match &body.from_object_type_id {
        Some(f) => store.type_id_of(f).ok_or_else(|| unknown_type(f))?,
        None => store.object_type(i).type_id.clone(),
    };
    let to = store.type_id_of(&body.to_object_type_id).ok_or_else(|| unknown_type(&body.to_object_type_id))?;
    let id = store.associations.declare(&from, &to);
    let name = body.name.unwrap_or_else(|| format!("{}_to_{}", from.replace('-', "_"), to.replace('-', "_")));
    let stamp = crate::clock::iso_millis(ctx.now);
    Ok(Reply::json(
        201,
        &json!({
            "id": id.to_string(),
            "fromObjectTypeId": from,
            "toObjectTypeId": to,
            "name": name,
            "createdAt": stamp,
            "updatedAt": stamp,
        }),
    ))
}
