//! Conversions between configuration values and JSON: sign-in resolver options travel as JSON
//! (core's `SignInResolverRegistry` takes them so), and configuration written in code (tests,
//! examples) is shortest as a `serde_json::json!` literal.

use std::sync::Arc;

use serde_json::{Map, Number, Value};

use crate::value::{ConfigMap, ConfigValue, ValueKind};

impl ConfigValue {
    /// The JSON form of this value (object members in `serde_json`'s order); numbers that JSON
    /// cannot hold (NaN, infinities) become `null`.
    pub fn to_json(&self) -> Value {
        match self.kind() {
            ValueKind::Null => Value::Null,
            ValueKind::Bool(b) => Value::Bool(*b),
            ValueKind::Number(n) => json_number(*n),
            ValueKind::String(s) => Value::String(s.clone()),
            ValueKind::List(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            ValueKind::Map(map) => Value::Object(
                map.iter()
                    .map(|(key, value)| (key.to_owned(), value.to_json()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }

    /// A configuration tree from JSON, every node naming `file` (a name for errors, such as
    /// `<code>`). `null` members of objects are dropped, as the YAML loader drops them.
    pub fn from_json(value: &Value, file: impl Into<Arc<str>>) -> Self {
        from_json(value, &file.into())
    }
}

fn json_number(n: f64) -> Value {
    // A whole number within JavaScript's exact range prints without a fraction, as YAML wrote it.
    if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_992.0 {
        return Value::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

fn from_json(value: &Value, file: &Arc<str>) -> ConfigValue {
    let kind = match value {
        Value::Null => ValueKind::Null,
        Value::Bool(b) => ValueKind::Bool(*b),
        // Every JSON number is finite; `as_f64` is `None` only for arbitrary-precision numbers.
        Value::Number(n) => ValueKind::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => ValueKind::String(s.clone()),
        Value::Array(items) => {
            ValueKind::List(items.iter().map(|item| from_json(item, file)).collect())
        }
        Value::Object(map) => ValueKind::Map(
            map.iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| (key.clone(), from_json(value, file)))
                .collect::<ConfigMap>(),
        ),
    };
    ConfigValue::new(kind, Arc::clone(file))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_and_drops_nulls() {
        let json = json!({"b": 1, "a": [true, "x", 1.5], "gone": null, "m": {"k": "v"}});
        let value = ConfigValue::from_json(&json, "<code>");
        let map = value.as_map().map(|m| m.keys().collect::<Vec<_>>());
        assert_eq!(map, Some(vec!["a", "b", "m"]));
        assert_eq!(value.file().as_ref(), "<code>");
        assert_eq!(
            value.to_json(),
            json!({"b": 1, "a": [true, "x", 1.5], "m": {"k": "v"}})
        );
        let nan = ConfigValue::new(ValueKind::Number(f64::NAN), Arc::from("<t>"));
        assert_eq!(nan.to_json(), Value::Null);
    }
}
