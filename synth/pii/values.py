"""Values of direct identifier columns: how they are compared, and how they are generalised.

* :func:`normalised` - the form in which two values count as the same person's: text
  trimmed, case-folded and with runs of whitespace made one space (``"  SMITH "`` is
  ``"smith"``); NHS numbers as their ten digits (``943 476 5919`` is ``9434765919``);
  phone numbers as their last nine digits (``+44 7700 900123`` and ``07700900123``
  agree); integers as their decimal text; dates and times as they are. Both the release
  gate's check and the fakes' collision avoidance compare in this form, so a fake never
  equals a real value up to case or spacing.
* :func:`generalise` - a date of birth floored to its month or year; a postcode cut to
  its outward code (``SW1A 1AA`` -> ``SW1A``) or its area (``SW``). A value that is not a
  UK postcode keeps its first 3 (outward) or 2 (area) characters, as a US ZIP code keeps
  its first three digits under HIPAA's Safe Harbor. Generalising twice changes nothing,
  so :func:`not_generalised` counts the values generalising would still change.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from synth.pii.categories import PiiCategory

#: A full UK postcode (outward code, optional space, inward code), upper case.
UK_POSTCODE = r"^([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})$"
#: A UK outward code alone.
UK_OUTWARD = r"^[A-Z]{1,2}[0-9][A-Z0-9]?$"
#: Ofcom's numbers for TV and radio drama, never allocated to a line: national-format prefixes,
#: each followed by any three digits (Faker's en_GB phone formats use the same ranges).
GB_DRAMA_MOBILE = ("07700900",)
GB_DRAMA_LANDLINE = ("01632960", "02079460", "02920180") + tuple(
    f"0{code}4960" for code in ("113", "114", "115", "116", "117", "118", "121", "131", "141", "151", "161")
)
#: Phone numbers are compared on this many trailing digits (the country prefix and trunk 0 vary).
PHONE_DIGITS = 9

Array = pa.Array | pa.ChunkedArray


def normalised(values: Array, category: PiiCategory | str) -> Array:
    """``values`` in the form they are compared in (see the module doc); nulls stay nulls."""
    category = PiiCategory(category)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    dtype = values.type
    if pa.types.is_temporal(dtype):
        return values
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        if pa.types.is_floating(dtype):
            values = pc.cast(values, pa.int64(), safe=False)
        values = pc.cast(values, pa.string())
    else:
        values = pc.cast(values, pa.string())
    if category is PiiCategory.NHS_NUMBER:
        return pc.replace_substring_regex(values, r"\D", "")
    if category is PiiCategory.PHONE:
        digits = pc.utf8_reverse(pc.replace_substring_regex(values, r"\D", ""))
        return pc.utf8_reverse(pc.utf8_slice_codeunits(digits, 0, PHONE_DIGITS))
    collapsed = pc.replace_substring_regex(pc.utf8_trim_whitespace(values), r"\s+", " ")
    return pc.utf8_lower(collapsed)


def generalise(values: Array, category: PiiCategory | str, level: str) -> Array:
    """``values`` generalised to ``level`` (``month``/``year`` for dates, ``outward``/``area`` for postcodes)."""
    category = PiiCategory(category)
    if pa.types.is_null(values.type):  # all missing (e.g. no value passed DP's threshold): nothing to generalise
        return values
    if category is PiiCategory.DATE_OF_BIRTH:
        return _floor_date(values, level)
    if category is PiiCategory.POSTCODE:
        return _postcode_part(values, level)
    raise ValueError(f"{category.value} is not generalised")


def not_generalised(values: Array, category: PiiCategory | str, level: str) -> int:
    """How many non-null values generalising to ``level`` would change (0: all generalised)."""
    changed = pc.not_equal(generalise(values, category, level), values)
    return int(pc.sum(pc.cast(pc.fill_null(changed, False), pa.int64())).as_py() or 0)


def _floor_date(values: Array, level: str) -> Array:
    if not pa.types.is_temporal(values.type):
        raise ValueError(f"a date of birth must be a date or timestamp column, not {values.type}")
    return pc.floor_temporal(values, 1, {"month": "month", "year": "year"}[level])


def _postcode_part(values: Array, level: str) -> Array:
    dtype = values.type
    text = pc.utf8_upper(pc.replace_substring_regex(pc.utf8_trim_whitespace(pc.cast(values, pa.string())), r"\s+", " "))
    outward = pc.replace_substring_regex(text, UK_POSTCODE, r"\1")
    is_outward = pc.match_substring_regex(outward, UK_OUTWARD)
    if level == "outward":
        part = pc.if_else(is_outward, outward, pc.utf8_slice_codeunits(outward, 0, 3))
    elif level == "area":
        area = pc.replace_substring_regex(outward, r"^([A-Z]{1,2})[0-9][A-Z0-9]?$", r"\1")
        part = pc.if_else(is_outward, area, pc.utf8_slice_codeunits(outward, 0, 2))
    else:
        raise ValueError(f"unknown postcode level {level!r}")
    return pc.cast(part, dtype)
