//! Behaviour of the AIMate policy (`examples/policies/aimate.toml`, seed
//! `002_1bb97d9dc4e444c3.txt`, dated October 10, 2025, no version number: encoded as
//! `1.0`): one test per promise of the privacy policy, each pairing the deny with the
//! allow that shows the deny is specific. Requests without `at` are checked at
//! 2026-06-01.

mod support;
use support::Scenario;

fn aimate() -> Scenario {
    Scenario::new("aimate")
}

/// §1.2.1 "we may collect and use your usage behavior data ... and device
/// information" for recommendations (on until withdrawn, §5(4)), while §3.5 "Without
/// your explicit authorization, we will not share personal information that can be
/// used to identify you for advertising push" (off until granted).
#[test]
fn recommendations_are_on_until_withdrawn_but_advertising_is_off_until_granted() {
    let s = aimate().events(
        r#"
        {"type":"subject","subject":"u1","birth_date":"1990-01-01"}
        {"type":"subject","subject":"u2","birth_date":"1990-01-01"}
        {"type":"withdraw","subject":"u2","purposes":["personalization"],"at":"2026-03-01T00:00:00Z"}
        {"type":"grant","subject":"u2","purposes":["advertising.personalized"],"level":"explicit","at":"2026-03-01T00:00:00Z"}
        "#,
    );
    let rec = |subject: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"personalization.recommendation","categories":["behavior.preferences"]}}"#
        )
    };
    let ads = |subject: &str| {
        format!(r#"{{"subject":"{subject}","purpose":"advertising.personalized","categories":["behavior.log"]}}"#)
    };
    // Opt-out: a known user is deemed to accept recommendations ...
    s.expect_clause(&rec("u1"), "consent_given", "aimate.recommendation");
    // ... until they withdraw (the withdrawal of the parent covers the child).
    s.expect_clause(&rec("u2"), "consent_withdrawn", "aimate.recommendation");
    // ... but only a user of the service is deemed to accept (issue 29): see
    // `recommendations_are_deemed_only_for_users_of_the_service`.
    s.expect_clause(&rec("stranger"), "consent_missing", "aimate.recommendation");
    // Opt-in: the same known user has no advertising consent until granting it.
    s.expect_clause(&ads("u1"), "consent_missing", "aimate.advertising");
    s.expect_clause(&ads("u2"), "consent_given", "aimate.advertising");
}

/// §1.4 "we may use the system notification function ... You can manage these
/// notifications in your device settings or in-app notification settings."
#[test]
fn notifications_are_sent_until_switched_off() {
    let s = aimate().events(
        r#"
        {"type":"subject","subject":"u1"}
        {"type":"withdraw","subject":"u1","purposes":["service.notifications"],"at":"2026-04-01T00:00:00Z"}
        "#,
    );
    let push = r#"{"subject":"u1","purpose":"service.notifications","categories":["device.identifier"]}"#;
    let before = r#"{"subject":"u1","purpose":"service.notifications","categories":["device.identifier"],"at":"2026-03-01T00:00:00Z"}"#;
    s.expect_clause(before, "consent_given", "aimate.notifications");
    s.expect_clause(push, "consent_withdrawn", "aimate.notifications");
    // Notifications never need the device's location.
    let located = r#"{"subject":"u1","purpose":"service.notifications","categories":["location.precise"],"at":"2026-03-01T00:00:00Z"}"#;
    s.expect_clause(located, "category_not_permitted", "aimate.notifications");
}

/// §3.5 "Without your explicit authorization, we will not share personal information
/// that can be used to identify you for advertising push" (and PIPL art. 23: a
/// separate consent to provide it to another party).
#[test]
fn identifying_data_for_advertising_needs_explicit_authorization() {
    let s = aimate().events(
        r#"
        {"type":"grant","subject":"implied","purposes":["advertising"],"level":"implied","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"explicit","purposes":["advertising"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"separate","purposes":["advertising"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        "#,
    );
    let use_ = |subject: &str| {
        format!(r#"{{"subject":"{subject}","purpose":"advertising.personalized","categories":["device.identifier"]}}"#)
    };
    let share = |subject: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"advertising.personalized","action":"share","categories":["device.identifier"],"recipient":{{"kind":"third_party"}}}}"#
        )
    };
    s.expect_clause(&use_("implied"), "consent_level_insufficient", "aimate.advertising");
    s.expect_clause(&use_("explicit"), "consent_given", "aimate.advertising");
    s.expect_clause(&share("explicit"), "separate_consent_required", "aimate.advertising");
    s.expect_clause(&share("separate"), "consent_given", "aimate.advertising");
    // Advertisers never get conversations, whatever the consent.
    let chat = r#"{"subject":"separate","purpose":"advertising.personalized","action":"share","categories":["content.chat"],"recipient":{"kind":"third_party"}}"#;
    s.expect_clause(chat, "category_not_permitted", "aimate.advertising");
}

/// §3.5 "but we may share anonymized user profiles or statistical information to
/// improve advertising effectiveness or analyze product usage."
#[test]
fn anonymized_profiles_may_be_shared_with_advertisers_without_consent() {
    let s = aimate().events(r#"{"type":"subject","subject":"u1"}"#);
    let share = |deid: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"advertising.measurement","action":"share","categories":["behavior.preferences"],"recipient":{{"kind":"third_party"}},"deidentification":"{deid}"}}"#
        )
    };
    s.expect_clause(&share("anonymized"), "deidentified_exempt", "aimate.advertising");
    // De-identified data can be re-identified: it is still personal information.
    s.expect_clause(&share("pseudonymized"), "consent_missing", "aimate.advertising");
    s.expect_clause(&share("none"), "consent_missing", "aimate.advertising");
}

/// §5(4) "You can withdraw or change the authorization you have granted us ...
/// After you withdraw your consent, we will no longer process the corresponding
/// personal information. However, your decision to withdraw consent will not affect
/// the previous personal information processing based on your authorization."
#[test]
fn withdrawn_consent_stops_processing_from_then_on() {
    let s = aimate().events(
        r#"
        {"type":"grant","subject":"u1","purposes":["analytics.usage"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"withdraw","subject":"u1","purposes":["analytics"],"at":"2026-03-01T00:00:00Z"}
        {"type":"grant","subject":"u2","purposes":["analytics.usage"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"withdraw","subject":"u2","purposes":["analytics"],"at":"2026-03-01T00:00:00Z"}
        {"type":"grant","subject":"u2","purposes":["analytics.usage"],"level":"explicit","at":"2026-04-01T00:00:00Z"}
        "#,
    );
    let before =
        r#"{"subject":"u1","purpose":"analytics.usage","categories":["behavior.log"],"at":"2026-02-01T00:00:00Z"}"#;
    let after = r#"{"subject":"u1","purpose":"analytics.usage","categories":["behavior.log"]}"#;
    let regranted = r#"{"subject":"u2","purpose":"analytics.usage","categories":["behavior.log"]}"#;
    s.expect_clause(before, "consent_given", "aimate.analytics");
    s.expect_clause(after, "consent_withdrawn", "aimate.analytics");
    s.expect_clause(regranted, "consent_given", "aimate.analytics");
}

/// §4.1 "We will retain your personal information for the period necessary for the
/// purpose" and §5(4) "change the scope of your authorization": a consent given for a
/// limited time ends with it.
#[test]
fn consent_given_for_a_limited_time_expires() {
    let s = aimate().events(
        r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"explicit","at":"2026-01-02T00:00:00Z","expires_at":"2026-03-01T00:00:00Z"}"#,
    );
    let during = r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["content.chat"],"deidentification":"pseudonymized","at":"2026-02-01T00:00:00Z"}"#;
    let after = r#"{"subject":"u1","purpose":"ai_training.model_training","categories":["content.chat"],"deidentification":"pseudonymized"}"#;
    s.expect_clause(during, "consent_given", "aimate.training");
    s.expect_clause(after, "consent_expired", "aimate.training");
}

/// §4.2 "we will store the personal information ... within the territory of the
/// People's Republic of China. If cross-border transfer is required, we will ...
/// obtain your separate authorization and consent."
#[test]
fn cross_border_transfer_needs_separate_consent() {
    let s = aimate().events(
        r#"
        {"type":"grant","subject":"sep","purposes":["service.core"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{"regions":["SG"]}}
        {"type":"grant","subject":"exp","purposes":["service.core"],"level":"explicit","at":"2026-01-02T00:00:00Z","scope":{"regions":["SG"]}}
        "#,
    );
    let chat = |subject: &str, region: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"service.core","action":"store","categories":["content.chat"],"region":"{region}"}}"#
        )
    };
    // In China the conversation needs no consent at all.
    s.expect_clause(&chat("nobody", "CN"), "legal_basis", "aimate.core");
    // Abroad it needs a separate consent naming the region.
    s.expect_clause(&chat("nobody", "SG"), "separate_consent_required", "aimate.core");
    s.expect_clause(&chat("exp", "SG"), "separate_consent_required", "aimate.core");
    s.expect_clause(&chat("sep", "SG"), "legal_basis", "aimate.core");
    s.expect_clause(&chat("sep", "US"), "separate_consent_required", "aimate.core");
    // "If cross-border transfer is required" covers every purpose: risk control data
    // too leaves China only on a separate grant for it that names the region.
    let risk = |subject: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"security.account_protection","action":"store","categories":["device.identifier"],"region":"SG"}}"#
        )
    };
    s.expect_clause(&risk("sep"), "separate_consent_required", "aimate.security");
    s.expect_clause(&risk("nobody"), "separate_consent_required", "aimate.security");
}

/// §1.5 "Such information may be processed through cooperating third-party
/// statistical platforms (such as Umeng, etc.) and has been anonymized." §3.3(2)
/// "product usage statistics ... that have been anonymized and de-identified".
#[test]
fn umeng_gets_only_anonymized_statistics() {
    let s = aimate();
    let crash = |deid: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"security.operations","action":"share","categories":["device.info","behavior.log"],"recipient":{{"kind":"processor","name":"umeng"}},"deidentification":"{deid}"}}"#
        )
    };
    s.expect_clause(&crash("anonymized"), "legal_basis", "aimate.operations");
    s.expect_clause(&crash("pseudonymized"), "deidentification_required", "aimate.operations");
    s.expect_clause(&crash("none"), "deidentification_required", "aimate.operations");
    // AIMate itself may read its raw crash data.
    let own = r#"{"subject":"u1","purpose":"security.operations","categories":["device.info"]}"#;
    s.expect_clause(own, "legal_basis", "aimate.operations");
    // Usage statistics: anonymized to Umeng, without consent.
    let stats = r#"{"subject":"u1","purpose":"analytics.usage","action":"share","categories":["behavior.log"],"recipient":{"kind":"processor","name":"umeng"},"deidentification":"anonymized"}"#;
    s.expect_clause(stats, "deidentified_exempt", "aimate.analytics");
    // Umeng is a statistics platform, not a risk-control partner (a purpose open to
    // processors in general).
    let risk = r#"{"subject":"u1","purpose":"security.account_protection","action":"share","categories":["device.info"],"recipient":{"kind":"processor","name":"umeng"},"deidentification":"anonymized"}"#;
    s.expect_clause(risk, "recipient_not_permitted", "aimate.security");
}

/// §1.6 "Unless we obtain your authorization or it is otherwise provided by laws
/// and regulations, we will anonymize and de-identify this type of personal
/// information" (usage data combined with personal information).
#[test]
fn identifiable_usage_statistics_need_authorization() {
    let s = aimate().events(
        r#"{"type":"grant","subject":"u2","purposes":["analytics"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#,
    );
    let usage = |subject: &str, deid: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"analytics.usage","categories":["behavior.log"],"deidentification":"{deid}"}}"#
        )
    };
    s.expect_clause(&usage("u1", "none"), "consent_missing", "aimate.analytics");
    s.expect_clause(&usage("u1", "anonymized"), "deidentified_exempt", "aimate.analytics");
    s.expect_clause(&usage("u2", "none"), "consent_given", "aimate.analytics");
    // Even with consent, Umeng never gets identifiable statistics.
    let umeng = r#"{"subject":"u2","purpose":"analytics.usage","action":"share","categories":["behavior.log"],"recipient":{"kind":"processor","name":"umeng"}}"#;
    s.expect_clause(umeng, "deidentification_required", "aimate.analytics");
}

/// §3.2 "When you use functions provided by partners or third parties (e.g., payment
/// functions ...), we may share the personal information necessary to achieve that
/// function." §7.1 "Cross-border transactions initiated by you (eg., using
/// international payment methods)" ... "we will obtain your consent again".
#[test]
fn payment_institutions_receive_data_only_for_payment() {
    let s = aimate().events(
        r#"{"type":"grant","subject":"u2","purposes":["service.payment"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{"regions":["US"]}}"#,
    );
    let pay = r#"{"subject":"u1","purpose":"service.payment","action":"share","categories":["financial.transaction"],"recipient":{"kind":"processor","name":"payment"}}"#;
    s.expect_clause(pay, "legal_basis", "aimate.payment");
    // The payment institution is not a risk-control partner nor a chat provider.
    let risk = r#"{"subject":"u1","purpose":"security.account_protection","action":"share","categories":["account.username"],"recipient":{"kind":"processor","name":"payment"}}"#;
    s.expect_clause(risk, "recipient_not_permitted", "aimate.security");
    let core = r#"{"subject":"u1","purpose":"service.core","action":"store","categories":["content.chat"],"recipient":{"kind":"processor","name":"payment"}}"#;
    s.expect_clause(core, "recipient_not_permitted", "aimate.core");
    // Payment data is not conversation data.
    let chat = r#"{"subject":"u1","purpose":"service.payment","action":"share","categories":["content.chat"],"recipient":{"kind":"processor","name":"payment"}}"#;
    s.expect_clause(chat, "category_not_permitted", "aimate.payment");
    // International payment: only with the user's separate consent naming the country.
    let abroad = |subject: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"service.payment","action":"share","categories":["financial.transaction"],"recipient":{{"kind":"processor","name":"payment"}},"region":"US"}}"#
        )
    };
    s.expect_clause(&abroad("u1"), "separate_consent_required", "aimate.payment");
    s.expect_clause(&abroad("u2"), "legal_basis", "aimate.payment");
}

/// §1.1.1 "If you use a third-party account (e.g., WeChat) for authorized login,
/// after obtaining your consent, we will obtain the information you have authorized
/// to be public from the third party (such as nickname, avatar ...)".
#[test]
fn wechat_login_only_with_consent_and_only_for_login() {
    let s = aimate().events(
        r#"{"type":"grant","subject":"u2","purposes":["account.login.third_party"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#,
    );
    let wechat = |subject: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"account.login.third_party","action":"collect","categories":["account.third_party","account.profile"],"recipient":{{"kind":"processor","name":"wechat_login"}}}}"#
        )
    };
    s.expect_clause(&wechat("u1"), "consent_missing", "aimate.login.wechat");
    s.expect_clause(&wechat("u2"), "consent_given", "aimate.login.wechat");
    // Only what the user authorized to be public: not the phone's identifiers.
    let ids = r#"{"subject":"u2","purpose":"account.login.third_party","action":"collect","categories":["device.identifier"],"recipient":{"kind":"processor","name":"wechat_login"}}"#;
    s.expect_clause(ids, "category_not_permitted", "aimate.login.wechat");
    // WeChat gets nothing for any other purpose, even one open to processors.
    let risk = r#"{"subject":"u2","purpose":"security.account_protection","action":"share","categories":["account.username"],"recipient":{"kind":"processor","name":"wechat_login"}}"#;
    s.expect_clause(risk, "recipient_not_permitted", "aimate.security");
    let core = r#"{"subject":"u2","purpose":"service.core","categories":["account.profile"],"recipient":{"kind":"processor","name":"wechat_login"}}"#;
    s.expect_clause(core, "recipient_not_permitted", "aimate.core");
    // Signing in with an AIMate account needs no consent (and no WeChat).
    let own = r#"{"subject":"u1","purpose":"account.login.own_account","categories":["account.username","account.credentials"]}"#;
    s.expect_clause(own, "legal_basis", "aimate.login");
}

/// §6.1 "Children should not create their own user accounts without the consent of
/// their parent or guardian." §6.2 "We consider anyone under the age of 14 as a
/// child ... without prior verifiable parental consent".
#[test]
fn children_under_14_need_verifiable_parental_consent() {
    let s = aimate().events(
        r#"
        {"type":"subject","subject":"adult","birth_date":"1990-01-01"}
        {"type":"subject","subject":"fourteen","birth_date":"2012-05-01"}
        {"type":"subject","subject":"kid","birth_date":"2012-07-01"}
        {"type":"subject","subject":"kid_self","birth_date":"2015-01-01"}
        {"type":"grant","subject":"kid_self","purposes":["account.registration"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        {"type":"subject","subject":"kid_explicit","birth_date":"2015-01-01"}
        {"type":"grant","subject":"kid_explicit","purposes":["account.registration"],"level":"explicit","by_guardian":true,"at":"2026-01-02T00:00:00Z"}
        {"type":"subject","subject":"kid_ok","birth_date":"2015-01-01"}
        {"type":"grant","subject":"kid_ok","purposes":["account.registration"],"level":"separate","by_guardian":true,"at":"2026-01-02T00:00:00Z"}
        "#,
    );
    let register = |subject: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"account.registration","action":"collect","categories":["account.profile"]}}"#
        )
    };
    // Adults (14 and over) accept the policy by registering.
    s.expect_clause(&register("adult"), "consent_given", "aimate.registration");
    s.expect_clause(&register("fourteen"), "consent_given", "aimate.registration");
    // A 13-year-old cannot; nor can a child consent for itself.
    s.expect_clause(&register("kid"), "guardian_consent_required", "aimate.registration");
    s.expect_clause(&register("kid_self"), "guardian_consent_required", "aimate.registration");
    // A child's data is sensitive: the guardian's consent must be a separate one.
    s.expect_clause(&register("kid_explicit"), "separate_consent_required", "aimate.registration");
    s.expect_clause(&register("kid_ok"), "consent_given", "aimate.registration");
    // Recommendations on by default for adults are off for children.
    let rec = |subject: &str| {
        format!(r#"{{"subject":"{subject}","purpose":"personalization.recommendation","categories":["behavior.log"]}}"#)
    };
    s.expect_clause(&rec("adult"), "consent_given", "aimate.recommendation");
    s.expect_clause(&rec("kid"), "guardian_consent_required", "aimate.recommendation");
    // §6.1 "with the explicit consent of the parent or guardian": on the contract too.
    // The core service needs no consent from an adult, and a guardian's for a child
    // (separate, since a child's data is sensitive).
    let core =
        |subject: &str| format!(r#"{{"subject":"{subject}","purpose":"service.core","categories":["content.chat"]}}"#);
    s.expect_clause(&core("adult"), "legal_basis", "aimate.core");
    s.expect_clause(&core("kid"), "guardian_consent_required", "aimate.core");
    s.expect_clause(&core("kid_self"), "guardian_consent_required", "aimate.core");
}

/// §2.1(1) "Through security authentication Cookies or anonymous identifiers, we can
/// confirm your login status" (2) "avoid you having to repeatedly enter personal
/// information or search content": login-state cookies are part of the service, with
/// no consent; they carry no other data and reach no one else.
#[test]
fn login_state_cookies_are_part_of_the_service() {
    let s = aimate();
    let cookie = |category: &str, recipient: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"service.session","categories":["{category}"],"recipient":{{"kind":"{recipient}"}}}}"#
        )
    };
    let cases = [
        // category, recipient, code
        ("tracking.cookie", "first_party", "legal_basis"),
        ("behavior.log", "first_party", "category_not_permitted"),
        ("tracking.cookie", "third_party", "recipient_not_permitted"),
    ];
    for (category, recipient, code) in cases {
        s.expect_clause(&cookie(category, recipient), code, "aimate.session");
    }
}

/// §5(5) "After successful cancellation, we will no longer collect, use, or share
/// personal information related to that account. However, for information already
/// in use or shared, we still need to fulfill the relevant information preservation
/// and management obligations as required by laws and regulations."
#[test]
fn cancelled_account_keeps_only_legal_obligations() {
    let s = aimate().events(
        r#"
        {"type":"grant","subject":"u1","purposes":["analytics.usage"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"erase","subject":"u1","at":"2026-03-01T00:00:00Z"}
        "#,
    );
    let before =
        r#"{"subject":"u1","purpose":"service.core","categories":["content.chat"],"at":"2026-02-01T00:00:00Z"}"#;
    let after = r#"{"subject":"u1","purpose":"service.core","categories":["content.chat"]}"#;
    // Erasure leaves no age behind: a question about the time before it treats u1 as
    // a minor, who needs a guardian on every basis but the law's.
    s.expect_clause(before, "guardian_consent_required", "aimate.core");
    s.expect_clause(after, "subject_erased", "aimate.core");
    // A consent given before cancellation does not survive it.
    let stats = r#"{"subject":"u1","purpose":"analytics.usage","categories":["behavior.log"]}"#;
    s.expect_clause(stats, "subject_erased", "aimate.analytics");
    // Duties set by law survive.
    let keep =
        r#"{"subject":"u1","purpose":"compliance.legal_obligation","action":"store","categories":["content.chat"]}"#;
    s.expect_clause(keep, "legal_basis", "aimate.compliance.legal");
    let court = r#"{"subject":"u1","purpose":"compliance.authority_request","action":"share","categories":["content.chat"],"recipient":{"kind":"authority"}}"#;
    s.expect_clause(court, "legal_basis", "aimate.compliance.authority");
}

/// §1.1.2 "We may anonymize and de-identify the interaction content for analyzing
/// and optimizing the AI model and service quality."
#[test]
fn model_optimization_uses_only_deidentified_conversations() {
    let s = aimate().events(
        r#"{"type":"grant","subject":"u2","purposes":["ai_training"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#,
    );
    let train = |subject: &str, purpose: &str, deid: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"{purpose}","categories":["content.chat"],"deidentification":"{deid}"}}"#
        )
    };
    let opt = "ai_training.algorithm_optimization";
    let model = "ai_training.model_training";
    // Raw conversations never, not even with consent.
    s.expect_clause(&train("u2", model, "none"), "deidentification_required", "aimate.training");
    // Anonymized conversations without consent.
    s.expect_clause(&train("u1", opt, "anonymized"), "deidentified_exempt", "aimate.training");
    s.expect_clause(&train("u1", model, "anonymized"), "deidentified_exempt", "aimate.training");
    // De-identified (re-identifiable) conversations only with authorization.
    s.expect_clause(&train("u1", model, "pseudonymized"), "consent_missing", "aimate.training");
    s.expect_clause(&train("u2", model, "pseudonymized"), "consent_given", "aimate.training");
    // Training data is the interaction content, not device identifiers.
    let ids = r#"{"subject":"u2","purpose":"ai_training.model_training","categories":["device.identifier"],"deidentification":"anonymized"}"#;
    s.expect_clause(ids, "category_not_permitted", "aimate.training");
}

/// §3.3(3) "Under the premise of ensuring data security, we may share de-identified
/// data with academic research institutions to promote academic research and public
/// interest."
#[test]
fn research_institutions_get_only_deidentified_data() {
    let s = aimate();
    let share = |deid: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"research.academic","action":"share","categories":["behavior.log"],"recipient":{{"kind":"third_party","name":"research_institution"}},"deidentification":"{deid}"}}"#
        )
    };
    s.expect_clause(&share("pseudonymized"), "deidentified_exempt", "aimate.research");
    s.expect_clause(&share("anonymized"), "deidentified_exempt", "aimate.research");
    s.expect_clause(&share("none"), "deidentification_required", "aimate.research");
    // Research institutions only, not any third party.
    let other = r#"{"subject":"u1","purpose":"research.academic","action":"share","categories":["behavior.log"],"recipient":{"kind":"third_party"},"deidentification":"anonymized"}"#;
    s.expect_clause(other, "recipient_not_permitted", "aimate.research");
    // Never payment details, however de-identified.
    let money = r#"{"subject":"u1","purpose":"research.academic","action":"share","categories":["financial.account"],"recipient":{"kind":"third_party","name":"research_institution"},"deidentification":"anonymized"}"#;
    s.expect_clause(money, "category_not_permitted", "aimate.research");
}

/// §3.5 "Service platforms or service providers: Such as third-party payment
/// institutions, cloud computing service providers."
#[test]
fn cloud_providers_host_data_as_processors() {
    let s = aimate();
    let store = |recipient: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"service.core","action":"store","categories":["content.chat"],"recipient":{recipient}}}"#
        )
    };
    s.expect_clause(&store(r#"{"kind":"processor","name":"cloud"}"#), "legal_basis", "aimate.core");
    // Conversations go to no other processor, nor to an independent third party.
    s.expect_clause(&store(r#"{"kind":"processor"}"#), "recipient_not_permitted", "aimate.core");
    // An independent third party only with the subject's consent (§3.6(1)).
    s.expect_clause(&store(r#"{"kind":"third_party"}"#), "consent_missing", "aimate.core");
    // Hosting is not sharing: handing the cloud provider the data to share takes the
    // subject's consent too.
    let share = r#"{"subject":"u1","purpose":"service.core","action":"share","categories":["content.chat"],"recipient":{"kind":"processor","name":"cloud"}}"#;
    s.expect_clause(share, "consent_missing", "aimate.core");
}

/// §3.4 "you may need to provide sensitive information such as name, contact
/// information, address, or bank account number. Only with your explicit consent
/// will we share such information with third parties".
#[test]
fn marketing_data_is_shared_only_with_explicit_consent() {
    let s = aimate().events(
        r#"
        {"type":"grant","subject":"exp","purposes":["marketing.campaigns"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"sep","purposes":["marketing.campaigns"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        "#,
    );
    let share = |subject: &str, category: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"marketing.campaigns","action":"share","categories":["{category}"],"recipient":{{"kind":"third_party"}}}}"#
        )
    };
    let collect = |subject: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"marketing.campaigns","action":"collect","categories":["contact.address"]}}"#
        )
    };
    s.expect_clause(&collect("nobody"), "consent_missing", "aimate.marketing");
    s.expect_clause(&collect("exp"), "consent_given", "aimate.marketing");
    // A bank account number is sensitive: even collecting it needs separate consent.
    let bank = |subject: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"marketing.campaigns","action":"collect","categories":["financial.account"]}}"#
        )
    };
    s.expect_clause(&bank("exp"), "separate_consent_required", "aimate.marketing");
    s.expect_clause(&bank("sep"), "consent_given", "aimate.marketing");
    // Handing it to a partner, a bank account above all, needs a separate consent.
    s.expect_clause(&share("exp", "contact.phone"), "separate_consent_required", "aimate.marketing");
    s.expect_clause(&share("sep", "contact.phone"), "consent_given", "aimate.marketing");
    s.expect_clause(&share("sep", "financial.account"), "consent_given", "aimate.marketing");
}

/// §8.1 "without your explicit consent, we will not reduce the rights you should
/// enjoy under the currently effective policy." §8.3 "If you continue to use our
/// services, it is deemed that you accept the revised policy."
#[test]
fn continued_use_accepts_a_revision_but_explicit_consents_are_renewed() {
    let s = aimate().events(
        r#"
        {"type":"grant","subject":"old","purposes":["advertising"],"level":"explicit","at":"2025-06-01T00:00:00Z","policy_version":"0.9"}
        {"type":"grant","subject":"old","purposes":["personalization"],"level":"implied","at":"2025-06-01T00:00:00Z","policy_version":"0.9"}
        {"type":"grant","subject":"new","purposes":["advertising"],"level":"explicit","at":"2026-01-02T00:00:00Z","policy_version":"1.0"}
        "#,
    );
    let ads = |subject: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"advertising.personalized","categories":["behavior.preferences"]}}"#
        )
    };
    s.expect_clause(&ads("old"), "reconsent_required", "aimate.advertising");
    s.expect_clause(&ads("new"), "consent_given", "aimate.advertising");
    // Acceptance by continued use carries over to the revision.
    let rec = r#"{"subject":"old","purpose":"personalization.recommendation","categories":["behavior.preferences"]}"#;
    s.expect_clause(rec, "consent_given", "aimate.recommendation");
}

/// §3.7(2) "We may publicly disclose your personal information when required by
/// laws, legal procedures, litigation, or mandatory requirements of government
/// authorities."
#[test]
fn authorities_get_data_only_as_required_by_law() {
    let s = aimate();
    let give = |recipient: &str, action: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"compliance.authority_request","action":"{action}","categories":["account.username","content.chat"],"recipient":{{"kind":"{recipient}"}}}}"#
        )
    };
    s.expect_clause(&give("authority", "share"), "legal_basis", "aimate.compliance.authority");
    s.expect_clause(&give("public", "disclose"), "legal_basis", "aimate.compliance.authority");
    // Not to a private party, and not used for anything else under that heading.
    s.expect_clause(&give("third_party", "share"), "recipient_not_permitted", "aimate.compliance.authority");
    s.expect_clause(&give("authority", "use"), "action_not_permitted", "aimate.compliance.authority");
}

/// §1.1.2 "we will process the content generated during your interaction (such as
/// chat text, text converted from voice input). This information is the core element
/// of providing the service".
#[test]
fn chat_needs_no_consent_but_only_text_not_voiceprints() {
    let s = aimate();
    let chat = r#"{"subject":"u1","purpose":"service.core","action":"collect","categories":["content.chat","content.generated"]}"#;
    s.expect_clause(chat, "legal_basis", "aimate.core");
    let voice = r#"{"subject":"u1","purpose":"service.core","action":"collect","categories":["biometric.voice"]}"#;
    s.expect_clause(voice, "category_not_permitted", "aimate.core");
}

/// §1.3 "To protect your account security ... we may collect ... approximate location
/// information (based on IP address)" and §3.3(1) "we may share necessary device
/// information, account information, and log information with partners (such as risk
/// control service providers)."
#[test]
fn risk_control_gets_device_account_and_log_data_but_no_precise_location() {
    let s = aimate();
    let share = |category: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"security.account_protection","action":"share","categories":["{category}"],"recipient":{{"kind":"processor","name":"risk_control"}}}}"#
        )
    };
    s.expect_clause(&share("device.identifier"), "legal_basis", "aimate.security");
    s.expect_clause(&share("location.approximate"), "legal_basis", "aimate.security");
    s.expect_clause(&share("location.precise"), "category_not_permitted", "aimate.security");
    s.expect_clause(&share("account.credentials"), "category_not_permitted", "aimate.security");
    // Risk control is for account protection only.
    let ads = r#"{"subject":"u1","purpose":"security.operations","action":"share","categories":["device.info"],"recipient":{"kind":"processor","name":"risk_control"},"deidentification":"anonymized"}"#;
    s.expect_clause(ads, "recipient_not_permitted", "aimate.operations");
}

/// The seed describes no real-name or age verification, no semantic profiling, no
/// user portraits as a purpose of their own: such purposes are denied by default,
/// while the purposes it names next to them are allowed.
#[test]
fn purposes_the_policy_never_names_are_denied_by_default() {
    let s = aimate().events(r#"{"type":"subject","subject":"u1"}"#);
    for purpose in [
        "account.identity_verification",
        "personalization.semantic_insights",
        "profiling.user_portrait",
        "analytics.feedback",
    ] {
        let request = format!(
            r#"{{"subject":"u1","purpose":"{purpose}","categories":["behavior.log"],"deidentification":"anonymized"}}"#
        );
        let outcome = s.expect(&request, "no_rule");
        assert_eq!(outcome.clause, None, "{purpose} has no rule");
    }
    let rec = r#"{"subject":"u1","purpose":"personalization.recommendation","categories":["behavior.log"]}"#;
    s.expect_clause(rec, "consent_given", "aimate.recommendation");
    let stats =
        r#"{"subject":"u1","purpose":"analytics.usage","categories":["behavior.log"],"deidentification":"anonymized"}"#;
    s.expect_clause(stats, "deidentified_exempt", "aimate.analytics");
}

/// The policy file loads, and its only warning is the intended one: §3.4 asks
/// "explicit consent" for marketing data that includes a bank account number, which
/// the guard escalates to separate consent for that category alone.
#[test]
fn policy_loads_with_only_the_intended_sensitive_data_warning() {
    let s = aimate().events(
        r#"{"type":"grant","subject":"u1","purposes":["marketing"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#,
    );
    let warnings: Vec<String> = s.guard().policy().warnings().iter().map(ToString::to_string).collect();
    assert!(warnings.iter().all(|w| w.contains("financial.account")), "unexpected warnings: {warnings:#?}");
    let bank =
        r#"{"subject":"u1","purpose":"marketing.campaigns","action":"collect","categories":["financial.account"]}"#;
    s.expect_clause(bank, "separate_consent_required", "aimate.marketing");
    let phone = r#"{"subject":"u1","purpose":"marketing.campaigns","action":"collect","categories":["contact.phone"]}"#;
    s.expect_clause(phone, "consent_given", "aimate.marketing");
}

/// §3.6(2) "In the event of mergers, acquisitions, or asset transfers, if personal
/// information is involved in the transfer, we will require the new company or
/// organization holding your personal information to continue to be bound by this policy."
#[test]
fn a_merger_transfers_data_to_the_successor_and_nothing_else() {
    let s = aimate();
    let hand_over = |action: &str, recipient: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"service.business_transfer","action":"{action}","categories":["contact.phone","content.generated"],"recipient":{{"kind":"{recipient}"}}}}"#
        )
    };
    s.expect_clause(&hand_over("transfer", "third_party"), "legal_basis", "aimate.merger");
    s.expect_clause(&hand_over("transfer", "affiliate"), "legal_basis", "aimate.merger");
    s.expect_clause(&hand_over("share", "third_party"), "action_not_permitted", "aimate.merger");
    s.expect_clause(&hand_over("transfer", "public"), "recipient_not_permitted", "aimate.merger");
    // A successor abroad: §4.2 "obtain your separate authorization and consent",
    // naming the region.
    let abroad = |subject: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"service.business_transfer","action":"transfer","categories":["contact.phone"],"recipient":{{"kind":"third_party"}},"region":"SG"}}"#
        )
    };
    let s = s.events(
        r#"{"type":"grant","subject":"sg","purposes":["service.business_transfer"],"level":"separate","at":"2026-01-02T00:00:00Z","scope":{"regions":["SG"]}}"#,
    );
    s.expect_clause(&abroad("u1"), "separate_consent_required", "aimate.merger");
    s.expect_clause(&abroad("sg"), "legal_basis", "aimate.merger");
}

/// §2.1(1) "Through security authentication Cookies or anonymous identifiers, we can
/// confirm your login status, prevent risks such as account theft and fraud".
#[test]
fn security_cookies_protect_the_account_without_consent() {
    let s = aimate();
    s.expect_clause(
        r#"{"subject":"u1","purpose":"security.account_protection","categories":["tracking.cookie","device.identifier"]}"#,
        "legal_basis",
        "aimate.security",
    );
    // The same cookies for advertising are another matter.
    let ads = r#"{"subject":"u1","purpose":"advertising.personalized","categories":["tracking.cookie"]}"#;
    assert!(!s.check(ads).allowed);
}

/// §3.6(1) "Transfer with explicit consent: After obtaining your explicit consent, we
/// will transfer your personal information to other parties"; §3.7(1) "We will only
/// publicly disclose your personal information ... After obtaining your explicit
/// consent". The service itself stays on the contract; a transfer or a disclosure is
/// decided on the subject's consent (separate for third parties and the public, PIPL
/// art. 23 and 25), and the decision names consent as the basis.
#[test]
fn transfer_and_disclosure_need_the_subjects_consent() {
    let s = aimate().events(
        r#"
        {"type":"grant","subject":"exp","purposes":["service.core"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"grant","subject":"sep","purposes":["service.core"],"level":"separate","at":"2026-01-02T00:00:00Z"}
        "#,
    );
    let ask = |subject: &str, action: &str, kind: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"service.core","action":"{action}","categories":["content.chat"],"recipient":{{"kind":"{kind}"}}}}"#
        )
    };
    let cases = [
        // subject, action, recipient, code
        ("nobody", "transfer", "third_party", "consent_missing"),
        ("exp", "transfer", "third_party", "separate_consent_required"),
        ("sep", "transfer", "third_party", "consent_given"),
        ("nobody", "disclose", "public", "consent_missing"),
        ("exp", "disclose", "public", "separate_consent_required"),
        ("sep", "disclose", "public", "consent_given"),
        // The contract covers the service itself, consent or not.
        ("nobody", "use", "first_party", "legal_basis"),
    ];
    for (subject, action, kind, code) in cases {
        let out = s.expect_clause(&ask(subject, action, kind), code, "aimate.core");
        let basis = match code {
            "consent_given" => Some("consent"),
            "legal_basis" => Some("contract"),
            _ => None,
        };
        assert_eq!(out.basis.as_deref(), basis, "{subject} {action} {kind}");
    }
}

/// §3.8 "in the following circumstances ... we may share, transfer, or publicly
/// disclose your personal information without obtaining your authorized consent: (1)
/// Directly related to national security ... (2) ... public security, public health
/// ... (3) ... criminal investigation ... (4) For protecting the life, property". One
/// purpose, lawful on any of these bases; the request names the one it relies on and
/// the decision names it back; a basis the clause does not list is refused.
#[test]
fn authority_requests_name_the_exemption_they_rely_on() {
    let s = aimate();
    let ask = |basis: Option<&str>| {
        let basis = basis.map_or_else(String::new, |b| format!(r#","basis":"{b}""#));
        format!(
            r#"{{"subject":"u1","purpose":"compliance.authority_request","action":"share","categories":["content.chat"],"recipient":{{"kind":"authority"}}{basis}}}"#
        )
    };
    let cases = [
        // basis named in the request, code, basis named in the decision
        (None, "legal_basis", Some("legal_obligation")),
        (Some("legal_obligation"), "legal_basis", Some("legal_obligation")),
        (Some("national_security"), "legal_basis", Some("national_security")),
        (Some("public_interest"), "legal_basis", Some("public_interest")),
        (Some("criminal_justice"), "legal_basis", Some("criminal_justice")),
        (Some("vital_interest"), "legal_basis", Some("vital_interest")),
        (Some("contract"), "basis_not_permitted", None),
        (Some("consent"), "basis_not_permitted", None),
        (Some("news_reporting"), "basis_not_permitted", None),
    ];
    for (named, code, decided) in cases {
        let out = s.expect_clause(&ask(named), code, "aimate.compliance.authority");
        assert_eq!(out.basis.as_deref(), decided, "{named:?}");
    }
}

/// §3.5 "Hardware/software/system service providers: With your authorization, we may
/// share necessary information to jointly provide services or optimize the
/// experience": a declared recipient of the core service, on the subject's consent
/// (separate, as it is a third party).
#[test]
fn system_providers_receive_data_only_with_authorization() {
    let s = aimate().events(
        r#"{"type":"grant","subject":"sep","purposes":["service.core"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#,
    );
    let share = |subject: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"service.core","action":"share","categories":["content.chat"],"recipient":{{"kind":"third_party","name":"system_provider"}}}}"#
        )
    };
    s.expect_clause(&share("nobody"), "consent_missing", "aimate.core");
    let out = s.expect_clause(&share("sep"), "consent_given", "aimate.core");
    assert_eq!(out.basis.as_deref(), Some("consent"));
    // For the core service only.
    let elsewhere = r#"{"subject":"sep","purpose":"service.payment","action":"share","categories":["financial.transaction"],"recipient":{"kind":"third_party","name":"system_provider"}}"#;
    s.expect(elsewhere, "recipient_not_permitted");
}

/// §1.2.1 "In order to provide you with an interactive experience and content
/// recommendations that better suit your preferences, we may collect and use your
/// usage behavior data": consent implied by using the service, so deemed only for a
/// subject the service knows; an id it has never seen gets no recommendations.
#[test]
fn recommendations_are_deemed_only_for_users_of_the_service() {
    let s = aimate().events(r#"{"type":"subject","subject":"u1","birth_date":"1990-01-01"}"#);
    let rec = |subject: &str| {
        format!(
            r#"{{"subject":"{subject}","purpose":"personalization.recommendation","categories":["behavior.preferences"]}}"#
        )
    };
    s.expect_clause(&rec("u1"), "consent_given", "aimate.recommendation");
    s.expect_clause(&rec("stranger"), "consent_missing", "aimate.recommendation");
}

/// §3.3(2) "we may share product usage statistics (such as crash data, performance
/// data) that have been anonymized and de-identified with third-party data statistics
/// and analysis service providers"; §1.5 "third-party statistical platforms (such as
/// Umeng, etc.)": Umeng is one example, not the only provider.
#[test]
fn statistics_providers_besides_umeng_get_anonymized_statistics() {
    let s = aimate();
    let share = |purpose: &str, deid: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"{purpose}","action":"share","categories":["behavior.log"],"recipient":{{"kind":"processor","name":"statistics_provider"}},"deidentification":"{deid}"}}"#
        )
    };
    s.expect_clause(&share("analytics.usage", "anonymized"), "deidentified_exempt", "aimate.analytics");
    s.expect_clause(&share("security.operations", "anonymized"), "legal_basis", "aimate.operations");
    // "Such information cannot identify a specific individual."
    s.expect_clause(&share("analytics.usage", "pseudonymized"), "deidentification_required", "aimate.analytics");
    s.expect_clause(&share("security.operations", "none"), "deidentification_required", "aimate.operations");
    // Statistics, not risk control.
    s.expect_clause(&share("security.account_protection", "anonymized"), "recipient_not_permitted", "aimate.security");
}

/// §4.1 "We will retain your personal information for the period necessary for the
/// purpose of providing you with AIMate services, unless laws require or permit
/// retention for a longer period. After you actively cancel your account or we no
/// longer need your personal information for the purposes stated in this policy, we
/// will delete your personal information or anonymize it": once the purpose is over
/// (an `end` event), its data is expired, except anonymized, and duties of law keep
/// theirs.
#[test]
fn personal_information_is_kept_for_the_period_necessary() {
    let s = aimate().events(
        r#"
        {"type":"subject","subject":"u1","birth_date":"1990-01-01"}
        {"type":"end","subject":"u1","purposes":["service.core","personalization"],"at":"2026-04-01T00:00:00Z"}
        "#,
    );
    let chat = |deid: &str, collected: &str| {
        format!(
            r#"{{"subject":"u1","purpose":"service.core","categories":["content.chat"],"deidentification":"{deid}","collected_at":"{collected}"}}"#
        )
    };
    s.expect_clause(&chat("none", "2026-03-01T00:00:00Z"), "retention_expired", "aimate.core");
    s.expect_clause(&chat("anonymized", "2026-03-01T00:00:00Z"), "legal_basis", "aimate.core");
    s.expect_clause(&chat("none", "2026-05-01T00:00:00Z"), "legal_basis", "aimate.core");
    s.expect_clause(
        r#"{"subject":"u1","purpose":"personalization.recommendation","categories":["behavior.preferences"],"collected_at":"2026-03-01T00:00:00Z"}"#,
        "retention_expired",
        "aimate.recommendation",
    );
    // The end is not a withdrawal: what was collected since is used as before.
    s.expect_clause(
        r#"{"subject":"u1","purpose":"personalization.recommendation","categories":["behavior.preferences"],"collected_at":"2026-05-01T00:00:00Z"}"#,
        "consent_given",
        "aimate.recommendation",
    );
    // "unless laws require or permit retention for a longer period"
    s.expect_clause(
        r#"{"subject":"u1","purpose":"compliance.legal_obligation","action":"store","categories":["content.chat"],"collected_at":"2026-03-01T00:00:00Z"}"#,
        "legal_basis",
        "aimate.compliance.legal",
    );
}

/// §5(5) "After you actively cancel your account, we will ... delete or anonymize your
/// personal information" (issue 27): after cancellation, deleting is allowed under
/// every clause, including those that list no `delete`; nothing else is.
#[test]
fn cancelled_account_data_may_be_deleted() {
    let s = aimate().events(
        r#"
        {"type":"grant","subject":"u1","purposes":["analytics.usage"],"level":"explicit","at":"2026-01-02T00:00:00Z"}
        {"type":"erase","subject":"u1","at":"2026-03-01T00:00:00Z"}
        "#,
    );
    for (request, clause) in [
        (r#""purpose":"service.core","categories":["content.chat"]"#, "aimate.core"),
        (r#""purpose":"analytics.usage","categories":["behavior.log"]"#, "aimate.analytics"),
        (r#""purpose":"account.registration","categories":["account.username"]"#, "aimate.registration"),
        (r#""purpose":"ai_training","categories":["content.chat"]"#, "aimate.training"),
    ] {
        let deleted =
            s.expect_clause(&format!(r#"{{"subject":"u1","action":"delete",{request}}}"#), "deletion_due", clause);
        assert!(deleted.message.contains("subject_erased"), "{}", deleted.message);
        s.expect_clause(&format!(r#"{{"subject":"u1",{request}}}"#), "subject_erased", clause);
    }
}

/// §6.2 "If we find that we have collected a child's personal information without
/// prior verifiable parental consent, we will try to delete the relevant data as soon
/// as possible" (issue 27).
#[test]
fn a_child_without_parental_consent_may_have_its_data_deleted() {
    let s = aimate().events(
        r#"
        {"type":"subject","subject":"child","birth_date":"2014-01-01"}
        {"type":"subject","subject":"child_guardian","birth_date":"2014-01-01"}
        {"type":"grant","subject":"child_guardian","purposes":["service.core"],"level":"separate","by_guardian":true,"at":"2026-01-02T00:00:00Z"}
        "#,
    );
    let req = |who: &str, action: &str| {
        format!(r#"{{"subject":"{who}","action":"{action}","purpose":"service.core","categories":["content.chat"]}}"#)
    };
    let deleted = s.expect_clause(&req("child", "delete"), "deletion_due", "aimate.core");
    assert!(deleted.message.contains("guardian_consent_missing"), "{}", deleted.message);
    s.expect_clause(&req("child", "use"), "guardian_consent_required", "aimate.core");
    // With the parent's consent, a deletion is an ordinary access, decided as before.
    s.expect_clause(&req("child_guardian", "use"), "legal_basis", "aimate.core");
    s.expect_clause(&req("child_guardian", "delete"), "legal_basis", "aimate.core");
}
