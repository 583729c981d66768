//! The value is a private field: reading it without the guard does not compile (E0616).
use consent_guard::sealed::{Personal, Tags};
use consent_guard::DataCategory;

fn record() -> Personal<String> {
    Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("secret"))
}

fn main() {
    let log = record();
    let value: &String = &log.value;
    println!("{value}");
}
