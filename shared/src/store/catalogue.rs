//! Spend categories, merchants, and usage allowances (`/spend/allow`).

use super::{
    audit::{action, entity, Actor, AuditEntry},
    ids,
    items::{to_item, unique_guard},
    keys, read, Store,
};
use crate::{
    domain::{
        catalogue::{AllowanceTarget, Category, Merchant},
        error::ErrorCode,
        ids::Id,
        time::Timestamp,
    },
    error::AppError,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CategoryRecord {
    pk: String,
    sk: String,
    id: Id,
    code: String,
    label: String,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MerchantRecord {
    pk: String,
    sk: String,
    id: Id,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    category_id: Option<Id>,
    is_certified: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<MerchantRecord> for Merchant {
    fn from(r: MerchantRecord) -> Merchant {
        Merchant {
            id: r.id,
            name: r.name,
            category_id: r.category_id,
            is_certified: r.is_certified,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct AllowanceRecord {
    pk: String,
    sk: String,
    owner_id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    merchant_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category_id: Option<Id>,
    created_at: Timestamp,
}

/// What `/spend/allow` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowOutcome {
    Added,
    AlreadyAllowed,
}

impl Store {
    pub async fn create_category(
        &self,
        code: String,
        label: String,
        actor: &Actor,
    ) -> Result<Category, AppError> {
        self.retry_busy("create category", || {
            self.try_create_category(&code, &label, actor)
        })
        .await
    }

    async fn try_create_category(
        &self,
        code: &str,
        label: &str,
        actor: &Actor,
    ) -> Result<Category, AppError> {
        let id = self.next_id(ids::CATEGORY).await?;
        let now = Timestamp::now();
        let key = keys::category(id);
        let category = Category {
            id,
            code: code.to_string(),
            label: label.to_string(),
            created_at: now,
            updated_at: now,
        };
        let record = CategoryRecord {
            pk: key.pk,
            sk: key.sk,
            id,
            code: category.code.clone(),
            label: category.label.clone(),
            created_at: now,
            updated_at: now,
        };
        let audit = AuditEntry::new(
            actor,
            action::CATEGORY_CREATED,
            entity::CATEGORY,
            id,
            serde_json::json!({"code": category.code, "label": category.label}),
            now,
        );
        let items = vec![
            self.put_new(to_item(&record)?),
            self.put_new(unique_guard("CATEGORY_CODE", &category.code, id)?),
            self.audit(&audit)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(category),
            Err(e) if e.failed_condition(1) => Err(AppError::new(
                ErrorCode::CategoryExists,
                "Spend category already exists.",
            )),
            Err(e) => Err(e.unexpected()),
        }
    }

    pub async fn category_exists(&self, id: Id) -> Result<bool, AppError> {
        Ok(self
            .get::<CategoryRecord>(&keys::category(id))
            .await?
            .is_some())
    }

    pub async fn create_merchant(
        &self,
        name: String,
        category_id: Option<Id>,
        is_certified: bool,
        actor: &Actor,
    ) -> Result<Merchant, AppError> {
        self.retry_busy("create merchant", || {
            self.try_create_merchant(&name, category_id, is_certified, actor)
        })
        .await
    }

    async fn try_create_merchant(
        &self,
        name: &str,
        category_id: Option<Id>,
        is_certified: bool,
        actor: &Actor,
    ) -> Result<Merchant, AppError> {
        let id = self.next_id(ids::MERCHANT).await?;
        let now = Timestamp::now();
        let key = keys::merchant(id);
        let record = MerchantRecord {
            pk: key.pk,
            sk: key.sk,
            id,
            name: name.to_string(),
            category_id,
            is_certified,
            created_at: now,
            updated_at: now,
        };
        let audit = AuditEntry::new(
            actor,
            action::MERCHANT_CREATED,
            entity::MERCHANT,
            id,
            serde_json::json!({"name": record.name, "category_id": category_id, "is_certified": is_certified}),
            now,
        );
        let mut items = vec![
            self.put_new(to_item(&record)?),
            self.put_new(unique_guard("MERCHANT_NAME", &record.name, id)?),
            self.audit(&audit)?,
        ];
        if let Some(category) = category_id {
            items.push(self.exists_check(&keys::category(category)));
        }
        match self.transact(items).await {
            Ok(()) => Ok(record.into()),
            Err(e) if e.failed_condition(3) => Err(AppError::new(
                ErrorCode::CategoryNotFound,
                "Spend category not found.",
            )),
            Err(e) if e.failed_condition(1) => Err(AppError::new(
                ErrorCode::MerchantExists,
                "Merchant already exists.",
            )),
            Err(e) => Err(e.unexpected()),
        }
    }

    pub async fn merchant(&self, id: Id) -> Result<Option<Merchant>, AppError> {
        Ok(self
            .get::<MerchantRecord>(&keys::merchant(id))
            .await?
            .map(Into::into))
    }

    /// Allows `owner` to spend at a merchant or in a category. The owner and
    /// the target must exist; allowing twice is not an error.
    pub async fn allow(
        &self,
        owner: Id,
        target: AllowanceTarget,
        actor: &Actor,
    ) -> Result<AllowOutcome, AppError> {
        self.retry_busy("allow", || self.try_allow(owner, target, actor))
            .await
    }

    async fn try_allow(
        &self,
        owner: Id,
        target: AllowanceTarget,
        actor: &Actor,
    ) -> Result<AllowOutcome, AppError> {
        let (target_key, allowance_key, missing) = match target {
            AllowanceTarget::Merchant(id) => (
                keys::merchant(id),
                keys::merchant_allowance(owner, id),
                AppError::new(ErrorCode::MerchantNotFound, "Merchant not found."),
            ),
            AllowanceTarget::Category(id) => (
                keys::category(id),
                keys::category_allowance(owner, id),
                AppError::new(ErrorCode::CategoryNotFound, "Spend category not found."),
            ),
        };
        let owner_key = keys::user(owner);
        let found = self
            .get_many(&[owner_key.clone(), target_key.clone()])
            .await?;
        if !found.contains_key(&target_key) {
            return Err(missing);
        }
        if !found.contains_key(&owner_key) {
            return Err(AppError::new(
                ErrorCode::UserNotFound,
                "Owner user not found.",
            ));
        }
        let (merchant_id, category_id) = match target {
            AllowanceTarget::Merchant(id) => (Some(id), None),
            AllowanceTarget::Category(id) => (None, Some(id)),
        };
        let now = Timestamp::now();
        let record = AllowanceRecord {
            pk: allowance_key.pk,
            sk: allowance_key.sk,
            owner_id: owner,
            merchant_id,
            category_id,
            created_at: now,
        };
        let audit = AuditEntry::new(
            actor,
            action::USAGE_ALLOWED,
            entity::ALLOWANCE_OWNER,
            owner,
            serde_json::json!({"merchant_id": merchant_id, "category_id": category_id}),
            now,
        );
        match self
            .transact(vec![self.put_new(to_item(&record)?), self.audit(&audit)?])
            .await
        {
            Ok(()) => Ok(AllowOutcome::Added),
            Err(e) if e.failed_condition(0) => Ok(AllowOutcome::AlreadyAllowed),
            Err(e) => Err(e.unexpected()),
        }
    }
}

/// Reads a merchant out of a batch read.
pub(crate) fn take_merchant(
    found: &mut std::collections::HashMap<keys::Key, super::items::Item>,
    id: Id,
) -> Result<Option<Merchant>, AppError> {
    Ok(read::take::<MerchantRecord>(found, &keys::merchant(id))?.map(Into::into))
}
