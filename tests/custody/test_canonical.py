"""Canonical JSON: one value, one byte string."""

from __future__ import annotations

import json

import pytest

from redactd.custody import canonical


class TestCanonical:
    def test_sorts_keys_and_drops_whitespace(self) -> None:
        assert canonical.dumps({"b": 1, "a": [True, None, "x"]}) == b'{"a":[true,null,"x"],"b":1}'

    def test_writes_unicode_as_utf8_and_escapes_controls_like_json_stringify(self) -> None:
        out = canonical.dumps({"s": "Zoë \u20ac\n\t\x01\x7f\"\\"})
        assert out == '{"s":"Zoë €\\n\\t\\u0001\x7f\\"\\\\"}'.encode()

    def test_round_trips_through_a_json_parser(self) -> None:
        value = {"n": -(2**53 - 1), "nested": {"z": [1, {"y": "ü"}]}, "t": False}
        assert canonical.dumps(json.loads(canonical.dumps(value))) == canonical.dumps(value)

    @pytest.mark.parametrize(
        ("value", "complaint"),
        [({"x": 1.5}, "floats are not allowed"), ({"x": 2**53}, "outside"), ({"é": 1}, "ASCII"),
         ({"x": "\ud800"}, "lone surrogate"), ({"x": {1, 2}}, "set is not a JSON value"),
         ({"x": [b"raw"]}, "$.x[0]")],
    )
    def test_check_refuses_values_with_more_than_one_spelling(self, value: object, complaint: str) -> None:
        with pytest.raises(canonical.NotCanonical, match=complaint.replace("$", r"\$").replace("[", r"\[")):
            canonical.check(value)
