//! The differential property test of issue 13: random policies (hierarchies, recipients,
//! minors, every rule field), random consent histories and random requests, decided by
//! `Guard::check`, by `Guard::prepare(..).check(subject)` and by the reference evaluator
//! of `tests/reference/mod.rs`. All three must agree on `allowed` and `code`, and the
//! guard must accept at `record` exactly the events the reference accepts. The same
//! request is also asked as `Guard::what_if` (against the reference at that time, marked
//! a what-if) and as the dry runs `Guard::decide` / `PreparedAccess::decide` (at the
//! request's own `at`, marked, or at the clock). The subject handles of issue 20 are
//! held to the same answers: `Guard::check_handle`, `PreparedAccess::check_handle` with a
//! handle resolved after the events (the record hint) and one resolved before any event
//! (the subject unknown then: the index path), and `PreparedAccess::decide_handle`. One
//! case in ten runs on a seed policy of `examples/policies/` instead of a generated one.
//! Issue 29 added to the generation: `end` events and `retention_after_end`, grants
//! whose scope writes a list empty (refused at `record`), `[minors] guardian_level`,
//! and, one case in ten, a subject the guard cannot read (its store holds a grant
//! under a later policy version, which the guard quarantines).
//!
//! Each kind of disagreement is named by the settled point (SEMANTICS.md) or reading
//! (`R..`, /work/notes/differential.md) that explains it: the runner tries changes of
//! the input on which the old and the settled meaning coincide.
//!
//! Generation is constructive (every policy is valid by construction and compiles) and
//! driven by a proptest seed; the dependent structure (names declared by the policy,
//! used by rules, events and requests) is drawn from one seeded generator, and a
//! disagreement is minimised by a greedy shrinker (drop events, rules, declarations,
//! reset request fields) before it is reported.
//!
//! - `cargo test --all-features --test differential` runs 10,000 cases.
//! - `cargo test --release --all-features --test differential -- --ignored` runs the
//!   long form (at least 1,000,000 cases); `DIFF_CASES=N` sets the number of cases of
//!   either form, `DIFF_SEED=S` replays the generated case of seed S (printed in the
//!   report, `target/tmp/differential-report.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "tests fail loudly"
)]

mod reference;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use consent_guard::consent::{EndEvent, EraseEvent, GrantEvent, Scope, SubjectEvent, WithdrawEvent};
use consent_guard::policy::{
    ConsentDefault, MinorsSection, PolicyDocument, PolicyHeader, RecipientDeclaration, Retention, RightsSection,
    RuleDocument, SeparateTrigger, Signal, UnknownAge, VocabularySection,
};
use consent_guard::store::{ConsentStore, MemoryConsentStore};
use consent_guard::{
    AccessRequest, Action, ConsentEvent, ConsentLevel, DataCategory, Deidentification, FixedClock, Guard, LegalBasis,
    Policy, Purpose, Recipient, RecipientKind, Region, Signals,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

// ---------------------------------------------------------------------------------
// A small seeded generator
// ---------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % (n.max(1) as u64)) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % ((high - low + 1) as u64)) as i64
    }
    /// A non-empty random subset, in the items' order.
    fn subset<T: Clone>(&mut self, items: &[T], max: usize) -> Vec<T> {
        let count = 1 + self.below(max.min(items.len()));
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < count {
            let i = self.below(items.len());
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        chosen.sort_unstable();
        chosen.into_iter().map(|i| items[i].clone()).collect()
    }
}

fn purpose(name: &str) -> Purpose {
    name.parse().unwrap()
}

fn category(name: &str) -> DataCategory {
    name.parse().unwrap()
}

fn region(code: &str) -> Region {
    Region::new(code).unwrap()
}

const REGIONS: [&str; 5] = ["CN", "SG", "US", "DE", "JP"];
const VERSIONS: [&str; 5] = ["1.0", "1.5", "2.0", "2.1", "v3"];
const GRANT_VERSIONS: [&str; 9] = ["0.9", "1.0", "1.5", "2.0", "2.0.1", "2.1", "v3", "7.0", "x"];
/// Extensions, each after its parent.
const PURPOSE_EXTENSIONS: [&str; 7] = [
    "service.core.video_generation",
    "ai_training.model_training.fine_tune",
    "ai_training.model_training.fine_tune.lora",
    "personalization.recommendation.feed",
    "marketing.campaigns.sms",
    "analytics.usage.heatmap",
    "research.academic.survey",
];
const CATEGORY_EXTENSIONS: [&str; 6] = [
    "content.upload.voice_clone",
    "location.precise.gps",
    "location.coarse",
    "behavior.log.search",
    "health.record.lab",
    "device.info.battery",
];
const RECIPIENT_NAMES: [&str; 4] = ["ad_partner", "cloud", "umeng", "wechat_login"];
const KINDS: [RecipientKind; 6] = [
    RecipientKind::FirstParty,
    RecipientKind::Affiliate,
    RecipientKind::Processor,
    RecipientKind::ThirdParty,
    RecipientKind::Public,
    RecipientKind::Authority,
];
const LEVELS: [ConsentLevel; 3] = [ConsentLevel::Implied, ConsentLevel::Explicit, ConsentLevel::Separate];
const DEIDS: [Deidentification; 3] =
    [Deidentification::None, Deidentification::Pseudonymized, Deidentification::Anonymized];

fn with_parents(names: &[&str], chosen: &[&str]) -> Vec<String> {
    // Keep an extension only if its parent is built in or kept before it.
    let mut kept: Vec<String> = Vec::new();
    for name in names {
        if !chosen.contains(name) {
            continue;
        }
        let parent = &name[..name.rfind('.').unwrap()];
        let builtin =
            Purpose::builtins().any(|p| p.as_str() == parent) || DataCategory::builtins().any(|c| c.as_str() == parent);
        if builtin || kept.iter().any(|k| k == parent) {
            kept.push((*name).to_owned());
        }
    }
    kept
}

fn gen_policy(rng: &mut Rng) -> PolicyDocument {
    let version = rng.pick(&VERSIONS).to_owned();
    let home = rng.pick(&REGIONS);
    let storage_regions = if rng.chance(50) {
        None
    } else {
        let mut list = vec![region(home)];
        for r in rng.subset(&REGIONS, 2) {
            if !list.contains(&region(r)) {
                list.push(region(r));
            }
        }
        Some(list)
    };
    let separate_consent_for = if rng.chance(50) {
        None
    } else if rng.chance(20) {
        Some(Vec::new())
    } else {
        Some(rng.subset(&SeparateTrigger::ALL, 5))
    };
    let mut minors = match rng.below(6) {
        0 | 1 => None,
        2..=4 => Some(MinorsSection {
            guardian_consent_under: Some(rng.pick(&[14u8, 16, 18])),
            unknown_age: rng.pick(&[None, Some(UnknownAge::Adult), Some(UnknownAge::Minor)]),
            ..MinorsSection::default()
        }),
        _ => Some(MinorsSection {
            not_served_under: Some(rng.pick(&[14u8, 18])),
            unknown_age: rng.pick(&[None, None, Some(UnknownAge::Adult), Some(UnknownAge::Minor)]),
            ..MinorsSection::default()
        }),
    };
    // Issue 29: `sensitive_under` needs the `minor` trigger.
    let minor_trigger = separate_consent_for.as_ref().is_none_or(|list| list.contains(&SeparateTrigger::Minor));
    if let Some(section) = &mut minors {
        let age = section.guardian_consent_under.or(section.not_served_under).unwrap_or(14);
        if rng.chance(30) && minor_trigger {
            section.sensitive_under = Some(1 + rng.below(usize::from(age)) as u8);
        }
        if section.guardian_consent_under.is_some() && rng.chance(50) {
            section.guardian_level = Some(rng.pick(&LEVELS));
        }
    }
    let chosen_p: Vec<&str> = PURPOSE_EXTENSIONS.iter().copied().filter(|_| rng.chance(40)).collect();
    let chosen_c: Vec<&str> = CATEGORY_EXTENSIONS.iter().copied().filter(|_| rng.chance(40)).collect();
    let ext_purposes = with_parents(&PURPOSE_EXTENSIONS, &chosen_p);
    let ext_categories = with_parents(&CATEGORY_EXTENSIONS, &chosen_c);
    let mut doc = PolicyDocument {
        policy: PolicyHeader {
            name: "random".into(),
            version: version.clone(),
            home_region: region(home),
            storage_regions,
            source: None,
            separate_consent_for,
        },
        minors,
        // Issue 27: deletion on withdrawal.
        rights: rng
            .chance(30)
            .then(|| RightsSection { withdrawal_deletes: Some(rng.chance(60)), ..Default::default() }),
        vocabulary: VocabularySection {
            purposes: ext_purposes.iter().map(|p| purpose(p)).collect(),
            categories: ext_categories.iter().map(|c| category(c)).collect(),
            sensitive: Vec::new(),
        },
        recipients: BTreeMap::new(),
        rules: Vec::new(),
    };
    let all_purposes = reference::purposes(&doc);
    let all_categories = reference::categories(&doc);
    if rng.chance(40) {
        doc.vocabulary.sensitive = rng.subset(&all_categories, 2).iter().map(|c| category(c)).collect();
    }
    let recipient_count = rng.below(4);
    for name in rng.subset(&RECIPIENT_NAMES, 4).into_iter().take(recipient_count) {
        let declaration = RecipientDeclaration {
            kind: rng.pick(&KINDS[1..]),
            purposes: rng.chance(40).then(|| rng.subset(&all_purposes, 2).iter().map(|p| purpose(p)).collect()),
            categories: rng.chance(40).then(|| rng.subset(&all_categories, 3).iter().map(|c| category(c)).collect()),
            deidentification: rng.chance(30).then(|| rng.pick(&DEIDS)),
            description: None,
        };
        doc.recipients.insert(name.to_owned(), declaration);
    }
    let storage: Vec<String> = doc
        .policy
        .storage_regions
        .clone()
        .unwrap_or_else(|| vec![doc.policy.home_region])
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    let rule_count = 1 + rng.below(6);
    let mut used: Vec<String> = Vec::new();
    // Purposes rules may name: every node but the roots, mostly; sometimes a root.
    for index in 0..rule_count {
        let mut named = Vec::new();
        for _ in 0..1 + rng.below(2) {
            let p = rng.pick(&all_purposes);
            if !used.contains(&p) && !named.contains(&p) {
                named.push(p);
            }
        }
        if named.is_empty() {
            continue;
        }
        used.extend(named.iter().cloned());
        let basis = if rng.chance(60) { LegalBasis::Consent } else { rng.pick(&LegalBasis::ALL) };
        let consent = basis == LegalBasis::Consent;
        let mut bases = vec![basis];
        if !consent && rng.chance(30) {
            // Several bases, as a statutory list of cases without consent.
            let others: Vec<LegalBasis> = LegalBasis::ALL[1..].to_vec();
            for extra in rng.subset(&others, 2) {
                if !bases.contains(&extra) {
                    bases.push(extra);
                }
            }
        }
        let mut rule = RuleDocument::new(
            format!("r{index}"),
            named.iter().map(|p| purpose(p)).collect(),
            consent_guard::Bases::new(bases).unwrap(),
            rng.subset(&all_categories, 3).iter().map(|c| category(c)).collect(),
        );
        if rng.chance(25) {
            // Broad categories make most requests reach the later checks.
            rule.categories = vec![category(rng.pick(&["behavior", "location", "content", "device", "identity"]))];
            rule.categories.extend(rng.subset(&all_categories, 2).iter().map(|c| category(c)));
        }
        if consent {
            let level = rng.pick(&LEVELS);
            rule.level = Some(level);
            rule.default = match rng.below(3) {
                0 => None,
                1 => Some(ConsentDefault::OptIn),
                _ if level != ConsentLevel::Separate => Some(ConsentDefault::OptOut),
                _ => None,
            };
            rule.anonymized_exempt = rng.pick(&[None, None, Some(false), Some(true)]);
            if rule.default == Some(ConsentDefault::OptOut) {
                rule.known_subject = rng.pick(&[None, None, Some(false), Some(true)]);
            }
            if rng.chance(25) {
                let lower: Vec<ConsentLevel> = LEVELS.iter().copied().filter(|l| *l <= level).collect();
                rule.anonymized_level = Some(rng.pick(&lower));
            }
        }
        if rng.chance(40) {
            rule.actions = Some(rng.subset(&Action::ALL, 4));
        }
        if !consent && rng.chance(20) {
            let mut with = consent_guard::policy::WithConsent::new(rng.pick(&LEVELS));
            if rng.chance(60) {
                with.actions = Some(rng.subset(&Action::ALL, 3));
            }
            if rng.chance(60) {
                let mut pool: Vec<String> = KINDS.iter().map(|k| k.as_str().to_owned()).collect();
                pool.extend(doc.recipients.keys().cloned());
                with.recipients = Some(rng.subset(&pool, 3));
            }
            rule.with_consent = Some(with);
        }
        if rng.chance(50) {
            let mut pool: Vec<String> = KINDS.iter().map(|k| k.as_str().to_owned()).collect();
            pool.extend(doc.recipients.keys().cloned());
            rule.recipients = Some(rng.subset(&pool, 3));
        }
        if rng.chance(30) {
            rule.deidentification = Some(rng.pick(&DEIDS));
        }
        rule.retention = match rng.below(6) {
            0 => Some(Retention::Session),
            1 => Some(Retention::Hours(1 + rng.below(48) as u32)),
            2 => Some(Retention::Days(1 + rng.below(60) as u32)),
            3 => Some(Retention::Years(1 + rng.below(3) as u32)),
            _ => None,
        };
        if rule.retention.is_some() {
            rule.separate_consent_lifts_retention = rng.pick(&[None, None, Some(false), Some(true)]);
        }
        // Without a `retention` it still governs the end of the purpose (issue 29).
        rule.retention_until_anonymized = rng.pick(&[None, None, Some(false), Some(true)]);
        rule.retention_after_end = match rng.below(6) {
            0 => Some(Retention::Hours(1 + rng.below(48) as u32)),
            1 => Some(Retention::Days(1 + rng.below(60) as u32)),
            _ => None,
        };
        if rng.chance(30) {
            // Issue 29: a rule's regions lie within the storage regions.
            let within: Vec<&str> = REGIONS.iter().copied().filter(|r| storage.iter().any(|s| s == r)).collect();
            rule.regions = Some(rng.subset(&within, 2).iter().map(|r| region(r)).collect());
        }
        let regular: Vec<String> =
            rule.regions.as_ref().map_or(storage.clone(), |l| l.iter().map(|r| r.as_str().to_owned()).collect());
        if rng.chance(35) {
            if rng.chance(30) {
                rule.transfer_regions = Some(vec!["*".into()]);
            } else {
                let outside: Vec<String> =
                    REGIONS.iter().map(|r| (*r).to_owned()).filter(|r| !regular.contains(r)).collect();
                if !outside.is_empty() {
                    rule.transfer_regions = Some(rng.subset(&outside, 2));
                }
            }
        }
        if rng.chance(30) {
            rule.opt_out_signals = Some(rng.subset(&[Signal::Dnt, Signal::Gpc], 2));
        }
        if rng.chance(35) {
            let current = reference::version(&version).unwrap();
            let older: Vec<&str> =
                VERSIONS.iter().copied().filter(|v| reference::version(v).unwrap() <= current).collect();
            rule.changed_in = Some(rng.pick(&older).to_owned());
        }
        doc.rules.push(rule);
    }
    doc
}

// ---------------------------------------------------------------------------------
// Histories and requests
// ---------------------------------------------------------------------------------

const SUBJECTS: [&str; 4] = ["u1", "u2", "u3", "u4"];

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// Instants of interest: leap days, coming-of-age days, and a spread over four years.
fn gen_time(rng: &mut Rng) -> DateTime<Utc> {
    let special = [
        Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2024, 2, 29, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2025, 2, 28, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 2, 28, 23, 59, 59).unwrap(),
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2028, 2, 28, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2028, 2, 29, 0, 0, 0).unwrap(),
    ];
    if rng.chance(20) {
        rng.pick(&special)
    } else {
        base() + Duration::hours(rng.range(0, 4 * 365 * 24))
    }
}

fn gen_purposes(rng: &mut Rng, doc: &PolicyDocument) -> Vec<Purpose> {
    let mut all = reference::purposes(doc);
    all.push("service.unknown_thing".into());
    let mut list: Vec<Purpose> = Vec::new();
    for _ in 0..1 + rng.below(2) {
        // Mostly what a rule names, its parent, or a node under it.
        let p = if rng.chance(75) && !doc.rules.is_empty() {
            let rule = rng.pick(&doc.rules);
            let named = rng.pick(&rule.purposes).as_str().to_owned();
            match rng.below(3) {
                0 => named.rsplit_once('.').map_or(named.clone(), |(parent, _)| parent.to_owned()),
                1 => rng.pick(&all.iter().filter(|n| reference::under(n, &named)).cloned().collect::<Vec<_>>()),
                _ => named,
            }
        } else {
            rng.pick(&all)
        };
        if !list.iter().any(|x| x.as_str() == p) {
            list.push(purpose(&p));
        }
    }
    if rng.chance(2) {
        list.clear();
    }
    list
}

fn gen_event(rng: &mut Rng, doc: &PolicyDocument, subject: &str) -> ConsentEvent {
    let subject = subject.to_owned();
    let at = gen_time(rng);
    match rng.below(10) {
        0 | 1 => {
            let births =
                ["2012-02-29", "2016-02-29", "2010-02-28", "2010-03-01", "2008-02-29", "1990-05-05", "2011-06-15"];
            let birth_date = NaiveDate::parse_from_str(rng.pick(&births), "%Y-%m-%d").unwrap();
            let age = rng.range(0, 25) as u16;
            let (birth_date, age) = match rng.below(10) {
                0..=3 => (Some(birth_date), None),
                4..=7 => (None, Some(age)),
                8 => (None, None),
                _ => (Some(birth_date), Some(age)),
            };
            let mut event = SubjectEvent::new(subject).at(at);
            (event.birth_date, event.age) = (birth_date, age);
            event.into()
        }
        2..=6 => {
            let expires_at = match rng.below(4) {
                0 => Some(at + Duration::hours(rng.range(-24, 400 * 24))),
                _ => None,
            };
            let scope = rng.chance(40).then(|| {
                let mut recipients_pool: Vec<String> = KINDS.iter().map(|k| k.as_str().to_owned()).collect();
                recipients_pool.extend(RECIPIENT_NAMES.iter().map(|n| (*n).to_owned()));
                recipients_pool.push("nobody".into());
                let categories_pool = reference::categories(doc);
                let mut scope = Scope::new();
                scope.recipients = if rng.chance(40) { rng.subset(&recipients_pool, 2) } else { Vec::new() };
                scope.regions = if rng.chance(40) {
                    rng.subset(&REGIONS, 2).iter().map(|r| region(r)).collect()
                } else {
                    Vec::new()
                };
                scope.categories = if rng.chance(40) {
                    rng.subset(&categories_pool, 2).iter().map(|c| category(c)).collect()
                } else {
                    Vec::new()
                };
                scope
            });
            // The generator's draws stay in the order of the fields.
            let (purposes, level) = (gen_purposes(rng, doc), rng.pick(&LEVELS));
            let mut grant = GrantEvent::new(subject, purposes, level, at);
            grant.policy_version = rng.chance(30).then(|| rng.pick(&GRANT_VERSIONS).to_owned());
            grant.by_guardian = rng.chance(30);
            (grant.expires_at, grant.scope) = (expires_at, scope);
            if grant.scope.is_some() && rng.chance(10) {
                // A list written empty in the JSON: refused at `record` (issue 29).
                let list = rng.pick(&["categories", "recipients", "regions"]);
                let mut json = serde_json::to_value(&grant).unwrap();
                json["scope"][list] = serde_json::json!([]);
                json["type"] = serde_json::json!("grant");
                return serde_json::from_value(json).unwrap();
            }
            grant.into()
        }
        7 if rng.chance(40) => EndEvent::new(subject, gen_purposes(rng, doc), at).into(),
        7 | 8 => WithdrawEvent::new(subject, gen_purposes(rng, doc), at).into(),
        _ if rng.chance(40) => EraseEvent::new(subject, at).into(),
        _ => {
            let (purposes, level) = (gen_purposes(rng, doc), rng.pick(&LEVELS));
            GrantEvent::new(subject, purposes, level, at).by_guardian(rng.chance(30)).into()
        }
    }
}

#[derive(Clone, Debug)]
struct Ask {
    request: AccessRequest<'static>,
    t: DateTime<Utc>,
}

fn gen_request(rng: &mut Rng, doc: &PolicyDocument, events: &[ConsentEvent]) -> Ask {
    let all_purposes = reference::purposes(doc);
    let all_categories = reference::categories(doc);
    let nodes_under = |all: &[String], name: &str| -> Vec<String> {
        all.iter().filter(|n| reference::under(n, name)).cloned().collect()
    };
    // Most requests aim at one rule and mostly stay within its terms, so that the
    // checks go deep; the rest are anywhere.
    let rule = (rng.chance(90) && !doc.rules.is_empty()).then(|| rng.pick(&doc.rules));
    let aimed = |rng: &mut Rng, percent: u64| rule.is_some() && rng.chance(percent);
    let p = match &rule {
        Some(rule) => {
            let named = rng.pick(&rule.purposes).as_str().to_owned();
            if rng.chance(50) {
                named
            } else {
                rng.pick(&nodes_under(&all_purposes, &named))
            }
        }
        None => rng.pick(&all_purposes),
    };
    let categories: Vec<DataCategory> = if aimed(rng, 85) {
        let rule = rule.as_ref().unwrap();
        let mut list = Vec::new();
        for _ in 0..1 + rng.below(2) {
            let c = rng.pick(&rule.categories).as_str().to_owned();
            let pick = rng.pick(&nodes_under(&all_categories, &c));
            if !list.contains(&category(&pick)) {
                list.push(category(&pick));
            }
        }
        list
    } else {
        rng.subset(&all_categories, 2).iter().map(|c| category(c)).collect()
    };
    // Boundaries: an event's own time, a grant's expiry.
    let expiries: Vec<DateTime<Utc>> = events
        .iter()
        .filter_map(|e| match e {
            ConsentEvent::Grant(g) => g.expires_at,
            _ => None,
        })
        .collect();
    let t = if rng.chance(15) && !events.is_empty() {
        rng.pick(events).at().unwrap_or_else(base)
    } else if rng.chance(5) && !expiries.is_empty() {
        rng.pick(&expiries)
    } else {
        gen_time(rng)
    };
    let subject = if rng.chance(85) { rng.pick(&SUBJECTS[..3]) } else { SUBJECTS[3] };
    let mut request = AccessRequest::new(subject.to_owned(), purpose(&p), categories);
    request.action =
        if aimed(rng, 85) { rng.pick(rule.as_ref().unwrap().effective_actions()) } else { rng.pick(&Action::ALL) };
    let any_recipient = |rng: &mut Rng| {
        if rng.chance(50) && !doc.recipients.is_empty() {
            let names: Vec<&String> = doc.recipients.keys().collect();
            let name = rng.pick(&names).clone();
            Recipient::named(doc.recipients[&name].kind, name)
        } else {
            Recipient::kind(rng.pick(&KINDS))
        }
    };
    request.recipient = if aimed(rng, 80) {
        let listed: Vec<String> = rule.as_ref().unwrap().effective_recipients().map(str::to_owned).collect();
        let chosen = rng.pick(&listed);
        match RecipientKind::from_name(&chosen) {
            Some(kind) => {
                let same_kind: Vec<&String> =
                    doc.recipients.iter().filter(|(_, d)| d.kind == kind).map(|(n, _)| n).collect();
                if !same_kind.is_empty() && rng.chance(30) {
                    Recipient::named(kind, rng.pick(&same_kind).clone())
                } else {
                    Recipient::kind(kind)
                }
            }
            None => Recipient::named(doc.recipients[&chosen].kind, chosen),
        }
    } else if rng.chance(50) {
        Recipient::FIRST_PARTY
    } else {
        any_recipient(rng)
    };
    request.deidentification = if aimed(rng, 80) {
        rng.pick(&DEIDS).max(rule.as_ref().unwrap().effective_deidentification())
    } else {
        rng.pick(&DEIDS)
    };
    if rng.chance(15) {
        // The basis the caller relies on: mostly one the rule lists.
        request.basis = Some(if aimed(rng, 60) {
            rng.pick(&rule.as_ref().unwrap().basis.iter().collect::<Vec<_>>())
        } else {
            rng.pick(&LegalBasis::ALL)
        });
    }
    request.region = if aimed(rng, 70) {
        let rule = rule.as_ref().unwrap();
        let storage = doc.policy.storage_regions.clone().unwrap_or_else(|| vec![doc.policy.home_region]);
        let mut pool: Vec<Region> = rule.effective_regions(&storage).to_vec();
        for r in rule.transfer_regions.iter().flatten() {
            match r.as_str() {
                "*" => pool.push(region(rng.pick(&REGIONS))),
                code => pool.push(region(code)),
            }
        }
        Some(rng.pick(&pool))
    } else {
        rng.chance(50).then(|| region(rng.pick(&REGIONS)))
    };
    let dnt = rng.chance(8);
    request.signals = Signals::default().with_dnt(dnt).with_gpc(rng.chance(8));
    let limit_hours = match rule.as_ref().and_then(|r| r.retention) {
        Some(Retention::Hours(n)) => i64::from(n),
        Some(Retention::Days(n)) => i64::from(n) * 24,
        Some(Retention::Years(n)) => i64::from(n) * 365 * 24,
        _ => 800 * 24,
    };
    if rng.chance(85) {
        let back = match rng.below(20) {
            0 => limit_hours,
            1 => limit_hours + 1,
            2..=15 => rng.range(0, limit_hours),
            _ => rng.range(-48, 2 * limit_hours + 48),
        };
        request.collected_at = Some(t - Duration::hours(back));
    }
    if rng.chance(60) {
        let s = rng.pick(&["s1", "s2"]);
        request.collected_session = Some(s.to_owned().into());
        request.session = Some(s.to_owned().into());
    } else {
        let sessions = [None, Some(""), Some("s1"), Some("s2")];
        request.collected_session = rng.pick(&sessions).map(|s| s.to_owned().into());
        request.session = rng.pick(&sessions).map(|s| s.to_owned().into());
    }
    if rng.chance(15) {
        // SEMANTICS 4: a request's own time never moves a check.
        request.at = Some(gen_time(rng));
    }
    Ask { request, t }
}

// ---------------------------------------------------------------------------------
// Running one case
// ---------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Case {
    doc: PolicyDocument,
    events: Vec<ConsentEvent>,
    asks: Vec<Ask>,
    /// Subjects whose state the guard cannot read: the store it replays holds an
    /// event of theirs the policy cannot apply (quarantined).
    unreadable: Vec<String>,
}

/// The five seed policies of `examples/policies/`, as documents.
fn seed_policies() -> &'static [PolicyDocument] {
    static SEEDS: std::sync::OnceLock<Vec<PolicyDocument>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        ["exmo", "kmengai", "aimate", "nexacore", "aiart"]
            .iter()
            .map(|name| {
                let path = format!("{}/examples/policies/{name}.toml", env!("CARGO_MANIFEST_DIR"));
                Policy::from_toml_file(&path).unwrap().document().clone()
            })
            .collect()
    })
}

fn gen_case(seed: u64, requests: usize) -> Case {
    let mut rng = Rng(seed);
    let generated = gen_policy(&mut rng);
    // One case in ten runs on a seed policy as shipped.
    let doc = if rng.chance(10) { rng.pick(seed_policies()) } else { generated };
    let mut events = Vec::new();
    for subject in &SUBJECTS[..3] {
        for _ in 0..1 + rng.below(7) {
            events.push(gen_event(&mut rng, &doc, subject));
        }
    }
    // Interleave subjects as a service would record them.
    for i in (1..events.len()).rev() {
        let j = rng.below(i + 1);
        events.swap(i, j);
    }
    let asks = (0..requests).map(|_| gen_request(&mut rng, &doc, &events)).collect();
    let unreadable = if rng.chance(10) { vec![rng.pick(&SUBJECTS).to_owned()] } else { Vec::new() };
    Case { doc, events, asks, unreadable }
}

/// One disagreement.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Finding {
    /// The guard accepted (true) or rejected (false) an event the reference does not.
    Record { event: usize, guard_accepts: bool },
    /// check, prepared and reference verdicts (code, allowed).
    Decision { ask: usize, check: (String, bool), prepared: (String, bool), reference: (String, bool) },
    /// Another form of the question (`what_if`, the dry-run `decide`s) answered
    /// otherwise than the reference at the time it stands for, or marked wrongly as a
    /// what-if.
    Form {
        ask: usize,
        form: &'static str,
        got: (String, bool, bool),
        reference: (String, bool, bool),
        /// The check of the same request disagrees too (most likely one cause).
        with_check: bool,
    },
}

impl Finding {
    /// What groups findings of one kind.
    fn signature(&self, case: &Case) -> String {
        match self {
            Finding::Record { event, guard_accepts } => {
                let e = &case.events[*event];
                let later = matches!(e, ConsentEvent::Grant(g) if g.policy_version.as_deref().is_some_and(|v| {
                    reference::version(v).is_some_and(|v| Some(v) > reference::version(&case.doc.policy.version))
                }));
                if later && *guard_accepts {
                    "S5 record accepts a grant whose version is later than the policy's".to_owned()
                } else {
                    format!("record {} guard_accepts={guard_accepts}", e.kind())
                }
            }
            Finding::Form { form, got, reference, with_check, .. } => {
                let also = if *with_check { " (its check disagrees too: see that class)" } else { "" };
                format!("{form}: got (code, allowed, what_if) = {got:?}, reference {reference:?}{also}")
            }
            Finding::Decision { ask, check, prepared, reference } => match attribute(case, *ask) {
                // A reading of the reference: by codes, to see what the fast path does.
                Some(point) if point.starts_with('R') => {
                    let request = &case.asks[*ask].request;
                    let rule = reference::rule_for(&case.doc, request.purpose.as_str()).map(|i| &case.doc.rules[i]);
                    let exempt = rule.is_some_and(|r| r.basis == LegalBasis::Consent)
                        && request.deidentification == Deidentification::Anonymized;
                    let which = if exempt { "R1 anonymized_exempt transfer" } else { "R2 non-consent transfer" };
                    format!("{which} (reading): check={} reference={}", check.0, reference.0)
                }
                Some(point) if point.starts_with("S8") => {
                    let request = &case.asks[*ask].request;
                    let rule = reference::rule_for(&case.doc, request.purpose.as_str()).map(|i| &case.doc.rules[i]);
                    if rule.is_some_and(|r| r.known_subject == Some(true)) {
                        format!(
                            "R8 known_subject: a subject known only by events after the decision time (reading): \
                             check={} reference={}",
                            check.0, reference.0
                        )
                    } else {
                        point.to_owned()
                    }
                }
                Some(point) => point.to_owned(),
                None => {
                    let tags = tags(case, &case.asks[*ask]);
                    format!(
                        "unattributed [{}]: check={} prepared={} reference={}",
                        tags.join(", "),
                        check.0,
                        prepared.0,
                        reference.0
                    )
                }
            },
        }
    }
}

/// Whether the ask at `index` of the case agrees on all three sides.
fn agrees(case: &Case, index: usize) -> bool {
    run(case).is_some_and(|found| !found.iter().any(|f| matches!(f, Finding::Decision { ask, .. } if *ask == index)))
}

/// Which settled point explains a disagreement: the first change of the input that
/// makes both readings coincide (the old and the settled meaning give the same answer
/// on it) and makes the sides agree.
fn attribute(case: &Case, index: usize) -> Option<&'static str> {
    // Only the ask at fault matters.
    let case = &Case {
        doc: case.doc.clone(),
        events: case.events.clone(),
        asks: vec![case.asks[index].clone()],
        unreadable: case.unreadable.clone(),
    };
    let index = 0;
    let subject = case.asks[index].request.subject.to_string();
    let t = case.asks[index].t;
    type Neutralize = fn(&mut Case, usize, &str, DateTime<Utc>);
    let points: [(&'static str, Neutralize); 8] = [
        ("S4 a request's own at moves the check", |c, i, _, _| c.asks[i].request.at = None),
        ("S4 empty session or future collected_at", |c, i, _, t| {
            let r = &mut c.asks[i].request;
            if r.session.as_deref() == Some("") {
                r.session = None;
            }
            if r.collected_session.as_deref() == Some("") {
                r.collected_session = None;
            }
            if r.collected_at.is_some_and(|at| at > t) {
                r.collected_at = None;
            }
        }),
        ("S8 opt-out deems consent for unknown subjects", |c, _, s, _| {
            c.events.push(SubjectEvent::new(s).at(base()).into());
        }),
        ("R transfer on a basis without consent (reading)", |c, i, _, _| {
            // The request moves to a regular region of its rule.
            let doc = &c.doc;
            let storage = doc.policy.storage_regions.clone().unwrap_or_else(|| vec![doc.policy.home_region]);
            let rule = reference::rule_for(doc, c.asks[i].request.purpose.as_str()).map(|r| &doc.rules[r]);
            let regular = rule.and_then(|r| r.regions.clone()).unwrap_or(storage);
            c.asks[i].request.region = regular.first().copied();
        }),
        ("S2 an erased subject is a minor at every time", |c, _, s, _| {
            c.events.retain(|e| !(e.subject() == s && matches!(e, ConsentEvent::Erase(_))));
        }),
        ("S2 age facts (29 February, youngest wins, silence forgets nothing)", |c, _, s, _| {
            c.events.retain(|e| !(e.subject() == s && matches!(e, ConsentEvent::Subject(_) | ConsentEvent::Erase(_))));
        }),
        ("S6 scope recipients", |c, _, s, _| {
            for e in &mut c.events {
                if let ConsentEvent::Grant(g) = e {
                    if g.subject == s {
                        if let Some(scope) = &mut g.scope {
                            scope.recipients.clear();
                        }
                    }
                }
            }
        }),
        ("S5 versions (grant versions later than the policy)", |c, _, s, _| {
            let current = c.doc.policy.version.clone();
            for e in &mut c.events {
                if let ConsentEvent::Grant(g) = e {
                    if g.subject == s {
                        let later = g
                            .policy_version
                            .as_deref()
                            .is_some_and(|v| reference::version(v) > reference::version(&current));
                        if later {
                            g.policy_version = Some(current.clone());
                        }
                    }
                }
            }
        }),
    ];
    for (name, neutralize) in points {
        let mut changed = case.clone();
        neutralize(&mut changed, index, &subject, t);
        if agrees(&changed, index) {
            return Some(name);
        }
    }
    // Several points at once: every change together.
    let mut changed = case.clone();
    for (_, neutralize) in points {
        neutralize(&mut changed, index, &subject, t);
    }
    if agrees(&changed, index) {
        return Some("several settled points at once (S2/S4/S5/S6/S8)");
    }
    // Points that no change of the input neutralises: named by what the request involves.
    let tags = tags(case, &case.asks[index]);
    ["S3 purpose with children", "S1 parent of a sensitive category"].into_iter().find(|point| tags.contains(point))
}

/// What a request involves, for disagreements no single change explains.
fn tags(case: &Case, ask: &Ask) -> Vec<&'static str> {
    let doc = &case.doc;
    let request = &ask.request;
    let mut tags = Vec::new();
    if reference::leaves_under(doc, request.purpose.as_str()) != [request.purpose.as_str().to_owned()] {
        tags.push("S3 purpose with children");
    }
    let marked: Vec<String> = reference::SENSITIVE_BUILTINS
        .iter()
        .map(|s| (*s).to_owned())
        .chain(doc.vocabulary.sensitive.iter().map(|c| c.as_str().to_owned()))
        .collect();
    if request
        .categories
        .iter()
        .any(|c| reference::is_sensitive(doc, c.as_str()) && !marked.iter().any(|m| reference::under(c.as_str(), m)))
    {
        tags.push("S1 parent of a sensitive category");
    }
    if request.at.is_some() {
        tags.push("request at");
    }
    if case.events.iter().any(|e| e.subject() == request.subject.as_ref()) {
        tags.push("subject has events");
    }
    tags
}

thread_local! {
    /// While set, how often the reference gave each code (the main runs only, not the
    /// shrinker's).
    static COUNTING: std::cell::RefCell<Option<BTreeMap<&'static str, u64>>> = const { std::cell::RefCell::new(None) };
}

/// Runs a case; every disagreement. The case is valid by construction; `None` from
/// compile means a shrinking step broke it. After an event the two sides judge
/// differently, the reference goes on with what the guard recorded.
fn run(case: &Case) -> Option<Vec<Finding>> {
    let policy = Policy::compile(case.doc.clone(), "random.toml").ok()?;
    let clock = Arc::new(FixedClock::new(base()));
    let mut builder = Guard::builder(policy).clock(Arc::clone(&clock));
    if !case.unreadable.is_empty() {
        // A grant under a later policy version, written by another replica: this
        // guard quarantines its subject.
        let store = MemoryConsentStore::new();
        let later = format!("{}.0", reference::version(&case.doc.policy.version).unwrap()[0] + 1);
        let poison: Vec<ConsentEvent> = case
            .unreadable
            .iter()
            .map(|subject| {
                let mut grant =
                    GrantEvent::new(subject.clone(), vec![purpose("service")], ConsentLevel::Explicit, base());
                grant.policy_version = Some(later.clone());
                grant.into()
            })
            .collect();
        store.append(&poison).unwrap();
        builder = builder.store(store);
    }
    let guard = builder.build().unwrap();
    let readable = |subject: &str| !case.unreadable.iter().any(|s| s == subject);
    let mut findings = Vec::new();
    let mut accepted = Vec::new();
    // Handles resolved before any event: the subjects are unknown then, so these
    // checks take the index path; handles resolved later take the record hint.
    let ask_subjects: Vec<String> = case.asks.iter().map(|ask| ask.request.subject.to_string()).collect();
    let early_handles: Vec<_> = ask_subjects.iter().map(|subject| guard.subject_handle(subject)).collect();
    for (index, event) in case.events.iter().enumerate() {
        let guard_accepts = guard.record(event).is_ok();
        if guard_accepts != reference::accepts(&case.doc, event) {
            findings.push(Finding::Record { event: index, guard_accepts });
        }
        if guard_accepts {
            accepted.push(event.clone());
        }
    }
    for (index, ask) in case.asks.iter().enumerate() {
        clock.set(ask.t);
        let checked = guard.check(&ask.request);
        let check = (shown(&checked), checked.allowed());
        // The template's own subject is not used: make it another one.
        let mut template = ask.request.clone();
        template.subject = "template-subject".into();
        let prepared_access = guard.prepare(&template);
        let prepared_decision = prepared_access.check(&ask.request.subject);
        let prepared = (shown(&prepared_decision), prepared_decision.allowed());
        let subject_readable = readable(&ask.request.subject);
        let verdict = reference::decide_state(&case.doc, &accepted, &ask.request, ask.t, subject_readable);
        COUNTING.with(|counting| {
            if let Some(codes) = counting.borrow_mut().as_mut() {
                *codes.entry(verdict.code).or_insert(0) += 1;
            }
        });
        let reference = (shown_reference(&verdict), verdict.allowed);
        let with_check = check != reference || prepared != reference;
        if with_check {
            findings.push(Finding::Decision { ask: index, check, prepared, reference });
        }
        for (name, decision) in [("check", &checked), ("prepared check", &prepared_decision)] {
            // Their codes were compared above; here only the mark.
            if decision.is_what_if() {
                findings.push(Finding::Form {
                    ask: index,
                    form: name,
                    got: (decision.code().as_str().to_owned(), decision.allowed(), true),
                    reference: (verdict.code.to_owned(), verdict.allowed, false),
                    with_check: false,
                });
            }
        }
        // SEMANTICS 4: checks are never what-ifs; `what_if` answers for its time and says
        // so; the dry runs decide at the request's own `at` (a what-if) or the clock.
        let mut form = |name: &'static str, d: &consent_guard::Decision<'_>, at: DateTime<Utc>, what_if: bool| {
            let v = reference::decide_state(&case.doc, &accepted, &ask.request, at, subject_readable);
            let got = (d.code().as_str().to_owned(), d.allowed(), d.is_what_if());
            let expected = (v.code.to_owned(), v.allowed, what_if);
            if got != expected {
                findings.push(Finding::Form { ask: index, form: name, got, reference: expected, with_check });
            }
        };
        let other = ask.request.at.unwrap_or(ask.t - Duration::days(30));
        form("what_if", &guard.what_if(&ask.request, other), other, true);
        let own = ask.request.at.unwrap_or(ask.t);
        form("decide", &guard.decide(&ask.request), own, ask.request.at.is_some());
        let mut template_at = template.clone();
        template_at.at = ask.request.at;
        form(
            "prepared decide",
            &guard.prepare(&template_at).decide(&ask.request.subject),
            own,
            ask.request.at.is_some(),
        );
        // Subject handles (issue 20): the same decisions as by id.
        let late = guard.subject_handle(&ask.request.subject);
        form("check_handle", &guard.check_handle(&ask.request, &late), ask.t, false);
        form("prepared check_handle", &prepared_access.check_handle(&late), ask.t, false);
        form(
            "prepared check_handle, resolved early",
            &prepared_access.check_handle(&early_handles[index]),
            ask.t,
            false,
        );
        form(
            "prepared decide_handle",
            &guard.prepare(&template_at).decide_handle(&late),
            own,
            ask.request.at.is_some(),
        );
    }
    Some(findings)
}

/// A decision's code, and on an allow the basis it names (`legal_basis@contract`).
fn shown(decision: &consent_guard::Decision<'_>) -> String {
    match decision.basis() {
        Some(basis) => format!("{}@{basis}", decision.code().as_str()),
        None => decision.code().as_str().to_owned(),
    }
}

/// The reference's verdict as [`shown`] writes a decision.
fn shown_reference(verdict: &reference::Verdict) -> String {
    match verdict.basis {
        Some(basis) => format!("{}@{basis}", verdict.code),
        None => verdict.code.to_owned(),
    }
}

/// Greedy minimisation keeping the same kind of disagreement.
fn shrink(mut case: Case, finding: &Finding) -> Case {
    let signature = finding.signature(&case);
    let still = |c: &Case| -> bool { run(c).is_some_and(|found| found.iter().any(|f| f.signature(c) == signature)) };
    // Keep only the ask (or event) at fault.
    if let Finding::Decision { ask, .. } = finding {
        let mut c = case.clone();
        c.asks = vec![case.asks[*ask].clone()];
        if still(&c) {
            case = c;
        }
    } else if let Finding::Record { event, .. } = finding {
        let mut c = case.clone();
        c.events = vec![case.events[*event].clone()];
        c.asks.clear();
        if still(&c) {
            case = c;
        }
    }
    let mut progress = true;
    while progress {
        progress = false;
        for i in (0..case.events.len()).rev() {
            let mut c = case.clone();
            c.events.remove(i);
            if still(&c) {
                case = c;
                progress = true;
            }
        }
        for i in (0..case.doc.rules.len()).rev() {
            let mut c = case.clone();
            c.doc.rules.remove(i);
            if still(&c) {
                case = c;
                progress = true;
            }
        }
        let names: Vec<String> = case.doc.recipients.keys().cloned().collect();
        for name in names {
            let mut c = case.clone();
            c.doc.recipients.remove(&name);
            if still(&c) {
                case = c;
                progress = true;
            }
        }
        let edits: Vec<fn(&mut Case)> = vec![
            |c| c.doc.vocabulary.sensitive.clear(),
            |c| {
                c.doc.vocabulary.purposes.pop();
            },
            |c| {
                c.doc.vocabulary.categories.pop();
            },
            |c| c.doc.policy.separate_consent_for = None,
            |c| c.doc.policy.storage_regions = None,
            |c| c.doc.minors = None,
            |c| c.unreadable.clear(),
            |c| {
                c.events.retain(|e| !matches!(e, ConsentEvent::End(_)));
            },
            |c| {
                for r in &mut c.doc.rules {
                    r.retention_after_end = None;
                }
            },
            |c| {
                if let Some(m) = &mut c.doc.minors {
                    m.guardian_level = None;
                }
            },
            |c| {
                if let Some(m) = &mut c.doc.minors {
                    m.sensitive_under = None;
                }
            },
            |c| {
                for r in &mut c.doc.rules {
                    r.retention = None;
                    r.retention_until_anonymized = None;
                    r.separate_consent_lifts_retention = None;
                }
            },
            |c| {
                for r in &mut c.doc.rules {
                    r.opt_out_signals = None;
                    r.changed_in = None;
                }
            },
            |c| {
                for r in &mut c.doc.rules {
                    r.actions = None;
                    r.deidentification = None;
                    r.anonymized_exempt = None;
                    r.known_subject = None;
                    r.with_consent = None;
                    r.anonymized_level = None;
                }
            },
            |c| {
                for r in &mut c.doc.rules {
                    r.transfer_regions = None;
                    r.regions = None;
                }
            },
            |c| {
                for r in &mut c.doc.rules {
                    r.recipients = None;
                }
            },
            |c| {
                for r in &mut c.doc.rules {
                    r.categories.truncate(1);
                    r.purposes.truncate(1);
                }
            },
            |c| {
                for a in &mut c.asks {
                    a.request.at = None;
                }
            },
            |c| {
                for a in &mut c.asks {
                    a.request.signals = Signals::default();
                    a.request.region = None;
                }
            },
            |c| {
                for a in &mut c.asks {
                    a.request.collected_at = None;
                    a.request.collected_session = None;
                    a.request.session = None;
                }
            },
            |c| {
                for a in &mut c.asks {
                    a.request.action = Action::Use;
                    a.request.deidentification = Deidentification::None;
                }
            },
            |c| {
                for a in &mut c.asks {
                    a.request.recipient = Recipient::FIRST_PARTY;
                }
            },
            |c| {
                for a in &mut c.asks {
                    let first = a.request.categories[0].clone();
                    a.request.categories = vec![first].into();
                }
            },
            |c| {
                for e in &mut c.events {
                    if let ConsentEvent::Grant(g) = e {
                        g.scope = None;
                        g.expires_at = None;
                        g.policy_version = None;
                        g.by_guardian = false;
                    }
                }
            },
        ];
        for edit in &edits {
            let mut c = case.clone();
            edit(&mut c);
            if still(&c) && format!("{c:?}") != format!("{case:?}") {
                case = c;
                progress = true;
            }
        }
    }
    case
}

/// A reproducer: the policy as TOML, the events as JSON lines, the request as JSON
/// with its decision time.
fn describe(case: &Case, finding: &Finding) -> String {
    let mut text = String::new();
    text.push_str(&format!("disagreement: {}\n\n", finding.signature(case)));
    text.push_str("```toml\n");
    text.push_str(&toml::to_string(&case.doc).unwrap_or_else(|e| format!("<toml: {e}>")));
    text.push_str("```\n\nevents (recorded in this order):\n\n```json\n");
    for event in &case.events {
        text.push_str(&serde_json::to_string(event).unwrap());
        if let Some(list) = match event {
            ConsentEvent::Grant(g) => g.scope.as_ref().and_then(Scope::empty_list),
            _ => None,
        } {
            text.push_str(&format!("  (with {list}: [] written)"));
        }
        text.push('\n');
    }
    text.push_str("```\n");
    if !case.unreadable.is_empty() {
        text.push_str(&format!("\nquarantined (unreadable) subjects: {:?}\n", case.unreadable));
    }
    let ask = match finding {
        Finding::Decision { ask, .. } | Finding::Form { ask, .. } => Some(*ask),
        Finding::Record { .. } => None,
    };
    if let Some(ask) = ask {
        let ask = &case.asks[ask];
        text.push_str(&format!(
            "\nrequest, decided at {} (FixedClock):\n\n```json\n{}\n```\n",
            ask.t.to_rfc3339(),
            serde_json::to_string(&ask.request).unwrap(),
        ));
    }
    match finding {
        Finding::Decision { check, prepared, reference, .. } => {
            text.push_str(&format!("\ncheck: {check:?}, prepared: {prepared:?}, reference: {reference:?}\n"));
        }
        Finding::Form { form, got, reference, .. } => {
            let at = match *form {
                "what_if" => "what_if at the request's `at`, else 30 days before the clock",
                "decide" | "prepared decide" | "prepared decide_handle" => "at the request's `at`, else the clock",
                _ => "at the clock",
            };
            text.push_str(&format!("\n{form} ({at}): got {got:?}, reference {reference:?} (code, allowed, what_if)\n"));
        }
        Finding::Record { .. } => {}
    }
    text
}

const REQUESTS_PER_CASE: usize = 16;

/// Runs `cases` decisions (in groups of `REQUESTS_PER_CASE` per generated policy and
/// history) and returns one minimised reproducer per kind of disagreement, with
/// its count.
fn differential(cases: u64) -> BTreeMap<String, (u64, String)> {
    let replaying = std::env::var("DIFF_SEED").is_ok();
    let policies = if replaying { 1 } else { cases.div_ceil(REQUESTS_PER_CASE as u64).max(1) };
    let mut runner = TestRunner::new(Config { cases: policies as u32, failure_persistence: None, ..Config::default() });
    let found = std::cell::RefCell::new(BTreeMap::<String, (u64, String)>::new());
    let coverage = std::cell::RefCell::new(BTreeMap::<&'static str, u64>::new());
    let started = std::time::Instant::now();
    // DIFF_SEED=<seed> replays the one generated case of a report.
    let replay = std::env::var("DIFF_SEED").ok().and_then(|v| v.parse::<u64>().ok());
    let strategy = match replay {
        Some(seed) => Just(seed).boxed(),
        None => any::<u64>().boxed(),
    };
    let result = runner.run(&strategy, |seed| {
        let case = gen_case(seed, REQUESTS_PER_CASE);
        let codes = COUNTING.with(|c| c.borrow_mut().replace(BTreeMap::new()));
        let outcome = run(&case);
        let mine = COUNTING.with(|c| std::mem::replace(&mut *c.borrow_mut(), codes));
        for (code, n) in mine.unwrap_or_default() {
            *coverage.borrow_mut().entry(code).or_insert(0) += n;
        }
        // Every generated policy is valid by construction.
        let outcome = outcome.unwrap_or_else(|| {
            let error = Policy::compile(case.doc.clone(), "random.toml").err();
            panic!("generated an invalid policy (seed {seed}): {error:?}\n{}", toml::to_string(&case.doc).unwrap())
        });
        for finding in outcome {
            let signature = finding.signature(&case);
            let mut found = found.borrow_mut();
            let entry = found.entry(signature.clone()).or_insert((0, String::new()));
            entry.0 += 1;
            if entry.1.is_empty() {
                let small = shrink(case.clone(), &finding);
                let small_finding = run(&small)
                    .and_then(|all| all.into_iter().find(|f| f.signature(&small) == signature))
                    .unwrap_or_else(|| finding.clone());
                entry.1 = format!("seed {seed}\n{}", describe(&small, &small_finding));
            }
        }
        Ok(())
    });
    result.unwrap();
    let coverage = coverage.into_inner();
    let total: u64 = coverage.values().sum();
    let mut line = format!(
        "{total} decisions over {policies} generated policies in {:.1} s; reference codes:",
        started.elapsed().as_secs_f64()
    );
    for (code, n) in &coverage {
        line.push_str(&format!(" {code} {n},"));
    }
    let mut found = found.into_inner();
    found.insert(" summary".to_owned(), (0, line));
    found
}

fn report(found: &BTreeMap<String, (u64, String)>, cases: u64) {
    let mut text = format!("{cases} cases asked, {} kinds of disagreement\n", found.len() - 1);
    text.push_str(&found[" summary"].1);
    text.push('\n');
    for (signature, (count, example)) in found.iter().filter(|(s, _)| *s != " summary") {
        text.push_str(&format!("\n==== {signature}: {count} case(s)\n{example}\n"));
    }
    let path = concat!(env!("CARGO_TARGET_TMPDIR"), "/differential-report.md");
    std::fs::write(path, &text).unwrap();
    eprintln!("{text}\nreport written to {path}");
}

fn cases_from_env(default: u64) -> u64 {
    std::env::var("DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn check_prepared_and_reference_agree() {
    let cases = cases_from_env(10_000);
    let found = differential(cases);
    report(&found, cases);
    assert!(found.len() == 1, "{} kinds of disagreement, see the report above", found.len() - 1);
}

#[test]
#[ignore = "long run: cargo test --release --all-features --test differential -- --ignored"]
fn check_prepared_and_reference_agree_long() {
    let cases = cases_from_env(1_000_000);
    let found = differential(cases);
    report(&found, cases);
    assert!(found.len() == 1, "{} kinds of disagreement, see the report above", found.len() - 1);
}
