//! `explain --format markdown|html|json`: the reviewer's report. The policy's header
//! (regions, separate-consent triggers, minors, named recipients with their limits,
//! the purposes that are denied), then one card per rule, in words rather than codes:
//! the sentence of the privacy policy it encodes, its basis and consent, the data (with
//! human labels), every permission it grants (what `[rule.with_consent]` adds
//! included), each with the consent it needs, and the lint warnings about it. The HTML
//! is one self-contained file (inline style, no script, nothing fetched).

use std::fmt::Write as _;

use consent_guard::basis::{ConsentLevel, LegalBasis};
use consent_guard::policy::explain::{Explanation, Note, Permission, RecipientExplanation, RuleExplanation};
use consent_guard::policy::{ConsentDefault, Retention, SeparateTrigger, Signal, UnknownAge};
use consent_guard::request::{Action, Deidentification};

/// A warning, as the report shows it.
fn note_text(note: &Note) -> String {
    let name = note.warning.map(|n| format!(" ({n})")).unwrap_or_default();
    match &note.allowed {
        Some(reason) => format!("accepted warning{name}: {}; reason: {reason}", note.message),
        None => format!("warning{name}: {}", note.message),
    }
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

/// A recipient kind in words; a declared name as it is.
fn kind_words(name: &str) -> &str {
    match name {
        "first_party" => "us",
        "affiliate" => "our affiliates",
        "processor" => "processors (acting on our instructions)",
        "third_party" => "third parties (independent)",
        "public" => "the public",
        "authority" => "authorities",
        other => other,
    }
}

/// An action in plain words.
pub(crate) fn action_words(action: Action) -> &'static str {
    match action {
        Action::Collect => "collect it",
        Action::Store => "keep it",
        Action::Use => "use it",
        Action::Share => "share it",
        Action::Disclose => "make it public",
        Action::Transfer => "hand it over",
        Action::Delete => "delete it",
    }
}

/// A data category's human label; a declared category keeps its name.
pub(crate) fn category_label(name: &str) -> &str {
    match name {
        "contact" => "Contact details",
        "contact.email" => "Email address",
        "contact.phone" => "Phone number",
        "account" => "Account data",
        "account.username" => "User name",
        "account.credentials" => "Password and login credentials",
        "account.profile" => "Profile (nickname, avatar)",
        "account.third_party" => "Account at another service (third-party login)",
        "identity" => "Identity",
        "identity.real_name" => "Real name",
        "identity.government_id" => "Government ID number",
        "identity.age" => "Age or date of birth",
        "biometric" => "Biometric data",
        "biometric.face" => "Face images and features",
        "biometric.voice" => "Voice recordings and voiceprint",
        "device" => "Device data",
        "device.identifier" => "Device identifiers",
        "device.info" => "Device information (model, system)",
        "device.app_list" => "List of installed apps",
        "device.sensor" => "Sensor readings",
        "device.clipboard" => "Clipboard contents",
        "network" => "Network data",
        "network.ip_address" => "IP address",
        "network.environment" => "Network environment (carrier, Wi-Fi)",
        "location" => "Location",
        "location.precise" => "Precise location",
        "location.approximate" => "Approximate location",
        "behavior" => "Usage behaviour",
        "behavior.log" => "Usage logs",
        "behavior.task_records" => "Task records",
        "behavior.generation_log" => "Generation history",
        "behavior.preferences" => "Preferences and settings",
        "behavior.semantic_tags" => "Interest tags inferred from use",
        "behavior.feedback" => "Feedback and ratings",
        "content" => "Content",
        "content.chat" => "Chat messages",
        "content.prompt" => "Prompts typed or spoken",
        "content.upload" => "Uploaded files and images",
        "content.generated" => "Generated content",
        "communications" => "Communications",
        "communications.contacts" => "Address book",
        "communications.call_log" => "Call log",
        "communications.sms" => "Text messages",
        "communications.calendar" => "Calendar",
        "financial" => "Financial data",
        "financial.transaction" => "Transactions and orders",
        "financial.account" => "Bank and payment accounts",
        "health" => "Health data",
        "health.record" => "Health records",
        "support" => "Support data",
        "support.record" => "Support tickets and calls",
        "tracking" => "Tracking data",
        "tracking.cookie" => "Cookies and similar trackers",
        other => other,
    }
}

/// `Label (name)`, or the name alone when it has no label.
fn category_words(name: &str) -> String {
    match category_label(name) {
        label if label == name => name.to_owned(),
        label => format!("{label} ({name})"),
    }
}

fn trigger_words(trigger: SeparateTrigger) -> &'static str {
    match trigger {
        SeparateTrigger::Sensitive => "sensitive data",
        SeparateTrigger::Minor => "minors",
        SeparateTrigger::ThirdParty => "third parties",
        SeparateTrigger::Public => "making data public",
        SeparateTrigger::CrossBorder => "cross-border transfer",
    }
}

fn level_words(level: ConsentLevel) -> &'static str {
    match level {
        ConsentLevel::Implied => "implied consent",
        ConsentLevel::Explicit => "explicit consent",
        ConsentLevel::Separate => "separate consent",
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

/// The consent a permission needs, in words.
pub(crate) fn consent_words(permission: &Permission) -> String {
    let mut words = match permission.consent {
        None => "no consent needed".to_owned(),
        Some(level) => format!("{} at least", level_words(level)),
    };
    if let Some(trigger) = permission.separate_because {
        let _ = write!(words, " (for {})", trigger_words(trigger));
    }
    if permission.with_consent {
        words.push_str("; only with consent ([rule.with_consent])");
    }
    words
}

/// Permissions of one recipient needing the same consent, their actions together.
pub(crate) struct Grant<'a> {
    pub(crate) permission: &'a Permission,
    pub(crate) actions: Vec<Action>,
}

/// The permissions grouped by recipient and consent, in the order first seen.
pub(crate) fn grants(permissions: &[Permission]) -> Vec<Grant<'_>> {
    let mut grants: Vec<Grant<'_>> = Vec::new();
    for permission in permissions {
        let same = |g: &&mut Grant<'_>| {
            let p = g.permission;
            p.recipient == permission.recipient
                && p.consent == permission.consent
                && p.with_consent == permission.with_consent
                && p.separate_because == permission.separate_because
        };
        match grants.iter_mut().find(|g| same(g)) {
            Some(grant) => grant.actions.push(permission.action),
            None => grants.push(Grant { permission, actions: vec![permission.action] }),
        }
    }
    grants
}

fn actions_words(actions: &[Action]) -> String {
    actions.iter().map(|a| format!("{} ({a})", action_words(*a))).collect::<Vec<_>>().join(", ")
}

/// A recipient of a permission in words: a kind, or a declared name with its
/// description.
fn recipient_words(explanation: &Explanation, name: &str) -> String {
    match explanation.recipients.iter().find(|r| r.name == name) {
        Some(named) => {
            let declared = &named.declaration;
            let what = declared.description.as_deref().unwrap_or_else(|| kind_words(declared.kind.as_str()));
            format!("{name} ({what})")
        }
        None => kind_words(name).to_owned(),
    }
}

/// The policy's header: one (label, text) pair a line.
fn header(explanation: &Explanation) -> Vec<(&'static str, String)> {
    let mut lines = vec![(
        "Regions",
        format!(
            "home region {}; data may be stored in {}",
            explanation.home_region,
            explanation.storage_regions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ),
    )];
    let triggers = &explanation.separate_consent_for;
    lines.push((
        "Separate consent",
        if triggers.is_empty() {
            "consent rules ask nothing beyond their level".to_owned()
        } else {
            format!(
                "consent rules ask separate consent for {}",
                triggers.iter().map(|t| trigger_words(*t)).collect::<Vec<_>>().join(", ")
            )
        },
    ));
    lines.push(("Minors", minors_words(explanation)));
    if !explanation.declared_purposes.is_empty() || !explanation.declared_categories.is_empty() {
        let mut parts = Vec::new();
        if !explanation.declared_purposes.is_empty() {
            parts.push(format!("purposes {}", explanation.declared_purposes.join(", ")));
        }
        if !explanation.declared_categories.is_empty() {
            parts.push(format!("categories {}", explanation.declared_categories.join(", ")));
        }
        lines.push(("Declared", parts.join("; ")));
    }
    lines.push((
        "Denied",
        if explanation.denied_purposes.is_empty() {
            "any purpose no rule covers is denied (no_rule)".to_owned()
        } else {
            format!(
                "no rule covers {}: each is denied (no_rule), as is any other purpose",
                explanation.denied_purposes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )
        },
    ));
    lines
}

fn minors_words(explanation: &Explanation) -> String {
    let Some(section) = &explanation.minors else {
        return "treated as adults (the policy sets no age)".to_owned();
    };
    let mut parts = Vec::new();
    if let Some(age) = section.guardian_consent_under {
        let level = section.guardian_level.map(|l| format!(", at least {}", level_words(l))).unwrap_or_default();
        parts.push(format!("subjects under {age} need a guardian's consent{level}"));
    }
    if let Some(age) = section.not_served_under {
        parts.push(format!("subjects under {age} are not served"));
    }
    if let Some(age) = section.sensitive_under {
        parts.push(format!("data of subjects under {age} is sensitive"));
    }
    if parts.is_empty() {
        parts.push("treated as adults (the policy sets no age)".to_owned());
    }
    parts.push(
        match section.unknown_age.unwrap_or_default() {
            UnknownAge::Adult => "a subject of unknown age is treated as an adult",
            UnknownAge::Minor => "a subject of unknown age is treated as a minor",
        }
        .to_owned(),
    );
    parts.join("; ")
}

/// A named recipient and its limits, in words.
fn recipient_limits(recipient: &RecipientExplanation) -> String {
    let declared = &recipient.declaration;
    let mut text = kind_words(declared.kind.as_str()).to_owned();
    if let Some(description) = &declared.description {
        let _ = write!(text, ": {description}");
    }
    match &declared.purposes {
        Some(purposes) => {
            let _ =
                write!(text, "; only for {}", purposes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "));
        }
        None => text.push_str("; for any purpose a rule names it for"),
    }
    if let Some(categories) = &declared.categories {
        let _ = write!(
            text,
            "; only {}",
            categories.iter().map(|c| category_words(c.as_str())).collect::<Vec<_>>().join(", ")
        );
    }
    if let Some(level) = declared.deidentification.filter(|d| *d != Deidentification::None) {
        let _ = write!(text, "; only {level} data");
    }
    text
}

/// One rule, in words.
struct Card {
    clause: String,
    purposes: String,
    source: Option<String>,
    fields: Vec<(&'static str, String)>,
    notes: Vec<(&'static str, String)>,
}

fn card(rule: &RuleExplanation) -> Card {
    let mut fields = vec![("Basis", rule.basis.iter().map(basis_words).collect::<Vec<_>>().join("; or "))];
    if let Some(level) = rule.level {
        let default = match rule.default.unwrap_or_default() {
            ConsentDefault::OptIn => "opt-in: off until granted".to_owned(),
            ConsentDefault::OptOut if rule.known_subject => {
                "opt-out: on until withdrawn, for people who used the service".to_owned()
            }
            ConsentDefault::OptOut => "opt-out: on until withdrawn".to_owned(),
        };
        let exempt = if rule.anonymized_exempt { "; anonymized data needs none" } else { "" };
        fields.push(("Consent", format!("{} at least; {default}{exempt}", level_words(level))));
    }
    let mut data = rule
        .categories
        .iter()
        .map(|c| {
            let words = category_words(c.name.as_str());
            if c.sensitive {
                format!("{words}, sensitive")
            } else {
                words
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    if rule.deidentification != Deidentification::None {
        let _ = write!(data, ". Only {} data", rule.deidentification);
    }
    fields.push(("Data", data));
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
    if let Some(extension) = &rule.with_consent {
        let actions = extension.actions.as_deref().unwrap_or(&[Action::Share]);
        let recipients = match &extension.recipients {
            Some(list) => list.iter().map(|r| kind_words(r)).collect::<Vec<_>>().join(", "),
            None => "the rule's recipients".to_owned(),
        };
        fields.push((
            "With consent",
            format!("{} adds: {} for {recipients}", level_words(extension.level), actions_words(actions)),
        ));
    }
    fields.push(("Regions", regions));
    fields.push(("Retention", retention_words(rule.retention)));
    if !rule.opt_out_signals.is_empty() {
        let names: Vec<&str> = rule
            .opt_out_signals
            .iter()
            .map(|s| match s {
                Signal::Dnt => "Do Not Track",
                Signal::Gpc => "Global Privacy Control",
            })
            .collect();
        fields.push(("Signals", format!("{} switch it off", names.join(", "))));
    }
    let mut notes: Vec<(&'static str, String)> = Vec::new();
    if let Some(version) = &rule.changed_in {
        notes.push(("info", format!("consent given before version {version} must be renewed")));
    }
    for note in &rule.warnings {
        notes.push((if note.allowed.is_some() { "accepted" } else { "warning" }, note_text(note)));
    }
    Card {
        clause: rule.clause.clone(),
        purposes: rule.purposes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        source: rule.source.clone(),
        fields,
        notes,
    }
}

fn title(explanation: &Explanation) -> String {
    let mut title = format!("Policy {} {}", explanation.policy, explanation.version);
    if let Some(source) = &explanation.source {
        let _ = write!(title, ": {source}");
    }
    title
}

/// The Markdown report.
pub(crate) fn markdown(explanation: &Explanation) -> String {
    let mut out = format!("# {}\n\n", escape_md(&title(explanation)));
    for (label, text) in header(explanation) {
        let _ = writeln!(out, "- **{label}:** {}", escape_md(&text));
    }
    if !explanation.recipients.is_empty() {
        out.push_str("\n## Named recipients\n\n");
        for recipient in &explanation.recipients {
            let _ = writeln!(out, "- **{}**: {}", escape_md(&recipient.name), escape_md(&recipient_limits(recipient)));
        }
    }
    if !explanation.warnings.is_empty() {
        out.push_str("\n## Warnings\n\n");
        for note in &explanation.warnings {
            let _ = writeln!(out, "- {}", escape_md(&note_text(note)));
        }
    }
    for rule in &explanation.rules {
        let card = card(rule);
        let _ = write!(out, "\n## {} (clause `{}`)\n\n", escape_md(&card.purposes), card.clause);
        if let Some(source) = &card.source {
            let _ = writeln!(out, "> {}\n", escape_md(source));
        }
        for (label, text) in &card.fields {
            let _ = writeln!(out, "- **{label}:** {}", escape_md(text));
        }
        out.push_str("\n| To | Permits | Consent |\n|---|---|---|\n");
        for grant in grants(&rule.permissions) {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                escape_md(&recipient_words(explanation, &grant.permission.recipient)),
                actions_words(&grant.actions),
                escape_md(&consent_words(grant.permission))
            );
        }
        if !card.notes.is_empty() {
            out.push('\n');
            for (_, note) in &card.notes {
                let _ = writeln!(out, "- *Note:* {}", escape_md(note));
            }
        }
    }
    out
}

fn escape_md(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn escape_html(text: &str) -> String {
    html_escape::encode_safe(text).into_owned()
}

// Cards one above the other, as wide as a page is read: words wrap between words,
// never inside one.
const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:56rem;padding:0 1rem;color:#1d1d1f;line-height:1.45}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin:0 0 .4rem}\
*{overflow-wrap:normal;word-break:normal;hyphens:manual}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.4rem 0}dt{font-weight:600}dd{margin:0}\
section.card{border:1px solid #ccc;border-radius:6px;padding:1rem 1.2rem;margin:1.2rem 0;background:#fff}\
section.policy{background:#f6f7f9}\
p.clause{font-family:ui-monospace,monospace;color:#555;margin:0 0 .6rem}\
blockquote{font-style:italic;margin:.4rem 0 .8rem;padding-left:.8rem;border-left:3px solid #ccc}\
table.permissions{border-collapse:collapse;width:100%;font-size:.9rem;margin:.6rem 0}\
table.permissions th,table.permissions td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}\
table.permissions th{background:#f0f2f5}tr.with-consent td{background:#fff8e6}\
.warning{color:#8a4b00}.accepted{color:#2f6b2f}ul{padding-left:1.2rem}";

/// One self-contained HTML page.
pub(crate) fn html(explanation: &Explanation) -> String {
    let title = escape_html(&title(explanation));
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    out.push_str("<section class=\"card policy\" id=\"policy\">\n<h2>The policy</h2>\n<dl>\n");
    for (label, text) in header(explanation) {
        let _ = writeln!(out, "<dt>{label}</dt><dd>{}</dd>", escape_html(&text));
    }
    out.push_str("</dl>\n");
    if !explanation.recipients.is_empty() {
        out.push_str("<h2>Named recipients</h2>\n<dl id=\"recipients\">\n");
        for recipient in &explanation.recipients {
            let _ = writeln!(
                out,
                "<dt data-recipient=\"{0}\">{0}</dt><dd>{1}</dd>",
                escape_html(&recipient.name),
                escape_html(&recipient_limits(recipient))
            );
        }
        out.push_str("</dl>\n");
    }
    if !explanation.warnings.is_empty() {
        out.push_str("<ul class=\"notes\">\n");
        for note in &explanation.warnings {
            let class = if note.allowed.is_some() { "accepted" } else { "warning" };
            let _ = writeln!(out, "<li class=\"{class}\">{}</li>", escape_html(&note_text(note)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
    for rule in &explanation.rules {
        let card = card(rule);
        let _ = writeln!(
            out,
            "<section class=\"card\" data-clause=\"{0}\">\n<h2>{1}</h2>\n<p class=\"clause\">clause {0}</p>",
            escape_html(&card.clause),
            escape_html(&card.purposes)
        );
        if let Some(source) = &card.source {
            let _ = writeln!(out, "<blockquote>{}</blockquote>", escape_html(source));
        }
        out.push_str("<dl>\n");
        for (label, text) in &card.fields {
            let _ = writeln!(out, "<dt>{label}</dt><dd>{}</dd>", escape_html(text));
        }
        out.push_str("</dl>\n<table class=\"permissions\">\n<thead><tr><th>To</th><th>Permits</th><th>Consent</th></tr></thead>\n<tbody>\n");
        for grant in grants(&rule.permissions) {
            let permission = grant.permission;
            let level = permission.consent.map_or("none", ConsentLevel::as_str);
            let class = if permission.with_consent { " class=\"with-consent\"" } else { "" };
            let codes = grant.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" ");
            let _ = writeln!(
                out,
                "<tr{class} data-recipient=\"{}\" data-actions=\"{codes}\" data-consent=\"{level}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape_html(&permission.recipient),
                escape_html(&recipient_words(explanation, &permission.recipient)),
                actions_words(&grant.actions),
                escape_html(&consent_words(permission))
            );
        }
        out.push_str("</tbody>\n</table>\n");
        if !card.notes.is_empty() {
            out.push_str("<ul class=\"notes\">\n");
            for (class, note) in &card.notes {
                let _ = writeln!(out, "<li class=\"{class}\">{}</li>", escape_html(note));
            }
            out.push_str("</ul>\n");
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// The description as JSON, with codes rather than words (what `GET /v1/policy`
/// answers).
pub(crate) fn json(explanation: &Explanation) -> String {
    serde_json::to_string_pretty(explanation).unwrap_or_default()
}
