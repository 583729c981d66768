"""Type stubs for consent_guard (the native module consent_guard._native)."""

import os
from typing import Any, Literal, Mapping, Optional, Sequence, Union, overload

_Json = Union[Mapping[str, Any], str, bytes]
_Path = Union[str, os.PathLike[str]]

__version__: str

class ConsentGuardError(Exception):
    """The base of every consent-guard error."""

class PolicyError(ConsentGuardError):
    """A policy that does not load."""

    diagnostics: list[dict[str, Any]]
    """Every problem: ``file``, ``line``, ``column``, ``message``, ``severity``
    (``error`` or ``warning``), ``warning`` (its stable name) and ``rule``."""

class RequestError(ConsentGuardError):
    """A request that is malformed or names what the policy does not know."""

    field: Optional[str]

class EventError(ConsentGuardError):
    """A consent event that is malformed or refused; nothing was recorded."""

    field: Optional[str]

class StoreError(ConsentGuardError):
    """The consent store or the audit log cannot be used."""

class FilterError(ConsentGuardError):
    """A filter that cannot be compiled or applied, or data the mask cannot read."""

class GoldenError(ConsentGuardError):
    """A golden test file that cannot be read or run."""

class Policy:
    """A privacy policy, compiled once and validated."""

    @staticmethod
    def from_file(path: _Path) -> Policy:
        """Loads a policy from a TOML file. Raises :class:`PolicyError`."""
    @staticmethod
    def from_toml(text: str, file: str = "<string>") -> Policy:
        """Loads a policy from TOML text; ``file`` names it in diagnostics."""
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @overload
    def explain(self, format: Literal["json"] = "json") -> str: ...
    @overload
    def explain(self, format: Literal["dict"]) -> dict[str, Any]: ...

class Decision:
    """The guard's answer to one request. ``repr`` never shows the subject."""

    @property
    def allowed(self) -> bool: ...
    @property
    def code(self) -> str:
        """The stable reason code (``consent_given``, ``consent_missing``, ...)."""
    @property
    def clause(self) -> Optional[str]:
        """The id of the rule that decided."""
    @property
    def policy_version(self) -> str: ...
    @property
    def basis(self) -> Optional[str]: ...
    def explain(self) -> str:
        """Why, in a sentence."""
    def to_dict(self) -> dict[str, Any]:
        """The decision as the command line and the HTTP service print it."""
    def __bool__(self) -> bool: ...

class Guard:
    """The guard every access to personal data passes through.

    ``store``: a path to the embedded consent store (created if missing); in memory
    without it. ``audit``: a directory for the durable audit log (each check's record
    is on disk before its answer returns). ``now``: a fixed clock (RFC 3339).
    """

    def __init__(
        self,
        policy: Policy,
        store: Optional[_Path] = None,
        audit: Optional[_Path] = None,
        now: Optional[str] = None,
    ) -> None: ...
    @property
    def policy(self) -> Policy: ...
    def record(self, event: _Json) -> None:
        """Records one consent event. Raises :class:`EventError`."""
    def check(self, request: _Json) -> Decision:
        """Decides one access request. Raises :class:`RequestError`."""
    def prepare(self, template: _Json) -> PreparedCheck:
        """Prepares one kind of access (a request without its ``subject``, and without
        ``at``: a prepared check decides at the guard's clock) for checking many
        subjects. Raises :class:`RequestError` as :meth:`check` does."""
    @overload
    def check_many(
        self, template: _Json, subjects: Sequence[str], codes: Literal[False] = False
    ) -> list[bool]: ...
    @overload
    def check_many(self, template: _Json, subjects: Sequence[str], codes: Literal[True]) -> list[str]: ...
    def history(self, subject: str) -> dict[str, Any]:
        """The consent events recorded about ``subject``."""
    def filter(
        self,
        template: _Json,
        subject_column: str,
        collected_at: Optional[str] = None,
        collected_session: Optional[str] = None,
        max_staleness_seconds: float = 1.0,
    ) -> Filter:
        """Compiles an access without its subject into a consent filter over rows whose
        subject is in ``subject_column`` (and collection time, session, in the others)."""

class PreparedCheck:
    """One kind of access prepared by :meth:`Guard.prepare`: each check reads only the
    subject's consent, and answers and audits what :meth:`Guard.check` does for the
    template with that subject. Consent recorded after it was prepared is seen."""

    @property
    def purpose(self) -> str: ...
    def check(self, subject: str) -> Decision:
        """Decides the access for ``subject`` now, and audits it. An empty subject
        raises :class:`RequestError`."""
    def allows(self, subject: str) -> bool:
        """``check(subject).allowed``, decided and audited the same way, without
        building a :class:`Decision`."""
    @overload
    def check_many(self, subjects: Sequence[str], codes: Literal[False] = False) -> list[bool]: ...
    @overload
    def check_many(self, subjects: Sequence[str], codes: Literal[True]) -> list[str]:
        """Decides the access for every subject (a list or tuple of str) at one reading
        of the clock with the GIL released; every audit record is kept (one commit)
        before the answers return, and a failed commit turns every allow into
        ``audit_unavailable``. ``allowed`` per subject, or reason codes with
        ``codes=True``."""

class Filter:
    """A compiled consent filter and its consent snapshot, decided by the guard."""

    def mask(self, data: Any) -> tuple[Any, dict[str, int]]:
        """The rows of ``data`` (any object with ``__arrow_c_stream__`` or
        ``__arrow_c_array__``: a PyArrow Table, RecordBatch or reader, a Polars
        DataFrame, a DuckDB relation) the guard allows now, as a ``pyarrow.BooleanArray``,
        and the rows by reason code. Writes one audit record per call."""
    def where_sql(
        self,
        rows: str,
        snapshot_table: str,
        subject_type: Literal["text", "bigint"] = "text",
        first_parameter: int = 1,
    ) -> tuple[str, list[Union[int, str]]]:
        """A PostgreSQL ``WHERE`` fragment and its parameters."""
    def snapshot(self) -> Any:
        """The consent snapshot as a ``pyarrow.RecordBatch``, watermark in its metadata."""
    def join_spec(self) -> dict[str, Any]:
        """The same decision as the terms of a join, from one refresh at time T:
        ``snapshot`` (as :meth:`snapshot`, with each subject's ``ended_through_ms``
        cutoff), ``at_ms``, ``subject_column``, ``collected_column`` (or ``None``),
        ``unknown_fresh_allowed``, ``unknown_stale_allowed``, and ``row_test``
        (``none``; ``fixed`` with ``passes``; ``collected_within`` with ``column``,
        ``limit_ms``, ``low_ms``, ``high_ms``; ``same_session`` with ``column``,
        ``session``). Writes no audit record."""

class GoldenReport:
    """The outcome of a golden test file."""

    @property
    def passed(self) -> int: ...
    @property
    def failed(self) -> int: ...
    def is_success(self) -> bool: ...
    def failures(self) -> str: ...
    def __bool__(self) -> bool: ...

def run_golden(path: _Path) -> GoldenReport:
    """Runs a golden test file (docs/interchange.md, "Golden test files")."""
