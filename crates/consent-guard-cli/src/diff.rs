//! `diff OLD NEW`: renders `consent_guard::policy::diff` (what changed between two
//! versions of a policy, purpose by purpose, which changes are material, and whether
//! the new policy declares each material change through the rule's `changed_in`) as
//! text or JSON. `lint --since OLD NEW` shows the library's warnings about the
//! undeclared ones.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use consent_guard::policy::diff::{compare, PolicyDiff, PurposeDiff};
use consent_guard::Policy;
use serde_json::json;

use crate::CliError;

/// `diff`: text or JSON on standard output; 1 when a material change of a consent
/// rule is not declared, so that CI can stop it.
pub(crate) fn run(old_path: &Path, new_path: &Path, json_format: bool) -> Result<ExitCode, CliError> {
    let old = Policy::from_toml_file(old_path)?;
    let new = Policy::from_toml_file(new_path)?;
    let diff = compare(&old, &new);
    let undeclared = diff.undeclared();
    let text = if json_format { json_text(&diff) } else { plain(&old, &new, &diff.purposes) };
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

fn json_text(diff: &PolicyDiff) -> String {
    let purposes: Vec<serde_json::Value> = diff
        .purposes
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
        "old": {"policy": diff.old.policy, "version": diff.old.version},
        "new": {"policy": diff.new.policy, "version": diff.new.version},
        "purposes": purposes,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}
