"""resource.Quantity: parsing, Kubernetes' canonical text, rounding, arithmetic and comparison."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from machinery.quantity import (
    BINARY_SI,
    DECIMAL_EXPONENT,
    DECIMAL_SI,
    FORMAT_WRONG,
    NUMERIC_ERROR,
    SUFFIX_ERROR,
    Quantity,
    QuantityError,
    parse_quantity,
    parse_quantity_or_none,
)

REGEX_MESSAGE = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


@pytest.mark.parametrize(
    ("text", "canonical", "fmt"),
    [
        ("0", "0", DECIMAL_SI),
        ("100m", "100m", DECIMAL_SI),
        ("1000m", "1", DECIMAL_SI),
        ("1500m", "1500m", DECIMAL_SI),
        ("1.5", "1500m", DECIMAL_SI),
        ("0.5", "500m", DECIMAL_SI),
        ("0.1", "100m", DECIMAL_SI),
        ("1.0", "1", DECIMAL_SI),
        ("10", "10", DECIMAL_SI),
        ("1000", "1k", DECIMAL_SI),
        ("2k", "2k", DECIMAL_SI),
        ("1000k", "1M", DECIMAL_SI),
        ("100k", "100k", DECIMAL_SI),
        ("0.000001", "1u", DECIMAL_SI),
        ("0.0000000001", "1n", DECIMAL_SI),  # rounded up to the smallest unit
        ("1.0000000001", "1000000001n", DECIMAL_SI),
        ("1E", "1E", DECIMAL_SI),
        ("1P", "1P", DECIMAL_SI),
        ("1234567890123456789", "1234567890123456789", DECIMAL_SI),
        ("99999999999999999999", "99999999999999999999", DECIMAL_SI),  # decimal values are not capped
        ("99999999999999999999Ki", "9223372036854775807", BINARY_SI),  # binary ones are, at 2^63-1
        ("1Gi", "1Gi", BINARY_SI),
        ("500Mi", "500Mi", BINARY_SI),
        ("1024Mi", "1Gi", BINARY_SI),
        ("2048Ki", "2Mi", BINARY_SI),
        ("8Gi", "8Gi", BINARY_SI),
        ("1536Mi", "1536Mi", BINARY_SI),
        ("1.5Gi", "1536Mi", BINARY_SI),
        ("0.5Ki", "512", BINARY_SI),  # below 1024 prints in decimal
        ("1.0001Ki", "1024102400u", BINARY_SI),  # a fraction prints in decimal
        ("1e3", "1e3", DECIMAL_EXPONENT),  # Kubernetes keeps the exponent form
        ("1E3", "1E3", DECIMAL_EXPONENT),
        ("12e6", "12e6", DECIMAL_EXPONENT),
        ("1e1", "10", DECIMAL_EXPONENT),
        ("1.5e3", "1500", DECIMAL_EXPONENT),
        ("10e2", "1e3", DECIMAL_EXPONENT),
        ("1e-3", "1e-3", DECIMAL_EXPONENT),
        ("1e+3", "1e+3", DECIMAL_EXPONENT),  # canonical-looking: kept verbatim
        ("1000e0", "1e3", DECIMAL_EXPONENT),
        ("-1.5", "-1500m", DECIMAL_SI),
        ("-1Gi", "-1Gi", BINARY_SI),
        ("-0", "0", DECIMAL_SI),
        ("+1", "+1", DECIMAL_SI),  # already canonical-looking: the text is kept verbatim
        ("007", "007", DECIMAL_SI),
        ("01.50", "1500m", DECIMAL_SI),
        ("Ki", "0", BINARY_SI),  # apimachinery reads a missing number as 0
        (".", "0", DECIMAL_SI),
        ("1.", "1.", DECIMAL_SI),
        ("1.000", "1", DECIMAL_SI),
        ("  250m ", "250m", DECIMAL_SI),  # JSON decoding trims spaces
    ],
)
def test_parse_and_canonical_text(text: str, canonical: str, fmt: str) -> None:
    quantity = parse_quantity(text)
    assert str(quantity) == canonical
    assert quantity.format == fmt
    assert parse_quantity(canonical) == quantity


@pytest.mark.parametrize(
    ("number", "canonical"),
    [(1, "1"), (0, "0"), (1000, "1k"), (1024, "1024"), (0.5, "500m"), (2.5, "2500m"), (0.1, "100m"),
     (-3, "-3"), (1e-05, "10e-6")],
)
def test_json_numbers(number: float, canonical: str) -> None:
    assert str(parse_quantity(number)) == canonical


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", REGEX_MESSAGE),
        ("   ", REGEX_MESSAGE),
        ("abc", REGEX_MESSAGE),
        ("1.2.3", REGEX_MESSAGE),
        ("1 Gi", REGEX_MESSAGE),
        ("1e3.5", REGEX_MESSAGE),
        ("1e", SUFFIX_ERROR),
        ("1i", SUFFIX_ERROR),
        ("1K", SUFFIX_ERROR),
        ("1mi", SUFFIX_ERROR),
        ("1ee3", SUFFIX_ERROR),
        ("1e-", SUFFIX_ERROR),
        ("1k3", SUFFIX_ERROR),
        ("--1", SUFFIX_ERROR),
        ("1e99999999999999999999", SUFFIX_ERROR),
        ("1e2000", NUMERIC_ERROR),
        (True, REGEX_MESSAGE),
        (None, REGEX_MESSAGE),
        (float("nan"), REGEX_MESSAGE),
        (float("inf"), REGEX_MESSAGE),
        ([1], REGEX_MESSAGE),
    ],
)
def test_parse_errors(value: object, message: str) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(value)  # type: ignore[arg-type]
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_messages_are_kubernetes_texts() -> None:
    assert FORMAT_WRONG == REGEX_MESSAGE
    assert SUFFIX_ERROR == "unable to parse quantity's suffix"
    assert NUMERIC_ERROR == "unable to parse numeric part of quantity"


@pytest.mark.parametrize(
    ("text", "milli", "value"),
    [
        ("100m", 100, 1),
        ("1", 1000, 1),
        ("1500m", 1500, 2),
        ("0.1m", 1, 1),
        ("1n", 1, 1),
        ("1Gi", 1073741824000, 1073741824),
        ("0", 0, 0),
        ("-1500m", -1500, -2),  # rounded away from zero
        ("-0.1m", -1, -1),
        ("2.0001", 2001, 3),
    ],
)
def test_milli_value_and_value_round_up(text: str, milli: int, value: int) -> None:
    quantity = parse_quantity(text)
    assert quantity.milli_value() == milli
    assert quantity.value() == value


def test_scaled_value() -> None:
    quantity = parse_quantity("1536Mi")
    assert quantity.scaled_value(6) == 1611  # mega, rounded up
    assert quantity.scaled_value(-9) == 1536 * 2**20 * 10**9
    assert parse_quantity("1.5").as_float() == 1.5


def test_comparison_is_by_value() -> None:
    assert parse_quantity("1") == parse_quantity("1000m") == parse_quantity("1e0")
    assert parse_quantity("1Ki") == parse_quantity("1024")
    assert parse_quantity("1k") < parse_quantity("1Ki")
    assert parse_quantity("500m") <= parse_quantity("0.5") < parse_quantity("501m")
    assert max(parse_quantity("1Gi"), parse_quantity("1G")) == parse_quantity("1Gi")
    assert hash(parse_quantity("1")) == hash(parse_quantity("1000m"))
    assert parse_quantity("1") != "1"
    assert not parse_quantity("0") and parse_quantity("1n")


def test_arithmetic_and_result_format() -> None:
    total = parse_quantity("100m") + parse_quantity("1.9")
    assert str(total) == "2" and total.format == DECIMAL_SI
    assert str(parse_quantity("1Gi") + parse_quantity("512Mi")) == "1536Mi"
    assert str(parse_quantity("1Gi") - parse_quantity("1Gi")) == "0"
    # a zero on the left takes the other side's format, as Quantity.Add does
    assert (Quantity() + parse_quantity("1Gi")).format == BINARY_SI
    assert str(Quantity() + parse_quantity("2Gi")) == "2Gi"
    assert (parse_quantity("1") + parse_quantity("1Gi")).format == DECIMAL_SI
    assert str(parse_quantity("1") + parse_quantity("1Ki")) == "1025"
    assert str(-parse_quantity("1.5")) == "-1500m"
    assert abs(parse_quantity("-2")) == parse_quantity("2")
    assert str(parse_quantity("9E") + parse_quantity("9E")) == "18E"  # beyond int64 still prints right
    assert str(parse_quantity("9E") + parse_quantity("999E")) == "1008E"
    with pytest.raises(TypeError):
        parse_quantity("1") + 1  # type: ignore[operator]


def test_constructors() -> None:
    assert str(Quantity.from_milli(1500)) == "1500m"
    assert str(Quantity.from_milli(2000)) == "2"
    assert str(Quantity.from_int(1024 * 1024, BINARY_SI)) == "1Mi"
    assert str(Quantity.from_int(3, BINARY_SI)) == "3"
    assert str(Quantity(Fraction(1, 3))) == "333333334n"
    assert Quantity(5).value() == 5
    assert parse_quantity(parse_quantity("1")) == parse_quantity("1")
    assert repr(parse_quantity("2Gi")) == "Quantity('2Gi')"
    assert parse_quantity("2Gi").to_json() == "2Gi"
    with pytest.raises(ValueError):
        Quantity(1, "Hex")


# --- properties ---------------------------------------------------------------------------------

SUFFIXES = ["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
            "e0", "e3", "e-3", "E2", "e+6", "e-12", "e20"]
MULTIPLIERS = {"": 1, "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "k": 10**3,
               "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20,
               "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


@st.composite
def quantity_texts(draw: st.DrawFn) -> str:
    sign = draw(st.sampled_from(["", "", "-", "+"]))
    whole = draw(st.from_regex(r"[0-9]{0,12}", fullmatch=True))
    fraction = draw(st.one_of(st.just(None), st.from_regex(r"[0-9]{0,12}", fullmatch=True)))
    if not whole and fraction is None:
        whole = "0"
    number = whole if fraction is None else f"{whole}.{fraction}"
    return sign + number + draw(st.sampled_from(SUFFIXES))


def exact_value(text: str) -> Fraction:
    match = re.fullmatch(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(.*)", text)
    assert match
    sign, whole, fraction, suffix = match.groups()
    number = Fraction(int((whole or "0") + (fraction or "")), 10 ** len(fraction or ""))
    multiplier = MULTIPLIERS[suffix] if suffix in MULTIPLIERS else Fraction(10) ** int(suffix[1:])
    return -(number * multiplier) if sign == "-" else number * multiplier


CANONICAL = re.compile(r"-?[0-9]+(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e-?[0-9]+)?")


@given(quantity_texts())
def test_parse_format_parse_is_stable(text: str) -> None:
    quantity = parse_quantity(text)
    printed = str(quantity)
    again = parse_quantity(printed)
    assert again == quantity
    assert str(again) == printed
    # the format survives unless the text could not show it (binary fractions print as decimal,
    # exponent 0 prints without one), exactly as in Kubernetes
    if re.search(r"[kMGTPEnum]$|i$|e-?[0-9]+$", printed):
        assert again.format == quantity.format or quantity.format == BINARY_SI


@given(quantity_texts())
def test_value_is_exact_rounded_up_to_nanos(text: str) -> None:
    value = exact_value(text)
    nanos = value * 10**9
    expected = math.ceil(abs(nanos)) * (1 if nanos >= 0 else -1)
    if abs(expected) <= (2**63 - 1) * 10**9:
        assert parse_quantity(text).nanos == expected


@given(quantity_texts())
def test_canonical_text_shape(text: str) -> None:
    quantity = parse_quantity(text)
    printed = str(Quantity.from_nanos(quantity.nanos, quantity.format))  # never the kept text
    assert CANONICAL.fullmatch(printed), printed
    if quantity.format == DECIMAL_SI and not printed.endswith("E") and printed != "0":
        mantissa = re.match(r"-?[0-9]+", printed).group()  # type: ignore[union-attr]
        assert not mantissa.endswith("000")  # otherwise a larger suffix would be used


@given(quantity_texts(), quantity_texts())
def test_arithmetic_matches_exact_values(a_text: str, b_text: str) -> None:
    a, b = parse_quantity(a_text), parse_quantity(b_text)
    assert (a + b).amount == a.amount + b.amount
    assert (a + b) - b == a
    assert (a - b) + b == a
    assert (a < b) == (a.amount < b.amount)
    assert (a == b) == (a.amount == b.amount)
    if abs((a + b).nanos) <= (2**63 - 1) * 10**9:  # parsing caps at 2^63-1, sums need not
        assert parse_quantity(str(a + b)) == a + b


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_milli_round_trip(milli: int) -> None:
    quantity = Quantity.from_milli(milli)
    assert quantity.milli_value() == milli
    assert parse_quantity(str(quantity)).milli_value() == milli
    assert quantity.value() == (math.ceil(milli / 1000) if milli >= 0 else -math.ceil(-milli / 1000))


@pytest.mark.parametrize("value", [None, "lots", "", [1], {"a": 1}, True, float("nan"), "1Qi"])
def test_parse_quantity_or_none_treats_what_it_cannot_read_as_absent(value: object) -> None:
    assert parse_quantity_or_none(value) is None


def test_parse_quantity_or_none_parses_like_parse_quantity() -> None:
    assert parse_quantity_or_none(" 1Gi ") == parse_quantity("1Gi")
    assert parse_quantity_or_none(2) == Quantity.from_int(2)
