//! The spend catalogue: categories, merchants, and what an owner is allowed to
//! spend at.

use super::{ids::Id, time::Timestamp};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Category {
    pub id: Id,
    pub code: String,
    pub label: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Merchant {
    pub id: Id,
    pub name: String,
    pub category_id: Option<Id>,
    pub is_certified: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What `/spend/allow` grants an owner: one merchant, or every merchant of a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowanceTarget {
    Merchant(Id),
    Category(Id),
}

/// The grants that matter for one purchase: a direct allowance for the merchant,
/// and one for the merchant's category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageGrants {
    pub merchant: bool,
    pub category: bool,
}
