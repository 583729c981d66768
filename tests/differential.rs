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
//! (the subject unknown then: the index path), and `PreparedAccess::decide_handle`.
//! The batches (issue 31: read in groups, every record loaded before any is decided)
//! answer each subject as one check would: `PreparedAccess::check_batch` and
//! `check_handles` over every ask's subject (early and late handles), each ask's own
//! subject held to the reference. One case in ten runs on a seed policy of `examples/policies/` instead of a generated one.
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

use chrono::{DateTime, Duration, Utc};
use consent_guard::consent::{GrantEvent, Scope, SubjectEvent};
use consent_guard::policy::PolicyDocument;
use consent_guard::store::{ConsentStore, MemoryConsentStore};
use consent_guard::{
    Action, ConsentEvent, ConsentLevel, Deidentification, FixedClock, Guard, LegalBasis, Policy, Recipient, Signals,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

mod generators;
use generators::*;

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
    let late_handles: Vec<_> = ask_subjects.iter().map(|subject| guard.subject_handle(subject)).collect();
    // Longer than a group of the grouped reads: the second half is another group.
    let twice: Vec<&str> = ask_subjects.iter().chain(&ask_subjects).map(String::as_str).collect();
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
        // The batches: every ask's subject in one batch (early and late handles mixed,
        // so a group holds known, unknown and unreadable subjects, some twice); the
        // ask's own subject, at its place, must answer as the reference.
        let by_ids = prepared_access.check_batch(&twice);
        form("prepared check_batch", &by_ids[index], ask.t, false);
        form("prepared check_batch, second group", &by_ids[index + ask_subjects.len()], ask.t, false);
        let mixed: Vec<_> = early_handles
            .iter()
            .zip(&late_handles)
            .enumerate()
            .map(|(at, (early, late))| if (at + index) % 2 == 0 { *early } else { *late })
            .collect();
        form("prepared check_handles", &prepared_access.check_handles(&mixed)[index], ask.t, false);
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
