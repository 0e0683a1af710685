//! Users, with guards that keep usernames and e-mails unique (case-insensitive).

use super::{
    audit::{action, entity, Actor, AuditEntry},
    ids,
    items::{key_item, s, to_item, unique_guard, values, Item},
    keys::{self, Key},
    read::take,
    Store,
};
use crate::{
    domain::{error::ErrorCode, ids::Id, time::Timestamp, user},
    error::AppError,
};
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

    /// A transaction item that holds only while user `id` exists and is
    /// active: a party to a money movement whose id the request does not
    /// name (a spend's escrow parties) is checked in the write itself.
    pub(crate) fn active_user_check(&self, id: Id) -> TransactWriteItem {
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::user(id))))
            .condition_expression("is_active = :active")
            .set_expression_attribute_values(Some(values([(
                ":active",
                AttributeValue::Bool(true),
            )])))
            .build()
            .expect("table, key and condition are set");
        TransactWriteItem::builder().condition_check(check).build()
    }

    /// Deactivates or reactivates a user, audited in the same transaction.
    /// Setting the state it already has changes nothing and is not an error.
    pub async fn set_user_active(
        &self,
        id: Id,
        is_active: bool,
        actor: &Actor,
    ) -> Result<user::User, AppError> {
        self.retry_busy("set user active", || {
            self.try_set_user_active(id, is_active, actor)
        })
        .await
    }

    async fn try_set_user_active(
        &self,
        id: Id,
        is_active: bool,
        actor: &Actor,
    ) -> Result<user::User, AppError> {
        let Some(current) = self.user(id).await? else {
            return Err(AppError::new(ErrorCode::UserNotFound, "User not found."));
        };
        if current.is_active == is_active {
            return Ok(current);
        }
        let now = Timestamp::now();
        let update = Update::builder()
            .set_key(Some(key_item(&keys::user(id))))
            .update_expression("SET is_active = :active, updated_at = :now")
            .condition_expression("attribute_exists(pk) AND is_active = :was")
            .set_expression_attribute_values(Some(values([
                (":active", AttributeValue::Bool(is_active)),
                (":was", AttributeValue::Bool(current.is_active)),
                (":now", s(now.to_string())),
            ])));
        let action = if is_active {
            action::USER_REACTIVATED
        } else {
            action::USER_DEACTIVATED
        };
        let audit = AuditEntry::new(
            actor,
            action,
            entity::USER,
            id,
            serde_json::json!({"is_active": is_active}),
            now,
        );
        match self
            .transact(vec![self.update(update), self.audit(&audit)?])
            .await
        {
            Ok(()) => Ok(user::User {
                is_active,
                updated_at: now,
                ..current
            }),
            // Changed meanwhile (another PATCH): `retry_busy` decides again
            // from a fresh read.
            Err(e) if e.failed_condition(0) => Err(AppError::busy()),
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

/// Reads user `id` out of a batch read.
pub(crate) fn take_user(
    found: &mut HashMap<Key, Item>,
    id: Id,
) -> Result<Option<user::User>, AppError> {
    Ok(take::<UserRecord>(found, &keys::user(id))?.map(Into::into))
}
