//! Lists over sharded, narrow indexes: a `user` key filtering by its
//! counterparty sees the mandates between the two; a filtered list reads a
//! bounded number of index pages per request and hands back a cursor, and
//! following the cursors yields every match exactly once; the list of all
//! mandates merges every shard newest first; the sweep finds overdue mandates
//! in every shard. Each test has its own table (`InProcess`), and counts the
//! index reads of each request through the fault injector's client.

use kobatela_tests::{create_user, faults::Faults, unique, InProcess, MandateSetup, Reply, Table};
use serde_json::{json, Value};
use shared::store::keys;
use std::collections::BTreeSet;

/// An in-process API whose DynamoDB calls can be counted.
async fn api(name: &str) -> (InProcess, Faults) {
    let faults = Faults::start().await;
    let api = InProcess::with_client(name, faults.client().await, &[]).await;
    (api, faults)
}

fn ids(page: &Reply) -> Vec<u64> {
    page.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {}", page.text))
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

/// Follows `next_cursor` from `path` (which has a `?`); every id seen, in
/// order, and the most index reads one request made.
async fn follow(api: &InProcess, faults: &Faults, path: &str) -> (Vec<u64>, u64, usize) {
    let mut seen = Vec::new();
    let mut most_queries = 0;
    let mut pages = 0;
    let mut next = path.to_string();
    loop {
        faults.reset_counts();
        let page = api.get(&next).await.expect(200);
        most_queries = most_queries.max(faults.executions("Query"));
        pages += 1;
        seen.extend(ids(&page));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => next = format!("{path}&cursor={cursor}"),
            None => return (seen, most_queries, pages),
        }
        assert!(pages < 1000, "the cursor never ends");
    }
}

async fn mandate(api: &InProcess, sender: u64, beneficiary: u64, currency: &str) -> u64 {
    api.post(
        "/mandates",
        json!({"sender_id": sender, "beneficiary_id": beneficiary, "total_amount": "1.00",
               "currency": currency, "expires_at": "2099-01-01T00:00:00Z"}),
    )
    .await
    .expect(201)
    .id()
}

async fn user_api(api: &InProcess, user: u64) -> String {
    api.post(
        "/apikeys",
        json!({"name": unique("k"), "scope": "user", "user_id": user}),
    )
    .await
    .expect(201)
    .body["key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn get_as(api: &InProcess, key: &str, path: &str) -> Reply {
    api.call_as(key, "GET", path, None).await
}

#[tokio::test]
async fn a_user_filtering_by_its_counterparty_sees_their_mandates() {
    let (api, _) = api("lists-counterparty").await;
    let sender = create_user(&api, "s").await;
    let beneficiary = create_user(&api, "b").await;
    let stranger = create_user(&api, "x").await;
    let usd = mandate(&api, sender, beneficiary, "USD").await;
    let eur = mandate(&api, sender, beneficiary, "EUR").await;
    mandate(&api, sender, stranger, "USD").await;
    mandate(&api, stranger, beneficiary, "USD").await;
    let as_sender = user_api(&api, sender).await;
    let as_beneficiary = user_api(&api, beneficiary).await;

    // The beneficiary asks for its mandates from this sender; and the reverse.
    let from_sender = get_as(
        &api,
        &as_beneficiary,
        &format!("/mandates?sender_id={sender}"),
    )
    .await
    .expect(200);
    assert_eq!(ids(&from_sender), [eur, usd]);
    let to_beneficiary = get_as(
        &api,
        &as_sender,
        &format!("/mandates?beneficiary_id={beneficiary}"),
    )
    .await
    .expect(200);
    assert_eq!(ids(&to_beneficiary), [eur, usd]);
    // Nobody sees mandates they are not a party to.
    let none = get_as(
        &api,
        &as_sender,
        &format!("/mandates?sender_id={stranger}&beneficiary_id={beneficiary}"),
    )
    .await
    .expect(200);
    assert_eq!(ids(&none), Vec::<u64>::new());
}

#[tokio::test]
async fn filtered_lists_read_a_bounded_number_of_pages_and_miss_nothing() {
    let (api, faults) = api("lists-bounded").await;
    let sender = create_user(&api, "s").await;
    // 40 mandates of one sender, 4 of them ACTIVE in EUR... the filter keeps
    // only CONSUMED ones, which are few: most index entries are dropped.
    let mut consumed = Vec::new();
    for i in 0..40 {
        let beneficiary = create_user(&api, "b").await;
        let id = mandate(&api, sender, beneficiary, "USD").await;
        if i % 10 == 3 {
            // Consume it: allow a merchant and spend the whole balance.
            let s = MandateSetup {
                sender,
                beneficiary,
                category: 0,
                merchant: api
                    .post("/spend/merchants", json!({"name": unique("m")}))
                    .await
                    .expect(201)
                    .id(),
                mandate: id,
            };
            api.post(
                "/spend/allow",
                json!({"owner_id": beneficiary, "merchant_id": s.merchant}),
            )
            .await
            .expect(201);
            let mut body = s.purchase("1.00");
            body.as_object_mut().unwrap().remove("category_id");
            api.purchase(&unique("k"), body).await.expect(201);
            consumed.push(id);
        }
    }
    consumed.reverse();
    let (seen, most_queries, pages) = follow(
        &api,
        &faults,
        &format!("/mandates?sender_id={sender}&status=CONSUMED&limit=2"),
    )
    .await;
    assert_eq!(seen, consumed, "every match once, newest first");
    assert!(
        most_queries <= 5,
        "a request made {most_queries} index reads"
    );
    assert!(pages >= 2);
}

#[tokio::test]
async fn all_mandates_merge_every_shard_newest_first() {
    let (api, faults) = api("lists-shards").await;
    let mut made = Vec::new();
    for _ in 0..(2 * keys::index_shards() + 3) {
        let s = create_user(&api, "s").await;
        let b = create_user(&api, "b").await;
        made.push(mandate(&api, s, b, "USD").await);
    }
    made.reverse();
    let (seen, most_queries, _) = follow(&api, &faults, "/mandates?limit=4").await;
    assert_eq!(seen, made, "every shard, newest first, each once");
    assert!(most_queries <= keys::index_shards().max(5));
    let shards: BTreeSet<u64> = made.iter().map(|id| id % keys::index_shards()).collect();
    assert_eq!(
        shards.len() as u64,
        keys::index_shards(),
        "mandates span every shard"
    );
}

#[tokio::test]
async fn the_sweep_finds_overdue_mandates_in_every_shard() {
    let (api, _) = api("lists-sweep").await;
    let table = Table::named(&api.table).await;
    let mut overdue = Vec::new();
    for _ in 0..keys::index_shards() {
        let s = create_user(&api, "s").await;
        let b = create_user(&api, "b").await;
        let id = mandate(&api, s, b, "USD").await;
        table.backdate_mandate(id).await;
        overdue.push(id);
    }
    let run: Value = api
        .post("/mandates/cleanup", json!({}))
        .await
        .expect(202)
        .body;
    assert_eq!(run["expired"], overdue.len());
    for id in overdue {
        let m = api.get(&format!("/mandates/{id}")).await.expect(200);
        assert_eq!(m.body["status"], "EXPIRED");
    }
}
