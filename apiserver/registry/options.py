"""Options of one request as the registry sees them, parsed from query parameters and bodies by
the HTTP layer (:mod:`apiserver.server.params`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from apiserver.storage.store import Preconditions
from machinery.fields import FieldSelector
from machinery.labels import Selector


@dataclass
class WriteOptions:
    """Per-request write options; ``warnings`` collects what the response's Warning headers say."""

    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    field_manager: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class ListOptions:
    label_selector: Selector | None = None
    field_selector: FieldSelector | None = None
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    preconditions: Preconditions | None = None
    dry_run: bool = False
    orphan_dependents: bool | None = None  # the deprecated field, kept for the response code
