//! A grant cannot be sent to another thread to be serialised later: the thread may
//! outlive the record (E0597).
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
    let log = record();
    let granted = guard.open(&log, &Access::new(Purpose::SECURITY_OPERATIONS)).unwrap();
    let export = std::thread::spawn(move || serde_json::to_string(&granted).unwrap());
    println!("{}", export.join().unwrap());
}
