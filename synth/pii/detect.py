"""Finding direct identifiers by column name and by content.

**By name.** The column name is split into lower-case words (``patientFirstName`` ->
``patient_first_name``) and its *ending* is matched against each category's words:
``first_name``, ``surname``, ``nhs_number``, ``mrn``, ``hospital_number``, ``postcode``,
``zip``, ``dob``, ``date_of_birth``, ``phone``, ``mobile``, ``email``, ``notes`` ...
(:data:`NAME_PATTERNS`). A name match counts only where the column's type can hold the
category (text for names and e-mails, a date or timestamp for a date of birth ...).

**By content**, on a seeded sample of at most :data:`SAMPLE_VALUES` non-null values of
the column, and only when it has at least :data:`MIN_VALUES` of them. A column is of a
category when at least the stated share of its sampled values are:

==============  =====  ===========================================================
nhs_number      90%    ten digits (spaces or hyphens allowed) whose mod-11 check digit
                       is valid (a random 10-digit number passes 1 time in 11)
email           90%    ``local@domain.tld`` (a regular expression)
postcode        90%    a full UK postcode (a regular expression)
phone           80%    a valid number for the locale's country or its own ``+`` prefix,
                       by ``phonenumbers`` (Google's libphonenumber metadata), or
                       one of Ofcom's numbers for drama
name            60%    one to four words, each in the names dictionary (first and last
                       names of every Latin-script locale of Faker, ~37,000) or an
                       initial, at least one a dictionary name; and at least
                       :data:`MIN_DISTINCT_NAMES` distinct values among those sampled
id              90%    a code of up to four letters and six to twelve digits
                       (``MRN0012345``, ``K1234567``), with at least 20 distinct values
free_text       50%    four words or more, and at least half the sampled values distinct
==============  =====  ===========================================================

A date of birth is found by name only (content cannot tell a birth from another date),
and only at full precision: a column whose sampled values all fall on the first of a
month is already generalised. When name and content point to different categories, the
more specific wins, in the order of the table (a ``patient_number`` of valid NHS numbers
is an NHS number). Nothing found here is ever logged or saved but the category and how it
was found: the thresholds above, never the measured shares, which describe real data.
"""

from __future__ import annotations

import functools
import importlib
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from synth.pii.categories import PiiCategory
from synth.pii.values import GB_DRAMA_LANDLINE, GB_DRAMA_MOBILE

SAMPLE_VALUES = 1_000
MIN_VALUES = 20
MIN_DISTINCT_NAMES = 20
MIN_DISTINCT_IDS = 20
SHARES = {
    PiiCategory.NHS_NUMBER: 0.9,
    PiiCategory.EMAIL: 0.9,
    PiiCategory.POSTCODE: 0.9,
    PiiCategory.PHONE: 0.8,
    PiiCategory.NAME: 0.6,
    PiiCategory.ID: 0.9,
    PiiCategory.FREE_TEXT: 0.5,
}
#: Name and content disagreeing: the first of these wins.
SPECIFICITY = (
    PiiCategory.NHS_NUMBER,
    PiiCategory.EMAIL,
    PiiCategory.PHONE,
    PiiCategory.POSTCODE,
    PiiCategory.DATE_OF_BIRTH,
    PiiCategory.NAME,
    PiiCategory.FREE_TEXT,
    PiiCategory.ID,
)

_NUMBER = r"(_?(no|num|nbr|number|id))?"
_NUMBERED = r"_?(no|num|nbr|number|id)"
NAME_PATTERNS = {
    PiiCategory.NHS_NUMBER: rf"nhs{_NUMBER}",
    PiiCategory.EMAIL: r"e_?mail(_?(address|addr))?",
    PiiCategory.PHONE: rf"(tele?phone|phone|tel|mobile|cell|fax){_NUMBER}",
    PiiCategory.POSTCODE: r"(post_?code|postal_?code|zip(_?code)?)",
    PiiCategory.DATE_OF_BIRTH: r"(dob|d_o_b|date_?of_?birth|birth_?date|birth_?day|birth_?dt|born(_on)?)",
    PiiCategory.NAME: r"((first|last|given|family|middle|maiden|full|patient|person|pt|sur|fore|christian|preferred)"
    r"_?names?)",
    PiiCategory.FREE_TEXT: r"(notes?|comments?|free_?text|narrative|remarks?|clinical_?notes?)",
    PiiCategory.ID: rf"(mrn|medical_?record{_NUMBER}|hospital{_NUMBERED}|hosp{_NUMBERED}|case{_NUMBERED}"
    rf"|chi{_NUMBERED}|ssn|social_?security{_NUMBER}|passport{_NUMBER}|national_?insurance{_NUMBER}|ni_?(no|number))",
}
_COMPILED = {c: re.compile(rf"(^|_){p}(_?\d+)?$") for c, p in NAME_PATTERNS.items()}

_NHS = re.compile(r"\d{3}[ -]?\d{3}[ -]?\d{4}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_POSTCODE = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}", re.IGNORECASE)
_PHONE_SHAPE = re.compile(r"\+?[\d\s().-]{9,20}")
_ID_SHAPE = re.compile(r"[A-Za-z]{0,4}[-/ ]?\d{6,12}[A-Za-z]?")
_WORD_SPLIT = re.compile(r"[\s,-]+")
#: National numbers (without the trunk 0) of Ofcom's drama ranges: libphonenumber rejects some.
_DRAMA_PREFIXES = tuple(prefix[1:] for prefix in GB_DRAMA_MOBILE + GB_DRAMA_LANDLINE)


@dataclass(frozen=True)
class Detection:
    """A category and how it was found (by the column's name, its content, or both)."""

    category: PiiCategory
    by_name: bool
    by_content: bool

    @property
    def found_by(self) -> str:
        return {(True, True): "column name and content", (True, False): "column name"}.get(
            (self.by_name, self.by_content), "content"
        )


def detect(
    name: str, column: pa.ChunkedArray | pa.Array, rng: np.random.Generator, region: str = "GB"
) -> Detection | None:
    """The direct identifier category of column ``name``, or ``None``.

    Args:
        name: the column's name.
        column: its values (a bounded sample of the extract is enough).
        rng: draws the content sample.
        region: the country phone numbers without a ``+`` prefix are read for (ISO 3166 alpha-2).
    """
    values = _sample(column, rng)
    dtype = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    named = name_category(name)
    if named is not None and not _fits(named, dtype, values):
        named = None
    found = content_category(values, dtype, region) if len(values) >= MIN_VALUES else None
    if named is None and found is None:
        return None
    chosen = next(c for c in SPECIFICITY if c in (named, found))
    return Detection(chosen, by_name=named is chosen, by_content=found is chosen)


def name_category(name: str) -> PiiCategory | None:
    """The category the column's name alone says, by :data:`NAME_PATTERNS`."""
    words = words_of(name)
    for category in SPECIFICITY:
        if category in _COMPILED and _COMPILED[category].search(words):
            return category
    return None


def words_of(name: str) -> str:
    """``patientFirstName`` / ``Patient First-Name`` / ``NHSNumber`` -> ``patient_first_name`` / ``nhs_number``."""
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", spaced)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


def content_category(values: list, dtype: pa.DataType, region: str = "GB") -> PiiCategory | None:
    """The category the sampled ``values`` show (see the module doc for the tests and shares)."""
    is_text = pa.types.is_string(dtype) or pa.types.is_large_string(dtype)
    if not (is_text or pa.types.is_integer(dtype)):
        return None
    texts = [str(v).strip() for v in values]
    share = _share(texts)
    if share(is_nhs_number) >= SHARES[PiiCategory.NHS_NUMBER]:
        return PiiCategory.NHS_NUMBER
    if not is_text:
        return None  # other integer columns: ids are found by the schema's identifier rules
    if share(_EMAIL.fullmatch) >= SHARES[PiiCategory.EMAIL]:
        return PiiCategory.EMAIL
    if share(lambda v: is_phone_number(v, region)) >= SHARES[PiiCategory.PHONE]:
        return PiiCategory.PHONE
    if share(_POSTCODE.fullmatch) >= SHARES[PiiCategory.POSTCODE]:
        return PiiCategory.POSTCODE
    if len(set(texts)) >= MIN_DISTINCT_NAMES and share(is_person_name) >= SHARES[PiiCategory.NAME]:
        return PiiCategory.NAME
    if len(set(texts)) >= MIN_DISTINCT_IDS and share(_ID_SHAPE.fullmatch) >= SHARES[PiiCategory.ID]:
        return PiiCategory.ID
    if len(set(texts)) >= 0.5 * len(texts) and share(lambda v: len(v.split()) >= 4) >= SHARES[PiiCategory.FREE_TEXT]:
        return PiiCategory.FREE_TEXT
    return None


def is_nhs_number(text: str) -> bool:
    """Ten digits (``943 476 5919``, ``943-476-5919``, ``9434765919``) with a valid mod-11 check digit."""
    if not _NHS.fullmatch(text):
        return False
    digits = [int(c) for c in text if c.isdigit()]
    return nhs_check_digit(digits[:9]) == digits[9]


def nhs_check_digit(first_nine: list[int]) -> int | None:
    """The NHS number's check digit (weights 10..2, 11 - sum mod 11; 11 -> 0); ``None``: no valid number."""
    check = 11 - sum(d * w for d, w in zip(first_nine, range(10, 1, -1))) % 11
    return None if check == 10 else check % 11


def is_phone_number(text: str, region: str = "GB") -> bool:
    """A valid phone number by libphonenumber (``region`` for numbers without a ``+`` prefix),
    or one of the UK numbers Ofcom keeps for drama (which libphonenumber calls unallocated)."""
    if not _PHONE_SHAPE.fullmatch(text) or not 9 <= sum(c.isdigit() for c in text) <= 15:
        return False
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return False
    drama = number.country_code == 44 and str(number.national_number).startswith(_DRAMA_PREFIXES)
    return drama or phonenumbers.is_valid_number(number)


def is_person_name(text: str) -> bool:
    """One to four words, each a dictionary name or an initial, at least one a dictionary name."""
    words = [w.replace("'", "").replace("’", "").replace(".", "") for w in _WORD_SPLIT.split(text) if w]
    if not 1 <= len(words) <= 4 or not all(w.isalpha() for w in words):
        return False
    names = name_dictionary()
    known = [w.casefold() in names for w in words]
    return any(known) and all(k or len(w) == 1 for k, w in zip(known, words))


@functools.cache
def name_dictionary() -> frozenset[str]:
    """Case-folded first and last names of every Faker locale written in Latin letters."""
    from faker.config import AVAILABLE_LOCALES

    names: set[str] = set()
    for locale in AVAILABLE_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except ImportError:
            continue
        for attribute in ("first_names", "first_names_female", "first_names_male", "last_names"):
            names.update(w.casefold() for w in provider_list(provider, attribute) if _latin(w))
    return frozenset(names)


def provider_list(provider: type, attribute: str) -> list[str]:
    """A Faker provider's list (a tuple, or a dict of values to weights), ``[]`` when it has none."""
    return provider_weighted(provider, attribute)[0]


def provider_weighted(provider: type, attribute: str) -> tuple[list[str], list[float] | None]:
    """``(values, weights)`` of a Faker provider's tuple or weighted dict (weights ``None`` for a tuple)."""
    for klass in provider.__mro__:
        if attribute in vars(klass):
            found = vars(klass)[attribute]
            if isinstance(found, dict):
                return list(found), [float(w) for w in found.values()]
            if isinstance(found, (tuple, list)):
                return list(found), None
            return [], None
    return [], None


def _latin(word: str) -> bool:
    return word.isalpha() and all("LATIN" in unicodedata.name(c, "") for c in word)


def _fits(category: PiiCategory, dtype: pa.DataType, values: list) -> bool:
    """Whether a column of ``dtype`` can hold ``category`` (a date of birth: only at full precision)."""
    is_text = pa.types.is_string(dtype) or pa.types.is_large_string(dtype)
    if category is PiiCategory.DATE_OF_BIRTH:
        return pa.types.is_temporal(dtype) and not _coarse_dates(values)
    if category in (PiiCategory.NHS_NUMBER, PiiCategory.PHONE, PiiCategory.ID):
        return is_text or pa.types.is_integer(dtype)
    if category is PiiCategory.FREE_TEXT:
        return is_text and len(set(values)) >= MIN_VALUES
    return is_text


def _coarse_dates(values: list) -> bool:
    """Every sampled date is the first of a month (already generalised, or a month-level field)."""
    return bool(values) and all(getattr(v, "day", 1) == 1 and not _has_time(v) for v in values)


def _has_time(value) -> bool:
    return any(getattr(value, part, 0) for part in ("hour", "minute", "second", "microsecond"))


def _sample(column: pa.ChunkedArray | pa.Array, rng: np.random.Generator) -> list:
    values = pc.drop_null(column)
    if len(values) > SAMPLE_VALUES:
        values = values.take(pa.array(np.sort(rng.choice(len(values), SAMPLE_VALUES, replace=False))))
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    return values.to_pylist()


def _share(texts: list[str]):
    def share(test) -> float:
        return sum(bool(test(t)) for t in texts) / len(texts) if texts else 0.0

    return share
