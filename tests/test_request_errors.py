"""The core's refused-request error: masked message, and nothing chained that could hold a key."""

from __future__ import annotations

import gc
import traceback
import weakref

import pytest

from imgen.errors import (
    RequestRefusedError,
    UnexpectedResponseError,
    raise_unchained,
    translate_refusals,
)
from imgen.testing import exception_text
from imgen.testing.leaks import exception_text as same_helper

KEY = "sk-canary-0123456789abcdef"


class SDKStatusError(Exception):
    """What an SDK raises: its text and its request both hold the key."""

    def __init__(self, status: int) -> None:
        super().__init__(f"{status}: the server says 'bad key {KEY}'")
        self.status_code = status
        self.request_headers = {"Authorization": f"Bearer {KEY}"}


def refused(exc: SDKStatusError) -> RequestRefusedError:
    return RequestRefusedError(
        f"The service refused the request ({exc.status_code}): {exc}",
        status_code=exc.status_code,
        retry_after=1.0,
        secrets=[KEY, None, ""],
    )


def call_the_service() -> None:
    with translate_refusals(SDKStatusError, refused):
        raise SDKStatusError(401)


def test_the_message_is_masked_and_the_attributes_kept() -> None:
    with pytest.raises(RequestRefusedError) as raised:
        call_the_service()
    assert str(raised.value) == "The service refused the request (401): 401: the server says " + (
        "'bad key ***'"
    )
    assert (raised.value.status_code, raised.value.retry_after) == (401, 1.0)


def test_no_chained_exception_holds_the_sdk_error() -> None:
    sdk_errors: list[weakref.ref[SDKStatusError]] = []

    def tracked(error: SDKStatusError) -> SDKStatusError:
        sdk_errors.append(weakref.ref(error))
        return error

    with pytest.raises(RequestRefusedError) as raised, translate_refusals(SDKStatusError, refused):
        raise tracked(SDKStatusError(401))
    error = raised.value
    assert error.__cause__ is None
    assert error.__context__ is None
    assert KEY not in exception_text(error)
    assert KEY not in "".join(traceback.format_exception(error))
    # Nor does any frame of its traceback keep the SDK's error alive.
    gc.collect()
    assert sdk_errors[0]() is None


def test_raising_inside_an_outer_handler_still_chains_nothing() -> None:
    with pytest.raises(RequestRefusedError) as raised:
        try:
            raise SDKStatusError(500)
        except SDKStatusError as exc:
            raise_unchained(refused(exc))
    assert raised.value.__context__ is None
    assert KEY not in exception_text(raised.value)


def test_other_exceptions_pass_through_untouched() -> None:
    with pytest.raises(TimeoutError), translate_refusals(SDKStatusError, refused):
        raise TimeoutError("slow")


def test_unexpected_responses_mask_secrets_too() -> None:
    error = UnexpectedResponseError(f"<html>key={KEY}</html>", secrets=[KEY])
    assert KEY not in str(error)


def test_exception_text_is_exported_from_imgen_testing() -> None:
    assert exception_text is same_helper
