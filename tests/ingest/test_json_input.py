"""Client JSON is read exactly or refused: never a rounded integer, never a NaN."""

from __future__ import annotations

import ast

import pytest

from ingest.json_input import TooLongInteger, lines, loads


@pytest.mark.parametrize(
    "text",
    ["18446744073709551615", "-9223372036854775808", "9999999999999999999", "1234567890123456789",
     '"123456789012345678901234567890"', '"urn:li:activity:72638293847564738291"',
     "1.2345678901234567890123e5"],
)  # fmt: skip
def test_read_exactly(text: str) -> None:
    assert loads(f'{{"v": {text}}}'.encode()) == {"v": ast.literal_eval(text)}


@pytest.mark.parametrize("text", ["18446744073709551616", "-9223372036854775809",
                                  "123456789012345678901234567890"])  # fmt: skip
def test_integers_past_64_bits_are_refused(text: str) -> None:
    with pytest.raises(TooLongInteger, match="does not fit in 64 bits"):
        loads(f'{{"urn": "urn:li:activity:72638293847564738291", "v": [1, {text}]}}')
    with pytest.raises(TooLongInteger):
        loads(f'{{"v":{text}}}'.encode())


@pytest.mark.parametrize("data", [b'{"v": NaN}', b'{"v": Infinity}', b'{"v": "\\ud800"}',
                                  b'{"v": "\xff"}', b"{"])  # fmt: skip
def test_what_is_not_json_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        loads(data)


def test_a_byte_order_mark_is_skipped_and_deep_nesting_is_a_value_error() -> None:
    assert loads(b'\xef\xbb\xbf{"v": 1}') == {"v": 1}
    deep = b"[" * 1000 + b"12345678901234567890123" + b"]" * 1000  # orjson reads 1,024 levels
    with pytest.raises(ValueError, match="nested too deeply"):
        loads(deep)


def test_each_line_of_a_body_says_whether_it_has_a_long_digit_run() -> None:
    body = (b'{"m": "urn:li:activity:72638293847564738291"}\n{"v": 1}\n'
            b'{"v": 123456789012345678901}\n\n{"v": "1234567890123456789"}')  # fmt: skip
    assert [flag for _, flag in lines(body)] == [True, False, True, False, True]
    assert [line for line, _ in lines(body)] == body.split(b"\n")
    with pytest.raises(TooLongInteger):
        loads(body.split(b"\n")[2])
    assert loads(b'{"v": 1}', short_digits=True) == {"v": 1}
