//! Legal bases and consent levels: why processing is lawful, and how strongly a subject
//! agreed.

use serde::{Deserialize, Serialize};

/// Why processing is lawful. A purpose is lawful on exactly one basis named in the
/// policy; `Consent` is one of them, the rest are the seeds' "exceptions to consent".
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
