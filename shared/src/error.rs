//! The one error type handlers and adapters return. It maps to the contract's
//! shape `{"error": {"code", "message", "details"?}}` (see `http`).

use crate::domain::{
    error::ErrorCode,
    escrow::{
        milestone::{PayoutRefusal, ProofTargetRefusal},
        payment::RetryRefusal,
        EscrowRefusal,
    },
    mandate::MandateRefusal,
    proof::ProofRefusal,
    proof_review::DecisionRefusal,
    purchase::PurchaseRefusal,
    spend::SpendRefusal,
    upload::BytesRefusal,
};
use serde_json::{Map, Value};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> AppError {
        AppError {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// 422 naming every bad field: `details.fields.<name>` says what is wrong.
    pub fn validation(fields: Map<String, Value>) -> AppError {
        AppError {
            code: ErrorCode::ValidationError,
            message: "The request is not valid.".into(),
            details: Some(serde_json::json!({ "fields": fields })),
        }
    }

    pub fn field(name: &str, problem: &str) -> AppError {
        let mut fields = Map::new();
        fields.insert(name.to_string(), Value::String(problem.to_string()));
        AppError::validation(fields)
    }

    /// A known key without the scope or ownership the route needs.
    pub fn forbidden() -> AppError {
        AppError::new(ErrorCode::Forbidden, "This API key may not do this.")
    }

    /// `Ok` if the caller may do this, else 403 `FORBIDDEN`.
    pub fn permit(allowed: bool) -> AppResult<()> {
        if allowed {
            Ok(())
        } else {
            Err(AppError::forbidden())
        }
    }

    /// 403: an inactive user cannot act nor be a party to something new.
    pub fn user_inactive(user: crate::domain::ids::Id) -> AppError {
        AppError::new(ErrorCode::UserInactive, format!("User {user} is inactive."))
    }

    /// 503: DynamoDB stayed contended or throttled through every retry.
    /// Nothing was changed; the HTTP layer adds `Retry-After`.
    pub fn busy() -> AppError {
        AppError::new(
            ErrorCode::ServiceBusy,
            "The service is busy; nothing was changed. Retry shortly (with the same Idempotency-Key, if any).",
        )
    }

    pub fn is_busy(&self) -> bool {
        self.code == ErrorCode::ServiceBusy
    }

    /// A failure that is not the caller's: logged here, never shown to them.
    pub fn internal(cause: impl fmt::Display) -> AppError {
        tracing::error!(error = %cause, "internal error");
        AppError::new(ErrorCode::InternalError, "An unexpected error occurred.")
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    pub fn body(&self) -> Value {
        let mut error = serde_json::json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        serde_json::json!({ "error": error })
    }
}

impl From<PurchaseRefusal> for AppError {
    fn from(refusal: PurchaseRefusal) -> AppError {
        AppError::new(refusal.code(), refusal.message())
    }
}

impl From<EscrowRefusal> for AppError {
    fn from(refusal: EscrowRefusal) -> AppError {
        let message = match refusal {
            EscrowRefusal::InvalidState => "The escrow's status does not allow this.",
            EscrowRefusal::NotActive => {
                "The escrow is released, refunded or cancelled: nothing can be spent from it."
            }
            EscrowRefusal::DepositExceedsTotal => {
                "The deposit is more than what the escrow still misses (amount_total - amount_funded)."
            }
            EscrowRefusal::InsufficientBalance => {
                "The escrow does not hold enough available money."
            }
        };
        AppError::new(refusal.code(), message)
    }
}

impl From<SpendRefusal> for AppError {
    fn from(refusal: SpendRefusal) -> AppError {
        let message = match refusal {
            SpendRefusal::Escrow(refusal) => return refusal.into(),
            SpendRefusal::PayeeNotAllowed => "This payee is not allowed for this escrow.",
            SpendRefusal::DailyLimitReached => {
                "This spend would pass the payee's daily limit (UTC day)."
            }
            SpendRefusal::TotalLimitReached => "This spend would pass the payee's total limit.",
        };
        AppError::new(refusal.code(), message)
    }
}

impl From<PayoutRefusal> for AppError {
    fn from(refusal: PayoutRefusal) -> AppError {
        let message = match refusal {
            PayoutRefusal::MilestoneNotFound => "Milestone not found.",
            PayoutRefusal::AlreadyPaid => "This milestone is already paid.",
            PayoutRefusal::EarlierUnpaid => {
                "An earlier milestone's payout has not gone through (it failed at the PSP and \
                 awaits a retry): milestones are paid in order. Retry that payment first."
            }
        };
        AppError::new(refusal.code(), message)
    }
}

impl From<RetryRefusal> for AppError {
    fn from(refusal: RetryRefusal) -> AppError {
        let message = match refusal {
            RetryRefusal::TotalLimitReached => {
                "Sending this spend again would pass the payee's total limit."
            }
            RetryRefusal::InsufficientBalance => {
                "The escrow does not hold enough available money to send this payment again."
            }
        };
        AppError::new(refusal.code(), message)
    }
}

impl From<ProofTargetRefusal> for AppError {
    fn from(refusal: ProofTargetRefusal) -> AppError {
        let message = match refusal {
            ProofTargetRefusal::MilestoneNotFound => "Milestone not found for this escrow.",
            ProofTargetRefusal::EscrowInvalidState => "The escrow is not FUNDED or RELEASABLE.",
            ProofTargetRefusal::NoOpenMilestone => "Every milestone of this escrow is paid.",
            ProofTargetRefusal::NotCurrent => "This is not the escrow's current milestone.",
            ProofTargetRefusal::NotWaiting => "The milestone is not waiting for a proof.",
        };
        AppError::new(refusal.code(), message)
    }
}

impl From<DecisionRefusal> for AppError {
    fn from(refusal: DecisionRefusal) -> AppError {
        let message = match refusal {
            DecisionRefusal::AlreadyApproved => "This proof is already approved.",
            DecisionRefusal::AlreadyRejected => "This proof is already rejected.",
        };
        AppError::new(refusal.code(), message)
    }
}

impl From<BytesRefusal> for AppError {
    fn from(refusal: BytesRefusal) -> AppError {
        AppError::new(
            refusal.code(),
            "The uploaded bytes are not the declared file (length or SHA-256 differ).",
        )
    }
}

impl From<MandateRefusal> for AppError {
    fn from(refusal: MandateRefusal) -> AppError {
        match refusal.code() {
            ErrorCode::ValidationError => AppError::field(refusal.field(), refusal.message()),
            code => AppError::new(code, refusal.message()),
        }
    }
}

impl From<ProofRefusal> for AppError {
    fn from(refusal: ProofRefusal) -> AppError {
        AppError {
            code: refusal.code(),
            message: refusal.message().into(),
            details: refusal.details(),
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AppError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_contract_shape() {
        let e = AppError::field("amount", "must be greater than 0");
        assert_eq!(e.status(), 422);
        assert_eq!(
            e.body(),
            serde_json::json!({"error": {
                "code": "VALIDATION_ERROR",
                "message": "The request is not valid.",
                "details": {"fields": {"amount": "must be greater than 0"}}
            }})
        );
        let plain = AppError::new(ErrorCode::UserNotFound, "User not found.").body();
        assert!(plain["error"].get("details").is_none());
    }

    #[test]
    fn proof_refusals_keep_their_details() {
        let e = AppError::from(ProofRefusal::GeofenceViolation {
            distance_m: 150.5,
            radius_m: 100.0,
        });
        assert_eq!(e.status(), 422);
        assert_eq!(e.body()["error"]["code"], "GEOFENCE_VIOLATION");
        assert_eq!(
            e.body()["error"]["details"]["distance_m"].as_f64(),
            Some(150.5)
        );
        let plain = AppError::from(ProofRefusal::MissingExifTimestamp).body();
        assert!(plain["error"].get("details").is_none());
    }

    #[test]
    fn typed_refusals_answer_their_code_and_message() {
        let cases = [
            (
                AppError::from(SpendRefusal::Escrow(EscrowRefusal::NotActive)),
                "ESCROW_NOT_ACTIVE",
                "The escrow is released, refunded or cancelled: nothing can be spent from it.",
            ),
            (
                AppError::from(SpendRefusal::DailyLimitReached),
                "DAILY_LIMIT_REACHED",
                "This spend would pass the payee's daily limit (UTC day).",
            ),
            (
                AppError::from(PayoutRefusal::AlreadyPaid),
                "MILESTONE_NOT_WAITING",
                "This milestone is already paid.",
            ),
            (
                AppError::from(ProofTargetRefusal::NotWaiting),
                "MILESTONE_NOT_WAITING",
                "The milestone is not waiting for a proof.",
            ),
            (
                AppError::from(RetryRefusal::InsufficientBalance),
                "INSUFFICIENT_ESCROW_BALANCE",
                "The escrow does not hold enough available money to send this payment again.",
            ),
            (
                AppError::from(DecisionRefusal::AlreadyRejected),
                "PROOF_ALREADY_REJECTED",
                "This proof is already rejected.",
            ),
            (
                AppError::from(BytesRefusal::LengthDiffers),
                "PROOF_HASH_MISMATCH",
                "The uploaded bytes are not the declared file (length or SHA-256 differ).",
            ),
        ];
        for (error, code, message) in cases {
            assert_eq!(error.body()["error"]["code"], code);
            assert_eq!(error.message, message);
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = AppError::internal("connection refused to secret-host:1234");
        assert_eq!(e.status(), 500);
        assert!(!e.body().to_string().contains("secret-host"));
    }
}
