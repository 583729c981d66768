//! A grant borrows the record: it cannot be kept past the record's scope (E0597).
use consent_guard::sealed::{Access, Personal, SealedAccess, Tags};
use consent_guard::{DataCategory, Guard, Policy, Purpose};

fn record() -> Personal<String> {
    Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("secret"))
}

fn guard() -> Guard {
    Guard::new(Policy::from_toml_file("examples/policies/exmo.toml").unwrap())
}

fn main() {
    let guard = guard();
    let access = Access::new(Purpose::SECURITY_OPERATIONS);
    let granted;
    {
        let log = record();
        granted = guard.open(&log, &access).unwrap();
    }
    println!("{}", granted.len());
}
