"""Campaign numbers through the controller's dialing policy (README "Dialing limits"), as click-to-dial
numbers go: a contact's E.164 number is dialled the way a person in the campaign's region would dial it
(national format at home, `13800138000`, `01012345678`; the international prefix abroad, `0012125551234`
from China), and that dialled form must pass `dialing.allowed_prefixes` / `denied_prefixes`."""

from __future__ import annotations

import phonenumbers

from controller.acd.dialing import number_refusal
from controller.config import DialingSettings


def dialled_form(e164: str, region: str) -> str:
    """The digits dialled from `region` for an E.164 number (ValueError: not a phone number)."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not an E.164 number: {exc}") from exc
    text = phonenumbers.format_out_of_country_calling_number(parsed, region.upper())
    return "".join(c for c in text if c.isdigit() or c == "+")


def campaign_number_refusal(settings: DialingSettings, e164: str, region: str) -> tuple[str, str | None]:
    """The dialled form of a contact's number and why the policy refuses it (None: it may be dialled)."""
    try:
        dialled = dialled_form(e164, region)
    except ValueError as exc:
        return e164, str(exc)
    return dialled, number_refusal(settings, dialled)
