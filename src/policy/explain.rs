//! A structured description of a compiled policy, for people and their tools: what each
//! rule permits, on which basis, with its defaults spelt out (the effective actions,
//! recipients, regions, level and de-identification), the sentence of the privacy
//! policy it encodes, and the warnings about it, each under its rule. The command
//! line's `explain` renders it as text, Markdown, HTML or JSON; the HTTP service's
//! `GET /v1/policy` answers its JSON, for the policy the guard enforces.
//!
//! ```
//! use consent_guard::policy::explain::describe;
//! use consent_guard::Policy;
//!
//! let policy = Policy::from_toml_file("examples/policies/aiart.toml")?;
//! let description = describe(&policy);
//! let rule = description.rules.iter().find(|r| r.clause == "aiart.recommendation").ok_or("no rule")?;
//! assert_eq!(rule.warnings[0].warning, Some("opt_out_sensitive"));
//! let json = serde_json::to_value(&description)?;
//! assert_eq!(json["policy"], "aiart");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::Serialize;

use super::document::{
    ConsentDefault, MinorsSection, RecipientDeclaration, Retention, RuleDocument, SeparateTrigger, Signal,
};
use super::Policy;
use crate::basis::{Bases, ConsentLevel};
use crate::category::DataCategory;
use crate::error::Diagnostic;
use crate::purpose::Purpose;
use crate::request::{Action, Deidentification, Region};

/// A policy, described.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Explanation {
    /// The policy's name.
    pub policy: String,
    /// Its version.
    pub version: String,
    /// The privacy policy it encodes (a URL or a title).
    pub source: Option<String>,
    /// Where the service is.
    pub home_region: Region,
    /// Where data may be stored.
    pub storage_regions: Vec<Region>,
    /// What consent rules need separate consent for.
    pub separate_consent_for: Vec<SeparateTrigger>,
    /// How minors are treated, as written.
    pub minors: Option<MinorsSection>,
    /// Purposes and categories the policy declares beyond the vocabulary.
    pub declared_purposes: Vec<String>,
    /// Data categories declared beyond the vocabulary.
    pub declared_categories: Vec<String>,
    /// The named recipients and their limits.
    pub recipients: Vec<RecipientExplanation>,
    /// Warnings about no one rule.
    pub warnings: Vec<Note>,
    /// Every rule, in the order written.
    pub rules: Vec<RuleExplanation>,
}

/// A named recipient.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RecipientExplanation {
    /// Its name, as rules and requests use it.
    pub name: String,
    /// Its declaration: kind, description and limits.
    #[serde(flatten)]
    pub declaration: RecipientDeclaration,
}

/// A lint warning, with the reason a rule's `allow` gives when it accepts it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Note {
    /// The warning's stable name.
    pub warning: Option<&'static str>,
    /// What it says.
    pub message: String,
    /// The reason it is accepted, if a rule allows it.
    pub allowed: Option<String>,
}

impl Note {
    fn of(diagnostic: &Diagnostic) -> Note {
        Note {
            warning: diagnostic.warning_name(),
            message: diagnostic.message().to_owned(),
            allowed: diagnostic.allowed().map(str::to_owned),
        }
    }
}

/// A data category, and whether the policy holds it sensitive (or may contain
/// sensitive children).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CategoryExplanation {
    /// The category.
    pub name: DataCategory,
    /// Whether it is sensitive.
    pub sensitive: bool,
}

/// One rule, with its defaults spelt out.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RuleExplanation {
    /// The rule's id, the clause it encodes.
    pub clause: String,
    /// The purposes it governs (and their children that no other rule governs).
    pub purposes: Vec<Purpose>,
    /// The lawful bases.
    pub basis: Bases,
    /// The consent level needed (consent rules only).
    pub level: Option<ConsentLevel>,
    /// Opt-in or opt-out (consent rules only).
    pub default: Option<ConsentDefault>,
    /// An opt-out that holds only for subjects the guard knows.
    pub known_subject: bool,
    /// Anonymized data needs no consent.
    pub anonymized_exempt: bool,
    /// The data it permits.
    pub categories: Vec<CategoryExplanation>,
    /// What may be done with it.
    pub actions: Vec<Action>,
    /// Whether `actions` are the default ones (the rule names none).
    pub default_actions: bool,
    /// Who may receive it: recipient kinds and named recipients.
    pub recipients: Vec<String>,
    /// The de-identification needed at least.
    pub deidentification: Deidentification,
    /// How long it may be kept (`None`: not limited by the policy).
    pub retention: Option<Retention>,
    /// Where it may be stored.
    pub regions: Vec<Region>,
    /// Regions it may be transferred to with separate consent (`*`: any).
    pub transfer_regions: Vec<String>,
    /// Signals that switch the rule off.
    pub opt_out_signals: Vec<Signal>,
    /// Consent given under a version before this one must be renewed.
    pub changed_in: Option<String>,
    /// The sentence of the privacy policy it encodes.
    pub source: Option<String>,
    /// Warnings about this rule.
    pub warnings: Vec<Note>,
}

/// Describes a compiled policy. The warnings are the policy's own, each under the rule
/// it is about ([`Diagnostic::rule`]).
pub fn describe(policy: &Policy) -> Explanation {
    let document = policy.document();
    let header = &document.policy;
    let mut other = Vec::new();
    let mut rules: Vec<RuleExplanation> = policy.rules().iter().map(|rule| describe_rule(policy, rule)).collect();
    for warning in policy.warnings() {
        let mine = warning.rule().and_then(|id| rules.iter_mut().find(|r| r.clause == id));
        match mine {
            Some(rule) => rule.warnings.push(Note::of(warning)),
            None => other.push(Note::of(warning)),
        }
    }
    let (purposes, categories) = policy.extensions();
    Explanation {
        policy: header.name.clone(),
        version: header.version.clone(),
        source: header.source.clone(),
        home_region: header.home_region,
        storage_regions: policy.storage_regions().to_vec(),
        separate_consent_for: header.separate_consent_for.clone().unwrap_or_else(|| SeparateTrigger::ALL.to_vec()),
        minors: document.minors.clone(),
        declared_purposes: purposes.iter().map(|p| (*p).to_owned()).collect(),
        declared_categories: categories.iter().map(|c| (*c).to_owned()).collect(),
        recipients: document
            .recipients
            .iter()
            .map(|(name, declaration)| RecipientExplanation { name: name.clone(), declaration: declaration.clone() })
            .collect(),
        warnings: other,
        rules,
    }
}

fn describe_rule(policy: &Policy, rule: &RuleDocument) -> RuleExplanation {
    let level = rule.effective_level();
    RuleExplanation {
        clause: rule.id.clone(),
        purposes: rule.purposes.clone(),
        basis: rule.basis.clone(),
        level,
        default: level.map(|_| rule.default.unwrap_or_default()),
        known_subject: rule.known_subject.unwrap_or(false),
        anonymized_exempt: rule.anonymized_exempt.unwrap_or(false),
        categories: rule
            .categories
            .iter()
            .map(|c| CategoryExplanation { name: c.clone(), sensitive: policy.is_sensitive(c) })
            .collect(),
        actions: rule.effective_actions().to_vec(),
        default_actions: rule.effective_actions() == RuleDocument::DEFAULT_ACTIONS,
        recipients: rule.effective_recipients().map(str::to_owned).collect(),
        deidentification: rule.effective_deidentification(),
        retention: rule.retention,
        regions: rule.effective_regions(policy.storage_regions()).to_vec(),
        transfer_regions: rule.transfer_regions.clone().unwrap_or_default(),
        opt_out_signals: rule.opt_out_signals.clone().unwrap_or_default(),
        changed_in: rule.changed_in.clone(),
        source: rule.source.clone(),
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_sit_under_their_rule() {
        let text = "[policy]\nname = \"t\"\nversion = \"1.0\"\nhome_region = \"CN\"\n\n[[rule]]\nid = \"t.a\"\npurposes = [\"ai_training\", \"ai_training.model_training\"]\nbasis = \"contract\"\ncategories = [\"behavior\"]\n";
        let policy = Policy::from_toml_str(text, "t.toml").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(policy.warnings().iter().all(|w| w.rule() == Some("t.a")), "{:?}", policy.warnings());
        let description = describe(&policy);
        assert!(description.warnings.is_empty());
        assert_eq!(description.rules.first().map(|r| r.warnings.len()), Some(1));
    }
}
