"""A campaign carried on after a restart (SIGTERM or a crash while calls were in flight).

The store says which attempts were in flight: their `campaign_attempts` row has no end. The runner
flushes an attempt's row before it dials (`CampaignService._originate`), so every call placed has
its row. At start each open attempt is closed once, as `interrupted`:

- the customer had answered (`answered_at`: put through to an agent): the contact is `done` (the
  agent may give a `callback` disposition); the new process does not take the call over (it is hung up
  by the calls plugin's resume, and the agent gets their wrap-up from the ACD's restore);
- not answered yet: its dial may still ring (Asterisk ends it at the campaign's ring limit; answered
  meanwhile, it enters no campaign and is hung up as a stray channel), so the contact is due again no
  earlier than the attempt's start plus the ring limit plus RING_END_MARGIN: never dialled twice at once.
  The attempt counts toward `max_attempts`; with none left the contact is `failed` (`interrupted`).

A contact's attempt count is its number of attempt rows (none lost, none counted twice).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from controller.outbound.campaign import CampaignSettings

if TYPE_CHECKING:
    from controller.plugins.campaigns.services import ContactState

#: What an attempt in flight at a restart ends as.
INTERRUPTED = "interrupted"
#: Seconds after the ring limit by which Asterisk has surely ended a dial of the previous process.
RING_END_MARGIN = 5.0


def close_in_flight(settings: CampaignSettings, contacts: Mapping[int, ContactState],
                    attempts: Sequence[Mapping[str, Any]], now: float) -> tuple[list[str], set[int]]:
    """Close the attempts that were in flight; returns their call ids, and the contacts changed."""
    rows_per_contact = Counter(a["contact_no"] for a in attempts)
    open_attempts = {a["contact_no"]: a for a in attempts if a["ended_at"] is None and a["contact_no"] in contacts}
    changed = set()
    for contact in contacts.values():
        if contact.attempts != rows_per_contact.get(contact.no, 0):
            contact.attempts = rows_per_contact.get(contact.no, 0)
            changed.add(contact.no)
        # An agent's preview (no call), or a dial never placed: due now.
        if contact.status in ("dialing", "previewing") and contact.no not in open_attempts:
            contact.status, contact.next_at = "retry", now
            changed.add(contact.no)
    for contact_no, attempt in open_attempts.items():
        contact = contacts[contact_no]
        if contact.status != "dialing":
            continue  # the contact's own record is newer: only the attempt's end was not written
        changed.add(contact_no)
        contact.last_outcome = INTERRUPTED
        if attempt["answered_at"] is not None:
            contact.status, contact.next_at = "done", None
        elif contact.attempts >= settings.max_attempts:
            contact.status, contact.next_at = "failed", None
        else:
            contact.status = "retry"
            contact.next_at = max(now, attempt["started_at"] + settings.ring_seconds + RING_END_MARGIN)
    return [a["call_id"] for a in attempts if a["ended_at"] is None], changed
