"""Arrow tables <-> the pandas frames RDT works on, with exact types restored on the way back.

The extract's Arrow types are the contract (kept in the :class:`~synth.schema.Schema`):
synthetic output is cast back to them, so integers stay integers (nullable where the
extract had nulls), datetimes keep their unit and time zone, dates stay dates and text
stays text. A generated number is clipped to what its integer type holds before the cast
(a DP model's range can be wide; a value the type cannot hold must not end a run).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from synth.config import ColumnKind
from synth.schema import ColumnSpec, Schema


def to_model_frame(table: pa.Table, schema: Schema) -> pd.DataFrame:
    """The modelled columns of ``table`` as a pandas frame RDT accepts.

    Numbers become float64 (nulls as NaN), datetimes naive UTC ``datetime64[ns]``,
    categories and booleans NumPy object/float arrays whose nulls RDT treats as a category.
    """
    data = {}
    for spec in schema.modelled:
        column = table[spec.name]
        if spec.kind is ColumnKind.NUMERICAL:
            # Unsafe: an integer past 2**53 (a DP domain's noisy bound can reach 1e16) is rounded, not refused.
            data[spec.name] = pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        elif spec.kind is ColumnKind.DATETIME:
            data[spec.name] = _datetime_ns(column)
        else:
            data[spec.name] = _labels(column)
    return pd.DataFrame(data)


def to_arrow(frame: pd.DataFrame, schema: Schema) -> pa.Table:
    """Cast a frame holding every schema column back to the extract's exact Arrow types."""
    arrays = [_restore(frame[spec.name], spec) for spec in schema.columns]
    return pa.Table.from_arrays(arrays, schema=schema.arrow_schema())


def _datetime_ns(column: pa.ChunkedArray) -> np.ndarray:
    dtype = column.type
    if pa.types.is_date(dtype):
        column = pc.cast(column, pa.timestamp("ns"))
    elif dtype.tz is not None:
        column = pc.cast(column, pa.timestamp(dtype.unit))  # same instant, naive UTC
    values = column.to_numpy(zero_copy_only=False)
    return values.astype("datetime64[ns]")


def _labels(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    values = column.to_numpy(zero_copy_only=False)
    if values.dtype.kind in "iuf":
        return values  # integer codes; with nulls Arrow gives float + NaN, which RDT treats alike
    return values.astype(object)


def _restore(series: pd.Series, spec: ColumnSpec) -> pa.Array:
    if pa.types.is_dictionary(spec.arrow):
        return _restore_plain(series, spec.arrow.value_type, spec.kind).dictionary_encode().cast(spec.arrow)
    return _restore_plain(series, spec.arrow, spec.kind)


def integer_range(arrow_type: pa.DataType) -> tuple[float, float]:
    """The smallest and largest floats an integer type holds (int64's largest value is not a float)."""
    info = np.iinfo(arrow_type.to_pandas_dtype())
    low, high = float(info.min), float(info.max)
    while low < info.min:
        low = float(np.nextafter(low, np.inf))
    while high > info.max:
        high = float(np.nextafter(high, -np.inf))
    return low, high


_TEMPORAL_UNIT = {"s": "second", "ms": "millisecond", "us": "microsecond", "ns": "nanosecond"}


def _restore_plain(series: pd.Series, target: pa.DataType, kind: ColumnKind) -> pa.Array:
    if kind is ColumnKind.DATETIME:
        values = pd.to_datetime(series).to_numpy(dtype="datetime64[ns]")
        array = pa.array(values, type=pa.timestamp("ns"), from_pandas=True)
        if pa.types.is_date(target):
            return pc.cast(array, target, safe=False)
        # Generated instants can carry finer detail than the extract's unit (a DP domain's
        # sample is drawn in nanoseconds): floor to the unit, as the extract would store it.
        unit_only = pa.timestamp(target.unit)
        array = pc.cast(pc.floor_temporal(array, 1, _TEMPORAL_UNIT[target.unit]), unit_only)
        return array.cast(target)  # naive values are UTC instants; attaching the zone keeps the instant
    if pa.types.is_integer(target):
        if pd.api.types.is_integer_dtype(series.dtype):  # ids and counters: exact (float64 holds only 2**53)
            return pc.cast(pa.array(series, from_pandas=True), target)
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")
        array = pa.array(np.clip(np.round(values), *integer_range(target)), from_pandas=True)
        return pc.cast(array, target)
    if pa.types.is_boolean(target):
        values = series.astype(object).where(series.notna(), None)
        return pa.array([None if v is None else bool(v) for v in values], type=target)
    if pa.types.is_string(target) or pa.types.is_large_string(target):
        if isinstance(series.dtype, pd.ArrowDtype):  # text the reverse transform built in Arrow already
            return pc.cast(pa.array(series.array), target)
        # from_pandas: None, NaN, NA and NaT become nulls, as notna() sees them; no Python list.
        return pa.array(series.to_numpy(dtype=object), type=target, from_pandas=True)
    return pa.array(series.to_numpy(), from_pandas=True).cast(target)
