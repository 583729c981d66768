//! There is no accessor: `.value()` does not compile (E0599). If someone added
//! `pub fn value(&self) -> &T` to `Personal`, this would compile and the test fail.
use consent_guard::sealed::{Personal, Tags};
use consent_guard::DataCategory;

fn record() -> Personal<String> {
    Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("secret"))
}

fn main() {
    let log = record();
    let value: &String = log.value();
    println!("{value}");
}
