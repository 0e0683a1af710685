//! The table definition, for the local stack and tests. `template.yaml`
//! declares the same table for AWS; a test below keeps the two identical.

use super::keys::{Projected, INDEXES, PK, SK, TTL};
use aws_sdk_dynamodb::{
    error::DisplayErrorContext,
    types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
        TimeToLiveSpecification,
    },
    Client,
};

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("name and type are set")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type are set")
}

fn projection(projected: Projected) -> Projection {
    match projected {
        Projected::KeysOnly => Projection::builder()
            .projection_type(ProjectionType::KeysOnly)
            .build(),
        Projected::Include(names) => Projection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(names.iter().map(|n| n.to_string()).collect()))
            .build(),
    }
}

/// Every key attribute of the table and its indexes (all strings).
pub fn key_attributes() -> Vec<&'static str> {
    let mut names = vec![PK, SK];
    for index in INDEXES {
        names.push(index.pk);
        names.push(index.sk);
    }
    names
}

/// The table's stream carries both images of every change: the outbox of
/// payout dispatch and domain events reads what an item became and what it
/// was (a status change is told from a rewrite of the same status).
pub const STREAM_VIEW: StreamViewType = StreamViewType::NewAndOldImages;

/// Creates the table (on-demand, with its indexes, stream and TTL) unless it
/// exists.
pub async fn ensure_table(client: &Client, table: &str) -> Result<(), String> {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => return Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
        Err(e) => return Err(format!("reading table {table}: {}", DisplayErrorContext(e))),
    }
    let indexes = INDEXES.iter().map(|index| {
        GlobalSecondaryIndex::builder()
            .index_name(index.name)
            .key_schema(key(index.pk, KeyType::Hash))
            .key_schema(key(index.sk, KeyType::Range))
            .projection(projection(index.projection))
            .build()
            .expect("name, keys and projection are set")
    });
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash))
        .key_schema(key(SK, KeyType::Range))
        .set_attribute_definitions(Some(
            key_attributes().into_iter().map(string_attribute).collect(),
        ))
        .set_global_secondary_indexes(Some(indexes.collect()))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(STREAM_VIEW)
                .build()
                .expect("the flag is set"),
        )
        .send()
        .await
        .map_err(|e| format!("creating table {table}: {}", DisplayErrorContext(e)))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL)
                .enabled(true)
                .build()
                .expect("name and flag are set"),
        )
        .send()
        .await
        .map_err(|e| format!("enabling TTL on {table}: {}", DisplayErrorContext(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml::Value;

    fn template_table() -> Value {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
                .unwrap();
        let template: Value = serde_yaml::from_str(&text).unwrap();
        template["Resources"]["Table"]["Properties"].clone()
    }

    fn names(list: &Value, field: &str) -> Vec<String> {
        list.as_sequence()
            .unwrap()
            .iter()
            .map(|v| v[field].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn template_declares_the_same_table() {
        let table = template_table();
        let mut declared = names(&table["AttributeDefinitions"], "AttributeName");
        let mut ours: Vec<String> = key_attributes().iter().map(|s| s.to_string()).collect();
        declared.sort();
        ours.sort();
        assert_eq!(declared, ours);
        for definition in table["AttributeDefinitions"].as_sequence().unwrap() {
            assert_eq!(definition["AttributeType"].as_str(), Some("S"));
        }
        assert_eq!(names(&table["KeySchema"], "AttributeName"), vec![PK, SK]);
        assert_eq!(names(&table["KeySchema"], "KeyType"), vec!["HASH", "RANGE"]);
        assert_eq!(table["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
        assert_eq!(
            table["StreamSpecification"]["StreamViewType"].as_str(),
            Some(STREAM_VIEW.as_str())
        );
        assert_eq!(
            table["TimeToLiveSpecification"]["AttributeName"].as_str(),
            Some(TTL)
        );

        let indexes = table["GlobalSecondaryIndexes"].as_sequence().unwrap();
        assert_eq!(indexes.len(), INDEXES.len());
        for ours in INDEXES {
            let declared = indexes
                .iter()
                .find(|i| i["IndexName"].as_str() == Some(ours.name))
                .unwrap_or_else(|| panic!("index {} missing from template.yaml", ours.name));
            assert_eq!(
                names(&declared["KeySchema"], "AttributeName"),
                vec![ours.pk, ours.sk]
            );
            assert_eq!(
                names(&declared["KeySchema"], "KeyType"),
                vec!["HASH", "RANGE"]
            );
            let projection = &declared["Projection"];
            match ours.projection {
                Projected::KeysOnly => {
                    assert_eq!(projection["ProjectionType"].as_str(), Some("KEYS_ONLY"));
                    assert!(projection["NonKeyAttributes"].is_null());
                }
                Projected::Include(names) => {
                    assert_eq!(projection["ProjectionType"].as_str(), Some("INCLUDE"));
                    let declared: Vec<&str> = projection["NonKeyAttributes"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap())
                        .collect();
                    assert_eq!(declared, names, "{}", ours.name);
                }
            }
        }
    }
}
