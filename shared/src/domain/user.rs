//! Users: the senders and beneficiaries of mandates.

use super::{ids::Id, time::Timestamp};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: Id,
    pub username: String,
    pub email: String,
    pub is_active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An inactive user can neither act (its `user` keys are refused) nor be a
/// party to a new mandate or purchase; what exists stays readable by staff.
/// Answers the first inactive one of `parties`.
pub fn first_inactive<'a>(parties: impl IntoIterator<Item = &'a User>) -> Option<Id> {
    parties.into_iter().find(|u| !u.is_active).map(|u| u.id)
}

pub const MAX_USERNAME_CHARS: usize = 100;
pub const MAX_EMAIL_CHARS: usize = 255;

/// A username: 1–100 characters, not blank.
pub fn parse_username(input: &str) -> Result<String, &'static str> {
    let count = input.chars().count();
    if input.trim().is_empty() || count > MAX_USERNAME_CHARS {
        return Err("must be 1 to 100 characters, not blank");
    }
    if input.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(input.to_string())
}

/// An e-mail address, syntactically valid, at most 255 characters. The domain
/// is lower-cased (it is case-insensitive); the local part is kept as given.
pub fn parse_email(input: &str) -> Result<String, &'static str> {
    const INVALID: &str = "must be a valid e-mail address";
    if input.chars().count() > MAX_EMAIL_CHARS {
        return Err("must be at most 255 characters");
    }
    let (local, domain) = input.rsplit_once('@').ok_or(INVALID)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !(local_ok && domain_ok) {
        return Err(INVALID);
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: u64, is_active: bool) -> User {
        let at = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        User {
            id: Id::new(id).unwrap(),
            username: format!("u{id}"),
            email: format!("u{id}@example.com"),
            is_active,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn an_inactive_party_is_named() {
        let (a, b, c) = (user(1, true), user(2, false), user(3, false));
        assert_eq!(first_inactive([&a]), None);
        assert_eq!(first_inactive([] as [&User; 0]), None);
        assert_eq!(first_inactive([&a, &b]), Some(b.id));
        assert_eq!(first_inactive([&c, &b]), Some(c.id));
    }

    #[test]
    fn usernames() {
        assert_eq!(parse_username("amina").unwrap(), "amina");
        assert!(parse_username(&"a".repeat(100)).is_ok());
        assert!(parse_username(&"é".repeat(100)).is_ok());
        for bad in ["", "   ", "a\u{0}b", &"a".repeat(101)] {
            assert!(parse_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_are_checked_and_domain_lowercased() {
        assert_eq!(
            parse_email("Alice@EXAMPLE.com").unwrap(),
            "Alice@example.com"
        );
        assert_eq!(
            parse_email("a.b+tag@mail.example.org").unwrap(),
            "a.b+tag@mail.example.org"
        );
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a@@example.com",
            "a b@example.com",
            "a@exa mple.com",
            ".a@example.com",
            "a..b@example.com",
            "a@-example.com",
            "a@example..com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(187));
        assert!(long.len() > 255 && parse_email(&long).is_err());
    }
}
