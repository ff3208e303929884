"""Direct identifiers: detected by column name and content, never sampled from the real domain.

A direct identifier (a name, an NHS number or another patient id, a postcode, a date of
birth at full precision, a phone number, an e-mail address, free text) names a person on
its own. Such a column is never modelled: it is dropped, replaced by fresh fake values of
the same format drawn from namespaces no real person holds, or generalised (a date of
birth to its month or year, a postcode to its outward code or area) before any model sees
it. See ``docs/direct-identifiers.md``.

* :mod:`synth.pii.categories` - the categories, the handlings and their defaults;
* :mod:`synth.pii.detect` - detection by column name and by content;
* :mod:`synth.pii.rules` - the decision per column (config over detection), applied to tables;
* :mod:`synth.pii.fake` - fresh values of each category's format;
* :mod:`synth.pii.values` - normalised values, generalisation, and the real values to avoid.

This package's ``__init__`` imports nothing, so :mod:`synth.config` can use the categories.
"""
