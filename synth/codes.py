"""Published clinical code systems, as public value lists for differential privacy.

A trust knows which codes a diagnosis column can hold without looking at any patient:
the code system is published. Declaring it (``columns.<name>.public_codes``) makes the
column's candidate values public, so under DP a code is released when its noisy count
stands clear of the noise (:mod:`synth.dp_domain`), not only above the much higher
threshold an undeclared value must pass; codes no patient has stay out with high
probability. The lists are generated from each system's published structure - a
superset of the valid codes, which costs nothing: a value no one holds is released only
when the noise alone carries it past the cut-off.

* ``icd9-cm-3``: ICD-9-CM three-digit categories 001-999, V01-V91 and E800-E999, each
  also without its leading zeros ("8" and "008"), as extracts often store them;
* ``icd10-3``: ICD-10 three-character categories A00-Z99.

References: CMS, "ICD-9-CM Diagnosis and Procedure Codes" (2014 release); WHO, ICD-10
(2019), volume 1.
"""

from __future__ import annotations

from functools import cache
from string import ascii_uppercase

CODE_SYSTEMS = ("icd9-cm-3", "icd10-3")


@cache
def public_codes(system: str) -> tuple[str, ...]:
    """Every category code of ``system`` (one of :data:`CODE_SYSTEMS`), in a fixed order."""
    if system == "icd9-cm-3":
        numeric = [f"{n:03d}" for n in range(1, 1000)]
        unpadded = [str(n) for n in range(1, 100)]  # "8" for 008; 100-999 are the same either way
        return tuple(numeric + unpadded + [f"V{n:02d}" for n in range(1, 92)] + [f"E{n}" for n in range(800, 1000)])
    if system == "icd10-3":
        return tuple(f"{letter}{n:02d}" for letter in ascii_uppercase for n in range(100))
    raise ValueError(f"unknown code system {system!r}; choose one of {list(CODE_SYSTEMS)}")
