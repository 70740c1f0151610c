"""The JS SDK's error-code table (clients/js-sdk/src/errors.js) knows every
code of server/errors.py, with the same HTTP status."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from server import errors

SDK_ERRORS = Path(__file__).resolve().parents[1] / "clients" / "js-sdk" / "src" / "errors.js"


def _sdk_codes() -> dict[str, int]:
    text = SDK_ERRORS.read_text()
    table = text[text.index("ErrorCodes = Object.freeze({"):]
    table = table[: table.index("});")]
    return {m[0]: int(m[1]) for m in re.findall(r"^\s*([a-z_]+): (\d+),", table, re.MULTILINE)}


def test_every_server_error_code_is_in_the_sdk_table() -> None:
    sdk = _sdk_codes()
    server = {
        cls.code: cls.status for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ApiError)
    }
    assert {"blocked", "not_a_contact", "block_limit_reached"} <= set(server)
    missing = {code: status for code, status in server.items() if sdk.get(code) != status}
    assert not missing, f"add to clients/js-sdk/src/errors.js ErrorCodes: {missing}"
