//! Opening the consent store a command names: a redb file, or a `postgres://` URL;
//! where its master key comes from; and `store migrate`.
//!
//! The reading commands (`check --store`, `history`, `quarantine`) open a redb file
//! read-only: it works while a service has the file open, and a mistyped path is an
//! error rather than a new, empty store. `serve` opens it for writing (created if
//! absent).
//!
//! A redb store's master key (see `docs/erasure.md`) is, in this order: the file
//! `--master-key-file F` names (64 hex digits; made when absent for `serve` and
//! `store migrate`, never for a reading command), the environment variable
//! `CONSENT_GUARD_MASTER_KEY` (64 hex digits), or the store's own `<store>.key` beside
//! it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use consent_guard::error::StoreError;
use consent_guard::keys::MasterKey;
use consent_guard::store::ConsentStore;

use crate::CliError;

/// The environment variable that holds a master key as 64 hex digits.
pub(crate) const MASTER_KEY_ENV: &str = "CONSENT_GUARD_MASTER_KEY";

/// `--master-key-file`, set once by `main` for every command.
static MASTER_KEY_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Remembers `--master-key-file` for the commands that open a store.
pub(crate) fn set_master_key_file(path: Option<PathBuf>) {
    let _ = MASTER_KEY_FILE.set(path);
}

/// How a command uses the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Only read; a redb file must exist.
    ReadOnly,
    /// Read and append; a redb file is created if absent.
    Writable,
}

/// The master key the command line names, if it names one: `--master-key-file`, then
/// `CONSENT_GUARD_MASTER_KEY`.
fn configured_master_key(mode: Mode) -> Result<Option<MasterKey>, CliError> {
    if let Some(path) = MASTER_KEY_FILE.get().and_then(Option::as_ref) {
        let key = match mode {
            Mode::Writable => MasterKey::load_or_create(path),
            Mode::ReadOnly => MasterKey::load(path),
        };
        return key.map(Some).map_err(|e| CliError::Usage(format!("--master-key-file: {e}")));
    }
    match std::env::var(MASTER_KEY_ENV) {
        Ok(text) => MasterKey::from_hex(&text)
            .map(Some)
            .map_err(|_| CliError::Usage(format!("{MASTER_KEY_ENV}: a master key is 64 hex digits (32 bytes)"))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(CliError::Usage(format!("{MASTER_KEY_ENV}: a master key is 64 hex digits (32 bytes)")))
        }
    }
}

/// Opens the store `spec` names.
pub(crate) fn open_store(spec: &str, mode: Mode) -> Result<Box<dyn ConsentStore>, CliError> {
    let failed = |e: StoreError| CliError::Store { store: spec.to_owned(), message: e.to_string() };
    let master = configured_master_key(mode)?;
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        // Without a configured key the database keeps one (see docs/stores.md).
        let builder = consent_guard_postgres::PostgresConsentStore::builder(spec);
        let builder = match master {
            Some(master) => builder.master_key(master),
            None => builder,
        };
        return builder.connect().map(|store| Box::new(store) as Box<dyn ConsentStore>).map_err(failed);
    }
    match (mode, master) {
        (Mode::ReadOnly, None) => consent_guard::store::ReadOnlyRedbStore::open(spec)
            .map(|store| Box::new(store) as Box<dyn ConsentStore>)
            .map_err(failed),
        (Mode::ReadOnly, Some(master)) => consent_guard::store::ReadOnlyRedbStore::open_with_master_key(spec, master)
            .map(|store| Box::new(store) as Box<dyn ConsentStore>)
            .map_err(failed),
        (Mode::Writable, None) => consent_guard::store::RedbConsentStore::open(spec)
            .map(|store| Box::new(store) as Box<dyn ConsentStore>)
            .map_err(failed),
        (Mode::Writable, Some(master)) => consent_guard::store::RedbConsentStore::open_with_master_key(spec, master)
            .map(|store| Box::new(store) as Box<dyn ConsentStore>)
            .map_err(failed),
    }
}

/// `store migrate --from OLD --to NEW`: copies a store of format version 1 into a new
/// one of version 2 (see [`consent_guard::store::RedbConsentStore::migrate`]), under
/// the master key configured, or a new one kept in `<NEW>.key`.
pub(crate) fn migrate(from: &Path, to: &Path) -> Result<ExitCode, CliError> {
    let master = match configured_master_key(Mode::Writable)? {
        Some(master) => master,
        None => {
            let mut name = to.as_os_str().to_owned();
            name.push(".key");
            MasterKey::load_or_create(Path::new(&name))
                .map_err(|e| CliError::Usage(format!("cannot make the master key of {}: {e}", to.display())))?
        }
    };
    let migration = consent_guard::store::RedbConsentStore::migrate(from, to, master)
        .map_err(|e| CliError::Store { store: from.display().to_string(), message: crate::with_sources(&e) })?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "migrated {} to {} (format version 2): {} events read, {} records written, {} erasures kept as tombstones \
         for {} subjects, {} events of erased subjects not copied",
        from.display(),
        to.display(),
        migration.read,
        migration.written,
        migration.erasures,
        migration.subjects_erased,
        migration.forgotten
    )
    .map_err(CliError::Output)?;
    writeln!(
        out,
        "the old file {} still holds every subject id in plain text, erased ones included: delete it (and its \
         backups) once the new store serves",
        from.display()
    )
    .map_err(CliError::Output)?;
    Ok(ExitCode::SUCCESS)
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
