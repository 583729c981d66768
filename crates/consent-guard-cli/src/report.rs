//! `explain --format markdown|html|json`: one table per policy for reviewers, a row per
//! rule, in words rather than codes, with the sentence of the privacy policy each rule
//! encodes and the lint warnings about it. The HTML is one self-contained file (inline
//! style, no script, nothing fetched).

use std::fmt::Write as _;

use consent_guard::basis::LegalBasis;
use consent_guard::policy::explain::{Explanation, Note, RuleExplanation};
use consent_guard::policy::{ConsentDefault, Retention, Signal};
use consent_guard::request::Deidentification;

/// A warning, as the tables show it.
fn note_text(note: &Note) -> String {
    let name = note.warning.map(|n| format!(" ({n})")).unwrap_or_default();
    match &note.allowed {
        Some(reason) => format!("accepted warning{name}: {}; reason: {reason}", note.message),
        None => format!("warning{name}: {}", note.message),
    }
}

/// One row, in words.
struct Row {
    clause: String,
    purposes: String,
    basis: String,
    level: String,
    categories: String,
    recipients: String,
    regions: String,
    retention: String,
    signals: String,
    source: String,
    notes: Vec<String>,
}

fn basis_words(basis: LegalBasis) -> &'static str {
    match basis.as_str() {
        "consent" => "Consent",
        "contract" => "Contract (needed for the service asked for)",
        "legal_obligation" => "Legal obligation",
        "national_security" => "National security or defence",
        "public_interest" => "Public safety, health or major public interest",
        "criminal_justice" => "Criminal investigation, prosecution or trial",
        "vital_interest" => "Protecting life or property",
        "publicly_disclosed" => "Data made public by the person, or lawfully public",
        "news_reporting" => "Legitimate news reporting",
        "service_security" => "Safe and stable operation of the service",
        "research_deidentified" => "Research on de-identified data",
        other => other,
    }
}

fn kind_words(name: &str) -> String {
    match name {
        "first_party" => "us".to_owned(),
        "affiliate" => "our affiliates".to_owned(),
        "processor" => "processors (acting on our instructions)".to_owned(),
        "third_party" => "third parties (independent)".to_owned(),
        "public" => "the public".to_owned(),
        "authority" => "authorities".to_owned(),
        other => other.to_owned(),
    }
}

fn retention_words(retention: Option<Retention>) -> String {
    match retention {
        None => "not limited by the policy".to_owned(),
        Some(Retention::Session) => "only within the session that collected it".to_owned(),
        Some(Retention::Hours(n)) => format!("{n} hours"),
        Some(Retention::Days(n)) => format!("{n} days"),
        Some(Retention::Years(n)) => format!("{n} years"),
    }
}

fn row(explanation: &Explanation, rule: &RuleExplanation) -> Row {
    let level = match rule.level {
        None => "no consent needed".to_owned(),
        Some(level) => {
            let default = match rule.default.unwrap_or_default() {
                ConsentDefault::OptIn => "opt-in: off until granted".to_owned(),
                ConsentDefault::OptOut if rule.known_subject => {
                    "opt-out: on until withdrawn, for people who used the service".to_owned()
                }
                ConsentDefault::OptOut => "opt-out: on until withdrawn".to_owned(),
            };
            let exempt = if rule.anonymized_exempt { "; anonymized data needs none" } else { "" };
            format!("{level} consent at least; {default}{exempt}")
        }
    };
    let mut categories = rule
        .categories
        .iter()
        .map(|c| if c.sensitive { format!("{} (sensitive)", c.name) } else { c.name.to_string() })
        .collect::<Vec<_>>()
        .join(", ");
    match rule.deidentification {
        Deidentification::None => {}
        level => {
            let _ = write!(categories, "; {level} only");
        }
    }
    let recipients = rule
        .recipients
        .iter()
        .map(|name| match explanation.recipients.iter().find(|r| &r.name == name) {
            Some(named) => {
                let declared = &named.declaration;
                format!("{name} ({})", declared.description.as_deref().unwrap_or(declared.kind.as_str()))
            }
            None => kind_words(name),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut regions = rule.regions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    match rule.transfer_regions.as_slice() {
        [] => {}
        list if list.iter().any(|r| r == "*") => {
            regions.push_str("; to any other region with separate consent naming it");
        }
        list => {
            let _ = write!(regions, "; to {} with separate consent naming it", list.join(", "));
        }
    }
    let signals = match rule.opt_out_signals.as_slice() {
        [] => String::new(),
        list => {
            let names: Vec<&str> = list
                .iter()
                .map(|s| match s {
                    Signal::Dnt => "Do Not Track",
                    Signal::Gpc => "Global Privacy Control",
                })
                .collect();
            format!("{} switch it off", names.join(", "))
        }
    };
    let mut purposes = rule.purposes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    if !rule.default_actions {
        let actions = rule.actions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let _ = write!(purposes, " (only: {actions})");
    }
    let mut notes: Vec<String> = rule.warnings.iter().map(note_text).collect();
    if let Some(version) = &rule.changed_in {
        notes.insert(0, format!("consent given before version {version} must be renewed"));
    }
    Row {
        clause: rule.clause.clone(),
        purposes,
        basis: rule.basis.iter().map(basis_words).collect::<Vec<_>>().join("; or "),
        level,
        categories,
        recipients,
        regions,
        retention: retention_words(rule.retention),
        signals,
        source: rule.source.clone().unwrap_or_default(),
        notes,
    }
}

const HEADERS: [&str; 11] = [
    "Purpose",
    "Basis",
    "Consent",
    "Data",
    "Recipients",
    "Regions",
    "Retention",
    "Signals",
    "Clause",
    "The privacy policy says",
    "Notes",
];

fn cells(row: &Row) -> [String; 11] {
    [
        row.purposes.clone(),
        row.basis.clone(),
        row.level.clone(),
        row.categories.clone(),
        row.recipients.clone(),
        row.regions.clone(),
        row.retention.clone(),
        row.signals.clone(),
        row.clause.clone(),
        row.source.clone(),
        row.notes.join("; "),
    ]
}

fn title(explanation: &Explanation) -> String {
    let mut title = format!("Policy {} {}", explanation.policy, explanation.version);
    if let Some(source) = &explanation.source {
        let _ = write!(title, ": {source}");
    }
    title
}

fn rows(explanation: &Explanation) -> Vec<Row> {
    explanation.rules.iter().map(|rule| row(explanation, rule)).collect()
}

/// The Markdown table.
pub(crate) fn markdown(explanation: &Explanation) -> String {
    let other = &explanation.warnings;
    let mut out = format!("# {}\n\n", escape_md(&title(explanation)));
    let _ = writeln!(out, "Home region {}. Any purpose without a row is denied by default.\n", explanation.home_region);
    for note in other {
        let _ = writeln!(out, "- {}", escape_md(&note_text(note)));
    }
    if !other.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len()));
    for row in rows(explanation) {
        let cells: Vec<String> = cells(&row).iter().map(|c| escape_md(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

fn escape_md(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// A fixed layout with a share of the width per column: the table always fits the
// window, and long names wrap inside their cell.
const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d1d1f}\
h1{font-size:1.4rem}p.meta{color:#555}\
table{border-collapse:collapse;width:100%;table-layout:fixed;font-size:.85rem}\
th,td{border:1px solid #ccc;padding:.4rem .5rem;vertical-align:top;text-align:left;overflow-wrap:anywhere}\
th{background:#f0f2f5}tr:nth-child(even) td{background:#fafafa}\
col.purpose{width:11%}col.basis{width:8%}col.consent{width:9%}col.data{width:12%}col.recipients{width:10%}\
col.regions{width:6%}col.retention{width:7%}col.signals{width:5%}col.clause{width:9%}col.quote{width:16%}\
col.notes{width:7%}td.quote{font-style:italic}td.clause{font-family:ui-monospace,monospace}\
.warning{color:#8a4b00}.accepted{color:#2f6b2f}ul.notes{padding-left:1.2rem}";

/// One self-contained HTML page.
pub(crate) fn html(explanation: &Explanation) -> String {
    let other = &explanation.warnings;
    let title = escape_html(&title(explanation));
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\">Home region {}. One row per rule; any purpose without a row is denied by default.</p>",
        escape_html(explanation.home_region.as_str())
    );
    if !other.is_empty() {
        out.push_str("<ul class=\"notes\">\n");
        for note in other {
            let class = if note.allowed.is_some() { "accepted" } else { "warning" };
            let _ = writeln!(out, "<li class=\"{class}\">{}</li>", escape_html(&note_text(note)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<table id=\"rules\">\n<colgroup>");
    for class in [
        "purpose",
        "basis",
        "consent",
        "data",
        "recipients",
        "regions",
        "retention",
        "signals",
        "clause",
        "quote",
        "notes",
    ] {
        let _ = write!(out, "<col class=\"{class}\">");
    }
    out.push_str("</colgroup>\n<thead><tr>");
    for header in HEADERS {
        let _ = write!(out, "<th>{header}</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (row, rule) in rows(explanation).iter().zip(&explanation.rules) {
        let cells = cells(row);
        let _ = write!(out, "<tr data-clause=\"{}\">", escape_html(&rule.clause));
        for (index, cell) in cells.iter().enumerate() {
            let class = match index {
                8 => " class=\"clause\"",
                9 => " class=\"quote\"",
                _ => "",
            };
            if index == 10 {
                out.push_str("<td>");
                for note in &row.notes {
                    let class = if note.starts_with("accepted") {
                        "accepted"
                    } else if note.starts_with("warning") {
                        "warning"
                    } else {
                        "info"
                    };
                    let _ = write!(out, "<div class=\"{class}\">{}</div>", escape_html(note));
                }
                out.push_str("</td>");
            } else {
                let _ = write!(out, "<td{class}>{}</td>", escape_html(cell));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    out
}

/// The description as JSON, with codes rather than words (what `GET /v1/policy`
/// answers).
pub(crate) fn json(explanation: &Explanation) -> String {
    serde_json::to_string_pretty(explanation).unwrap_or_default()
}
