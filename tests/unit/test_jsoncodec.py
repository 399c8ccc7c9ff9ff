"""JSON columns are written and read by orjson, but must keep every value a client sent exactly."""
import json

from hypothesis import given
from hypothesis import strategies as st

from sync import jsoncodec

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)


@given(json_values)
def test_every_json_value_comes_back_as_it_went_in(value):
    assert jsoncodec.loads(jsoncodec.dumps(value)) == value
    assert json.loads(jsoncodec.dumps(value)) == value  # and what is written is plain JSON


def test_integers_past_64_bits_keep_every_digit():
    big = {"count": 123456789012345678901234567890, "negative": -(2**70)}
    text = jsoncodec.dumps(big)
    assert jsoncodec.loads(text) == big
    assert isinstance(jsoncodec.loads(text)["count"], int)
    # text written by another encoder (an older row) reads exactly too
    assert jsoncodec.loads(json.dumps(big)) == big
    assert jsoncodec.loads(json.dumps(big).encode()) == big


def test_text_is_utf8_not_escapes():
    assert jsoncodec.dumps({"summary": "走访"}) == '{"summary":"走访"}'
