"""Small pure helpers of the generic store."""

import uuid

import pytest

from apiserver.registry.generic import new_uid, parse_resource_version
from machinery import errors


def test_new_uid_is_a_version_4_uuid_and_unique():
    uids = {new_uid() for _ in range(2000)}
    assert len(uids) == 2000
    for uid in list(uids)[:200]:
        parsed = uuid.UUID(uid)
        assert str(parsed) == uid
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


@pytest.mark.parametrize("value, expected", [("", 0), ("0", 0), ("123", 123)])
def test_parse_resource_version(value, expected):
    assert parse_resource_version(value) == expected


@pytest.mark.parametrize("value", ["abc", "-1", "1.5"])
def test_parse_resource_version_rejects_garbage(value):
    with pytest.raises(errors.StatusError) as err:
        parse_resource_version(value)
    assert err.value.code == 400
