//! HubSpot's default properties for the standard objects (data): each type's own properties
//! with their labels, types and options, the system properties every record carries, and
//! which properties reads and free-text search use by default. The logic that checks and
//! stores values is in `properties.rs` and `object_type.rs`.

use std::sync::Arc;

use super::properties::{PropOption, PropType, PropertyDef};

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
        options: options.iter().enumerate().map(|(i, v)| PropOption::new(v, &label_of(v), i as i64)).collect(),
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
