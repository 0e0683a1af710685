//! Business metrics as CloudWatch Embedded Metric Format (EMF): one JSON log
//! line that CloudWatch turns into metrics, so dashboards and alarms need no
//! extra API calls. The builder is pure; `count` sends the document through
//! the ordinary log machinery (`telemetry` puts it at the top of the line).
//! Spec: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

use serde_json::{json, Map, Value};

/// The CloudWatch namespace of every Kobatela metric.
pub const NAMESPACE: &str = "Kobatela";
/// The log field `telemetry` lifts to the top of the JSON line.
pub const EMF_FIELD: &str = "emf";

/// Successful purchases.
pub const PURCHASES: &str = "Purchases";
/// Purchases refused, one dimension per error code.
pub const PURCHASE_REFUSALS: &str = "PurchaseRefusals";
/// Store transactions retried after contention (conflict, throttling).
pub const CONTENTION_RETRIES: &str = "ContentionRetries";
/// Answers 503 SERVICE_BUSY.
pub const SERVICE_BUSY: &str = "ServiceBusy";
/// Mandates expired by one sweep.
pub const MANDATES_EXPIRED: &str = "MandatesExpired";

/// One EMF document: `value` of metric `name` (unit Count) with the given
/// dimensions (plus `function`), at `timestamp_ms` (Unix epoch milliseconds).
pub fn emf_count(
    name: &str,
    value: u64,
    function: &str,
    dimensions: &[(&str, &str)],
    timestamp_ms: i64,
) -> Value {
    let mut keys = vec![Value::from("function")];
    let mut doc = Map::new();
    doc.insert("function".into(), Value::from(function));
    for (key, val) in dimensions {
        keys.push(Value::from(*key));
        doc.insert((*key).into(), Value::from(*val));
    }
    doc.insert(name.into(), Value::from(value));
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [keys],
                "Metrics": [{ "Name": name, "Unit": "Count" }],
            }],
        }),
    );
    Value::Object(doc)
}

/// The function name metrics are filed under: the Lambda's, or `local`.
pub fn function_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".to_owned())
    })
}

/// Emits `value` of counter `name` as one EMF log line.
pub fn count(name: &str, value: u64, dimensions: &[(&str, &str)]) {
    let doc = emf_count(
        name,
        value,
        function_name(),
        dimensions,
        chrono::Utc::now().timestamp_millis(),
    );
    tracing::info!(target: "metrics", emf = %doc, "metric {name}={value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_follows_the_emf_spec() {
        let doc = emf_count(
            PURCHASE_REFUSALS,
            1,
            "kob-spend",
            &[("code", "INSUFFICIENT_FUNDS")],
            1_700_000_000_123,
        );
        let aws = &doc["_aws"];
        assert_eq!(aws["Timestamp"], json!(1_700_000_000_123i64));
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        assert_eq!(directives[0]["Namespace"], "Kobatela");
        assert_eq!(directives[0]["Dimensions"], json!([["function", "code"]]));
        assert_eq!(
            directives[0]["Metrics"],
            json!([{ "Name": "PurchaseRefusals", "Unit": "Count" }])
        );
        // Values and dimension values live at the top level, as the spec requires.
        assert_eq!(doc["PurchaseRefusals"], json!(1));
        assert_eq!(doc["function"], "kob-spend");
        assert_eq!(doc["code"], "INSUFFICIENT_FUNDS");
        // Every dimension key and metric name resolves to a top-level member.
        for key in directives[0]["Dimensions"][0].as_array().unwrap() {
            assert!(doc[key.as_str().unwrap()].is_string(), "{key}");
        }
        for metric in directives[0]["Metrics"].as_array().unwrap() {
            assert!(doc[metric["Name"].as_str().unwrap()].is_number());
        }
    }

    #[test]
    fn without_extra_dimensions_only_the_function_dimension() {
        let doc = emf_count(MANDATES_EXPIRED, 7, "local", &[], 0);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["function"]])
        );
        assert_eq!(doc["MandatesExpired"], json!(7));
        assert_eq!(doc.as_object().unwrap().len(), 3);
    }
}
