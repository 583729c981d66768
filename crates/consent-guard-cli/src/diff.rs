//! `diff OLD NEW`: what changed between two versions of a policy, purpose by purpose;
//! which changes are material (people must consent again: a new purpose, broader data,
//! recipients, regions or actions, longer retention, a weaker consent level, default,
//! de-identification or signal), and whether the new policy declares each material
//! change through the rule's `changed_in` (so that older grants get
//! `reconsent_required`). `lint --since OLD NEW` warns about the undeclared ones.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use consent_guard::basis::LegalBasis;
use consent_guard::error::Diagnostic;
use consent_guard::policy::{ConsentDefault, PolicyVersion, Retention, RuleDocument};
use consent_guard::Policy;
use serde_json::json;

use crate::CliError;

/// One change of one field of the rule governing a purpose.
#[derive(Debug)]
pub(crate) struct Change {
    field: &'static str,
    old: String,
    new: String,
    material: bool,
    why: &'static str,
}

/// Everything that changed for one purpose.
#[derive(Debug)]
pub(crate) struct PurposeDiff {
    purpose: String,
    old_clause: Option<String>,
    new_clause: Option<String>,
    changes: Vec<Change>,
    /// For a material change under a consent rule: whether `changed_in` declares it.
    declared: Option<bool>,
}

impl PurposeDiff {
    fn material(&self) -> bool {
        self.changes.iter().any(|c| c.material)
    }
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

/// `a` is `b` or an ancestor of it, by dotted name.
fn covers(a: &str, b: &str) -> bool {
    a == b || b.strip_prefix(a).is_some_and(|rest| rest.starts_with('.'))
}

/// Names of `new` that nothing of `old` covers.
fn added(old: &[String], new: &[String]) -> Vec<String> {
    new.iter().filter(|n| !old.iter().any(|o| covers(o, n))).cloned().collect()
}

fn retention_millis(retention: Option<Retention>) -> i64 {
    match retention {
        None => i64::MAX,
        Some(Retention::Session) => 0,
        Some(other) => other.millis().unwrap_or(i64::MAX),
    }
}

fn retention_text(retention: Option<Retention>) -> String {
    retention.map_or_else(|| "not limited".to_owned(), |r| r.to_string())
}

/// The changes between the rule governing a purpose in OLD and in NEW.
fn changes(old_policy: &Policy, new_policy: &Policy, old: &RuleDocument, new: &RuleDocument) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |field: &'static str, old: String, new: String, material: bool, why: &'static str| {
        out.push(Change { field, old, new, material, why });
    };
    if old.basis != new.basis {
        let weaker = old.basis == LegalBasis::Consent;
        push(
            "basis",
            old.basis.to_string(),
            new.basis.to_string(),
            weaker,
            if weaker { "consent is no longer asked" } else { "another lawful basis" },
        );
    }
    if let (Some(o), Some(n)) = (old.effective_level(), new.effective_level()) {
        if o != n {
            push(
                "level",
                o.to_string(),
                n.to_string(),
                n < o,
                if n < o { "weaker consent" } else { "stronger consent" },
            );
        }
    }
    let (od, nd) = (old.default.unwrap_or_default(), new.default.unwrap_or_default());
    if old.basis == LegalBasis::Consent && new.basis == LegalBasis::Consent && od != nd {
        let weaker = nd == ConsentDefault::OptOut;
        let name = |d: ConsentDefault| if d == ConsentDefault::OptOut { "opt_out" } else { "opt_in" }.to_owned();
        push("default", name(od), name(nd), weaker, if weaker { "on until withdrawn" } else { "off until granted" });
    }
    if old.known_subject.unwrap_or(false) && !new.known_subject.unwrap_or(false) && nd == ConsentDefault::OptOut {
        push("known_subject", "true".to_owned(), "false".to_owned(), true, "deemed consent for unknown subjects too");
    }
    let names = |list: &[consent_guard::DataCategory]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
    let (oc, nc) = (names(&old.categories), names(&new.categories));
    let more = added(&oc, &nc);
    if !more.is_empty() || !added(&nc, &oc).is_empty() {
        let broader = !more.is_empty();
        push("categories", list(oc), list(nc), broader, if broader { "broader data" } else { "narrower data" });
    }
    let actions = |r: &RuleDocument| r.effective_actions().iter().map(ToString::to_string).collect::<Vec<_>>();
    let (oa, na) = (actions(old), actions(new));
    if oa != na {
        let broader = na.iter().any(|a| !oa.contains(a));
        push("actions", list(oa), list(na), broader, if broader { "more actions" } else { "fewer actions" });
    }
    let recipients = |r: &RuleDocument| r.effective_recipients().map(str::to_owned).collect::<Vec<_>>();
    let (or, nr) = (recipients(old), recipients(new));
    if or != nr {
        let broader = nr.iter().any(|r| !or.contains(r));
        push("recipients", list(or), list(nr), broader, if broader { "more recipients" } else { "fewer recipients" });
    }
    let regions = |p: &Policy, r: &RuleDocument| {
        r.effective_regions(p.storage_regions()).iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    let (og, ng) = (regions(old_policy, old), regions(new_policy, new));
    if og != ng {
        let broader = ng.iter().any(|r| !og.contains(r));
        push("regions", list(og), list(ng), broader, if broader { "more regions" } else { "fewer regions" });
    }
    let (ot, nt) = (old.transfer_regions.clone().unwrap_or_default(), new.transfer_regions.clone().unwrap_or_default());
    if ot != nt {
        let broader = !ot.iter().any(|r| r == "*") && nt.iter().any(|r| !ot.contains(r));
        push(
            "transfer_regions",
            list(ot),
            list(nt),
            broader,
            if broader { "transfers to more regions" } else { "transfers to fewer regions" },
        );
    }
    if old.retention != new.retention {
        let longer = retention_millis(new.retention) > retention_millis(old.retention);
        push(
            "retention",
            retention_text(old.retention),
            retention_text(new.retention),
            longer,
            if longer { "kept longer" } else { "kept shorter" },
        );
    }
    let (oi, ni) = (old.effective_deidentification(), new.effective_deidentification());
    if oi != ni {
        let weaker = ni < oi;
        push(
            "deidentification",
            oi.to_string(),
            ni.to_string(),
            weaker,
            if weaker { "less de-identified" } else { "more de-identified" },
        );
    }
    if old.anonymized_exempt.unwrap_or(false) != new.anonymized_exempt.unwrap_or(false) {
        let weaker = new.anonymized_exempt.unwrap_or(false);
        push(
            "anonymized_exempt",
            old.anonymized_exempt.unwrap_or(false).to_string(),
            weaker.to_string(),
            weaker,
            if weaker { "anonymized data without consent" } else { "anonymized data needs consent" },
        );
    }
    let signals = |r: &RuleDocument| {
        r.opt_out_signals
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|s| format!("{s:?}").to_lowercase())
            .collect::<Vec<_>>()
    };
    let (os, ns) = (signals(old), signals(new));
    if os != ns {
        let weaker = os.iter().any(|s| !ns.contains(s));
        push(
            "opt_out_signals",
            list(os),
            list(ns),
            weaker,
            if weaker { "a signal no longer honoured" } else { "more signals honoured" },
        );
    }
    out
}

/// Whether the new rule's `changed_in` is later than the old policy's version, so
/// that consent given under the old version must be renewed.
fn declares(new: &RuleDocument, old_version: &str) -> bool {
    let (Some(changed), Ok(old)) = (new.changed_in.as_deref(), PolicyVersion::parse(old_version)) else {
        return false;
    };
    PolicyVersion::parse(changed).is_ok_and(|changed| changed > old)
}

/// Purpose by purpose, in the order the new policy (then the old) names them.
pub(crate) fn compare(old: &Policy, new: &Policy) -> Vec<PurposeDiff> {
    let mut purposes = Vec::new();
    for rule in new.rules().iter().chain(old.rules()) {
        for purpose in &rule.purposes {
            if !purposes.contains(purpose) {
                purposes.push(purpose.clone());
            }
        }
    }
    let mut out = Vec::new();
    for purpose in purposes {
        let before = old.knows_purpose(&purpose).then(|| old.rule_for(&purpose)).flatten();
        let after = new.knows_purpose(&purpose).then(|| new.rule_for(&purpose)).flatten();
        let (changes, consent) = match (before, after) {
            (None, None) => continue,
            (None, Some(rule)) => (
                vec![Change {
                    field: "purpose",
                    old: "(denied: no rule)".to_owned(),
                    new: format!("permitted on {}", rule.basis),
                    material: true,
                    why: "a new purpose",
                }],
                rule.basis == LegalBasis::Consent,
            ),
            (Some(rule), None) => (
                vec![Change {
                    field: "purpose",
                    old: format!("permitted on {}", rule.basis),
                    new: "(denied: no rule)".to_owned(),
                    material: false,
                    why: "no longer permitted",
                }],
                false,
            ),
            (Some(o), Some(n)) => (changes(old, new, o, n), n.basis == LegalBasis::Consent),
        };
        if changes.is_empty() {
            continue;
        }
        let mut diff = PurposeDiff {
            purpose: purpose.to_string(),
            old_clause: before.map(|r| r.id.clone()),
            new_clause: after.map(|r| r.id.clone()),
            changes,
            declared: None,
        };
        if diff.material() && consent {
            diff.declared = after.map(|rule| declares(rule, old.version()));
        }
        out.push(diff);
    }
    out
}

/// `diff`: text or JSON on standard output; 1 when a material change of a consent
/// rule is not declared, so that CI can stop it.
pub(crate) fn run(old_path: &Path, new_path: &Path, json_format: bool) -> Result<ExitCode, CliError> {
    let old = Policy::from_toml_file(old_path)?;
    let new = Policy::from_toml_file(new_path)?;
    let diffs = compare(&old, &new);
    let undeclared = diffs.iter().filter(|d| d.declared == Some(false)).count();
    let text = if json_format { json_text(&old, &new, &diffs) } else { plain(&old, &new, &diffs) };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(CliError::Output)?;
    Ok(if undeclared > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn clause(diff: &PurposeDiff) -> String {
    match (&diff.old_clause, &diff.new_clause) {
        (Some(o), Some(n)) if o == n => format!("clause {n}"),
        (Some(o), Some(n)) => format!("clause {o} -> {n}"),
        (None, Some(n)) => format!("clause {n}"),
        (Some(o), None) => format!("was clause {o}"),
        (None, None) => String::new(),
    }
}

fn plain(old: &Policy, new: &Policy, diffs: &[PurposeDiff]) -> String {
    let mut text = format!("{} {} -> {} {}\n", old.name(), old.version(), new.name(), new.version());
    for diff in diffs {
        let _ = writeln!(text, "\n{} [{}]", diff.purpose, clause(diff));
        for change in &diff.changes {
            let mark = if change.material { "MATERIAL" } else { "        " };
            let _ = writeln!(text, "  {mark} {}: {} -> {} ({})", change.field, change.old, change.new, change.why);
        }
        match (diff.declared, &diff.new_clause) {
            (Some(true), _) => {
                let _ = writeln!(text, "  reconsent: declared (changed_in is later than {})", old.version());
            }
            (Some(false), Some(rule)) => {
                let _ = writeln!(
                    text,
                    "  reconsent: NOT declared: set changed_in = \"{}\" on rule {rule} so that consent given under {} is renewed",
                    new.version(),
                    old.version()
                );
            }
            _ => {}
        }
    }
    let material = diffs.iter().filter(|d| d.material()).count();
    let undeclared = diffs.iter().filter(|d| d.declared == Some(false)).count();
    let _ = writeln!(
        text,
        "\n{} purposes changed, {material} materially, {undeclared} material changes not declared",
        diffs.len()
    );
    text
}

fn json_text(old: &Policy, new: &Policy, diffs: &[PurposeDiff]) -> String {
    let purposes: Vec<serde_json::Value> = diffs
        .iter()
        .map(|d| {
            json!({
                "purpose": d.purpose,
                "old_clause": d.old_clause,
                "new_clause": d.new_clause,
                "material": d.material(),
                "declared": d.declared,
                "changes": d.changes.iter().map(|c| json!({
                    "field": c.field, "old": c.old, "new": c.new, "material": c.material, "why": c.why,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let value = json!({
        "old": {"policy": old.name(), "version": old.version()},
        "new": {"policy": new.name(), "version": new.version()},
        "purposes": purposes,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

/// `lint --since OLD`: a warning `undeclared_material_change` at each rule of NEW
/// with a material change from OLD that its `changed_in` does not declare (unless
/// the rule allows it).
pub(crate) fn undeclared(old: &Policy, new: &Policy, text: &str, file: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for diff in compare(old, new).iter().filter(|d| d.declared == Some(false)) {
        let Some(id) = &diff.new_clause else { continue };
        let Some(rule) = new.rules().iter().find(|r| &r.id == id) else { continue };
        if rule.allow.iter().any(|a| a.warning == "undeclared_material_change") {
            continue;
        }
        let needle = format!("\"{id}\"");
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with("id") && l.contains(&needle))
            .map_or(1, |i| i.saturating_add(1));
        let what: Vec<String> =
            diff.changes.iter().filter(|c| c.material).map(|c| format!("{} ({})", c.field, c.why)).collect();
        out.push(Diagnostic::warning(
            file,
            line,
            1,
            "undeclared_material_change",
            format!(
                "{} changed materially since {} {}: {}; set changed_in = \"{}\" so that older consent is renewed",
                diff.purpose,
                old.name(),
                old.version(),
                what.join(", "),
                new.version()
            ),
        ));
    }
    out
}
