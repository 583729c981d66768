//! The value cannot be taken out by a pattern either (E0451).
use consent_guard::sealed::{Personal, Tags};
use consent_guard::DataCategory;

fn record() -> Personal<String> {
    Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("secret"))
}

fn main() {
    let Personal { value, .. } = record();
    println!("{value}");
}
