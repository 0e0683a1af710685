//! API keys, stored under the HMAC of their secret (the secret itself is never
//! stored), with an id → hash pointer for revocation.

use super::{
    audit::{action, entity, Actor, AuditEntry},
    ids,
    items::{key_item, s, to_item, values},
    keys,
    list::{Filters, Listed, Page, PageRequest},
    Store,
};
use crate::{
    domain::{
        access::{ApiKey, Role},
        error::ErrorCode,
        ids::Id,
        time::Timestamp,
    },
    error::AppError,
};
use aws_sdk_dynamodb::types::Update;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ApiKeyRecord {
    pk: String,
    sk: String,
    id: Id,
    name: String,
    scope: Role,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    user_id: Option<Id>,
    prefix: String,
    created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    expires_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    revoked_at: Option<Timestamp>,
    gsi3pk: String,
    gsi3sk: String,
}

impl From<ApiKeyRecord> for ApiKey {
    fn from(r: ApiKeyRecord) -> ApiKey {
        ApiKey {
            id: r.id,
            name: r.name,
            scope: r.scope,
            user_id: r.user_id,
            prefix: r.prefix,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

impl Listed for ApiKeyRecord {
    fn id(&self) -> Id {
        self.id
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PointerRecord {
    pk: String,
    sk: String,
    hash: String,
}

/// A key to create; `hash` is the HMAC of its secret, `prefix` its visible start.
pub struct NewApiKey {
    pub name: String,
    pub scope: Role,
    pub user_id: Option<Id>,
    pub expires_at: Option<Timestamp>,
    pub hash: String,
    pub prefix: String,
}

impl Store {
    pub async fn create_api_key(&self, new: NewApiKey, actor: &Actor) -> Result<ApiKey, AppError> {
        self.retry_busy("create API key", || self.try_create_api_key(&new, actor))
            .await
    }

    async fn try_create_api_key(&self, new: &NewApiKey, actor: &Actor) -> Result<ApiKey, AppError> {
        if let Some(user) = new.user_id {
            if self.user(user).await?.is_none() {
                return Err(AppError::new(ErrorCode::UserNotFound, "User not found."));
            }
        }
        let id = self.next_id(ids::API_KEY).await?;
        let now = Timestamp::now();
        let key = keys::api_key(&new.hash);
        let record = ApiKeyRecord {
            pk: key.pk,
            sk: key.sk,
            id,
            name: new.name.clone(),
            scope: new.scope,
            user_id: new.user_id,
            prefix: new.prefix.clone(),
            created_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
            gsi3pk: keys::sharded_partition(keys::KIND_API_KEY, id),
            gsi3sk: keys::id_sort_key(id),
        };
        let pointer_key = keys::api_key_id(id);
        let pointer = PointerRecord {
            pk: pointer_key.pk,
            sk: pointer_key.sk,
            hash: new.hash.clone(),
        };
        let audit = AuditEntry::new(
            actor,
            action::API_KEY_CREATED,
            entity::API_KEY,
            id,
            serde_json::json!({
                "name": record.name, "scope": record.scope, "user_id": record.user_id,
                "prefix": record.prefix, "expires_at": record.expires_at,
            }),
            now,
        );
        let items = vec![
            self.put_new(to_item(&record)?),
            self.put_new(to_item(&pointer)?),
            self.audit(&audit)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(record.into()),
            Err(e) if e.failed_condition(0) => Err(AppError::new(
                ErrorCode::ValidationError,
                "An API key with this secret already exists.",
            )),
            Err(e) => Err(e.unexpected()),
        }
    }

    /// The key whose secret has this HMAC, revoked or not.
    pub async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, AppError> {
        Ok(self
            .get::<ApiKeyRecord>(&keys::api_key(hash))
            .await?
            .map(Into::into))
    }

    pub async fn api_keys(&self, page: PageRequest) -> Result<Page<ApiKey>, AppError> {
        let partitions: Vec<_> = keys::all_shards(keys::KIND_API_KEY)
            .into_iter()
            .map(|p| (keys::GSI_BY_KIND, p))
            .collect();
        let page = self
            .list::<ApiKeyRecord>(&partitions, &Filters::new(), page)
            .await?;
        Ok(Page {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Revokes key `id`; answers its hash so caches can drop it. Revoking a
    /// revoked key changes nothing and is not an error.
    pub async fn revoke_api_key(&self, id: Id, actor: &Actor) -> Result<String, AppError> {
        self.retry_busy("revoke API key", || self.try_revoke_api_key(id, actor))
            .await
    }

    async fn try_revoke_api_key(&self, id: Id, actor: &Actor) -> Result<String, AppError> {
        let not_found = || AppError::new(ErrorCode::ApiKeyNotFound, "API key not found.");
        let pointer = self
            .get::<PointerRecord>(&keys::api_key_id(id))
            .await?
            .ok_or_else(not_found)?;
        let now = Timestamp::now();
        let update = Update::builder()
            .set_key(Some(key_item(&keys::api_key(&pointer.hash))))
            .update_expression("SET revoked_at = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(revoked_at)")
            .set_expression_attribute_values(Some(values([(":now", s(now.to_string()))])));
        let audit = AuditEntry::new(
            actor,
            action::API_KEY_REVOKED,
            entity::API_KEY,
            id,
            serde_json::json!({}),
            now,
        );
        match self
            .transact(vec![self.update(update), self.audit(&audit)?])
            .await
        {
            Ok(()) => Ok(pointer.hash),
            Err(e) if e.failed_condition(0) => Ok(pointer.hash),
            Err(e) => Err(e.unexpected()),
        }
    }
}
