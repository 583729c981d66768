//! The PostgreSQL side (feature `postgres`): the snapshot as a table loaded by COPY,
//! and the filter as a fragment for the WHERE of the user's own query, with its
//! parameters. No value is ever written into the text; identifiers are quoted.
//!
//! The fragment is one `EXISTS` (or `NOT EXISTS`, when the guard allows subjects it
//! does not know) on the snapshot table by subject: PostgreSQL plans it as a hash or
//! merge semi-join (anti-join), not a function called per row. The row facts are
//! tested in the join's filter against the parameters (T, the retention window, the
//! session) and, for the collection time, against the subject's cutoff (the snapshot
//! table's `ended_before`: see `docs/filters.md`, "Ends of a purpose").
//!
//! ```text
//! SELECT * FROM behaviour_logs t WHERE <fragment>      -- parameters $1..$n
//! ```

use std::fmt::Write as _;

use bytes::Bytes;
use consent_guard::error::StoreError;
use consent_guard::filter::{Application, RowTest, Snapshot};
use futures_util::SinkExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

/// Why SQL cannot be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// An identifier PostgreSQL cannot take.
    #[error("identifier {name:?}: {problem}")]
    Identifier {
        /// The name.
        name: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// PostgreSQL refused.
    #[error("postgresql: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The store could not lend a connection.
    #[error("the consent store: {0}")]
    Store(#[from] StoreError),
}

/// `"name"`, with quotes doubled.
///
/// # Errors
///
/// For an empty name, a NUL, or more than 63 bytes (PostgreSQL would truncate it).
pub fn quote_ident(name: &str) -> Result<String, SqlError> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.contains('\0') {
        Some("contains NUL")
    } else if name.len() > 63 {
        Some("is longer than 63 bytes")
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(SqlError::Identifier { name: name.to_owned(), problem });
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// How the user's table holds subject ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectType {
    /// `text` / `varchar`: compared as is.
    #[default]
    Text,
    /// `bigint`: compared as its decimal text, the guard's subject id.
    BigInt,
}

/// Where the fragment goes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SqlOptions {
    /// The user's table as named in its query's FROM (a table name or an alias).
    pub rows: String,
    /// The snapshot table ([`load_snapshot`]).
    pub snapshot_table: String,
    /// The number of the first parameter (`$1` unless the query has its own before).
    pub first_parameter: usize,
    /// The subject column's type.
    pub subject_type: SubjectType,
}

impl SqlOptions {
    /// Rows of `rows` (name or alias), snapshot in `snapshot_table`, parameters from
    /// `$1`, text subjects.
    pub fn new(rows: impl Into<String>, snapshot_table: impl Into<String>) -> SqlOptions {
        SqlOptions {
            rows: rows.into(),
            snapshot_table: snapshot_table.into(),
            first_parameter: 1,
            subject_type: SubjectType::Text,
        }
    }

    /// The number of the first parameter.
    #[must_use]
    pub fn first_parameter(mut self, number: usize) -> SqlOptions {
        self.first_parameter = number.max(1);
        self
    }

    /// The subject column's type.
    #[must_use]
    pub fn subject_type(mut self, subject_type: SubjectType) -> SqlOptions {
        self.subject_type = subject_type;
        self
    }
}

/// One parameter of a fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SqlParam {
    /// A `bigint` (T in milliseconds).
    BigInt(i64),
    /// A `text` (a timestamp in RFC 3339, cast in the text; a session).
    Text(String),
}

/// A WHERE fragment and its parameters.
#[derive(Clone, Debug)]
pub struct SqlFilter {
    text: String,
    params: Vec<SqlParam>,
    names: Vec<&'static str>,
}

impl SqlFilter {
    /// The fragment, to AND into the query's WHERE.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its parameters, in order from `first_parameter`.
    pub fn params(&self) -> &[SqlParam] {
        &self.params
    }

    /// The parameters as tokio-postgres takes them.
    pub fn to_sql(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|param| match param {
                SqlParam::BigInt(value) => value as &(dyn ToSql + Sync),
                SqlParam::Text(value) => value as &(dyn ToSql + Sync),
            })
            .collect()
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A `timestamptz` in PostgreSQL's input syntax (years before 1 as `BC`); `None` or
/// a time past chrono's range is `infinity`.
fn pg_timestamptz(ms: Option<i64>) -> String {
    use chrono::Datelike as _;
    match ms.and_then(chrono::DateTime::from_timestamp_millis) {
        None => "infinity".to_owned(),
        Some(t) if t.year() >= 1 => t.format("%Y-%m-%d %H:%M:%S%.3f+00").to_string(),
        Some(t) => format!("{:04}-{} BC", 1 - i64::from(t.year()), t.format("%m-%d %H:%M:%S%.3f+00")),
    }
}

/// Where a value comes from: a numbered parameter, or (row-level security, which
/// takes none) a setting of the session.
enum Source {
    Numbered(usize),
    Settings,
}

struct Builder {
    source: Source,
    params: Vec<SqlParam>,
    names: Vec<&'static str>,
}

impl Builder {
    /// The text standing for `value`, cast to `sql_type`.
    fn value(&mut self, name: &'static str, value: SqlParam, sql_type: &str) -> String {
        self.params.push(value);
        self.names.push(name);
        match self.source {
            Source::Numbered(first) => {
                let cast = if sql_type == "bigint" { "bigint" } else { "text" };
                let text = format!("${}::{cast}", first + self.params.len() - 1);
                if sql_type == "timestamptz" {
                    format!("{text}::timestamptz")
                } else {
                    text
                }
            }
            // `(SELECT …)`: evaluated once per query, not per row.
            Source::Settings => format!("(SELECT current_setting('consent_guard.{name}')::{sql_type})"),
        }
    }
}

fn build(application: &Application<'_>, options: &SqlOptions, source: Source) -> Result<SqlFilter, SqlError> {
    let rows = quote_ident(&options.rows)?;
    let snapshot = quote_ident(&options.snapshot_table)?;
    let filter = application.filter();
    let facts = filter.rows();
    let subject_raw = format!("{rows}.{}", quote_ident(&facts.subject)?);
    let subject = match options.subject_type {
        SubjectType::Text => subject_raw.clone(),
        SubjectType::BigInt => format!("({subject_raw})::text"),
    };
    let mut builder = Builder { source, params: Vec::new(), names: Vec::new() };
    let at = builder.value("at_ms", SqlParam::BigInt(application.at_millis()), "bigint");
    let collected = facts.collected_at.as_deref().map(quote_ident).transpose()?.map(|c| format!("{rows}.{c}"));
    // The guard floors a collection time to its millisecond: anything before the
    // millisecond after T is at or before T.
    let mut after_t = None;
    let mut before_next = |builder: &mut Builder| {
        after_t
            .get_or_insert_with(|| {
                let next = application.at_millis().saturating_add(1);
                builder.value("collected_before", SqlParam::Text(rfc3339(next)), "timestamptz")
            })
            .clone()
    };
    // The row test, never null.
    let fresh = match filter.row_test() {
        RowTest::CollectedWithin { .. } => {
            let column = collected.clone().unwrap_or_else(|| "NULL::timestamptz".to_owned());
            let (low, _) = application.collected_window().unwrap_or((i64::MAX, i64::MIN));
            let low = builder.value("collected_from", SqlParam::Text(rfc3339(low)), "timestamptz");
            let high = before_next(&mut builder);
            format!("COALESCE({column} >= {low} AND {column} < {high}, false)")
        }
        RowTest::SameSession { column, session: Some(session) } => {
            let column = format!("{rows}.{}", quote_ident(column)?);
            let session = builder.value("session", SqlParam::Text(session.clone()), "text");
            format!("COALESCE({column} = {session}, false)")
        }
        RowTest::SameSession { session: None, .. } => "false".to_owned(),
        RowTest::Fixed { passes } => passes.to_string(),
        _ => "true".to_owned(),
    };
    let by_fact = match fresh.as_str() {
        "true" => "cg_s.fresh_allowed".to_owned(),
        "false" => "cg_s.stale_allowed".to_owned(),
        _ => format!("CASE WHEN {fresh} THEN cg_s.fresh_allowed ELSE cg_s.stale_allowed END"),
    };
    // Where the rows carry their collection time, a subject's ends bear on it: a row
    // not collected in (cutoff, T] (`ended_before` is the millisecond after the
    // cutoff) takes `ended`. Without the column, the snapshot holds no cutoff.
    let by_fact = match &collected {
        Some(column) => {
            let high = before_next(&mut builder);
            format!(
                "CASE WHEN cg_s.ended_before IS NOT NULL AND NOT COALESCE({column} >= cg_s.ended_before AND {column} < {high}, false) \
                 THEN COALESCE(cg_s.ended_allowed, false) ELSE {by_fact} END"
            )
        }
        None => by_fact,
    };
    let allowed = format!("(cg_s.until_ms > {at} AND {by_fact})");
    let held =
        |condition: &str| format!("SELECT 1 FROM {snapshot} cg_s WHERE cg_s.subject = {subject} AND {condition}");
    let unknown = application.snapshot().unknown();
    let text = match (unknown.fresh().is_allow(), unknown.stale().is_allow()) {
        (false, false) => format!("({subject_raw} IS NOT NULL AND EXISTS ({}))", held(&allowed)),
        (true, true) => format!("({subject_raw} IS NOT NULL AND NOT EXISTS ({}))", held(&format!("NOT {allowed}"))),
        (fresh_only, _) => {
            let unknown_allows = if fresh_only { fresh.clone() } else { format!("NOT {fresh}") };
            format!(
                "({subject_raw} IS NOT NULL AND (({unknown_allows} AND NOT EXISTS ({})) OR (NOT {unknown_allows} AND EXISTS ({}))))",
                held(&format!("NOT {allowed}")),
                held(&allowed)
            )
        }
    };
    Ok(SqlFilter { text, params: builder.params, names: builder.names })
}

/// The WHERE fragment answering, for each row of `options.rows`, what the guard
/// answers at the application's time, from the snapshot loaded in
/// `options.snapshot_table`.
///
/// # Errors
///
/// When an identifier cannot be quoted.
pub fn fragment(application: &Application<'_>, options: &SqlOptions) -> Result<SqlFilter, SqlError> {
    build(application, options, Source::Numbered(options.first_parameter))
}

/// A generated row-level security policy: the statements that enable it on the
/// table, and the settings (`consent_guard.*`) each session must set
/// ([`RlsPolicy::apply_settings`]) before it reads: a policy takes no parameters.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RlsPolicy {
    /// `ALTER TABLE … ENABLE ROW LEVEL SECURITY` (and `FORCE`, so that the table's
    /// owner is filtered too), `CREATE POLICY …`. A session that has not set the
    /// settings gets an error, never the rows.
    pub statements: String,
    /// The settings and their values.
    pub settings: Vec<(String, String)>,
}

impl RlsPolicy {
    /// Sets the policy's settings for this session (`set_config`, values as
    /// parameters).
    ///
    /// # Errors
    ///
    /// When PostgreSQL refuses.
    pub async fn apply_settings(&self, client: &Client) -> Result<(), SqlError> {
        for (name, value) in &self.settings {
            client.execute("SELECT set_config($1, $2, false)", &[name, value]).await?;
        }
        Ok(())
    }
}

/// A row-level security policy named `policy` on `options.rows` (a table name here)
/// for SELECT, with the fragment's test.
///
/// # Errors
///
/// When an identifier cannot be quoted.
pub fn row_level_security(
    application: &Application<'_>,
    options: &SqlOptions,
    policy: &str,
) -> Result<RlsPolicy, SqlError> {
    let built = build(application, options, Source::Settings)?;
    let (table, policy) = (quote_ident(&options.rows)?, quote_ident(policy)?);
    let statements = format!(
        "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\nALTER TABLE {table} FORCE ROW LEVEL SECURITY;\nDROP POLICY IF EXISTS {policy} ON {table};\nCREATE POLICY {policy} ON {table} FOR SELECT USING {};",
        built.text
    );
    let settings = built
        .names
        .iter()
        .zip(&built.params)
        .map(|(name, value)| {
            let value = match value {
                SqlParam::BigInt(v) => v.to_string(),
                SqlParam::Text(v) => v.clone(),
            };
            (format!("consent_guard.{name}"), value)
        })
        .collect();
    Ok(RlsPolicy { statements, settings })
}

/// COPY text format: backslash, tab, newline and carriage return escaped.
fn copy_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Loads the snapshot into `table` (created if missing, emptied otherwise) by one
/// COPY, and its watermark into `<table>_watermark`, in one transaction; then
/// analyzes the table so that the planner joins by hash. Returns the rows loaded.
///
/// # Errors
///
/// When PostgreSQL refuses (the transaction is rolled back).
pub async fn load_snapshot(client: &Client, table: &str, snapshot: &Snapshot) -> Result<u64, SqlError> {
    let quoted = quote_ident(table)?;
    let meta = quote_ident(&format!("{table}_watermark"))?;
    client.batch_execute("BEGIN").await?;
    let result = load(client, &quoted, &meta, snapshot).await;
    match result {
        Ok(rows) => {
            client.batch_execute("COMMIT").await?;
            client.batch_execute(&format!("ANALYZE {quoted}")).await?;
            Ok(rows)
        }
        Err(error) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(error)
        }
    }
}

async fn load(client: &Client, table: &str, meta: &str, snapshot: &Snapshot) -> Result<u64, SqlError> {
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (subject text PRIMARY KEY, fresh_allowed boolean NOT NULL, \
             stale_allowed boolean NOT NULL, until_ms bigint NOT NULL, fresh text NOT NULL, stale text NOT NULL, \
             ended_before timestamptz, ended_allowed boolean, ended text);\n\
             CREATE TABLE IF NOT EXISTS {meta} (position bigint NOT NULL, at_ms bigint NOT NULL, \
             policy_version text NOT NULL, unknown_fresh text NOT NULL, unknown_stale text NOT NULL);\n\
             TRUNCATE {table}; TRUNCATE {meta};"
        ))
        .await?;
    let sink = client
        .copy_in::<_, Bytes>(&format!(
            "COPY {table} (subject, fresh_allowed, stale_allowed, until_ms, fresh, stale, ended_before, ended_allowed, ended) FROM STDIN"
        ))
        .await?;
    let mut sink = Box::pin(sink);
    let mut chunk = String::with_capacity(1 << 16);
    for (subject, entry) in snapshot.iter() {
        copy_text(&mut chunk, subject);
        let _ = write!(
            chunk,
            "\t{}\t{}\t{}\t{}\t{}",
            entry.fresh().is_allow(),
            entry.stale().is_allow(),
            entry.until_millis(),
            entry.fresh().as_str(),
            entry.stale().as_str()
        );
        let _ = match entry.ended() {
            // The millisecond after the cutoff: a time before it floors to one at or
            // before the cutoff.
            Some((cutoff, code)) => {
                writeln!(chunk, "\t{}\t{}\t{}", pg_timestamptz(cutoff.checked_add(1)), code.is_allow(), code.as_str())
            }
            None => writeln!(chunk, "\t\\N\t\\N\t\\N"),
        };
        if chunk.len() >= 1 << 16 {
            sink.send(Bytes::from(std::mem::replace(&mut chunk, String::with_capacity(1 << 16)))).await?;
        }
    }
    if !chunk.is_empty() {
        sink.send(Bytes::from(chunk)).await?;
    }
    let rows = sink.as_mut().finish().await?;
    let watermark = snapshot.watermark();
    let position = i64::try_from(watermark.position).unwrap_or(i64::MAX);
    let (fresh, stale) = (snapshot.unknown().fresh().as_str(), snapshot.unknown().stale().as_str());
    client
        .execute(
            &format!("INSERT INTO {meta} VALUES ($1, $2, $3, $4, $5)"),
            &[&position, &watermark.at.timestamp_millis(), &snapshot.policy_version(), &fresh, &stale],
        )
        .await?;
    Ok(rows)
}

/// As [`load_snapshot`], through a connection of the PostgreSQL consent store: the
/// snapshot lands in the database that holds the consent events.
///
/// # Errors
///
/// As [`load_snapshot`], or when the store lends no connection.
pub async fn load_snapshot_into_store(
    store: &consent_guard_postgres::PostgresConsentStore,
    table: &str,
    snapshot: &Snapshot,
) -> Result<u64, SqlError> {
    let connection = store.connection().await?;
    load_snapshot(&connection, table, snapshot).await
}
