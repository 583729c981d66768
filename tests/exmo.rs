//! Behaviour tests for the EXMO policy (`examples/policies/exmo.toml`, seed
//! `000_b2e8a8ebda23b26f`): one test per promise of the privacy policy, each pairing
//! the denial with the allowance that shows the denial is specific.

mod support;
use support::Scenario;

fn exmo() -> Scenario {
    Scenario::new("exmo")
}

/// "With explicit consent, EXMO may also use anonymized behavioral data for AI
/// optimization or model training. This authorization is off by default"
#[test]
fn training_is_off_by_default() {
    let s = exmo().events(
        r#"
        {"type":"subject","subject":"known","birth_date":"1990-01-01"}
        {"type":"grant","subject":"opted_in","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","policy_version":"1.0"}
        "#,
    );
    // A known subject who never opted in: off.
    for purpose in ["ai_training.model_training", "ai_training.algorithm_optimization"] {
        let req = format!(
            r#"{{"subject":"known","purpose":"{purpose}","categories":["behavior.log"],"deidentification":"anonymized"}}"#
        );
        s.expect_clause(&req, "consent_missing", "exmo.training");
    }
    // An unknown subject: off as well.
    s.expect_clause(
        r#"{"subject":"nobody","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#,
        "consent_missing",
        "exmo.training",
    );
    // Only the opt-in turns it on.
    for purpose in ["ai_training.model_training", "ai_training.algorithm_optimization"] {
        let req = format!(
            r#"{{"subject":"opted_in","purpose":"{purpose}","categories":["behavior.log"],"deidentification":"anonymized"}}"#
        );
        s.expect_clause(&req, "consent_given", "exmo.training");
    }
}

/// "EXMO will not use your personal information for advertising, profiling, or
/// algorithm training unless you give separate explicit consent."
#[test]
fn training_needs_separate_explicit_consent() {
    let s = exmo().events(
        r#"
        {"type":"grant","subject":"implied","purposes":["ai_training"],"level":"implied","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"explicit","purposes":["ai_training"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"separate","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"other","purposes":["personalization"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        "#,
    );
    let req = |who: &str, deidentification: &str| {
        format!(
            r#"{{"subject":"{who}","purpose":"ai_training.model_training","categories":["behavior.generation_log"],"deidentification":"{deidentification}"}}"#
        )
    };
    // Personal (de-identified but re-identifiable) data: the rule's own level is
    // `separate`, so a weaker grant is answered `separate_consent_required` (as in
    // interchange.md's example decision).
    s.expect_clause(&req("implied", "pseudonymized"), "separate_consent_required", "exmo.training");
    s.expect_clause(&req("explicit", "pseudonymized"), "separate_consent_required", "exmo.training");
    s.expect_clause(&req("separate", "pseudonymized"), "consent_given", "exmo.training");
    // "With explicit consent, EXMO may also use anonymized behavioral data": explicit
    // is enough for anonymized data, implied is not.
    s.expect_clause(&req("implied", "anonymized"), "consent_level_insufficient", "exmo.training");
    s.expect_clause(&req("explicit", "anonymized"), "consent_given", "exmo.training");
    // A separate consent for another purpose does not cover training.
    s.expect_clause(&req("other", "anonymized"), "consent_missing", "exmo.training");
    s.expect_clause(&req("separate", "anonymized"), "consent_given", "exmo.training");
}

/// "When users authorize such usage, data is anonymized or de-identified" /
/// "use anonymized behavioral data for AI optimization or model training"
#[test]
fn training_uses_only_deidentified_data() {
    let s = exmo().events(
        r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#,
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"]}"#,
        "deidentification_required",
        "exmo.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"pseudonymized"}"#,
        "consent_given",
        "exmo.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#,
        "consent_given",
        "exmo.training",
    );
    // Anonymization does not replace the consent: without a grant it stays off.
    s.expect_clause(
        r#"{"subject":"u2","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#,
        "consent_missing",
        "exmo.training",
    );
    // Only behavioral data, never uploads or identity data.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["content.upload"],"deidentification":"anonymized"}"#,
        "category_not_permitted",
        "exmo.training",
    );
}

/// "Users may enable or revoke this authorization at any time without affecting the
/// use of core features."
#[test]
fn training_stops_on_withdrawal_without_affecting_core_features() {
    let s = exmo().events(
        r#"
        {"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"withdraw","subject":"u1","purposes":["ai_training"],"at":"2026-02-01T00:00:00Z"}
        {"type":"grant","subject":"u2","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"withdraw","subject":"u2","purposes":["ai_training.model_training"],"at":"2026-02-01T00:00:00Z"}
        {"type":"grant","subject":"u2","purposes":["ai_training.model_training"],"level":"separate","at":"2026-03-01T00:00:00Z"}
        "#,
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized","at":"2026-01-15T00:00:00Z"}"#,
        "consent_given",
        "exmo.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#,
        "consent_withdrawn",
        "exmo.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.algorithm_optimization","categories":["behavior.log"],"deidentification":"anonymized"}"#,
        "consent_withdrawn",
        "exmo.training",
    );
    // Core features are unaffected by the withdrawal.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.prompt","content.generated"]}"#,
        "legal_basis",
        "exmo.core",
    );
    // "enable ... at any time": a new grant after the withdrawal turns it back on.
    s.expect_clause(
        r#"{"subject":"u2","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#,
        "consent_given",
        "exmo.training",
    );
}

/// "used only for internal model improvement, not for sale or unrelated sharing."
#[test]
fn training_is_for_internal_model_improvement_only() {
    let s = exmo().events(
        r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#,
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized","action":"share","recipient":{"kind":"third_party"}}"#,
        "action_not_permitted",
        "exmo.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized","action":"transfer","recipient":{"kind":"third_party"}}"#,
        "action_not_permitted",
        "exmo.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized","recipient":{"kind":"processor"}}"#,
        "recipient_not_permitted",
        "exmo.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized","recipient":{"kind":"affiliate"}}"#,
        "recipient_not_permitted",
        "exmo.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized","recipient":{"kind":"first_party"}}"#,
        "consent_given",
        "exmo.training",
    );
}

/// "This authorization ... can be managed in User Center > Settings > Data Usage
/// Consent": a grant with an end date ends then.
#[test]
fn training_consent_ends_when_it_expires() {
    let s = exmo().events(
        r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z","expires_at":"2026-03-01T00:00:00Z"}"#,
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized","at":"2026-02-01T00:00:00Z"}"#,
        "consent_given",
        "exmo.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#,
        "consent_expired",
        "exmo.training",
    );
}

/// "EXMO will not use your personal information for advertising, profiling, or
/// algorithm training unless you give separate explicit consent."
#[test]
fn advertising_and_profiling_need_separate_consent() {
    let s = exmo().events(
        r#"
        {"type":"subject","subject":"none","birth_date":"1990-01-01"}
        {"type":"grant","subject":"explicit","purposes":["advertising","profiling"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"separate","purposes":["advertising","profiling"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"ads_only","purposes":["advertising"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        "#,
    );
    for purpose in ["advertising.personalized", "advertising.measurement", "profiling.user_portrait"] {
        let req = |who: &str| format!(r#"{{"subject":"{who}","purpose":"{purpose}","categories":["behavior.log"]}}"#);
        s.expect_clause(&req("none"), "consent_missing", "exmo.advertising_profiling");
        // The rule's own level is `separate`: a weaker grant needs separate consent.
        s.expect_clause(&req("explicit"), "separate_consent_required", "exmo.advertising_profiling");
        s.expect_clause(&req("separate"), "consent_given", "exmo.advertising_profiling");
    }
    // Consent to advertising is not consent to profiling.
    s.expect_clause(
        r#"{"subject":"ads_only","purpose":"profiling.user_portrait","categories":["behavior.log"]}"#,
        "consent_missing",
        "exmo.advertising_profiling",
    );
    s.expect_clause(
        r#"{"subject":"ads_only","purpose":"advertising.personalized","categories":["behavior.log"]}"#,
        "consent_given",
        "exmo.advertising_profiling",
    );
}

/// "Current third-party SDK integrations include WeChat Login, Apple Sign-In, and
/// Google Sign-In, each used only for authentication and related account functions."
#[test]
fn login_sdks_receive_data_only_for_login() {
    let s = exmo();
    for sdk in ["wechat_login", "apple_sign_in", "google_sign_in"] {
        let login = format!(
            r#"{{"subject":"u1","purpose":"account.login","categories":["account.third_party"],"action":"share","recipient":{{"kind":"processor","name":"{sdk}"}}}}"#
        );
        s.expect_clause(&login, "legal_basis", "exmo.login");
        // The same SDK gets nothing for registration or for the core service.
        let registration = format!(
            r#"{{"subject":"u1","purpose":"account.registration","categories":["contact.email"],"recipient":{{"kind":"processor","name":"{sdk}"}}}}"#
        );
        s.expect_clause(&registration, "recipient_not_permitted", "exmo.registration");
        let core = format!(
            r#"{{"subject":"u1","purpose":"service.core","categories":["content.prompt"],"recipient":{{"kind":"processor","name":"{sdk}"}}}}"#
        );
        s.expect_clause(&core, "recipient_not_permitted", "exmo.core");
        // Nor the login data it does not need (the phone number).
        let phone = format!(
            r#"{{"subject":"u1","purpose":"account.login","categories":["contact.phone"],"action":"share","recipient":{{"kind":"processor","name":"{sdk}"}}}}"#
        );
        s.expect_clause(&phone, "recipient_not_permitted", "exmo.login");
    }
    // An undeclared processor gets nothing, even for login.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.login","categories":["account.third_party"],"action":"share","recipient":{"kind":"processor"}}"#,
        "recipient_not_permitted",
        "exmo.login",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.login","categories":["account.third_party"],"action":"share","recipient":{"kind":"third_party"}}"#,
        "recipient_not_permitted",
        "exmo.login",
    );
}

/// "Your information may be used for authentication, registration, ... security
/// operations, risk control, and compliance review": these need no consent.
#[test]
fn account_and_security_need_no_consent() {
    let s = exmo();
    let out = s.expect_clause(
        r#"{"subject":"u1","purpose":"account.registration","categories":["contact.email","contact.phone","account.username","account.credentials"],"action":"collect"}"#,
        "legal_basis",
        "exmo.registration",
    );
    assert_eq!(out.basis.as_deref(), Some("contract"));
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.login","categories":["account.username","account.credentials"]}"#,
        "legal_basis",
        "exmo.login",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.identity_verification","categories":["identity.age"],"action":"collect"}"#,
        "legal_basis",
        "exmo.identity_verification",
    );
    let out = s.expect_clause(
        r#"{"subject":"u1","purpose":"security.account_protection","categories":["device.info","behavior.log"]}"#,
        "legal_basis",
        "exmo.security",
    );
    assert_eq!(out.basis.as_deref(), Some("service_security"));
    let out = s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.legal_obligation","categories":["contact.phone"]}"#,
        "legal_basis",
        "exmo.compliance_review",
    );
    assert_eq!(out.basis.as_deref(), Some("legal_obligation"));
    // ... but only for the data the seed names for them.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.identity_verification","categories":["identity.government_id"],"action":"collect"}"#,
        "category_not_permitted",
        "exmo.identity_verification",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"security.account_protection","categories":["location.precise"]}"#,
        "category_not_permitted",
        "exmo.security",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.registration","categories":["device.app_list"],"action":"collect"}"#,
        "category_not_permitted",
        "exmo.registration",
    );
}

/// "With user consent, EXMO records behavioral logs such as task creation, preference
/// editing, content generation, semantic analysis, and task interactions to support
/// task management and Dissemination Gene modeling."
#[test]
fn dissemination_gene_needs_user_consent() {
    let s = exmo().events(
        r#"
        {"type":"subject","subject":"none","birth_date":"1990-01-01"}
        {"type":"grant","subject":"implied","purposes":["personalization","service.task_management"],"level":"implied","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"explicit","purposes":["personalization","service.task_management"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"gone","purposes":["personalization"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"withdraw","subject":"gone","purposes":["personalization.semantic_insights"],"at":"2026-02-01T00:00:00Z"}
        "#,
    );
    let gene = |who: &str| {
        format!(
            r#"{{"subject":"{who}","purpose":"personalization.semantic_insights","categories":["behavior.semantic_tags","behavior.task_records"]}}"#
        )
    };
    s.expect_clause(&gene("none"), "consent_missing", "exmo.behavior_logs");
    s.expect_clause(&gene("implied"), "consent_level_insufficient", "exmo.behavior_logs");
    s.expect_clause(&gene("gone"), "consent_withdrawn", "exmo.behavior_logs");
    s.expect_clause(&gene("explicit"), "consent_given", "exmo.behavior_logs");
    // Recommendations run on the same logs.
    s.expect_clause(
        r#"{"subject":"none","purpose":"personalization.recommendation","categories":["behavior.log"]}"#,
        "consent_missing",
        "exmo.behavior_logs",
    );
    s.expect_clause(
        r#"{"subject":"gone","purpose":"personalization.recommendation","categories":["behavior.log"]}"#,
        "consent_given",
        "exmo.behavior_logs",
    );
    // Task-management logs need the consent; generating content does not.
    s.expect_clause(
        r#"{"subject":"none","purpose":"service.task_management","categories":["behavior.task_records"],"action":"collect"}"#,
        "consent_missing",
        "exmo.behavior_logs",
    );
    s.expect_clause(
        r#"{"subject":"explicit","purpose":"service.task_management","categories":["behavior.task_records"],"action":"collect"}"#,
        "consent_given",
        "exmo.behavior_logs",
    );
    s.expect_clause(
        r#"{"subject":"none","purpose":"service.core","categories":["content.prompt","content.generated"]}"#,
        "legal_basis",
        "exmo.core",
    );
    s.expect_clause(
        r#"{"subject":"none","purpose":"service.core","categories":["behavior.task_records"]}"#,
        "category_not_permitted",
        "exmo.core",
    );
}

/// "These algorithms do not use sensitive identity attributes such as gender, race,
/// religion, or political beliefs" / "These logs do not involve off-platform tracking
/// or sales of user behavior data."
#[test]
fn behavior_logs_exclude_identity_tracking_and_sale() {
    let s = exmo().events(
        r#"{"type":"grant","subject":"u1","purposes":["personalization"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#,
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"personalization.semantic_insights","categories":["behavior.preferences"]}"#,
        "consent_given",
        "exmo.behavior_logs",
    );
    for category in
        ["identity.real_name", "identity.age", "identity.government_id", "tracking.cookie", "location.precise"]
    {
        let req = format!(
            r#"{{"subject":"u1","purpose":"personalization.semantic_insights","categories":["behavior.preferences","{category}"]}}"#
        );
        s.expect_clause(&req, "category_not_permitted", "exmo.behavior_logs");
    }
    s.expect_clause(
        r#"{"subject":"u1","purpose":"personalization.semantic_insights","categories":["behavior.preferences"],"action":"share","recipient":{"kind":"third_party"}}"#,
        "action_not_permitted",
        "exmo.behavior_logs",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"personalization.semantic_insights","categories":["behavior.preferences"],"recipient":{"kind":"third_party"}}"#,
        "recipient_not_permitted",
        "exmo.behavior_logs",
    );
}

/// "Uploaded files such as text, documents, images, and photos are used only for the
/// current generation or analysis session" / "purged regularly after use."
#[test]
fn uploads_live_only_for_the_session() {
    let s = exmo();
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.upload_processing","categories":["content.upload"],"action":"collect","session":"s1"}"#,
        "legal_basis",
        "exmo.uploads",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.upload_processing","categories":["content.upload"],"collected_at":"2026-05-31T23:00:00Z","collected_session":"s1","session":"s1"}"#,
        "legal_basis",
        "exmo.uploads",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.upload_processing","categories":["content.upload"],"action":"store","collected_at":"2026-05-31T23:00:00Z","collected_session":"s1","session":"s1"}"#,
        "legal_basis",
        "exmo.uploads",
    );
    // The next session no longer has it.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.upload_processing","categories":["content.upload"],"collected_at":"2026-05-31T23:00:00Z","collected_session":"s1","session":"s2"}"#,
        "retention_expired",
        "exmo.uploads",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.upload_processing","categories":["content.upload"],"action":"store","collected_at":"2026-05-31T23:00:00Z","collected_session":"s1"}"#,
        "retention_expired",
        "exmo.uploads",
    );
    // Uploads are not core-service data to keep beyond the session either.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.upload"]}"#,
        "category_not_permitted",
        "exmo.core",
    );
}

/// "Users should avoid uploading highly sensitive personal information such as ID
/// numbers, bank details, biometric photos, or health records."
#[test]
fn uploads_exclude_highly_sensitive_information() {
    let s = exmo();
    for category in ["identity.government_id", "financial.account", "biometric.face", "health.record"] {
        let req = format!(
            r#"{{"subject":"u1","purpose":"service.upload_processing","categories":["{category}"],"action":"collect","session":"s1"}}"#
        );
        s.expect_clause(&req, "category_not_permitted", "exmo.uploads");
    }
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.upload_processing","categories":["content.upload"],"action":"collect","session":"s1"}"#,
        "legal_basis",
        "exmo.uploads",
    );
}

/// "Your data is stored on secure servers located in China"
#[test]
fn data_stays_in_china() {
    let s = exmo().events(
        r#"
        {"type":"grant","subject":"u1","purposes":["personalization"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"u2","purposes":["personalization"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{"regions":["SG"]}}
        "#,
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.prompt"],"region":"CN"}"#,
        "legal_basis",
        "exmo.core",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.prompt"],"region":"US"}"#,
        "region_not_permitted",
        "exmo.core",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"personalization.semantic_insights","categories":["behavior.semantic_tags"],"region":"CN"}"#,
        "consent_given",
        "exmo.behavior_logs",
    );
    // Not even a separate consent naming the region opens a transfer abroad.
    s.expect_clause(
        r#"{"subject":"u2","purpose":"personalization.semantic_insights","categories":["behavior.semantic_tags"],"region":"SG"}"#,
        "region_not_permitted",
        "exmo.behavior_logs",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.login","categories":["account.third_party"],"action":"share","recipient":{"kind":"processor","name":"google_sign_in"},"region":"US"}"#,
        "region_not_permitted",
        "exmo.login",
    );
}

/// "Users under 14 must use the Platform under parental supervision."
#[test]
fn under_14_needs_guardian_consent() {
    let s = exmo().events(
        r#"
        {"type":"subject","subject":"child_own","birth_date":"2013-05-01"}
        {"type":"grant","subject":"child_own","purposes":["personalization"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"subject","subject":"child_explicit","birth_date":"2013-05-01"}
        {"type":"grant","subject":"child_explicit","purposes":["personalization"],"level":"explicit","by_guardian":true,"at":"2026-01-02T00:00:00Z"}
        {"type":"subject","subject":"child_guardian","birth_date":"2013-05-01"}
        {"type":"grant","subject":"child_guardian","purposes":["personalization"],"level":"separate","by_guardian":true,"at":"2026-01-02T00:00:00Z"}
        {"type":"subject","subject":"teen","birth_date":"2010-01-01"}
        {"type":"grant","subject":"teen","purposes":["personalization"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"child_guardian","purposes":["service.core"],"level":"separate","by_guardian":true,"at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"child_explicit","purposes":["service.core"],"level":"explicit","by_guardian":true,"at":"2026-01-02T00:00:00Z"}
        "#,
    );
    let req = |who: &str| {
        format!(
            r#"{{"subject":"{who}","purpose":"personalization.semantic_insights","categories":["behavior.semantic_tags"]}}"#
        )
    };
    // A 13-year-old's own consent does not count.
    s.expect_clause(&req("child_own"), "guardian_consent_required", "exmo.behavior_logs");
    // A child's data is sensitive as a whole: the guardian's consent must be separate.
    s.expect_clause(&req("child_explicit"), "separate_consent_required", "exmo.behavior_logs");
    s.expect_clause(&req("child_guardian"), "consent_given", "exmo.behavior_logs");
    // 14 and over consent for themselves.
    s.expect_clause(&req("teen"), "consent_given", "exmo.behavior_logs");
    // "Under parental supervision": the core service is a contract, but a child's data
    // needs a guardian's consent whatever the basis (PIPL art. 31), and a separate one
    // (art. 28: it is sensitive as a whole). Teenagers need none.
    let core = |who: &str| format!(r#"{{"subject":"{who}","purpose":"service.core","categories":["content.prompt"]}}"#);
    s.expect_clause(&core("child_own"), "guardian_consent_required", "exmo.core");
    s.expect_clause(&core("child_explicit"), "separate_consent_required", "exmo.core");
    s.expect_clause(&core("child_guardian"), "legal_basis", "exmo.core");
    s.expect_clause(&core("teen"), "legal_basis", "exmo.core");
}

/// "EXMO may use cookies and local storage for session retention, auto-login,
/// interface optimization, and remembering user preferences and task history."
#[test]
fn cookies_and_local_storage_serve_the_session() {
    let s = exmo().events(
        r#"{"type":"grant","subject":"u1","purposes":["advertising"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#,
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.session","categories":["tracking.cookie"],"action":"store"}"#,
        "legal_basis",
        "exmo.cookies",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.session","categories":["tracking.cookie","behavior.preferences"]}"#,
        "legal_basis",
        "exmo.cookies",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.session","categories":["behavior.log"]}"#,
        "category_not_permitted",
        "exmo.cookies",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.session","categories":["tracking.cookie"],"action":"share","recipient":{"kind":"third_party"}}"#,
        "action_not_permitted",
        "exmo.cookies",
    );
    // Cookies are not an advertising tracker, even with advertising consent.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"advertising.personalized","categories":["tracking.cookie"]}"#,
        "category_not_permitted",
        "exmo.advertising_profiling",
    );
}

/// "Upon account deletion, EXMO will erase or anonymize your data to the extent
/// permitted by law"
#[test]
fn account_deletion_erases_all_but_legal_duties() {
    let s = exmo().events(
        r#"
        {"type":"grant","subject":"u1","purposes":["personalization","ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"erase","subject":"u1","at":"2026-03-01T00:00:00Z"}
        "#,
    );
    // Erasure removes the subject's age facts from the store at once, so not even a
    // question about the time before it can tell a child from an adult any more: it
    // fails closed, the same before and after a restart.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"personalization.semantic_insights","categories":["behavior.semantic_tags"],"at":"2026-02-01T00:00:00Z"}"#,
        "guardian_consent_required",
        "exmo.behavior_logs",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"personalization.semantic_insights","categories":["behavior.semantic_tags"]}"#,
        "subject_erased",
        "exmo.behavior_logs",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}"#,
        "subject_erased",
        "exmo.training",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.generated"]}"#,
        "subject_erased",
        "exmo.core",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"account.login","categories":["account.username"]}"#,
        "subject_erased",
        "exmo.login",
    );
    // What the law requires survives the deletion.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.legal_obligation","categories":["contact.phone","behavior.log"]}"#,
        "legal_basis",
        "exmo.compliance_review",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.authority_request","categories":["contact.phone"],"action":"share","recipient":{"kind":"authority"}}"#,
        "legal_basis",
        "exmo.legal_disclosure",
    );
}

/// "EXMO does not share, sell, or disclose your personal data to unrelated third
/// parties unless authorized by you, required for core functions, required by law,
/// or involved in merger and restructuring scenarios."
#[test]
fn disclosure_only_when_required_by_law_or_in_a_merger() {
    let s = exmo();
    // Required by law: to an authority, nobody else.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.authority_request","categories":["contact.phone","behavior.log"],"action":"share","recipient":{"kind":"authority"}}"#,
        "legal_basis",
        "exmo.legal_disclosure",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.authority_request","categories":["contact.phone"],"action":"share","recipient":{"kind":"third_party"}}"#,
        "recipient_not_permitted",
        "exmo.legal_disclosure",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.authority_request","categories":["contact.phone"],"action":"disclose","recipient":{"kind":"public"}}"#,
        "action_not_permitted",
        "exmo.legal_disclosure",
    );
    // Merger and restructuring: a transfer to the successor, and only a transfer.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.business_transfer","categories":["contact.email","account.username","content.generated"],"action":"transfer","recipient":{"kind":"third_party"}}"#,
        "legal_basis",
        "exmo.merger",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.business_transfer","categories":["contact.email"],"action":"share","recipient":{"kind":"third_party"}}"#,
        "action_not_permitted",
        "exmo.merger",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.business_transfer","categories":["contact.email"],"action":"transfer","recipient":{"kind":"third_party"},"region":"US"}"#,
        "region_not_permitted",
        "exmo.merger",
    );
    // Outside those cases nothing leaves EXMO.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.generated"],"action":"transfer","recipient":{"kind":"third_party"}}"#,
        "action_not_permitted",
        "exmo.core",
    );
    // "... unless authorized by you": without the subject's authorization, no sharing.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"service.core","categories":["content.generated"],"action":"share","recipient":{"kind":"third_party"}}"#,
        "consent_missing",
        "exmo.core",
    );
}

/// "Your information may be used for authentication, registration, dissemination task
/// execution, AI content generation, feedback analysis, semantic insights, security
/// operations, risk control, and compliance review": no other purpose.
#[test]
fn purposes_the_seed_never_names_are_denied() {
    let s = exmo().events(
        r#"{"type":"grant","subject":"u1","purposes":["analytics","marketing","research","service"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#,
    );
    for purpose in [
        "analytics.usage",
        "marketing.campaigns",
        "research.academic",
        "service.payment",
        "service.notifications",
        "service.customer_support",
    ] {
        let req = format!(r#"{{"subject":"u1","purpose":"{purpose}","categories":["behavior.log"]}}"#);
        let out = s.expect(&req, "no_rule");
        assert_eq!(out.clause, None, "{purpose} decided by a rule");
    }
    // The named sibling purpose is permitted.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.feedback","categories":["behavior.feedback"]}"#,
        "legal_basis",
        "exmo.feedback",
    );
    s.expect_clause(
        r#"{"subject":"u1","purpose":"analytics.feedback","categories":["behavior.log"]}"#,
        "category_not_permitted",
        "exmo.feedback",
    );
}

/// "VERSION: 1.0" / "Your data is stored on secure servers located in China": the
/// policy loads cleanly, as version 1.0 with China as its only region, and a consent
/// given under version 1.0 counts.
#[test]
fn policy_is_version_1_0_stored_in_china() {
    let s = exmo().events(
        r#"{"type":"grant","subject":"u1","purposes":["personalization"],"level":"explicit","at":"2026-01-02T00:00:00Z","policy_version":"1.0"}"#,
    );
    let policy = s.guard().policy();
    assert_eq!(policy.name(), "exmo");
    assert_eq!(policy.version(), "1.0");
    assert_eq!(policy.home_region().as_str(), "CN");
    let regions: Vec<&str> = policy.storage_regions().iter().map(|r| r.as_str()).collect();
    assert_eq!(regions, ["CN"]);
    assert!(policy.warnings().is_empty(), "warnings: {:?}", policy.warnings());
    s.expect_clause(
        r#"{"subject":"u1","purpose":"personalization.semantic_insights","categories":["behavior.semantic_tags"]}"#,
        "consent_given",
        "exmo.behavior_logs",
    );
    s.expect_clause(
        r#"{"subject":"u2","purpose":"personalization.semantic_insights","categories":["behavior.semantic_tags"]}"#,
        "consent_missing",
        "exmo.behavior_logs",
    );
}

/// "Uploaded files such as text, documents, images, and photos are used only for the
/// current generation or analysis session unless separately authorized."
#[test]
fn uploads_outlive_their_session_only_with_a_separate_authorization() {
    let s = exmo().events(
        r#"
        {"type":"grant","subject":"keeps","purposes":["service.upload_processing"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"explicit","purposes":["service.upload_processing"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"withdrew","purposes":["service.upload_processing"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"withdraw","subject":"withdrew","purposes":["service"],"at":"2026-03-01T00:00:00Z"}
        "#,
    );
    let upload = |who: &str, session: &str| {
        format!(
            r#"{{"subject":"{who}","purpose":"service.upload_processing","categories":["content.upload"],"collected_session":"s1","session":"{session}"}}"#
        )
    };
    let table = [
        ("nobody", "s1", "legal_basis"),
        ("nobody", "s2", "retention_expired"),
        ("keeps", "s2", "legal_basis"),
        ("explicit", "s2", "retention_expired"),
        ("withdrew", "s2", "retention_expired"),
    ];
    for (who, session, code) in table {
        s.expect_clause(&upload(who, session), code, "exmo.uploads");
    }
}

/// "EXMO does not share, sell, or disclose your personal data to unrelated third
/// parties unless authorized by you": the core service is a contract, and sharing its
/// data needs the subject's (separate) consent on top.
#[test]
fn core_data_reaches_third_parties_only_when_authorized() {
    let s = exmo().events(
        r#"
        {"type":"grant","subject":"authorized","purposes":["service.core"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"explicit","purposes":["service.core"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        "#,
    );
    let share = |who: &str, action: &str, recipient: &str| {
        format!(
            r#"{{"subject":"{who}","purpose":"service.core","action":"{action}","categories":["content.generated"],"recipient":{{"kind":"{recipient}"}}}}"#
        )
    };
    let table = [
        (share("nobody", "use", "first_party"), "legal_basis"),
        (share("nobody", "share", "third_party"), "consent_missing"),
        (share("explicit", "share", "third_party"), "separate_consent_required"),
        (share("authorized", "share", "third_party"), "consent_given"),
        (share("authorized", "disclose", "public"), "consent_given"),
        // Consent adds sharing with third parties and the public, nothing else.
        (share("authorized", "share", "processor"), "recipient_not_permitted"),
        (share("authorized", "transfer", "third_party"), "action_not_permitted"),
    ];
    for (request, code) in table {
        let outcome = s.expect_clause(&request, code, "exmo.core");
        if outcome.allowed {
            let basis = if code == "consent_given" { "consent" } else { "contract" };
            assert_eq!(outcome.basis.as_deref(), Some(basis), "{request}");
        }
    }
}

/// "EXMO may use cookies and local storage for session retention, auto-login, interface
/// optimization, and remembering user preferences and task history."
#[test]
fn cookies_remember_preferences_and_task_history() {
    let s = exmo();
    let session = |category: &str| {
        format!(r#"{{"subject":"u1","purpose":"service.session","categories":["tracking.cookie","{category}"]}}"#)
    };
    s.expect_clause(&session("behavior.preferences"), "legal_basis", "exmo.cookies");
    s.expect_clause(&session("behavior.task_records"), "legal_basis", "exmo.cookies");
    s.expect_clause(&session("behavior.log"), "category_not_permitted", "exmo.cookies");
}

/// "Upon account deletion, EXMO will erase or anonymize your data to the extent
/// permitted by law" (issue 27): after the erasure, deleting the subject's data is
/// allowed under every clause, whatever actions the clause lists, and nothing else is.
#[test]
fn account_deletion_lets_the_data_be_deleted() {
    let s = exmo().events(
        r#"
        {"type":"grant","subject":"u1","purposes":["personalization","ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"erase","subject":"u1","at":"2026-03-01T00:00:00Z"}
        "#,
    );
    for (request, clause) in [
        (r#""purpose":"service.core","categories":["content.generated"]"#, "exmo.core"),
        (r#""purpose":"account.login","categories":["account.username"]"#, "exmo.login"),
        (
            r#""purpose":"personalization.semantic_insights","categories":["behavior.semantic_tags"]"#,
            "exmo.behavior_logs",
        ),
        (
            r#""purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized""#,
            "exmo.training",
        ),
        (r#""purpose":"service.session","categories":["tracking.cookie"]"#, "exmo.cookies"),
    ] {
        let deleted =
            s.expect_clause(&format!(r#"{{"subject":"u1","action":"delete",{request}}}"#), "deletion_due", clause);
        assert_eq!(deleted.basis.as_deref(), Some("legal_obligation"));
        assert!(deleted.message.contains("subject_erased"), "{}", deleted.message);
        // Every other action keeps today's answer.
        s.expect_clause(&format!(r#"{{"subject":"u1",{request}}}"#), "subject_erased", clause);
    }
    // For a subject not erased, a deletion is an ordinary access.
    let s = s.events(r#"{"type":"subject","subject":"u2","birth_date":"1990-01-01"}"#);
    s.expect_clause(
        r#"{"subject":"u2","action":"delete","purpose":"service.core","categories":["content.generated"]}"#,
        "legal_basis",
        "exmo.core",
    );
}

/// "EXMO does not intentionally collect data from minors, and such data will be
/// deleted if discovered" (issue 27): a child's data without a guardian's consent may
/// be deleted; with it, a deletion is an ordinary access.
#[test]
fn minors_data_is_deleted_if_discovered() {
    let s = exmo().events(
        r#"
        {"type":"subject","subject":"child","birth_date":"2016-05-01"}
        {"type":"grant","subject":"child","purposes":["personalization"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"subject","subject":"child_guardian","birth_date":"2016-05-01"}
        {"type":"grant","subject":"child_guardian","purposes":["personalization"],"level":"separate","by_guardian":true,"at":"2026-01-02T00:00:00Z"}
        "#,
    );
    let req = |who: &str, action: &str| {
        format!(
            r#"{{"subject":"{who}","action":"{action}","purpose":"personalization.semantic_insights","categories":["behavior.semantic_tags"]}}"#
        )
    };
    let deleted = s.expect_clause(&req("child", "delete"), "deletion_due", "exmo.behavior_logs");
    assert!(deleted.message.contains("guardian_consent_missing"), "{}", deleted.message);
    s.expect_clause(&req("child", "use"), "guardian_consent_required", "exmo.behavior_logs");
    // A child's core-service data without a guardian: deletable too, though the clause
    // lists no `delete`.
    s.expect_clause(
        r#"{"subject":"child","action":"delete","purpose":"service.core","categories":["content.generated"]}"#,
        "deletion_due",
        "exmo.core",
    );
    s.expect_clause(&req("child_guardian", "delete"), "consent_given", "exmo.behavior_logs");
    s.expect_clause(&req("child_guardian", "use"), "consent_given", "exmo.behavior_logs");
}
