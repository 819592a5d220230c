"""`palimpsest rebuild`: drop every read model and replay the log into fresh ones.

Invariant 5 says this gives tables equal to the ones kept live; tests/read prove it. Run it
with the projectors stopped: a live projector would only share the work (leases keep it
correct), but the progress bar would then stop short.
"""

from __future__ import annotations

from collections.abc import Callable

from server.read.projector import Projector
from storage.read_model import ReadModel


async def rebuild(
    read_model: ReadModel,
    projector: Projector,
    *,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Reset the read side and project every document's log; returns events projected."""
    await read_model.reset()
    behind = await read_model.documents_behind()
    total = sum(head for _, head, _ in behind)
    if on_total is not None:
        on_total(total)
    try:
        await projector.catch_up(on_progress)
    finally:
        await projector.stop()
    return total
