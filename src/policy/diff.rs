//! What changed between two versions of a policy, purpose by purpose, and which
//! changes are material: people must consent again (a new purpose, broader data,
//! recipients, regions or actions, longer retention, a weaker consent level, default,
//! de-identification or signal). A material change of a consent rule is declared when
//! the new rule's `changed_in` is later than the old policy's version, so that older
//! grants get `reconsent_required`; [`undeclared`] warns about the others
//! (`undeclared_material_change`, as `lint --since` shows).
//!
//! ```
//! use consent_guard::policy::diff;
//! use consent_guard::Policy;
//!
//! let old = Policy::from_toml_file("examples/policies/exmo.toml")?;
//! let text = std::fs::read_to_string("examples/policies/exmo.toml")?
//!     .replacen("version = \"1.0\"", "version = \"1.1\"", 1);
//! let new = Policy::from_toml_str(&text, "exmo-1.1.toml")?;
//! let changes = diff::compare(&old, &new);
//! assert!(changes.purposes.is_empty(), "only the version changed");
//! assert!(diff::undeclared(&old, &new).is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::Serialize;

use super::document::{ConsentDefault, Retention, RuleDocument};
use super::Policy;
use crate::basis::LegalBasis;
use crate::error::Diagnostic;
use crate::version::PolicyVersion;

/// One change of one field of the rule governing a purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Change {
    /// The field of the rule (`categories`, `level`…), or `purpose` for a purpose that
    /// gained or lost its rule.
    pub field: &'static str,
    /// The old value, in words.
    pub old: String,
    /// The new value, in words.
    pub new: String,
    /// Whether people must consent again.
    pub material: bool,
    /// Why, in a few words (`broader data`).
    pub why: &'static str,
}

/// Everything that changed for one purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PurposeDiff {
    /// The purpose a rule names.
    pub purpose: String,
    /// The id of the rule governing it in the old policy.
    pub old_clause: Option<String>,
    /// The id of the rule governing it in the new policy.
    pub new_clause: Option<String>,
    /// What changed, field by field.
    pub changes: Vec<Change>,
    /// For a material change under a consent rule: whether `changed_in` declares it.
    pub declared: Option<bool>,
}

impl PurposeDiff {
    /// Whether any change is material.
    pub fn material(&self) -> bool {
        self.changes.iter().any(|c| c.material)
    }
}

/// The name and version of a policy compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Side {
    /// The policy's name.
    pub policy: String,
    /// Its version.
    pub version: String,
}

/// What changed between two policies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PolicyDiff {
    /// The old policy.
    pub old: Side,
    /// The new policy.
    pub new: Side,
    /// Purpose by purpose, in the order the new policy (then the old) names them; only
    /// purposes with a change.
    pub purposes: Vec<PurposeDiff>,
}

impl PolicyDiff {
    /// How many purposes changed materially.
    pub fn material(&self) -> usize {
        self.purposes.iter().filter(|d| d.material()).count()
    }

    /// How many material changes of consent rules `changed_in` does not declare.
    pub fn undeclared(&self) -> usize {
        self.purposes.iter().filter(|d| d.declared == Some(false)).count()
    }
}

/// Compares two versions of a policy.
pub fn compare(old: &Policy, new: &Policy) -> PolicyDiff {
    PolicyDiff {
        old: Side { policy: old.name().to_owned(), version: old.version().to_owned() },
        new: Side { policy: new.name().to_owned(), version: new.version().to_owned() },
        purposes: purposes(old, new),
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
    let names = |list: &[crate::category::DataCategory]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
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
fn purposes(old: &Policy, new: &Policy) -> Vec<PurposeDiff> {
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

/// A warning `undeclared_material_change` at each rule of `new` with a material change
/// from `old` that its `changed_in` does not declare (unless the rule allows it),
/// located at the rule's `id` in the file `new` was loaded from and carrying the rule.
pub fn undeclared(old: &Policy, new: &Policy) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for diff in purposes(old, new).iter().filter(|d| d.declared == Some(false)) {
        let Some(id) = &diff.new_clause else { continue };
        let Some(index) = new.rules().iter().position(|r| &r.id == id) else { continue };
        let Some(rule) = new.rules().get(index) else { continue };
        if rule.allow.iter().any(|a| a.warning == "undeclared_material_change") {
            continue;
        }
        let (line, column) = new.origin.rules.get(index).copied().unwrap_or((0, 0));
        let what: Vec<String> =
            diff.changes.iter().filter(|c| c.material).map(|c| format!("{} ({})", c.field, c.why)).collect();
        let message = format!(
            "{} changed materially since {} {}: {}; set changed_in = \"{}\" so that older consent is renewed",
            diff.purpose,
            old.name(),
            old.version(),
            what.join(", "),
            new.version()
        );
        out.push(
            Diagnostic::warning(&new.origin.file, line, column, "undeclared_material_change", message).with_rule(id),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The warning sits at the rule's `id`, found from the policy's own spans (not by
    /// searching the text), and carries the rule.
    #[cfg(feature = "toml")]
    #[test]
    fn undeclared_changes_are_located_at_their_rule() {
        let old = Policy::from_toml_file("examples/policies/exmo.toml").unwrap();
        let new = Policy::from_toml_file("tests/data/diff/exmo_1.1.toml").unwrap();
        let text = std::fs::read_to_string("tests/data/diff/exmo_1.1.toml").unwrap();
        let warnings = undeclared(&old, &new);
        assert!(!warnings.is_empty());
        for warning in &warnings {
            assert_eq!(warning.file(), "tests/data/diff/exmo_1.1.toml");
            assert_eq!(warning.warning_name(), Some("undeclared_material_change"));
            let id = warning.rule().unwrap();
            let line = text.lines().nth(warning.line() - 1).unwrap();
            let column = warning.column() - 1;
            assert!(line[column..].starts_with("id"), "{warning}: {line}");
            assert!(line.contains(&format!("\"{id}\"")), "{warning}: {line}");
        }
        // A policy built without a file: the rule is known, the place is not.
        let built = Policy::compile(new.document().clone(), "<builder>").unwrap();
        let unlocated = undeclared(&old, &built);
        assert_eq!(unlocated.len(), warnings.len());
        assert!(unlocated.iter().all(|w| (w.line(), w.column()) == (0, 0) && w.rule().is_some()));
    }

    #[test]
    fn names_cover_their_children() {
        assert!(covers("location", "location.precise"));
        assert!(!covers("location", "locations"));
        assert_eq!(added(&["contact".to_owned()], &["contact.email".to_owned(), "health".to_owned()]), ["health"]);
    }
}
