//! Filters a PostgreSQL table with the generated fragment: the consent snapshot is
//! loaded by COPY, and the user's own query gets the fragment in its WHERE, with its
//! parameters.
//!
//! ```text
//! . .ci/postgres   # or set CONSENT_GUARD_POSTGRES_URL
//! cargo run -p consent-guard-filter --features postgres --example postgres_filter
//! ```
#![expect(clippy::unwrap_used, reason = "an example")]

use consent_guard::filter::{Apply, FilterSpec, RowFacts};
use consent_guard::{AccessRequest, ConsentEvent, DataCategory, Deidentification, FixedClock, Guard, Policy, Purpose};
use consent_guard_filter::sql::{self, SqlOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Ok(url) = std::env::var("CONSENT_GUARD_POSTGRES_URL") else {
        eprintln!("set CONSENT_GUARD_POSTGRES_URL (`. .ci/postgres` starts a private server)");
        return;
    };
    let now = "2026-03-01T00:00:00Z".parse().unwrap();
    let policy =
        Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies/exmo.toml")).unwrap();
    let guard = Guard::builder(policy).clock(FixedClock::new(now)).build().unwrap();
    for n in (0..1000).step_by(3) {
        let grant = format!(
            r#"{{"type":"grant","subject":"user-{n}","purposes":["ai_training"],"level":"explicit","at":"2026-01-05T00:00:00Z"}}"#
        );
        guard.record(&serde_json::from_str::<ConsentEvent>(&grant).unwrap()).unwrap();
    }
    let training = AccessRequest::new("", Purpose::AI_TRAINING_MODEL_TRAINING, &[DataCategory::BEHAVIOR_LOG][..])
        .deidentification(Deidentification::Anonymized);
    let filter = guard.filter(FilterSpec::new(training, RowFacts::new("user_id"))).unwrap();
    let snapshot = guard.snapshot(&filter).unwrap();
    let application = filter.apply(&snapshot, now, Apply::Live).unwrap();

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TEMP TABLE behaviour_logs AS
                 SELECT g AS id, 'user-' || (g % 1000) AS user_id, 'task_created' AS event
                 FROM generate_series(1, 100000) g;
             ANALYZE behaviour_logs;",
        )
        .await
        .unwrap();
    let loaded = sql::load_snapshot(&client, "cg_training_snapshot", &snapshot).await.unwrap();
    let fragment = sql::fragment(&application, &SqlOptions::new("t", "cg_training_snapshot")).unwrap();
    let query = format!("SELECT count(*) FROM behaviour_logs t WHERE {}", fragment.text());
    println!("loaded {loaded} subjects; the query:\n  {query}\n  parameters: {:?}", fragment.params());
    let allowed: i64 = client.query_one(&query, &fragment.to_sql()).await.unwrap().get(0);
    println!("{allowed} of 100000 rows allowed for training");
    client.batch_execute("DROP TABLE cg_training_snapshot, cg_training_snapshot_watermark").await.unwrap();
}
