//! CRM search (HubSpot docs: search; sources in docs/emulator.md): filter groups ORed, filters inside a group ANDed, one
//! sort, `after` as an offset, HubSpot's limits (groups, filters, 200 per page, 10,000
//! results, 3,000-character bodies), and the index lag: a record written less than
//! `search_index_lag_ms` ago is searched as it was before the write.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::context::{resolve_type, unknown_type, Ctx};
use super::wire::Scalar;
use crate::auth::Access;
use crate::clock;
use crate::reply::{parse_body, HsResult, Reply};
use crate::store::properties::PropType;
use crate::store::property_defaults::query_properties;
use crate::store::{ObjectType, Record, RecordJson, Selection, Store};

const PAGE_MAX: usize = 200;
const TOTAL_MAX: usize = 10_000;
const BODY_MAX_CHARS: usize = 3_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchBody {
    #[serde(default)]
    filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    sorts: Vec<Sort>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    limit: Option<Scalar>,
    #[serde(default)]
    after: Option<Scalar>,
    #[serde(default)]
    query: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FilterGroup {
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    property_name: String,
    operator: String,
    #[serde(default)]
    value: Option<Scalar>,
    #[serde(default)]
    values: Option<Vec<Scalar>>,
    #[serde(default)]
    high_value: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Sort {
    Rule {
        #[serde(rename = "propertyName")]
        property_name: String,
        #[serde(default)]
        direction: Option<String>,
    },
    Name(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    Has,
    NotHas,
    ContainsToken,
    NotContainsToken,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "EQ" => Op::Eq,
            "NEQ" => Op::Neq,
            "LT" => Op::Lt,
            "LTE" => Op::Lte,
            "GT" => Op::Gt,
            "GTE" => Op::Gte,
            "BETWEEN" => Op::Between,
            "IN" => Op::In,
            "NOT_IN" => Op::NotIn,
            "HAS_PROPERTY" => Op::Has,
            "NOT_HAS_PROPERTY" => Op::NotHas,
            "CONTAINS_TOKEN" => Op::ContainsToken,
            "NOT_CONTAINS_TOKEN" => Op::NotContainsToken,
            _ => return None,
        })
    }
}

/// How values of a property compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Numbers, dates and datetimes, compared as numbers (epoch ms for dates).
    Numeric(PropType),
    /// Enumerations and booleans: exact, case-sensitive.
    Exact,
    /// Text: case-insensitive.
    Text,
}

enum Target {
    Property(Arc<str>, Kind),
    /// `associations.{type}`: the record is associated with the given id.
    Association(String),
}

struct Compiled {
    target: Target,
    op: Op,
    value: String,
    values: Vec<String>,
    high: String,
}

fn kind_of(ptype: PropType) -> Kind {
    match ptype {
        PropType::Number | PropType::Date | PropType::DateTime => Kind::Numeric(ptype),
        PropType::Enumeration | PropType::Bool => Kind::Exact,
        _ => Kind::Text,
    }
}

fn as_number(ptype: PropType, s: &str) -> Option<f64> {
    match ptype {
        PropType::Number => s.trim().parse().ok(),
        _ => clock::parse_datetime(s).map(|ms| ms as f64),
    }
}

fn compile(store: &Store, t: &ObjectType, f: Filter) -> HsResult<Compiled> {
    let op = Op::parse(&f.operator)
        .ok_or_else(|| Reply::validation(format!("{} is not a valid filter operator", f.operator)))?;
    let target = match f.property_name.strip_prefix("associations.") {
        Some(other) => {
            let i = store.resolve(other).ok_or_else(|| unknown_type(other))?;
            let other = store.object_type(i);
            if other.is_custom() || t.is_custom() {
                return Err(Reply::validation(format!(
                    "Filtering on associations.{} is not supported for custom objects",
                    other.name
                )));
            }
            Target::Association(other.type_id.clone())
        }
        None => {
            let p = t
                .property(&f.property_name)
                .ok_or_else(|| Reply::validation(format!("Property \"{}\" does not exist", f.property_name)))?;
            Target::Property(p.name.clone(), kind_of(p.ptype))
        }
    };
    let needs_value = !matches!(op, Op::Has | Op::NotHas | Op::In | Op::NotIn);
    let value = f.value.map(|v| v.0).unwrap_or_default();
    if needs_value && value.is_empty() {
        return Err(Reply::validation(format!(
            "Filter on {} with operator {} needs a value",
            f.property_name, f.operator
        )));
    }
    let values: Vec<String> = f.values.unwrap_or_default().into_iter().map(|v| v.0).collect();
    if matches!(op, Op::In | Op::NotIn) && values.is_empty() {
        return Err(Reply::validation(format!(
            "Filter on {} with operator {} needs values",
            f.property_name, f.operator
        )));
    }
    let high = f.high_value.map(|v| v.0).unwrap_or_default();
    if op == Op::Between && high.is_empty() {
        return Err(Reply::validation(format!(
            "Filter on {} with operator BETWEEN needs a highValue",
            f.property_name
        )));
    }
    Ok(Compiled { target, op, value, values, high })
}

/// `*` wildcards, case-insensitive, against the whole text.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) =
        (pattern.to_lowercase().chars().collect(), text.to_lowercase().chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn contains_token(pattern: &str, text: &str) -> bool {
    glob(pattern, text) || text.split(|c: char| c.is_whitespace() || c == ',' || c == ';').any(|tok| glob(pattern, tok))
}

fn compare(kind: Kind, a: &str, b: &str) -> Option<Ordering> {
    match kind {
        Kind::Numeric(p) => as_number(p, a)?.partial_cmp(&as_number(p, b)?),
        Kind::Exact => Some(a.cmp(b)),
        Kind::Text => Some(a.to_lowercase().cmp(&b.to_lowercase())),
    }
}

fn equal(kind: Kind, a: &str, b: &str) -> bool {
    match kind {
        Kind::Text => a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase(),
        _ => compare(kind, a, b) == Some(Ordering::Equal),
    }
}

/// `IN` on text compares the stored value lowercased with the given value as is: HubSpot
/// says the values "must be lowercase".
fn is_in(kind: Kind, stored: &str, values: &[String]) -> bool {
    match kind {
        Kind::Text => {
            let lower = stored.to_lowercase();
            values.contains(&lower)
        }
        _ => values.iter().any(|v| equal(kind, stored, v)),
    }
}

fn matches(store: &Store, t: &ObjectType, record_id: u64, view: &BTreeMap<Arc<str>, String>, f: &Compiled) -> bool {
    let (name, kind) = match &f.target {
        Target::Association(other) => {
            let linked = |v: &str| {
                v.trim().parse::<u64>().ok().is_some_and(|id| {
                    store.associations.targets(&t.type_id, record_id, other).is_some_and(|m| m.contains_key(&id))
                })
            };
            return match f.op {
                Op::Eq => linked(&f.value),
                Op::Neq => !linked(&f.value),
                Op::In => f.values.iter().any(|v| linked(v)),
                Op::NotIn => !f.values.iter().any(|v| linked(v)),
                Op::Has => store.associations.targets(&t.type_id, record_id, other).is_some(),
                Op::NotHas => store.associations.targets(&t.type_id, record_id, other).is_none(),
                _ => false,
            };
        }
        Target::Property(name, kind) => (name, *kind),
    };
    let stored = view.get(name).map(String::as_str).filter(|v| !v.is_empty());
    match (f.op, stored) {
        (Op::Has, s) => s.is_some(),
        (Op::NotHas, s) => s.is_none(),
        (Op::Neq, None) | (Op::NotIn, None) | (Op::NotContainsToken, None) => true,
        (_, None) => false,
        (Op::Eq, Some(s)) => equal(kind, s, &f.value),
        (Op::Neq, Some(s)) => !equal(kind, s, &f.value),
        (Op::Lt, Some(s)) => compare(kind, s, &f.value) == Some(Ordering::Less),
        (Op::Lte, Some(s)) => matches!(compare(kind, s, &f.value), Some(Ordering::Less | Ordering::Equal)),
        (Op::Gt, Some(s)) => compare(kind, s, &f.value) == Some(Ordering::Greater),
        (Op::Gte, Some(s)) => matches!(compare(kind, s, &f.value), Some(Ordering::Greater | Ordering::Equal)),
        (Op::Between, Some(s)) => {
            matches!(compare(kind, s, &f.value), Some(Ordering::Greater | Ordering::Equal))
                && matches!(compare(kind, s, &f.high), Some(Ordering::Less | Ordering::Equal))
        }
        (Op::In, Some(s)) => is_in(kind, s, &f.values),
        (Op::NotIn, Some(s)) => !is_in(kind, s, &f.values),
        (Op::ContainsToken, Some(s)) => contains_token(&f.value, s),
        (Op::NotContainsToken, Some(s)) => !contains_token(&f.value, s),
    }
}

fn query_matches(t: &ObjectType, view: &BTreeMap<Arc<str>, String>, query: &str) -> bool {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return true;
    }
    let mut names: Vec<&str> = query_properties(&t.type_id).to_vec();
    if let Some(s) = &t.schema {
        names.extend(s.searchable_properties.iter().map(String::as_str));
        names.extend(s.primary_display_property.as_deref());
    }
    names.iter().filter_map(|n| view.get(*n)).any(|v| v.to_lowercase().contains(&q))
}

pub(crate) fn search(ctx: &Ctx<'_>, name: &str) -> HsResult<Reply> {
    let body: SearchBody = parse_body(ctx.body)?;
    let config = &ctx.shared.config;
    if String::from_utf8_lossy(ctx.body).chars().count() > BODY_MAX_CHARS {
        return Err(Reply::validation(format!(
            "The search request body exceeds the maximum of {BODY_MAX_CHARS} characters."
        )));
    }
    if body.filter_groups.len() > config.search_max_filter_groups {
        return Err(Reply::validation(format!(
            "Too many filter groups ({}); the maximum is {}.",
            body.filter_groups.len(),
            config.search_max_filter_groups
        )));
    }
    if let Some(g) = body.filter_groups.iter().find(|g| g.filters.len() > config.search_max_filters_per_group) {
        return Err(Reply::validation(format!(
            "Too many filters in a filter group ({}); the maximum is {}.",
            g.filters.len(),
            config.search_max_filters_per_group
        )));
    }
    let total_filters: usize = body.filter_groups.iter().map(|g| g.filters.len()).sum();
    if total_filters > config.search_max_filters_total {
        return Err(Reply::validation(format!(
            "Too many filters ({total_filters}); the maximum is {} over all filter groups.",
            config.search_max_filters_total
        )));
    }
    let number = |v: &Option<Scalar>, name: &str, default: usize| -> HsResult<usize> {
        match v {
            None => Ok(default),
            Some(s) if s.0.is_empty() => Ok(default),
            Some(s) => {
                s.0.trim().parse().map_err(|_| Reply::validation(format!("{name} {} is not a valid integer", s.0)))
            }
        }
    };
    let limit = number(&body.limit, "limit", 10)?;
    let after = number(&body.after, "after", 0)?;
    if limit > PAGE_MAX {
        return Err(Reply::validation(format!("limit {limit} is above the maximum of {PAGE_MAX} results per page.")));
    }
    if after.saturating_add(limit) > TOTAL_MAX {
        return Err(Reply::validation(format!(
            "Search results are limited to {TOTAL_MAX}; paging beyond {TOTAL_MAX} results is not supported."
        )));
    }
    if body.sorts.len() > 1 {
        return Err(Reply::validation("Only one sort is supported."));
    }

    let store = ctx.store();
    let i = resolve_type(ctx, &store, name, Access::Read)?;
    let t = store.object_type(i);
    let groups: Vec<Vec<Compiled>> = body
        .filter_groups
        .into_iter()
        .map(|g| g.filters.into_iter().map(|f| compile(&store, t, f)).collect::<HsResult<Vec<_>>>())
        .collect::<HsResult<_>>()?;
    let sort = match body.sorts.into_iter().next() {
        None => None,
        Some(Sort::Name(n)) => match n.strip_prefix('-') {
            Some(n) => Some((n.to_string(), true)),
            None => Some((n, false)),
        },
        Some(Sort::Rule { property_name, direction }) => {
            Some((property_name, direction.is_some_and(|d| d.eq_ignore_ascii_case("DESCENDING"))))
        }
    };
    let sort = match sort {
        Some((name, desc)) => {
            let p =
                t.property(&name).ok_or_else(|| Reply::validation(format!("Property \"{name}\" does not exist")))?;
            Some((p.name.clone(), kind_of(p.ptype), desc))
        }
        None => None,
    };

    let now = ctx.now;
    let query = body.query.unwrap_or_default();
    let mut hits: Vec<(&Record, &BTreeMap<Arc<str>, String>)> = t
        .records
        .values()
        .filter(|r| !r.archived)
        .filter_map(|r| r.search_view(now).map(|v| (r, v)))
        .filter(|(r, v)| groups.is_empty() || groups.iter().any(|g| g.iter().all(|f| matches(&store, t, r.id, v, f))))
        .filter(|(_, v)| query_matches(t, v, &query))
        .collect();
    if let Some((name, kind, desc)) = &sort {
        hits.sort_by(|(a, av), (b, bv)| {
            let order = match (av.get(name), bv.get(name)) {
                (Some(x), Some(y)) => compare(*kind, x, y).unwrap_or(Ordering::Equal),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            let order = if *desc { order.reverse() } else { order };
            order.then(a.id.cmp(&b.id))
        });
    }
    let total = hits.len();
    let page: Vec<Cow<'_, Record>> = hits
        .iter()
        .skip(after)
        .take(limit)
        .map(|(r, view)| {
            if std::ptr::eq(*view, &r.props) {
                Cow::Borrowed(*r)
            } else {
                Cow::Owned(Record { props: (*view).clone(), ..(*r).clone() })
            }
        })
        .collect();
    let names = t.read_selection(&body.properties);
    let selection = Selection::Named(&names);
    let results: Vec<RecordJson<'_>> = page.iter().map(|record| t.json(record, &selection)).collect();
    let mut out = json!({"total": total, "results": results});
    let next = after + page.len();
    if next < total && !page.is_empty() {
        out["paging"] = json!({"next": {"after": next.to_string()}});
    }
    Ok(Reply::json(200, &out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(glob("*@hubspot.com", "Ann@HubSpot.com"));
        assert!(!glob("*@hubspot.com", "ann@example.com"));
        assert!(contains_token("alice", "Alice Smith"));
        assert!(contains_token("ali*", "Alice Smith"));
        assert!(!contains_token("bob", "Alice Smith"));
    }

    #[test]
    fn in_on_text_wants_lowercase_values() {
        assert!(is_in(Kind::Text, "Ann@Example.com", &["ann@example.com".into()]));
        assert!(!is_in(Kind::Text, "ann@example.com", &["Ann@Example.com".into()]));
        assert!(is_in(Kind::Numeric(PropType::Number), "17.0", &["17".into()]));
    }
}
