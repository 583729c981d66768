//! Validation and compilation of a policy document: every problem is collected (not
//! only the first), then names become bit masks and each purpose learns its rule.

use std::collections::HashMap;

use super::document::{ConsentDefault, PolicyDocument, PolicyVersion, RuleDocument, SeparateTrigger, Signal};
use super::{CompiledRecipient, Minors, PathSegment, Policy, Problem, Rule, TransferRegions, Triggers};
use crate::basis::{ConsentLevel, LegalBasis};
use crate::category::{DataCategory, CATEGORY_NAMES, SENSITIVE_BUILTINS};
use crate::error::Severity;
use crate::name::{ExtendError, Tree, MAX_NODES};
use crate::purpose::{Purpose, PURPOSE_NAMES};
use crate::request::{Action, Actions, RecipientKind, RecipientKinds, Region};

/// The most recipients a policy may declare (they are bits of a `u64`).
const MAX_RECIPIENTS: usize = 64;

struct Problems(Vec<Problem>);

impl Problems {
    fn error(&mut self, path: Vec<PathSegment>, message: impl Into<String>) {
        self.0.push(Problem { severity: Severity::Error, path, message: message.into(), warning: None, allowed: None });
    }
    fn warning(&mut self, name: &'static str, path: Vec<PathSegment>, message: impl Into<String>) {
        let warning = Some(name);
        self.0.push(Problem { severity: Severity::Warning, path, message: message.into(), warning, allowed: None });
    }
    fn has_errors(&self) -> bool {
        self.0.iter().any(|p| p.severity == Severity::Error)
    }
}

fn key(k: &str) -> PathSegment {
    PathSegment::Key(k.to_owned())
}

fn at(path: &[PathSegment], more: &[PathSegment]) -> Vec<PathSegment> {
    path.iter().chain(more).cloned().collect()
}

fn bit(index: usize) -> u128 {
    1u128 << (index % MAX_NODES)
}

/// Compiles a document. Success carries the warnings; failure every problem (errors
/// and warnings).
pub(crate) fn compile(document: PolicyDocument) -> Result<(Policy, Vec<Problem>), Vec<Problem>> {
    let mut problems = Problems(Vec::new());
    let header = &document.policy;

    if header.name.trim().is_empty() {
        problems.error(vec![key("policy"), key("name")], "the policy needs a name");
    }
    let version = PolicyVersion::parse(&header.version).unwrap_or_else(|message| {
        problems.error(vec![key("policy"), key("version")], message);
        PolicyVersion::default()
    });
    let storage_regions = header.storage_regions.clone().unwrap_or_else(|| vec![header.home_region]);
    if storage_regions.is_empty() {
        problems.error(
            vec![key("policy"), key("storage_regions")],
            "data must be storable somewhere: list at least one region",
        );
    }
    let separate = compile_triggers(header.separate_consent_for.as_deref());

    let minors = compile_minors(&document, &mut problems);
    let (purposes, categories, sensitive) = compile_vocabulary(&document, &mut problems);
    let recipients = compile_recipients(&document, &purposes, &categories, &mut problems);

    let mut rules = Vec::with_capacity(document.rules.len());
    let mut seen_ids: HashMap<&str, usize> = HashMap::new();
    let mut direct: Vec<Option<u16>> = vec![None; purposes.len()];
    for (index, rule) in document.rules.iter().enumerate() {
        let path = [key("rule"), PathSegment::Index(index)];
        if rule.id.trim().is_empty() {
            problems.error(at(&path, &[key("id")]), "every rule needs an id naming the clause it encodes");
        } else if let Some(first) = seen_ids.insert(&rule.id, index) {
            problems
                .error(at(&path, &[key("id")]), format!("rule id `{}` is already used by rule {}", rule.id, first + 1));
        }
        if rule.purposes.is_empty() {
            problems.error(at(&path, &[key("purposes")]), "a rule must name at least one purpose");
        }
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
    shadow_warnings(&document, &purposes, &direct, &rule_for, &mut problems);
    unused_recipient_warnings(&document, &mut problems);
    apply_allows(&document, &mut problems);

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

fn unknown(kind: &str, name: &str) -> String {
    format!("unknown {kind} `{name}`: use a name of the vocabulary or declare it under [vocabulary]")
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
        return Minors { under: None, not_served: false, sensitive_under: None, unknown_is_minor: false };
    };
    let unknown_is_minor = section.unknown_age == Some(super::UnknownAge::Minor);
    let check_age = |age: u8, field: &str, problems: &mut Problems| {
        if !(1..=25).contains(&age) {
            problems.error(vec![key("minors"), key(field)], format!("age {age} is not between 1 and 25"));
        }
    };
    match (section.guardian_consent_under, section.not_served_under) {
        (Some(_), Some(_)) => {
            problems.error(
                vec![key("minors"), key("not_served_under")],
                "choose one: minors either need guardian consent or are not served",
            );
            Minors { under: None, not_served: false, sensitive_under: None, unknown_is_minor }
        }
        (Some(age), None) => {
            check_age(age, "guardian_consent_under", problems);
            let sensitive_under = sensitive_age(section, age, problems);
            Minors { under: Some(age), not_served: false, sensitive_under, unknown_is_minor }
        }
        (None, Some(age)) => {
            check_age(age, "not_served_under", problems);
            let sensitive_under = sensitive_age(section, age, problems);
            Minors { under: Some(age), not_served: true, sensitive_under, unknown_is_minor }
        }
        (None, None) => {
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
            Minors { under: None, not_served: false, sensitive_under: None, unknown_is_minor: false }
        }
    }
}

/// The age under which a minor's data is sensitive: at most the minors' age.
fn sensitive_age(section: &super::MinorsSection, under: u8, problems: &mut Problems) -> Option<u8> {
    match section.sensitive_under {
        None => Some(under),
        Some(age) if (1..=under).contains(&age) => Some(age),
        Some(age) => {
            problems.error(
                vec![key("minors"), key("sensitive_under")],
                format!("sensitive_under {age} must be between 1 and the minors' age {under}"),
            );
            Some(under)
        }
    }
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

#[allow(clippy::too_many_arguments, reason = "one call site; the arguments are the compiled context of a rule")]
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
    if rule.basis.len() > 1 && rule.basis.contains(LegalBasis::Consent) {
        problems.error(
            at(path, &[key("basis")]),
            "`consent` cannot be one of several bases: a purpose lawful without consent never needs it \
             (what consent adds goes under [rule.with_consent])",
        );
    }
    let level = match (is_consent, rule.level) {
        (true, Some(level)) => level,
        (true, None) => {
            problems.error(at(path, &[key("basis")]), "a consent rule must say which consent level it needs (`level`)");
            ConsentLevel::Separate
        }
        (false, Some(_)) => {
            problems.error(
                at(path, &[key("level")]),
                format!("only consent rules have a level; this rule's basis is {}", rule.basis),
            );
            ConsentLevel::Separate
        }
        (false, None) => ConsentLevel::Separate,
    };
    let opt_out = rule.default == Some(ConsentDefault::OptOut);
    if !is_consent && rule.default.is_some() {
        problems.error(at(path, &[key("default")]), "only consent rules are opt-in or opt-out");
    }
    if rule.known_subject.is_some() && !opt_out {
        problems.error(
            at(path, &[key("known_subject")]),
            "only opt-out rules deem consent, so only they can ask for a known subject",
        );
    }
    if opt_out && level == ConsentLevel::Separate {
        problems.error(
            at(path, &[key("default")]),
            "separate consent is always affirmative: an opt-out rule cannot require it",
        );
    }
    if !is_consent && rule.anonymized_exempt.is_some() {
        problems
            .error(at(path, &[key("anonymized_exempt")]), "only consent rules can exempt anonymized data from consent");
    }

    if rule.categories.is_empty() {
        problems.error(at(path, &[key("categories")]), "a rule must name at least one data category");
    }
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
    if is_consent && category_mask & sensitive != 0 {
        if opt_out {
            problems.warning(
                "opt_out_sensitive",
                at(path, &[key("default")]),
                format!(
                    "opt-out rule on sensitive data ({}): sensitive data needs affirmative separate consent",
                    categories.first_in(category_mask & sensitive).unwrap_or("")
                ),
            );
        } else if level < ConsentLevel::Separate {
            problems.warning(
                "sensitive_below_separate",
                at(path, &[key("level")]),
                format!(
                    "consent rule on sensitive data ({}) below `separate`: requests for it will need separate consent",
                    categories.first_in(category_mask & sensitive).unwrap_or("")
                ),
            );
        }
    }

    if rule.actions.as_ref().is_some_and(Vec::is_empty) {
        problems.error(at(path, &[key("actions")]), "an empty action list permits nothing: remove the rule instead");
    }
    let actions = rule.effective_actions().iter().fold(Actions::empty(), |set, a| set | Action::flag(*a));

    if rule.recipients.as_ref().is_some_and(Vec::is_empty) {
        problems.error(
            at(path, &[key("recipients")]),
            "an empty recipient list permits nothing: list `first_party` at least",
        );
    }
    let (recipient_kinds, recipient_names) =
        compile_recipient_list(rule.effective_recipients(), recipients, &at(path, &[key("recipients")]), problems);

    let with_consent = rule.with_consent.as_ref().map(|extension| {
        let here = at(path, &[key("with_consent")]);
        if is_consent {
            problems.error(here.clone(), "a consent rule lists what consent permits in its own actions and recipients");
        }
        let actions = extension.actions.as_deref().unwrap_or(&[Action::Share]);
        if actions.is_empty() {
            problems.error(at(&here, &[key("actions")]), "an empty action list adds nothing: remove it");
        }
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
    if regions.is_empty() {
        problems.error(at(path, &[key("regions")]), "an empty region list permits nothing");
    }
    let transfer_regions = match &rule.transfer_regions {
        None => TransferRegions::None,
        Some(list) if list.iter().any(|r| r == "*") => TransferRegions::Any,
        Some(list) => {
            let mut parsed = Vec::with_capacity(list.len());
            for (i, code) in list.iter().enumerate() {
                match Region::new(code) {
                    Ok(region) if regions.contains(&region) => problems.error(
                        at(path, &[key("transfer_regions"), PathSegment::Index(i)]),
                        format!("region `{region}` is both a regular and a transfer region"),
                    ),
                    Ok(region) => parsed.push(region),
                    Err(_) => problems.error(
                        at(path, &[key("transfer_regions"), PathSegment::Index(i)]),
                        format!("`{code}` is not a two-letter region code or `*`"),
                    ),
                }
            }
            TransferRegions::Listed(parsed)
        }
    };

    if let Some(Err(message)) = rule.retention.map(super::Retention::check_bounds) {
        problems.error(at(path, &[key("retention")]), message);
    }
    for (field, set) in [
        ("retention_until_anonymized", rule.retention_until_anonymized.is_some()),
        ("separate_consent_lifts_retention", rule.separate_consent_lifts_retention.is_some()),
    ] {
        if set && rule.retention.is_none() {
            problems.error(at(path, &[key(field)]), format!("{field} needs a `retention` to lift"));
        }
    }
    let anonymized_level = match (rule.anonymized_level, is_consent) {
        (None, _) => None,
        (Some(_), false) => {
            problems.error(at(path, &[key("anonymized_level")]), "only consent rules have a level");
            None
        }
        (Some(lower), true) if lower > level => {
            problems.error(
                at(path, &[key("anonymized_level")]),
                format!(
                    "anonymized_level `{lower}` is above the rule's level `{level}`: anonymized data never needs more"
                ),
            );
            None
        }
        (Some(lower), true) => Some(lower),
    };

    let signals = rule.opt_out_signals.as_deref().unwrap_or(&[]);
    let changed_in = rule.changed_in.as_deref().and_then(|text| match PolicyVersion::parse(text) {
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
    });

    Rule {
        basis: rule.basis.first(),
        bases: rule.basis.iter().fold(0, |set, basis| set | basis.bit()),
        level,
        opt_out,
        known_subject: rule.known_subject.unwrap_or(false),
        anonymized_level,
        retention_until_anonymized: rule.retention_until_anonymized.unwrap_or(false),
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

/// A rule that governs no leaf purpose is shadowed: more specific rules take every
/// leaf of its subtrees.
fn shadow_warnings(
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

fn unused_recipient_warnings(document: &PolicyDocument, problems: &mut Problems) {
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
fn apply_allows(document: &PolicyDocument, problems: &mut Problems) {
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
