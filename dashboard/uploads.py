"""The dashboard's one write: an uploaded package queued in ``MSMV_HOME/inbox/`` for the engine to claim.

The dashboard never writes the store; like ``msmv submit`` it drops the package into the inbox by
atomic rename (:func:`engine.service.inbox.submit_upload`) and the engine service picks it up.
"""

from __future__ import annotations

from engine.service.inbox import Submission, submit_upload
from store.home import home


def queue_upload(name: str, payload: bytes, *, max_bytes: int, root: str | None = None) -> Submission:
    """Queue ``payload`` (an uploaded file called ``name``) unless it is over ``max_bytes`` or not a package."""
    return submit_upload(home(root), name, payload, max_bytes=max_bytes)
