//! Stable error codes of the wire contract and the HTTP status each one maps to.
//! Clients branch on `code`; these strings never change.

use std::fmt;

macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $status:literal)),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant),+ }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The `UPPER_SNAKE` code sent to clients.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),+ }
            }

            /// The HTTP status this code is answered with.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status),+ }
            }
        }
    };
}

error_codes! {
    InvalidJson => ("INVALID_JSON", 400),
    ValidationError => ("VALIDATION_ERROR", 422),
    PayloadTooLarge => ("PAYLOAD_TOO_LARGE", 413),
    NotFound => ("NOT_FOUND", 404),
    MethodNotAllowed => ("METHOD_NOT_ALLOWED", 405),
    Unauthorized => ("UNAUTHORIZED", 401),
    Forbidden => ("FORBIDDEN", 403),
    IdempotencyKeyRequired => ("IDEMPOTENCY_KEY_REQUIRED", 400),
    IdempotencyKeyReused => ("IDEMPOTENCY_KEY_REUSED", 422),
    UserExists => ("USER_EXISTS", 409),
    UserNotFound => ("USER_NOT_FOUND", 404),
    ApiKeyNotFound => ("APIKEY_NOT_FOUND", 404),
    CategoryExists => ("CATEGORY_EXISTS", 400),
    CategoryNotFound => ("CATEGORY_NOT_FOUND", 404),
    MerchantExists => ("MERCHANT_EXISTS", 400),
    MerchantNotFound => ("MERCHANT_NOT_FOUND", 404),
    MandateNotFound => ("MANDATE_NOT_FOUND", 404),
    MandateConflict => ("MANDATE_CONFLICT", 409),
    MandateExpiresInPast => ("MANDATE_EXPIRES_IN_PAST", 400),
    CategoryMismatch => ("CATEGORY_MISMATCH", 422),
    MandateRequired => ("MANDATE_REQUIRED", 403),
    MandateExpired => ("MANDATE_EXPIRED", 403),
    MandateMerchantForbidden => ("MANDATE_MERCHANT_FORBIDDEN", 403),
    MandateCategoryForbidden => ("MANDATE_CATEGORY_FORBIDDEN", 403),
    MandateBalanceExceeded => ("MANDATE_BALANCE_EXCEEDED", 403),
    UnauthorizedUsage => ("UNAUTHORIZED_USAGE", 403),
    PurchaseNotFound => ("PURCHASE_NOT_FOUND", 404),
    UserInactive => ("USER_INACTIVE", 403),
    EscrowNotFound => ("ESCROW_NOT_FOUND", 404),
    EscrowInvalidState => ("ESCROW_INVALID_STATE", 409),
    DepositExceedsTotal => ("DEPOSIT_EXCEEDS_TOTAL", 409),
    MilestoneNotFound => ("MILESTONE_NOT_FOUND", 404),
    NoOpenMilestone => ("NO_OPEN_MILESTONE", 409),
    SequenceError => ("SEQUENCE_ERROR", 422),
    MilestoneNotWaiting => ("MILESTONE_NOT_WAITING", 409),
    EarlierMilestoneUnpaid => ("EARLIER_MILESTONE_UNPAID", 409),
    InsufficientEscrowBalance => ("INSUFFICIENT_ESCROW_BALANCE", 409),
    PaymentNotFound => ("PAYMENT_NOT_FOUND", 404),
    ProofAlreadyApproved => ("PROOF_ALREADY_APPROVED", 409),
    ProofAlreadyRejected => ("PROOF_ALREADY_REJECTED", 409),
    PspEventNotFound => ("PSP_EVENT_NOT_FOUND", 404),
    AlertNotFound => ("ALERT_NOT_FOUND", 404),
    LedgerCheckNotFound => ("LEDGER_CHECK_NOT_FOUND", 404),
    SettlementNotFound => ("SETTLEMENT_NOT_FOUND", 404),
    InvalidSignature => ("INVALID_SIGNATURE", 401),
    ProofUploadMissing => ("PROOF_UPLOAD_MISSING", 422),
    ProofHashMismatch => ("PROOF_HASH_MISMATCH", 422),
    ProofDuplicate => ("PROOF_DUPLICATE", 409),
    ProofNotFound => ("PROOF_NOT_FOUND", 404),
    MissingExifTimestamp => ("MISSING_EXIF_TIMESTAMP", 422),
    StaleTimestamp => ("STALE_TIMESTAMP", 422),
    FutureTimestamp => ("FUTURE_TIMESTAMP", 422),
    GeofenceViolation => ("GEOFENCE_VIOLATION", 422),
    InvalidImage => ("INVALID_IMAGE", 422),
    UnauthorizedTransfer => ("UNAUTHORIZED_TRANSFER", 403),
    EscrowNotActive => ("ESCROW_NOT_ACTIVE", 409),
    PayeeNotAllowed => ("PAYEE_NOT_ALLOWED", 403),
    PayeeAlreadyAllowed => ("PAYEE_ALREADY_ALLOWED", 409),
    DailyLimitReached => ("DAILY_LIMIT_REACHED", 409),
    TotalLimitReached => ("TOTAL_LIMIT_REACHED", 409),
    TransactionNotFound => ("TRANSACTION_NOT_FOUND", 404),
    ServiceBusy => ("SERVICE_BUSY", 503),
    InternalError => ("INTERNAL_ERROR", 500),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_upper_snake() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(text.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        }
    }

    #[test]
    fn statuses_are_errors_and_only_internal_ones_are_5xx() {
        for code in ErrorCode::ALL {
            let status = code.status();
            assert!((400..600).contains(&status), "{code}");
            let server_side = matches!(code, ErrorCode::ServiceBusy | ErrorCode::InternalError);
            assert_eq!(status >= 500, server_side, "{code}");
        }
    }

    #[test]
    fn purchase_refusals_are_forbidden() {
        for code in [
            ErrorCode::MandateRequired,
            ErrorCode::MandateExpired,
            ErrorCode::MandateMerchantForbidden,
            ErrorCode::MandateCategoryForbidden,
            ErrorCode::MandateBalanceExceeded,
            ErrorCode::UnauthorizedUsage,
        ] {
            assert_eq!(code.status(), 403);
        }
        assert_eq!(ErrorCode::CategoryMismatch.status(), 422);
        assert_eq!(ErrorCode::MerchantNotFound.status(), 404);
    }

    #[test]
    fn escrow_payment_and_webhook_codes_have_the_contract_statuses() {
        for (code, text, status) in [
            (ErrorCode::EscrowNotFound, "ESCROW_NOT_FOUND", 404),
            (ErrorCode::EscrowInvalidState, "ESCROW_INVALID_STATE", 409),
            (ErrorCode::DepositExceedsTotal, "DEPOSIT_EXCEEDS_TOTAL", 409),
            (ErrorCode::MilestoneNotFound, "MILESTONE_NOT_FOUND", 404),
            (ErrorCode::NoOpenMilestone, "NO_OPEN_MILESTONE", 409),
            (ErrorCode::SequenceError, "SEQUENCE_ERROR", 422),
            (ErrorCode::MilestoneNotWaiting, "MILESTONE_NOT_WAITING", 409),
            (
                ErrorCode::EarlierMilestoneUnpaid,
                "EARLIER_MILESTONE_UNPAID",
                409,
            ),
            (
                ErrorCode::InsufficientEscrowBalance,
                "INSUFFICIENT_ESCROW_BALANCE",
                409,
            ),
            (ErrorCode::PaymentNotFound, "PAYMENT_NOT_FOUND", 404),
            (
                ErrorCode::ProofAlreadyApproved,
                "PROOF_ALREADY_APPROVED",
                409,
            ),
            (
                ErrorCode::ProofAlreadyRejected,
                "PROOF_ALREADY_REJECTED",
                409,
            ),
            (ErrorCode::PspEventNotFound, "PSP_EVENT_NOT_FOUND", 404),
            (ErrorCode::AlertNotFound, "ALERT_NOT_FOUND", 404),
            (
                ErrorCode::LedgerCheckNotFound,
                "LEDGER_CHECK_NOT_FOUND",
                404,
            ),
            (ErrorCode::SettlementNotFound, "SETTLEMENT_NOT_FOUND", 404),
            (ErrorCode::InvalidSignature, "INVALID_SIGNATURE", 401),
        ] {
            assert_eq!(code.as_str(), text);
            assert_eq!(code.status(), status, "{text}");
        }
    }

    #[test]
    fn proof_codes_and_statuses() {
        for (code, text, status) in [
            (ErrorCode::ProofUploadMissing, "PROOF_UPLOAD_MISSING", 422),
            (ErrorCode::ProofHashMismatch, "PROOF_HASH_MISMATCH", 422),
            (ErrorCode::ProofDuplicate, "PROOF_DUPLICATE", 409),
            (ErrorCode::ProofNotFound, "PROOF_NOT_FOUND", 404),
            (
                ErrorCode::MissingExifTimestamp,
                "MISSING_EXIF_TIMESTAMP",
                422,
            ),
            (ErrorCode::StaleTimestamp, "STALE_TIMESTAMP", 422),
            (ErrorCode::FutureTimestamp, "FUTURE_TIMESTAMP", 422),
            (ErrorCode::GeofenceViolation, "GEOFENCE_VIOLATION", 422),
            (ErrorCode::InvalidImage, "INVALID_IMAGE", 422),
        ] {
            assert_eq!((code.as_str(), code.status()), (text, status));
        }
    }

    #[test]
    fn transfer_codes_and_statuses() {
        assert_eq!(
            ErrorCode::UnauthorizedTransfer.as_str(),
            "UNAUTHORIZED_TRANSFER"
        );
        assert_eq!(ErrorCode::UnauthorizedTransfer.status(), 403);
        assert_eq!(
            ErrorCode::TransactionNotFound.as_str(),
            "TRANSACTION_NOT_FOUND"
        );
        assert_eq!(ErrorCode::TransactionNotFound.status(), 404);
    }

    #[test]
    fn spend_codes_and_statuses() {
        for (code, text, status) in [
            (ErrorCode::EscrowNotActive, "ESCROW_NOT_ACTIVE", 409),
            (ErrorCode::PayeeNotAllowed, "PAYEE_NOT_ALLOWED", 403),
            (ErrorCode::PayeeAlreadyAllowed, "PAYEE_ALREADY_ALLOWED", 409),
            (ErrorCode::DailyLimitReached, "DAILY_LIMIT_REACHED", 409),
            (ErrorCode::TotalLimitReached, "TOTAL_LIMIT_REACHED", 409),
        ] {
            assert_eq!((code.as_str(), code.status()), (text, status));
        }
    }
}
