//! Behaviour of the NEXA CORE AI Computing Cloud policy
//! (`examples/policies/nexacore.toml`, seed `003_69e568a6e86884e8.txt`, "Effective
//! Date: April 1, 2025", encoded as version `2025.4.1`).

mod support;
use support::Scenario;

/// Two adults and a stranger: `u1` and `u2` are known to the guard (so opt-out rules
/// apply to them); `stranger` has no event at all.
const ADULTS: &str = r#"
    {"type":"subject","subject":"u1","birth_date":"1990-01-01"}
    {"type":"subject","subject":"u2","birth_date":"1985-06-15"}
"#;

/// "if your browser has Do Not Track enabled, then all our websites will respect your
/// choice."
#[test]
fn dnt_switches_off_usage_analytics() {
    let s = Scenario::new("nexacore").events(ADULTS);
    // The signal switches the tracking off, also towards the analysis partner.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.usage","categories":["network.ip_address"],"signals":{"dnt":true}}"#,
        "opt_out_signal",
        "nexacore.usage_analytics",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.usage","action":"share","categories":["behavior.log"],"recipient":{"kind":"processor","name":"analytics_service"},"signals":{"dnt":true}}"#,
        "opt_out_signal",
        "nexacore.usage_analytics",
    );
    // Without the signal the same request is allowed: the deny is the signal's doing.
    let allowed = s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.usage","categories":["network.ip_address"],"signals":{"dnt":false}}"#,
        "consent_given",
        "nexacore.usage_analytics",
    );
    assert_eq!(allowed.basis.as_deref(), Some("consent"));
    // GPC is not a signal the seed mentions: it does not switch analytics off.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.usage","categories":["network.ip_address"],"signals":{"gpc":true}}"#,
        "consent_given",
        "nexacore.usage_analytics",
    );
    // DNT is about tracking: the cookies that keep the website working stay on.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.session","categories":["tracking.cookie"],"signals":{"dnt":true}}"#,
        "legal_basis",
        "nexacore.cookies",
    );
}

/// "When you continue to use this Product or related services, it means that you have
/// agreed to our legal collection, use, and storage of your personal information in
/// accordance with this Policy." (usage analysis and feedback analysis are on by
/// agreement to the policy, until the user takes it back)
#[test]
fn policy_agreement_enables_analytics_until_withdrawn() {
    let s = Scenario::new("nexacore").events(&format!(
        "{ADULTS}\n{}",
        r#"{"type":"withdraw","subject":"u1","purposes":["analytics"],"at":"2026-03-01T00:00:00Z"}"#
    ));
    // On for a known user before the withdrawal.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.usage","categories":["behavior.log"],"at":"2026-02-01T00:00:00Z"}"#,
        "consent_given",
        "nexacore.usage_analytics",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.feedback","categories":["behavior.feedback"],"at":"2026-02-01T00:00:00Z"}"#,
        "consent_given",
        "nexacore.feedback",
    );
    // Off after it.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.usage","categories":["behavior.log"]}"#,
        "consent_withdrawn",
        "nexacore.usage_analytics",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.feedback","categories":["behavior.feedback"]}"#,
        "consent_withdrawn",
        "nexacore.feedback",
    );
    // The withdrawal is u1's alone.
    s.expect_clause(
        r#"{"subject":"u2","purpose":"analytics.usage","categories":["behavior.log"]}"#,
        "consent_given",
        "nexacore.usage_analytics",
    );
    // Someone who never used the product agreed to nothing, for either.
    s.expect_clause(
        r#"{"subject":"stranger","purpose":"analytics.usage","categories":["behavior.log"]}"#,
        "consent_missing",
        "nexacore.usage_analytics",
    );
    s.expect_clause(
        r#"{"subject":"stranger","purpose":"analytics.feedback","categories":["behavior.feedback"]}"#,
        "consent_missing",
        "nexacore.feedback",
    );
}

/// "we will not use the above data without your explicit authorization, including for
/// model training, optimization, etc."
#[test]
fn model_training_needs_explicit_authorization() {
    let s = Scenario::new("nexacore").events(&format!(
        "{ADULTS}\n{}",
        r#"
        {"type":"grant","subject":"u2","purposes":["ai_training"],"level":"implied","at":"2026-01-02T00:00:00Z"}
        {"type":"subject","subject":"u3","birth_date":"1980-01-01"}
        {"type":"grant","subject":"u3","purposes":["ai_training"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        "#
    ));
    // Off by default, even for a user of the product, and even on anonymized data.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["content.upload"]}"#,
        "consent_missing",
        "nexacore.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.algorithm_optimization","categories":["content.upload"],"deidentification":"anonymized"}"#,
        "consent_missing",
        "nexacore.training",
    );
    // Accepting the policy as a whole is not the explicit authorization asked for.
    s.expect_clause(
        r#"{"subject":"u2","purpose":"ai_training.model_training","categories":["content.upload"]}"#,
        "consent_level_insufficient",
        "nexacore.training",
    );
    // An explicit opt-in allows it, for uploads and prompts alike.
    s.expect_clause(
        r#"{"subject":"u3","purpose":"ai_training.model_training","categories":["content.upload"]}"#,
        "consent_given",
        "nexacore.training",
    );
    s.expect_clause(
        r#"{"subject":"u3","purpose":"ai_training.algorithm_optimization","categories":["content.prompt","content.chat"]}"#,
        "consent_given",
        "nexacore.training",
    );
}

/// "When we want to use your personal information for purposes not specified in this
/// Policy ... we will seek your consent in advance" (an authorization, once given, can
/// be taken back, and one given for a limited time ends with it)
#[test]
fn training_authorization_ends_on_withdrawal_or_expiry() {
    let s = Scenario::new("nexacore").events(&format!(
        "{ADULTS}\n{}",
        r#"
        {"type":"grant","subject":"u1","purposes":["ai_training.model_training"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"withdraw","subject":"u1","purposes":["ai_training"],"at":"2026-03-01T00:00:00Z"}
        {"type":"grant","subject":"u2","purposes":["ai_training"],"level":"explicit","at":"2026-01-02T00:00:00Z","expires_at":"2026-04-01T00:00:00Z"}
        "#
    ));
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["content.upload"],"at":"2026-02-01T00:00:00Z"}"#,
        "consent_given",
        "nexacore.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["content.upload"]}"#,
        "consent_withdrawn",
        "nexacore.training",
    );
    // A grant for model training does not reach the sibling purpose.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.algorithm_optimization","categories":["content.upload"],"at":"2026-02-01T00:00:00Z"}"#,
        "consent_missing",
        "nexacore.training",
    );
    s.expect_clause(
        r#"{"subject":"u2","purpose":"ai_training.model_training","categories":["content.prompt"],"at":"2026-03-01T00:00:00Z"}"#,
        "consent_given",
        "nexacore.training",
    );
    s.expect_clause(
        r#"{"subject":"u2","purpose":"ai_training.model_training","categories":["content.prompt"]}"#,
        "consent_expired",
        "nexacore.training",
    );
}

/// "We will only store the data you upload for the minimum necessary period required to
/// provide you with this service. Once the service purpose is achieved, the above data
/// will be deleted or anonymized."
#[test]
fn uploads_are_kept_only_for_the_session() {
    let s = Scenario::new("nexacore").events(ADULTS);
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.upload_processing","action":"collect","categories":["content.upload"],"session":"s1"}"#,
        "legal_basis",
        "nexacore.uploads",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.upload_processing","categories":["content.upload"],"collected_at":"2026-05-31T23:00:00Z","collected_session":"s1","session":"s1"}"#,
        "legal_basis",
        "nexacore.uploads",
    );
    // A later session may not reuse the upload, however recent.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.upload_processing","categories":["content.upload"],"collected_at":"2026-05-31T23:00:00Z","collected_session":"s1","session":"s2"}"#,
        "retention_expired",
        "nexacore.uploads",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.upload_processing","action":"store","categories":["content.upload"],"collected_at":"2026-05-31T23:00:00Z","collected_session":"s1"}"#,
        "retention_expired",
        "nexacore.uploads",
    );
    // "deleted or anonymized": anonymized, the upload outlives the session.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.upload_processing","categories":["content.upload"],"collected_at":"2026-05-31T23:00:00Z","collected_session":"s1","session":"s2","deidentification":"anonymized"}"#,
        "legal_basis",
        "nexacore.uploads",
    );
    // Uploads are not generation input for the core service either.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.upload"]}"#,
        "category_not_permitted",
        "nexacore.generation",
    );
}

/// "We will not share your personal information with any company, organization, or
/// individual outside of NEXA CORE AI Computing Cloud, except in the following
/// situations"
#[test]
fn no_sharing_outside_nexacore_except_listed_cases() {
    let s = Scenario::new("nexacore").events(ADULTS);
    // Generation data is shared only "after obtaining your explicit consent" (3.1.1).
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","action":"share","categories":["content.prompt"],"recipient":{"kind":"third_party"}}"#,
        "consent_missing",
        "nexacore.generation",
    );
    // Generation data stays first-party.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.prompt","content.generated"]}"#,
        "legal_basis",
        "nexacore.generation",
    );
    // Analytics go to the named analysis service only, not to any third party.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.usage","action":"share","categories":["behavior.log"],"recipient":{"kind":"third_party"}}"#,
        "recipient_not_permitted",
        "nexacore.usage_analytics",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.usage","action":"share","categories":["behavior.log"],"recipient":{"kind":"processor"}}"#,
        "recipient_not_permitted",
        "nexacore.usage_analytics",
    );
    // 3.1.2 "according to requirements from administrative or judicial authorities"
    s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.authority_request","action":"share","categories":["content.chat","network.ip_address"],"recipient":{"kind":"authority"}}"#,
        "legal_basis",
        "nexacore.authorities",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.authority_request","action":"share","categories":["content.chat"],"recipient":{"kind":"third_party"}}"#,
        "recipient_not_permitted",
        "nexacore.authorities",
    );
    // A transfer to a third party needs the subject's consent (3.2.1), which u1 never
    // gave.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","action":"transfer","categories":["content.prompt"],"recipient":{"kind":"third_party"}}"#,
        "consent_missing",
        "nexacore.generation",
    );
}

/// "the third-party authentication platform service we use helps you complete the
/// account login process; the third-party payment service we use helps you complete
/// online payment; the third-party data analysis service we use helps us analyze our
/// user behavior; and the third-party customer service system we use provides online
/// customer service ... Our partners have no right to use the shared personal
/// information for any other purposes."
#[test]
fn partners_receive_data_only_for_their_own_purpose() {
    let s = Scenario::new("nexacore").events(ADULTS);
    // Each partner, for its own purpose.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.login","action":"share","categories":["account.third_party"],"recipient":{"kind":"processor","name":"auth_platform"}}"#,
        "legal_basis",
        "nexacore.account",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.payment","action":"share","categories":["financial.transaction"],"recipient":{"kind":"processor","name":"payment"}}"#,
        "legal_basis",
        "nexacore.payment",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.usage","action":"share","categories":["behavior.log"],"recipient":{"kind":"processor","name":"analytics_service"}}"#,
        "consent_given",
        "nexacore.usage_analytics",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.customer_support","action":"share","categories":["support.record"],"recipient":{"kind":"processor","name":"customer_service"}}"#,
        "legal_basis",
        "nexacore.customer_service",
    );
    // The login platform helps with login, not with the rest of the account rule.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.registration","action":"share","categories":["account.third_party"],"recipient":{"kind":"processor","name":"auth_platform"}}"#,
        "recipient_not_permitted",
        "nexacore.account",
    );
    // No partner gets data for another partner's purpose.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.usage","action":"share","categories":["behavior.log"],"recipient":{"kind":"processor","name":"payment"}}"#,
        "recipient_not_permitted",
        "nexacore.usage_analytics",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.payment","action":"share","categories":["financial.transaction"],"recipient":{"kind":"processor","name":"analytics_service"}}"#,
        "recipient_not_permitted",
        "nexacore.payment",
    );
    // Feedback analysis is done in house: the analysis service does not get it.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.feedback","action":"share","categories":["behavior.feedback"],"recipient":{"kind":"processor","name":"analytics_service"}}"#,
        "action_not_permitted",
        "nexacore.feedback",
    );
}

/// "There is no cross-border transfer of personal information collected and processed
/// under this Policy."
#[test]
fn no_cross_border_transfer() {
    let s = Scenario::new("nexacore").events(&format!(
        "{ADULTS}\n{}",
        r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{"regions":["SG"]}}"#
    ));
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.prompt"],"region":"CN"}"#,
        "legal_basis",
        "nexacore.generation",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.prompt"],"region":"US"}"#,
        "region_not_permitted",
        "nexacore.generation",
    );
    // Not even a separate consent naming the region opens a transfer.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["content.upload"],"region":"SG"}"#,
        "region_not_permitted",
        "nexacore.training",
    );
    // Nor does a legal duty send data abroad.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.legal_obligation","categories":["account.username"],"region":"HK"}"#,
        "region_not_permitted",
        "nexacore.legal_duties",
    );
}

/// "This Product is intended for use by adults only. If you are a minor, please do not
/// use this Product."
#[test]
fn minors_are_not_served() {
    let s = Scenario::new("nexacore").events(&format!(
        "{ADULTS}\n{}",
        r#"
        {"type":"subject","subject":"kid","birth_date":"2009-01-01"}
        {"type":"subject","subject":"just18","birth_date":"2008-05-31"}
        {"type":"subject","subject":"nobirth"}
        {"type":"grant","subject":"kid","purposes":["ai_training"],"level":"separate","by_guardian":true,"at":"2026-01-02T00:00:00Z"}
        "#
    ));
    // 17 years old: no generation, no analytics, not even with a guardian's consent.
    s.expect_clause(
        r#"{"subject":"kid","purpose":"service.core","categories":["content.prompt"]}"#,
        "minor_not_served",
        "nexacore.generation",
    );
    s.expect_clause(
        r#"{"subject":"kid","purpose":"analytics.usage","categories":["behavior.log"]}"#,
        "minor_not_served",
        "nexacore.usage_analytics",
    );
    s.expect_clause(
        r#"{"subject":"kid","purpose":"ai_training.model_training","categories":["content.upload"]}"#,
        "minor_not_served",
        "nexacore.training",
    );
    // 18 since yesterday, an adult, and a user whose age is unknown are served.
    s.expect_clause(
        r#"{"subject":"just18","purpose":"service.core","categories":["content.prompt"]}"#,
        "legal_basis",
        "nexacore.generation",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.prompt"]}"#,
        "legal_basis",
        "nexacore.generation",
    );
    s.expect_clause(
        r#"{"subject":"nobirth","purpose":"service.core","categories":["content.prompt"]}"#,
        "legal_basis",
        "nexacore.generation",
    );
    // Duties set by law still apply to a minor's data.
    s.expect_clause(
        r#"{"subject":"kid","purpose":"compliance.authority_request","action":"share","categories":["content.prompt"],"recipient":{"kind":"authority"}}"#,
        "legal_basis",
        "nexacore.authorities",
    );
}

/// "you can choose to stop using this Product and related services or cancel your
/// account" and "we will delete the personal information we have collected or
/// anonymize it", "unless required by laws and regulations"
#[test]
fn cancelled_account_keeps_only_legal_duties() {
    let s = Scenario::new("nexacore").events(&format!(
        "{ADULTS}\n{}",
        r#"
        {"type":"grant","subject":"u1","purposes":["ai_training"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"erase","subject":"u1","at":"2026-03-01T00:00:00Z"}
        "#
    ));
    // Cancellation removes the age facts from the store at once: not even a question
    // about the time before it can tell that u1 was an adult any more, and minors are
    // not served (fail closed, the same before and after a restart).
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.prompt"],"at":"2026-02-01T00:00:00Z"}"#,
        "minor_not_served",
        "nexacore.generation",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["content.upload"],"at":"2026-02-01T00:00:00Z"}"#,
        "minor_not_served",
        "nexacore.training",
    );
    // After it, neither contract, consent nor implied consent reaches the data.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.prompt"]}"#,
        "subject_erased",
        "nexacore.generation",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["content.upload"]}"#,
        "subject_erased",
        "nexacore.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.usage","categories":["behavior.log"]}"#,
        "subject_erased",
        "nexacore.usage_analytics",
    );
    // Only duties set by law survive.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.legal_obligation","action":"store","categories":["account.username"]}"#,
        "legal_basis",
        "nexacore.legal_duties",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.authority_request","action":"share","categories":["content.chat"],"recipient":{"kind":"authority"}}"#,
        "legal_basis",
        "nexacore.authorities",
    );
    // Another user is untouched.
    s.expect_clause(
        r#"{"subject":"u2","purpose":"service.core","categories":["content.prompt"]}"#,
        "legal_basis",
        "nexacore.generation",
    );
}

/// "we may technically process your personal information in a way that cannot
/// precisely identify individual users, and conduct anonymized academic research or
/// statistical analysis (including using dialogue information you input ...) However,
/// we will not identify you personally"
#[test]
fn research_uses_only_anonymized_dialogue() {
    let s = Scenario::new("nexacore").events(ADULTS);
    let allowed = s.expect_clause(
        r#"{"subject":"u1","purpose":"research.academic","categories":["content.chat"],"deidentification":"anonymized"}"#,
        "deidentified_exempt",
        "nexacore.research",
    );
    assert_eq!(allowed.basis.as_deref(), Some("research_deidentified"));
    // "cannot precisely identify": pseudonymized or identifiable data is not enough.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"research.academic","categories":["content.chat"],"deidentification":"pseudonymized"}"#,
        "deidentification_required",
        "nexacore.research",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"research.academic","categories":["content.chat"]}"#,
        "deidentification_required",
        "nexacore.research",
    );
    // Uploads stay out of research without explicit authorization, even anonymized.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"research.academic","categories":["content.upload"],"deidentification":"anonymized"}"#,
        "category_not_permitted",
        "nexacore.research",
    );
    // Research results are not shared outside NEXA CORE.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"research.academic","action":"share","categories":["content.chat"],"deidentification":"anonymized","recipient":{"kind":"third_party"}}"#,
        "action_not_permitted",
        "nexacore.research",
    );
}

/// "In order to meet the mandatory requirements of laws and regulations ... you need to
/// provide your real name, ID number, and facial information to complete account
/// real-name authentication"
#[test]
fn real_name_authentication_is_a_legal_duty() {
    let s = Scenario::new("nexacore").events(ADULTS);
    // Sensitive data, but on a legal duty: no consent, let alone separate consent.
    let allowed = s.expect_clause(
        r#"{"subject":"u1","purpose":"account.identity_verification","categories":["identity.real_name","identity.government_id","biometric.face"]}"#,
        "legal_basis",
        "nexacore.real_name",
    );
    assert_eq!(allowed.basis.as_deref(), Some("legal_obligation"));
    // "compare and verify ... with ... government-authorized agencies"
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.identity_verification","action":"share","categories":["identity.government_id"],"recipient":{"kind":"authority"}}"#,
        "legal_basis",
        "nexacore.real_name",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.identity_verification","action":"share","categories":["identity.government_id"],"recipient":{"kind":"third_party"}}"#,
        "recipient_not_permitted",
        "nexacore.real_name",
    );
    // The face and ID number serve verification only, not login or generation.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.login","categories":["biometric.face"]}"#,
        "category_not_permitted",
        "nexacore.account",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["identity.government_id"]}"#,
        "category_not_permitted",
        "nexacore.generation",
    );
}

/// "we will collect the text information and image information you input ... and use
/// this information to output content to you, in order to provide image generation
/// services" (and video generation, and language generation)
#[test]
fn generation_uses_input_to_serve_the_user() {
    let s = Scenario::new("nexacore").events(ADULTS);
    for purpose in ["service.core.image_generation", "service.core.video_generation", "service.core.dialogue"] {
        let request = format!(
            r#"{{"subject":"stranger","purpose":"{purpose}","categories":["content.prompt","content.generated"]}}"#
        );
        let allowed = s.expect_clause(&request, "legal_basis", "nexacore.generation");
        assert_eq!(allowed.basis.as_deref(), Some("contract"));
    }
    // The input is used to serve, and disclosed only with consent (3.3.1).
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core.dialogue","action":"disclose","categories":["content.chat"],"recipient":{"kind":"public"}}"#,
        "consent_missing",
        "nexacore.generation",
    );
}

/// "for the purpose of ensuring the security of this Product's use, we will read your
/// browser information and operating terminal information."
#[test]
fn security_reads_browser_and_terminal_information() {
    let s = Scenario::new("nexacore").events(ADULTS);
    let allowed = s.expect_clause(
        r#"{"subject":"u1","purpose":"security.operations","categories":["device.info"],"signals":{"dnt":true}}"#,
        "legal_basis",
        "nexacore.security",
    );
    assert_eq!(allowed.basis.as_deref(), Some("service_security"));
    s.expect_clause(
        r#"{"subject":"u1","purpose":"security.operations","categories":["behavior.log"]}"#,
        "category_not_permitted",
        "nexacore.security",
    );
}

/// "When using your information for purposes not covered by this Policy, we will seek
/// your consent in advance." (no advertising, profiling, personalisation or marketing
/// is covered, so none is permitted, whatever the user granted)
#[test]
fn purposes_the_policy_never_states_are_denied() {
    let s = Scenario::new("nexacore").events(&format!(
        "{ADULTS}\n{}",
        r#"{"type":"grant","subject":"u1","purposes":["advertising","personalization","profiling","marketing","security"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#
    ));
    for purpose in [
        "advertising.personalized",
        "advertising.measurement",
        "personalization.recommendation",
        "personalization.semantic_insights",
        "profiling.user_portrait",
        "marketing.campaigns",
        "service.notifications",
        "security.account_protection",
    ] {
        let request = format!(r#"{{"subject":"u1","purpose":"{purpose}","categories":["behavior.log"]}}"#);
        let denied = s.expect(&request, "no_rule");
        assert_eq!(denied.clause, None, "{purpose}");
    }
    // The sibling purposes that the policy does state are decided by their rules.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"security.operations","categories":["device.info"]}"#,
        "legal_basis",
        "nexacore.security",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.session","categories":["tracking.cookie"]}"#,
        "legal_basis",
        "nexacore.cookies",
    );
}

/// 3.2.2 "In the case of merger, acquisition, bankruptcy liquidation, reorganization,
/// etc., if personal information transfer is involved, we will require the new company
/// or organization holding your personal information to continue to be bound by this Policy"
#[test]
fn a_merger_transfers_data_to_the_successor_and_nothing_else() {
    let s = Scenario::new("nexacore").events(ADULTS);
    let hand_over = |action: &str, recipient: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"service.business_transfer","action":"{action}","categories":["contact.phone","content.generated"],"recipient":{{"kind":"{recipient}"}}}}"#
        )
    };
    s.expect_clause(&hand_over("transfer", "third_party"), "legal_basis", "nexacore.merger");
    s.expect_clause(&hand_over("transfer", "affiliate"), "legal_basis", "nexacore.merger");
    s.expect_clause(&hand_over("share", "third_party"), "action_not_permitted", "nexacore.merger");
    s.expect_clause(&hand_over("transfer", "public"), "recipient_not_permitted", "nexacore.merger");
}

/// 3.1.1 "After obtaining your explicit consent, we will share your personal information
/// with other parties." / 3.2.1 (transfer) / 3.3.1 (public disclosure): generation data
/// is a contract's, and consent adds sharing; PIPL makes it separate for third parties
/// and the public.
#[test]
fn sharing_transfer_and_disclosure_with_explicit_consent() {
    let s = Scenario::new("nexacore").events(&format!(
        "{ADULTS}\n{}",
        r#"
        {"type":"grant","subject":"u1","purposes":["service.core"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"u2","purposes":["service.core"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        "#
    ));
    let hand = |who: &str, action: &str, recipient: &str| {
        format!(
            r#"{{"subject":"{who}","purpose":"service.core.dialogue","action":"{action}","categories":["content.chat"],"recipient":{{"kind":"{recipient}"}}}}"#
        )
    };
    let table = [
        (hand("u1", "use", "first_party"), "legal_basis"),
        (hand("u1", "share", "affiliate"), "consent_given"),
        (hand("u1", "transfer", "affiliate"), "consent_given"),
        (hand("u1", "share", "third_party"), "separate_consent_required"),
        (hand("u2", "share", "third_party"), "consent_given"),
        (hand("u2", "disclose", "public"), "consent_given"),
        (hand("stranger", "share", "affiliate"), "consent_missing"),
    ];
    for (request, code) in table {
        s.expect_clause(&request, code, "nexacore.generation");
    }
}

/// 3.4 "sharing, transferring, and publicly disclosing your personal information
/// without prior authorization from the individual in the following situations: (1)
/// Directly related to national security ... (2) ... public safety, public health ...
/// (3) ... criminal investigation ... (4) For the protection of your or other
/// individuals' life, property": lawful on any of them; a request names the one it
/// relies on (legal_obligation otherwise), the decision names it back, and an erased
/// subject's data still reaches the authorities on each.
#[test]
fn authority_requests_are_lawful_on_each_statutory_exemption() {
    let s = Scenario::new("nexacore").events(r#"{"type":"erase","subject":"gone","at":"2026-01-05T00:00:00Z"}"#);
    let ask = |subject: &str, basis: Option<&str>| {
        let basis = basis.map_or_else(String::new, |b| format!(r#","basis":"{b}""#));
        format!(
            r#"{{"subject":"{subject}","purpose":"compliance.authority_request","action":"share","categories":["account"],"recipient":{{"kind":"authority"}}{basis}}}"#
        )
    };
    let cases = [
        // subject, basis named, code, basis decided
        ("u1", None, "legal_basis", Some("legal_obligation")),
        ("u1", Some("criminal_justice"), "legal_basis", Some("criminal_justice")),
        ("u1", Some("vital_interest"), "legal_basis", Some("vital_interest")),
        ("gone", Some("national_security"), "legal_basis", Some("national_security")),
        ("u1", Some("publicly_disclosed"), "basis_not_permitted", None),
        ("u1", Some("contract"), "basis_not_permitted", None),
        // An erased subject counts as a minor, whom NEXA serves only on the law's bases.
        ("gone", Some("contract"), "minor_not_served", None),
    ];
    for (subject, named, code, decided) in cases {
        let out = s.expect_clause(&ask(subject, named), code, "nexacore.authorities");
        assert_eq!(out.basis.as_deref(), decided, "{subject} {named:?}");
    }
}

/// 1.1.5(1) "We will only retain your personal information for the period necessary to
/// achieve the purposes stated in this Agreement, unless permitted by law. After the
/// above personal information retention period, we will delete or anonymize your
/// personal information": once a purpose is over (an `end` event), its data is
/// expired, except anonymized, and duties of law keep theirs.
#[test]
fn personal_information_is_kept_for_the_period_necessary() {
    let s = Scenario::new("nexacore").events(
        r#"
        {"type":"subject","subject":"u1","birth_date":"1990-01-01"}
        {"type":"end","subject":"u1","purposes":["service.core"],"at":"2026-04-01T00:00:00Z"}
        "#,
    );
    let prompt = |deid: &str, collected: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"service.core","categories":["content.prompt"],"deidentification":"{deid}","collected_at":"{collected}"}}"#
        )
    };
    s.expect_clause(&prompt("none", "2026-03-01T00:00:00Z"), "retention_expired", "nexacore.generation");
    s.expect_clause(&prompt("anonymized", "2026-03-01T00:00:00Z"), "legal_basis", "nexacore.generation");
    // The next task is a new period.
    s.expect_clause(&prompt("none", "2026-05-01T00:00:00Z"), "legal_basis", "nexacore.generation");
    // Other purposes are not over.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.payment","categories":["financial.transaction"],"collected_at":"2026-03-01T00:00:00Z"}"#,
        "legal_basis",
        "nexacore.payment",
    );
    // "unless permitted by law"
    s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.legal_obligation","action":"store","categories":["content.prompt"],"collected_at":"2026-03-01T00:00:00Z"}"#,
        "legal_basis",
        "nexacore.legal_duties",
    );
}
