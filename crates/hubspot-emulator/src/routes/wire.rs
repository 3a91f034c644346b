//! The JSON shapes handlers share: scalars that may come as strings or numbers, property
//! maps borrowed from the body, `{"id"}` references, association type specs, and the batch
//! answer envelope.

use std::borrow::Cow;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::clock;
use crate::reply::Reply;
use crate::store::PropInput;

/// A batch answer: `{status, results, numErrors?, errors?, startedAt, completedAt}`.
pub(crate) fn batch_body(
    results: Vec<serde_json::Value>,
    errors: Vec<serde_json::Value>,
    started_at: i64,
) -> serde_json::Value {
    let mut body = serde_json::json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": clock::iso_millis(started_at),
        "completedAt": clock::iso_millis(clock::now_ms()),
    });
    if !errors.is_empty() {
        body["numErrors"] = serde_json::json!(errors.len());
        body["errors"] = serde_json::Value::Array(errors);
    }
    body
}

/// A JSON scalar read as a string: ids and values may come as strings or numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor).map(|s| Scalar(s.unwrap_or_default()))
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string, number, boolean or null")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A JSON scalar read as text, borrowed from the request body when it has no escapes, so the
/// hot write path does not allocate for names it only looks up. `null` reads as `""`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(""))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(""))
            }
        }
        d.deserialize_any(TextVisitor).map(Text)
    }
}

/// A `properties` object read as `(name, value)` pairs in order; `null` reads as `None`
/// (ignored for a property the portal does not have, a clear for one it has).
#[derive(Debug, Clone, Default)]
pub(crate) struct Props<'a>(pub PropInput<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for Props<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PropsVisitor;
        impl<'de> Visitor<'de> for PropsVisitor {
            type Value = Props<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of property values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Props<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<Text<'de>, Option<Text<'de>>>()? {
                    out.push((k.0, v.map(|v| v.0)));
                }
                Ok(Props(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Props<'de>, E> {
                Ok(Props::default())
            }
        }
        d.deserialize_any(PropsVisitor)
    }
}

/// `{"id": "..."}` as association and list bodies write it.
#[derive(Debug, Deserialize)]
pub(crate) struct IdRef {
    pub id: Scalar,
}

/// `{associationCategory, associationTypeId}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssocTypeSpec {
    #[serde(default)]
    pub association_category: Option<String>,
    pub association_type_id: u32,
}

pub(crate) fn too_many_inputs(limit: usize) -> Reply {
    Reply::validation(format!(
        "The maximum number of inputs supported in a batch is {limit}. Please reduce the number of items and try again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_and_props_accept_numbers() {
        let p: Props = serde_json::from_str(r#"{"a":"x","b":17,"c":null,"d":true,"e\u0041":"\u0042"}"#).unwrap();
        let pairs: Vec<(&str, Option<&str>)> = p.0.iter().map(|(k, v)| (&**k, v.as_deref())).collect();
        assert_eq!(
            pairs,
            vec![("a", Some("x")), ("b", Some("17")), ("c", None), ("d", Some("true")), ("eA", Some("B"))]
        );
        assert!(matches!(p.0[0].0, Cow::Borrowed(_)), "plain strings are borrowed");
        assert!(serde_json::from_str::<Props>(r#"{"a":[1]}"#).is_err());
    }
}
