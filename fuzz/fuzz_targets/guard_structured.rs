//! Structured input (`arbitrary`): a seed policy with a few tweaks to its rules (levels,
//! defaults, retention, categories, purposes, regions, signals, minors), a short history
//! of consent events and a few requests, every name an index into what the policy
//! knows, every time near "now" or at an edge (29 February, the ends of chrono's
//! range). The fuzzer thus spends its time in decisions, not in parsing. `check`,
//! `decide` and the prepared check agree on the code for every subject, and a request
//! the policy does not know is denied, unless it is a deletion the policy owes
//! (`deletion_due`, decided before the request-only checks).
#![no_main]

use arbitrary::Arbitrary;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use consent_guard::consent::{EraseEvent, GrantEvent, Scope, SubjectEvent, WithdrawEvent};
use consent_guard::policy::{ConsentDefault, MinorsSection, Retention, Signal, UnknownAge};
use consent_guard::request::{Action, Deidentification, Recipient, RecipientKind, Region, Signals};
use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Policy, Purpose};
use consent_guard_fuzz::harness::deletion_owed;
use consent_guard_fuzz::shared::{categories, guard, now, policies, purposes, recipient_names, LEVELS};
use libfuzzer_sys::fuzz_target;

const SUBJECTS: [&str; 4] = ["s0", "s1", "s2", ""];
const SESSIONS: [&str; 3] = ["", "a", "b"];
const REGIONS: [&str; 8] = ["CN", "US", "DE", "SG", "GB", "JP", "FR", "KR"];
const VERSIONS: [&str; 8] = ["1.0", "0.9", "2.0", "7.0", "1", "1.0.0.1", "x", ""];
const DEIDENTIFICATION: [Deidentification; 3] =
    [Deidentification::None, Deidentification::Pseudonymized, Deidentification::Anonymized];

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Time {
    Hours(i16),
    Days(i16),
    Special(u8),
    Seconds(i64),
}

fn ymd(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn time(t: Time) -> DateTime<Utc> {
    let specials = [
        ymd(2024, 2, 29),
        ymd(2028, 2, 29),
        ymd(2026, 2, 28),
        ymd(2026, 3, 1),
        ymd(2025, 12, 31) + Duration::seconds(86_399),
        DateTime::<Utc>::UNIX_EPOCH,
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        now(),
    ];
    match t {
        Time::Hours(h) => now() + Duration::hours(i64::from(h)),
        Time::Days(d) => now() + Duration::days(i64::from(d)),
        Time::Special(i) => specials[usize::from(i) % specials.len()],
        Time::Seconds(s) => {
            let s = s.clamp(DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
            DateTime::from_timestamp(s, 0).unwrap_or(now())
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Birth {
    /// Years before 2026 and a day of the year.
    Date(u8, u16),
    /// 29 February of a leap year from 2000 on.
    Leap(u8),
    Extreme(bool),
}

fn birth(b: &Birth) -> Option<NaiveDate> {
    match *b {
        Birth::Date(years, ordinal) => NaiveDate::from_yo_opt(2026 - i32::from(years), u32::from(ordinal % 366) + 1),
        Birth::Leap(k) => NaiveDate::from_ymd_opt(2000 + 4 * i32::from(k % 16), 2, 29),
        Birth::Extreme(max) => Some(if max { NaiveDate::MAX } else { NaiveDate::MIN }),
    }
}

#[derive(Arbitrary, Debug)]
struct ScopeInput {
    recipients: Vec<u8>,
    regions: Vec<u8>,
    categories: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum EventInput {
    Subject {
        subject: u8,
        birth: Option<Birth>,
        age: Option<u16>,
        at: Option<Time>,
    },
    Grant {
        subject: u8,
        purposes: Vec<u8>,
        level: u8,
        at: Time,
        version: Option<u8>,
        by_guardian: bool,
        expires_at: Option<Time>,
        scope: Option<ScopeInput>,
    },
    Withdraw {
        subject: u8,
        purposes: Vec<u8>,
        at: Time,
    },
    Erase {
        subject: u8,
        at: Time,
    },
}

#[derive(Arbitrary, Debug)]
struct RequestInput {
    subject: u8,
    purpose: u8,
    categories: Vec<u8>,
    action: u8,
    recipient: u8,
    recipient_name: Option<u8>,
    deidentification: u8,
    region: Option<u8>,
    dnt: bool,
    gpc: bool,
    collected_at: Option<Time>,
    collected_session: Option<u8>,
    session: Option<u8>,
    at: Option<Time>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum RetentionInput {
    Session,
    Hours(u32),
    Days(u32),
    Years(u32),
}

/// Every retention is generated: finding F1 (`Retention::millis` overflowed) is fixed,
/// and retentions the format cannot hold are policy errors.
const F1_OPEN_MAX_YEARS: u32 = u32::MAX;

impl RetentionInput {
    fn retention(self) -> Option<Retention> {
        match self {
            RetentionInput::Session => Some(Retention::Session),
            RetentionInput::Hours(n) => (n > 0).then_some(Retention::Hours(n)),
            RetentionInput::Days(n) => (n > 0).then_some(Retention::Days(n)),
            RetentionInput::Years(n) => (n > 0 && n <= F1_OPEN_MAX_YEARS).then_some(Retention::Years(n)),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Tweak {
    Retention { rule: u8, retention: Option<RetentionInput> },
    Level { rule: u8, level: Option<u8> },
    OptOut { rule: u8, opt_out: Option<bool> },
    Deidentification { rule: u8, level: Option<u8> },
    AnonymizedExempt { rule: u8, exempt: Option<bool> },
    ChangedIn { rule: u8, version: Option<u8> },
    Categories { rule: u8, categories: Vec<u8> },
    Purposes { rule: u8, purposes: Vec<u8> },
    Actions { rule: u8, actions: Option<Vec<u8>> },
    Regions { rule: u8, regions: Option<Vec<u8>> },
    Signals { rule: u8, dnt: bool, gpc: bool },
    Sensitive { category: u8 },
    Minors { guardian_under: Option<u8>, not_served_under: Option<u8>, unknown_minor: Option<bool> },
}

/// The seed policy with the tweaks applied, compiled again; `None` if it no longer
/// compiles (that is the loader's business, fuzzed by `policy_toml`).
fn tweaked(policy: &Policy, tweaks: &[Tweak], v: &Vocabulary) -> Option<Policy> {
    if tweaks.is_empty() {
        return Some(policy.clone());
    }
    let mut document = policy.document().clone();
    let rules = document.rules.len();
    for tweak in tweaks.iter().take(4) {
        let rule_at = |rule: u8| (rules > 0).then(|| usize::from(rule) % rules);
        match tweak {
            Tweak::Sensitive { category } => document.vocabulary.sensitive.extend(pick(&v.categories, *category)),
            Tweak::Minors { guardian_under, not_served_under, unknown_minor } => {
                // Field by field: the section grows (`sensitive_under` on main).
                let minors = document.minors.get_or_insert_with(MinorsSection::default);
                minors.guardian_consent_under = *guardian_under;
                minors.not_served_under = *not_served_under;
                minors.unknown_age = unknown_minor.map(|m| if m { UnknownAge::Minor } else { UnknownAge::Adult });
            }
            Tweak::Retention { rule, .. }
            | Tweak::Level { rule, .. }
            | Tweak::OptOut { rule, .. }
            | Tweak::Deidentification { rule, .. }
            | Tweak::AnonymizedExempt { rule, .. }
            | Tweak::ChangedIn { rule, .. }
            | Tweak::Categories { rule, .. }
            | Tweak::Purposes { rule, .. }
            | Tweak::Actions { rule, .. }
            | Tweak::Regions { rule, .. }
            | Tweak::Signals { rule, .. } => {
                let Some(r) = rule_at(*rule).and_then(|i| document.rules.get_mut(i)) else { continue };
                match tweak {
                    Tweak::Retention { retention, .. } => r.retention = retention.and_then(RetentionInput::retention),
                    Tweak::Level { level, .. } => r.level = level.map(|l| LEVELS[usize::from(l) % LEVELS.len()]),
                    Tweak::OptOut { opt_out, .. } => {
                        r.default = opt_out.map(|o| if o { ConsentDefault::OptOut } else { ConsentDefault::OptIn });
                    }
                    Tweak::Deidentification { level, .. } => {
                        r.deidentification = level.map(|l| DEIDENTIFICATION[usize::from(l) % DEIDENTIFICATION.len()]);
                    }
                    Tweak::AnonymizedExempt { exempt, .. } => r.anonymized_exempt = *exempt,
                    Tweak::ChangedIn { version, .. } => r.changed_in = version.and_then(|i| pick(&v.versions, i)),
                    Tweak::Categories { categories, .. } => r.categories = picks(&v.categories, categories, 3),
                    Tweak::Purposes { purposes, .. } => r.purposes = picks(&v.purposes, purposes, 3),
                    Tweak::Actions { actions, .. } => r.actions = actions.as_ref().map(|a| picks(&Action::ALL, a, 4)),
                    Tweak::Regions { regions, .. } => r.regions = regions.as_ref().map(|g| picks(&v.regions, g, 3)),
                    Tweak::Signals { dnt, gpc, .. } => {
                        let signals: Vec<Signal> = [(*dnt, Signal::Dnt), (*gpc, Signal::Gpc)]
                            .into_iter()
                            .filter_map(|(on, s)| on.then_some(s))
                            .collect();
                        r.opt_out_signals = (!signals.is_empty()).then_some(signals);
                    }
                    Tweak::Sensitive { .. } | Tweak::Minors { .. } => {}
                }
            }
        }
    }
    Policy::compile(document, "tweaked").ok()
}

#[derive(Arbitrary, Debug)]
struct Input {
    policy: u8,
    tweaks: Vec<Tweak>,
    events: Vec<EventInput>,
    requests: Vec<RequestInput>,
}

/// What the indices of an input pick from, for one policy.
struct Vocabulary {
    purposes: Vec<Purpose>,
    categories: Vec<DataCategory>,
    recipients: Vec<String>,
    regions: Vec<Region>,
    versions: Vec<String>,
}

impl Vocabulary {
    fn of(policy: &Policy) -> Vocabulary {
        let mut regions: Vec<Region> = policy.storage_regions().to_vec();
        regions.push(policy.home_region());
        regions.extend(REGIONS.iter().filter_map(|code| Region::new(code).ok()));
        let mut versions: Vec<String> = VERSIONS.iter().map(|v| (*v).to_owned()).collect();
        versions.push(policy.version().to_owned());
        versions.extend(policy.rules().iter().filter_map(|rule| rule.changed_in.clone()));
        Vocabulary {
            purposes: purposes(policy),
            categories: categories(policy),
            recipients: recipient_names(policy),
            regions,
            versions,
        }
    }
}

fn pick<T: Clone>(items: &[T], index: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(index) % items.len()].clone())
}

fn picks<T: Clone>(items: &[T], indices: &[u8], at_most: usize) -> Vec<T> {
    indices.iter().take(at_most).filter_map(|i| pick(items, *i)).collect()
}

fn subject(index: u8) -> String {
    SUBJECTS[usize::from(index) % SUBJECTS.len()].to_owned()
}

fn event(input: &EventInput, v: &Vocabulary) -> ConsentEvent {
    match input {
        EventInput::Subject { subject: s, birth: b, age, at } => {
            let mut event = SubjectEvent::new(subject(*s));
            (event.birth_date, event.age, event.at) = (b.as_ref().and_then(birth), *age, at.map(time));
            event.into()
        }
        EventInput::Grant { subject: s, purposes, level, at, version, by_guardian, expires_at, scope } => {
            let level = LEVELS[usize::from(*level) % LEVELS.len()];
            let mut grant = GrantEvent::new(subject(*s), picks(&v.purposes, purposes, 3), level, time(*at));
            grant.policy_version = version.and_then(|i| pick(&v.versions, i));
            grant.by_guardian = *by_guardian;
            grant.expires_at = expires_at.map(time);
            grant.scope = scope.as_ref().map(|scope| {
                Scope::new()
                    .recipients(picks(&v.recipients, &scope.recipients, 2))
                    .regions(picks(&v.regions, &scope.regions, 2))
                    .categories(picks(&v.categories, &scope.categories, 2))
            });
            grant.into()
        }
        EventInput::Withdraw { subject: s, purposes, at } => {
            WithdrawEvent::new(subject(*s), picks(&v.purposes, purposes, 3), time(*at)).into()
        }
        EventInput::Erase { subject: s, at } => EraseEvent::new(subject(*s), time(*at)).into(),
    }
}

fn request(input: &RequestInput, v: &Vocabulary) -> Option<AccessRequest<'static>> {
    let mut categories = picks(&v.categories, &input.categories, 3);
    if categories.is_empty() {
        categories.push(pick(&v.categories, 0)?);
    }
    let kind = RecipientKind::ALL[usize::from(input.recipient) % RecipientKind::ALL.len()];
    let recipient = match input.recipient_name.and_then(|i| pick(&v.recipients, i)) {
        Some(name) => Recipient::named(kind, name),
        None => Recipient::kind(kind),
    };
    let session = |i: Option<u8>| i.map(|i| std::borrow::Cow::Borrowed(SESSIONS[usize::from(i) % SESSIONS.len()]));
    let mut request = AccessRequest::new(subject(input.subject), pick(&v.purposes, input.purpose)?, categories)
        .action(Action::ALL[usize::from(input.action) % Action::ALL.len()])
        .recipient(recipient)
        .deidentification(DEIDENTIFICATION[usize::from(input.deidentification) % DEIDENTIFICATION.len()])
        .signals(Signals::default().with_dnt(input.dnt).with_gpc(input.gpc));
    if let Some(region) = input.region.and_then(|i| pick(&v.regions, i)) {
        request = request.region(region);
    }
    request.collected_at = input.collected_at.map(time);
    request.collected_session = session(input.collected_session);
    request.session = session(input.session);
    request.at = input.at.map(time);
    Some(request)
}

/// The request without its own `at`: `decide` answers a what-if at the request's `at`
/// while `check` decides at the guard's clock (issue 13, class 4), so the two are
/// compared where both decide at the clock.
fn at_clock<'a>(request: &AccessRequest<'a>) -> AccessRequest<'a> {
    let mut request = request.clone();
    request.at = None;
    request
}

fuzz_target!(|input: Input| {
    let Some(seed) = pick(policies(), input.policy) else { return };
    let Some(policy) = tweaked(&seed, &input.tweaks, &Vocabulary::of(&seed)) else { return };
    let vocabulary = Vocabulary::of(&policy);
    let guard = guard(&policy);
    for event_input in input.events.iter().take(16) {
        let _ = guard.record(&event(event_input, &vocabulary));
    }
    for request_input in input.requests.iter().take(8) {
        let Some(request) = request(request_input, &vocabulary) else { continue };
        let checked = guard.check(&request);
        assert_eq!(
            guard.check(&at_clock(&request)).code(),
            guard.decide(&at_clock(&request)).code(),
            "check and decide disagree"
        );
        if let Err(e) = policy.validate_request(&request) {
            assert!(
                !checked.allowed() || deletion_owed(&request, &checked),
                "{}: a request the policy does not know is allowed ({e})",
                policy.name()
            );
        }
        let _ = serde_json::to_string(&checked);
        let prepared = guard.prepare(&request);
        for s in SUBJECTS {
            let mut other = request.clone();
            other.subject = s.into();
            assert_eq!(
                guard.check(&other).code(),
                prepared.check(s).code(),
                "check and prepared check disagree for {s:?}"
            );
        }
    }
});
