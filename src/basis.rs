//! Legal bases and consent levels: why processing is lawful, and how strongly a subject
//! agreed.

use serde::{Deserialize, Serialize};

/// Why processing is lawful. A rule names the basis (or the several bases, see
/// [`Bases`]) its purposes are lawful on; `Consent` is one of them, the rest are the
/// seeds' "exceptions to consent".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// The subject (or the guardian) agreed, at the level the policy asks.
    Consent,
    /// Necessary to conclude or perform the agreement the subject asked for.
    Contract,
    /// A duty set by law or regulation.
    LegalObligation,
    /// Directly related to national security or defence.
    NationalSecurity,
    /// Public safety, public health, major public interest.
    PublicInterest,
    /// Criminal investigation, prosecution, trial, judgment enforcement.
    CriminalJustice,
    /// Protecting life or property when consent cannot be had.
    VitalInterest,
    /// Data the subject made public, or lawfully public data.
    PubliclyDisclosed,
    /// Legitimate news reporting.
    NewsReporting,
    /// Necessary for the safe and stable operation of the service.
    ServiceSecurity,
    /// Statistical or academic research whose results are de-identified.
    ResearchDeidentified,
}

impl LegalBasis {
    /// Every basis, in the vocabulary's order.
    pub const ALL: [LegalBasis; 11] = [
        LegalBasis::Consent,
        LegalBasis::Contract,
        LegalBasis::LegalObligation,
        LegalBasis::NationalSecurity,
        LegalBasis::PublicInterest,
        LegalBasis::CriminalJustice,
        LegalBasis::VitalInterest,
        LegalBasis::PubliclyDisclosed,
        LegalBasis::NewsReporting,
        LegalBasis::ServiceSecurity,
        LegalBasis::ResearchDeidentified,
    ];

    /// The vocabulary's name.
    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::NationalSecurity => "national_security",
            LegalBasis::PublicInterest => "public_interest",
            LegalBasis::CriminalJustice => "criminal_justice",
            LegalBasis::VitalInterest => "vital_interest",
            LegalBasis::PubliclyDisclosed => "publicly_disclosed",
            LegalBasis::NewsReporting => "news_reporting",
            LegalBasis::ServiceSecurity => "service_security",
            LegalBasis::ResearchDeidentified => "research_deidentified",
        }
    }

    /// The basis's bit in a set of bases: its position in [`LegalBasis::ALL`].
    pub(crate) fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Whether the law itself imposes the processing (so it survives erasure of a
    /// compliance purpose and reaches subjects a policy otherwise does not serve).
    pub fn is_imposed_by_law(self) -> bool {
        matches!(
            self,
            LegalBasis::LegalObligation
                | LegalBasis::NationalSecurity
                | LegalBasis::PublicInterest
                | LegalBasis::CriminalJustice
                | LegalBasis::VitalInterest
        )
    }
}

impl std::fmt::Display for LegalBasis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The legal bases a rule's purposes are lawful on: one, or several where a privacy
/// policy lists the statutory cases in which it processes without consent ("directly
/// related to national security; ... public safety; ... criminal investigation").
///
/// Written `basis = "contract"` or `basis = ["legal_obligation", "criminal_justice"]`.
/// The first is the one a request is decided on unless it names another of them
/// ([`AccessRequest::basis`](crate::AccessRequest::basis)); the decision names the
/// basis that applied. `consent` is never one of several: a purpose lawful without
/// consent does not need it (what consent adds is `[rule.with_consent]`).
///
/// ```
/// use consent_guard::{Bases, LegalBasis};
///
/// let one = Bases::from(LegalBasis::Contract);
/// assert!(one == LegalBasis::Contract);
/// let many = Bases::new(vec![LegalBasis::LegalObligation, LegalBasis::CriminalJustice]).unwrap();
/// assert_eq!(many.first(), LegalBasis::LegalObligation);
/// assert!(many.contains(LegalBasis::CriminalJustice));
/// assert_eq!(many.to_string(), "legal_obligation or criminal_justice");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bases {
    first: LegalBasis,
    others: Vec<LegalBasis>,
}

impl Bases {
    /// The bases in the order listed; `None` if the list is empty.
    pub fn new(list: Vec<LegalBasis>) -> Option<Bases> {
        let mut list = list.into_iter();
        let first = list.next()?;
        Some(Bases { first, others: list.collect() })
    }

    /// The first basis listed: the one requests are decided on by default.
    pub fn first(&self) -> LegalBasis {
        self.first
    }

    /// Every basis, in the order listed.
    pub fn iter(&self) -> impl Iterator<Item = LegalBasis> + '_ {
        std::iter::once(self.first).chain(self.others.iter().copied())
    }

    /// How many bases are listed.
    #[expect(clippy::len_without_is_empty, reason = "never empty")]
    pub fn len(&self) -> usize {
        1 + self.others.len()
    }

    /// Whether `basis` is one of them.
    pub fn contains(&self, basis: LegalBasis) -> bool {
        self.iter().any(|b| b == basis)
    }

    /// Whether `basis` is the only one.
    pub fn is_only(&self, basis: LegalBasis) -> bool {
        self.first == basis && self.others.is_empty()
    }
}

impl From<LegalBasis> for Bases {
    fn from(basis: LegalBasis) -> Bases {
        Bases { first: basis, others: Vec::new() }
    }
}

/// A set of bases equals a basis when that basis is the only one.
impl PartialEq<LegalBasis> for Bases {
    fn eq(&self, other: &LegalBasis) -> bool {
        self.is_only(*other)
    }
}

impl std::fmt::Display for Bases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, basis) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" or ")?;
            }
            f.write_str(basis.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for Bases {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.others.is_empty() {
            self.first.serialize(serializer)
        } else {
            serializer.collect_seq(self.iter())
        }
    }
}

impl<'de> Deserialize<'de> for Bases {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Bases, D::Error> {
        struct OneOrMany;
        impl<'de> serde::de::Visitor<'de> for OneOrMany {
            type Value = Bases;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a legal basis, or a non-empty list of legal bases")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Bases, E> {
                use serde::de::IntoDeserializer;
                LegalBasis::deserialize(name.into_deserializer()).map(Bases::from)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bases, A::Error> {
                // Bounded by the input: a list longer than the vocabulary repeats one.
                let mut list = Vec::new();
                while let Some(basis) = seq.next_element::<LegalBasis>()? {
                    if list.contains(&basis) {
                        return Err(serde::de::Error::custom(format!("`{basis}` is listed twice")));
                    }
                    list.push(basis);
                }
                Bases::new(list).ok_or_else(|| serde::de::Error::invalid_length(0, &"at least one basis"))
            }
        }
        deserializer.deserialize_any(OneOrMany)
    }
}

/// How strongly a subject agreed, weakest first: the order is meaningful
/// (`Implied < Explicit < Separate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentLevel {
    /// Accepting the policy as a whole, or continuing to use the service.
    Implied,
    /// An affirmative opt-in for this purpose.
    Explicit,
    /// A dedicated consent for this very purpose, recipient or transfer, apart from the
    /// policy.
    Separate,
}

impl ConsentLevel {
    /// The vocabulary's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentLevel::Implied => "implied",
            ConsentLevel::Explicit => "explicit",
            ConsentLevel::Separate => "separate",
        }
    }
}

impl std::fmt::Display for ConsentLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_weakest_first() {
        assert!(ConsentLevel::Implied < ConsentLevel::Explicit);
        assert!(ConsentLevel::Explicit < ConsentLevel::Separate);
    }

    #[test]
    fn names_match_serde() {
        for basis in LegalBasis::ALL {
            let json = format!("\"{}\"", basis.as_str());
            let parsed: LegalBasis = serde_json_free_parse(&json);
            assert_eq!(parsed, basis);
        }
    }

    /// Parses `"name"` through serde's value deserializer, without a JSON crate.
    fn serde_json_free_parse(quoted: &str) -> LegalBasis {
        use serde::de::IntoDeserializer;
        let name = quoted.trim_matches('"').to_owned();
        let de: serde::de::value::StringDeserializer<serde::de::value::Error> = name.into_deserializer();
        LegalBasis::deserialize(de).unwrap()
    }
}
