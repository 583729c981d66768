//! `Personal<T>` does not deref to `T`: methods of the value are not reachable
//! through it (E0599). A `Deref` impl would make this compile.
use consent_guard::sealed::{Personal, Tags};
use consent_guard::DataCategory;

fn record() -> Personal<String> {
    Personal::new(Tags::new("u1", DataCategory::BEHAVIOR_LOG, chrono::Utc::now()), String::from("secret"))
}

fn main() {
    let log = record();
    let length = log.len();
    println!("{length}");
}
