//! A grant cannot be returned past the record it borrows (E0515).
use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
use consent_guard::{DataCategory, Guard, Policy, Purpose};

fn record() -> Personal<String> {
    Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("secret"))
}

fn guard() -> Guard {
    Guard::new(Policy::from_toml_file("examples/policies/exmo.toml").unwrap())
}

fn open_for_later(guard: &Guard) -> consent_guard::sealed::Granted<'static, String> {
    let log = record();
    guard.open(&log, &Access::new(Purpose::SECURITY_OPERATIONS)).unwrap()
}

fn main() {
    let guard = guard();
    println!("{}", open_for_later(&guard).len());
}
