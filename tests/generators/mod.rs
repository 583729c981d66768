//! The random generators of the differential tests: policies, consent histories and
//! requests drawn from a seeded splitmix64 stream. Shared by the root package's
//! `tests/differential.rs` and by `crates/consent-guard-filter/tests/differential.rs`
//! (through `#[path]`), so that both draw the same cases and learn each new rule once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code,
    unreachable_pub,
    missing_docs,
    reason = "test support fails loudly; each including test uses part of it"
)]

use std::collections::BTreeMap;

use super::reference;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use consent_guard::consent::{EndEvent, EraseEvent, GrantEvent, Scope, SubjectEvent, WithdrawEvent};
use consent_guard::policy::{
    ConsentDefault, MinorsSection, PolicyDocument, PolicyHeader, RecipientDeclaration, Retention, RightsSection,
    RuleDocument, SeparateTrigger, Signal, UnknownAge, VocabularySection,
};
use consent_guard::{
    AccessRequest, Action, ConsentEvent, ConsentLevel, DataCategory, Deidentification, LegalBasis, Policy, Purpose,
    Recipient, RecipientKind, Region, Signals,
};
// ---------------------------------------------------------------------------------
// A small seeded generator
// ---------------------------------------------------------------------------------

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % (n.max(1) as u64)) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    pub fn range(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % ((high - low + 1) as u64)) as i64
    }
    /// A non-empty random subset, in the items' order.
    pub fn subset<T: Clone>(&mut self, items: &[T], max: usize) -> Vec<T> {
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

pub fn purpose(name: &str) -> Purpose {
    name.parse().unwrap()
}

pub fn category(name: &str) -> DataCategory {
    name.parse().unwrap()
}

pub fn region(code: &str) -> Region {
    Region::new(code).unwrap()
}

pub const REGIONS: [&str; 5] = ["CN", "SG", "US", "DE", "JP"];
pub const VERSIONS: [&str; 5] = ["1.0", "1.5", "2.0", "2.1", "v3"];
pub const GRANT_VERSIONS: [&str; 9] = ["0.9", "1.0", "1.5", "2.0", "2.0.1", "2.1", "v3", "7.0", "x"];
/// Extensions, each after its parent.
pub const PURPOSE_EXTENSIONS: [&str; 7] = [
    "service.core.video_generation",
    "ai_training.model_training.fine_tune",
    "ai_training.model_training.fine_tune.lora",
    "personalization.recommendation.feed",
    "marketing.campaigns.sms",
    "analytics.usage.heatmap",
    "research.academic.survey",
];
pub const CATEGORY_EXTENSIONS: [&str; 6] = [
    "content.upload.voice_clone",
    "location.precise.gps",
    "location.coarse",
    "behavior.log.search",
    "health.record.lab",
    "device.info.battery",
];
pub const RECIPIENT_NAMES: [&str; 4] = ["ad_partner", "cloud", "umeng", "wechat_login"];
pub const KINDS: [RecipientKind; 6] = [
    RecipientKind::FirstParty,
    RecipientKind::Affiliate,
    RecipientKind::Processor,
    RecipientKind::ThirdParty,
    RecipientKind::Public,
    RecipientKind::Authority,
];
pub const LEVELS: [ConsentLevel; 3] = [ConsentLevel::Implied, ConsentLevel::Explicit, ConsentLevel::Separate];
pub const DEIDS: [Deidentification; 3] =
    [Deidentification::None, Deidentification::Pseudonymized, Deidentification::Anonymized];

pub fn with_parents(names: &[&str], chosen: &[&str]) -> Vec<String> {
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

pub fn gen_policy(rng: &mut Rng) -> PolicyDocument {
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

pub const SUBJECTS: [&str; 4] = ["u1", "u2", "u3", "u4"];

pub fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// Instants of interest: leap days, coming-of-age days, and a spread over four years.
pub fn gen_time(rng: &mut Rng) -> DateTime<Utc> {
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

pub fn gen_purposes(rng: &mut Rng, doc: &PolicyDocument) -> Vec<Purpose> {
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

pub fn gen_event(rng: &mut Rng, doc: &PolicyDocument, subject: &str) -> ConsentEvent {
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
pub struct Ask {
    pub request: AccessRequest<'static>,
    pub t: DateTime<Utc>,
}

pub fn gen_request(rng: &mut Rng, doc: &PolicyDocument, events: &[ConsentEvent]) -> Ask {
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

/// The five seed policies of `examples/policies/`, as documents.
pub fn seed_policies() -> &'static [PolicyDocument] {
    static SEEDS: std::sync::OnceLock<Vec<PolicyDocument>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        ["exmo", "kmengai", "aimate", "nexacore", "aiart"]
            .iter()
            .map(|name| {
                // The root package's tests and the filter crate's include this file.
                let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
                let root =
                    if root.join("examples/policies").is_dir() { root.to_path_buf() } else { root.join("../..") };
                let path = root.join(format!("examples/policies/{name}.toml"));
                Policy::from_toml_file(&path).unwrap().document().clone()
            })
            .collect()
    })
}
