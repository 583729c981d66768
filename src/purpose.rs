//! Purposes: why personal data is processed.
//!
//! A [`Purpose`] is a dotted, hierarchical name (`advertising.personalized`). A rule or a
//! consent given for a parent (`advertising`) covers every child. The built-in names of
//! the vocabulary are constants; a policy may declare more under any parent, and those
//! behave exactly like the built-in ones within that policy.
//!
//! ```
//! use consent_guard::Purpose;
//!
//! let purpose: Purpose = "advertising.personalized".parse()?;
//! assert_eq!(purpose, Purpose::ADVERTISING_PERSONALIZED);
//! assert!(Purpose::ADVERTISING.covers(&purpose));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::name::hierarchical_name;

hierarchical_name! {
    /// Why personal data is processed: a dotted, hierarchical name of the vocabulary or
    /// of a policy's own declarations.
    Purpose, PurposeIndex, PURPOSE_NAMES, "purpose";
    ACCOUNT = "account",
    ACCOUNT_REGISTRATION = "account.registration",
    ACCOUNT_LOGIN = "account.login",
    ACCOUNT_IDENTITY_VERIFICATION = "account.identity_verification",
    SERVICE = "service",
    SERVICE_CORE = "service.core",
    SERVICE_UPLOAD_PROCESSING = "service.upload_processing",
    SERVICE_SESSION = "service.session",
    SERVICE_NOTIFICATIONS = "service.notifications",
    SERVICE_PAYMENT = "service.payment",
    SERVICE_CUSTOMER_SUPPORT = "service.customer_support",
    SECURITY = "security",
    SECURITY_ACCOUNT_PROTECTION = "security.account_protection",
    SECURITY_OPERATIONS = "security.operations",
    COMPLIANCE = "compliance",
    COMPLIANCE_LEGAL_OBLIGATION = "compliance.legal_obligation",
    COMPLIANCE_AUTHORITY_REQUEST = "compliance.authority_request",
    ANALYTICS = "analytics",
    ANALYTICS_USAGE = "analytics.usage",
    ANALYTICS_FEEDBACK = "analytics.feedback",
    PERSONALIZATION = "personalization",
    PERSONALIZATION_RECOMMENDATION = "personalization.recommendation",
    PERSONALIZATION_SEMANTIC_INSIGHTS = "personalization.semantic_insights",
    ADVERTISING = "advertising",
    ADVERTISING_PERSONALIZED = "advertising.personalized",
    ADVERTISING_MEASUREMENT = "advertising.measurement",
    PROFILING = "profiling",
    PROFILING_USER_PORTRAIT = "profiling.user_portrait",
    MARKETING = "marketing",
    MARKETING_CAMPAIGNS = "marketing.campaigns",
    AI_TRAINING = "ai_training",
    AI_TRAINING_MODEL_TRAINING = "ai_training.model_training",
    AI_TRAINING_ALGORITHM_OPTIMIZATION = "ai_training.algorithm_optimization",
    RESEARCH = "research",
    RESEARCH_ACADEMIC = "research.academic",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_round_trips_and_has_its_parent_first() {
        assert!(PURPOSE_NAMES.len() < crate::name::MAX_NODES);
        for (i, purpose) in Purpose::builtins().enumerate() {
            assert_eq!(purpose.as_str().parse::<Purpose>().unwrap(), purpose);
            if let Some(parent) = purpose.parent() {
                let p = PURPOSE_NAMES.iter().position(|n| *n == parent.as_str()).unwrap();
                assert!(p < i, "{purpose} listed before its parent");
            }
        }
    }

    #[test]
    fn extensions_parse_and_cover() {
        let video: Purpose = "service.core.video_generation".parse().unwrap();
        assert!(!video.is_builtin());
        assert!(Purpose::SERVICE_CORE.covers(&video));
        assert!(!video.covers(&Purpose::SERVICE_CORE));
        assert!("Service".parse::<Purpose>().is_err());
    }
}
