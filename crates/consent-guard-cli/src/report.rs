//! `explain --format markdown|html|json`: one table per policy for reviewers, a row per
//! rule, in words rather than codes, with the sentence of the privacy policy each rule
//! encodes and the lint warnings about it. The HTML is one self-contained file (inline
//! style, no script, nothing fetched).

use std::fmt::Write as _;

use consent_guard::basis::LegalBasis;
use consent_guard::error::Diagnostic;
use consent_guard::policy::{ConsentDefault, Retention, RuleDocument, Signal};
use consent_guard::request::Deidentification;
use consent_guard::Policy;
use serde_json::json;

/// A lint warning shown next to its rule.
pub(crate) struct Note {
    pub(crate) name: Option<&'static str>,
    pub(crate) message: String,
    pub(crate) allowed: Option<String>,
}

impl Note {
    fn text(&self) -> String {
        let name = self.name.map(|n| format!(" ({n})")).unwrap_or_default();
        match &self.allowed {
            Some(reason) => format!("accepted warning{name}: {}; reason: {reason}", self.message),
            None => format!("warning{name}: {}", self.message),
        }
    }
}

/// The warnings of each rule (by the rule's place in the file), then the others.
pub(crate) fn notes(policy: &Policy, text: &str) -> (Vec<Vec<Note>>, Vec<Note>) {
    // A rule's table runs from its `[[rule]]` header to the next one.
    let starts: Vec<usize> =
        text.lines().enumerate().filter(|(_, l)| l.trim() == "[[rule]]").map(|(i, _)| i.saturating_add(1)).collect();
    let mut per_rule: Vec<Vec<Note>> = policy.rules().iter().map(|_| Vec::new()).collect();
    let mut other = Vec::new();
    for warning in policy.warnings() {
        let note = note(warning);
        let index = starts.iter().rposition(|start| *start <= warning.line());
        let first_rule = starts.first().copied().unwrap_or(usize::MAX);
        match index.and_then(|i| per_rule.get_mut(i)) {
            Some(list) if warning.line() >= first_rule => list.push(note),
            _ => other.push(note),
        }
    }
    (per_rule, other)
}

fn note(warning: &Diagnostic) -> Note {
    Note {
        name: warning.warning_name(),
        message: warning.message().to_owned(),
        allowed: warning.allowed().map(str::to_owned),
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

fn row(policy: &Policy, rule: &RuleDocument, notes: &[Note]) -> Row {
    let level = match rule.effective_level() {
        None => "no consent needed".to_owned(),
        Some(level) => {
            let default = match rule.default.unwrap_or_default() {
                ConsentDefault::OptIn => "opt-in: off until granted".to_owned(),
                ConsentDefault::OptOut if rule.known_subject == Some(true) => {
                    "opt-out: on until withdrawn, for people who used the service".to_owned()
                }
                ConsentDefault::OptOut => "opt-out: on until withdrawn".to_owned(),
            };
            let exempt = if rule.anonymized_exempt == Some(true) { "; anonymized data needs none" } else { "" };
            format!("{level} consent at least; {default}{exempt}")
        }
    };
    let mut categories = rule
        .categories
        .iter()
        .map(|c| if policy.is_sensitive(c) { format!("{c} (sensitive)") } else { c.to_string() })
        .collect::<Vec<_>>()
        .join(", ");
    match rule.effective_deidentification() {
        Deidentification::None => {}
        level => {
            let _ = write!(categories, "; {level} only");
        }
    }
    let recipients = rule
        .effective_recipients()
        .map(|name| match policy.document().recipients.get(name) {
            Some(declared) => format!("{name} ({})", declared.description.as_deref().unwrap_or(declared.kind.as_str())),
            None => kind_words(name),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut regions =
        rule.effective_regions(policy.storage_regions()).iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    match rule.transfer_regions.as_deref() {
        None | Some([]) => {}
        Some(list) if list.iter().any(|r| r == "*") => {
            regions.push_str("; to any other region with separate consent naming it");
        }
        Some(list) => {
            let _ = write!(regions, "; to {} with separate consent naming it", list.join(", "));
        }
    }
    let signals = match rule.opt_out_signals.as_deref() {
        None | Some([]) => String::new(),
        Some(list) => {
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
    if rule.effective_actions() != RuleDocument::DEFAULT_ACTIONS {
        let actions = rule.effective_actions().iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let _ = write!(purposes, " (only: {actions})");
    }
    let mut notes: Vec<String> = notes.iter().map(Note::text).collect();
    if let Some(version) = &rule.changed_in {
        notes.insert(0, format!("consent given before version {version} must be renewed"));
    }
    Row {
        clause: rule.id.clone(),
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

fn title(policy: &Policy) -> String {
    let header = &policy.document().policy;
    let mut title = format!("Policy {} {}", header.name, header.version);
    if let Some(source) = &header.source {
        let _ = write!(title, ": {source}");
    }
    title
}

fn rows(policy: &Policy, rules: &[&RuleDocument], notes: &[Vec<Note>]) -> Vec<Row> {
    rules
        .iter()
        .map(|rule| {
            let index = policy.rules().iter().position(|r| r.id == rule.id);
            let empty = Vec::new();
            let mine = index.and_then(|i| notes.get(i)).unwrap_or(&empty);
            row(policy, rule, mine)
        })
        .collect()
}

/// The Markdown table.
pub(crate) fn markdown(policy: &Policy, rules: &[&RuleDocument], text: &str) -> String {
    let (notes, other) = notes(policy, text);
    let mut out = format!("# {}\n\n", escape_md(&title(policy)));
    let _ = writeln!(
        out,
        "Home region {}. Any purpose without a row is denied by default.\n",
        policy.document().policy.home_region
    );
    for note in &other {
        let _ = writeln!(out, "- {}", escape_md(&note.text()));
    }
    if !other.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len()));
    for row in rows(policy, rules, &notes) {
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
pub(crate) fn html(policy: &Policy, rules: &[&RuleDocument], text: &str) -> String {
    let (notes, other) = notes(policy, text);
    let title = escape_html(&title(policy));
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\">Home region {}. One row per rule; any purpose without a row is denied by default.</p>",
        escape_html(policy.document().policy.home_region.as_str())
    );
    if !other.is_empty() {
        out.push_str("<ul class=\"notes\">\n");
        for note in &other {
            let class = if note.allowed.is_some() { "accepted" } else { "warning" };
            let _ = writeln!(out, "<li class=\"{class}\">{}</li>", escape_html(&note.text()));
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
    for (row, rule) in rows(policy, rules, &notes).iter().zip(rules) {
        let cells = cells(row);
        let _ = write!(out, "<tr data-clause=\"{}\">", escape_html(&rule.id));
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

/// The same table as JSON, with codes as well as words.
pub(crate) fn json(policy: &Policy, rules: &[&RuleDocument], text: &str) -> String {
    let (notes, other) = notes(policy, text);
    let note_json = |n: &Note| json!({"warning": n.name, "message": n.message, "allowed": n.allowed});
    let header = &policy.document().policy;
    let rows: Vec<serde_json::Value> = rules
        .iter()
        .map(|rule| {
            let index = policy.rules().iter().position(|r| r.id == rule.id);
            let mine: Vec<serde_json::Value> =
                index.and_then(|i| notes.get(i)).map(|list| list.iter().map(note_json).collect()).unwrap_or_default();
            json!({
                "clause": rule.id,
                "purposes": rule.purposes,
                "basis": rule.basis,
                "level": rule.effective_level(),
                "default": rule.effective_level().map(|_| rule.default.unwrap_or_default()),
                "known_subject": rule.known_subject.unwrap_or(false),
                "categories": rule.categories.iter().map(|c| json!({"name": c, "sensitive": policy.is_sensitive(c)})).collect::<Vec<_>>(),
                "actions": rule.effective_actions(),
                "recipients": rule.effective_recipients().collect::<Vec<_>>(),
                "deidentification": rule.effective_deidentification(),
                "retention": rule.retention,
                "regions": rule.effective_regions(policy.storage_regions()),
                "transfer_regions": rule.transfer_regions.clone().unwrap_or_default(),
                "opt_out_signals": rule.opt_out_signals.clone().unwrap_or_default(),
                "changed_in": rule.changed_in,
                "source": rule.source,
                "warnings": mine,
            })
        })
        .collect();
    let value = json!({
        "policy": header.name,
        "version": header.version,
        "source": header.source,
        "home_region": header.home_region,
        "storage_regions": policy.storage_regions(),
        "warnings": other.iter().map(note_json).collect::<Vec<_>>(),
        "rules": rows,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}
