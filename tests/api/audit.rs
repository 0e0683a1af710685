//! Staff reads over HTTP: `GET /audit/{entity}/{id}` after known actions
//! (exact actions in order, actors, data), paged with `limit=1`, bad input
//! and the wrong callers refused; `GET /alerts` over alerts raised through
//! the store's builder (newest first across shards, by type, paged
//! completely, raised once per cause).
//!
//! The audit trails' test counts every item of the shared table around its
//! refusals, so it is `#[ignore]`d: `local/integration.sh` runs it after the
//! others, alone (`--ignored`), and nothing else writes meanwhile.

use kobatela_tests::{create_user, unique, user_key, Api, MandateSetup, Table};
use serde_json::{json, Value};
use shared::{
    domain::{alert::AlertType, ids::Id, time::Timestamp},
    store::alerts::NewAlert,
};

/// A new staff key of `scope`, and its id.
async fn staff_key(admin: &Api, scope: &str) -> (Api, u64) {
    let reply = admin
        .post("/apikeys", json!({"name": unique(scope), "scope": scope}))
        .await
        .expect(201);
    let key = reply.body["key"].as_str().unwrap().to_string();
    (Api::with_key(Some(key)), reply.id())
}

/// The id of the admin key the tests use (made by `kobatela-local` at start).
async fn admin_key_id(admin: &Api) -> u64 {
    let keys = admin.get("/apikeys?limit=100").await.expect(200).body;
    let mut found = Vec::new();
    let mut page = keys;
    loop {
        for key in page["items"].as_array().unwrap() {
            if key["name"] == "local-admin" {
                found.push(key["id"].as_u64().unwrap());
            }
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                page = admin
                    .get(&format!("/apikeys?limit=100&cursor={cursor}"))
                    .await
                    .expect(200)
                    .body
            }
            None => break,
        }
    }
    assert_eq!(found.len(), 1, "one local-admin key");
    found[0]
}

/// Every page of `path` (which has a query string) with `limit`, checking
/// each page's size; the items in order.
async fn walk(api: &Api, path: &str, limit: usize) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&limit={limit}&cursor={c}"),
            None => format!("{path}&limit={limit}"),
        };
        let page = api.get(&url).await.expect(200).body;
        pages += 1;
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit, "{url}: {page}");
        items.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(
                    got.len(),
                    limit,
                    "a page short of its limit has no next page"
                );
                cursor = Some(c.to_string());
            }
            None => return (items, pages),
        }
        assert!(pages < 1000, "{path} does not end");
    }
}

fn actions(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
#[ignore = "alone: counts every item of the shared table (local/integration.sh runs it after the others)"]
async fn audit_trails_of_a_user_and_a_mandate_page_completely_for_staff_only() {
    let admin = Api::admin();
    let table = Table::new().await;
    let admin_actor = format!("apikey:{}", admin_key_id(&admin).await);
    let (support, support_id) = staff_key(&admin, "support").await;
    let support_actor = format!("apikey:{support_id}");

    // A user: created by the admin, deactivated by support, reactivated.
    let user = create_user(&admin, "audited").await;
    support.set_user_active(user, false).await.expect(200);
    admin.set_user_active(user, true).await.expect(200);
    let trail = support
        .get(&format!("/audit/user/{user}"))
        .await
        .expect(200)
        .body;
    let items = trail["items"].as_array().unwrap();
    assert_eq!(
        actions(items),
        vec!["USER_CREATED", "USER_DEACTIVATED", "USER_REACTIVATED"]
    );
    assert_eq!(trail["next_cursor"], Value::Null);
    let actors: Vec<&str> = items.iter().map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(actors, vec![&*admin_actor, &*support_actor, &*admin_actor]);
    assert!(items[0]["data"]["username"]
        .as_str()
        .is_some_and(|n| n.starts_with("audited-")));
    assert_eq!(items[0]["data"]["is_active"], true);
    assert_eq!(items[1]["data"], json!({"is_active": false}));
    assert_eq!(items[2]["data"], json!({"is_active": true}));
    let times: Vec<Timestamp> = items
        .iter()
        .map(|e| Timestamp::parse(e["at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );
    assert!(items
        .iter()
        .all(|e| e["at"].as_str().unwrap().ends_with('Z')));
    assert_eq!(items[0].as_object().unwrap().len(), 4, "{}", items[0]);

    // A mandate: created, debited twice, consumed by the second purchase.
    let s = MandateSetup::new(&admin, "10.00").await;
    let beneficiary = user_key(&admin, s.beneficiary).await;
    let first = beneficiary
        .purchase(&unique("k"), s.purchase("4.00"))
        .await
        .expect(201)
        .id();
    let second = beneficiary
        .purchase(&unique("k"), s.purchase("6.00"))
        .await
        .expect(201)
        .id();
    let path = format!("/audit/mandate/{}", s.mandate);
    let all = admin.get(&path).await.expect(200).body;
    let items = all["items"].as_array().unwrap().clone();
    assert_eq!(
        actions(&items),
        vec![
            "USAGE_MANDATE_CREATED",
            "USAGE_MANDATE_DEBITED",
            "USAGE_MANDATE_DEBITED",
            "USAGE_MANDATE_CONSUMED"
        ]
    );
    assert_eq!(items[0]["actor"], admin_actor.as_str());
    assert_eq!(items[0]["data"]["sender_id"], s.sender);
    assert_eq!(items[0]["data"]["beneficiary_id"], s.beneficiary);
    assert_eq!(items[0]["data"]["total_amount"], "10.00");
    assert_eq!(items[0]["data"]["currency"], "USD");
    assert_eq!(items[1]["data"]["purchase_id"], first);
    assert_eq!(items[1]["data"]["amount"], "4.00");
    assert_eq!(items[2]["data"]["purchase_id"], second);
    assert_eq!(items[2]["data"]["amount"], "6.00");
    assert_eq!(items[3]["data"], json!({"purchase_id": second}));
    let beneficiary_actor = items[1]["actor"].as_str().unwrap();
    assert!(beneficiary_actor.starts_with("apikey:") && beneficiary_actor != admin_actor);
    assert_eq!(items[3]["actor"], beneficiary_actor);

    // limit=1 visits every entry once, in the same order; so does limit=3.
    let (paged, pages) = walk(&support, &format!("{path}?x=1"), 1).await;
    assert_eq!(paged, items);
    assert_eq!(pages, 4, "no trailing empty page");
    let (paged, pages) = walk(&admin, &format!("{path}?x=1"), 3).await;
    assert_eq!(paged, items);
    assert_eq!(pages, 2);

    // An entity with no entries: an empty trail.
    admin
        .get("/audit/escrow/999999999")
        .await
        .expect(200)
        .body
        .eq(&json!({"items": [], "next_cursor": null}))
        .then_some(())
        .expect("an empty trail");

    // Bad input: 422 naming what is wrong, nothing written.
    let before = table.item_count().await;
    for (url, fields) in [
        ("/audit/merchant/1".to_string(), vec!["entity"]),
        ("/audit/USER/1".to_string(), vec!["entity"]),
        (format!("/audit/user/{user}x"), vec!["id"]),
        ("/audit/user/0".to_string(), vec!["id"]),
        ("/audit/user/-3".to_string(), vec!["id"]),
        ("/audit/nope/abc".to_string(), vec!["entity", "id"]),
        ("/audit/%FF/1".to_string(), vec!["entity", "id"]),
        (format!("{path}?limit=0"), vec!["limit"]),
        (format!("{path}?limit=101"), vec!["limit"]),
        (format!("{path}?cursor=zz"), vec!["cursor"]),
        // A cursor of another list (an alerts cursor) is refused too.
        (
            format!(
                "{path}?cursor={}",
                hex_of("2030-01-01T00:00:00.000000Z#00000000000000000001")
            ),
            vec!["cursor"],
        ),
    ] {
        let reply = admin.get(&url).await.expect_error(422, "VALIDATION_ERROR");
        let mut named: Vec<&String> = reply.body["error"]["details"]["fields"]
            .as_object()
            .unwrap_or_else(|| panic!("{url}: {}", reply.text))
            .keys()
            .collect();
        named.sort();
        assert_eq!(named, fields, "{url}: {}", reply.text);
    }
    assert_eq!(table.item_count().await, before, "refusals write nothing");
    assert_eq!(
        table.audit_actions("USAGE_MANDATE", s.mandate).await.len(),
        4
    );

    // Callers: a user key (even the mandate's own party) → 403, before any
    // check of the input; no key or a bad key → 401.
    for url in [
        path.clone(),
        "/audit/nope/x".to_string(),
        format!("/audit/user/{}", s.beneficiary),
    ] {
        beneficiary.get(&url).await.expect_error(403, "FORBIDDEN");
        Api::anonymous()
            .get(&url)
            .await
            .expect_error(401, "UNAUTHORIZED");
        Api::with_key(Some("kob_not_a_key".into()))
            .get(&url)
            .await
            .expect_error(401, "UNAUTHORIZED");
    }
    admin.post(&path, json!({})).await.expect(405);
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Alert ids no other alert of this run has (a random block of `n`).
fn fresh_ids(n: u64) -> Vec<Id> {
    let base = (uuid::Uuid::new_v4().as_u128() as u64 & ((1 << 50) - 1)) + 1;
    (0..n).map(|i| Id::new(base + i).unwrap()).collect()
}

fn new_alert(id: Id, alert_type: AlertType, cause: &str, second: u32) -> NewAlert {
    NewAlert {
        id,
        alert_type,
        cause: cause.to_string(),
        message: format!("test alert {cause}"),
        actor_user_id: Id::new(7),
        payload: json!({"cause": cause, "payment_id": id.get()}),
        created_at: Timestamp::parse(&format!("2031-02-03T04:05:{second:02}Z")).unwrap(),
    }
}

/// The ids of `items` that are among `ours`, in order.
fn ours_in(items: &[Value], ours: &[u64]) -> Vec<u64> {
    items
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .filter(|id| ours.contains(id))
        .collect()
}

/// `(created_at, id)` never increases along `items`, and no id repeats.
fn assert_newest_first(items: &[Value]) {
    let keys: Vec<(String, u64)> = items
        .iter()
        .map(|a| {
            (
                a["created_at"].as_str().unwrap().to_string(),
                a["id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {keys:?}"
    );
}

#[tokio::test]
async fn audit_alerts_newest_first_across_shards_by_type_and_once_per_cause() {
    let admin = Api::admin();
    let table = Table::new().await;
    let (support, _) = staff_key(&admin, "support").await;
    let run = unique("cause");

    // Twelve alerts on consecutive ids (so on every shard), raised out of
    // time order; two types.
    let ids = fresh_ids(12);
    let mut raised = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let alert_type = if i % 3 == 0 {
            AlertType::PspUnknownReference
        } else {
            AlertType::PaymentFailed
        };
        let second = ((i * 7) % 12) as u32; // a permutation of 0..12
        let alert = new_alert(*id, alert_type, &format!("{run}:{i}"), second);
        table
            .raise_alert(&alert)
            .await
            .expect("the alert is raised");
        raised.push(alert);
    }
    // The same cause again, with a fresh id (a retry): refused, no second alert.
    let again = new_alert(fresh_ids(1)[0], raised[1].alert_type, &raised[1].cause, 30);
    assert!(
        table.raise_alert(&again).await.is_err(),
        "a retried cause raises nothing"
    );

    let mut expected = raised.clone();
    expected.sort_by_key(|a| std::cmp::Reverse((a.created_at, a.id)));
    let expected_ids: Vec<u64> = expected.iter().map(|a| a.id.get()).collect();
    let all_ours: Vec<u64> = ids.iter().map(|i| i.get()).collect();

    // All alerts, one page and then pages of 1 and 5: the same, complete.
    let page = support.get("/alerts?limit=100").await.expect(200).body;
    let items = page["items"].as_array().unwrap();
    assert_newest_first(items);
    assert_eq!(ours_in(items, &all_ours), expected_ids);
    for limit in [1, 5] {
        let (paged, _) = walk(&admin, "/alerts?x=1", limit).await;
        assert_newest_first(&paged);
        assert_eq!(ours_in(&paged, &all_ours), expected_ids, "limit {limit}");
    }
    let shown = items
        .iter()
        .find(|a| a["id"] == ids[1].get())
        .expect("alert 1 is listed");
    assert_eq!(
        shown,
        &json!({
            "id": ids[1].get(),
            "type": "PAYMENT_FAILED",
            "message": format!("test alert {run}:1"),
            "actor_user_id": 7,
            "payload": {"cause": format!("{run}:1"), "payment_id": ids[1].get()},
            "created_at": "2031-02-03T04:05:07.000000Z",
            "acknowledged_at": null,
            "acknowledged_by": null,
        })
    );

    // By type: only that type, newest first, complete with limit 1.
    for alert_type in [AlertType::PaymentFailed, AlertType::PspUnknownReference] {
        let want: Vec<u64> = expected
            .iter()
            .filter(|a| a.alert_type == alert_type)
            .map(|a| a.id.get())
            .collect();
        let (paged, _) = walk(
            &support,
            &format!("/alerts?type={}", alert_type.as_str()),
            1,
        )
        .await;
        assert_newest_first(&paged);
        assert!(paged.iter().all(|a| a["type"] == alert_type.as_str()));
        assert_eq!(ours_in(&paged, &all_ours), want);
    }
    admin
        .get("/alerts?type=ESCROW_DEADLINE_MISSED")
        .await
        .expect(200);

    // Bad input → 422 naming it; wrong callers → 403 / 401.
    for (url, fields) in [
        ("/alerts?type=payment_failed", vec!["type"]),
        ("/alerts?type=NOPE&limit=0", vec!["limit", "type"]),
        ("/alerts?cursor=00zz", vec!["cursor"]),
        ("/alerts?limit=abc", vec!["limit"]),
    ] {
        let reply = admin.get(url).await.expect_error(422, "VALIDATION_ERROR");
        let mut named: Vec<&String> = reply.body["error"]["details"]["fields"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        named.sort();
        assert_eq!(named, fields, "{url}: {}", reply.text);
    }
    let user = create_user(&admin, "alerted").await;
    user_key(&admin, user)
        .await
        .get("/alerts")
        .await
        .expect_error(403, "FORBIDDEN");
    Api::anonymous()
        .get("/alerts")
        .await
        .expect_error(401, "UNAUTHORIZED");
}
