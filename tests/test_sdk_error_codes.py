"""One table of error codes: every code the server sends is the ``code`` of a
class in server/errors.py, and the JS SDK's ``ErrorCodes``
(clients/js-sdk/src/errors.js) lists exactly those codes, with the same HTTP
status, plus its own client-side codes (status 0)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from server import errors

ROOT = Path(__file__).resolve().parents[1]
SDK_ERRORS = ROOT / "clients" / "js-sdk" / "src" / "errors.js"


def _sdk_codes() -> dict[str, int]:
    text = SDK_ERRORS.read_text()
    table = text[text.index("ErrorCodes = Object.freeze({"):]
    table = table[: table.index("});")]
    return {m[0]: int(m[1]) for m in re.findall(r"^\s*([a-z_]+): (\d+),", table, re.MULTILINE)}


def _server_codes() -> dict[str, int]:
    table: dict[str, int] = {}
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.ApiError):
            assert table.get(cls.code, cls.status) == cls.status, f"{cls.code} has two statuses"
            table[cls.code] = cls.status
    return table


def test_every_server_error_code_is_in_the_sdk_table() -> None:
    sdk = _sdk_codes()
    server = _server_codes()
    assert {"blocked", "invalid_transition", "busy", "offline", "unknown_event"} <= set(server)
    missing = {code: status for code, status in server.items() if sdk.get(code) != status}
    assert not missing, f"add to clients/js-sdk/src/errors.js ErrorCodes: {missing}"


def test_every_server_code_in_the_sdk_table_is_a_class_in_server_errors() -> None:
    server = _server_codes()
    from_server = {code: status for code, status in _sdk_codes().items() if status != 0}
    unknown = {code: status for code, status in from_server.items() if server.get(code) != status}
    assert not unknown, f"a class in server/errors.py for each of: {unknown}"


def test_the_sdk_client_side_codes_are_not_server_codes() -> None:
    client_side = {code for code, status in _sdk_codes().items() if status == 0}
    assert "network_error" in client_side
    assert not client_side & set(_server_codes())


def _bare_codes(path: Path) -> list[str]:
    """``code="..."`` passed to a call, or ``{"code": "..."}`` written out."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            found += [f"{path}:{node.lineno} code={kw.value.value!r}" for kw in node.keywords
                      if kw.arg == "code" and isinstance(kw.value, ast.Constant)
                      and isinstance(kw.value.value, str)]
        elif isinstance(node, ast.Dict):
            found += [f"{path}:{node.lineno} {{'code': {value.value!r}}}"
                      for key, value in zip(node.keys, node.values, strict=True)
                      if isinstance(key, ast.Constant) and key.value == "code"
                      and isinstance(value, ast.Constant) and isinstance(value.value, str)]
    return found


def test_no_error_code_is_a_bare_string_outside_server_errors() -> None:
    server = ROOT / "server"
    bare = [hit for path in sorted(server.rglob("*.py")) if path != server / "errors.py"
            for hit in _bare_codes(path)]
    assert not bare, "use a class of server/errors.py: " + ", ".join(bare)
