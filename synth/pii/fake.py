"""Fresh fake values of a direct identifier's format, from namespaces no real person holds.

=============  ===========================================================================
category       fake values
=============  ===========================================================================
nhs_number     NHS test numbers: ``999`` followed by six digits and a valid mod-11 check
               digit (NHS England issues numbers starting 999 to no patient; 909,091 of
               them), numbered like other ids so each synthetic row or patient has its own
phone          Ofcom's numbers for drama (``07700 900xxx`` mobiles; ``01632 960xxx``,
               ``020 7946 0xxx``, ``0113 496 0xxx`` ... landlines), never allocated to a
               line; NANP's fictional ``555-01xx`` for US and Canadian columns
email          ``first.last<nn>@example.{com,org,net}``: RFC 2606 reserves those domains
postcode       a UK postcode shape whose inward letters use only C, I, K, M, O, V, letters
               Royal Mail never uses there; other postal codes: random digits of the same length
name           first and last names from Faker's lists for the configured locale
free_text      sentences of Faker's lorem words
id             counters (:mod:`synth.identifiers`)
=============  ===========================================================================

The *style* of a column - name case and part, phone format, NHS number spacing, postcode
spacing - is learned from its real values (:func:`learn_style`); it is a handful of flags,
never a value. Values drawn at random (all but the counters) avoid a given set of real
values exactly: the draw is redone for any that collides, after normalising both sides
as the release gate compares them (:func:`synth.pii.values.normalised`). Common first
names are in every extract, so without that set (``synth sample`` from a model alone) a
fake can coincide with a real name by chance; it is still drawn independently of the data.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections import Counter
from collections.abc import Callable

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from synth.errors import SynthError
from synth.pii.categories import PiiCategory
from synth.pii.detect import is_phone_number, provider_weighted, words_of
from synth.pii.values import GB_DRAMA_LANDLINE, GB_DRAMA_MOBILE, UK_POSTCODE, normalised

#: Times a random draw is redone for values that collide with a real one before giving up.
AVOID_ROUNDS = 50
MIN_NAME_POOL = 100  # fewer fresh names than this left in the locale's list: other locales' are added
STYLE_VALUES = 1_000  # real values read to learn a column's style

US_AREA_CODES = ("202", "212", "305", "312", "415", "503", "617", "702", "713", "808")
_INWARD_LETTERS = np.array(list("CIKMOV"))  # never used in a real inward code


class FakeValuesExhausted(SynthError):
    """No fresh fake value could be found (the namespace is used up, or the real data fills it)."""


# -- styles learned from real values -------------------------------------------------------------
def learn_style(category: PiiCategory | str, column: pa.ChunkedArray | pa.Array, name: str, region: str) -> dict:
    """Flags describing how a column writes its values (no value is kept)."""
    category = PiiCategory(category)
    values = pc.drop_null(column)
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    sample = [str(v).strip() for v in values.slice(0, STYLE_VALUES).to_pylist()]
    is_text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_dictionary(
        column.type
    )
    if category is PiiCategory.NAME:
        return {"part": _name_part(name, sample), "case": _case(sample)}
    if category is PiiCategory.NHS_NUMBER:
        separators = Counter(v[3] if len(v) == 12 else "" for v in sample)
        return {"text": is_text, "separator": separators.most_common(1)[0][0] if separators else " "}
    if category is PiiCategory.PHONE:
        return _phone_style(sample, region, is_text)
    if category is PiiCategory.POSTCODE:
        uk = [v for v in sample if _matches_uk(v)]
        if len(uk) >= len(sample) / 2:
            return {"uk": True, "space": sum(" " in v for v in uk) >= len(uk) / 2, "case": _case(uk)}
        lengths = Counter(len(v) for v in sample)
        return {"uk": False, "length": lengths.most_common(1)[0][0] if lengths else 5}
    return {}


def _name_part(name: str, sample: list[str]) -> str:
    words = words_of(name)
    if any(w in words for w in ("first", "given", "fore", "christian", "preferred", "middle")):
        return "first"
    if any(w in words for w in ("last", "family", "sur", "maiden")):
        return "last"
    multi = sum(len(v.split()) > 1 for v in sample)
    return "full" if multi >= len(sample) / 2 else "first"


def _case(sample: list[str]) -> str:
    letters = [v for v in sample if any(c.isalpha() for c in v)]
    if letters and sum(v.isupper() for v in letters) >= len(letters) / 2:
        return "upper"
    if letters and sum(v.islower() for v in letters) >= len(letters) / 2:
        return "lower"
    return "title"


def _phone_style(sample: list[str], region: str, is_text: bool) -> dict:
    formats, regions, mobiles = Counter(), Counter(), 0
    for text in sample:
        if not is_phone_number(text, region):
            continue
        number = phonenumbers.parse(text, region)
        regions[phonenumbers.region_code_for_number(number) or region] += 1
        mobiles += phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE or (
            number.country_code == 44 and str(number.national_number).startswith("7")
        )
        if text.startswith("+"):
            formats["international" if " " in text else "e164"] += 1
        else:
            formats["national" if any(c in text for c in " ()-") else "digits"] += 1
    parsed = sum(regions.values())
    return {
        "format": formats.most_common(1)[0][0] if formats else "national",
        "region": regions.most_common(1)[0][0] if regions else region,
        "mobile": parsed > 0 and mobiles >= parsed / 2,
        "text": is_text,
    }


def _matches_uk(text: str) -> bool:
    return re.fullmatch(UK_POSTCODE, text.upper().strip()) is not None


# -- fake values ---------------------------------------------------------------------------------
def fake_values(
    category: PiiCategory | str,
    count: int,
    rng: np.random.Generator,
    style: dict,
    locale: str = "en_GB",
    avoid: frozenset[str] | None = None,
    invented: bool = False,
) -> np.ndarray:
    """``count`` fake values (an object array of text) of ``category`` in ``style``.

    Args:
        category: any category but ``id`` and ``nhs_number`` (counters: :func:`nhs_test_numbers`).
        count: how many.
        rng: the draws (a chunk's own generator when sampling).
        style: from :func:`learn_style`.
        locale: Faker locale of names.
        avoid: real values, normalised (:func:`synth.pii.values.normalised`), no fake may equal.
        invented: names made up from syllables instead of drawn from Faker's lists: under DP the
            output may not depend on the real names (no ``avoid``), so names come from a
            namespace that real names do not reach (:func:`invented_names`).

    Raises:
        FakeValuesExhausted: ``AVOID_ROUNDS`` draws still left values equal to real ones.
    """
    category = PiiCategory(category)
    makers: dict[PiiCategory, Callable[[int], np.ndarray]] = {
        PiiCategory.NAME: lambda n: invented_names(n, rng, style) if invented else _names(n, rng, style, locale, avoid),
        PiiCategory.PHONE: lambda n: _phones(n, rng, style),
        PiiCategory.EMAIL: lambda n: _emails(n, rng, locale),
        PiiCategory.POSTCODE: lambda n: _postcodes(n, rng, style),
        PiiCategory.FREE_TEXT: lambda n: _sentences(n, rng),
    }
    if category not in makers:
        raise ValueError(f"{category.value} values are counters, not random draws")
    return _avoiding(makers[category], count, category, avoid)


def _avoiding(make: Callable[[int], np.ndarray], count: int, category: PiiCategory, avoid) -> np.ndarray:
    values = make(count)
    if not avoid:
        return values
    for _ in range(AVOID_ROUNDS):
        clash = _clashes(values, category, avoid)
        if not clash.any():
            return values
        values[clash] = make(int(clash.sum()))
    if _clashes(values, category, avoid).any():
        raise FakeValuesExhausted(
            f"no fresh fake {category.value} avoids every real value after {AVOID_ROUNDS} draws; "
            "drop the column (pii handling: drop)"
        )
    return values


def _clashes(values: np.ndarray, category: PiiCategory, avoid: frozenset[str]) -> np.ndarray:
    keys = normalised(pa.array(values, type=pa.string()), category).to_pylist()
    return np.fromiter((k in avoid for k in keys), dtype=bool, count=len(keys))


#: Syllables and endings of invented names: pronounceable, and with endings ("-zk", "-q", "-xa")
#: that names in use do not have, so an invented name does not equal a real one.
_SYLLABLES = tuple(c + v for c in "bdfklmnrstvz" for v in "aeiou")
_ENDINGS = ("zk", "q", "xa", "vq", "kx")


def invented_names(n: int, rng: np.random.Generator, style: dict) -> np.ndarray:
    """``n`` made-up names in ``style`` (part, case), none of them in any Faker locale's name lists."""
    known = _known_names()

    def words(count: int) -> np.ndarray:
        syllables = np.array(_SYLLABLES, dtype=object)
        made = syllables[rng.integers(len(_SYLLABLES), size=count)] + syllables[rng.integers(len(_SYLLABLES), size=count)]
        made = made + np.array(_ENDINGS, dtype=object)[rng.integers(len(_ENDINGS), size=count)]
        clash = np.fromiter((w in known for w in made), dtype=bool, count=count)
        if clash.any():
            made[clash] = words(int(clash.sum()))
        return np.array([w.capitalize() for w in made], dtype=object)

    values = words(n) if style.get("part", "first") != "full" else words(n) + " " + words(n)
    return _cased(values.astype(str), style.get("case", "title"))


@functools.cache
def _known_names() -> frozenset[str]:
    return frozenset(w.casefold() for part in ("first", "last") for w in _fallback_names(part))


def _cased(values: np.ndarray, case: str) -> np.ndarray:
    if case == "upper":
        values = np.char.upper(values)
    elif case == "lower":
        values = np.char.lower(values)
    return values.astype(object)


def _names(n: int, rng: np.random.Generator, style: dict, locale: str, avoid) -> np.ndarray:
    part = style.get("part", "first")
    firsts, lasts = name_pool(locale, "first", avoid if part == "first" else None), name_pool(
        locale, "last", avoid if part == "last" else None
    )
    if part == "first":
        values = _choose(firsts, n, rng)
    elif part == "last":
        values = _choose(lasts, n, rng)
    else:
        values = np.char.add(np.char.add(_choose(firsts, n, rng).astype(str), " "), _choose(lasts, n, rng).astype(str))
    return _cased(values.astype(str), style.get("case", "title"))


def name_pool(locale: str, part: str, avoid: frozenset[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """Faker's ``part`` names for ``locale`` and their probabilities, less any in ``avoid``.

    Taking the real names out of the pool (rather than redrawing) keeps names fast to draw
    however many collide. An extract of a few thousand patients holds nearly every name of
    one locale's list (en_GB has 364 first names), so when fewer than ``MIN_NAME_POOL``
    remain, the names of other English-speaking locales, then of every Latin-script
    locale, are added (each equally likely).
    """
    values, weights = _faker_names(locale, part)
    keep = np.array([v.casefold() not in avoid for v in values], dtype=bool) if avoid else np.ones(len(values), bool)
    values, weights = values[keep], weights[keep] / weights.sum()
    if len(values) < MIN_NAME_POOL:
        seen = {v.casefold() for v in values} | set(avoid or ())
        extra = [w for w in _fallback_names(part) if w.casefold() not in seen]
        mean = weights.mean() if len(weights) else 1.0
        values = np.concatenate([values, np.array(extra, dtype=object)])
        weights = np.concatenate([weights, np.full(len(extra), mean)])
    if len(values) == 0:
        raise FakeValuesExhausted(f"every {part} name Faker knows is a real name here; drop the column")
    return values, weights / weights.sum()


@functools.cache
def _fallback_names(part: str) -> tuple[str, ...]:
    """``part`` names of other locales: English-speaking ones first, then every Latin-script one."""
    from faker.config import AVAILABLE_LOCALES

    order = [loc for loc in AVAILABLE_LOCALES if loc.startswith("en_")] + [
        loc for loc in AVAILABLE_LOCALES if not loc.startswith("en_")
    ]
    found: dict[str, None] = {}
    for locale in order:
        try:
            values, _ = _faker_names(locale, part)
        except (ImportError, SynthError):
            continue
        found.update((v, None) for v in values if v.isalpha() and v.isascii())
    return tuple(found)


@functools.cache
def _faker_names(locale: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
    attributes = ("first_names", "first_names_female", "first_names_male") if part == "first" else ("last_names",)
    weighted: dict[str, float] = {}
    for attribute in attributes:
        values, weights = provider_weighted(provider, attribute)
        for value, weight in zip(values, weights or [1.0] * len(values)):
            weighted[value] = weighted.get(value, 0.0) + weight
        if weighted:
            break  # the first list a locale has (first_names usually holds both)
    if not weighted:
        raise SynthError(f"Faker locale {locale} has no {part} names; choose another pii.locale")
    return np.array(list(weighted), dtype=object), np.array(list(weighted.values()), dtype=np.float64)


def _choose(pool: tuple[np.ndarray, np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    values, probabilities = pool
    return values[rng.choice(len(values), size=n, p=probabilities)]


def _phones(n: int, rng: np.random.Generator, style: dict) -> np.ndarray:
    nanp = style.get("region", "GB") in ("US", "CA")
    pool = _phone_pool(nanp, bool(style.get("mobile")), style.get("format", "national"))
    return pool[rng.integers(len(pool), size=n)].astype(object)


@functools.cache
def _phone_pool(nanp: bool, mobile: bool, form: str) -> np.ndarray:
    """Every reserved number of the namespace, written in ``form`` (a few thousand at most)."""
    if nanp:
        country, nationals = "1", [f"{area}55501{k:02d}" for area in US_AREA_CODES for k in range(100)]
    else:
        country, prefixes = "44", GB_DRAMA_MOBILE if mobile else GB_DRAMA_LANDLINE
        nationals = [f"{prefix}{k:03d}" for prefix in prefixes for k in range(1_000)]
    return np.array([_format_phone(national, country, form) for national in nationals])


def _format_phone(national: str, country: str, form: str) -> str:
    if form == "digits":
        return national
    number = phonenumbers.parse(f"+{country}{national[1:] if country == '44' else national}")
    style = {"e164": phonenumbers.PhoneNumberFormat.E164, "international": phonenumbers.PhoneNumberFormat.INTERNATIONAL}
    return phonenumbers.format_number(number, style.get(form, phonenumbers.PhoneNumberFormat.NATIONAL))


def _emails(n: int, rng: np.random.Generator, locale: str) -> np.ndarray:
    firsts = _choose(name_pool(locale, "first", None), n, rng).astype(str)
    lasts = _choose(name_pool(locale, "last", None), n, rng).astype(str)
    domains = rng.choice(np.array(["example.com", "example.org", "example.net"]), n)
    local = np.char.add(np.char.add(np.char.add(firsts, "."), lasts), _digit_strings(rng, n, 2))
    local = np.char.lower(np.char.replace(np.char.replace(local, " ", ""), "'", ""))
    return np.char.add(np.char.add(local, "@"), domains).astype(object)


def _postcodes(n: int, rng: np.random.Generator, style: dict) -> np.ndarray:
    if not style.get("uk", True):
        return np.array(_digit_strings(rng, n, int(style.get("length", 5))), dtype=object)
    from faker.providers.address.en_GB import Provider

    areas = np.array(Provider.POSTAL_ZONES)
    outward = np.char.add(rng.choice(areas, n), rng.integers(1, 10, size=n).astype(str))
    inward = np.char.add(
        np.char.add(rng.integers(0, 10, size=n).astype(str), rng.choice(_INWARD_LETTERS, n)),
        rng.choice(_INWARD_LETTERS, n),
    )
    values = np.char.add(np.char.add(outward, " " if style.get("space", True) else ""), inward)
    return (np.char.lower(values) if style.get("case") == "lower" else values).astype(object)


def _sentences(n: int, rng: np.random.Generator) -> np.ndarray:
    from faker.providers.lorem.la import Provider

    words = np.array(Provider.word_list)
    lengths = rng.integers(6, 16, size=n)
    texts = [" ".join(rng.choice(words, size=k)).capitalize() + "." for k in lengths]
    return np.array(texts, dtype=object)


def _digit_strings(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    return np.char.zfill(rng.integers(0, 10**width, size=n).astype(str), width)


# -- NHS test numbers -----------------------------------------------------------------------------
@functools.cache
def _nhs_test_range() -> np.ndarray:
    """Every valid NHS number starting 999, ascending (int64)."""
    middle = np.arange(1_000_000, dtype=np.int64)  # the six digits after 999
    digits = (middle[:, None] // 10 ** np.arange(5, -1, -1)) % 10  # (N, 6)
    total = 9 * (10 + 9 + 8) + digits @ np.arange(7, 1, -1)
    check = 11 - total % 11
    valid = check != 10
    return 9_990_000_000 + middle[valid] * 10 + check[valid] % 11


def nhs_test_numbers(start: int, count: int, arrow_type: pa.DataType, separator: str = " ") -> pa.Array:
    """The NHS test numbers numbered ``start`` .. ``start + count - 1``, as ``arrow_type``.

    Raises:
        FakeValuesExhausted: past the last of the 909,091 test numbers.
    """
    numbers = _nhs_test_range()
    if start + count > len(numbers):
        raise FakeValuesExhausted(
            f"more synthetic rows or patients ({start + count:,}) than NHS test numbers ({len(numbers):,}); "
            "declare the column pii: {category: id} to number it as another id"
        )
    chosen = numbers[start : start + count]
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return pa.array(chosen).cast(arrow_type)
    text = [f"{t[:3]}{separator}{t[3:6]}{separator}{t[6:]}" for t in chosen.astype(str)]
    return pa.array(text, type=pa.string()).cast(arrow_type)
