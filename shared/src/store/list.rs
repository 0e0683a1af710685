//! Keyset pagination over the list indexes, newest first. The cursor is the
//! last id returned; each page reads ids below it. Because every list index
//! sorts by zero-padded id, one cursor works across several partitions (a
//! user's mandates as sender and as beneficiary, merged).

use super::{
    items::{from_item, s, Item},
    keys::{id_sort_key, Index},
    Store,
};
use crate::{domain::ids::Id, error::AppError};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// One page request: `limit` items with ids below `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub before: Option<Id>,
}

impl PageRequest {
    /// Reads `limit` (1–100, default 50) and `cursor` from query values.
    pub fn parse(
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<PageRequest, Vec<(&'static str, &'static str)>> {
        let mut errors = Vec::new();
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    errors.push(("limit", "must be a whole number from 1 to 100"));
                    DEFAULT_LIMIT
                }
            },
        };
        let before = match cursor {
            None => None,
            Some(text) => match Id::parse(text) {
                Ok(id) => Some(id),
                Err(_) => {
                    errors.push(("cursor", "must be a next_cursor returned by this list"));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(PageRequest { limit, before })
        } else {
            Err(errors)
        }
    }
}

/// Extra conditions on the listed items: `attribute = value` for each pair.
pub type Filters = Vec<(&'static str, AttributeValue)>;

/// A listed record: lists sort and page by its id.
pub trait Listed {
    fn id(&self) -> Id;
}

impl Store {
    /// One page from the union of `partitions`, newest first.
    pub(crate) async fn list<R: DeserializeOwned + Listed>(
        &self,
        partitions: &[(Index, String)],
        filters: &Filters,
        page: PageRequest,
    ) -> Result<Page<R>, AppError> {
        let mut all: Vec<R> = Vec::new();
        for (index, partition) in partitions {
            for item in self.query_newest(*index, partition, filters, page).await? {
                all.push(from_item::<R>(item)?);
            }
        }
        all.sort_by_key(|t| std::cmp::Reverse(t.id()));
        all.dedup_by_key(|t| t.id());
        let more = all.len() > page.limit;
        all.truncate(page.limit);
        let next_cursor = if more {
            all.last().map(|t| t.id().to_string())
        } else {
            None
        };
        Ok(Page {
            items: all,
            next_cursor,
        })
    }

    /// Up to `limit + 1` matching items of one partition, newest first.
    async fn query_newest(
        &self,
        index: Index,
        partition: &str,
        filters: &Filters,
        page: PageRequest,
    ) -> Result<Vec<Item>, AppError> {
        let wanted = page.limit + 1;
        let mut names = HashMap::from([("#pk".to_string(), index.pk.to_string())]);
        let mut values = HashMap::from([(":pk".to_string(), s(partition))]);
        let mut key_condition = "#pk = :pk".to_string();
        if let Some(before) = page.before {
            names.insert("#sk".into(), index.sk.into());
            values.insert(":before".into(), s(id_sort_key(before)));
            key_condition.push_str(" AND #sk < :before");
        }
        let mut filter_parts = Vec::new();
        for (i, (attribute, value)) in filters.iter().enumerate() {
            names.insert(format!("#f{i}"), attribute.to_string());
            values.insert(format!(":f{i}"), value.clone());
            filter_parts.push(format!("#f{i} = :f{i}"));
        }
        let filter = (!filter_parts.is_empty()).then(|| filter_parts.join(" AND "));

        let mut items = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(self.table())
                .index_name(index.name)
                .key_condition_expression(&key_condition)
                .set_filter_expression(filter.clone())
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .limit((wanted - items.len()).max(10) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(super::retry::aws_error)?;
            items.extend(output.items.unwrap_or_default());
            start = output.last_evaluated_key;
            if items.len() >= wanted || start.is_none() {
                items.truncate(wanted);
                return Ok(items);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_defaults_and_bounds() {
        assert_eq!(
            PageRequest::parse(None, None).unwrap(),
            PageRequest {
                limit: 50,
                before: None
            }
        );
        assert_eq!(
            PageRequest::parse(Some("100"), Some("42")).unwrap(),
            PageRequest {
                limit: 100,
                before: Id::new(42)
            }
        );
        assert_eq!(
            PageRequest::parse(Some("0"), None).unwrap_err(),
            vec![("limit", "must be a whole number from 1 to 100")]
        );
        assert_eq!(
            PageRequest::parse(Some("101"), Some("x"))
                .unwrap_err()
                .len(),
            2
        );
        assert!(PageRequest::parse(Some("-1"), None).is_err());
        assert!(PageRequest::parse(None, Some("0")).is_err());
    }
}
