//! Reading payload variables the way the reference service did (handlers.md §5.4).

use serde_json::{Map, Value};

/// The reference's truthiness test: absent, null, "", 0, false, [] and {} are all missing.
pub fn is_missing(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => !b,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
    }
}

/// Looks up a dotted path (`internal_validation.internal_validation_claims_input_table`) in the
/// payload variables.
pub fn lookup<'v>(variables: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut parts = path.split('.');
    let mut cur = variables.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// A scalar variable as a label/parameter string, like Python's `str()`: strings as they are,
/// integers as digits, floats in shortest form with a `.0` when integral, booleans
/// `True`/`False`. Objects and arrays are not scalars.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.into()),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64()?;
            Some(if f.fract() == 0.0 && f.is_finite() { format!("{f:.1}") } else { f.to_string() })
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truthiness_like_the_reference() {
        for v in [json!(null), json!(""), json!(0), json!(0.0), json!(false), json!([]), json!({})] {
            assert!(is_missing(Some(&v)), "{v}");
        }
        assert!(is_missing(None));
        for v in [json!("x"), json!(1), json!(true), json!([0]), json!({"a": null})] {
            assert!(!is_missing(Some(&v)), "{v}");
        }
    }

    #[test]
    fn nested_lookup() {
        let vars = json!({"internal_validation": {"t": "ds.x"}, "flat": "y"});
        let vars = vars.as_object().unwrap();
        assert_eq!(lookup(vars, "internal_validation.t"), Some(&json!("ds.x")));
        assert_eq!(lookup(vars, "flat"), Some(&json!("y")));
        assert_eq!(lookup(vars, "flat.z"), None);
        assert_eq!(lookup(vars, "missing.t"), None);
    }

    #[test]
    fn scalar_text_like_python_str() {
        assert_eq!(scalar_text(&json!("porto")).as_deref(), Some("porto"));
        assert_eq!(scalar_text(&json!(12)).as_deref(), Some("12"));
        assert_eq!(scalar_text(&json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(scalar_text(&json!(2.0)).as_deref(), Some("2.0"));
        assert_eq!(scalar_text(&json!(true)).as_deref(), Some("True"));
        assert_eq!(scalar_text(&json!({"a": 1})), None);
    }
}
