//! A structured description of a compiled policy, for people and their tools: what each
//! rule permits, on which basis, with its defaults spelt out (the effective actions,
//! recipients, regions, level and de-identification), the sentence of the privacy
//! policy it encodes, and the warnings about it, each under its rule. Each rule lists
//! its [`Permission`]s: every action and recipient it permits, what `[rule.with_consent]`
//! adds included, each with the consent it needs once the policy's separate-consent
//! triggers are applied. The command
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
    ConsentDefault, MinorsSection, RecipientDeclaration, Retention, RuleDocument, SeparateTrigger, Signal, WithConsent,
};
use super::Policy;
use crate::basis::{Bases, ConsentLevel};
use crate::category::DataCategory;
use crate::error::Diagnostic;
use crate::purpose::Purpose;
use crate::request::{Action, Deidentification, RecipientKind, Region};

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
    /// The purposes the policy knows (built in or declared) that no rule governs,
    /// itself or through a purpose above it: each is denied (`no_rule`).
    pub denied_purposes: Vec<Purpose>,
}

/// One thing a rule permits: an action for a recipient, and the consent it needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Permission {
    /// What may be done.
    pub action: Action,
    /// To whom: a recipient kind, or a declared recipient's name (within its limits).
    pub recipient: String,
    /// The consent needed at least, the policy's separate-consent triggers for this
    /// recipient and action applied; `None`: none (the rule's basis is not consent).
    pub consent: Option<ConsentLevel>,
    /// Permitted only by `[rule.with_consent]`.
    pub with_consent: bool,
    /// The trigger that raised `consent` to separate, if one did.
    pub separate_because: Option<SeparateTrigger>,
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
    /// What the subject's consent adds to a rule on another basis, as written.
    pub with_consent: Option<WithConsent>,
    /// Every action and recipient the rule permits, with the consent each needs:
    /// `actions` × `recipients`, then what `with_consent` adds.
    pub permissions: Vec<Permission>,
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
        denied_purposes: denied_purposes(policy),
    }
}

/// The known purposes no rule governs.
fn denied_purposes(policy: &Policy) -> Vec<Purpose> {
    let (declared, _) = policy.extensions();
    crate::purpose::PURPOSE_NAMES
        .iter()
        .copied()
        .chain(declared)
        .filter_map(|name| name.parse::<Purpose>().ok())
        .filter(|purpose| policy.rule_for(purpose).is_none())
        .collect()
}

/// The recipient kind of `name`: a kind, or a declared recipient's kind.
fn kind_of(policy: &Policy, name: &str) -> Option<RecipientKind> {
    RecipientKind::ALL
        .iter()
        .copied()
        .find(|kind| kind.as_str() == name)
        .or_else(|| policy.document().recipients.get(name).map(|declared| declared.kind))
}

/// Every action × recipient `rule` permits, with the consent each needs, as the guard
/// decides it: the rule's own at its level (none on another basis), then what only
/// `with_consent` reaches at its level; consent is raised to separate for a third
/// party, the public or a disclosure where the policy's triggers say so.
fn permissions(policy: &Policy, rule: &RuleDocument) -> Vec<Permission> {
    let triggers = policy.document().policy.separate_consent_for.as_deref().unwrap_or(&SeparateTrigger::ALL);
    let own_actions = rule.effective_actions();
    let own_recipients: Vec<&str> = rule.effective_recipients().collect();
    let extension = rule.with_consent.as_ref();
    let share = [Action::Share];
    let extra_actions: &[Action] = match extension {
        None => &[],
        Some(extension) => extension.actions.as_deref().unwrap_or(&share),
    };
    let extra_recipients: Vec<&str> = match extension {
        None => Vec::new(),
        Some(extension) => match &extension.recipients {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => own_recipients.clone(),
        },
    };
    let mut recipients = own_recipients.clone();
    for name in &extra_recipients {
        if !recipients.contains(name) {
            recipients.push(name);
        }
    }
    let mut found = Vec::new();
    for action in Action::ALL.iter().filter(|a| own_actions.contains(a) || extra_actions.contains(a)) {
        for recipient in &recipients {
            let own = own_actions.contains(action) && own_recipients.contains(recipient);
            let consent = if own {
                rule.effective_level()
            } else if let Some(extension) = extension {
                Some(extension.level)
            } else {
                continue;
            };
            let kind = kind_of(policy, recipient);
            let trigger = if kind == Some(RecipientKind::ThirdParty) && triggers.contains(&SeparateTrigger::ThirdParty)
            {
                Some(SeparateTrigger::ThirdParty)
            } else if (kind == Some(RecipientKind::Public) || *action == Action::Disclose)
                && triggers.contains(&SeparateTrigger::Public)
            {
                Some(SeparateTrigger::Public)
            } else {
                None
            };
            let separate_because = trigger.filter(|_| consent.is_some_and(|level| level < ConsentLevel::Separate));
            found.push(Permission {
                action: *action,
                recipient: (*recipient).to_owned(),
                consent: if separate_because.is_some() { Some(ConsentLevel::Separate) } else { consent },
                with_consent: !own,
                separate_because,
            });
        }
    }
    found
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
        with_consent: rule.with_consent.clone(),
        permissions: permissions(policy, rule),
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
