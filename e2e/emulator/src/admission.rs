//! Admission of custom resources against their CRD schema, as the API server does it: the
//! schema's defaults are applied, then the value is checked against the schema's types and
//! bounds (OpenAPI validation) and against every CEL rule (`x-kubernetes-validations`, with
//! kube's client-side CEL evaluator). Written by hand around kube's evaluator because no crate
//! validates a Kubernetes structural schema; it covers what structural schemas use: type,
//! nullable, required, pattern, min/max length, minimum/maximum, min/max items and enum.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use kube::core::cel::{Validator, apply_defaults};
use regex::Regex;
use serde_json::Value;

/// How many compiled schema patterns are kept; past it the cache starts over.
const PATTERN_CACHE_SIZE: usize = 256;

/// Compiled schema patterns by their source (`None`: the pattern does not compile).
static PATTERNS: LazyLock<Mutex<HashMap<String, Option<Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// True when `s` does not match `pattern`; a pattern that does not compile matches anything.
fn mismatches(pattern: &str, s: &str) -> bool {
    let mut cache = PATTERNS.lock().unwrap_or_else(PoisonError::into_inner);
    if !cache.contains_key(pattern) {
        if cache.len() >= PATTERN_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), Regex::new(pattern).ok());
    }
    cache
        .get(pattern)
        .and_then(Option::as_ref)
        .is_some_and(|re| !re.is_match(s))
}

/// Defaults `object` from `schema` in place and returns every violation as
/// `(field path, message)`, empty when the object is admitted.
pub fn admit(schema: &Value, object: &mut Value) -> Vec<(String, String)> {
    default(schema, object);
    let mut errors = Vec::new();
    check(schema, object, "", &mut errors);
    if let Err(cel) = Validator::new().validate(schema, object, None) {
        for e in cel.iter() {
            errors.push((e.field_path.clone(), e.message.clone()));
        }
    }
    errors
}

/// Fills in the schema's defaults, as the API server does on every write (and read).
pub fn default(schema: &Value, object: &mut Value) {
    *object = apply_defaults(schema, object);
}

/// The OpenAPI checks of a structural schema on `value` at `path`, appended to `errors` as
/// `(field path, message)`.
pub fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<(String, String)>) {
    let mut err = |msg: String| errors.push((path.to_owned(), msg));
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) && !path.is_empty() {
            err("Invalid value: \"null\": must not be null".into());
        }
        return;
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            err("Invalid value: must be an integer or a string".into());
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let type_ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        err(format!(
            "Invalid value: {value}: {path} in body must be of type {ty}"
        ));
        return;
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            err(format!(
                "Invalid value: {value}: {path} in body should be at least {min} chars long"
            ));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            err(format!("Too long: may not be more than {max} bytes"));
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && mismatches(p, s)
        {
            err(format!(
                "Invalid value: {value}: {path} in body should match '{p}'"
            ));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            err(format!(
                "Invalid value: {value}: {path} in body should be greater than or equal to {min}"
            ));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            err(format!(
                "Invalid value: {value}: {path} in body should be less than or equal to {max}"
            ));
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        let allowed: Vec<String> = values.iter().map(Value::to_string).collect();
        err(format!(
            "Unsupported value: {value}: supported values: {}",
            allowed.join(", ")
        ));
    }
    if let Some(items) = value.as_array() {
        let n = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && n < min
        {
            err(format!(
                "Invalid value: {n}: {path} in body should have at least {min} items"
            ));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && n > max
        {
            err(format!("Too many: {n}: must have at most {max} items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(item_schema, item, &format!("{path}[{i}]"), errors);
            }
        }
    }
    if let Some(obj) = value.as_object() {
        let sep = if path.is_empty() { "" } else { "." };
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errors.push((format!("{path}{sep}{r}"), "Required value".into()));
                }
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in obj {
                if let Some(child) = props.get(k) {
                    check(child, v, &format!("{path}{sep}{k}"), errors);
                }
            }
        }
    }
}
