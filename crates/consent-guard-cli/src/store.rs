//! Opening the consent store a command names: a redb file, or a `postgres://` URL.
//!
//! The reading commands (`check --store`, `history`, `quarantine`) open a redb file
//! read-only: it works while a service has the file open, and a mistyped path is an
//! error rather than a new, empty store. `serve` opens it for writing (created if
//! absent).

use consent_guard::error::StoreError;
use consent_guard::store::ConsentStore;

use crate::CliError;

/// How a command uses the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Only read; a redb file must exist.
    ReadOnly,
    /// Read and append; a redb file is created if absent.
    Writable,
}

/// Opens the store `spec` names.
pub(crate) fn open_store(spec: &str, mode: Mode) -> Result<Box<dyn ConsentStore>, CliError> {
    let failed = |e: StoreError| CliError::Store { store: spec.to_owned(), message: e.to_string() };
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return consent_guard_postgres::PostgresConsentStore::connect(spec)
            .map(|store| Box::new(store) as Box<dyn ConsentStore>)
            .map_err(failed);
    }
    match mode {
        Mode::ReadOnly => consent_guard::store::ReadOnlyRedbStore::open(spec)
            .map(|store| Box::new(store) as Box<dyn ConsentStore>)
            .map_err(failed),
        Mode::Writable => consent_guard::store::RedbConsentStore::open(spec)
            .map(|store| Box::new(store) as Box<dyn ConsentStore>)
            .map_err(failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_store_is_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let spec = path.to_str().unwrap();
        let error = open_store(spec, Mode::ReadOnly).err().unwrap();
        assert!(error.to_string().starts_with(spec), "{error}");
        assert!(!path.exists(), "a mistyped path must not become an empty store");
        assert!(open_store(spec, Mode::Writable).is_ok());
        assert!(path.exists());
    }
}
