"""Kubernetes ``resource.Quantity``: exact parsing, arithmetic and canonical printing.

Pod requests and limits, node capacity, quotas and the scheduler's fit checks all compare
quantities, and clients read them back as strings, so both the value and the text must agree with
Kubernetes. A :class:`Quantity` holds its value exactly as an integer number of nano-units
(Kubernetes rounds every parsed value up to 1e-9) plus its format (``DecimalSI``, ``BinarySI`` or
``DecimalExponent``), and prints like ``Quantity.String()``:

* ``1000m`` → ``1``, ``0.5`` → ``500m``, ``1500m`` → ``1500m``, ``1024Mi`` → ``1Gi``, ``1e3`` → ``1e3``;
* a parsed string that is already canonical-looking is echoed verbatim (as Kubernetes caches it);
* binary values below 1024 or with a fraction print in decimal SI.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal
from fractions import Fraction
from functools import total_ordering

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

FORMAT_WRONG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
NUMERIC_ERROR = "unable to parse numeric part of quantity"
SUFFIX_ERROR = "unable to parse quantity's suffix"

NANO = 10**9
MAX_ALLOWED = 2**63 - 1  # parsed values outside the int64 fast path are capped here
_INT64_MAX = 2**63 - 1
_MAX_EXPONENT = 1000  # beyond this a value cannot be held usefully; Kubernetes would keep the text

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXPONENT = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BINARY_BY_POWER = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
_DIGITS = frozenset("0123456789")
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")


class QuantityError(ValueError):
    """A string (or number) that is not a Kubernetes quantity."""


def _ceil_div(numerator: int, denominator: int) -> int:
    """Divide, rounding away from zero (Kubernetes rounds quantities up in magnitude)."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder:
        quotient += 1
    return -quotient if numerator < 0 else quotient


@total_ordering
class Quantity:
    """An exact, immutable resource quantity."""

    __slots__ = ("_nanos", "_text", "format")

    def __init__(self, value: int | Fraction | Decimal = 0, format: str = DECIMAL_SI) -> None:
        """A quantity worth ``value`` units (rounded up to 1e-9), printed in ``format``."""
        if format not in (DECIMAL_SI, BINARY_SI, DECIMAL_EXPONENT):
            raise ValueError(f"unknown quantity format {format!r}")
        if isinstance(value, int) and not isinstance(value, bool):
            nanos = value * NANO
        else:
            exact = Fraction(value) * NANO
            nanos = _ceil_div(exact.numerator, exact.denominator)
        self._nanos = nanos
        self.format = format
        self._text: str | None = None

    # --- constructors --------------------------------------------------------------------------

    @classmethod
    def from_nanos(cls, nanos: int, format: str = DECIMAL_SI) -> Quantity:
        quantity = cls(0, format)
        quantity._nanos = nanos
        return quantity

    @classmethod
    def from_milli(cls, milli: int, format: str = DECIMAL_SI) -> Quantity:
        """resource.NewMilliQuantity."""
        return cls.from_nanos(milli * 10**6, format)

    @classmethod
    def from_int(cls, value: int, format: str = DECIMAL_SI) -> Quantity:
        """resource.NewQuantity."""
        return cls.from_nanos(value * NANO, format)

    # --- reading -------------------------------------------------------------------------------

    @property
    def nanos(self) -> int:
        """The exact value in units of 1e-9."""
        return self._nanos

    @property
    def amount(self) -> Fraction:
        """The exact value."""
        return Fraction(self._nanos, NANO)

    def is_zero(self) -> bool:
        return self._nanos == 0

    def sign(self) -> int:
        return (self._nanos > 0) - (self._nanos < 0)

    def scaled_value(self, scale: int) -> int:
        """The value in units of 10**scale, rounded away from zero (Quantity.ScaledValue)."""
        shift = scale + 9
        if shift <= 0:
            return self._nanos * 10 ** (-shift)
        return _ceil_div(self._nanos, 10**shift)

    def value(self) -> int:
        """Whole units, rounded up in magnitude (``Quantity.Value()``): 1500m → 2."""
        return self.scaled_value(0)

    def milli_value(self) -> int:
        """Thousandths, rounded up in magnitude (``Quantity.MilliValue()``): 0.1m → 1."""
        return self.scaled_value(-3)

    def as_float(self) -> float:
        return self._nanos / NANO

    # --- arithmetic (the result takes the left format, or the right one when the left is zero) ---

    def _combine(self, other: Quantity, nanos: int) -> Quantity:
        return Quantity.from_nanos(nanos, other.format if self._nanos == 0 else self.format)

    def __add__(self, other: object) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self._combine(other, self._nanos + other._nanos)

    def __sub__(self, other: object) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self._combine(other, self._nanos - other._nanos)

    def __neg__(self) -> Quantity:
        return Quantity.from_nanos(-self._nanos, self.format)

    def __abs__(self) -> Quantity:
        return self if self._nanos >= 0 else -self

    def __bool__(self) -> bool:
        return self._nanos != 0

    # --- comparison ------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self._nanos == other._nanos

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self._nanos < other._nanos

    def __hash__(self) -> int:
        return hash(self._nanos)

    # --- printing --------------------------------------------------------------------------------

    def __str__(self) -> str:
        if self._text is None:
            self._text = _canonical(self._nanos, self.format)
        return self._text

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r})"

    def to_json(self) -> str:
        return str(self)


def _canonical(nanos: int, format: str) -> str:
    """Quantity.CanonicalizeBytes."""
    if nanos == 0:
        return "0"
    if format == BINARY_SI:
        if -1024 * NANO < nanos < 1024 * NANO or nanos % NANO:
            format = DECIMAL_SI
        else:
            mantissa, power = nanos // NANO, 0
            while mantissa % 1024 == 0 and abs(mantissa) >= 1024:
                mantissa //= 1024
                power += 1
            if power >= len(_BINARY_BY_POWER):
                mantissa *= 1024 ** (power - len(_BINARY_BY_POWER) + 1)
                power = len(_BINARY_BY_POWER) - 1
            return f"{mantissa}{_BINARY_BY_POWER[power]}"
    mantissa, exponent = nanos, -9
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    remainder = exponent % 3  # lower the exponent to a multiple of three
    if remainder:
        mantissa *= 10**remainder
        exponent -= remainder
    if format == DECIMAL_EXPONENT:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    if exponent > 18:  # only reachable by arithmetic beyond int64; keep the value right
        mantissa *= 10 ** (exponent - 18)
        exponent = 18
    return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"


def _scan(text: str) -> tuple[bool, str, str, str]:
    """parseQuantityString: (positive, numerator digits, denominator digits, suffix)."""
    positive, pos, end = True, 0, len(text)
    if text[0] == "-":
        positive, pos = False, 1
    elif text[0] == "+":
        pos = 1
    while pos < end and text[pos] == "0":  # leading zeros
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    numerator = text[start:pos] or "0"
    denominator = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        denominator = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(FORMAT_WRONG)
    return positive, numerator, denominator, text[suffix_start:]


def _interpret_suffix(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) for a suffix."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        digits = suffix[1:]
        unsigned = digits[1:] if digits[0] in "+-" else digits
        if unsigned and unsigned.isdigit() and -(2**63) <= int(digits) <= _INT64_MAX:
            exponent = (int(digits) + 2**31) % 2**32 - 2**31  # Go truncates to int32
            return 10, exponent, DECIMAL_EXPONENT
    raise QuantityError(SUFFIX_ERROR)


def _parse_text(text: str) -> Quantity:
    if not text:
        raise QuantityError(FORMAT_WRONG)
    if text == "0":
        return _with_text(0, DECIMAL_SI, "0")
    positive, numerator, denominator, suffix = _scan(text)
    base, exponent, format = _interpret_suffix(suffix)
    digits = int(numerator + denominator)

    # Kubernetes' int64 fast path: the value is exact and, when it already looks canonical, the
    # original text is kept. Everything else is rounded up to 1e-9 (binary-SI values are also capped
    # at 2^63-1).
    fast, keep_text = False, False
    if format != BINARY_SI:
        scale = exponent - len(denominator)
        if len(numerator) + len(denominator) <= 18 and scale >= -9:
            fast = True
            shifted = numerator + denominator
            keep_text = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
    elif not denominator and 15 - len(numerator) - exponent * 3 // 10 - 1 >= 0:
        value = int(numerator)
        if value << exponent <= _INT64_MAX:
            fast = True
            keep_text = (value & 7) != 0

    if digits == 0:
        nanos = 0
    elif base == 2:
        nanos = _ceil_div(digits * 2**exponent * NANO, 10 ** len(denominator))
    else:
        power = exponent - len(denominator) + 9
        if power > _MAX_EXPONENT:
            if fast:
                raise QuantityError(NUMERIC_ERROR)
            nanos = MAX_ALLOWED * NANO
        elif power >= 0:
            nanos = digits * 10**power
        elif power < -_MAX_EXPONENT:
            nanos = 1
        else:
            nanos = _ceil_div(digits, 10**-power)
    if not fast and format == BINARY_SI:
        # Kubernetes caps only binary-SI values on its slow path; decimal ones stay exact, so
        # printing and re-parsing never changes a value
        nanos = min(nanos, MAX_ALLOWED * NANO)
        if 0 < nanos < NANO:
            format = DECIMAL_SI
    if not positive:
        nanos = -nanos
    return Quantity.from_nanos(nanos, format) if not keep_text else _with_text(nanos, format, text)


def _with_text(nanos: int, format: str, text: str) -> Quantity:
    quantity = Quantity.from_nanos(nanos, format)
    quantity._text = text
    return quantity


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Quantity:
    """Quantities are immutable and a cluster uses few distinct texts: parse each once."""
    return _parse_text(text)


def parse_quantity(value: str | int | float | Quantity) -> Quantity:
    """Parse a quantity from its string form or from a JSON number.

    Strings are trimmed of surrounding whitespace first, as Quantity's JSON decoding does. Raises
    :class:`QuantityError` with Kubernetes' message.
    """
    if isinstance(value, Quantity):
        return value
    if isinstance(value, bool):
        raise QuantityError(FORMAT_WRONG)
    if isinstance(value, int):
        return _parse_text(str(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(FORMAT_WRONG)
        return _parse_text(repr(value))
    if isinstance(value, str):
        return _parse_cached(value.strip())
    raise QuantityError(FORMAT_WRONG)


def parse_quantity_or_none(value: object) -> Quantity | None:
    """:func:`parse_quantity` for readers that tolerate bad input: None for None, a wrong type or a string
    that is not a quantity (never raises). For code that reads stored objects (validated elsewhere) and
    must treat what it cannot read as absent."""
    if value is None:
        return None
    try:
        return parse_quantity(value)  # type: ignore[arg-type]  # any other type is refused with QuantityError
    except (QuantityError, TypeError, ValueError):
        return None
