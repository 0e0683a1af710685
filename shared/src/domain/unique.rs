//! Values that must be unique (usernames, e-mails, category codes, merchant
//! names) are compared case-insensitively and without outer spaces: "Amina"
//! and "AMINA " are the same user, "Pharmacie" and "PHARMACIE" the same
//! merchant.

/// The form a unique value is guarded under.
pub fn uniqueness_key(value: &str) -> String {
    value.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_case_and_outer_space_only() {
        assert_eq!(
            uniqueness_key(" Pharmacie du Fleuve "),
            "pharmacie du fleuve"
        );
        assert_eq!(uniqueness_key("Amina"), uniqueness_key("AMINA"));
        assert_eq!(uniqueness_key("Élodie@Example.com"), "élodie@example.com");
        assert_ne!(uniqueness_key("pharma cy"), uniqueness_key("pharmacy"));
    }
}
