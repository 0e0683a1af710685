//! Money input is exact over HTTP: a JSON number is read from its own digits,
//! never through `f64`, at the limits of the contract's range, for numbers and
//! for strings. (With `arbitrary_precision`, `serde_json` keeps a number's
//! text, so the bodies below go over the wire exactly as written.)

use kobatela_tests::{cents_of, mandate_balance, unique, Api, MandateSetup, Table};
use serde_json::{json, Value};

/// A JSON number exactly as written (not through `f64`).
fn number(text: &str) -> Value {
    let value: Value = serde_json::from_str(text).expect("a JSON number");
    assert!(value.is_number(), "{value}");
    value
}

async fn money_of(admin: &Api, mandate: u64) -> (String, String) {
    let (total, spent, _) = mandate_balance(admin, mandate).await;
    (total, spent)
}

/// One test, which counts every item of the shared table around the
/// refusals: `#[ignore]`d, so that `local/integration.sh` runs it after the
/// others, alone (`--ignored`), and nothing else writes meanwhile.
#[tokio::test]
#[ignore = "alone: counts every item of the shared table (local/integration.sh runs it after the others)"]
async fn money_input_is_exact() {
    the_largest_amounts_are_debited_to_the_cent().await;
    more_than_two_places_or_out_of_range_is_422_and_changes_nothing().await;
}

async fn the_largest_amounts_are_debited_to_the_cent() {
    let admin = Api::admin();
    let table = Table::new().await;
    // The contract's largest amount, as a JSON number: f64 cannot hold it.
    let s = MandateSetup::with_terms(
        &admin,
        "1.00",
        json!({"total_amount": number("999999999999999.99")}),
    )
    .await;
    assert_eq!(
        money_of(&admin, s.mandate).await,
        ("999999999999999.99".into(), "0.00".into())
    );

    // f64 reads 99999999999999.99 as 99999999999999.984375.
    let mut body = s.purchase("1");
    body["amount"] = number("99999999999999.99");
    let bought = admin.purchase(&unique("k"), body).await.expect(201);
    assert_eq!(bought.body["amount"], "99999999999999.99");
    let mut body = s.purchase("1");
    body["amount"] = json!("0.01");
    admin.purchase(&unique("k"), body).await.expect(201);
    assert_eq!(
        money_of(&admin, s.mandate).await,
        ("899999999999999.99".into(), "100000000000000.00".into())
    );
    let purchases = table.purchases_of(s.mandate).await;
    assert_eq!(cents_of(&purchases), 10_000_000_000_000_000);
}

async fn more_than_two_places_or_out_of_range_is_422_and_changes_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = MandateSetup::new(&admin, "100.00").await;
    let before = table.item_count().await;

    let refused = [
        // f64 reads this as 10.0 and would let it through.
        number("10.0000000000000001"),
        json!("10.0000000000000001"),
        number("0.001"),
        json!("999999999999999.999"),
        number("1000000000000000.00"),
        json!("1000000000000000"),
        number("1e15"),
        number("0"),
        json!("0.00"),
        number("-0.01"),
    ];
    for amount in refused {
        let mut body = s.purchase("1");
        body["amount"] = amount.clone();
        let reply = admin
            .purchase(&unique("k"), body)
            .await
            .expect_error(422, "VALIDATION_ERROR");
        assert!(
            reply.body["error"]["details"]["fields"]["amount"].is_string(),
            "{amount}: {}",
            reply.text
        );
    }
    for total in [number("10.0000000000000001"), number("1000000000000000.00")] {
        admin
            .post(
                "/mandates",
                json!({"sender_id": s.sender, "beneficiary_id": s.beneficiary,
                       "total_amount": total, "currency": "EUR",
                       "expires_at": "2099-01-01T00:00:00Z"}),
            )
            .await
            .expect_error(422, "VALIDATION_ERROR");
    }
    assert_eq!(
        table.item_count().await,
        before,
        "a refusal wrote something"
    );
    assert_eq!(
        money_of(&admin, s.mandate).await,
        ("100.00".into(), "0.00".into())
    );
}
