//! Lowering a policy document: names become bit masks and each purpose learns its
//! rule. The checks are in `validate`, called from here in the order a reader meets
//! the fields; a name is checked where it is resolved.

use std::collections::HashMap;

use super::document::{ConsentDefault, PolicyDocument, RuleDocument, SeparateTrigger, Signal};
use super::validate::{self, at, key, unknown, Problems};
use super::{CompiledRecipient, Minors, PathSegment, Policy, Problem, Rule, TransferRegions, Triggers};
use crate::basis::{ConsentLevel, LegalBasis};
use crate::category::{DataCategory, CATEGORY_NAMES, SENSITIVE_BUILTINS};
use crate::name::{ExtendError, Tree, MAX_NODES};
use crate::purpose::{Purpose, PURPOSE_NAMES};
use crate::request::{Action, Actions, RecipientKind, RecipientKinds, Region};
use crate::version::PolicyVersion;

/// The most recipients a policy may declare (they are bits of a `u64`).
const MAX_RECIPIENTS: usize = 64;

fn bit(index: usize) -> u128 {
    1u128 << (index % MAX_NODES)
}

/// Compiles a document. Success carries the warnings; failure every problem (errors
/// and warnings).
pub(crate) fn compile(document: PolicyDocument) -> Result<(Policy, Vec<Problem>), Vec<Problem>> {
    let mut problems = Problems(Vec::new());
    let header = &document.policy;

    validate::policy_without_name(&document, &mut problems);
    let version = validate::malformed_version(&document, &mut problems);
    let storage_regions = header.storage_regions.clone().unwrap_or_else(|| vec![header.home_region]);
    validate::no_storage_region(&storage_regions, &mut problems);
    let separate = compile_triggers(header.separate_consent_for.as_deref());

    let minors = compile_minors(&document, &mut problems);
    validate::sensitive_under_without_minor_trigger(&document, separate.minor, &mut problems);
    let (purposes, categories, sensitive) = compile_vocabulary(&document, &mut problems);
    let recipients = compile_recipients(&document, &purposes, &categories, &mut problems);

    let mut rules = Vec::with_capacity(document.rules.len());
    let mut seen_ids: HashMap<&str, usize> = HashMap::new();
    let mut direct: Vec<Option<u16>> = vec![None; purposes.len()];
    for (index, rule) in document.rules.iter().enumerate() {
        let path = [key("rule"), PathSegment::Index(index)];
        let first_use = if rule.id.trim().is_empty() { None } else { seen_ids.insert(&rule.id, index) };
        validate::rule_id_missing_or_taken(rule, &path, first_use, &mut problems);
        validate::rule_without_purposes(rule, &path, &mut problems);
        for (i, purpose) in rule.purposes.iter().enumerate() {
            let Some(node) = purposes.index(&purpose.0) else {
                problems
                    .error(at(&path, &[key("purposes"), PathSegment::Index(i)]), unknown("purpose", purpose.as_str()));
                continue;
            };
            let Some(slot) = direct.get_mut(node) else { continue };
            match slot {
                Some(other) => {
                    let other_id = document.rules.get(usize::from(*other)).map_or("", |r| r.id.as_str());
                    problems.error(
                        at(&path, &[key("purposes"), PathSegment::Index(i)]),
                        format!("purpose `{purpose}` is already governed by rule `{other_id}`: a purpose has exactly one rule"),
                    );
                }
                None => *slot = u16::try_from(index).ok(),
            }
            if rule.purposes.iter().any(|p| p != purpose && p.covers(purpose)) {
                problems.warning(
                    "redundant_purpose",
                    at(&path, &[key("purposes"), PathSegment::Index(i)]),
                    format!("purpose `{purpose}` is already covered by a parent listed in the same rule"),
                );
            }
        }
        rules.push(compile_rule(
            rule,
            &path,
            &storage_regions,
            &categories,
            sensitive,
            &recipients,
            &version,
            &mut problems,
        ));
    }

    // Each node inherits the rule of its nearest ancestor; parents come before children
    // in the tree, so one pass in index order suffices.
    let mut rule_for: Vec<Option<u16>> = vec![None; purposes.len()];
    for node in 0..purposes.len() {
        let parent = crate::name::parent_name(purposes.name(node)).and_then(|p| purposes.index_of_name(p));
        let inherited = parent.and_then(|p| rule_for.get(p).copied().flatten());
        if let Some(slot) = rule_for.get_mut(node) {
            *slot = direct.get(node).copied().flatten().or(inherited);
        }
    }
    validate::shadowed_rule(&document, &purposes, &direct, &rule_for, &mut problems);
    validate::unused_recipient(&document, &mut problems);
    validate::allows(&document, &mut problems);

    if problems.has_errors() {
        return Err(problems.0);
    }
    let compliance = purposes.index(&Purpose::COMPLIANCE.0).map_or(0, |node| purposes.down(node));
    // A category stands for its whole subtree, so one that may contain sensitive data
    // is sensitive: `location` because of `location.precise`.
    let may_be_sensitive = (0..categories.len())
        .filter(|&node| categories.down(node) & sensitive != 0)
        .fold(sensitive, |mask, node| mask | bit(node));
    let leaf_purposes =
        (0..purposes.len()).filter(|&node| purposes.down(node) == bit(node)).fold(0u128, |mask, node| mask | bit(node));
    // A request for a purpose covers its children: when another rule (or none) governs
    // one of them, no single clause can decide the request.
    let too_broad = (0..purposes.len())
        .filter(|&node| {
            let own = rule_for.get(node).copied().flatten();
            (0..purposes.len())
                .any(|other| purposes.down(node) & bit(other) != 0 && rule_for.get(other).copied().flatten() != own)
        })
        .fold(0u128, |mask, node| mask | bit(node));
    let policy = Policy {
        compliance,
        may_be_sensitive,
        leaf_purposes,
        too_broad,
        version,
        storage_regions,
        purposes,
        categories,
        minors,
        separate,
        recipients,
        rules,
        rule_for,
        warnings: Vec::new(),
        origin: super::Origin::default(),
        document,
    };
    Ok((policy, problems.0))
}

fn compile_triggers(list: Option<&[SeparateTrigger]>) -> Triggers {
    let list = list.unwrap_or(&SeparateTrigger::ALL);
    Triggers {
        sensitive: list.contains(&SeparateTrigger::Sensitive),
        minor: list.contains(&SeparateTrigger::Minor),
        third_party: list.contains(&SeparateTrigger::ThirdParty),
        public: list.contains(&SeparateTrigger::Public),
        cross_border: list.contains(&SeparateTrigger::CrossBorder),
    }
}

fn compile_minors(document: &PolicyDocument, problems: &mut Problems) -> Minors {
    let Some(section) = &document.minors else {
        return Minors {
            under: None,
            not_served: false,
            sensitive_under: None,
            unknown_is_minor: false,
            guardian_level: ConsentLevel::Implied,
        };
    };
    let unknown_is_minor = section.unknown_age == Some(super::UnknownAge::Minor);
    let (under, not_served) = match (section.guardian_consent_under, section.not_served_under) {
        (Some(_), Some(_)) => {
            validate::guardian_and_not_served(problems);
            return Minors {
                under: None,
                not_served: false,
                sensitive_under: None,
                unknown_is_minor,
                guardian_level: ConsentLevel::Implied,
            };
        }
        (Some(age), None) => {
            validate::age_out_of_range(age, "guardian_consent_under", problems);
            (age, false)
        }
        (None, Some(age)) => {
            validate::age_out_of_range(age, "not_served_under", problems);
            validate::guardian_level_without_guardians(section, problems);
            (age, true)
        }
        (None, None) => {
            validate::minors_fields_without_age_rule(section, unknown_is_minor, problems);
            return Minors {
                under: None,
                not_served: false,
                sensitive_under: None,
                unknown_is_minor: false,
                guardian_level: ConsentLevel::Implied,
            };
        }
    };
    // A minor's data is sensitive up to the minors' age unless the policy says less.
    let sensitive_under = match section.sensitive_under {
        Some(age) if validate::sensitive_under_above_minors_age(age, under, problems) => age,
        _ => under,
    };
    let guardian_level = section.guardian_level.unwrap_or(ConsentLevel::Implied);
    Minors { under: Some(under), not_served, sensitive_under: Some(sensitive_under), unknown_is_minor, guardian_level }
}

fn compile_vocabulary(document: &PolicyDocument, problems: &mut Problems) -> (Tree, Tree, u128) {
    let mut purposes = Tree::new(PURPOSE_NAMES);
    let mut categories = Tree::new(CATEGORY_NAMES);
    let section = &document.vocabulary;
    let extend = |tree: &mut Tree, field: &str, index: usize, name: &str, problems: &mut Problems| {
        let path = vec![key("vocabulary"), key(field), PathSegment::Index(index)];
        match tree.extend(name) {
            Ok(()) => {}
            Err(ExtendError::AlreadyKnown) => problems.error(path, format!("`{name}` is already known")),
            Err(ExtendError::NoParent(parent)) if parent.is_empty() => {
                problems.error(path, format!("`{name}` must sit under an existing parent, like `service.{name}`"))
            }
            Err(ExtendError::NoParent(parent)) => {
                problems.error(path, format!("the parent `{parent}` of `{name}` is unknown: declare it first"))
            }
            Err(ExtendError::Full) => {
                problems.error(path, format!("too many names: a policy may know at most {MAX_NODES}"))
            }
            Err(ExtendError::Syntax(_)) => problems.error(path, format!("`{name}` is not a dotted lower-case name")),
        }
    };
    for (i, purpose) in section.purposes.iter().enumerate() {
        extend(&mut purposes, "purposes", i, purpose.as_str(), problems);
    }
    for (i, category) in section.categories.iter().enumerate() {
        extend(&mut categories, "categories", i, category.as_str(), problems);
    }
    let mut sensitive = 0u128;
    for category in SENSITIVE_BUILTINS.iter().chain(&section.sensitive) {
        if let Some(index) = categories.index(&category.0) {
            sensitive |= categories.down(index);
        }
    }
    for (i, category) in section.sensitive.iter().enumerate() {
        if categories.index(&category.0).is_none() {
            problems.error(
                vec![key("vocabulary"), key("sensitive"), PathSegment::Index(i)],
                unknown("data category", category.as_str()),
            );
        }
    }
    (purposes, categories, sensitive)
}

fn compile_recipients(
    document: &PolicyDocument,
    purposes: &Tree,
    categories: &Tree,
    problems: &mut Problems,
) -> Vec<CompiledRecipient> {
    if document.recipients.len() > MAX_RECIPIENTS {
        problems.error(vec![key("recipients")], format!("a policy may declare at most {MAX_RECIPIENTS} recipients"));
    }
    let mut compiled = Vec::with_capacity(document.recipients.len());
    for (name, declaration) in &document.recipients {
        let path = [key("recipients"), key(name)];
        if crate::name::check_syntax(name).is_err() || name.contains('.') {
            problems
                .error(at(&path, &[]), format!("recipient name `{name}` must be lower-case letters, digits and `_`"));
        }
        if RecipientKind::from_name(name).is_some() {
            problems.error(at(&path, &[]), format!("`{name}` is a recipient kind; choose another name"));
        }
        let mut mask_of = |tree: &Tree, list: Option<&[String]>, field: &str, what: &str| -> u128 {
            let Some(list) = list else { return u128::MAX };
            let mut mask = 0;
            for (i, item) in list.iter().enumerate() {
                match tree.index_of_name(item) {
                    Some(index) => mask |= tree.down(index),
                    None => problems.error(at(&path, &[key(field), PathSegment::Index(i)]), unknown(what, item)),
                }
            }
            mask
        };
        let purpose_names: Option<Vec<String>> =
            declaration.purposes.as_ref().map(|l| l.iter().map(Purpose::to_string).collect());
        let category_names: Option<Vec<String>> =
            declaration.categories.as_ref().map(|l| l.iter().map(DataCategory::to_string).collect());
        compiled.push(CompiledRecipient {
            name: name.clone(),
            kind: declaration.kind,
            purposes: mask_of(purposes, purpose_names.as_deref(), "purposes", "purpose"),
            categories: mask_of(categories, category_names.as_deref(), "categories", "data category"),
            deidentification: declaration.deidentification.unwrap_or_default(),
        });
    }
    compiled
}

#[expect(clippy::too_many_arguments, reason = "one call site; the arguments are the compiled context of a rule")]
fn compile_rule(
    rule: &RuleDocument,
    path: &[PathSegment],
    storage_regions: &[Region],
    categories: &Tree,
    sensitive: u128,
    recipients: &[CompiledRecipient],
    version: &PolicyVersion,
    problems: &mut Problems,
) -> Rule {
    let is_consent = rule.basis == LegalBasis::Consent;
    validate::consent_among_several_bases(rule, path, problems);
    validate::level_missing_or_misplaced(rule, path, problems);
    // A rule with a wrong level is reported above and never compiled into a policy;
    // separate keeps the lowering total.
    let level = if is_consent { rule.level.unwrap_or(ConsentLevel::Separate) } else { ConsentLevel::Separate };
    let opt_out = rule.default == Some(ConsentDefault::OptOut);
    validate::default_on_non_consent_rule(rule, path, problems);
    validate::known_subject_without_opt_out(rule, path, problems);
    validate::opt_out_requiring_separate(rule, level, path, problems);
    validate::anonymized_exempt_without_consent(rule, path, problems);

    validate::rule_without_categories(rule, path, problems);
    let mut category_mask = 0u128;
    for (i, category) in rule.categories.iter().enumerate() {
        match categories.index(&category.0) {
            Some(node) => category_mask |= categories.down(node),
            None => problems.error(
                at(path, &[key("categories"), PathSegment::Index(i)]),
                unknown("data category", category.as_str()),
            ),
        }
    }
    validate::sensitive_without_separate_consent(rule, level, category_mask & sensitive, categories, path, problems);

    validate::empty_action_list(rule, path, problems);
    let actions = rule.effective_actions().iter().fold(Actions::empty(), |set, a| set | Action::flag(*a));

    validate::empty_recipient_list(rule, path, problems);
    let (recipient_kinds, recipient_names) =
        compile_recipient_list(rule.effective_recipients(), recipients, &at(path, &[key("recipients")]), problems);

    validate::with_consent_misused(rule, path, problems);
    let with_consent = rule.with_consent.as_ref().map(|extension| {
        let here = at(path, &[key("with_consent")]);
        let actions = extension.actions.as_deref().unwrap_or(&[Action::Share]);
        let (kinds, names) = match &extension.recipients {
            None => (recipient_kinds, recipient_names),
            Some(list) => compile_recipient_list(
                list.iter().map(String::as_str),
                recipients,
                &at(&here, &[key("recipients")]),
                problems,
            ),
        };
        super::ConsentExtension {
            level: extension.level,
            actions: actions.iter().fold(Actions::empty(), |set, a| set | Action::flag(*a)),
            recipient_kinds: kinds,
            recipient_names: names,
        }
    });

    // What research on de-identified data adds is the plan's: a request may be decided
    // on another of the rule's bases.
    let deidentification = rule.deidentification.unwrap_or_default();

    let regions = rule.effective_regions(storage_regions).to_vec();
    validate::empty_region_list(&regions, path, problems);
    validate::region_outside_storage(rule, storage_regions, path, problems);
    let transfer_regions = match &rule.transfer_regions {
        None => TransferRegions::None,
        Some(list) if list.iter().any(|r| r == "*") => TransferRegions::Any,
        Some(list) => TransferRegions::Listed(
            list.iter()
                .enumerate()
                .filter_map(|(i, code)| {
                    validate::transfer_region_malformed_or_regular(code, i, &regions, path, problems)
                })
                .collect(),
        ),
    };

    validate::retention_out_of_bounds(rule, path, problems);
    validate::retention_lift_without_retention(rule, path, problems);
    validate::retention_after_end_not_a_duration(rule, path, problems);
    let anonymized_level =
        rule.anonymized_level.filter(|_| validate::anonymized_level_misplaced(rule, level, path, problems));

    let signals = rule.opt_out_signals.as_deref().unwrap_or(&[]);
    let changed_in = validate::changed_in_malformed_or_later(rule, version, path, problems);

    Rule {
        basis: rule.basis.first(),
        bases: rule.basis.iter().fold(0, |set, basis| set | basis.bit()),
        level,
        opt_out,
        known_subject: rule.known_subject.unwrap_or(false),
        anonymized_level,
        retention_until_anonymized: rule.retention_until_anonymized.unwrap_or(false),
        retention_after_end: rule.retention_after_end.and_then(super::Retention::millis).unwrap_or(0),
        separate_consent_lifts_retention: rule.separate_consent_lifts_retention.unwrap_or(false),
        with_consent,
        categories: category_mask,
        actions,
        recipient_kinds,
        recipient_names,
        deidentification,
        anonymized_exempt: rule.anonymized_exempt.unwrap_or(false),
        retention: rule.retention,
        regions,
        transfer_regions,
        dnt: signals.contains(&Signal::Dnt),
        gpc: signals.contains(&Signal::Gpc),
        changed_in,
    }
}

/// Recipient kinds and declared names, as masks; an unknown name is an error at `path`.
fn compile_recipient_list<'n>(
    names: impl Iterator<Item = &'n str>,
    recipients: &[CompiledRecipient],
    path: &[PathSegment],
    problems: &mut Problems,
) -> (RecipientKinds, u64) {
    let (mut kinds, mut declared) = (RecipientKinds::empty(), 0u64);
    for (i, name) in names.enumerate() {
        if let Some(kind) = RecipientKind::from_name(name) {
            kinds |= kind.flag();
        } else if let Some(position) = recipients.iter().position(|r| r.name == name) {
            declared |= 1u64 << (position % 64);
        } else {
            problems.error(
                at(path, &[PathSegment::Index(i)]),
                format!("`{name}` is neither a recipient kind nor a recipient declared under [recipients]"),
            );
        }
    }
    (kinds, declared)
}
