//! What is owed to the subjects: deletions the policy makes due, with the deadlines
//! of its `[rights]` section, counted in calendar or working days (issue 27).
//!
//! A [`Deadline`] is written as in the privacy policy: `"72h"`, `"15d"`, `"15 days"`,
//! `"15 working days"`. Working days are Monday to Friday, unless a [`Calendar`] (a
//! holiday calendar the user supplies as data, see `docs/erasure.md`) says a date is a
//! holiday or an adjusted working day. [`crate::Guard::owed`] and
//! [`crate::Guard::owed_all`] list the deletions due, as [`Owed`] entries.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::category::DataCategory;
use crate::purpose::Purpose;

/// The longest deadline a policy may state, in days (working or not): longer ones are
/// an error rather than a count that runs for ever.
pub const MAX_DEADLINE_DAYS: u32 = 3650;

/// How long a deletion owed may take, as the policy states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// A number of hours.
    Hours(u32),
    /// A number of calendar days.
    Days(u32),
    /// A number of working days ([`Calendar`]).
    WorkingDays(u32),
}

impl Deadline {
    /// The instant by which a deletion due at `due` must be done: `due` plus the hours
    /// or days; for working days, the end of the `n`th working day after the day of
    /// `due` (in the calendar's time zone, UTC without a calendar). `None` when the
    /// instant is out of range.
    pub fn after(self, due: DateTime<Utc>, calendar: Option<&Calendar>) -> Option<DateTime<Utc>> {
        match self {
            Deadline::Hours(n) => due.checked_add_signed(Duration::hours(i64::from(n))),
            Deadline::Days(n) => due.checked_add_signed(Duration::days(i64::from(n))),
            Deadline::WorkingDays(n) => {
                let offset = calendar.map_or(FixedOffset::east_opt(0)?, |c| c.offset);
                let mut day = due.with_timezone(&offset).date_naive();
                let mut counted = 0u32;
                // Bounded: every week has working days unless a calendar says otherwise
                // for a whole year, which the bound cuts short.
                let limit = u64::from(n.min(MAX_DEADLINE_DAYS)) * 7 + 400;
                for _ in 0..limit {
                    if counted >= n {
                        break;
                    }
                    day = day.succ_opt()?;
                    if calendar.map_or_else(|| Calendar::weekday_works(day), |c| c.is_working_day(day)) {
                        counted += 1;
                    }
                }
                if counted < n {
                    return None;
                }
                let end = day.succ_opt()?.and_hms_opt(0, 0, 0)?;
                offset.from_local_datetime(&end).single().map(|t| t.with_timezone(&Utc))
            }
        }
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deadline::Hours(n) => write!(f, "{n}h"),
            Deadline::Days(n) => write!(f, "{n} days"),
            Deadline::WorkingDays(n) => write!(f, "{n} working days"),
        }
    }
}

impl std::str::FromStr for Deadline {
    type Err = String;
    fn from_str(text: &str) -> Result<Deadline, String> {
        let bad = || format!("`{text}` is not a deadline: write \"72h\", \"15d\", \"15 days\" or \"15 working days\"");
        let text = text.trim();
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = text.split_at(digits);
        let n: u32 = number.parse().map_err(|_| bad())?;
        let unit = unit.trim();
        let deadline = match unit {
            "h" | "hour" | "hours" => Deadline::Hours(n),
            "d" | "day" | "days" => Deadline::Days(n),
            "working day" | "working days" | "working_days" | "wd" => Deadline::WorkingDays(n),
            _ => return Err(bad()),
        };
        let days = match deadline {
            Deadline::Hours(h) => h / 24,
            Deadline::Days(d) | Deadline::WorkingDays(d) => d,
        };
        if days > MAX_DEADLINE_DAYS {
            return Err(format!("`{text}` is longer than {MAX_DEADLINE_DAYS} days"));
        }
        Ok(deadline)
    }
}

impl Serialize for Deadline {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Deadline {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Deadline, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Deadline {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Deadline".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+ ?(h|hours?|d|days?|working[ _]days?|wd)$",
            "description": "\"72h\", \"15d\", \"15 days\" or \"15 working days\""
        })
    }
}

/// Which days are working days: Monday to Friday, but for the calendar's holidays
/// (never working days) and adjusted working days (weekend days that are).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    name: String,
    offset: FixedOffset,
    holidays: BTreeSet<NaiveDate>,
    working_days: BTreeSet<NaiveDate>,
}

/// A calendar file that cannot be used: where, which field, why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct CalendarError {
    /// The file (as given).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field at fault (`holidays`, `working_days`, `utc_offset`, ...).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Calendar {
    /// A calendar with no holidays, in UTC: working days are Monday to Friday.
    pub fn weekdays() -> Calendar {
        Calendar {
            name: "weekdays".to_owned(),
            offset: FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("0 is a valid offset")),
            holidays: BTreeSet::new(),
            working_days: BTreeSet::new(),
        }
    }

    /// The calendar's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn weekday_works(day: NaiveDate) -> bool {
        !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// Whether `day` is a working day.
    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        if self.holidays.contains(&day) {
            return false;
        }
        self.working_days.contains(&day) || Calendar::weekday_works(day)
    }

    /// Reads a calendar file (format: `docs/erasure.md`, "Holiday calendars").
    ///
    /// # Errors
    ///
    /// When the file cannot be read, or is not a calendar: the error names
    /// `file:line:column` and the field.
    #[cfg(feature = "toml")]
    pub fn from_toml_file(path: impl AsRef<std::path::Path>) -> Result<Calendar, CalendarError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        // A calendar is a few hundred bytes: a bound keeps a wrong path (a device, a
        // huge file) from being read whole.
        const MAX_BYTES: u64 = 1 << 20;
        let read = std::fs::File::open(path).and_then(|f| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_BYTES + 1), &mut text).map(|_| text)
        });
        let text = read.map_err(|e| CalendarError {
            file: file.clone(),
            line: 1,
            column: 1,
            field: "file".to_owned(),
            message: e.to_string(),
        })?;
        if text.len() as u64 > MAX_BYTES {
            return Err(CalendarError {
                file,
                line: 1,
                column: 1,
                field: "file".to_owned(),
                message: format!("larger than {MAX_BYTES} bytes"),
            });
        }
        Calendar::from_toml_str(&text, &file)
    }

    /// As [`Calendar::from_toml_file`], from text; `file` names it in errors.
    ///
    /// # Errors
    ///
    /// As [`Calendar::from_toml_file`].
    #[cfg(feature = "toml")]
    pub fn from_toml_str(text: &str, file: &str) -> Result<Calendar, CalendarError> {
        use toml::Spanned;

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct CalendarFile {
            name: String,
            #[serde(default)]
            utc_offset: Option<Spanned<String>>,
            #[serde(default)]
            holidays: Vec<Spanned<String>>,
            #[serde(default)]
            working_days: Vec<Spanned<String>>,
        }
        let at = |offset: usize| {
            let before = text.get(..offset).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, column)
        };
        let error = |offset: usize, field: &str, message: String| {
            let (line, column) = at(offset);
            CalendarError { file: file.to_owned(), line, column, field: field.to_owned(), message }
        };
        let parsed: CalendarFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let message = e.message().trim().to_owned();
            let field = ["name", "utc_offset", "holidays", "working_days"]
                .into_iter()
                .find(|f| message.contains(f))
                .unwrap_or("calendar");
            error(offset, field, message)
        })?;
        let offset = match &parsed.utc_offset {
            None => FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("0 is a valid offset")),
            Some(text) => text.get_ref().parse::<FixedOffset>().map_err(|_| {
                error(text.span().start, "utc_offset", format!("`{}` is not an offset like \"+08:00\"", text.get_ref()))
            })?,
        };
        let dates = |list: &[Spanned<String>], field: &str| -> Result<BTreeSet<NaiveDate>, CalendarError> {
            let mut set = BTreeSet::new();
            for item in list {
                let day = NaiveDate::parse_from_str(item.get_ref(), "%Y-%m-%d").map_err(|_| {
                    error(item.span().start, field, format!("`{}` is not a date like \"2026-01-01\"", item.get_ref()))
                })?;
                if !set.insert(day) {
                    return Err(error(item.span().start, field, format!("{day} is listed twice")));
                }
            }
            Ok(set)
        };
        let holidays = dates(&parsed.holidays, "holidays")?;
        let working_days = dates(&parsed.working_days, "working_days")?;
        if let Some(both) = parsed
            .working_days
            .iter()
            .find(|d| NaiveDate::parse_from_str(d.get_ref(), "%Y-%m-%d").is_ok_and(|day| holidays.contains(&day)))
        {
            return Err(error(
                both.span().start,
                "working_days",
                format!("{} is listed as a holiday too", both.get_ref()),
            ));
        }
        Ok(Calendar { name: parsed.name, offset, holidays, working_days })
    }
}

/// Why a deletion is owed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OwedReason {
    /// The subject was erased.
    SubjectErased,
    /// The subject is a minor and the policy does not serve minors.
    MinorNotServed,
    /// The subject is a minor and no guardian consented to the purpose.
    GuardianConsentMissing,
    /// The subject withdrew consent and the policy deletes on withdrawal
    /// (`[rights] withdrawal_deletes`).
    ConsentWithdrawn,
    /// The data is past the rule's retention.
    RetentionExpired,
    /// The purpose ended for the subject and `retention_after_end` has run.
    PurposeEnded,
}

impl OwedReason {
    /// The name used in decisions' messages and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OwedReason::SubjectErased => "subject_erased",
            OwedReason::MinorNotServed => "minor_not_served",
            OwedReason::GuardianConsentMissing => "guardian_consent_missing",
            OwedReason::ConsentWithdrawn => "consent_withdrawn",
            OwedReason::RetentionExpired => "retention_expired",
            OwedReason::PurposeEnded => "purpose_ended",
        }
    }
}

impl fmt::Display for OwedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One deletion owed: whose data, for which purposes and categories, why, under which
/// clause, since when, and by when. The JSON form is one line of `consent-guard owed`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owed {
    /// The subject; `null` for what is owed of every subject (retention).
    pub subject: Option<String>,
    /// The purposes of the clause whose data is owed.
    pub purposes: Vec<Purpose>,
    /// The categories of the clause.
    pub categories: Vec<DataCategory>,
    /// Why.
    pub reason: OwedReason,
    /// The clause (rule id).
    pub clause: Option<String>,
    /// When the deletion became due.
    pub due: DateTime<Utc>,
    /// Only data collected at or before this instant is owed (retention, the end of a
    /// purpose, a withdrawal); absent: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected_before: Option<DateTime<Utc>>,
    /// Anonymizing the data settles it as well as deleting it
    /// (`retention_until_anonymized`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymizing_suffices: bool,
    /// By when, under the policy's `[rights]`; absent when it states no deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// The deadline has passed and the entry is not settled.
    #[serde(default)]
    pub overdue: bool,
    /// When the audit log last showed a `delete` of the data answered `deletion_due`,
    /// once such decisions, at or after `due`, cover each of the entry's purposes and
    /// categories ([`settle`]); absent: not known to be settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<DateTime<Utc>>,
}

/// Settles entries of `owed` with the audit log's evidence: each subject entry for
/// which `deletions` hold `delete` requests answered `deletion_due` (not what-ifs),
/// about the entry's subject, decided at or after its `due` and by `at`, whose purposes and
/// categories together cover each of its purposes and categories. A settled entry gets
/// `settled_at` (the latest of the decisions it needed) and is no longer `overdue`.
/// Retention entries (every subject's data, `subject` null) are never settled: they
/// fall due again as data ages.
///
/// `deletions` is every record the caller read; records of other kinds are skipped.
/// Only records of a verified log should be given: a damaged one is no evidence.
#[cfg(feature = "json")]
pub fn settle(owed: &mut [Owed], deletions: &[crate::audit::OwnedAuditRecord], at: DateTime<Utc>) {
    use std::collections::HashMap;

    let mut by_subject: HashMap<&str, Vec<&crate::audit::OwnedAuditRecord>> = HashMap::new();
    for record in deletions {
        let decision = &record.decision;
        if decision.code() == crate::ReasonCode::DeletionDue
            && !decision.is_what_if()
            && record.request.action == crate::request::Action::Delete
        {
            by_subject.entry(record.request.subject.as_ref()).or_default().push(record);
        }
    }
    for entry in owed.iter_mut() {
        let Some(subject) = entry.subject.as_deref() else { continue };
        let Some(records) = by_subject.get(subject) else { continue };
        let mut latest: Option<DateTime<Utc>> = None;
        let mut covered = true;
        'pairs: for purpose in &entry.purposes {
            for category in &entry.categories {
                // The earliest decision after `due` that covers the pair.
                let found = records
                    .iter()
                    .filter(|r| r.decision.at() >= entry.due && r.decision.at() <= at)
                    .filter(|r| r.request.purpose.covers(purpose))
                    .filter(|r| r.request.categories.iter().any(|c| c.covers(category)))
                    .map(|r| r.decision.at())
                    .min();
                match found {
                    Some(at) => latest = latest.max(Some(at)),
                    None => {
                        covered = false;
                        break 'pairs;
                    }
                }
            }
        }
        if covered && !entry.purposes.is_empty() && !entry.categories.is_empty() {
            entry.settled_at = latest;
            entry.overdue = false;
        }
    }
}

impl fmt::Debug for Owed {
    /// The subject is redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owed")
            .field("subject", &self.subject.as_ref().map(|_| "<redacted>"))
            .field("purposes", &self.purposes)
            .field("categories", &self.categories)
            .field("reason", &self.reason)
            .field("clause", &self.clause)
            .field("due", &self.due)
            .field("collected_before", &self.collected_before)
            .field("deadline", &self.deadline)
            .field("overdue", &self.overdue)
            .field("settled_at", &self.settled_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn deadlines_parse_as_policies_write_them() {
        for (text, deadline) in [
            ("72h", Deadline::Hours(72)),
            ("15d", Deadline::Days(15)),
            ("15 days", Deadline::Days(15)),
            ("15 working days", Deadline::WorkingDays(15)),
            ("1 working day", Deadline::WorkingDays(1)),
        ] {
            assert_eq!(text.parse::<Deadline>(), Ok(deadline), "{text}");
        }
        for bad in ["", "days", "15", "15 weeks", "-1d", "99999 days", "99999999999d"] {
            assert!(bad.parse::<Deadline>().is_err(), "{bad}");
        }
    }

    #[cfg(feature = "toml")]
    #[test]
    fn the_china_2026_calendar_knows_the_adjusted_working_days() {
        let calendar =
            Calendar::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/calendars/cn-2026.toml"))
                .unwrap_or_else(|e| panic!("{e}"));
        // Sunday 4 January and Saturday 14 February are worked; the Spring Festival
        // week is not.
        assert!(calendar.is_working_day(day("2026-01-04")));
        assert!(calendar.is_working_day(day("2026-02-14")));
        assert!(!calendar.is_working_day(day("2026-02-16")));
        assert!(!calendar.is_working_day(day("2026-10-01")));
        assert!(calendar.is_working_day(day("2026-10-10")));
        assert!(!calendar.is_working_day(day("2026-03-07")), "an ordinary Saturday");
        // 15 working days from Friday 13 February 2026 (Beijing): 14 Feb (Sat, worked),
        // then the holiday to 23 Feb, then 24-27 Feb, 28 Feb (Sat, worked), 2-6 Mar,
        // 9-12 Mar: the 15th is Thursday 12 March, ending at midnight Beijing time.
        let due = "2026-02-13T02:00:00Z".parse::<DateTime<Utc>>().unwrap_or_else(|e| panic!("{e}"));
        let by = Deadline::WorkingDays(15).after(due, Some(&calendar));
        assert_eq!(by, Some("2026-03-12T16:00:00Z".parse().unwrap_or_else(|e| panic!("{e}"))));
        // Without the calendar: 15 weekdays, to Friday 6 March (UTC).
        let plain = Deadline::WorkingDays(15).after(due, None);
        assert_eq!(plain, Some("2026-03-07T00:00:00Z".parse().unwrap_or_else(|e| panic!("{e}"))));
    }

    #[cfg(feature = "toml")]
    #[test]
    fn calendar_errors_name_the_place_and_the_field() {
        let text = "name = \"x\"\nholidays = [\"2026-01-01\", \"2026-13-01\"]\n";
        let error = Calendar::from_toml_str(text, "c.toml").err();
        let error = error.unwrap_or_else(|| panic!("accepted a bad date"));
        assert_eq!((error.line, error.column, error.field.as_str()), (2, 27, "holidays"), "{error}");
        assert!(error.to_string().starts_with("c.toml:2:27: holidays:"), "{error}");
        let both = "name = \"x\"\nholidays = [\"2026-01-01\"]\nworking_days = [\"2026-01-01\"]\n";
        let error = Calendar::from_toml_str(both, "c.toml").err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!((error.line, error.field.as_str()), (3, "working_days"), "{error}");
        let unknown = "name = \"x\"\nholiday = []\n";
        assert!(Calendar::from_toml_str(unknown, "c.toml").is_err());
        let offset = "name = \"x\"\nutc_offset = \"8\"\n";
        let error = Calendar::from_toml_str(offset, "c.toml").err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!((error.line, error.field.as_str()), (2, "utc_offset"), "{error}");
    }
}
