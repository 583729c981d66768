//! Data categories: what personal data a request touches.
//!
//! A [`DataCategory`] is a dotted, hierarchical name (`biometric.face`); a rule for a
//! parent (`biometric`) covers every child. Some categories are sensitive personal
//! information (PIPL art. 28): using them on a consent basis needs separate consent.
//!
//! ```
//! use consent_guard::DataCategory;
//!
//! assert!(DataCategory::BIOMETRIC_FACE.is_sensitive());
//! assert!(!DataCategory::CONTACT_EMAIL.is_sensitive());
//! ```

use crate::name::hierarchical_name;

hierarchical_name! {
    /// What personal data is touched: a dotted, hierarchical name of the vocabulary or
    /// of a policy's own declarations.
    DataCategory, CategoryIndex, CATEGORY_NAMES, "data category";
    CONTACT = "contact",
    CONTACT_EMAIL = "contact.email",
    CONTACT_PHONE = "contact.phone",
    ACCOUNT = "account",
    ACCOUNT_USERNAME = "account.username",
    ACCOUNT_CREDENTIALS = "account.credentials",
    ACCOUNT_PROFILE = "account.profile",
    ACCOUNT_THIRD_PARTY = "account.third_party",
    IDENTITY = "identity",
    IDENTITY_REAL_NAME = "identity.real_name",
    /// Sensitive.
    IDENTITY_GOVERNMENT_ID = "identity.government_id",
    IDENTITY_AGE = "identity.age",
    BIOMETRIC = "biometric",
    /// Sensitive.
    BIOMETRIC_FACE = "biometric.face",
    /// Sensitive.
    BIOMETRIC_VOICE = "biometric.voice",
    DEVICE = "device",
    DEVICE_IDENTIFIER = "device.identifier",
    DEVICE_INFO = "device.info",
    DEVICE_APP_LIST = "device.app_list",
    DEVICE_SENSOR = "device.sensor",
    DEVICE_CLIPBOARD = "device.clipboard",
    NETWORK = "network",
    NETWORK_IP_ADDRESS = "network.ip_address",
    NETWORK_ENVIRONMENT = "network.environment",
    LOCATION = "location",
    /// Sensitive.
    LOCATION_PRECISE = "location.precise",
    LOCATION_APPROXIMATE = "location.approximate",
    BEHAVIOR = "behavior",
    BEHAVIOR_LOG = "behavior.log",
    BEHAVIOR_TASK_RECORDS = "behavior.task_records",
    BEHAVIOR_GENERATION_LOG = "behavior.generation_log",
    BEHAVIOR_PREFERENCES = "behavior.preferences",
    BEHAVIOR_SEMANTIC_TAGS = "behavior.semantic_tags",
    BEHAVIOR_FEEDBACK = "behavior.feedback",
    CONTENT = "content",
    CONTENT_CHAT = "content.chat",
    CONTENT_PROMPT = "content.prompt",
    CONTENT_UPLOAD = "content.upload",
    CONTENT_GENERATED = "content.generated",
    COMMUNICATIONS = "communications",
    COMMUNICATIONS_CONTACTS = "communications.contacts",
    COMMUNICATIONS_CALL_LOG = "communications.call_log",
    COMMUNICATIONS_SMS = "communications.sms",
    COMMUNICATIONS_CALENDAR = "communications.calendar",
    FINANCIAL = "financial",
    FINANCIAL_TRANSACTION = "financial.transaction",
    /// Sensitive.
    FINANCIAL_ACCOUNT = "financial.account",
    HEALTH = "health",
    /// Sensitive.
    HEALTH_RECORD = "health.record",
    SUPPORT = "support",
    SUPPORT_RECORD = "support.record",
    TRACKING = "tracking",
    TRACKING_COOKIE = "tracking.cookie",
}

/// The built-in sensitive categories (vocabulary.md; PIPL art. 28).
pub(crate) const SENSITIVE_BUILTINS: &[DataCategory] = &[
    DataCategory::IDENTITY_GOVERNMENT_ID,
    DataCategory::BIOMETRIC_FACE,
    DataCategory::BIOMETRIC_VOICE,
    DataCategory::LOCATION_PRECISE,
    DataCategory::FINANCIAL_ACCOUNT,
    DataCategory::HEALTH_RECORD,
];

impl DataCategory {
    /// Whether the vocabulary marks this category (or an ancestor) as sensitive
    /// personal information. A policy may mark more of its own; ask the policy
    /// ([`crate::Policy::is_sensitive`]) for the full answer.
    pub fn is_sensitive(&self) -> bool {
        SENSITIVE_BUILTINS.iter().any(|s| s.covers(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_round_trips_and_has_its_parent_first() {
        assert!(CATEGORY_NAMES.len() < crate::name::MAX_NODES);
        for (i, category) in DataCategory::builtins().enumerate() {
            assert_eq!(category.as_str().parse::<DataCategory>().unwrap(), category);
            if let Some(parent) = category.parent() {
                let p = CATEGORY_NAMES.iter().position(|n| *n == parent.as_str()).unwrap();
                assert!(p < i, "{category} listed before its parent");
            }
        }
    }

    #[test]
    fn sensitivity_is_inherited() {
        let voiceprint: DataCategory = "biometric.voice.print".parse().unwrap();
        assert!(voiceprint.is_sensitive());
        assert!(!DataCategory::BIOMETRIC.is_sensitive());
    }
}
