//! Who may do what: API key scopes and the ownership rules of the contract.
//! A `user` key is bound to one user and acts only where that user is the
//! named party; it reads only what it is a party to (others' look absent).

use super::{ids::Id, time::Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Support,
    User,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "support" => Some(Role::Support),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// An API key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: Id,
    pub name: String,
    pub scope: Role,
    pub user_id: Option<Id>,
    /// The first characters of the secret, to recognise a key in a list.
    pub prefix: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// A key works until it is revoked or its expiry passes.
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }

    pub fn principal(&self) -> Principal {
        Principal {
            key_id: self.id,
            role: self.scope,
            user_id: self.user_id,
        }
    }
}

/// The owner of an idempotency key's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyOwner {
    User(Id),
    ApiKey(Id),
}

impl std::fmt::Display for IdempotencyOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdempotencyOwner::User(id) => write!(f, "user:{id}"),
            IdempotencyOwner::ApiKey(id) => write!(f, "apikey:{id}"),
        }
    }
}

/// The caller of a request, from its API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub key_id: Id,
    pub role: Role,
    /// Set for `user` keys only.
    pub user_id: Option<Id>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Admin and support: the operators. They read everything and run the
    /// operational actions (creating users, expiry cleanup).
    pub fn is_staff(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Support)
    }

    /// May this caller act as `party` (the sender, the owner, the beneficiary)?
    /// Admins act for anyone; a user key only for its own user.
    pub fn acts_for(&self, party: Id) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Support => false,
            Role::User => self.user_id == Some(party),
        }
    }

    /// May this caller read a resource whose parties are `parties`?
    pub fn may_read(&self, parties: &[Id]) -> bool {
        self.is_staff() || self.user_id.is_some_and(|u| parties.contains(&u))
    }

    /// Who an `Idempotency-Key` belongs to. A `user` key's requests are the
    /// user's: a retry from the user's second device, or after a key
    /// rotation, is the same request. A staff key's are its own.
    pub fn idempotency_owner(&self) -> IdempotencyOwner {
        match (self.role, self.user_id) {
            (Role::User, Some(user)) => IdempotencyOwner::User(user),
            _ => IdempotencyOwner::ApiKey(self.key_id),
        }
    }

    /// For lists: the user every listed item must involve (None: no limit).
    pub fn party_limit(&self) -> Option<Id> {
        if self.is_staff() {
            None
        } else {
            self.user_id
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> Id {
        Id::new(n).unwrap()
    }

    fn principal(role: Role, user: Option<u64>) -> Principal {
        Principal {
            key_id: id(1),
            role,
            user_id: user.map(id),
        }
    }

    #[test]
    fn admin_acts_and_reads_for_anyone() {
        let admin = principal(Role::Admin, None);
        assert!(admin.is_admin() && admin.acts_for(id(5)) && admin.may_read(&[id(5)]));
        assert_eq!(admin.party_limit(), None);
    }

    #[test]
    fn support_reads_but_never_acts_for_a_party() {
        let support = principal(Role::Support, None);
        assert!(!support.is_admin());
        assert!(!support.acts_for(id(5)));
        assert!(support.may_read(&[id(5)]));
        assert!(support.is_staff() && !principal(Role::User, Some(5)).is_staff());
        assert_eq!(support.party_limit(), None);
    }

    #[test]
    fn user_acts_and_reads_only_as_itself() {
        let user = principal(Role::User, Some(7));
        assert!(user.acts_for(id(7)));
        assert!(!user.acts_for(id(8)));
        assert!(user.may_read(&[id(8), id(7)]));
        assert!(!user.may_read(&[id(8), id(9)]));
        assert!(!user.may_read(&[]));
        assert_eq!(user.party_limit(), Some(id(7)));
        // A user key without a user (never stored) can do nothing.
        let unbound = principal(Role::User, None);
        assert!(!unbound.acts_for(id(7)) && !unbound.may_read(&[id(7)]));
    }

    #[test]
    fn idempotency_belongs_to_the_user_or_to_the_staff_key() {
        let phone = principal(Role::User, Some(7));
        let mut tablet = phone;
        tablet.key_id = id(99);
        assert_eq!(phone.idempotency_owner(), IdempotencyOwner::User(id(7)));
        assert_eq!(tablet.idempotency_owner(), phone.idempotency_owner());
        let admin = principal(Role::Admin, None);
        assert_eq!(
            admin.idempotency_owner(),
            IdempotencyOwner::ApiKey(admin.key_id)
        );
        let support = principal(Role::Support, None);
        assert_eq!(
            support.idempotency_owner(),
            IdempotencyOwner::ApiKey(support.key_id)
        );
        assert_ne!(
            IdempotencyOwner::User(id(1)).to_string(),
            IdempotencyOwner::ApiKey(id(1)).to_string()
        );
    }

    #[test]
    fn keys_stop_working_when_revoked_or_expired() {
        let now = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        let mut key = ApiKey {
            id: id(1),
            name: "ops".into(),
            scope: Role::Admin,
            user_id: None,
            prefix: "kob_1234".into(),
            created_at: now,
            expires_at: None,
            revoked_at: None,
        };
        assert!(key.is_usable(now));
        key.expires_at = Some(now.plus_seconds(1));
        assert!(key.is_usable(now));
        key.expires_at = Some(now);
        assert!(!key.is_usable(now));
        key.expires_at = None;
        key.revoked_at = Some(now);
        assert!(!key.is_usable(now));
    }

    #[test]
    fn roles_parse_lower_case_only() {
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("support"), Some(Role::Support));
        assert_eq!(Role::parse("user"), Some(Role::User));
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(serde_json::to_value(Role::Support).unwrap(), "support");
    }
}
