//! The checks of a policy document, one small function per error or warning, each
//! named like what it reports. Every problem is collected, not only the first, so a
//! reviewer fixes a file in one pass. `compile` calls these and lowers what they let
//! through; a name the vocabulary does not know is found where it is resolved, in
//! `compile`, since resolving it is the check.

use super::document::{ConsentDefault, MinorsSection, PolicyDocument, RuleDocument};
use super::{PathSegment, Problem};
use crate::basis::{ConsentLevel, LegalBasis};
use crate::error::Severity;
use crate::name::{Tree, MAX_NODES};
use crate::request::Region;
use crate::version::PolicyVersion;

/// The problems found so far, in the order found.
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn error(&mut self, path: Vec<PathSegment>, message: impl Into<String>) {
        self.0.push(Problem { severity: Severity::Error, path, message: message.into(), warning: None, allowed: None });
    }
    pub(super) fn warning(&mut self, name: &'static str, path: Vec<PathSegment>, message: impl Into<String>) {
        let warning = Some(name);
        self.0.push(Problem { severity: Severity::Warning, path, message: message.into(), warning, allowed: None });
    }
    pub(super) fn has_errors(&self) -> bool {
        self.0.iter().any(|p| p.severity == Severity::Error)
    }
}

pub(super) fn key(k: &str) -> PathSegment {
    PathSegment::Key(k.to_owned())
}

pub(super) fn at(path: &[PathSegment], more: &[PathSegment]) -> Vec<PathSegment> {
    path.iter().chain(more).cloned().collect()
}

pub(super) fn unknown(kind: &str, name: &str) -> String {
    format!("unknown {kind} `{name}`: use a name of the vocabulary or declare it under [vocabulary]")
}

// --- The policy header ---

pub(super) fn policy_without_name(document: &PolicyDocument, problems: &mut Problems) {
    if document.policy.name.trim().is_empty() {
        problems.error(vec![key("policy"), key("name")], "the policy needs a name");
    }
}

/// The version, or the default after reporting why it does not parse.
pub(super) fn malformed_version(document: &PolicyDocument, problems: &mut Problems) -> PolicyVersion {
    PolicyVersion::parse(&document.policy.version).unwrap_or_else(|message| {
        problems.error(vec![key("policy"), key("version")], message);
        PolicyVersion::default()
    })
}

pub(super) fn no_storage_region(storage_regions: &[Region], problems: &mut Problems) {
    if storage_regions.is_empty() {
        problems.error(
            vec![key("policy"), key("storage_regions")],
            "data must be storable somewhere: list at least one region",
        );
    }
}

// --- [minors] ---

/// `true` when the age is one a policy may name.
pub(super) fn age_out_of_range(age: u8, field: &str, problems: &mut Problems) -> bool {
    let in_range = (1..=25).contains(&age);
    if !in_range {
        problems.error(vec![key("minors"), key(field)], format!("age {age} is not between 1 and 25"));
    }
    in_range
}

pub(super) fn guardian_and_not_served(problems: &mut Problems) {
    problems.error(
        vec![key("minors"), key("not_served_under")],
        "choose one: minors either need guardian consent or are not served",
    );
}

pub(super) fn minors_fields_without_age_rule(section: &MinorsSection, unknown_is_minor: bool, problems: &mut Problems) {
    if section.sensitive_under.is_some() {
        problems.error(
            vec![key("minors"), key("sensitive_under")],
            "sensitive_under needs an age rule: set guardian_consent_under or not_served_under",
        );
    }
    if unknown_is_minor {
        problems.error(
            vec![key("minors"), key("unknown_age")],
            "unknown_age needs an age rule: set guardian_consent_under or not_served_under",
        );
    }
    guardian_level_without_guardians(section, problems);
}

/// A guardian level where no guardian consents would read as a protection it is not.
pub(super) fn guardian_level_without_guardians(section: &MinorsSection, problems: &mut Problems) {
    if section.guardian_level.is_some() {
        problems.error(
            vec![key("minors"), key("guardian_level")],
            "guardian_level needs guardian_consent_under: without it no guardian consents",
        );
    }
}

/// `true` when `sensitive_under` is at most the minors' age.
pub(super) fn sensitive_under_above_minors_age(age: u8, under: u8, problems: &mut Problems) -> bool {
    let fits = (1..=under).contains(&age);
    if !fits {
        problems.error(
            vec![key("minors"), key("sensitive_under")],
            format!("sensitive_under {age} must be between 1 and the minors' age {under}"),
        );
    }
    fits
}

/// `sensitive_under` says a child's data is sensitive as a whole, which asks separate
/// consent through the `minor` trigger: without the trigger, the child's data would
/// pass on explicit consent.
pub(super) fn sensitive_under_without_minor_trigger(document: &PolicyDocument, minor: bool, problems: &mut Problems) {
    if !minor && document.minors.as_ref().is_some_and(|m| m.sensitive_under.is_some()) {
        problems.error(
            vec![key("minors"), key("sensitive_under")],
            "sensitive_under makes a child's data sensitive as a whole, which needs `minor` in \
             policy.separate_consent_for: add it, or remove sensitive_under",
        );
    }
}

// --- [[rule]]: its identity ---

pub(super) fn rule_id_missing_or_taken(
    rule: &RuleDocument,
    path: &[PathSegment],
    first_use: Option<usize>,
    problems: &mut Problems,
) {
    if rule.id.trim().is_empty() {
        problems.error(at(path, &[key("id")]), "every rule needs an id naming the clause it encodes");
    } else if let Some(first) = first_use {
        problems.error(at(path, &[key("id")]), format!("rule id `{}` is already used by rule {}", rule.id, first + 1));
    }
}

pub(super) fn rule_without_purposes(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    if rule.purposes.is_empty() {
        problems.error(at(path, &[key("purposes")]), "a rule must name at least one purpose");
    }
}

// --- [[rule]]: basis, level and defaults ---

pub(super) fn consent_among_several_bases(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    if rule.basis.len() > 1 && rule.basis.contains(LegalBasis::Consent) {
        problems.error(
            at(path, &[key("basis")]),
            "`consent` cannot be one of several bases: a purpose lawful without consent never needs it \
             (what consent adds goes under [rule.with_consent])",
        );
    }
}

pub(super) fn level_missing_or_misplaced(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    match (rule.basis == LegalBasis::Consent, rule.level) {
        (true, None) => {
            problems.error(at(path, &[key("basis")]), "a consent rule must say which consent level it needs (`level`)");
        }
        (false, Some(_)) => problems.error(
            at(path, &[key("level")]),
            format!("only consent rules have a level; this rule's basis is {}", rule.basis),
        ),
        _ => {}
    }
}

pub(super) fn default_on_non_consent_rule(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    if rule.basis != LegalBasis::Consent && rule.default.is_some() {
        problems.error(at(path, &[key("default")]), "only consent rules are opt-in or opt-out");
    }
}

pub(super) fn known_subject_without_opt_out(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    if rule.known_subject.is_some() && rule.default != Some(ConsentDefault::OptOut) {
        problems.error(
            at(path, &[key("known_subject")]),
            "only opt-out rules deem consent, so only they can ask for a known subject",
        );
    }
}

pub(super) fn opt_out_requiring_separate(
    rule: &RuleDocument,
    level: ConsentLevel,
    path: &[PathSegment],
    problems: &mut Problems,
) {
    if rule.default == Some(ConsentDefault::OptOut) && level == ConsentLevel::Separate {
        problems.error(
            at(path, &[key("default")]),
            "separate consent is always affirmative: an opt-out rule cannot require it",
        );
    }
}

pub(super) fn anonymized_exempt_without_consent(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    if rule.basis != LegalBasis::Consent && rule.anonymized_exempt.is_some() {
        problems
            .error(at(path, &[key("anonymized_exempt")]), "only consent rules can exempt anonymized data from consent");
    }
}

// --- [[rule]]: what it permits ---

pub(super) fn rule_without_categories(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    if rule.categories.is_empty() {
        problems.error(at(path, &[key("categories")]), "a rule must name at least one data category");
    }
}

/// The warnings `opt_out_sensitive` and `sensitive_below_separate`: a consent rule
/// that reaches sensitive data (`sensitive_reached`, a mask of `categories`) without
/// affirmative separate consent.
pub(super) fn sensitive_without_separate_consent(
    rule: &RuleDocument,
    level: ConsentLevel,
    sensitive_reached: u128,
    categories: &Tree,
    path: &[PathSegment],
    problems: &mut Problems,
) {
    if rule.basis != LegalBasis::Consent || sensitive_reached == 0 {
        return;
    }
    let first = categories.first_in(sensitive_reached).unwrap_or("");
    if rule.default == Some(ConsentDefault::OptOut) {
        problems.warning(
            "opt_out_sensitive",
            at(path, &[key("default")]),
            format!("opt-out rule on sensitive data ({first}): sensitive data needs affirmative separate consent"),
        );
    } else if level < ConsentLevel::Separate {
        problems.warning(
            "sensitive_below_separate",
            at(path, &[key("level")]),
            format!(
                "consent rule on sensitive data ({first}) below `separate`: requests for it will need separate consent"
            ),
        );
    }
}

pub(super) fn empty_action_list(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    if rule.actions.as_ref().is_some_and(Vec::is_empty) {
        problems.error(at(path, &[key("actions")]), "an empty action list permits nothing: remove the rule instead");
    }
}

pub(super) fn empty_recipient_list(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    if rule.recipients.as_ref().is_some_and(Vec::is_empty) {
        problems.error(
            at(path, &[key("recipients")]),
            "an empty recipient list permits nothing: list `first_party` at least",
        );
    }
}

pub(super) fn with_consent_misused(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    let Some(extension) = &rule.with_consent else { return };
    let here = at(path, &[key("with_consent")]);
    if rule.basis == LegalBasis::Consent {
        problems.error(here.clone(), "a consent rule lists what consent permits in its own actions and recipients");
    }
    if extension.actions.as_ref().is_some_and(Vec::is_empty) {
        problems.error(at(&here, &[key("actions")]), "an empty action list adds nothing: remove it");
    }
}

pub(super) fn empty_region_list(regions: &[Region], path: &[PathSegment], problems: &mut Problems) {
    if regions.is_empty() {
        problems.error(at(path, &[key("regions")]), "an empty region list permits nothing");
    }
}

/// A rule region outside the storage regions is cross-border: consent rules escalate
/// it, and on another basis it would be reached with no consent at all. Such a region
/// is a transfer region.
pub(super) fn region_outside_storage(
    rule: &RuleDocument,
    storage_regions: &[Region],
    path: &[PathSegment],
    problems: &mut Problems,
) {
    for (index, region) in rule.regions.iter().flatten().enumerate() {
        if !storage_regions.contains(region) {
            problems.error(
                at(path, &[key("regions"), PathSegment::Index(index)]),
                format!(
                    "region `{region}` is outside policy.storage_regions: sending data there is a transfer; \
                     list it in transfer_regions (separate consent) or in storage_regions"
                ),
            );
        }
    }
}

/// A transfer region must be a region code or `*`, and not also a regular region.
pub(super) fn transfer_region_malformed_or_regular(
    code: &str,
    index: usize,
    regions: &[Region],
    path: &[PathSegment],
    problems: &mut Problems,
) -> Option<Region> {
    let here = at(path, &[key("transfer_regions"), PathSegment::Index(index)]);
    match Region::new(code) {
        Ok(region) if regions.contains(&region) => {
            problems.error(here, format!("region `{region}` is both a regular and a transfer region"));
            None
        }
        Ok(region) => Some(region),
        Err(_) => {
            problems.error(here, format!("`{code}` is not a two-letter region code or `*`"));
            None
        }
    }
}

// --- [[rule]]: retention and versions ---

pub(super) fn retention_out_of_bounds(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    if let Some(Err(message)) = rule.retention.map(super::Retention::check_bounds) {
        problems.error(at(path, &[key("retention")]), message);
    }
}

/// `retention_until_anonymized` stands alone: every purpose can end (an `end` event),
/// and it says anonymized data outlives that end too ("delete or anonymize").
pub(super) fn retention_lift_without_retention(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    let field = "separate_consent_lifts_retention";
    if rule.separate_consent_lifts_retention.is_some() && rule.retention.is_none() {
        problems.error(at(path, &[key(field)]), format!("{field} needs a `retention` to lift"));
    }
}

/// The time kept after a purpose ends is a duration: a session has no meaning once
/// the purpose is over.
pub(super) fn retention_after_end_not_a_duration(rule: &RuleDocument, path: &[PathSegment], problems: &mut Problems) {
    let here = || at(path, &[key("retention_after_end")]);
    match rule.retention_after_end {
        Some(super::Retention::Session) => {
            problems.error(here(), "retention_after_end is a duration (\"30d\"), not `session`")
        }
        Some(limit) => {
            if let Err(message) = limit.check_bounds() {
                problems.error(here(), message);
            }
        }
        None => {}
    }
}

/// `true` when the rule's `anonymized_level` (if any) may be used.
pub(super) fn anonymized_level_misplaced(
    rule: &RuleDocument,
    level: ConsentLevel,
    path: &[PathSegment],
    problems: &mut Problems,
) -> bool {
    match (rule.anonymized_level, rule.basis == LegalBasis::Consent) {
        (None, _) => true,
        (Some(_), false) => {
            problems.error(at(path, &[key("anonymized_level")]), "only consent rules have a level");
            false
        }
        (Some(lower), true) if lower > level => {
            problems.error(
                at(path, &[key("anonymized_level")]),
                format!(
                    "anonymized_level `{lower}` is above the rule's level `{level}`: anonymized data never needs more"
                ),
            );
            false
        }
        (Some(_), true) => true,
    }
}

/// The rule's `changed_in`, if it parses and is not later than the policy's version.
pub(super) fn changed_in_malformed_or_later(
    rule: &RuleDocument,
    version: &PolicyVersion,
    path: &[PathSegment],
    problems: &mut Problems,
) -> Option<PolicyVersion> {
    let text = rule.changed_in.as_deref()?;
    match PolicyVersion::parse(text) {
        Ok(v) if v > *version => {
            problems.error(
                at(path, &[key("changed_in")]),
                format!("changed_in `{text}` is later than the policy's version"),
            );
            None
        }
        Ok(v) => Some(v),
        Err(message) => {
            problems.error(at(path, &[key("changed_in")]), message);
            None
        }
    }
}

// --- Across rules ---

fn bit(index: usize) -> u128 {
    1u128 << (index % MAX_NODES)
}

/// A rule that governs no leaf purpose is shadowed: more specific rules take every
/// leaf of its subtrees.
pub(super) fn shadowed_rule(
    document: &PolicyDocument,
    purposes: &Tree,
    direct: &[Option<u16>],
    rule_for: &[Option<u16>],
    problems: &mut Problems,
) {
    for (index, rule) in document.rules.iter().enumerate() {
        let mut governs_something = false;
        for purpose in &rule.purposes {
            let Some(node) = purposes.index(&purpose.0) else { return };
            let subtree = purposes.down(node);
            // Requests name the most specific node they can, so only leaves count.
            governs_something |= (0..purposes.len()).any(|n| {
                let is_leaf = purposes.down(n) == bit(n);
                is_leaf && subtree & bit(n) != 0 && rule_for.get(n).copied().flatten().map(usize::from) == Some(index)
            });
        }
        if !governs_something && !rule.purposes.is_empty() && direct.iter().any(|d| d.map(usize::from) == Some(index)) {
            problems.warning(
                "shadowed_rule",
                vec![key("rule"), PathSegment::Index(index), key("purposes")],
                format!("rule `{}` is shadowed: more specific rules govern every purpose under it", rule.id),
            );
        }
    }
}

pub(super) fn unused_recipient(document: &PolicyDocument, problems: &mut Problems) {
    for name in document.recipients.keys() {
        let listed = |list: &Option<Vec<String>>| list.as_ref().is_some_and(|list| list.contains(name));
        let used = document.rules.iter().any(|rule| {
            listed(&rule.recipients)
                || rule.with_consent.as_ref().is_some_and(|extension| listed(&extension.recipients))
        });
        if !used {
            problems.warning(
                "unused_recipient",
                vec![key("recipients"), key(name)],
                format!("recipient `{name}` is declared but no rule lets it receive data"),
            );
        }
    }
}

/// Marks the warnings a rule's `allow` accepts (they stay in the list, with the
/// reason, for reviewers); checks the allows themselves: a known warning name, a
/// reason, and a warning to allow.
pub(super) fn allows(document: &PolicyDocument, problems: &mut Problems) {
    let mut unused = Vec::new();
    for (index, rule) in document.rules.iter().enumerate() {
        for (i, allow) in rule.allow.iter().enumerate() {
            let path = vec![key("rule"), PathSegment::Index(index), key("allow"), PathSegment::Index(i)];
            if !crate::error::WARNING_NAMES.contains(&allow.warning.as_str()) {
                problems.error(
                    path,
                    format!(
                        "unknown warning `{}`: expected one of {}",
                        allow.warning,
                        crate::error::WARNING_NAMES.map(|n| format!("`{n}`")).join(", ")
                    ),
                );
                continue;
            }
            if allow.reason.trim().is_empty() {
                problems.error(path.clone(), format!("allowing `{}` needs a reason", allow.warning));
            }
            let mut matched = false;
            for problem in problems.0.iter_mut().filter(|p| p.severity == Severity::Warning) {
                let of_rule = matches!(problem.path.as_slice(), [PathSegment::Key(k), PathSegment::Index(n), ..] if k == "rule" && *n == index);
                if of_rule && problem.warning.is_some_and(|w| w == allow.warning) {
                    problem.allowed = Some(allow.reason.clone());
                    matched = true;
                }
            }
            // Found by `lint --since`, comparing with an older version: not here.
            if !matched && allow.warning != "undeclared_material_change" {
                unused.push((path, format!("rule `{}` allows `{}`, but has no such warning", rule.id, allow.warning)));
            }
        }
    }
    for (path, message) in unused {
        problems.warning("unused_allow", path, message);
    }
}
