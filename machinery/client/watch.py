"""List-then-watch that never loses an event: the reflector loop under every informer.

:func:`list_and_watch` lists a collection (paged, one snapshot), yields it as a :class:`Relisted`, then
watches from the list's resourceVersion with bookmarks and yields each event. It keeps the last
resourceVersion it has seen (events and bookmarks), so when the connection drops or the server ends
the watch it resumes exactly there; when the server answers 410 (that revision is compacted, or
this server's cache no longer has it) it lists again and yields a fresh :class:`Relisted`.
Transient failures (any error, not only API errors) back off exponentially (0.8 s doubling to 30 s,
with jitter), like client-go's reflector. The iterator ends only when the consumer stops iterating (or
the task is cancelled).
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from machinery.client.resources import Resource
from machinery.client.rest import ApiClient
from machinery.errors import StatusError, is_gone

log = logging.getLogger(__name__)

INITIAL_BACKOFF = 0.8
MAX_BACKOFF = 30.0
MIN_WATCH_TIMEOUT = 300  # seconds; each watch asks for a random timeout in [5, 10) minutes like client-go


@dataclass(frozen=True)
class Relisted:
    """The complete current state: replace whatever you knew with ``items``."""

    items: list[dict[str, Any]]
    resource_version: str


async def list_and_watch(client: ApiClient, resource: Resource, namespace: str | None = None, *,
                         label_selector: str | None = None, field_selector: str | None = None,
                         page_size: int = 500) -> AsyncIterator[Relisted | dict[str, Any]]:
    """Yield a :class:`Relisted` snapshot, then watch events (``BOOKMARK`` included); relist on 410."""
    selectors = {"label_selector": label_selector, "field_selector": field_selector}
    backoff = INITIAL_BACKOFF
    resource_version = ""
    while True:
        try:
            if not resource_version:
                listed = await client.list_all(resource, namespace, page_size=page_size, **selectors)
                resource_version = (listed.get("metadata") or {}).get("resourceVersion") or ""
                yield Relisted(listed.get("items") or [], resource_version)
                backoff = INITIAL_BACKOFF
            timeout = random.randint(MIN_WATCH_TIMEOUT, 2 * MIN_WATCH_TIMEOUT - 1)
            async for event in client.watch(resource, namespace, resource_version=resource_version,
                                            timeout_seconds=timeout, **selectors):
                rv = ((event.get("object") or {}).get("metadata") or {}).get("resourceVersion")
                if rv:
                    resource_version = rv
                backoff = INITIAL_BACKOFF
                yield event
            continue  # the server ended the watch (its timeout): resume at once
        except StatusError as err:
            if is_gone(err):
                log.info("watch of %s expired at %s (%s); relisting", resource, resource_version, err.message)
                resource_version = ""
                continue
            log.warning("watch of %s failed: %s; retrying in %.1fs", resource, err, backoff)
        except Exception as err:  # an informer must outlive any one failure, as client-go's reflector does:
            # e.g. a token file unreadable for a moment (ConfigError from the auth flow) or a body that is not
            # JSON: ending the iterator would leave the informer's cache silently stale for the process's life.
            log.warning("watch of %s failed unexpectedly: %s: %s; retrying in %.1fs", resource,
                        type(err).__name__, err, backoff, exc_info=True)
        await client.clock.sleep(backoff * random.uniform(1.0, 1.2))
        backoff = min(MAX_BACKOFF, backoff * 2)
