//! The typed Rust builder: the same document a TOML file holds, filled from code, and
//! compiled by the same validator.

use super::document::{
    MinorsSection, PolicyDocument, PolicyHeader, RecipientDeclaration, RuleDocument, VocabularySection,
};
use super::Policy;
use crate::basis::LegalBasis;
use crate::category::DataCategory;
use crate::error::PolicyError;
use crate::purpose::Purpose;
use crate::request::{RecipientKind, Region};

/// Builds a policy from code. Every setter takes and returns the builder;
/// [`PolicyBuilder::build`] validates exactly as loading a file does.
#[derive(Clone, Debug)]
#[must_use]
pub struct PolicyBuilder {
    document: PolicyDocument,
}

impl PolicyBuilder {
    /// A policy with a name, a version and a home region, and no rules yet (it denies
    /// everything).
    pub fn new(name: impl Into<String>, version: impl Into<String>, home_region: Region) -> PolicyBuilder {
        PolicyBuilder {
            document: PolicyDocument {
                policy: PolicyHeader {
                    name: name.into(),
                    version: version.into(),
                    home_region,
                    storage_regions: None,
                    source: None,
                    separate_consent_for: None,
                },
                minors: None,
                rights: None,
                vocabulary: VocabularySection::default(),
                recipients: Default::default(),
                rules: Vec::new(),
            },
        }
    }

    /// Where data may be stored.
    pub fn storage_regions(mut self, regions: impl IntoIterator<Item = Region>) -> Self {
        self.document.policy.storage_regions = Some(regions.into_iter().collect());
        self
    }

    /// Subjects under `age` need guardian consent.
    pub fn guardian_consent_under(mut self, age: u8) -> Self {
        self.document.minors.get_or_insert_with(MinorsSection::default).guardian_consent_under = Some(age);
        self
    }

    /// Subjects under `age` are not served.
    pub fn not_served_under(mut self, age: u8) -> Self {
        self.document.minors.get_or_insert_with(MinorsSection::default).not_served_under = Some(age);
        self
    }

    /// Declares a purpose under an existing parent.
    pub fn declare_purpose(mut self, purpose: Purpose) -> Self {
        self.document.vocabulary.purposes.push(purpose);
        self
    }

    /// Declares a category under an existing parent, sensitive or not.
    pub fn declare_category(mut self, category: DataCategory, sensitive: bool) -> Self {
        if sensitive {
            self.document.vocabulary.sensitive.push(category.clone());
        }
        self.document.vocabulary.categories.push(category);
        self
    }

    /// Declares a named recipient; `configure` may limit its purposes and categories.
    pub fn recipient(
        mut self,
        name: impl Into<String>,
        kind: RecipientKind,
        configure: impl FnOnce(&mut RecipientDeclaration),
    ) -> Self {
        let mut declaration =
            RecipientDeclaration { kind, purposes: None, categories: None, deidentification: None, description: None };
        configure(&mut declaration);
        self.document.recipients.insert(name.into(), declaration);
        self
    }

    /// Adds a rule; `configure` sets its optional fields (level, actions, recipients…).
    pub fn rule(
        mut self,
        id: impl Into<String>,
        purposes: impl IntoIterator<Item = Purpose>,
        basis: LegalBasis,
        categories: impl IntoIterator<Item = DataCategory>,
        configure: impl FnOnce(&mut RuleDocument),
    ) -> Self {
        let mut rule = RuleDocument::new(id, purposes.into_iter().collect(), basis, categories.into_iter().collect());
        configure(&mut rule);
        self.document.rules.push(rule);
        self
    }

    /// The document built so far.
    pub fn document(&self) -> &PolicyDocument {
        &self.document
    }

    /// Validates and compiles.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] with every problem found, located by field path.
    pub fn build(self) -> Result<Policy, PolicyError> {
        Policy::compile(self.document, "<builder>")
    }
}
