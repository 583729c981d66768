//! Values selected in bulk borrow their records: they cannot outlive them (E0597).
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
    let kept: Vec<&String>;
    {
        let records = vec![record(), record()];
        kept = guard.select(&records, &access).collect();
    }
    println!("{}", kept.len());
}
