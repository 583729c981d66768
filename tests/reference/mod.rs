//! The reference evaluator: a second, deliberately plain reading of how a request is
//! decided, written from `docs/policy-format.md` ("How a request is decided"),
//! `../shared/spec/vocabulary.md`, `../shared/spec/interchange.md` and the settled
//! points of issue 13 (SEMANTICS.md). No bit sets, no plans, no caching: strings,
//! vectors and one direct reading of each rule, so that the fast path can be checked
//! against it (`tests/differential.rs`).
//!
//! Readings chosen where the documents leave room are marked `READING:` and listed in
//! `/work/notes/differential.md`.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: fails loudly"
)]

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use consent_guard::consent::{GrantEvent, Scope};
use consent_guard::policy::{
    ConsentDefault, PolicyDocument, Retention, RuleDocument, SeparateTrigger, Signal, UnknownAge,
};
use consent_guard::{AccessRequest, ConsentEvent, ConsentLevel, DataCategory, LegalBasis, Purpose};

/// What the reference decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The reason code's vocabulary name.
    pub code: &'static str,
    /// Whether the request is allowed.
    pub allowed: bool,
    /// On an allow, the legal basis that applied.
    pub basis: Option<LegalBasis>,
}

fn verdict(code: &'static str) -> Verdict {
    let allowed = matches!(code, "consent_given" | "legal_basis" | "deidentified_exempt" | "deletion_due");
    Verdict { code, allowed, basis: None }
}

/// Issue 27: a `delete` the policy owes is allowed, on the duty to delete.
fn deletion_due() -> Verdict {
    Verdict { basis: Some(LegalBasis::LegalObligation), ..verdict("deletion_due") }
}

/// Whether a guardian's grant, unexpired at `t` and not withdrawn since, covers
/// `leaf` (scope, level and version aside: the guardian has said yes to the purpose).
fn guardian_granted(events: &[ConsentEvent], leaf: &str, t: DateTime<Utc>) -> bool {
    let (grants, _) = live_grants(events, leaf, t);
    grants.iter().any(|g| g.by_guardian && g.expires_at.is_none_or(|e| e > t))
}

// ---------------------------------------------------------------------------------
// Names and trees
// ---------------------------------------------------------------------------------

/// `name` is `ancestor` or lies under it.
pub fn under(name: &str, ancestor: &str) -> bool {
    name == ancestor
        || (name.len() > ancestor.len() && name.starts_with(ancestor) && name[ancestor.len()..].starts_with('.'))
}

/// Every purpose the policy knows, in vocabulary order: the built-ins, then the
/// policy's own in the order written.
pub fn purposes(doc: &PolicyDocument) -> Vec<String> {
    let mut all: Vec<String> = Purpose::builtins().map(|p| p.as_str().to_owned()).collect();
    all.extend(doc.vocabulary.purposes.iter().map(|p| p.as_str().to_owned()));
    all
}

/// Every category the policy knows, in vocabulary order.
pub fn categories(doc: &PolicyDocument) -> Vec<String> {
    let mut all: Vec<String> = DataCategory::builtins().map(|c| c.as_str().to_owned()).collect();
    all.extend(doc.vocabulary.categories.iter().map(|c| c.as_str().to_owned()));
    all
}

/// The categories vocabulary.md marks sensitive.
pub const SENSITIVE_BUILTINS: [&str; 6] = [
    "identity.government_id",
    "biometric.face",
    "biometric.voice",
    "location.precise",
    "financial.account",
    "health.record",
];

/// SEMANTICS 1: a requested category stands for its subtree. It is sensitive if a
/// marked category lies in its subtree, or it lies under a marked category.
pub fn is_sensitive(doc: &PolicyDocument, category: &str) -> bool {
    let marked = SENSITIVE_BUILTINS
        .iter()
        .map(|s| s.to_string())
        .chain(doc.vocabulary.sensitive.iter().map(|c| c.as_str().to_owned()));
    marked.into_iter().any(|m| under(&m, category) || under(category, &m))
}

/// `category` lies in the down-closure of `list`.
fn inside(category: &str, list: &[String]) -> bool {
    list.iter().any(|l| under(category, l))
}

fn names<T: std::fmt::Display>(list: &[T]) -> Vec<String> {
    list.iter().map(|x| x.to_string()).collect()
}

/// The index of the rule governing `purpose`: the rule naming its most specific
/// ancestor-or-self.
pub fn rule_for(doc: &PolicyDocument, purpose: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (index, rule) in doc.rules.iter().enumerate() {
        for named in &rule.purposes {
            if under(purpose, named.as_str()) {
                let depth = named.as_str().len();
                if best.is_none_or(|(_, d)| depth > d) {
                    best = Some((index, depth));
                }
            }
        }
    }
    best.map(|(index, _)| index)
}

/// The leaves of the purpose tree under `purpose` (itself if it is a leaf), in
/// vocabulary order.
pub fn leaves_under(doc: &PolicyDocument, purpose: &str) -> Vec<String> {
    let all = purposes(doc);
    let mut leaves = Vec::new();
    for node in &all {
        if !under(node, purpose) {
            continue;
        }
        let has_child = all.iter().any(|other| other != node && under(other, node));
        if !has_child {
            leaves.push(node.clone());
        }
    }
    if leaves.is_empty() {
        leaves.push(purpose.to_owned());
    }
    leaves
}

// ---------------------------------------------------------------------------------
// Versions and levels
// ---------------------------------------------------------------------------------

/// Dotted numbers compared numerically, a leading `v` allowed, `-` like `.`.
pub fn version(text: &str) -> Option<Vec<u64>> {
    let body = text.strip_prefix('v').unwrap_or(text);
    let mut parts = Vec::new();
    for segment in body.split(['.', '-']) {
        parts.push(segment.parse::<u64>().ok()?);
    }
    if parts.len() > 4 {
        return None;
    }
    while parts.len() < 4 {
        parts.push(0);
    }
    Some(parts)
}

fn level_rank(level: ConsentLevel) -> u8 {
    match level.as_str() {
        "implied" => 0,
        "explicit" => 1,
        _ => 2,
    }
}

fn deid_rank(text: &str) -> u8 {
    match text {
        "none" => 0,
        "pseudonymized" => 1,
        _ => 2,
    }
}

// ---------------------------------------------------------------------------------
// Which events the guard must accept
// ---------------------------------------------------------------------------------

/// Whether `record` must accept the event (the reference's reading of the event rules:
/// known names, consistent fields, SEMANTICS 2 and 5).
pub fn accepts(doc: &PolicyDocument, event: &ConsentEvent) -> bool {
    if event.subject().is_empty() {
        return false;
    }
    let known_purposes = purposes(doc);
    let known_categories = categories(doc);
    let purposes_ok =
        |list: &[Purpose]| !list.is_empty() && list.iter().all(|p| known_purposes.iter().any(|k| k == p.as_str()));
    match event {
        ConsentEvent::Subject(s) => !(s.birth_date.is_some() && s.age.is_some()),
        ConsentEvent::Grant(g) => {
            if !purposes_ok(&g.purposes) {
                return false;
            }
            if let Some(text) = &g.policy_version {
                let (Some(v), Some(current)) = (version(text), version(&doc.policy.version)) else { return false };
                if v > current {
                    return false;
                }
            }
            if g.expires_at.is_some_and(|e| e <= g.at) {
                return false;
            }
            if let Some(scope) = &g.scope {
                // Issue 29: a list written empty is refused (an absent key limits
                // nothing).
                if scope.empty_list().is_some() {
                    return false;
                }
                if scope.categories.iter().any(|c| !known_categories.iter().any(|k| k == c.as_str())) {
                    return false;
                }
            }
            true
        }
        ConsentEvent::Withdraw(w) => purposes_ok(&w.purposes),
        ConsentEvent::End(e) => purposes_ok(&e.purposes),
        ConsentEvent::Erase(_) => true,
        // Kinds of events added later: the reference knows no rule for them.
        _ => false,
    }
}

// ---------------------------------------------------------------------------------
// Age facts (SEMANTICS 2)
// ---------------------------------------------------------------------------------

/// Subtracts whole years from a date; 29 February into a non-leap year gives
/// 28 February (the youngest possible birth date).
fn minus_years(date: NaiveDate, years: i32) -> Option<NaiveDate> {
    let year = date.year().checked_sub(years)?;
    NaiveDate::from_ymd_opt(year, date.month(), date.day()).or_else(|| NaiveDate::from_ymd_opt(year, 2, 28))
}

/// The birthday `birth + years` at 00:00 UTC; 29 February into a non-leap year gives
/// 1 March (in doubt, younger).
fn coming_of_age(birth: NaiveDate, years: i32) -> Option<DateTime<Utc>> {
    let year = birth.year().checked_add(years)?;
    let date =
        NaiveDate::from_ymd_opt(year, birth.month(), birth.day()).or_else(|| NaiveDate::from_ymd_opt(year, 3, 1))?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

/// Which age rule the policy has: (age, not served?).
fn age_rule(doc: &PolicyDocument) -> Option<(u8, bool)> {
    let minors = doc.minors.as_ref()?;
    match (minors.guardian_consent_under, minors.not_served_under) {
        (Some(age), _) => Some((age, false)),
        (None, Some(age)) => Some((age, true)),
        (None, None) => None,
    }
}

/// Whether the subject is under `years` at `t`: the latest coming-of-age instant of
/// every age statement (the youngest wins); an erased subject always is; with no
/// statement, as `unknown_age` says.
/// READING: every age statement of the subject counts, whatever its time (as every
/// erase does); statements carry their own `at`.
fn under_years(doc: &PolicyDocument, events: &[ConsentEvent], t: DateTime<Utc>, years: u8) -> bool {
    let Some(minors) = doc.minors.as_ref() else { return false };
    if events.iter().any(|e| matches!(e, ConsentEvent::Erase(_))) {
        return true;
    }
    let mut latest: Option<DateTime<Utc>> = None;
    for event in events {
        let ConsentEvent::Subject(s) = event else { continue };
        let birth = match (s.birth_date, s.age) {
            (Some(date), None) => Some(date),
            (None, Some(age)) => {
                let stated = s.at.expect("the differential test always states `at`");
                minus_years(stated.date_naive(), i32::from(age))
            }
            _ => None,
        };
        if let Some(instant) = birth.and_then(|b| coming_of_age(b, i32::from(years))) {
            latest = Some(latest.map_or(instant, |l| l.max(instant)));
        }
    }
    match latest {
        None => minors.unknown_age == Some(UnknownAge::Minor),
        Some(instant) => t < instant,
    }
}

/// Whether the subject is a minor at `t` under the policy's age rule.
pub fn is_minor(doc: &PolicyDocument, events: &[ConsentEvent], t: DateTime<Utc>) -> bool {
    age_rule(doc).is_some_and(|(years, _)| under_years(doc, events, t, years))
}

/// Whether the subject is a minor young enough that all its data is sensitive
/// (`sensitive_under`, the minors' age when absent).
pub fn is_young(doc: &PolicyDocument, events: &[ConsentEvent], t: DateTime<Utc>) -> bool {
    let Some((years, _)) = age_rule(doc) else { return false };
    let sensitive = doc.minors.as_ref().and_then(|m| m.sensitive_under).unwrap_or(years);
    is_minor(doc, events, t) && under_years(doc, events, t, sensitive)
}

// ---------------------------------------------------------------------------------
// The decision
// ---------------------------------------------------------------------------------

#[derive(Clone)]
struct Context<'a> {
    doc: &'a PolicyDocument,
    rule: &'a RuleDocument,
    request: &'a AccessRequest<'a>,
    region: String,
    /// The request goes to a `transfer_regions` region.
    transfer: bool,
    /// A minor under a policy that asks guardian consent.
    minor_guardian: bool,
    /// A minor under `sensitive_under` (the `minor` trigger).
    young: bool,
    /// The rule's level for this request: `anonymized_level` for anonymized data.
    level: ConsentLevel,
    t: DateTime<Utc>,
}

/// Decides `request` at `t` against the policy document and the events recorded for
/// the request's subject (recorded order, already stamped).
pub fn decide(
    doc: &PolicyDocument,
    all_events: &[ConsentEvent],
    request: &AccessRequest<'_>,
    t: DateTime<Utc>,
) -> Verdict {
    decide_state(doc, all_events, request, t, true)
}

/// As [`decide`], for a subject whose state the guard may be unable to read
/// (`readable` false: its events quarantined).
pub fn decide_state(
    doc: &PolicyDocument,
    all_events: &[ConsentEvent],
    request: &AccessRequest<'_>,
    t: DateTime<Utc>,
    readable: bool,
) -> Verdict {
    let mut events: Vec<ConsentEvent> =
        all_events.iter().filter(|e| e.subject() == request.subject.as_ref()).cloned().collect();
    let purpose = request.purpose.as_str();

    // The rule, and SEMANTICS 3: every node under the purpose has the same rule.
    let Some(rule_index) = rule_for(doc, purpose) else { return verdict("no_rule") };
    for node in purposes(doc) {
        if node != purpose && under(&node, purpose) && rule_for(doc, &node) != Some(rule_index) {
            return verdict("purpose_too_broad");
        }
    }
    let rule = &doc.rules[rule_index];
    let is_consent = rule.basis == LegalBasis::Consent;

    // `[rule.with_consent]`: actions and recipients only the subject's consent adds.
    let with_consent = rule.with_consent.as_ref().filter(|_| !is_consent);
    let actions: Vec<String> = match &rule.actions {
        Some(list) => list.iter().map(|a| a.as_str().to_owned()).collect(),
        None => vec!["collect".into(), "store".into(), "use".into(), "delete".into()],
    };
    let consent_actions: Vec<String> = with_consent.map_or_else(Vec::new, |w| match &w.actions {
        Some(list) => list.iter().map(|a| a.as_str().to_owned()).collect(),
        None => vec!["share".into()],
    });
    let listed: Vec<String> = rule.recipients.clone().unwrap_or_else(|| vec!["first_party".into()]);
    let consent_listed: Vec<String> =
        with_consent.map_or_else(Vec::new, |w| w.recipients.clone().unwrap_or_else(|| listed.clone()));
    let kind = request.recipient.kind.as_str();
    let name = request.recipient.name.as_deref();
    let lists = |list: &[String]| list.iter().any(|l| l == kind) || name.is_some_and(|n| list.iter().any(|l| l == n));
    let rule_action = actions.iter().any(|a| a == request.action.as_str());
    let rule_recipient = lists(&listed);
    // A request only `with_consent` permits is decided on the subject's consent.
    let consent_action = consent_actions.iter().any(|a| a == request.action.as_str());
    let consent_recipient = lists(&consent_listed);
    let consent_only = with_consent.is_some()
        && !(rule_action && rule_recipient)
        && (rule_action || consent_action)
        && (rule_recipient || consent_recipient);

    // The basis decided on: the one the request names, else consent for what only
    // consent permits, else the rule's first.
    let default_basis = if consent_only { LegalBasis::Consent } else { rule.basis.first() };
    let applied = request.basis.unwrap_or(default_basis);

    let law = matches!(
        applied.as_str(),
        "legal_obligation" | "national_security" | "public_interest" | "criminal_justice" | "vital_interest"
    );
    // An unreadable state: only a compliance duty on a non-consent basis goes on, as
    // for a subject the guard does not know, and only where the subject's age cannot
    // matter (no age rule, or a basis the law imposes); issue 29.
    if !readable {
        let compliance = under(purpose, "compliance") && applied != LegalBasis::Consent;
        if !compliance || (age_rule(doc).is_some() && !law) {
            return verdict("consent_state_unavailable");
        }
        events.clear();
    }

    // 1. Erasure at or before t; compliance purposes on a non-consent basis survive it
    // (not for what only consent permits).
    let erased = events.iter().any(|e| matches!(e, ConsentEvent::Erase(x) if x.at <= t));
    let survives_erasure = under(purpose, "compliance") && applied != LegalBasis::Consent;
    // Issue 27: deletion is not access; a `delete` the policy owes is allowed, for
    // the reasons below in this order.
    let delete = request.action.as_str() == "delete";
    if erased && !survives_erasure {
        return if delete { deletion_due() } else { verdict("subject_erased") };
    }

    // 2. Minors not served.
    let minor = is_minor(doc, &events, t);
    let not_served = age_rule(doc).is_some_and(|(_, not_served)| not_served);
    if not_served && minor && !law {
        return if delete { deletion_due() } else { verdict("minor_not_served") };
    }
    // A minor whose guardian has not consented to (every leaf of) the purpose.
    if delete
        && minor
        && !not_served
        && !law
        && leaves_under(doc, purpose).iter().any(|leaf| !guardian_granted(&events, leaf, t))
    {
        return deletion_due();
    }
    // `[rights] withdrawal_deletes`: a withdrawal of the consent the basis rests on,
    // not followed by a grant, for some leaf.
    let withdrawal_deletes = doc.rights.as_ref().is_some_and(|r| r.withdrawal_deletes == Some(true));
    if delete
        && withdrawal_deletes
        && applied == LegalBasis::Consent
        && leaves_under(doc, purpose).iter().any(|leaf| {
            let (grants, withdrawn) = live_grants(&events, leaf, t);
            withdrawn && grants.is_empty()
        })
    {
        return deletion_due();
    }

    // 3. A basis the request names must be one the rule lists (consent, for what only
    // consent permits).
    if let Some(named) = request.basis {
        let listed = if consent_only { named == LegalBasis::Consent } else { rule.basis.contains(named) };
        if !listed {
            return verdict("basis_not_permitted");
        }
    }

    // 3. Action.
    if !rule_action && !consent_action {
        return verdict("action_not_permitted");
    }

    // 4. Categories.
    let rule_categories = names(&rule.categories);
    if request.categories.iter().any(|c| !inside(c.as_str(), &rule_categories)) {
        return verdict("category_not_permitted");
    }

    // 5. Recipient.
    if !rule_recipient && !consent_recipient {
        return verdict("recipient_not_permitted");
    }
    let declared = name.and_then(|n| doc.recipients.get(n));
    if let Some(declared) = declared {
        if let Some(list) = &declared.purposes {
            if !inside(purpose, &names(list)) {
                return verdict("recipient_not_permitted");
            }
        }
        if let Some(list) = &declared.categories {
            let list = names(list);
            if request.categories.iter().any(|c| !inside(c.as_str(), &list)) {
                return verdict("recipient_not_permitted");
            }
        }
    }

    // 6. Region.
    let region = request.region.map_or_else(|| doc.policy.home_region.as_str().to_owned(), |r| r.as_str().to_owned());
    let storage: Vec<String> = match &doc.policy.storage_regions {
        Some(list) => names(list),
        None => vec![doc.policy.home_region.as_str().to_owned()],
    };
    let regions = match &rule.regions {
        Some(list) => names(list),
        None => storage.clone(),
    };
    let transfer_list = rule.transfer_regions.clone().unwrap_or_default();
    let regular = regions.contains(&region);
    let transfer = !regular && transfer_list.iter().any(|r| r == "*" || *r == region);
    if !regular && !transfer {
        return verdict("region_not_permitted");
    }

    // 7. De-identification.
    let mut minimum = deid_rank(rule.deidentification.map_or("none", |d| d.as_str()));
    if applied == LegalBasis::ResearchDeidentified {
        minimum = minimum.max(1);
    }
    if let Some(declared) = declared {
        minimum = minimum.max(deid_rank(declared.deidentification.map_or("none", |d| d.as_str())));
    }
    let deid = deid_rank(request.deidentification.as_str());
    if deid < minimum {
        return verdict("deidentification_required");
    }

    let minor_guardian = minor && !not_served;
    let anonymized = request.deidentification.as_str() == "anonymized";
    let rule_level = match with_consent {
        Some(w) if consent_only => w.level,
        _ => rule.level.unwrap_or(ConsentLevel::Separate),
    };
    let level = match rule.anonymized_level {
        Some(lower) if anonymized => lower,
        _ => rule_level,
    };
    let young = is_young(doc, &events, t);
    let context = Context { doc, rule, request, region, transfer, minor_guardian, young, level, t };
    let leaves = leaves_under(doc, purpose);

    // 8. Retention.
    // Past retention (and after the end of a purpose, below), a `delete` the rule
    // reaches is owed.
    if let Some(retention) = rule.retention {
        if request.action.as_str() != "collect" {
            let expired = match retention {
                Retention::Session => {
                    let session = request.session.as_deref().filter(|s| !s.is_empty());
                    let collected = request.collected_session.as_deref().filter(|s| !s.is_empty());
                    match (session, collected) {
                        (Some(a), Some(b)) => a != b,
                        _ => true,
                    }
                }
                Retention::Hours(n) | Retention::Days(n) | Retention::Years(n) => {
                    let hours: i64 = match retention {
                        Retention::Hours(_) => i64::from(n),
                        Retention::Days(_) => i64::from(n) * 24,
                        _ => i64::from(n) * 365 * 24,
                    };
                    match request.collected_at {
                        None => true,
                        Some(collected) if collected > t => true,
                        Some(collected) => (t - collected) > chrono::Duration::hours(hours),
                    }
                }
            };
            // The limit yields to anonymization, or to a separate grant of the subject.
            let yields = (rule.retention_until_anonymized == Some(true) && anonymized)
                || (rule.separate_consent_lifts_retention == Some(true)
                    && leaves.iter().all(|leaf| separately_granted(&context, &events, leaf)));
            if expired && !yields {
                return if delete { deletion_due() } else { verdict("retention_expired") };
            }
        }
    }

    // 8b. Purposes that ended (issue 29): data collected at or before an `end` that
    // covers the purpose (names it, an ancestor or a purpose under it) is expired once
    // `retention_after_end` has run; a collection time missing or later than t is not
    // known to be after the end. Anonymized data outlives it under
    // `retention_until_anonymized`.
    if request.action.as_str() != "collect" {
        let grace = rule.retention_after_end.map_or(0, |r| match r {
            Retention::Hours(n) => i64::from(n),
            Retention::Days(n) => i64::from(n) * 24,
            Retention::Years(n) => i64::from(n) * 365 * 24,
            Retention::Session => 0,
        });
        let collected = request.collected_at.filter(|c| *c <= t);
        let ended = events.iter().any(|e| match e {
            ConsentEvent::End(end) => {
                end.at <= t
                    && end.purposes.iter().any(|p| under(purpose, p.as_str()) || under(p.as_str(), purpose))
                    && end.at + chrono::Duration::hours(grace) <= t
                    && collected.is_none_or(|c| c <= end.at)
            }
            _ => false,
        });
        let yields = rule.retention_until_anonymized == Some(true) && anonymized;
        if ended && !yields {
            return if delete { deletion_due() } else { verdict("retention_expired") };
        }
    }

    // 9. Opt-out signals.
    let signals = rule.opt_out_signals.clone().unwrap_or_default();
    let signalled = signals.iter().any(|s| match s {
        Signal::Dnt => request.signals.dnt,
        Signal::Gpc => request.signals.gpc,
    });
    if signalled {
        return verdict("opt_out_signal");
    }

    // 10. Basis; an allow names the one that applied.
    let named = |v: Verdict| Verdict { basis: v.allowed.then_some(applied), ..v };
    if applied != LegalBasis::Consent {
        let allow = if applied == LegalBasis::ResearchDeidentified { "deidentified_exempt" } else { "legal_basis" };
        // A minor needs the guardian's grant on every basis but the law's.
        let guardian = minor_guardian && !law;
        return named(required_grant(&context, &events, &leaves, guardian, allow));
    }
    if rule.anonymized_exempt == Some(true) && anonymized {
        if !ANONYMIZED_EXEMPT_TRANSFER_NEEDS_GRANT {
            return named(verdict("deidentified_exempt"));
        }
        return named(required_grant(&context, &events, &leaves, false, "deidentified_exempt"));
    }
    let mut first_allow = None;
    for leaf in &leaves {
        let v = consent_for_leaf(&context, &events, leaf);
        if !v.allowed {
            return v;
        }
        first_allow.get_or_insert(v);
    }
    named(first_allow.unwrap_or_else(|| verdict("consent_missing")))
}

/// Events at or before `t`, sorted by time (equal times in recorded order), that
/// cover `leaf` (name an ancestor-or-self of it).
fn covering<'e>(events: &'e [ConsentEvent], leaf: &str, t: DateTime<Utc>) -> Vec<&'e ConsentEvent> {
    let mut list: Vec<(usize, &ConsentEvent)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| match e {
            ConsentEvent::Grant(g) => g.at <= t && g.purposes.iter().any(|p| under(leaf, p.as_str())),
            ConsentEvent::Withdraw(w) => w.at <= t && w.purposes.iter().any(|p| under(leaf, p.as_str())),
            _ => false,
        })
        .collect();
    list.sort_by_key(|(i, e)| (e.at(), *i));
    list.into_iter().map(|(_, e)| e).collect()
}

/// The grants after the last covering withdrawal, and whether there was one.
fn live_grants<'e>(events: &'e [ConsentEvent], leaf: &str, t: DateTime<Utc>) -> (Vec<&'e GrantEvent>, bool) {
    let list = covering(events, leaf, t);
    let last_withdrawal = list.iter().rposition(|e| matches!(e, ConsentEvent::Withdraw(_)));
    let start = last_withdrawal.map_or(0, |w| w + 1);
    let grants = list[start..]
        .iter()
        .filter_map(|e| match e {
            ConsentEvent::Grant(g) => Some(g),
            _ => None,
        })
        .collect();
    (grants, last_withdrawal.is_some())
}

/// SEMANTICS 6: whether the request lies within a grant's scope.
fn in_scope(context: &Context<'_>, scope: Option<&Scope>) -> bool {
    let Some(scope) = scope else { return true };
    if !scope.categories.is_empty() {
        let list = names(&scope.categories);
        if context.request.categories.iter().any(|c| !inside(c.as_str(), &list)) {
            return false;
        }
    }
    if !scope.regions.is_empty() && !scope.regions.iter().any(|r| r.as_str() == context.region) {
        return false;
    }
    if !scope.recipients.is_empty() {
        let kind = context.request.recipient.kind.as_str();
        let name = context.request.recipient.name.as_deref();
        let by_name =
            name.is_some_and(|n| context.doc.recipients.contains_key(n) && scope.recipients.iter().any(|r| r == n));
        let by_kind = scope.recipients.iter().any(|r| r == kind);
        if !by_name && !by_kind {
            return false;
        }
    }
    true
}

/// A transfer needs a separate grant whose scope names the request's region.
fn transfer_ok(context: &Context<'_>, level: ConsentLevel, scope: Option<&Scope>) -> bool {
    !context.transfer
        || (level_rank(level) == 2 && scope.is_some_and(|s| s.regions.iter().any(|r| r.as_str() == context.region)))
}

/// READING R1 (differential.md): an `anonymized_exempt` allow of a transfer still needs
/// the transfer's separate grant, as the other bases do (`true`), or the exemption
/// reaches transfers too (`false`).
pub const ANONYMIZED_EXEMPT_TRANSFER_NEEDS_GRANT: bool = true;

/// READING R2 (differential.md): the grant a transfer (or a minor's data on a
/// non-consent basis) needs is found by the consent scan of SEMANTICS 9 over the grants
/// covering each leaf, with that grant's own checks: expired (`consent_expired`); out
/// of scope (`separate_consent_required` for a transfer, else
/// `guardian_consent_required`); a transfer and not `separate` with `scope.regions`
/// naming the region (`separate_consent_required`); a guardian needed and the grant
/// not `by_guardian` (`guardian_consent_required`); below the level needed
/// (`separate_consent_required`, or `consent_level_insufficient` when `explicit` is
/// needed). The first good grant after the last withdrawal allows; else the latest such
/// grant's verdict; else `consent_withdrawn` after a covering withdrawal; else
/// `separate_consent_required` for a transfer, `guardian_consent_required` otherwise.
/// With `false`, any failure is `separate_consent_required` and no guardian is asked.
pub const TRANSFER_GRANT_SCAN_CODES: bool = true;

/// READING R8 (differential.md): under `known_subject = true`, a subject is known at
/// the decision time by an event at or before it (`true`: who appeared only later had
/// not used the service then), or by any recorded event (`false`).
pub const KNOWN_BY_EVENTS_UNTIL_DECISION: bool = false;

/// The checks of a grant that a transfer or a minor's data needs (READING R2).
fn required_grant_verdict(
    context: &Context<'_>,
    g: &GrantEvent,
    guardian: bool,
    needed: ConsentLevel,
) -> Option<&'static str> {
    let missing = if context.transfer { "separate_consent_required" } else { "guardian_consent_required" };
    if g.expires_at.is_some_and(|e| e <= context.t) {
        return Some("consent_expired");
    }
    if !in_scope(context, g.scope.as_ref()) {
        return Some(missing);
    }
    if !transfer_ok(context, g.level, g.scope.as_ref()) {
        return Some("separate_consent_required");
    }
    if guardian && !g.by_guardian {
        return Some("guardian_consent_required");
    }
    let needed = if guardian { guardian_level(context.doc, needed) } else { needed };
    if level_rank(g.level) < level_rank(needed) {
        return Some(if level_rank(needed) == 2 || context.transfer {
            "separate_consent_required"
        } else {
            "consent_level_insufficient"
        });
    }
    // The grant is consent to the rule's terms: one older than `changed_in` needs
    // renewal (READING R9).
    if let Some(changed) = context.rule.changed_in.as_deref() {
        let given = g.policy_version.as_deref().unwrap_or(&context.doc.policy.version);
        if version(given) < version(changed) {
            return Some("reconsent_required");
        }
    }
    None
}

/// Allowed without consent (a non-consent basis or an anonymized exemption), except
/// that a transfer needs, for every leaf, a live separate grant naming the region, and
/// a minor's data (`guardian`) a live grant of the guardian: `explicit`, `separate`
/// for a young minor under the `minor` trigger.
fn required_grant(
    context: &Context<'_>,
    events: &[ConsentEvent],
    leaves: &[String],
    guardian: bool,
    allow: &'static str,
) -> Verdict {
    if !context.transfer && !guardian {
        return verdict(allow);
    }
    let minor_trigger = triggers(context.doc).contains(&SeparateTrigger::Minor);
    let needed = if context.transfer || (context.young && minor_trigger) {
        ConsentLevel::Separate
    } else {
        ConsentLevel::Explicit
    };
    let missing = if context.transfer { "separate_consent_required" } else { "guardian_consent_required" };
    for leaf in leaves {
        let (grants, withdrawn) = live_grants(events, leaf, context.t);
        if !TRANSFER_GRANT_SCAN_CODES {
            let good = grants.iter().any(|g| {
                g.expires_at.is_none_or(|e| e > context.t)
                    && in_scope(context, g.scope.as_ref())
                    && transfer_ok(context, g.level, g.scope.as_ref())
            });
            if !good {
                return verdict("separate_consent_required");
            }
            continue;
        }
        let verdicts: Vec<Option<&'static str>> =
            grants.iter().map(|g| required_grant_verdict(context, g, guardian, needed)).collect();
        if verdicts.iter().any(Option::is_none) {
            continue;
        }
        if let Some(Some(code)) = verdicts.last() {
            return verdict(code);
        }
        return verdict(if withdrawn { "consent_withdrawn" } else { missing });
    }
    verdict(allow)
}

/// Whether a separate grant of the subject covers `leaf` (a rule's
/// `separate_consent_lifts_retention`): the consent scan with `separate` needed, no
/// transfer, the guardian's for a minor where the policy asks guardian consent
/// (SEMANTICS 9); deemed consent never is separate.
fn separately_granted(context: &Context<'_>, events: &[ConsentEvent], leaf: &str) -> bool {
    let lifted = Context { transfer: false, ..context.clone() };
    let (grants, _) = live_grants(events, leaf, context.t);
    grants.iter().any(|g| {
        grant_verdict(
            &lifted,
            g.level,
            g.by_guardian,
            g.expires_at,
            g.scope.as_ref(),
            g.policy_version.as_deref(),
            ConsentLevel::Separate,
        )
        .allowed
    })
}

/// `needed`, raised to the policy's `guardian_level` (issue 29: "express consent of
/// parents or other guardians").
fn guardian_level(doc: &PolicyDocument, needed: ConsentLevel) -> ConsentLevel {
    match doc.minors.as_ref().and_then(|m| m.guardian_level) {
        Some(level) if level_rank(level) > level_rank(needed) => level,
        _ => needed,
    }
}

fn triggers(doc: &PolicyDocument) -> Vec<SeparateTrigger> {
    doc.policy.separate_consent_for.clone().unwrap_or_else(|| SeparateTrigger::ALL.to_vec())
}

/// The level the rule needs for this request: its own, escalated to separate by the
/// triggers of `separate_consent_for`.
fn needed_level(context: &Context<'_>) -> ConsentLevel {
    let triggers = triggers(context.doc);
    let storage: Vec<String> = match &context.doc.policy.storage_regions {
        Some(list) => names(list),
        None => vec![context.doc.policy.home_region.as_str().to_owned()],
    };
    let kind = context.request.recipient.kind.as_str();
    let escalated = triggers.iter().any(|t| match t {
        SeparateTrigger::Sensitive => context.request.categories.iter().any(|c| is_sensitive(context.doc, c.as_str())),
        // A minor under `sensitive_under` (the minors' age by default).
        SeparateTrigger::Minor => context.young,
        SeparateTrigger::ThirdParty => kind == "third_party",
        // READING: making data public: a `public` recipient or the `disclose` action.
        SeparateTrigger::Public => kind == "public" || context.request.action.as_str() == "disclose",
        SeparateTrigger::CrossBorder => !storage.contains(&context.region),
    });
    if escalated {
        ConsentLevel::Separate
    } else {
        context.level
    }
}

/// A grant's own checks, in SEMANTICS 9 order.
fn grant_verdict(
    context: &Context<'_>,
    level: ConsentLevel,
    by_guardian: bool,
    expires_at: Option<DateTime<Utc>>,
    scope: Option<&Scope>,
    policy_version: Option<&str>,
    needed: ConsentLevel,
) -> Verdict {
    if expires_at.is_some_and(|e| e <= context.t) {
        return verdict("consent_expired");
    }
    if !in_scope(context, scope) {
        return verdict("consent_missing");
    }
    if !transfer_ok(context, level, scope) {
        return verdict("separate_consent_required");
    }
    if context.minor_guardian && !by_guardian {
        return verdict("guardian_consent_required");
    }
    let needed = if context.minor_guardian { guardian_level(context.doc, needed) } else { needed };
    if level_rank(level) < level_rank(needed) {
        return if level_rank(needed) == 2 {
            verdict("separate_consent_required")
        } else {
            verdict("consent_level_insufficient")
        };
    }
    if let Some(changed) = context.rule.changed_in.as_deref() {
        let given = policy_version.unwrap_or(&context.doc.policy.version);
        if version(given) < version(changed) {
            return verdict("reconsent_required");
        }
    }
    verdict("consent_given")
}

/// The consent step for one leaf purpose (SEMANTICS 9).
fn consent_for_leaf(context: &Context<'_>, events: &[ConsentEvent], leaf: &str) -> Verdict {
    let needed = needed_level(context);
    let opt_out = context.rule.default == Some(ConsentDefault::OptOut);
    let (grants, withdrawn) = live_grants(events, leaf, context.t);
    let verdicts: Vec<Verdict> = grants
        .iter()
        .map(|g| {
            grant_verdict(
                context,
                g.level,
                g.by_guardian,
                g.expires_at,
                g.scope.as_ref(),
                g.policy_version.as_deref(),
                needed,
            )
        })
        // On an opt-out rule only a withdrawal turns consent off: a grant that has
        // expired or does not reach the request leaves the default (never for a
        // transfer, which has no default).
        .filter(|v| !(opt_out && !context.transfer && matches!(v.code, "consent_expired" | "consent_missing")))
        .collect();
    if let Some(allow) = verdicts.iter().find(|v| v.allowed) {
        return *allow;
    }
    if let Some(last) = verdicts.last() {
        return *last;
    }
    if withdrawn {
        return verdict("consent_withdrawn");
    }
    if opt_out {
        // SEMANTICS 8: a transfer never gets deemed consent: as if the rule were
        // opt-in.
        if context.transfer {
            return verdict("consent_missing");
        }
        // `known_subject = true`: only for a subject with some event.
        let known = events.iter().any(|e| !KNOWN_BY_EVENTS_UNTIL_DECISION || e.at().is_some_and(|at| at <= context.t));
        if context.rule.known_subject == Some(true) && !known {
            return verdict("consent_missing");
        }
        // Deemed consent at the rule's level (for this de-identification), never
        // guardian or separate.
        let deemed = if context.level == ConsentLevel::Separate { ConsentLevel::Explicit } else { context.level };
        return grant_verdict(context, deemed, false, None, None, None, needed);
    }
    verdict("consent_missing")
}

// ---------------------------------------------------------------------------------
// Hand-written cases from SEMANTICS.md
// ---------------------------------------------------------------------------------

#[cfg(test)]
mod cases {
    use super::*;
    use consent_guard::{Policy, Region};

    fn doc(toml_text: &str) -> PolicyDocument {
        let document: PolicyDocument = toml::from_str(toml_text).unwrap();
        // Every hand-written policy must be one the crate accepts.
        Policy::compile(document.clone(), "case.toml").unwrap();
        document
    }

    fn events(lines: &[&str]) -> Vec<ConsentEvent> {
        lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn code(d: &PolicyDocument, e: &[ConsentEvent], r: &AccessRequest<'_>, t: &str) -> &'static str {
        decide(d, e, r, at(t)).code
    }

    const BASE: &str = r#"
[policy]
name = "case"
version = "2.0"
home_region = "CN"
storage_regions = ["CN"]

[minors]
guardian_consent_under = 14

[recipients.ad_partner]
kind = "third_party"

[[rule]]
id = "reco"
purposes = ["personalization"]
basis = "consent"
level = "explicit"
default = "opt_out"
categories = ["location", "behavior"]

[[rule]]
id = "train"
purposes = ["ai_training"]
basis = "consent"
level = "separate"
categories = ["behavior"]
recipients = ["first_party", "ad_partner"]
transfer_regions = ["SG"]
changed_in = "2.0"

[[rule]]
id = "train.model"
purposes = ["ai_training.model_training"]
basis = "consent"
level = "separate"
categories = ["behavior"]
"#;

    fn request(purpose: Purpose, categories: &'static [DataCategory]) -> AccessRequest<'static> {
        AccessRequest::new("u1", purpose, categories)
    }

    #[test]
    fn a_parent_category_is_sensitive() {
        let d = doc(BASE);
        assert!(is_sensitive(&d, "location"));
        assert!(is_sensitive(&d, "location.precise"));
        assert!(!is_sensitive(&d, "location.approximate"));
        let r = request(Purpose::PERSONALIZATION_RECOMMENDATION, &[DataCategory::LOCATION]);
        assert_eq!(code(&d, &[], &r, "2026-06-01T00:00:00Z"), "separate_consent_required");
        let r = request(Purpose::PERSONALIZATION_RECOMMENDATION, &[DataCategory::LOCATION_APPROXIMATE]);
        assert_eq!(code(&d, &[], &r, "2026-06-01T00:00:00Z"), "consent_given");
    }

    #[test]
    fn a_purpose_with_differently_governed_children_is_too_broad() {
        let d = doc(BASE);
        let r = request(Purpose::AI_TRAINING, &[DataCategory::BEHAVIOR_LOG]);
        assert_eq!(code(&d, &[], &r, "2026-06-01T00:00:00Z"), "purpose_too_broad");
        let r = request(Purpose::PERSONALIZATION, &[DataCategory::BEHAVIOR_LOG]);
        assert_eq!(code(&d, &[], &r, "2026-06-01T00:00:00Z"), "consent_given");
    }

    #[test]
    fn a_parent_purpose_needs_every_leaf() {
        let d = doc(BASE);
        let e = events(&[
            r#"{"type":"withdraw","subject":"u1","purposes":["personalization.semantic_insights"],"at":"2026-01-01T00:00:00Z"}"#,
        ]);
        let r = request(Purpose::PERSONALIZATION, &[DataCategory::BEHAVIOR_LOG]);
        assert_eq!(code(&d, &e, &r, "2026-06-01T00:00:00Z"), "consent_withdrawn");
        let r = request(Purpose::PERSONALIZATION_RECOMMENDATION, &[DataCategory::BEHAVIOR_LOG]);
        assert_eq!(code(&d, &e, &r, "2026-06-01T00:00:00Z"), "consent_given");
    }

    #[test]
    fn leaves_follow_vocabulary_order() {
        let mut d = doc(BASE);
        d.vocabulary.purposes.push("personalization.recommendation.feed".parse().unwrap());
        assert_eq!(
            leaves_under(&d, "personalization"),
            vec!["personalization.semantic_insights".to_owned(), "personalization.recommendation.feed".to_owned()]
        );
    }

    #[test]
    fn ages_on_29_february() {
        let d = doc(BASE);
        // Age 10 stated on 2024-02-29: born 2014-02-28 at the latest, adult (14) on
        // 2028-02-28.
        let e = events(&[r#"{"type":"subject","subject":"u1","age":10,"at":"2024-02-29T12:00:00Z"}"#]);
        assert!(is_minor(&d, &e, at("2028-02-27T23:59:59Z")));
        assert!(!is_minor(&d, &e, at("2028-02-28T00:00:00Z")));
        // Born on 2012-02-29: 14 on 2026-03-01 (no 29 February in 2026).
        let e = events(&[r#"{"type":"subject","subject":"u1","birth_date":"2012-02-29","at":"2020-01-01T00:00:00Z"}"#]);
        assert!(is_minor(&d, &e, at("2026-02-28T23:59:59Z")));
        assert!(!is_minor(&d, &e, at("2026-03-01T00:00:00Z")));
        // Born on 2008-02-29: 14 on 2022-02-29 does not exist either; 18 on 2026-03-01.
        let e = events(&[r#"{"type":"subject","subject":"u1","birth_date":"2008-02-29","at":"2020-01-01T00:00:00Z"}"#]);
        assert!(is_minor(&d, &e, at("2022-02-28T23:59:59Z")));
        assert!(!is_minor(&d, &e, at("2022-03-01T00:00:00Z")));
    }

    #[test]
    fn the_youngest_age_wins_and_silence_forgets_nothing() {
        let d = doc(BASE);
        let e = events(&[
            r#"{"type":"subject","subject":"u1","birth_date":"2000-01-01","at":"2020-01-01T00:00:00Z"}"#,
            r#"{"type":"subject","subject":"u1","age":10,"at":"2026-01-01T00:00:00Z"}"#,
            r#"{"type":"subject","subject":"u1","at":"2026-02-01T00:00:00Z"}"#,
        ]);
        assert!(is_minor(&d, &e, at("2026-06-01T00:00:00Z")));
        let r = request(Purpose::PERSONALIZATION_RECOMMENDATION, &[DataCategory::BEHAVIOR_LOG]);
        assert_eq!(code(&d, &e, &r, "2026-06-01T00:00:00Z"), "guardian_consent_required");
    }

    #[test]
    fn an_erased_subject_is_a_minor_at_every_time() {
        let d = doc(BASE);
        let e = events(&[
            r#"{"type":"subject","subject":"u1","birth_date":"1990-01-01","at":"2020-01-01T00:00:00Z"}"#,
            r#"{"type":"erase","subject":"u1","at":"2026-03-01T00:00:00Z"}"#,
        ]);
        let r = request(Purpose::PERSONALIZATION_RECOMMENDATION, &[DataCategory::BEHAVIOR_LOG]);
        assert_eq!(code(&d, &e, &r, "2026-02-01T00:00:00Z"), "guardian_consent_required");
        assert_eq!(code(&d, &e, &r, "2026-03-01T00:00:00Z"), "subject_erased");
    }

    #[test]
    fn future_collection_times_and_empty_sessions_are_missing() {
        let mut d = doc(BASE);
        d.rules[0].retention = Some(Retention::Days(30));
        let r = request(Purpose::PERSONALIZATION_RECOMMENDATION, &[DataCategory::BEHAVIOR_LOG])
            .collected(at("2026-07-01T00:00:00Z"), None);
        assert_eq!(code(&d, &[], &r, "2026-06-01T00:00:00Z"), "retention_expired");
        d.rules[0].retention = Some(Retention::Session);
        let r = request(Purpose::PERSONALIZATION_RECOMMENDATION, &[DataCategory::BEHAVIOR_LOG])
            .collected(at("2026-05-01T00:00:00Z"), Some("".into()))
            .session("");
        assert_eq!(code(&d, &[], &r, "2026-06-01T00:00:00Z"), "retention_expired");
    }

    #[test]
    fn versions_and_reconsent() {
        let d = doc(BASE);
        let later = events(&[
            r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-01T00:00:00Z","policy_version":"7.0"}"#,
        ]);
        assert!(!accepts(&d, &later[0]));
        let older = events(&[
            r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-01T00:00:00Z","policy_version":"1.9"}"#,
        ]);
        assert!(accepts(&d, &older[0]));
        let r = request(Purpose::AI_TRAINING_ALGORITHM_OPTIMIZATION, &[DataCategory::BEHAVIOR_LOG]);
        assert_eq!(code(&d, &older, &r, "2026-06-01T00:00:00Z"), "reconsent_required");
    }

    #[test]
    fn scopes_name_exactly_what_was_agreed() {
        let d = doc(BASE);
        let e = events(&[
            r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-01T00:00:00Z","scope":{"recipients":["ad_partner"]}}"#,
        ]);
        let r = request(Purpose::AI_TRAINING_ALGORITHM_OPTIMIZATION, &[DataCategory::BEHAVIOR_LOG]);
        assert_eq!(code(&d, &e, &r, "2026-06-01T00:00:00Z"), "consent_missing");
        let r = r.recipient(consent_guard::Recipient::named(consent_guard::RecipientKind::ThirdParty, "ad_partner"));
        assert_eq!(code(&d, &e, &r, "2026-06-01T00:00:00Z"), "consent_given");
    }

    #[test]
    fn a_transfer_needs_a_separate_grant_naming_the_region() {
        let d = doc(BASE);
        let e = events(&[
            r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-01T00:00:00Z"}"#,
        ]);
        let r = request(Purpose::AI_TRAINING_ALGORITHM_OPTIMIZATION, &[DataCategory::BEHAVIOR_LOG])
            .region(Region::new("SG").unwrap());
        assert_eq!(code(&d, &e, &r, "2026-06-01T00:00:00Z"), "separate_consent_required");
        let e = events(&[
            r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-01T00:00:00Z","scope":{"regions":["SG"]}}"#,
        ]);
        assert_eq!(code(&d, &e, &r, "2026-06-01T00:00:00Z"), "consent_given");
    }

    #[test]
    fn a_transfer_on_a_basis_without_consent_scans_for_its_grant() {
        let d = doc(r#"
[policy]
name = "case"
version = "1.0"
home_region = "CN"
storage_regions = ["CN", "US"]

[minors]
guardian_consent_under = 18
unknown_age = "minor"

[[rule]]
id = "login"
purposes = ["account.login"]
basis = "contract"
categories = ["account"]
regions = ["US"]
transfer_regions = ["CN"]
"#);
        let r = request(Purpose::ACCOUNT_LOGIN, &[DataCategory::ACCOUNT_USERNAME]);
        let t = "2026-06-01T00:00:00Z";
        assert_eq!(code(&d, &[], &r, t), "separate_consent_required");
        let not_by_guardian = events(&[
            r#"{"type":"grant","subject":"u1","purposes":["account"],"level":"separate","at":"2026-01-01T00:00:00Z","scope":{"regions":["CN"]}}"#,
        ]);
        assert_eq!(code(&d, &not_by_guardian, &r, t), "guardian_consent_required");
        let by_guardian = events(&[
            r#"{"type":"grant","subject":"u1","purposes":["account"],"level":"separate","by_guardian":true,"at":"2026-01-01T00:00:00Z","scope":{"regions":["CN"]}}"#,
        ]);
        assert_eq!(code(&d, &by_guardian, &r, t), "legal_basis");
        let withdrawn = events(&[
            r#"{"type":"grant","subject":"u1","purposes":["account"],"level":"separate","by_guardian":true,"at":"2026-01-01T00:00:00Z","scope":{"regions":["CN"]}}"#,
            r#"{"type":"withdraw","subject":"u1","purposes":["account.login"],"at":"2026-02-01T00:00:00Z"}"#,
        ]);
        assert_eq!(code(&d, &withdrawn, &r, t), "consent_withdrawn");
    }

    const MINORS: &str = r#"
[policy]
name = "case"
version = "1.0"
home_region = "CN"

[minors]
guardian_consent_under = 18
sensitive_under = 14

[[rule]]
id = "core"
purposes = ["service.core"]
basis = "contract"
categories = ["content"]
retention = "session"
separate_consent_lifts_retention = true

[[rule]]
id = "reco"
purposes = ["personalization.recommendation"]
basis = "consent"
level = "implied"
categories = ["behavior"]

[[rule]]
id = "training"
purposes = ["ai_training.model_training"]
basis = "consent"
level = "separate"
anonymized_level = "explicit"
categories = ["behavior"]
retention = "30d"
retention_until_anonymized = true

[[rule]]
id = "law"
purposes = ["compliance.legal_obligation"]
basis = "legal_obligation"
categories = ["identity"]
"#;

    #[test]
    fn minors_need_a_guardian_on_every_basis_but_the_law() {
        let d = doc(MINORS);
        let t = "2026-06-01T00:00:00Z";
        let sixteen = r#"{"type":"subject","subject":"u1","age":16,"at":"2026-01-01T00:00:00Z"}"#;
        let twelve = r#"{"type":"subject","subject":"u1","age":12,"at":"2026-01-01T00:00:00Z"}"#;
        let guardian_explicit = r#"{"type":"grant","subject":"u1","purposes":["service","personalization"],"level":"explicit","by_guardian":true,"at":"2026-01-02T00:00:00Z"}"#;
        let core = request(Purpose::SERVICE_CORE, &[DataCategory::CONTENT_CHAT])
            .collected(at("2026-05-01T00:00:00Z"), Some("s".into()))
            .session("s");
        let reco = request(Purpose::PERSONALIZATION_RECOMMENDATION, &[DataCategory::BEHAVIOR_LOG]);
        let law = request(Purpose::COMPLIANCE_LEGAL_OBLIGATION, &[DataCategory::IDENTITY_REAL_NAME]);
        assert_eq!(code(&d, &events(&[sixteen]), &core, t), "guardian_consent_required");
        assert_eq!(code(&d, &events(&[sixteen]), &law, t), "legal_basis");
        assert_eq!(code(&d, &events(&[sixteen, guardian_explicit]), &core, t), "legal_basis");
        assert_eq!(code(&d, &events(&[sixteen, guardian_explicit]), &reco, t), "consent_given");
        // Under 14: the guardian's grant must be separate (the minor trigger).
        assert_eq!(code(&d, &events(&[twelve, guardian_explicit]), &core, t), "separate_consent_required");
        assert_eq!(code(&d, &events(&[twelve, guardian_explicit]), &reco, t), "separate_consent_required");
    }

    #[test]
    fn retention_yields_to_anonymization_and_to_a_separate_grant() {
        let d = doc(MINORS);
        let t = "2026-06-01T00:00:00Z";
        let adult = r#"{"type":"subject","subject":"u1","age":30,"at":"2026-01-01T00:00:00Z"}"#;
        let separate = r#"{"type":"grant","subject":"u1","purposes":["service.core"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#;
        let other_session = request(Purpose::SERVICE_CORE, &[DataCategory::CONTENT_CHAT])
            .collected(at("2026-05-01T00:00:00Z"), Some("s1".into()))
            .session("s2");
        assert_eq!(code(&d, &events(&[adult]), &other_session, t), "retention_expired");
        assert_eq!(code(&d, &events(&[adult, separate]), &other_session, t), "legal_basis");
        let old = request(Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG])
            .collected(at("2026-01-01T00:00:00Z"), None);
        let explicit = r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"explicit","at":"2026-01-02T00:00:00Z"}"#;
        assert_eq!(code(&d, &events(&[adult, explicit]), &old, t), "retention_expired");
        let anonymized = old.clone().deidentification(consent_guard::Deidentification::Anonymized);
        // Anonymized: the limit yields, and explicit consent is enough.
        assert_eq!(code(&d, &events(&[adult, explicit]), &anonymized, t), "consent_given");
    }

    #[test]
    fn a_lapsed_grant_leaves_the_opt_out_default() {
        let d = doc(BASE);
        let t = "2026-06-01T00:00:00Z";
        let adult = r#"{"type":"subject","subject":"u1","birth_date":"1990-01-01"}"#;
        let expired = r#"{"type":"grant","subject":"u1","purposes":["personalization"],"level":"explicit","at":"2026-01-01T00:00:00Z","expires_at":"2026-02-01T00:00:00Z"}"#;
        let implied = r#"{"type":"grant","subject":"u1","purposes":["personalization"],"level":"implied","at":"2026-03-01T00:00:00Z"}"#;
        let r = request(Purpose::PERSONALIZATION_RECOMMENDATION, &[DataCategory::BEHAVIOR_LOG]);
        assert_eq!(code(&d, &events(&[adult, expired]), &r, t), "consent_given");
        // A grant that is too weak still decides.
        assert_eq!(code(&d, &events(&[adult, expired, implied]), &r, t), "consent_level_insufficient");
    }

    #[test]
    fn opt_out_deems_consent_for_unknown_subjects() {
        let d = doc(BASE);
        let r = request(Purpose::PERSONALIZATION_RECOMMENDATION, &[DataCategory::BEHAVIOR_LOG]);
        assert_eq!(code(&d, &[], &r, "2026-06-01T00:00:00Z"), "consent_given");
        // A transfer or a third party never gets deemed consent.
        let r = r.recipient(consent_guard::Recipient::kind(consent_guard::RecipientKind::ThirdParty));
        assert_eq!(code(&d, &[], &r, "2026-06-01T00:00:00Z"), "recipient_not_permitted");
    }

    #[test]
    fn the_scan_takes_the_first_allowing_grant_after_the_last_withdrawal() {
        let d = doc(BASE);
        let e = events(&[
            r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-01T00:00:00Z"}"#,
            r#"{"type":"withdraw","subject":"u1","purposes":["ai_training"],"at":"2026-02-01T00:00:00Z"}"#,
            r#"{"type":"grant","subject":"u1","purposes":["ai_training.algorithm_optimization"],"level":"explicit","at":"2026-03-01T00:00:00Z"}"#,
        ]);
        let r = request(Purpose::AI_TRAINING_ALGORITHM_OPTIMIZATION, &[DataCategory::BEHAVIOR_LOG]);
        assert_eq!(code(&d, &e, &r, "2026-01-15T00:00:00Z"), "consent_given");
        assert_eq!(code(&d, &e, &r, "2026-02-15T00:00:00Z"), "consent_withdrawn");
        assert_eq!(code(&d, &e, &r, "2026-03-15T00:00:00Z"), "separate_consent_required");
    }
}
