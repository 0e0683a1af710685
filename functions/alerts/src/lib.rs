//! Staff reads of what happened: `GET /audit/{entity}/{id}` (one entity's
//! audit trail, oldest first), `GET /alerts` (newest first, by type and
//! whether acknowledged) and `POST /alerts/{id}/ack` (staff say they have
//! seen it: audited, once).

use axum::{
    extract::{rejection::PathRejection, Path, State},
    http::StatusCode,
    response::Response,
    Router,
};
use shared::{
    domain::{access::Principal, alert::AlertType, error::ErrorCode, ids::Id},
    error::AppError,
    http::{
        body::query_errors,
        extract::{ListQuery, PathId, QueryMap},
        json,
    },
    store::{
        alerts::is_alert_sort_key,
        audit::{entity, is_trail_sort_key, Actor},
        list::KeyPageRequest,
    },
    SharedState,
};

pub fn router(state: SharedState) -> Router {
    shared::api_doc::router(routes(), state)
}

const ENTITY_PROBLEM: &str =
    "must be one of user, apikey, mandate, purchase, escrow, proof, payment, transaction, alert";
const ACKNOWLEDGED_PROBLEM: &str = "must be true or false";
const TYPE_PROBLEM: &str = "must be one of UNAUTHORIZED_TRANSFER_ATTEMPT, ESCROW_DEADLINE_MISSED, PSP_EVENT_CONFLICT, PSP_UNKNOWN_REFERENCE, PAYMENT_FAILED, PAYOUT_STUCK, LEDGER_MISMATCH, SETTLEMENT_MISMATCH";

/// Problems with `{entity}` and `{id}`, or the audit entity and id.
fn parse_target(
    entity_name: &str,
    id: &str,
) -> Result<(&'static str, Id), Vec<(&'static str, &'static str)>> {
    let entity = entity::from_path(entity_name);
    let id = Id::parse(id);
    match (entity, id) {
        (Some(entity), Ok(id)) => Ok((entity, id)),
        (entity, id) => {
            let mut problems = Vec::new();
            if entity.is_none() {
                problems.push(("entity", ENTITY_PROBLEM));
            }
            if let Err(problem) = id {
                problems.push(("id", problem));
            }
            Err(problems)
        }
    }
}

async fn trail(
    State(state): State<SharedState>,
    caller: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
    QueryMap(query): QueryMap,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_staff())?;
    // Segments that are not UTF-8 once decoded name no entity or id.
    let (entity_name, id) = path.map(|Path(p)| p).unwrap_or_default();
    let value = |name: &str| query.get(name).map(String::as_str);
    let target = parse_target(&entity_name, &id);
    let page = KeyPageRequest::parse(value("limit"), value("cursor"), is_trail_sort_key);
    let ((entity, id), page) = match (target, page) {
        (Ok(target), Ok(page)) => (target, page),
        (target, page) => {
            let mut problems = target.err().unwrap_or_default();
            problems.extend(page.err().unwrap_or_default());
            return Err(query_errors(problems));
        }
    };
    // An entity with no entries (or none at all) is an empty trail: the
    // audit log does not say whether the entity exists.
    Ok(json(
        StatusCode::OK,
        &state.store.audit_page(entity, id, &page).await?,
    ))
}

async fn alerts(
    State(state): State<SharedState>,
    caller: Principal,
    mut query: ListQuery,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_staff())?;
    let alert_type = query.parsed("type", AlertType::parse, TYPE_PROBLEM);
    let acknowledged = query.parsed("acknowledged", parse_bool, ACKNOWLEDGED_PROBLEM);
    let page = query.key_page(is_alert_sort_key)?;
    Ok(json(
        StatusCode::OK,
        &state.store.alerts(alert_type, acknowledged, &page).await?,
    ))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// `POST /alerts/{id}/ack`: 200 with the alert acknowledged; again, 200
/// unchanged (who and when stay the first).
async fn acknowledge(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_staff())?;
    let alert = state
        .store
        .acknowledge_alert(id, &Actor::from(&caller))
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::AlertNotFound, "Alert not found."))?;
    Ok(json(StatusCode::OK, &alert))
}

// ---------------------------------------------------------------------------
// The routes: the router and the API document

/// This function's routes: each one's handler and its API document entry.
pub fn routes() -> Vec<shared::api_doc::Route> {
    use shared::{
        api_doc::{one_of_strings, Route},
        store::{alerts::AlertView, audit::AuditView},
    };
    let types: Vec<&str> = AlertType::ALL.iter().map(|t| t.as_str()).collect();
    vec![
        Route::get(
            "/audit/{entity}/{id}",
            "The audit trail of one entity, oldest first",
            trail,
        )
        .path_schema(
            "entity",
            one_of_strings(&entity::BY_PATH.map(|(name, _)| name)),
        )
        .list::<AuditView>(),
        Route::get("/alerts", "Alerts, newest first", alerts)
            .query("type", one_of_strings(&types), false)
            .query("acknowledged", one_of_strings(&["true", "false"]), false)
            .list::<AlertView>(),
        Route::post(
            "/alerts/{id}/ack",
            "Acknowledge an alert (no body); again: unchanged",
            acknowledge,
        )
        .answer::<AlertView>(200, "The alert, acknowledged.")
        .errors(&[ErrorCode::AlertNotFound]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_every_bad_part() {
        assert_eq!(
            parse_target("user", "7").unwrap(),
            ("USER", Id::new(7).unwrap())
        );
        assert_eq!(parse_target("mandate", "12").unwrap().0, "USAGE_MANDATE");
        fn names(r: Result<(&str, Id), Vec<(&'static str, &'static str)>>) -> Vec<&'static str> {
            r.unwrap_err().into_iter().map(|(n, _)| n).collect()
        }
        assert_eq!(names(parse_target("merchant", "7")), vec!["entity"]);
        assert_eq!(names(parse_target("user", "x")), vec!["id"]);
        assert_eq!(names(parse_target("user", "0")), vec!["id"]);
        assert_eq!(names(parse_target("nope", "-1")), vec!["entity", "id"]);
        assert_eq!(parse_target("alert", "3").unwrap().0, "ALERT");
    }

    #[test]
    fn acknowledged_is_a_strict_boolean() {
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool("false"), Some(false));
        for bad in ["", "1", "yes", "True", "FALSE"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_type_problem_lists_every_type() {
        for t in AlertType::ALL {
            assert!(TYPE_PROBLEM.contains(t.as_str()));
        }
        for (path, _) in entity::BY_PATH {
            assert!(ENTITY_PROBLEM.contains(path));
        }
    }
}
