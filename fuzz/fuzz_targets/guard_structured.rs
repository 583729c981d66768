//! Structured input (`arbitrary`): a seed policy, a short history of consent events and
//! a few requests, every name an index into what the policy knows, every time near
//! "now" or at an edge (29 February, the ends of chrono's range). The fuzzer thus spends
//! its time in decisions, not in parsing. `check`, `decide` and the prepared check
//! agree on the code for every subject, and a request the policy does not know is
//! denied.
#![no_main]

use arbitrary::Arbitrary;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use consent_guard::consent::{EraseEvent, GrantEvent, Scope, SubjectEvent, WithdrawEvent};
use consent_guard::request::{Action, Deidentification, Recipient, RecipientKind, Region, Signals};
use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Policy, Purpose};
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

#[derive(Arbitrary, Debug)]
struct Input {
    policy: u8,
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
        EventInput::Subject { subject: s, birth: b, age, at } => ConsentEvent::Subject(SubjectEvent {
            subject: subject(*s),
            birth_date: b.as_ref().and_then(birth),
            age: *age,
            at: at.map(time),
        }),
        EventInput::Grant { subject: s, purposes, level, at, version, by_guardian, expires_at, scope } => {
            ConsentEvent::Grant(GrantEvent {
                subject: subject(*s),
                purposes: picks(&v.purposes, purposes, 3),
                level: LEVELS[usize::from(*level) % LEVELS.len()],
                at: time(*at),
                policy_version: version.and_then(|i| pick(&v.versions, i)),
                by_guardian: *by_guardian,
                expires_at: expires_at.map(time),
                scope: scope.as_ref().map(|scope| Scope {
                    recipients: picks(&v.recipients, &scope.recipients, 2),
                    regions: picks(&v.regions, &scope.regions, 2),
                    categories: picks(&v.categories, &scope.categories, 2),
                }),
            })
        }
        EventInput::Withdraw { subject: s, purposes, at } => ConsentEvent::Withdraw(WithdrawEvent {
            subject: subject(*s),
            purposes: picks(&v.purposes, purposes, 3),
            at: time(*at),
        }),
        EventInput::Erase { subject: s, at } => ConsentEvent::Erase(EraseEvent { subject: subject(*s), at: time(*at) }),
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
        .signals(Signals { dnt: input.dnt, gpc: input.gpc });
    if let Some(region) = input.region.and_then(|i| pick(&v.regions, i)) {
        request = request.region(region);
    }
    request.collected_at = input.collected_at.map(time);
    request.collected_session = session(input.collected_session);
    request.session = session(input.session);
    request.at = input.at.map(time);
    Some(request)
}

fuzz_target!(|input: Input| {
    let Some(policy) = pick(policies(), input.policy) else { return };
    let vocabulary = Vocabulary::of(&policy);
    let guard = guard(&policy);
    for event_input in input.events.iter().take(16) {
        let _ = guard.record(&event(event_input, &vocabulary));
    }
    for request_input in input.requests.iter().take(8) {
        let Some(request) = request(request_input, &vocabulary) else { continue };
        let checked = guard.check(&request);
        assert_eq!(checked.code(), guard.decide(&request).code(), "check and decide disagree");
        if let Err(e) = policy.validate_request(&request) {
            assert!(!checked.allowed(), "{}: a request the policy does not know is allowed ({e})", policy.name());
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
