//! There is no way to unwrap the value: `.into_inner()` does not compile (E0599).
use consent_guard::sealed::{Personal, Tags};
use consent_guard::DataCategory;

fn record() -> Personal<String> {
    Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("secret"))
}

fn main() {
    let log = record();
    let value: String = log.into_inner();
    println!("{value}");
}
