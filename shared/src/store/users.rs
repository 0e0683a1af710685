//! Users, with guards that keep usernames and e-mails unique (case-insensitive).

use super::{
    audit::{action, entity, Actor, AuditEntry},
    ids,
    items::{to_item, unique_guard},
    keys, Store,
};
use crate::{
    domain::{error::ErrorCode, ids::Id, time::Timestamp, user},
    error::AppError,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRecord {
    pk: String,
    sk: String,
    id: Id,
    username: String,
    email: String,
    is_active: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<UserRecord> for user::User {
    fn from(r: UserRecord) -> user::User {
        user::User {
            id: r.id,
            username: r.username,
            email: r.email,
            is_active: r.is_active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub struct NewUser {
    pub username: String,
    pub email: String,
    pub is_active: bool,
}

impl Store {
    /// Creates a user and its two uniqueness guards in one transaction.
    pub async fn create_user(&self, new: NewUser, actor: &Actor) -> Result<user::User, AppError> {
        self.retry_busy("create user", || self.try_create_user(&new, actor))
            .await
    }

    async fn try_create_user(&self, new: &NewUser, actor: &Actor) -> Result<user::User, AppError> {
        let id = self.next_id(ids::USER).await?;
        let now = Timestamp::now();
        let key = keys::user(id);
        let record = UserRecord {
            pk: key.pk,
            sk: key.sk,
            id,
            username: new.username.clone(),
            email: new.email.clone(),
            is_active: new.is_active,
            created_at: now,
            updated_at: now,
        };
        let audit = AuditEntry::new(
            actor,
            action::USER_CREATED,
            entity::USER,
            id,
            serde_json::json!({"username": record.username, "email": record.email, "is_active": record.is_active}),
            now,
        );
        let items = vec![
            self.put_new(to_item(&record)?),
            self.put_new(unique_guard("USERNAME", &record.username, id)?),
            self.put_new(unique_guard("EMAIL", &record.email, id)?),
            self.audit(&audit)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(record.into()),
            Err(e) if e.failed_condition(1) || e.failed_condition(2) => Err(AppError::new(
                ErrorCode::UserExists,
                "A user with this username or e-mail already exists.",
            )),
            Err(e) => Err(e.unexpected()),
        }
    }

    pub async fn user(&self, id: Id) -> Result<Option<user::User>, AppError> {
        Ok(self
            .get::<UserRecord>(&keys::user(id))
            .await?
            .map(Into::into))
    }
}
