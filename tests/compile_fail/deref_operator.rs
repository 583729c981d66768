//! `Personal<T>` cannot be dereferenced (E0614). A `Deref` impl would make this compile.
use consent_guard::sealed::{Personal, Tags};
use consent_guard::DataCategory;

fn record() -> Personal<String> {
    Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("secret"))
}

fn main() {
    let log = record();
    let value: &String = &*log;
    println!("{value}");
}
