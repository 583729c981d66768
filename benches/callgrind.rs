//! A small, bounded harness for instruction counts under callgrind (BENCHMARKS.md):
//! EXMO, 10,000 subjects with the guard bench's histories, then N allowed-or-denied
//! training checks of random subjects in one of the ways of asking. Run it twice, with
//! N and with 0, and divide the difference by N: setup cancels out.
//!
//! ```sh
//! cargo bench --bench callgrind --no-run
//! valgrind --tool=callgrind target/release/deps/callgrind-* prepared 200000
//! ```
//!
//! Modes: `native`, `check`, `prepared`, `handle`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "a benchmark's setup fails loudly; indices are bounded by construction"
)]

use std::collections::HashMap;
use std::hint::black_box;

use consent_guard::consent::{GrantEvent, WithdrawEvent};
use consent_guard::{
    AccessRequest, ConsentEvent, ConsentLevel, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose,
    SubjectHandle,
};

mod support;
use support::{at, Rng};

const SUBJECTS: u64 = 10_000;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mode = args.next().unwrap_or_else(|| "prepared".into());
    let count: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let policy = Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml")).unwrap();
    let guard = Guard::builder(policy).clock(FixedClock::new(at(150))).build().unwrap();
    let ids: Vec<String> = (0..SUBJECTS).map(|i| format!("u{i}")).collect();
    let mut rng = Rng(0x5EED);
    let mut native: HashMap<u64, (u64, u64)> = HashMap::new();
    for (index, id) in ids.iter().enumerate() {
        let granted = rng.below(2) == 0;
        let withdrawn = rng.below(4) == 0;
        let purpose = if granted { Purpose::AI_TRAINING } else { Purpose::ADVERTISING };
        let mut events =
            vec![ConsentEvent::from(GrantEvent::new(id.clone(), vec![purpose], ConsentLevel::Separate, at(1)))];
        if withdrawn {
            events.push(WithdrawEvent::new(id.clone(), vec![Purpose::AI_TRAINING], at(30)).into());
        }
        guard.record_all(&events).unwrap();
        native.insert(index as u64, (u64::from(granted), u64::from(withdrawn)));
    }
    let template = AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized);
    let prepared = guard.prepare(&template);
    let handles: Vec<SubjectHandle<'_>> = ids.iter().map(|id| guard.subject_handle(id)).collect();
    let mut rng = Rng(42);
    let mut allowed = 0u64;
    for _ in 0..count {
        let subject = rng.below(SUBJECTS) as usize;
        let yes = match mode.as_str() {
            "native" => native.get(&(subject as u64)).is_some_and(|(g, w)| *g == 1 && *w == 0),
            "check" => {
                let mut request = template.clone();
                request.subject = std::borrow::Cow::Borrowed(ids[subject].as_str());
                guard.check(&request).allowed()
            }
            "prepared" => prepared.check(&ids[subject]).allowed(),
            _ => prepared.check_handle(&handles[subject]).allowed(),
        };
        allowed += u64::from(black_box(yes));
    }
    println!("{mode}: {count} checks, {allowed} allowed");
}
