//! Policy versions, below both the policy and the consent state: a consent event names
//! the version it was given under, and the policy compares versions to know which
//! consent a material change invalidates.

/// A policy version: dotted numbers compared numerically (`1.10 > 1.9`). A leading `v`
/// is allowed, and `-` separates like `.`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyVersion([u32; 4]);

impl PolicyVersion {
    /// Parses a version.
    ///
    /// # Errors
    ///
    /// When it is not one to four dotted non-negative numbers.
    pub fn parse(text: &str) -> Result<PolicyVersion, String> {
        let body = text.strip_prefix('v').unwrap_or(text);
        let mut parts = [0u32; 4];
        for (index, segment) in body.split(['.', '-']).enumerate() {
            let slot = parts.get_mut(index).ok_or_else(|| format!("version `{text}` has more than four parts"))?;
            *slot = segment.parse().map_err(|_| format!("version `{text}` is not dotted numbers like `1.0`"))?;
        }
        Ok(PolicyVersion(parts))
    }
}
