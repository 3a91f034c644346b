//! Property definitions: HubSpot's default properties for the standard objects, the JSON the
//! properties API returns for one, and the check of a written value against its definition
//! (hubspot-api.md §1.7 error codes, §2.1 value formats).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::{self, DateProblem};

/// The `type` of a property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PropType {
    String,
    Number,
    Bool,
    Enumeration,
    Date,
    DateTime,
    PhoneNumber,
    Json,
    ObjectCoordinates,
}

impl PropType {
    pub(crate) fn parse(s: &str) -> Option<PropType> {
        Some(match s {
            "string" => PropType::String,
            "number" => PropType::Number,
            "bool" => PropType::Bool,
            "enumeration" => PropType::Enumeration,
            "date" => PropType::Date,
            "datetime" => PropType::DateTime,
            "phone_number" => PropType::PhoneNumber,
            "json" => PropType::Json,
            "object_coordinates" => PropType::ObjectCoordinates,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PropType::String => "string",
            PropType::Number => "number",
            PropType::Bool => "bool",
            PropType::Enumeration => "enumeration",
            PropType::Date => "date",
            PropType::DateTime => "datetime",
            PropType::PhoneNumber => "phone_number",
            PropType::Json => "json",
            PropType::ObjectCoordinates => "object_coordinates",
        }
    }

    /// The `fieldType`s HubSpot allows for this type (properties guide).
    pub(crate) fn allows_field_type(self, field_type: &str) -> bool {
        match self {
            PropType::Bool => matches!(field_type, "booleancheckbox" | "calculation_equation"),
            PropType::Enumeration => {
                matches!(field_type, "booleancheckbox" | "checkbox" | "radio" | "select" | "calculation_equation")
            }
            PropType::Date | PropType::DateTime => field_type == "date",
            PropType::String => {
                matches!(field_type, "file" | "text" | "textarea" | "calculation_equation" | "html" | "phonenumber")
            }
            PropType::Number => matches!(field_type, "number" | "calculation_equation"),
            PropType::PhoneNumber => matches!(field_type, "phonenumber" | "text"),
            PropType::Json | PropType::ObjectCoordinates => true,
        }
    }
}

/// One option of an enumeration property.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PropOption {
    pub label: String,
    pub value: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub display_order: i64,
    #[serde(default)]
    pub hidden: bool,
}

impl PropOption {
    fn to_json(&self) -> Value {
        json!({
            "label": self.label,
            "value": self.value,
            "description": self.description,
            "displayOrder": self.display_order,
            "hidden": self.hidden,
        })
    }
}

/// A property as the portal defines it.
#[derive(Clone, Debug)]
pub(crate) struct PropertyDef {
    pub name: Arc<str>,
    pub label: String,
    pub ptype: PropType,
    pub field_type: String,
    pub group_name: String,
    pub description: String,
    pub options: Vec<PropOption>,
    pub has_unique_value: bool,
    /// `modificationMetadata.readOnlyValue`: the API refuses writes.
    pub read_only: bool,
    pub hubspot_defined: bool,
    pub hidden: bool,
    pub form_field: bool,
    pub display_order: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived: bool,
}

/// Why a written value was refused: HubSpot's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueError {
    pub code: &'static str,
    pub message: String,
}

const MAX_STRING_CHARS: usize = 65_536;
/// The user id the emulator reports for writes made through the API (`createdUserId`,
/// lists' `createdById`).
pub(crate) const API_USER_ID: &str = "1";

impl PropertyDef {
    /// The `Property` JSON the properties API returns.
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({
            "updatedAt": clock::iso_millis(self.updated_at),
            "createdAt": clock::iso_millis(self.created_at),
            "name": &*self.name,
            "label": self.label,
            "type": self.ptype.as_str(),
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options.iter().map(PropOption::to_json).collect::<Vec<_>>(),
            "displayOrder": self.display_order,
            "calculated": false,
            "externalOptions": false,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "formField": self.form_field,
            "dataSensitivity": "non_sensitive",
        });
        if self.hubspot_defined {
            v["hubspotDefined"] = json!(true);
        } else {
            // Properties created through the API name the user behind the app (§9.1).
            v["createdUserId"] = json!(API_USER_ID);
            v["updatedUserId"] = json!(API_USER_ID);
        }
        if self.archived {
            v["archived"] = json!(true);
            v["archivedAt"] = json!(clock::iso_millis(self.updated_at));
        } else {
            v["archived"] = json!(false);
        }
        v
    }

    fn allowed_labels(&self) -> String {
        if self.options.is_empty() && self.ptype == PropType::Bool {
            return "true, false".to_string();
        }
        self.options.iter().map(|o| o.label.as_str()).collect::<Vec<_>>().join(", ")
    }

    fn has_option(&self, value: &str) -> bool {
        self.options.iter().any(|o| o.value == value)
    }

    fn invalid_option(&self, value: &str) -> ValueError {
        ValueError {
            code: "INVALID_OPTION",
            message: format!("{value} was not one of the allowed options: [{}]", self.allowed_labels()),
        }
    }

    /// Checks a written value and returns it as stored; `Cow::Borrowed` means "exactly as
    /// written", so the caller can keep the string it already owns. `""` clears the property.
    /// `current` is the record's value, for multi-checkbox appends (a leading `;`).
    pub(crate) fn normalize<'a>(
        &self,
        raw: &'a str,
        current: Option<&str>,
        is_contact_email: bool,
    ) -> Result<Cow<'a, str>, ValueError> {
        if raw.is_empty() {
            return Ok(Cow::Borrowed(raw));
        }
        match self.ptype {
            PropType::String | PropType::PhoneNumber => {
                if is_contact_email {
                    let email = raw.trim();
                    if !is_valid_email(email) {
                        return Err(ValueError {
                            code: "INVALID_EMAIL",
                            message: format!("Email address {raw} is invalid"),
                        });
                    }
                    if email.len() == raw.len() && !email.bytes().any(|b| b.is_ascii_uppercase()) {
                        return Ok(Cow::Borrowed(raw));
                    }
                    return Ok(Cow::Owned(email.to_ascii_lowercase()));
                }
                if raw.len() > MAX_STRING_CHARS && raw.chars().count() > MAX_STRING_CHARS {
                    return Err(ValueError {
                        code: "INVALID_STRING",
                        message: format!(
                            "Property \"{}\" value is longer than {MAX_STRING_CHARS} characters",
                            self.name
                        ),
                    });
                }
                Ok(Cow::Borrowed(raw))
            }
            PropType::Number => {
                let v = raw.trim();
                match v.parse::<f64>() {
                    Ok(n) if n.is_finite() && v.len() == raw.len() => Ok(Cow::Borrowed(raw)),
                    Ok(n) if n.is_finite() => Ok(Cow::Owned(v.to_string())),
                    _ => Err(invalid_number(raw)),
                }
            }
            PropType::Bool => match raw {
                "true" | "false" => Ok(Cow::Borrowed(raw)),
                _ => match raw.trim().to_ascii_lowercase().as_str() {
                    "true" => Ok(Cow::Owned("true".into())),
                    "false" => Ok(Cow::Owned("false".into())),
                    _ => Err(self.invalid_option(raw)),
                },
            },
            PropType::Enumeration if self.field_type == "checkbox" => {
                let (append, list) = match raw.strip_prefix(';') {
                    Some(rest) => (true, rest),
                    None => (false, raw),
                };
                let mut values: Vec<&str> = Vec::new();
                if append {
                    values.extend(current.unwrap_or_default().split(';').filter(|v| !v.is_empty()));
                }
                for part in list.split(';').filter(|v| !v.is_empty()) {
                    if !self.has_option(part) {
                        return Err(self.invalid_option(part));
                    }
                    if !values.contains(&part) {
                        values.push(part);
                    }
                }
                Ok(Cow::Owned(values.join(";")))
            }
            PropType::Enumeration => {
                if self.has_option(raw) {
                    Ok(Cow::Borrowed(raw))
                } else {
                    Err(self.invalid_option(raw))
                }
            }
            PropType::Date => match clock::parse_date(raw) {
                Ok(d) => Ok(Cow::Owned(d.format("%Y-%m-%d").to_string())),
                Err(DateProblem::NotMidnight(at)) => {
                    Err(ValueError { code: "INVALID_DATE", message: format!("{raw} is at {at} UTC, not midnight!") })
                }
                Err(DateProblem::Unparsable) => Err(invalid_long(raw)),
            },
            PropType::DateTime => match clock::parse_datetime(raw) {
                Some(ms) => Ok(Cow::Owned(clock::iso_millis(ms))),
                None => Err(invalid_long(raw)),
            },
            PropType::Json | PropType::ObjectCoordinates => Ok(Cow::Borrowed(raw)),
        }
    }
}

/// A number property given a non-number: `INVALID_INTEGER`, "... was not a valid number."
/// (hubspot-api.md §9.1; dates and datetimes keep `INVALID_LONG`).
fn invalid_number(raw: &str) -> ValueError {
    ValueError { code: "INVALID_INTEGER", message: format!("{raw} was not a valid number.") }
}

fn invalid_long(raw: &str) -> ValueError {
    ValueError { code: "INVALID_LONG", message: format!("{raw} was not a valid long.") }
}

/// A plausible address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub(crate) fn is_valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    if local.is_empty() || domain.contains('@') || s.chars().any(char::is_whitespace) {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
}

/// A property name HubSpot accepts: lowercase letters, digits and underscores, starting with
/// a letter.
pub(crate) fn is_valid_property_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The body of `POST /crm/v3/properties/{objectType}` (`PropertyCreate`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PropertyCreate {
    pub name: Option<String>,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub ptype: Option<String>,
    pub field_type: Option<String>,
    pub group_name: Option<String>,
    pub description: Option<String>,
    pub options: Option<Vec<PropOption>>,
    pub has_unique_value: Option<bool>,
    pub hidden: Option<bool>,
    pub form_field: Option<bool>,
    pub display_order: Option<i64>,
}

impl PropertyCreate {
    /// Checks the definition and makes it; `Err` carries the 400 message.
    pub(crate) fn build(self, now: i64, default_group: &str, defaults: bool) -> Result<PropertyDef, String> {
        // Custom object schemas default properties to string/text (schemas guide).
        let (ptype, field_type) = if defaults {
            (self.ptype.or(Some("string".into())), self.field_type.or(Some("text".into())))
        } else {
            (self.ptype, self.field_type)
        };
        let group_name = if defaults { self.group_name.or(Some(default_group.into())) } else { self.group_name };
        let label = if defaults { self.label.or_else(|| self.name.clone()) } else { self.label };
        let mut missing = Vec::new();
        for (field, value) in [
            ("name", &self.name),
            ("label", &label),
            ("type", &ptype),
            ("fieldType", &field_type),
            ("groupName", &group_name),
        ] {
            if value.as_deref().is_none_or(str::is_empty) {
                missing.push(field);
            }
        }
        if !missing.is_empty() {
            return Err(format!("Missing required property definition fields: {}", missing.join(", ")));
        }
        let name = self.name.unwrap_or_default();
        if !is_valid_property_name(&name) {
            return Err(format!(
                "Property name {name} is invalid: use lowercase letters, numbers and underscores, starting with a letter"
            ));
        }
        let type_name = ptype.unwrap_or_default();
        let field_type = field_type.unwrap_or_default();
        let Some(ptype) = PropType::parse(&type_name) else {
            return Err(format!("{type_name} is not a valid property type"));
        };
        if !ptype.allows_field_type(&field_type) {
            return Err(format!("fieldType {field_type} is not valid for a property of type {type_name}"));
        }
        let mut options = self.options.unwrap_or_default();
        if ptype == PropType::Bool && options.is_empty() {
            options = vec![option("true", "Yes", 0), option("false", "No", 1)];
        }
        Ok(PropertyDef {
            name: Arc::from(name.as_str()),
            label: label.unwrap_or_default(),
            ptype,
            field_type,
            group_name: group_name.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            options,
            has_unique_value: self.has_unique_value.unwrap_or(false),
            read_only: false,
            hubspot_defined: false,
            hidden: self.hidden.unwrap_or(false),
            form_field: self.form_field.unwrap_or(true),
            display_order: self.display_order.unwrap_or(-1),
            created_at: now,
            updated_at: now,
            archived: false,
        })
    }
}

fn option(value: &str, label: &str, order: i64) -> PropOption {
    PropOption {
        label: label.to_string(),
        value: value.to_string(),
        description: String::new(),
        display_order: order,
        hidden: false,
    }
}

/// HubSpot's labels for the default options whose label is not the title-cased value.
fn known_label(value: &str) -> Option<&'static str> {
    Some(match value {
        "marketingqualifiedlead" => "Marketing Qualified Lead",
        "salesqualifiedlead" => "Sales Qualified Lead",
        "appointmentscheduled" => "Appointment Scheduled",
        "qualifiedtobuy" => "Qualified To Buy",
        "presentationscheduled" => "Presentation Scheduled",
        "decisionmakerboughtin" => "Decision Maker Bought-In",
        "contractsent" => "Contract Sent",
        "closedwon" => "Closed Won",
        "closedlost" => "Closed Lost",
        "newbusiness" => "New Business",
        "existingbusiness" => "Existing Business",
        "default" => "Sales Pipeline",
        "0" => "Support Pipeline",
        "1" => "New",
        "2" => "Waiting on contact",
        "3" => "Waiting on us",
        "4" => "Closed",
        _ => return None,
    })
}

/// `COMPUTER_SOFTWARE` -> `Computer Software`, or HubSpot's own label where it differs.
fn label_of(value: &str) -> String {
    if let Some(label) = known_label(value) {
        return label.to_string();
    }
    value
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            let mut chars = lower.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Kind shorthand for the seed table.
#[derive(Clone, Copy)]
enum K {
    Text,
    TextArea,
    Phone,
    Number,
    DateTime,
    /// Single-select enumeration with these option values.
    Select(&'static [&'static str]),
    /// Multi-select checkbox enumeration.
    Checkbox(&'static [&'static str]),
    /// Read-only, maintained by the emulator.
    ReadOnlyNumber,
    ReadOnlyDateTime,
    ReadOnlyText,
    ReadOnlyBool,
}

fn seed(name: &str, label: &str, kind: K, group: &str, order: i64, now: i64) -> PropertyDef {
    let (ptype, field_type, options, read_only): (PropType, &str, &[&str], bool) = match kind {
        K::Text => (PropType::String, "text", &[], false),
        K::TextArea => (PropType::String, "textarea", &[], false),
        K::Phone => (PropType::String, "phonenumber", &[], false),
        K::Number => (PropType::Number, "number", &[], false),
        K::DateTime => (PropType::DateTime, "date", &[], false),
        K::Select(values) => (PropType::Enumeration, "select", values, false),
        K::Checkbox(values) => (PropType::Enumeration, "checkbox", values, false),
        K::ReadOnlyNumber => (PropType::Number, "number", &[], true),
        K::ReadOnlyDateTime => (PropType::DateTime, "date", &[], true),
        K::ReadOnlyText => (PropType::String, "text", &[], true),
        K::ReadOnlyBool => (PropType::Bool, "booleancheckbox", &["true", "false"], true),
    };
    PropertyDef {
        name: Arc::from(name),
        label: label.to_string(),
        ptype,
        field_type: field_type.to_string(),
        group_name: group.to_string(),
        description: String::new(),
        options: options.iter().enumerate().map(|(i, v)| option(v, &label_of(v), i as i64)).collect(),
        has_unique_value: false,
        read_only,
        hubspot_defined: true,
        hidden: false,
        form_field: !read_only,
        display_order: order,
        created_at: now,
        updated_at: now,
        archived: false,
    }
}

const LIFECYCLE_STAGES: &[&str] = &[
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];
const LEAD_STATUSES: &[&str] =
    &["NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING"];
const COMPANY_TYPES: &[&str] = &["PROSPECT", "PARTNER", "RESELLER", "VENDOR", "OTHER"];
const DEAL_STAGES: &[&str] = &[
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];
const DEAL_TYPES: &[&str] = &["newbusiness", "existingbusiness"];
const PIPELINES: &[&str] = &["default"];
const TICKET_PIPELINES: &[&str] = &["0"];
const TICKET_STAGES: &[&str] = &["1", "2", "3", "4"];
const TICKET_PRIORITIES: &[&str] = &["LOW", "MEDIUM", "HIGH", "URGENT"];
const TICKET_CATEGORIES: &[&str] = &["PRODUCT_ISSUE", "BILLING_ISSUE", "FEATURE_REQUEST", "GENERAL_INQUIRY"];
const TASK_STATUSES: &[&str] = &["NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"];
const TASK_PRIORITIES: &[&str] = &["NONE", "LOW", "MEDIUM", "HIGH"];
const MEETING_OUTCOMES: &[&str] = &["SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"];
const CALL_DIRECTIONS: &[&str] = &["INBOUND", "OUTBOUND"];
const EMAIL_DIRECTIONS: &[&str] = &["EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"];
const CHANNELS: &[&str] = &["WHATS_APP", "LINKEDIN_MESSAGE", "SMS"];
/// HubSpot's `industry` options for companies.
const INDUSTRIES: &[&str] = &[
    "ACCOUNTING",
    "AIRLINES_AVIATION",
    "ALTERNATIVE_DISPUTE_RESOLUTION",
    "ALTERNATIVE_MEDICINE",
    "ANIMATION",
    "APPAREL_FASHION",
    "ARCHITECTURE_PLANNING",
    "ARTS_AND_CRAFTS",
    "AUTOMOTIVE",
    "AVIATION_AEROSPACE",
    "BANKING",
    "BIOTECHNOLOGY",
    "BROADCAST_MEDIA",
    "BUILDING_MATERIALS",
    "BUSINESS_SUPPLIES_AND_EQUIPMENT",
    "CAPITAL_MARKETS",
    "CHEMICALS",
    "CIVIC_SOCIAL_ORGANIZATION",
    "CIVIL_ENGINEERING",
    "COMMERCIAL_REAL_ESTATE",
    "COMPUTER_NETWORK_SECURITY",
    "COMPUTER_GAMES",
    "COMPUTER_HARDWARE",
    "COMPUTER_NETWORKING",
    "COMPUTER_SOFTWARE",
    "INTERNET",
    "CONSTRUCTION",
    "CONSUMER_ELECTRONICS",
    "CONSUMER_GOODS",
    "CONSUMER_SERVICES",
    "COSMETICS",
    "DAIRY",
    "DEFENSE_SPACE",
    "DESIGN",
    "EDUCATION_MANAGEMENT",
    "E_LEARNING",
    "ELECTRICAL_ELECTRONIC_MANUFACTURING",
    "ENTERTAINMENT",
    "ENVIRONMENTAL_SERVICES",
    "EVENTS_SERVICES",
    "EXECUTIVE_OFFICE",
    "FACILITIES_SERVICES",
    "FARMING",
    "FINANCIAL_SERVICES",
    "FINE_ART",
    "FISHERY",
    "FOOD_BEVERAGES",
    "FOOD_PRODUCTION",
    "FUND_RAISING",
    "FURNITURE",
    "GAMBLING_CASINOS",
    "GLASS_CERAMICS_CONCRETE",
    "GOVERNMENT_ADMINISTRATION",
    "GOVERNMENT_RELATIONS",
    "GRAPHIC_DESIGN",
    "HEALTH_WELLNESS_AND_FITNESS",
    "HIGHER_EDUCATION",
    "HOSPITAL_HEALTH_CARE",
    "HOSPITALITY",
    "HUMAN_RESOURCES",
    "IMPORT_AND_EXPORT",
    "INDIVIDUAL_FAMILY_SERVICES",
    "INDUSTRIAL_AUTOMATION",
    "INFORMATION_SERVICES",
    "INFORMATION_TECHNOLOGY_AND_SERVICES",
    "INSURANCE",
    "INTERNATIONAL_AFFAIRS",
    "INTERNATIONAL_TRADE_AND_DEVELOPMENT",
    "INVESTMENT_BANKING",
    "INVESTMENT_MANAGEMENT",
    "JUDICIARY",
    "LAW_ENFORCEMENT",
    "LAW_PRACTICE",
    "LEGAL_SERVICES",
    "LEGISLATIVE_OFFICE",
    "LEISURE_TRAVEL_TOURISM",
    "LIBRARIES",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "LUXURY_GOODS_JEWELRY",
    "MACHINERY",
    "MANAGEMENT_CONSULTING",
    "MARITIME",
    "MARKET_RESEARCH",
    "MARKETING_AND_ADVERTISING",
    "MECHANICAL_OR_INDUSTRIAL_ENGINEERING",
    "MEDIA_PRODUCTION",
    "MEDICAL_DEVICES",
    "MEDICAL_PRACTICE",
    "MENTAL_HEALTH_CARE",
    "MILITARY",
    "MINING_METALS",
    "MOBILE_GAMES",
    "MOTION_PICTURES_AND_FILM",
    "MUSEUMS_AND_INSTITUTIONS",
    "MUSIC",
    "NANOTECHNOLOGY",
    "NEWSPAPERS",
    "NON_PROFIT_ORGANIZATION_MANAGEMENT",
    "OIL_ENERGY",
    "ONLINE_MEDIA",
    "OUTSOURCING_OFFSHORING",
    "PACKAGE_FREIGHT_DELIVERY",
    "PACKAGING_AND_CONTAINERS",
    "PAPER_FOREST_PRODUCTS",
    "PERFORMING_ARTS",
    "PHARMACEUTICALS",
    "PHILANTHROPY",
    "PHOTOGRAPHY",
    "PLASTICS",
    "POLITICAL_ORGANIZATION",
    "PRIMARY_SECONDARY_EDUCATION",
    "PRINTING",
    "PROFESSIONAL_TRAINING_COACHING",
    "PROGRAM_DEVELOPMENT",
    "PUBLIC_POLICY",
    "PUBLIC_RELATIONS_AND_COMMUNICATIONS",
    "PUBLIC_SAFETY",
    "PUBLISHING",
    "RAILROAD_MANUFACTURE",
    "RANCHING",
    "REAL_ESTATE",
    "RECREATIONAL_FACILITIES_AND_SERVICES",
    "RELIGIOUS_INSTITUTIONS",
    "RENEWABLES_ENVIRONMENT",
    "RESEARCH",
    "RESTAURANTS",
    "RETAIL",
    "SECURITY_AND_INVESTIGATIONS",
    "SEMICONDUCTORS",
    "SHIPBUILDING",
    "SPORTING_GOODS",
    "SPORTS",
    "STAFFING_AND_RECRUITING",
    "SUPERMARKETS",
    "TELECOMMUNICATIONS",
    "TEXTILES",
    "THINK_TANKS",
    "TOBACCO",
    "TRANSLATION_AND_LOCALIZATION",
    "TRANSPORTATION_TRUCKING_RAILROAD",
    "UTILITIES",
    "VENTURE_CAPITAL_PRIVATE_EQUITY",
    "VETERINARY",
    "WAREHOUSING",
    "WHOLESALE",
    "WINE_AND_SPIRITS",
    "WIRELESS",
    "WRITING_AND_EDITING",
];

/// The property that holds a record's creation time: `createdate` on the older standard
/// objects, `hs_createdate` on engagements, quotes, leads and custom objects.
pub(crate) fn created_property(type_id: &str) -> &'static str {
    match type_id {
        "0-1" | "0-2" | "0-3" | "0-5" | "0-7" | "0-8" => "createdate",
        _ => "hs_createdate",
    }
}

/// HubSpot's default properties for a standard object (by type id), or the base properties
/// every custom object has.
pub(crate) fn default_properties(type_id: &str, now: i64) -> Vec<PropertyDef> {
    use K::*;
    let singular = hubspot_model::objects::standard_object(type_id).map(|o| o.singular).unwrap_or("object");
    let group = match type_id {
        "0-1" => "contactinformation".to_string(),
        "0-2" => "companyinformation".to_string(),
        "0-3" => "dealinformation".to_string(),
        "0-5" => "ticketinformation".to_string(),
        _ => format!("{singular}information"),
    };
    let own: &[(&str, &str, K)] = match type_id {
        "0-1" => &[
            ("email", "Email", Text),
            ("firstname", "First Name", Text),
            ("lastname", "Last Name", Text),
            ("phone", "Phone Number", Phone),
            ("mobilephone", "Mobile Phone Number", Phone),
            ("company", "Company Name", Text),
            ("website", "Website URL", Text),
            ("jobtitle", "Job Title", Text),
            ("address", "Street Address", Text),
            ("city", "City", Text),
            ("state", "State/Region", Text),
            ("country", "Country/Region", Text),
            ("zip", "Postal Code", Text),
            ("lifecyclestage", "Lifecycle Stage", Select(LIFECYCLE_STAGES)),
            ("hs_lead_status", "Lead Status", Select(LEAD_STATUSES)),
            ("lastmodifieddate", "Last Modified Date", ReadOnlyDateTime),
            ("hs_email_domain", "Email Domain", ReadOnlyText),
            ("hs_is_contact", "Is a contact", ReadOnlyBool),
            ("hs_all_contact_vids", "All vids for a contact", ReadOnlyText),
        ],
        "0-2" => &[
            ("name", "Company name", Text),
            ("domain", "Company Domain Name", Text),
            ("website", "Website URL", Text),
            ("industry", "Industry", Select(INDUSTRIES)),
            ("phone", "Phone Number", Phone),
            ("address", "Street Address", Text),
            ("city", "City", Text),
            ("state", "State/Region", Text),
            ("country", "Country/Region", Text),
            ("zip", "Postal Code", Text),
            ("description", "Description", TextArea),
            ("numberofemployees", "Number of Employees", Number),
            ("annualrevenue", "Annual Revenue", Number),
            ("lifecyclestage", "Lifecycle Stage", Select(LIFECYCLE_STAGES)),
            ("type", "Type", Select(COMPANY_TYPES)),
            ("num_associated_contacts", "Number of Associated Contacts", ReadOnlyNumber),
        ],
        "0-3" => &[
            ("dealname", "Deal Name", Text),
            ("amount", "Amount", Number),
            ("dealstage", "Deal Stage", Select(DEAL_STAGES)),
            ("pipeline", "Pipeline", Select(PIPELINES)),
            ("closedate", "Close Date", DateTime),
            ("dealtype", "Deal Type", Select(DEAL_TYPES)),
            ("description", "Deal Description", TextArea),
            ("hs_createdate", "HubSpot Create Date", ReadOnlyDateTime),
            ("hs_is_closed", "Is Deal Closed?", ReadOnlyBool),
            ("days_to_close", "Days to close", ReadOnlyNumber),
            ("amount_in_home_currency", "Amount in company currency", ReadOnlyNumber),
        ],
        "0-5" => &[
            ("subject", "Ticket name", Text),
            ("content", "Ticket description", TextArea),
            ("hs_pipeline", "Pipeline", Select(TICKET_PIPELINES)),
            ("hs_pipeline_stage", "Ticket status", Select(TICKET_STAGES)),
            ("hs_ticket_priority", "Priority", Select(TICKET_PRIORITIES)),
            ("hs_ticket_category", "Category", Checkbox(TICKET_CATEGORIES)),
        ],
        "0-7" => &[
            ("name", "Name", Text),
            ("description", "Description", TextArea),
            ("price", "Unit price", Number),
            ("hs_sku", "SKU", Text),
            ("hs_cost_of_goods_sold", "Unit cost", Number),
        ],
        "0-8" => &[
            ("name", "Name", Text),
            ("description", "Description", TextArea),
            ("quantity", "Quantity", Number),
            ("price", "Unit price", Number),
            ("amount", "Net price", Number),
            ("hs_product_id", "Product ID", Number),
            ("hs_sku", "SKU", Text),
        ],
        "0-14" => &[
            ("hs_title", "Quote name", Text),
            ("hs_expiration_date", "Expiration date", DateTime),
            ("hs_status", "Quote approval status", Text),
        ],
        "0-18" => &[
            ("hs_communication_channel_type", "Channel type", Select(CHANNELS)),
            ("hs_communication_body", "Communication body", TextArea),
            ("hs_timestamp", "Activity date", DateTime),
        ],
        "0-27" => &[
            ("hs_task_subject", "Task Title", Text),
            ("hs_task_body", "Notes", TextArea),
            ("hs_task_status", "Task Status", Select(TASK_STATUSES)),
            ("hs_task_priority", "Priority", Select(TASK_PRIORITIES)),
            ("hs_timestamp", "Due date", DateTime),
        ],
        "0-46" => &[("hs_note_body", "Note body", TextArea), ("hs_timestamp", "Activity date", DateTime)],
        "0-47" => &[
            ("hs_meeting_title", "Meeting name", Text),
            ("hs_meeting_body", "Meeting description", TextArea),
            ("hs_meeting_start_time", "Start Time", DateTime),
            ("hs_meeting_end_time", "End Time", DateTime),
            ("hs_meeting_outcome", "Meeting outcome", Select(MEETING_OUTCOMES)),
            ("hs_timestamp", "Activity date", DateTime),
        ],
        "0-48" => &[
            ("hs_call_title", "Call Title", Text),
            ("hs_call_body", "Call notes", TextArea),
            ("hs_call_duration", "Call duration", Number),
            ("hs_call_direction", "Call direction", Select(CALL_DIRECTIONS)),
            ("hs_timestamp", "Activity date", DateTime),
        ],
        "0-49" => &[
            ("hs_email_subject", "Email subject", Text),
            ("hs_email_text", "Email body", TextArea),
            ("hs_email_direction", "Email direction", Select(EMAIL_DIRECTIONS)),
            ("hs_timestamp", "Activity date", DateTime),
        ],
        "0-136" => &[("hs_lead_name", "Lead name", Text)],
        _ => &[],
    };
    let mut props: Vec<PropertyDef> = own
        .iter()
        .enumerate()
        .map(|(i, (name, label, kind))| seed(name, label, *kind, &group, i as i64, now))
        .collect();
    let base = own.len() as i64;
    let mut system: Vec<(&str, &str, K)> = vec![
        ("hs_object_id", "Record ID", ReadOnlyNumber),
        (created_property(type_id), "Create Date", ReadOnlyDateTime),
        ("hs_object_source", "Record source", ReadOnlyText),
        ("hs_object_source_id", "Record source detail 1", ReadOnlyText),
        ("hs_object_source_label", "Record source label", ReadOnlyText),
        ("hs_merged_object_ids", "Merged record IDs", ReadOnlyText),
    ];
    // Contacts carry `lastmodifieddate` (in their own list above), never `hs_lastmodifieddate`.
    if type_id != "0-1" {
        system.push(("hs_lastmodifieddate", "Last Modified Date", ReadOnlyDateTime));
    }
    for (i, (name, label, kind)) in system.into_iter().enumerate() {
        props.push(seed(name, label, kind, &group, base + i as i64, now));
    }
    props
}

/// What HubSpot reports as the source of a record written through the API.
pub(crate) const OBJECT_SOURCE: &str = "INTEGRATION";
/// The app id the emulator reports as every record's `hs_object_source_id` (a real portal
/// reports the writing app's id).
pub(crate) const OBJECT_SOURCE_ID: &str = "1000001";

/// The property that holds a record's last change: `lastmodifieddate` on contacts,
/// `hs_lastmodifieddate` on every other type.
pub(crate) fn last_modified_property(type_id: &str) -> &'static str {
    if type_id == "0-1" {
        "lastmodifieddate"
    } else {
        "hs_lastmodifieddate"
    }
}

/// The read-only values HubSpot maintains on a record after a write (hubspot-api.md §9.1):
/// `(name, value)`, `None` to clear. `props` holds the record's values after the write.
/// Names the type does not define are skipped by the caller.
pub(crate) fn system_values(
    type_id: &str,
    props: &BTreeMap<Arc<str>, String>,
    id: u64,
    now: i64,
    created: bool,
) -> Vec<(&'static str, Option<String>)> {
    let stamp = clock::iso_millis(now);
    let get = |name: &str| props.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let mut out: Vec<(&'static str, Option<String>)> = Vec::with_capacity(12);
    if created {
        out.push(("hs_object_id", Some(id.to_string())));
        out.push((created_property(type_id), Some(stamp.clone())));
        if type_id == "0-3" {
            out.push(("hs_createdate", Some(stamp.clone())));
        }
        out.push(("hs_object_source", Some(OBJECT_SOURCE.to_string())));
        out.push(("hs_object_source_id", Some(OBJECT_SOURCE_ID.to_string())));
        out.push(("hs_object_source_label", Some(OBJECT_SOURCE.to_string())));
        match type_id {
            "0-1" => {
                out.push(("hs_all_contact_vids", Some(id.to_string())));
                out.push(("hs_is_contact", Some("true".to_string())));
            }
            "0-2" => out.push(("num_associated_contacts", Some("0".to_string()))),
            _ => {}
        }
        // A contact or company created without a lifecycle stage starts as a lead.
        if matches!(type_id, "0-1" | "0-2") && get("lifecyclestage").is_none() {
            out.push(("lifecyclestage", Some("lead".to_string())));
        }
    }
    out.push((last_modified_property(type_id), Some(stamp)));
    match type_id {
        "0-1" => {
            out.push(("hs_email_domain", get("email").and_then(|e| e.split_once('@')).map(|(_, d)| d.to_string())))
        }
        "0-2" => {
            if let (None, Some(domain)) = (get("website"), get("domain")) {
                out.push(("website", Some(domain.to_string())));
            }
        }
        "0-3" => {
            let closed = get("dealstage").is_some_and(|s| s == "closedwon" || s == "closedlost");
            out.push(("hs_is_closed", Some(closed.to_string())));
            out.push(("amount_in_home_currency", get("amount").map(String::from)));
            let created_ms = get("createdate").and_then(clock::parse_datetime).unwrap_or(now);
            let days = get("closedate")
                .and_then(clock::parse_datetime)
                .map(|close| (close - created_ms).div_euclid(86_400_000).max(0))
                .unwrap_or(0);
            out.push(("days_to_close", Some(days.to_string())));
        }
        _ => {}
    }
    out
}

/// The properties a read returns when the request names none (HubSpot's defaults).
pub(crate) fn default_read_properties(type_id: &str) -> &'static [&'static str] {
    match type_id {
        "0-1" => &["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
        "0-2" => &["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
        "0-3" => &[
            "amount",
            "closedate",
            "createdate",
            "dealname",
            "dealstage",
            "hs_lastmodifieddate",
            "hs_object_id",
            "pipeline",
        ],
        "0-5" => &[
            "content",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
            "hs_pipeline",
            "hs_pipeline_stage",
            "hs_ticket_category",
            "hs_ticket_priority",
            "subject",
        ],
        "0-7" | "0-8" => &["createdate", "hs_lastmodifieddate", "hs_object_id", "name", "price", "quantity"],
        _ => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
    }
}

/// The properties a read always returns beside the requested ones.
pub(crate) fn always_read_properties(type_id: &str) -> &'static [&'static str] {
    match type_id {
        "0-1" => &["createdate", "hs_object_id", "lastmodifieddate"],
        "0-2" | "0-3" | "0-5" | "0-7" | "0-8" => &["createdate", "hs_lastmodifieddate", "hs_object_id"],
        _ => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
    }
}

/// The properties free-text search (`query`) looks in.
pub(crate) fn query_properties(type_id: &str) -> &'static [&'static str] {
    match type_id {
        "0-1" => &["firstname", "lastname", "email", "phone", "company", "website"],
        "0-2" => &["name", "domain", "website", "phone"],
        "0-3" => &["dealname"],
        "0-5" => &["subject", "content"],
        _ => &["name", "hs_object_id"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str) -> PropertyDef {
        default_properties("0-1", 0).into_iter().find(|p| &*p.name == name).unwrap()
    }

    #[test]
    fn checks_values_as_hubspot_does() {
        let email = def("email");
        assert_eq!(email.normalize("Ann@Example.com", None, true).unwrap(), "ann@example.com");
        let bad = email.normalize("example.lcom", None, true).unwrap_err();
        assert_eq!((bad.code, bad.message.as_str()), ("INVALID_EMAIL", "Email address example.lcom is invalid"));
        let stage = def("lifecyclestage");
        assert_eq!(stage.normalize("lead", None, false).unwrap(), "lead");
        let bad = stage.normalize("Hot", None, false).unwrap_err();
        assert_eq!(bad.code, "INVALID_OPTION");
        assert!(bad.message.starts_with("Hot was not one of the allowed options: [Subscriber, Lead,"));
        assert_eq!(def("firstname").normalize("", None, false).unwrap(), "");
    }

    #[test]
    fn numbers_and_dates() {
        let companies = default_properties("0-2", 0);
        let employees = companies.iter().find(|p| &*p.name == "numberofemployees").unwrap();
        assert_eq!(employees.normalize("42", None, false).unwrap(), "42");
        let bad = employees.normalize("1/1/1", None, false).unwrap_err();
        assert_eq!((bad.code, bad.message.as_str()), ("INVALID_INTEGER", "1/1/1 was not a valid number."));
        let mut date = def("firstname");
        date.ptype = PropType::Date;
        assert_eq!(date.normalize("1572480000000", None, false).unwrap(), "2019-10-31");
        assert_eq!(date.normalize("1572480000001", None, false).unwrap_err().code, "INVALID_DATE");
        let deals = default_properties("0-3", 0);
        let close = deals.iter().find(|p| &*p.name == "closedate").unwrap();
        assert_eq!(close.normalize("2024-05-01T10:00:00Z", None, false).unwrap(), "2024-05-01T10:00:00.000Z");
        assert_eq!(close.normalize("tomorrow", None, false).unwrap_err().code, "INVALID_LONG");
    }

    #[test]
    fn multi_checkbox_appends_with_leading_semicolon() {
        let tickets = default_properties("0-5", 0);
        let cat = tickets.iter().find(|p| &*p.name == "hs_ticket_category").unwrap();
        assert_eq!(cat.normalize("BILLING_ISSUE", None, false).unwrap(), "BILLING_ISSUE");
        assert_eq!(
            cat.normalize(";PRODUCT_ISSUE", Some("BILLING_ISSUE"), false).unwrap(),
            "BILLING_ISSUE;PRODUCT_ISSUE"
        );
        assert_eq!(cat.normalize("BILLING_ISSUE;NOPE", None, false).unwrap_err().code, "INVALID_OPTION");
    }

    #[test]
    fn emails() {
        assert!(is_valid_email("a.b+c@example.co.uk"));
        assert!(!is_valid_email("example.lcom"));
        assert!(!is_valid_email("a@b"));
        assert!(!is_valid_email("a b@example.com"));
        assert!(!is_valid_email("not-an-email"));
    }
}
