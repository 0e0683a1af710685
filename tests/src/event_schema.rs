//! `docs/events.schema.json`, checked: the subset of JSON Schema it uses
//! (`type`, `required`, `properties`, `additionalProperties: false`, `enum`,
//! `const`, `minLength`, `minimum`, `format: date-time`, `$ref` into
//! `$defs`, `allOf`, `if`/`then`, and the few `pattern`s it names). A
//! keyword or pattern outside that subset fails the check rather than being
//! ignored, so the document cannot say more than is verified.

use serde_json::Value;
use std::path::Path;

/// The schema document.
pub fn load() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/events.schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("docs/events.schema.json is JSON")
}

/// The problems of `event` against `schema` (empty: valid).
pub fn problems(schema: &Value, event: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, schema, event, "$", &mut out);
    out
}

fn pattern_holds(pattern: &str, text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match pattern {
        "^[0-9a-f]{32}$" => {
            text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        "^[1-9][0-9]*$" => digits(text) && !text.starts_with('0'),
        "^(0|[1-9][0-9]*)\\.[0-9]{2}$" => text.split_once('.').is_some_and(|(units, cents)| {
            digits(units)
                && (units == "0" || !units.starts_with('0'))
                && cents.len() == 2
                && digits(cents)
        }),
        "^[A-Z]{3}$" => text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()),
        other => panic!("the schema check does not know the pattern {other}"),
    }
}

fn resolve<'a>(root: &'a Value, reference: &str) -> &'a Value {
    let name = reference
        .strip_prefix("#/$defs/")
        .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
    root["$defs"]
        .get(name)
        .unwrap_or_else(|| panic!("no $defs/{name}"))
}

fn check(root: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let Some(keywords) = schema.as_object() else {
        panic!("{at}: a schema that is not an object: {schema}");
    };
    for (keyword, rule) in keywords {
        match keyword.as_str() {
            "$schema" | "$id" | "title" | "description" | "$defs" => {}
            "$ref" => check(root, resolve(root, rule.as_str().unwrap()), value, at, out),
            "type" => {
                let ok = match rule.as_str().unwrap() {
                    "object" => value.is_object(),
                    "string" => value.is_string(),
                    "integer" => value.is_i64() || value.is_u64(),
                    other => panic!("unsupported type {other}"),
                };
                if !ok {
                    out.push(format!("{at}: not of type {rule}: {value}"));
                }
            }
            "required" => {
                for name in rule.as_array().unwrap() {
                    let name = name.as_str().unwrap();
                    if value.get(name).is_none() {
                        out.push(format!("{at}: `{name}` is missing"));
                    }
                }
            }
            "properties" => {
                if let Some(object) = value.as_object() {
                    for (name, sub) in rule.as_object().unwrap() {
                        if let Some(v) = object.get(name) {
                            check(root, sub, v, &format!("{at}.{name}"), out);
                        }
                    }
                }
            }
            "additionalProperties" => {
                assert_eq!(rule, &Value::Bool(false), "only `false` is supported");
                if let (Some(object), Some(known)) =
                    (value.as_object(), schema["properties"].as_object())
                {
                    for name in object.keys().filter(|n| !known.contains_key(*n)) {
                        out.push(format!("{at}: `{name}` is not in the schema"));
                    }
                }
            }
            "enum" => {
                if !rule.as_array().unwrap().contains(value) {
                    out.push(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "const" => {
                if rule != value {
                    out.push(format!("{at}: {value} is not {rule}"));
                }
            }
            "minLength" => {
                if value
                    .as_str()
                    .is_some_and(|s| (s.chars().count() as u64) < rule.as_u64().unwrap())
                {
                    out.push(format!("{at}: shorter than {rule}"));
                }
            }
            "minimum" => {
                if value.as_i64().is_some_and(|n| n < rule.as_i64().unwrap()) {
                    out.push(format!("{at}: below {rule}"));
                }
            }
            "pattern" => {
                if let Some(text) = value.as_str() {
                    if !pattern_holds(rule.as_str().unwrap(), text) {
                        out.push(format!("{at}: {text:?} does not match {rule}"));
                    }
                }
            }
            "format" => {
                assert_eq!(rule, "date-time", "only date-time is supported");
                if let Some(text) = value.as_str() {
                    if shared::domain::time::Timestamp::parse(text).is_err() {
                        out.push(format!("{at}: {text:?} is not a date-time"));
                    }
                }
            }
            "allOf" => {
                for sub in rule.as_array().unwrap() {
                    check(root, sub, value, at, out);
                }
            }
            "if" => {
                let mut trial = Vec::new();
                check(root, rule, value, at, &mut trial);
                if trial.is_empty() {
                    if let Some(then) = schema.get("then") {
                        check(root, then, value, at, out);
                    }
                }
            }
            "then" => {}
            other => panic!("the schema check does not know the keyword {other}"),
        }
    }
}
