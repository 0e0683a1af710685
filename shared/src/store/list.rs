//! Keyset pagination over the list indexes, newest first (or oldest first,
//! for a work queue). The cursor is the last id returned; each page reads ids
//! past it in the list's order. Because every list index
//! sorts by zero-padded id, one cursor works across several partitions (a
//! user's mandates as sender and as beneficiary, merged; the shards of a
//! sharded index, merged).

use super::{
    items::{from_item, key_of, s, Item},
    keys::{self, id_sort_key, Index, Key},
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

impl<T> Page<T> {
    pub fn map<U>(self, convert: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(convert).collect(),
            next_cursor: self.next_cursor,
        }
    }

    /// The same page with each stored record made a domain value; the first
    /// record that does not convert fails the page.
    pub fn try_map<U, E>(self, convert: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            items: self
                .items
                .into_iter()
                .map(convert)
                .collect::<Result<_, _>>()?,
            next_cursor: self.next_cursor,
        })
    }
}

/// One page request: `limit` items with ids past the cursor `past` (below
/// it newest first, above it oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub past: Option<Id>,
}

/// The order of a list by id: newest first, or oldest first for a queue
/// whose head is the item waiting longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

impl Order {
    /// Whether sort key `a` comes before `b` in this order.
    fn precedes<S: Ord>(self, a: &S, b: &S) -> bool {
        match self {
            Order::NewestFirst => a > b,
            Order::OldestFirst => a < b,
        }
    }
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
        let past = match cursor {
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
            Ok(PageRequest { limit, past })
        } else {
            Err(errors)
        }
    }
}

/// One page request over a list sorted by a text sort key rather than by id
/// (the audit trail, oldest first; alerts, newest first): `limit` items
/// strictly past the sort key `after` (in the list's own direction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPageRequest {
    pub limit: usize,
    pub after: Option<String>,
}

impl KeyPageRequest {
    /// Reads `limit` (1–100, default 50) and `cursor`; `valid` says whether a
    /// decoded cursor is a sort key of this list.
    pub fn parse(
        limit: Option<&str>,
        cursor: Option<&str>,
        valid: fn(&str) -> bool,
    ) -> Result<KeyPageRequest, Vec<(&'static str, &'static str)>> {
        let (limit, mut errors) = match PageRequest::parse(limit, None) {
            Ok(page) => (page.limit, Vec::new()),
            Err(errors) => (DEFAULT_LIMIT, errors),
        };
        let after = match cursor.map(decode_cursor) {
            None => None,
            Some(Some(key)) if valid(&key) => Some(key),
            Some(_) => {
                errors.push(("cursor", "must be a next_cursor returned by this list"));
                None
            }
        };
        if errors.is_empty() {
            Ok(KeyPageRequest { limit, after })
        } else {
            Err(errors)
        }
    }
}

impl Store {
    /// One page of a partition read in sort-key order, oldest first (an
    /// audit trail, an escrow's timeline), past the cursor: a single
    /// consistent Query for `limit + 1` entries, the extra one only saying
    /// that there is a next page.
    pub(crate) async fn trail_page<R: DeserializeOwned>(
        &self,
        partition: String,
        page: &KeyPageRequest,
        sort_key: fn(&R) -> &str,
    ) -> Result<Page<R>, AppError> {
        let mut key_condition = "pk = :pk".to_string();
        let mut bound = vec![(":pk", s(partition))];
        if let Some(after) = &page.after {
            key_condition.push_str(" AND sk > :after");
            bound.push((":after", s(after.as_str())));
        }
        let output = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression(key_condition)
            .set_expression_attribute_values(Some(
                bound.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ))
            .consistent_read(true)
            .scan_index_forward(true)
            .limit(i32::try_from(page.limit + 1).map_err(AppError::internal)?)
            .send()
            .await
            .map_err(super::retry::aws_error)?;
        let mut records: Vec<R> = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        // More after this page: an entry beyond `limit`, or a read that
        // stopped short (size limit), which resumes after what it saw.
        let more = records.len() > page.limit || output.last_evaluated_key.is_some();
        records.truncate(page.limit);
        let next_cursor = if more {
            records.last().map(|r| encode_cursor(sort_key(r)))
        } else {
            None
        };
        Ok(Page {
            items: records,
            next_cursor,
        })
    }
}

/// A sort key as an opaque, URL-safe cursor (hex of its text).
pub fn encode_cursor(sort_key: &str) -> String {
    hex::encode(sort_key)
}

/// The sort key in a cursor made by [`encode_cursor`], if it is one.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    String::from_utf8(hex::decode(cursor).ok()?).ok()
}

/// Extra conditions on the listed items: `attribute = value` for each pair.
pub type Filters = Vec<(&'static str, AttributeValue)>;

/// A list between two parties: mandates (sender, beneficiary) and escrows
/// (client, provider) keep the first side in gsi1 and the second in gsi2.
pub(crate) struct PartyList {
    pub first: Option<Id>,
    pub second: Option<Id>,
    /// A `user` caller, who sees only what it is a party to.
    pub party: Option<Id>,
    pub first_partition: fn(Id) -> String,
    pub second_partition: fn(Id) -> String,
    /// Everything of this kind, in the sharded gsi3, when nothing narrows.
    pub kind: &'static str,
    /// Only items with this `status`.
    pub status: Option<&'static str>,
}

impl PartyList {
    /// The narrowest partition(s) to read, the other conditions added to
    /// `filters`; `None` when nothing can match (a caller naming two others).
    /// A counterparty filter names the other side: the caller fills the
    /// empty one.
    fn partitions(&self, filters: &mut Filters) -> Option<Vec<(Index, String)>> {
        let (mut first, mut second) = (self.first, self.second);
        if let Some(party) = self.party {
            match (first, second) {
                (Some(a), Some(b)) if party != a && party != b => return None,
                (Some(a), None) if party != a => second = Some(party),
                (None, Some(b)) if party != b => first = Some(party),
                _ => {}
            }
        }
        Some(match (first, second, self.party) {
            (Some(a), b, _) => {
                if let Some(b) = b {
                    filters.push(("beneficiary_id", AttributeValue::N(b.to_string())));
                }
                vec![(keys::GSI_BY_SENDER, (self.first_partition)(a))]
            }
            (None, Some(b), _) => vec![(keys::GSI_BY_BENEFICIARY, (self.second_partition)(b))],
            (None, None, Some(party)) => vec![
                (keys::GSI_BY_SENDER, (self.first_partition)(party)),
                (keys::GSI_BY_BENEFICIARY, (self.second_partition)(party)),
            ],
            (None, None, None) => keys::all_shards(self.kind)
                .into_iter()
                .map(|p| (keys::GSI_BY_KIND, p))
                .collect(),
        })
    }
}

impl Store {
    /// One page of the records between the parties of `parties`, newest
    /// first; an empty page when the caller may see none of them.
    pub(crate) async fn list_between<R: DeserializeOwned + Listed>(
        &self,
        parties: &PartyList,
        page: PageRequest,
    ) -> Result<Page<R>, AppError> {
        let mut filters: Filters = Vec::new();
        if let Some(status) = parties.status {
            filters.push(("status", s(status)));
        }
        match parties.partitions(&mut filters) {
            Some(partitions) => self.list(&partitions, &filters, page).await,
            None => Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            }),
        }
    }
}

/// A listed record: lists sort and page by its id.
pub trait Listed {
    fn id(&self) -> Id;
}

/// Query pages one list request may read in all (but at least one per
/// partition): filters that drop many items end a page short, with a cursor.
pub const MAX_QUERY_PAGES: usize = 5;

/// The Query calls a list over `partitions` partitions makes at most.
pub fn query_budget(partitions: usize) -> usize {
    partitions.max(MAX_QUERY_PAGES)
}

/// What one partition's queries found: matching entries by sort key (an id,
/// or the text key of alerts and PSP events) with their table keys, and, if
/// the partition was not read to its end, the sort key it stopped at.
#[derive(Debug)]
pub(crate) struct PartitionRead<S = Id> {
    pub found: Vec<(S, Key)>,
    pub stopped_at: Option<S>,
}

impl<S> Default for PartitionRead<S> {
    fn default() -> Self {
        PartitionRead {
            found: Vec::new(),
            stopped_at: None,
        }
    }
}

/// Merges partition reads into one page in `order`. Past the furthest
/// `stopped_at`, some partition was not read, so the page ends there and the
/// cursor resumes there: every entry is returned once, none is skipped.
pub(crate) fn merge<S: Ord + Clone>(
    reads: Vec<PartitionRead<S>>,
    limit: usize,
    order: Order,
) -> (Vec<(S, Key)>, Option<S>) {
    // The frontier is the stop reached first in the list's order.
    let frontier = reads
        .iter()
        .filter_map(|r| r.stopped_at.clone())
        .reduce(|a, b| if order.precedes(&a, &b) { a } else { b });
    let mut all: Vec<(S, Key)> = reads
        .into_iter()
        .flat_map(|r| r.found)
        .filter(|(sort, _)| frontier.as_ref().is_none_or(|f| !order.precedes(f, sort)))
        .collect();
    match order {
        Order::NewestFirst => all.sort_by(|a, b| b.0.cmp(&a.0)),
        Order::OldestFirst => all.sort_by(|a, b| a.0.cmp(&b.0)),
    }
    all.dedup_by(|a, b| a.0 == b.0);
    if all.len() > limit {
        all.truncate(limit);
        let last = all.last().map(|(sort, _)| sort.clone());
        return (all, last);
    }
    (all, frontier)
}

/// The Query filter for `filters` on the attributes `index` projects, its
/// names and values added to the request's; `None` when there is none (the
/// others are checked on the items only).
fn index_filter(
    index: Index,
    filters: &Filters,
    names: &mut HashMap<String, String>,
    values: &mut HashMap<String, AttributeValue>,
) -> Option<String> {
    let mut parts = Vec::new();
    for (i, (attribute, value)) in filters.iter().enumerate() {
        if index.projects(attribute) {
            names.insert(format!("#f{i}"), attribute.to_string());
            values.insert(format!(":f{i}"), value.clone());
            parts.push(format!("#f{i} = :f{i}"));
        }
    }
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

impl Store {
    /// One page from the union of `partitions`, newest first: at most
    /// `query_budget` Query calls on the index, then one consistent
    /// `BatchGetItem` for the page's items.
    pub(crate) async fn list<R: DeserializeOwned + Listed>(
        &self,
        partitions: &[(Index, String)],
        filters: &Filters,
        page: PageRequest,
    ) -> Result<Page<R>, AppError> {
        self.list_in_order(partitions, filters, page, Order::NewestFirst)
            .await
    }

    /// [`Store::list`] in `order`. A filter on an attribute the index does
    /// not project is checked on the items only: the page may then come back
    /// short, with a cursor.
    pub(crate) async fn list_in_order<R: DeserializeOwned + Listed>(
        &self,
        partitions: &[(Index, String)],
        filters: &Filters,
        page: PageRequest,
        order: Order,
    ) -> Result<Page<R>, AppError> {
        let pages_each = (MAX_QUERY_PAGES / partitions.len().max(1)).max(1);
        let mut reads = Vec::new();
        for (index, partition) in partitions {
            reads.push(
                self.query_in_order(*index, partition, filters, page, order, pages_each)
                    .await?,
            );
        }
        let (found, cursor) = merge(reads, page.limit, order);
        let keys: Vec<Key> = found.iter().map(|(_, k)| k.clone()).collect();
        let mut items = self.get_many(&keys).await?;
        let mut records = Vec::new();
        for key in &keys {
            // The index lags the table: re-check the filters on the item.
            let Some(item) = items.remove(key) else {
                continue;
            };
            if filters.iter().all(|(a, v)| item.get(*a) == Some(v)) {
                records.push(from_item::<R>(item)?);
            }
        }
        Ok(Page {
            items: records,
            next_cursor: cursor.map(|id| id.to_string()),
        })
    }

    /// Up to `limit + 1` matching entries of one partition in `order`, in at
    /// most `max_pages` Query calls.
    async fn query_in_order(
        &self,
        index: Index,
        partition: &str,
        filters: &Filters,
        page: PageRequest,
        order: Order,
        max_pages: usize,
    ) -> Result<PartitionRead, AppError> {
        let wanted = page.limit + 1;
        let mut names = HashMap::from([("#pk".to_string(), index.pk.to_string())]);
        let mut values = HashMap::from([(":pk".to_string(), s(partition))]);
        let mut key_condition = "#pk = :pk".to_string();
        if let Some(past) = page.past {
            names.insert("#sk".into(), index.sk.into());
            values.insert(":past".into(), s(id_sort_key(past)));
            key_condition.push_str(match order {
                Order::NewestFirst => " AND #sk < :past",
                Order::OldestFirst => " AND #sk > :past",
            });
        }
        let filter = index_filter(index, filters, &mut names, &mut values);

        let mut read = PartitionRead::default();
        let mut start = None;
        for _ in 0..max_pages {
            let output = self
                .client
                .query()
                .table_name(self.table())
                .index_name(index.name)
                .key_condition_expression(&key_condition)
                .set_filter_expression(filter.clone())
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(order == Order::OldestFirst)
                .limit((wanted.saturating_sub(read.found.len())).max(10) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(super::retry::aws_error)?;
            for item in output.items.unwrap_or_default() {
                let key =
                    key_of(&item).ok_or_else(|| AppError::internal("index entry without key"))?;
                read.found.push((sort_key_id(&item, index)?, key));
            }
            start = output.last_evaluated_key;
            if read.found.len() >= wanted || start.is_none() {
                break;
            }
        }
        read.stopped_at = start.as_ref().map(|k| sort_key_id(k, index)).transpose()?;
        Ok(read)
    }
}

impl Store {
    /// One page from the union of `partitions` of a list sorted by a text
    /// sort key (alerts, PSP events), newest first: one Query per partition
    /// for `limit + 1` entries, then one consistent `BatchGetItem`. Filters
    /// on projected attributes apply in the index, all on the items.
    pub(crate) async fn list_by_sort_key<R: DeserializeOwned>(
        &self,
        partitions: &[(Index, String)],
        filters: &Filters,
        page: &KeyPageRequest,
    ) -> Result<Page<R>, AppError> {
        let mut reads = Vec::new();
        for (index, partition) in partitions {
            let mut names = HashMap::from([("#pk".to_string(), index.pk.to_string())]);
            let mut values = HashMap::from([(":pk".to_string(), s(partition.as_str()))]);
            let mut condition = "#pk = :pk".to_string();
            if let Some(before) = &page.after {
                names.insert("#sk".into(), index.sk.into());
                values.insert(":before".into(), s(before.as_str()));
                condition.push_str(" AND #sk < :before");
            }
            let filter = index_filter(*index, filters, &mut names, &mut values);
            let output = self
                .client
                .query()
                .table_name(self.table())
                .index_name(index.name)
                .key_condition_expression(condition)
                .set_filter_expression(filter)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .scan_index_forward(false)
                .limit(page.limit as i32 + 1)
                .send()
                .await
                .map_err(super::retry::aws_error)?;
            let mut read = PartitionRead::<String>::default();
            for entry in output.items.unwrap_or_default() {
                read.found
                    .push((text_sort_key(&entry, index.sk)?, index_entry_key(&entry)?));
            }
            // Fewer than asked and not at the end: the partition resumes there.
            if read.found.len() <= page.limit {
                if let Some(last) = output.last_evaluated_key {
                    read.stopped_at = Some(text_sort_key(&last, index.sk)?);
                }
            }
            reads.push(read);
        }
        let (found, cursor) = merge(reads, page.limit, Order::NewestFirst);
        let keys: Vec<Key> = found.into_iter().map(|(_, k)| k).collect();
        let mut items = self.get_many(&keys).await?;
        let mut records = Vec::new();
        for key in &keys {
            let Some(item) = items.remove(key) else {
                continue;
            };
            if filters.iter().all(|(a, v)| item.get(*a) == Some(v)) {
                records.push(from_item::<R>(item)?);
            }
        }
        Ok(Page {
            items: records,
            next_cursor: cursor.map(|sort| encode_cursor(&sort)),
        })
    }
}

fn text_sort_key(entry: &Item, attribute: &str) -> Result<String, AppError> {
    entry
        .get(attribute)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| AppError::internal("index entry without sort key"))
}

fn index_entry_key(entry: &Item) -> Result<Key, AppError> {
    key_of(entry).ok_or_else(|| AppError::internal("index entry without key"))
}

/// The id in an index entry's zero-padded sort key.
fn sort_key_id(item: &Item, index: Index) -> Result<Id, AppError> {
    item.get(index.sk)
        .and_then(|v| v.as_s().ok())
        .and_then(|text| text.parse::<u64>().ok())
        .and_then(Id::new)
        .ok_or_else(|| AppError::internal(format!("{}: sort key is not an id", index.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_map_keeps_the_cursor_and_fails_on_the_first_bad_record() {
        let page = |items: Vec<&str>| Page {
            items: items.into_iter().map(String::from).collect(),
            next_cursor: Some("c".to_string()),
        };
        let parsed = page(vec!["1", "2"]).try_map(|s| s.parse::<u8>());
        assert_eq!(
            parsed,
            Ok(Page {
                items: vec![1, 2],
                next_cursor: Some("c".to_string())
            })
        );
        assert!(page(vec!["1", "x", "3"])
            .try_map(|s| s.parse::<u8>())
            .is_err());
    }

    #[test]
    fn page_defaults_and_bounds() {
        assert_eq!(
            PageRequest::parse(None, None).unwrap(),
            PageRequest {
                limit: 50,
                past: None
            }
        );
        assert_eq!(
            PageRequest::parse(Some("100"), Some("42")).unwrap(),
            PageRequest {
                limit: 100,
                past: Id::new(42)
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

    fn id(n: u64) -> Id {
        Id::new(n).unwrap()
    }

    fn read(ids: &[u64], stopped_at: Option<u64>) -> PartitionRead {
        PartitionRead {
            found: ids
                .iter()
                .map(|&n| (id(n), super::super::keys::mandate(id(n))))
                .collect(),
            stopped_at: stopped_at.map(id),
        }
    }

    fn ids(found: &[(Id, Key)]) -> Vec<u64> {
        found.iter().map(|(i, _)| i.get()).collect()
    }

    #[test]
    fn merge_orders_newest_first_and_drops_duplicates() {
        let (found, cursor) = merge(
            vec![read(&[9, 5, 2], None), read(&[8, 5, 1], None)],
            10,
            NEWEST,
        );
        assert_eq!(ids(&found), vec![9, 8, 5, 2, 1]);
        assert_eq!(cursor, None);
    }

    #[test]
    fn merge_cuts_at_the_limit() {
        let (found, cursor) = merge(vec![read(&[9, 5, 2], None), read(&[8, 4], None)], 3, NEWEST);
        assert_eq!(ids(&found), vec![9, 8, 5]);
        assert_eq!(cursor, Some(id(5)));
    }

    #[test]
    fn merge_stops_where_an_unfinished_partition_stopped() {
        // Partition 2 was read only down to 6: ids below 6 may be missing
        // from it, so the page ends at 6 and the cursor resumes there.
        let (found, cursor) = merge(
            vec![read(&[9, 5, 2], None), read(&[7], Some(6))],
            10,
            NEWEST,
        );
        assert_eq!(ids(&found), vec![9, 7]);
        assert_eq!(cursor, Some(id(6)));
        // A short, even empty, page still moves the cursor down.
        let (found, cursor) = merge(vec![read(&[], Some(40)), read(&[], Some(30))], 10, NEWEST);
        assert!(found.is_empty());
        assert_eq!(cursor, Some(id(40)));
    }

    const NEWEST: Order = Order::NewestFirst;
    const OLDEST: Order = Order::OldestFirst;

    #[test]
    fn merge_oldest_first_mirrors_newest_first() {
        let (found, cursor) = merge(
            vec![read(&[2, 5, 9], None), read(&[1, 5, 8], None)],
            10,
            OLDEST,
        );
        assert_eq!(ids(&found), vec![1, 2, 5, 8, 9]);
        assert_eq!(cursor, None);
        let (found, cursor) = merge(vec![read(&[2, 5, 9], None), read(&[4, 8], None)], 3, OLDEST);
        assert_eq!(ids(&found), vec![2, 4, 5]);
        assert_eq!(cursor, Some(id(5)));
        // Partition 2 was read only up to 6: the page ends at 6.
        let (found, cursor) = merge(
            vec![read(&[2, 5, 9], None), read(&[3], Some(6))],
            10,
            OLDEST,
        );
        assert_eq!(ids(&found), vec![2, 3, 5]);
        assert_eq!(cursor, Some(id(6)));
        // The frontier is the stop reached first: the lower one.
        let (found, cursor) = merge(vec![read(&[], Some(40)), read(&[], Some(30))], 10, OLDEST);
        assert!(found.is_empty());
        assert_eq!(cursor, Some(id(30)));
    }

    #[test]
    fn budget_allows_one_query_per_shard() {
        assert_eq!(query_budget(1), MAX_QUERY_PAGES);
        assert_eq!(query_budget(8), 8);
    }

    fn keyed_read(sorts: &[&str], stopped_at: Option<&str>) -> PartitionRead<String> {
        PartitionRead {
            found: sorts
                .iter()
                .map(|s| (s.to_string(), super::super::keys::alert("T", s)))
                .collect(),
            stopped_at: stopped_at.map(str::to_string),
        }
    }

    fn sort_keys(found: &[(String, Key)]) -> Vec<&str> {
        found.iter().map(|(s, _)| s.as_str()).collect()
    }

    #[test]
    fn keyed_merge_orders_newest_first_and_pages() {
        let (found, cursor) = merge(
            vec![
                keyed_read(&["9", "5", "2"], None),
                keyed_read(&["8", "1"], None),
            ],
            10,
            NEWEST,
        );
        assert_eq!(sort_keys(&found), vec!["9", "8", "5", "2", "1"]);
        assert_eq!(cursor, None);
        let (found, cursor) = merge(
            vec![
                keyed_read(&["9", "5", "2"], None),
                keyed_read(&["8", "1"], None),
            ],
            2,
            NEWEST,
        );
        assert_eq!(sort_keys(&found), vec!["9", "8"]);
        assert_eq!(cursor.as_deref(), Some("8"));
    }

    #[test]
    fn keyed_merge_stops_at_an_unfinished_shard() {
        let (found, cursor) = merge(
            vec![
                keyed_read(&["9", "7"], Some("7")),
                keyed_read(&["8", "3"], None),
            ],
            10,
            NEWEST,
        );
        assert_eq!(sort_keys(&found), vec!["9", "8", "7"]);
        assert_eq!(cursor.as_deref(), Some("7"));
    }

    #[test]
    fn key_cursors_round_trip_and_refuse_garbage() {
        let key = "2026-01-01T00:00:00.000000Z#00#ab";
        let cursor = encode_cursor(key);
        assert!(cursor.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(decode_cursor(&cursor).as_deref(), Some(key));
        let page = KeyPageRequest::parse(Some("1"), Some(&cursor), |k| k.contains('#')).unwrap();
        assert_eq!(page.limit, 1);
        assert_eq!(page.after.as_deref(), Some(key));
        assert_eq!(
            KeyPageRequest::parse(None, Some("zz"), |_| true).unwrap_err(),
            vec![("cursor", "must be a next_cursor returned by this list")]
        );
        // A well-formed cursor of another list is refused too.
        assert!(
            KeyPageRequest::parse(None, Some(&encode_cursor("x")), |k| k.contains('#')).is_err()
        );
        assert_eq!(
            KeyPageRequest::parse(Some("0"), Some("zz"), |_| true)
                .unwrap_err()
                .len(),
            2
        );
        assert_eq!(
            KeyPageRequest::parse(None, None, |_| true).unwrap(),
            KeyPageRequest {
                limit: 50,
                after: None
            }
        );
    }
}
