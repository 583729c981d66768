//! The policy: what may be done with personal data, purpose by purpose.
//!
//! A policy is written as a [`PolicyDocument`] (a TOML file a privacy reviewer reads,
//! or the typed [`PolicyBuilder`]) and compiled once into a [`Policy`]: names become
//! bit positions, every rule is validated, and each purpose knows the rule that
//! governs it. Checks never re-validate.
//!
//! ```
//! use consent_guard::{ConsentLevel, DataCategory, LegalBasis, Policy, PolicyBuilder, Purpose, Region};
//!
//! let policy = PolicyBuilder::new("shop", "1.0", Region::new("CN")?)
//!     .rule("shop.training", [Purpose::AI_TRAINING], LegalBasis::Consent, [DataCategory::BEHAVIOR], |rule| {
//!         rule.level = Some(ConsentLevel::Explicit);
//!     })
//!     .build()?;
//! assert_eq!(policy.rules().len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
mod compile;
pub mod diff;
pub(crate) mod document;
pub mod explain;
#[cfg(feature = "toml")]
mod load;
mod validate;

use crate::basis::{ConsentLevel, LegalBasis};
use crate::category::{DataCategory, CATEGORY_NAMES};
use crate::error::{Diagnostic, PolicyError, RequestError, Severity};
use crate::name::Tree;
use crate::purpose::{Purpose, PURPOSE_NAMES};
use crate::request::{AccessRequest, Actions, Deidentification, RecipientKind, RecipientKinds, Region};

pub use crate::version::PolicyVersion;
pub use builder::PolicyBuilder;
pub use document::{
    ConsentDefault, MinorsSection, PolicyDocument, PolicyHeader, RecipientDeclaration, Retention, RightsSection,
    RuleDocument, SeparateTrigger, Signal, UnknownAge, VocabularySection, WithConsent,
};

/// A validated, compiled policy. Build one with [`Policy::compile`],
/// [`Policy::from_toml_file`] or [`PolicyBuilder`].
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) document: PolicyDocument,
    pub(crate) version: PolicyVersion,
    pub(crate) storage_regions: Vec<Region>,
    pub(crate) purposes: Tree,
    pub(crate) categories: Tree,
    /// Categories that are sensitive or may contain sensitive children (up-closed).
    pub(crate) may_be_sensitive: u128,
    /// Purposes without children.
    pub(crate) leaf_purposes: u128,
    /// Purposes with a child governed by another rule (or none): a request for one is
    /// `purpose_too_broad`.
    pub(crate) too_broad: u128,
    /// The `compliance` subtree of purposes: it survives erasure on a non-consent basis.
    pub(crate) compliance: u128,
    pub(crate) minors: Minors,
    pub(crate) separate: Triggers,
    pub(crate) recipients: Vec<CompiledRecipient>,
    pub(crate) rules: Vec<Rule>,
    /// For each purpose node, the rule naming its most specific ancestor-or-self.
    pub(crate) rule_for: Vec<Option<u16>>,
    pub(crate) warnings: Vec<Diagnostic>,
    /// Where the policy came from, for findings made after it was compiled.
    pub(crate) origin: Origin,
}

/// The file a policy was loaded from, and where each of its rules starts in it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Origin {
    pub(crate) file: String,
    /// 1-based line and column of each rule's `id` (0, 0 when unknown).
    pub(crate) rules: Vec<(usize, usize)>,
}

/// The id of each rule of a document, in order.
pub(crate) fn rule_ids(document: &PolicyDocument) -> Vec<String> {
    document.rules.iter().map(|rule| rule.id.clone()).collect()
}

/// How the policy treats minors, compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Minors {
    /// The age under which a subject is a minor for this policy, if any.
    pub(crate) under: Option<u8>,
    /// Whether minors are not served at all (else they need guardian consent).
    pub(crate) not_served: bool,
    /// The age under which a minor's data is sensitive as a whole (at most `under`).
    pub(crate) sensitive_under: Option<u8>,
    pub(crate) unknown_is_minor: bool,
    /// The least level of a guardian's grant (`implied`: the rule's own level).
    pub(crate) guardian_level: ConsentLevel,
}

/// Which separate-consent triggers apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Triggers {
    pub(crate) sensitive: bool,
    pub(crate) minor: bool,
    pub(crate) third_party: bool,
    pub(crate) public: bool,
    pub(crate) cross_border: bool,
}

/// A declared recipient, compiled.
#[derive(Clone, Debug)]
pub(crate) struct CompiledRecipient {
    pub(crate) name: String,
    pub(crate) kind: RecipientKind,
    /// Purposes it may receive data for (down-closed); all ones when unlimited.
    pub(crate) purposes: u128,
    /// Categories it may receive (down-closed); all ones when unlimited.
    pub(crate) categories: u128,
    pub(crate) deidentification: Deidentification,
}

/// Regions reachable only with separate consent naming them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TransferRegions {
    None,
    Any,
    Listed(Vec<Region>),
}

impl TransferRegions {
    pub(crate) fn contains(&self, region: Region) -> bool {
        match self {
            TransferRegions::None => false,
            TransferRegions::Any => true,
            TransferRegions::Listed(list) => list.contains(&region),
        }
    }
}

/// `[rule.with_consent]`, compiled.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConsentExtension {
    pub(crate) level: ConsentLevel,
    pub(crate) actions: Actions,
    pub(crate) recipient_kinds: RecipientKinds,
    pub(crate) recipient_names: u64,
}

/// One compiled rule: a clause of the privacy policy.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    /// The basis a request is decided on unless it names another of `bases`.
    pub(crate) basis: LegalBasis,
    /// Every basis the rule lists, as [`LegalBasis::bit`]s.
    pub(crate) bases: u16,
    pub(crate) level: ConsentLevel,
    pub(crate) opt_out: bool,
    /// Opt-out consent is deemed only for subjects the guard knows.
    pub(crate) known_subject: bool,
    /// The consent level for anonymized requests, when lower than `level`.
    pub(crate) anonymized_level: Option<ConsentLevel>,
    /// Retention does not limit anonymized data.
    pub(crate) retention_until_anonymized: bool,
    /// A separate consent lifts the retention limit.
    pub(crate) separate_consent_lifts_retention: bool,
    /// What the subject's consent adds to a rule on another basis.
    pub(crate) with_consent: Option<ConsentExtension>,
    /// Down-closed mask of permitted categories.
    pub(crate) categories: u128,
    pub(crate) actions: Actions,
    pub(crate) recipient_kinds: RecipientKinds,
    /// Bits of permitted declared recipients.
    pub(crate) recipient_names: u64,
    pub(crate) deidentification: Deidentification,
    pub(crate) anonymized_exempt: bool,
    pub(crate) retention: Option<Retention>,
    /// How long, in milliseconds, data collected before an `end` of the purpose may
    /// be kept after it.
    pub(crate) retention_after_end: i64,
    pub(crate) regions: Vec<Region>,
    pub(crate) transfer_regions: TransferRegions,
    pub(crate) dnt: bool,
    pub(crate) gpc: bool,
    pub(crate) changed_in: Option<PolicyVersion>,
}

impl Policy {
    /// Validates and compiles a policy document. `file` names where it came from, for
    /// diagnostics (locations are unknown, so lines and columns are 0; loading from
    /// TOML gives them).
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] with every problem found.
    pub fn compile(document: PolicyDocument, file: &str) -> Result<Policy, PolicyError> {
        let ids = rule_ids(&document);
        let unlocated = |p: &Problem| Diagnostic {
            severity: p.severity,
            file: file.to_owned(),
            line: 0,
            column: 0,
            message: format!("{}: {}", p.path_text(), p.message),
            warning: p.warning,
            allowed: p.allowed.clone(),
            rule: p.rule(&ids),
        };
        let origin = Origin { file: file.to_owned(), rules: vec![(0, 0); ids.len()] };
        match compile::compile(document) {
            Ok((mut policy, warnings)) => {
                policy.warnings = warnings.iter().map(unlocated).collect();
                policy.origin = origin;
                Ok(policy)
            }
            Err(problems) => Err(PolicyError::Invalid(problems.iter().map(unlocated).collect())),
        }
    }

    /// The policy's name, as in decisions.
    pub fn name(&self) -> &str {
        &self.document.policy.name
    }

    /// The policy's version, as written.
    pub fn version(&self) -> &str {
        &self.document.policy.version
    }

    /// The region data is in by default.
    pub fn home_region(&self) -> Region {
        self.document.policy.home_region
    }

    /// Where data may be stored.
    pub fn storage_regions(&self) -> &[Region] {
        &self.storage_regions
    }

    /// The document the policy was compiled from.
    pub fn document(&self) -> &PolicyDocument {
        &self.document
    }

    /// The rules, in the order written.
    pub fn rules(&self) -> &[RuleDocument] {
        &self.document.rules
    }

    /// Warnings worth a reviewer's eye, found while compiling.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The rule that governs a purpose (the one naming its most specific
    /// ancestor-or-self), or `None`: such a purpose is denied with `no_rule`.
    pub fn rule_for(&self, purpose: &Purpose) -> Option<&RuleDocument> {
        self.rule_index(purpose).and_then(|i| self.document.rules.get(i))
    }

    /// The id of the rule at `index` (of `rule_for`).
    #[inline]
    pub(crate) fn clause(&self, index: u16) -> Option<&str> {
        self.document.rules.get(usize::from(index)).map(|rule| rule.id.as_str())
    }

    pub(crate) fn rule_index(&self, purpose: &Purpose) -> Option<usize> {
        let node = self.purposes.index(&purpose.0)?;
        self.rule_for.get(node).copied().flatten().map(usize::from)
    }

    /// Whether the policy knows a purpose (built in, or declared by it).
    pub fn knows_purpose(&self, purpose: &Purpose) -> bool {
        self.purposes.index(&purpose.0).is_some()
    }

    /// Whether the policy knows a category (built in, or declared by it).
    pub fn knows_category(&self, category: &DataCategory) -> bool {
        self.categories.index(&category.0).is_some()
    }

    /// Whether a category is sensitive under this policy, or may contain sensitive data:
    /// a category stands for its subtree, so `location` is sensitive because
    /// `location.precise` is.
    pub fn is_sensitive(&self, category: &DataCategory) -> bool {
        self.categories
            .index(&category.0)
            .is_some_and(|i| self.may_be_sensitive & (1u128 << (i % crate::name::MAX_NODES)) != 0)
    }

    /// The purposes and categories the policy declares beyond the built-in ones.
    pub fn extensions(&self) -> (Vec<&str>, Vec<&str>) {
        (
            self.purposes.extension_names(PURPOSE_NAMES.len()).collect(),
            self.categories.extension_names(CATEGORY_NAMES.len()).collect(),
        )
    }

    /// Checks that a request names only what the policy knows. The guard denies
    /// requests that do not; services that take requests from outside (the CLI) use
    /// this to report them as bad input instead.
    ///
    /// # Errors
    ///
    /// The first unknown name.
    pub fn validate_request(&self, request: &AccessRequest<'_>) -> Result<(), RequestError> {
        if !self.knows_purpose(&request.purpose) {
            return Err(RequestError::UnknownPurpose(request.purpose.to_string()));
        }
        if request.categories.is_empty() {
            return Err(RequestError::NoCategory);
        }
        if let Some(unknown) = request.categories.iter().find(|c| !self.knows_category(c)) {
            return Err(RequestError::UnknownCategory(unknown.to_string()));
        }
        if let Some(name) = &request.recipient.name {
            match self.recipients.iter().find(|r| r.name == name.as_ref()) {
                None => return Err(RequestError::Recipient(format!("unknown recipient `{name}`"))),
                Some(declared) if declared.kind != request.recipient.kind => {
                    return Err(RequestError::Recipient(format!(
                        "`{name}` is declared as {}, not {}",
                        declared.kind, request.recipient.kind
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The bits of the named purposes (not down-closed), or the first unknown purpose.
    pub(crate) fn purpose_mask_of<'p>(&self, purposes: &'p [Purpose]) -> Result<u128, &'p Purpose> {
        purposes.iter().try_fold(0u128, |mask, p| {
            self.purposes.index(&p.0).map(|i| mask | (1u128 << (i % crate::name::MAX_NODES))).ok_or(p)
        })
    }

    pub(crate) fn category_mask_of(&self, categories: &[DataCategory]) -> Option<u128> {
        categories.iter().try_fold(0u128, |mask, c| self.categories.index(&c.0).map(|i| mask | self.categories.down(i)))
    }

    pub(crate) fn recipient_index(&self, name: &str) -> Option<usize> {
        self.recipients.iter().position(|r| r.name == name)
    }
}

/// Problems found while compiling, located by their path in the document.
#[derive(Clone, Debug)]
pub(crate) struct Problem {
    pub(crate) severity: Severity,
    pub(crate) path: Vec<PathSegment>,
    pub(crate) message: String,
    /// A warning's stable name.
    pub(crate) warning: Option<&'static str>,
    /// The reason of the rule's `allow` that accepts this warning.
    pub(crate) allowed: Option<String>,
}

/// One step of a path into a policy document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathSegment {
    Key(String),
    Index(usize),
}

impl Problem {
    /// The id of the rule the problem is in: every check of a rule reports under the
    /// path `rule[i]`, so the rule is known where its diagnostics are made.
    pub(crate) fn rule(&self, ids: &[String]) -> Option<String> {
        match self.path.as_slice() {
            [PathSegment::Key(key), PathSegment::Index(index), ..] if key == "rule" => ids.get(*index).cloned(),
            _ => None,
        }
    }

    pub(crate) fn path_text(&self) -> String {
        let mut text = String::new();
        for segment in &self.path {
            match segment {
                PathSegment::Key(key) if text.is_empty() => text.push_str(key),
                PathSegment::Key(key) => {
                    text.push('.');
                    text.push_str(key);
                }
                PathSegment::Index(i) => text.push_str(&format!("[{i}]")),
            }
        }
        text
    }
}
