"""The merge rules, as pure functions: exhaustive cases and Hypothesis properties."""
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.merge import UNKNOWN, merge_field, merge_scalar, merge_set

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)
EARLIER, LATER = T0, T0 + dt.timedelta(minutes=5)


@pytest.mark.parametrize(
    "changed_by_others, device_time, server_time, expect_write, expect_value, expect_conflict",
    [
        (False, EARLIER, LATER, True, "device", False),  # untouched by others: the device's value applies
        (True, LATER, EARLIER, True, "device", True),  # both sides, device later: device wins, reported
        (True, EARLIER, LATER, False, "server", True),  # both sides, server later: server stays, reported
        (True, T0, T0, False, "server", True),  # a tie keeps the server's
    ],
)
def test_scalar_field_rules(changed_by_others, device_time, server_time, expect_write, expect_value,
                            expect_conflict):
    outcome = merge_field("notes", is_set=False, base="base", server="server", device="device",
                          changed_by_others=changed_by_others, server_recorded_at=server_time,
                          device_recorded_at=device_time)
    assert outcome.write is expect_write
    assert outcome.value == expect_value
    assert (outcome.conflict is not None) is expect_conflict
    if outcome.conflict:
        assert outcome.conflict.kept == expect_value
        assert outcome.conflict.discarded == ({"device", "server"} - {expect_value}).pop()


def test_same_value_on_both_sides_is_no_conflict():
    outcome = merge_scalar("phone", "123", "123", LATER, EARLIER)
    assert outcome.conflict is None and outcome.write is False


def test_unknown_base_counts_every_difference_as_both_sides():
    outcome = merge_field("notes", is_set=False, base=UNKNOWN, server="a", device="b",
                          changed_by_others=False, server_recorded_at=EARLIER, device_recorded_at=LATER)
    assert outcome.write and outcome.value == "b" and outcome.conflict.discarded == "a"
    same = merge_field("notes", is_set=False, base=UNKNOWN, server="a", device="a",
                       changed_by_others=False, server_recorded_at=EARLIER, device_recorded_at=LATER)
    assert not same.write and same.conflict is None


def test_sets_keep_additions_and_removals_of_both_sides():
    outcome = merge_set("tags", base=["独居老人", "低保户"], server=["独居老人", "低保户", "残疾人"],
                        device=["独居老人", "高龄"])
    assert sorted(outcome.value) == sorted(["独居老人", "残疾人", "高龄"])
    assert outcome.conflict is None and outcome.write


def test_set_conflict_where_one_side_added_what_the_other_removed():
    # Others removed "低保户" (in some change since base) while the device, based on an older state, added it back.
    outcome = merge_set("tags", base=[], server=[], device=["低保户"], others_added=["低保户"],
                        others_removed=["低保户"], server_recorded_at=LATER, device_recorded_at=EARLIER)
    assert outcome.conflict is not None
    assert outcome.value == []  # the later removal wins
    assert outcome.conflict.discarded == ["低保户"]
    later_device = merge_set("tags", base=[], server=[], device=["低保户"], others_added=["低保户"],
                             others_removed=["低保户"], server_recorded_at=EARLIER, device_recorded_at=LATER)
    assert later_device.value == ["低保户"] and later_device.conflict is not None


tags = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), unique=True, max_size=5)


@given(base=tags, server=tags, device=tags)
def test_set_merge_is_the_union_of_both_sides_edits(base, server, device):
    outcome = merge_set("tags", base=base, server=server, device=device)
    merged = set(outcome.value)
    added = (set(server) - set(base)) | (set(device) - set(base))
    removed = (set(base) - set(server)) | (set(base) - set(device))
    assert added <= merged, "no addition is lost"
    assert not (removed & merged), "no removal is undone"
    assert merged <= set(base) | set(server) | set(device)
    assert len(outcome.value) == len(merged), "no duplicates"
    assert outcome.write == (sorted(outcome.value) != sorted(server)) or outcome.value == server


@given(base=tags, server=tags, device=tags)
def test_set_merge_is_symmetric_in_content(base, server, device):
    one = merge_set("tags", base=base, server=server, device=device)
    other = merge_set("tags", base=base, server=device, device=server)
    assert set(one.value) == set(other.value)


@given(value=st.one_of(st.text(max_size=5), st.integers(), st.none()),
       other=st.one_of(st.text(max_size=5), st.integers(), st.none()),
       minutes=st.integers(min_value=-100, max_value=100))
def test_scalar_merge_keeps_exactly_one_side_and_reports_the_other(value, other, minutes):
    outcome = merge_scalar("f", value, other, T0, T0 + dt.timedelta(minutes=minutes))
    assert outcome.value in (value, other)
    if value == other:
        assert outcome.conflict is None
    else:
        assert outcome.conflict.kept == outcome.value
        assert outcome.conflict.discarded == (other if outcome.value == value else value)
        assert (outcome.value == other) == (minutes > 0)


def test_sync_package_imports_no_flask_or_marshmallow():
    import subprocess
    import sys

    code = ("import sys, sync, sync.push, sync.pull, sync.apply, sync.merge, sync.policy, sync.cursor;"
            "bad=[m for m in ('flask','marshmallow','flask_sqlalchemy') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
