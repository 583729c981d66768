//! A grant cannot be serialised once the scope it was granted in is gone: stashing it
//! for a later export does not compile (E0597).
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
    let mut export = Vec::new();
    {
        let log = record();
        export.push(guard.open(&log, &access).unwrap());
    }
    println!("{}", serde_json::to_string(&export).unwrap());
}
