"""The console's access rules: bind refusal, bearer tokens (no broker needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi import HTTPException
from starlette.requests import Request

from pipeline.cli import cli
from pipeline.cli import console as console_cli
from pipeline.console import TOKEN_ENV, TokenCheck, is_local, unsafe_bind

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.5"])
def test_local_binds_need_no_token(host: str) -> None:
    assert is_local(host)
    assert unsafe_bind(host, None) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "console.example.com"])
def test_non_local_binds_need_a_token(host: str) -> None:
    assert not is_local(host)
    problem = unsafe_bind(host, None)
    assert problem is not None
    assert host in problem
    assert TOKEN_ENV in problem
    assert unsafe_bind(host, "t0ken") is None


def test_cli_refuses_a_non_local_bind_without_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    result = CliRunner().invoke(cli, ["console", "--bind", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: refusing to bind 0.0.0.0")


def test_the_real_process_refuses_to_start() -> None:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "console", "--bind", "0.0.0.0"],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "refusing to bind 0.0.0.0" in done.stderr
    assert "Traceback" not in done.stderr


def test_one_name_for_the_token_variable() -> None:
    assert console_cli.TOKEN_ENV == TOKEN_ENV


def _request(authorization: str | None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request({"type": "http", "headers": headers, "method": "POST", "path": "/"})


def _status(check: TokenCheck, authorization: str | None) -> int:
    try:
        check(_request(authorization))
    except HTTPException as exc:
        detail = str(exc.detail)
        status = exc.status_code
    else:
        return 200
    assert "t0ken" not in detail
    return status


def test_bearer_token_rules() -> None:
    check = TokenCheck("t0ken")
    assert _status(check, None) == 401
    assert _status(check, "Basic dTpw") == 401
    assert _status(check, "Bearer ") == 401
    assert _status(check, "Bearer wrong") == 403
    assert _status(check, "Bearer t0ken") == 200
    assert _status(check, "bearer t0ken") == 200
    read_only = TokenCheck(None)
    assert read_only.read_only
    assert _status(read_only, None) == 401
    assert _status(read_only, "Bearer anything") == 403
