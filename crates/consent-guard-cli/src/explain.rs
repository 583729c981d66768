//! `explain`: what a policy permits, purpose by purpose, written for people: text, or
//! one table per policy (`--format markdown|html|json`, in `report.rs`).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use consent_guard::basis::{ConsentLevel, LegalBasis};
use consent_guard::policy::{ConsentDefault, RuleDocument, SeparateTrigger, Signal, UnknownAge};
use consent_guard::purpose::Purpose;
use consent_guard::request::Deidentification;
use consent_guard::Policy;

use consent_guard::policy::explain::{describe, Note, Permission};

use crate::CliError;

/// How `explain` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExplainFormat {
    /// Plain text, one block per rule.
    #[default]
    Text,
    /// One Markdown table.
    Markdown,
    /// One self-contained HTML page with the table.
    Html,
    /// The table as JSON.
    Json,
}

/// Loads the policy and prints the explanation on standard output.
pub(crate) fn run(path: &Path, purpose: Option<&str>, format: ExplainFormat) -> Result<ExitCode, CliError> {
    let policy = Policy::from_toml_file(path)?;
    let mut explanation = describe(&policy);
    let notes: Vec<Vec<Note>> = explanation.rules.iter().map(|rule| rule.warnings.clone()).collect();
    let permits: Vec<Vec<Permission>> = explanation.rules.iter().map(|rule| rule.permissions.clone()).collect();
    let denied = explanation.denied_purposes.iter().map(ToString::to_string).collect::<Vec<_>>();
    let other = explanation.warnings.clone();
    let purpose = match purpose {
        None => None,
        Some(name) => {
            let purpose: Purpose = name.parse().map_err(|e| CliError::Usage(format!("--purpose: {e}")))?;
            if !policy.knows_purpose(&purpose) {
                return Err(CliError::Usage(format!(
                    "--purpose: unknown purpose `{purpose}`: neither in the vocabulary nor declared by policy {}",
                    policy.name()
                )));
            }
            Some(purpose)
        }
    };
    if let Some(purpose) = &purpose {
        let governing = policy.rule_for(purpose).map(|rule| rule.id.as_str());
        explanation.rules.retain(|rule| Some(rule.clause.as_str()) == governing);
    }
    let text = match (format, &purpose) {
        (ExplainFormat::Text, None) => whole(&policy, &Extras { notes: &notes, permits: &permits }, &other, &denied),
        (ExplainFormat::Text, Some(purpose)) => one(&policy, purpose, &Extras { notes: &notes, permits: &permits }),
        (ExplainFormat::Markdown, _) => crate::report::markdown(&explanation),
        (ExplainFormat::Html, _) => crate::report::html(&explanation),
        (ExplainFormat::Json, _) => crate::report::json(&explanation) + "\n",
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(CliError::Output)?;
    Ok(ExitCode::SUCCESS)
}

/// What the description adds to each rule, by the rule's index.
struct Extras<'a> {
    notes: &'a [Vec<Note>],
    permits: &'a [Vec<Permission>],
}

impl Extras<'_> {
    fn notes(&self, index: usize) -> &[Note] {
        self.notes.get(index).map_or(&[], Vec::as_slice)
    }

    fn permits(&self, index: usize) -> &[Permission] {
        self.permits.get(index).map_or(&[], Vec::as_slice)
    }
}

/// The whole policy: header, recipients, then every rule in the order written.
fn whole(policy: &Policy, extras: &Extras<'_>, other: &[Note], denied: &[String]) -> String {
    let document = policy.document();
    let header = &document.policy;
    let mut text = String::new();
    let _ = write!(text, "policy {} {}", header.name, header.version);
    if let Some(source) = &header.source {
        let _ = write!(text, " ({source})");
    }
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "home region {}; data may be stored in {}",
        header.home_region,
        join(policy.storage_regions().iter().map(ToString::to_string))
    );
    let triggers = header.separate_consent_for.as_deref().unwrap_or(&SeparateTrigger::ALL);
    let _ = writeln!(
        text,
        "consent rules need separate consent for: {}",
        if triggers.is_empty() {
            "nothing beyond their level".to_owned()
        } else {
            join(triggers.iter().map(|t| trigger(*t).to_owned()))
        }
    );
    let _ = writeln!(text, "minors: {}", minors(policy));
    let (purposes, categories) = policy.extensions();
    if !purposes.is_empty() || !categories.is_empty() {
        let mut parts = Vec::new();
        if !purposes.is_empty() {
            parts.push(format!("purposes {}", join(purposes.iter().map(ToString::to_string))));
        }
        if !categories.is_empty() {
            parts.push(format!("categories {}", join(categories.iter().map(ToString::to_string))));
        }
        let _ = writeln!(text, "declared beyond the vocabulary: {}", parts.join("; "));
    }
    if !document.recipients.is_empty() {
        let _ = writeln!(text, "recipients:");
        for (name, declaration) in &document.recipients {
            let _ = write!(text, "  {name} ({})", declaration.kind);
            if let Some(description) = &declaration.description {
                let _ = write!(text, ": {description}");
            }
            if let Some(purposes) = &declaration.purposes {
                let _ = write!(text, "; only for {}", join(purposes.iter().map(ToString::to_string)));
            }
            if let Some(categories) = &declaration.categories {
                let _ = write!(text, "; only {}", join(categories.iter().map(ToString::to_string)));
            }
            if let Some(level) = declaration.deidentification.filter(|d| *d != Deidentification::None) {
                let _ = write!(text, "; only {level} data");
            }
            let _ = writeln!(text);
        }
    }
    for note in other {
        let _ = writeln!(text, "{}", note_line(note));
    }
    let _ = writeln!(text, "any purpose no rule below covers is denied by default (no_rule)");
    if !denied.is_empty() {
        let _ = writeln!(text, "denied (no rule covers them): {}", denied.join(", "));
    }
    for (index, rule) in policy.rules().iter().enumerate() {
        let _ = writeln!(text);
        let _ = writeln!(text, "{} [clause {}]", join(rule.purposes.iter().map(ToString::to_string)), rule.id);
        rule_body(policy, rule, extras.notes(index), extras.permits(index), &mut text);
    }
    text
}

/// One purpose: the rule that governs it, or that it is denied by default.
fn one(policy: &Policy, purpose: &Purpose, extras: &Extras<'_>) -> String {
    let mut text = String::new();
    match policy.rule_for(purpose) {
        None => {
            let _ = writeln!(
                text,
                "{purpose}: denied by default (no_rule): policy {} has no rule for it or for a purpose above it",
                policy.name()
            );
        }
        Some(rule) => {
            let _ = write!(text, "{purpose} [clause {}]", rule.id);
            if !rule.purposes.contains(purpose) {
                let parents = rule.purposes.iter().filter(|p| p.covers(purpose));
                let _ = write!(text, " through {}", join(parents.map(ToString::to_string)));
            }
            let _ = writeln!(text);
            let index = policy.rules().iter().position(|r| r.id == rule.id).unwrap_or(usize::MAX);
            rule_body(policy, rule, extras.notes(index), extras.permits(index), &mut text);
        }
    }
    text
}

/// A warning, as a line of the text output.
fn note_line(note: &Note) -> String {
    let name = note.warning.map(|n| format!(" ({n})")).unwrap_or_default();
    match &note.allowed {
        Some(reason) => format!("  accepted warning{name}: {}; reason: {reason}", note.message),
        None => format!("  warning{name}: {}", note.message),
    }
}

/// The lines of one rule: what it permits, its defaults spelled out where they
/// permit something, the sentence it encodes and the warnings about it.
fn rule_body(policy: &Policy, rule: &RuleDocument, notes: &[Note], permits: &[Permission], text: &mut String) {
    if let Some(source) = &rule.source {
        let _ = writeln!(text, "  the privacy policy says: \"{source}\"");
    }
    if rule.basis.len() > 1 {
        let _ = writeln!(
            text,
            "  basis: any of {} (no consent needed; a request is decided on {} unless it names another)",
            join(rule.basis.iter().map(|basis| basis.to_string())),
            rule.basis.first()
        );
        if rule.basis.contains(LegalBasis::ResearchDeidentified) {
            let _ = writeln!(text, "  research_deidentified: de-identified data only");
        }
    } else {
        basis_line(rule, text);
    }
    let categories =
        rule.categories.iter().map(|c| if policy.is_sensitive(c) { format!("{c} (sensitive)") } else { c.to_string() });
    let _ = writeln!(text, "  categories: {}", join(categories));
    let actions = join(rule.effective_actions().iter().map(ToString::to_string));
    let _ = writeln!(text, "  actions: {actions}");
    let recipients = join(rule.effective_recipients().map(|name| match policy.document().recipients.get(name) {
        Some(declared) => format!("{name} ({})", declared.kind),
        None => name.to_owned(),
    }));
    let _ = writeln!(text, "  recipients: {recipients}");
    if let level @ (Deidentification::Pseudonymized | Deidentification::Anonymized) = rule.effective_deidentification()
    {
        let _ = writeln!(text, "  de-identification: at least {level}");
    }
    let _ = match rule.retention {
        None => writeln!(text, "  retention: not limited by the policy"),
        Some(consent_guard::policy::Retention::Session) => {
            writeln!(text, "  retention: session (only within the session that collected it)")
        }
        Some(retention) => writeln!(text, "  retention: {retention}"),
    };
    let regions = join(rule.effective_regions(policy.storage_regions()).iter().map(ToString::to_string));
    let _ = writeln!(text, "  regions: {regions}");
    let _ = match rule.transfer_regions.as_deref() {
        None | Some([]) => Ok(()),
        Some(list) if list.iter().any(|r| r == "*") => {
            writeln!(text, "  transfer regions: any, each with separate consent naming the region")
        }
        Some(list) => {
            writeln!(text, "  transfer regions: {}, each with separate consent naming the region", list.join(", "))
        }
    };
    let _ = match rule.opt_out_signals.as_deref() {
        None | Some([]) => Ok(()),
        Some(signals) => writeln!(
            text,
            "  opt-out signals: {} (switch the rule off)",
            join(signals.iter().map(|s| signal(*s).to_owned()))
        ),
    };
    if let Some(version) = &rule.changed_in {
        let _ = writeln!(text, "  consent given under a version before {version} must be renewed (reconsent_required)");
    }
    if let Some(extension) = &rule.with_consent {
        let actions = extension.actions.as_deref().unwrap_or(&[consent_guard::request::Action::Share]);
        let recipients = match &extension.recipients {
            Some(list) => list.join(", "),
            None => join(rule.effective_recipients().map(str::to_owned)),
        };
        let _ = writeln!(
            text,
            "  with {} consent also: {} for {recipients}",
            extension.level,
            join(actions.iter().map(ToString::to_string))
        );
    }
    let _ = writeln!(text, "  permits:");
    for grant in crate::report::grants(permits) {
        let permission = grant.permission;
        let _ = writeln!(
            text,
            "    {}: {} ({})",
            permission.recipient,
            join(grant.actions.iter().map(ToString::to_string)),
            crate::report::consent_words(permission)
        );
    }
    let exceptions = exceptions(policy, rule);
    if !exceptions.is_empty() {
        let _ = writeln!(text, "  except: {}", exceptions.join(", "));
    }
    for note in notes {
        let _ = writeln!(text, "{}", note_line(note));
    }
}

/// Purposes under this rule's purposes that other, more specific rules govern.
fn exceptions(policy: &Policy, rule: &RuleDocument) -> Vec<String> {
    let mut found = Vec::new();
    for other in policy.rules().iter().filter(|other| other.id != rule.id) {
        for purpose in &other.purposes {
            if rule.purposes.iter().any(|mine| mine != purpose && mine.covers(purpose)) {
                found.push(format!("{purpose} (clause {})", other.id));
            }
        }
    }
    found
}

fn minors(policy: &Policy) -> String {
    let Some(section) = &policy.document().minors else {
        return "treated as adults (the policy sets no age)".to_owned();
    };
    let rule = match (section.guardian_consent_under, section.not_served_under) {
        (Some(age), _) => format!("subjects under {age} need a guardian's consent"),
        (None, Some(age)) => format!("subjects under {age} are not served"),
        (None, None) => "treated as adults (the policy sets no age)".to_owned(),
    };
    let rule = match section.sensitive_under {
        Some(age) => format!("{rule}; data of subjects under {age} is sensitive"),
        None => rule,
    };
    let unknown = match section.unknown_age.unwrap_or_default() {
        UnknownAge::Adult => "a subject of unknown age is treated as an adult",
        UnknownAge::Minor => "a subject of unknown age is treated as a minor",
    };
    format!("{rule}; {unknown}")
}

fn trigger(trigger: SeparateTrigger) -> &'static str {
    match trigger {
        SeparateTrigger::Sensitive => "sensitive data",
        SeparateTrigger::Minor => "minors",
        SeparateTrigger::ThirdParty => "third parties",
        SeparateTrigger::Public => "making data public",
        SeparateTrigger::CrossBorder => "cross-border transfer",
    }
}

fn signal(signal: Signal) -> &'static str {
    match signal {
        Signal::Dnt => "dnt",
        Signal::Gpc => "gpc",
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// The basis line of a rule on one basis.
fn basis_line(rule: &RuleDocument, text: &mut String) {
    match rule.basis.first() {
        LegalBasis::Consent => {
            let level = rule.effective_level().unwrap_or(ConsentLevel::Separate);
            let default = match rule.default.unwrap_or_default() {
                ConsentDefault::OptIn => "opt-in (absent until granted)",
                ConsentDefault::OptOut if rule.known_subject == Some(true) => {
                    "opt-out (given until withdrawn, to subjects the guard knows)"
                }
                ConsentDefault::OptOut => "opt-out (given until withdrawn)",
            };
            let _ = writeln!(text, "  basis: consent, at least {level} consent, {default}");
            if rule.anonymized_exempt == Some(true) {
                let _ = writeln!(text, "  anonymized data needs no consent (deidentified_exempt)");
            }
        }
        LegalBasis::ResearchDeidentified => {
            let _ = writeln!(text, "  basis: research_deidentified (no consent; de-identified data only)");
        }
        basis => {
            let _ = writeln!(text, "  basis: {basis} (no consent needed)");
        }
    }
}
