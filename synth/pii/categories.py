"""What a direct identifier can be, what can be done with it, and what is done by default.

Defaults (each can be set per column in the config, ``columns.<name>.pii``):

==============  ================  ==========================================  ==========
category        default handling  other handlings                              levels
==============  ================  ==========================================  ==========
name            fake              drop
nhs_number      fake              drop
id              fake              drop
phone           fake              drop
email           fake              drop
postcode        generalise        fake, drop                                   outward (default), area
date_of_birth   generalise        drop                                         month (default), year
free_text       drop              fake
==============  ================  ==========================================  ==========

A date of birth is kept to its month by default, as NHS England's Hospital Episode
Statistics do (``MYDOB``), so ages stay right to within a month; ``year`` is HIPAA Safe
Harbor's rule. A postcode is kept to its outward code (``SW1A`` of ``SW1A 1AA``, about
3,000 districts) by default; ``area`` keeps the letters (``SW``, about 120 areas). Free
text is dropped by default: fake sentences carry nothing of it.
"""

from __future__ import annotations

from enum import Enum


class PiiCategory(str, Enum):
    """What kind of direct identifier a column holds."""

    NAME = "name"
    NHS_NUMBER = "nhs_number"
    ID = "id"
    POSTCODE = "postcode"
    PHONE = "phone"
    EMAIL = "email"
    DATE_OF_BIRTH = "date_of_birth"
    FREE_TEXT = "free_text"


class PiiHandling(str, Enum):
    """What happens to a direct identifier column: never is it sampled from its real values."""

    DROP = "drop"  # not in the synthetic data
    FAKE = "fake"  # fresh values of the same format, from a namespace no real person holds
    GENERALISE = "generalise"  # coarsened before any model sees it, and again after sampling


DEFAULT_HANDLING: dict[PiiCategory, PiiHandling] = {
    PiiCategory.NAME: PiiHandling.FAKE,
    PiiCategory.NHS_NUMBER: PiiHandling.FAKE,
    PiiCategory.ID: PiiHandling.FAKE,
    PiiCategory.PHONE: PiiHandling.FAKE,
    PiiCategory.EMAIL: PiiHandling.FAKE,
    PiiCategory.POSTCODE: PiiHandling.GENERALISE,
    PiiCategory.DATE_OF_BIRTH: PiiHandling.GENERALISE,
    PiiCategory.FREE_TEXT: PiiHandling.DROP,
}

ALLOWED_HANDLING: dict[PiiCategory, tuple[PiiHandling, ...]] = {
    PiiCategory.NAME: (PiiHandling.FAKE, PiiHandling.DROP),
    PiiCategory.NHS_NUMBER: (PiiHandling.FAKE, PiiHandling.DROP),
    PiiCategory.ID: (PiiHandling.FAKE, PiiHandling.DROP),
    PiiCategory.PHONE: (PiiHandling.FAKE, PiiHandling.DROP),
    PiiCategory.EMAIL: (PiiHandling.FAKE, PiiHandling.DROP),
    PiiCategory.POSTCODE: (PiiHandling.GENERALISE, PiiHandling.FAKE, PiiHandling.DROP),
    PiiCategory.DATE_OF_BIRTH: (PiiHandling.GENERALISE, PiiHandling.DROP),
    PiiCategory.FREE_TEXT: (PiiHandling.DROP, PiiHandling.FAKE),
}

#: Generalisation levels per category, the default first.
LEVELS: dict[PiiCategory, tuple[str, ...]] = {
    PiiCategory.POSTCODE: ("outward", "area"),
    PiiCategory.DATE_OF_BIRTH: ("month", "year"),
}

#: Categories whose fakes are counters in a reserved range (unique per row or patient):
#: they can be an entity key.
KEY_CATEGORIES = (PiiCategory.ID, PiiCategory.NHS_NUMBER)
#: Categories whose fakes are drawn at random, so they must avoid the real values explicitly.
DRAWN_CATEGORIES = (PiiCategory.NAME, PiiCategory.PHONE, PiiCategory.EMAIL, PiiCategory.POSTCODE, PiiCategory.FREE_TEXT)


def check_handling(category: PiiCategory, handling: PiiHandling | None, level: str | None) -> str | None:
    """Why ``handling``/``level`` do not fit ``category`` (``None`` when they do)."""
    if handling is not None and handling not in ALLOWED_HANDLING[category]:
        allowed = ", ".join(h.value for h in ALLOWED_HANDLING[category])
        return f"handling {handling.value!r} does not apply to {category.value} (use one of: {allowed})"
    if level is not None:
        if category not in LEVELS:
            return f"level {level!r}: only postcode and date_of_birth are generalised"
        if level not in LEVELS[category]:
            return f"level {level!r} does not apply to {category.value} (use one of: {', '.join(LEVELS[category])})"
        if (handling or DEFAULT_HANDLING[category]) is not PiiHandling.GENERALISE:
            return f"level {level!r} needs handling 'generalise'"
    return None
