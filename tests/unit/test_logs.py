"""hubbub.logs: the JSON line of a record (fields, extras, exceptions) and configure()'s
basicConfig manners."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from hubbub.logs import LOG_FORMAT, JsonFormatter, formatter


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("hubbub.test", logging.WARNING, __file__, 1, msg, args, None)
    rec.created = 1_796_169_600.25  # 2026-12-02T00:00:00.250Z
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_a_record_is_one_json_object_with_its_extra_fields() -> None:
    """time in UTC with milliseconds, level, logger, the formatted message, then the extras."""
    line = JsonFormatter().format(
        record("%s did %d\nthings", "ada", 3, remote="10.0.0.1", status=200, took=0.5)
    )
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-12-02T00:00:00.250Z",
        "level": "WARNING",
        "logger": "hubbub.test",
        "message": "ada did 3\nthings",
        "remote": "10.0.0.1",
        "status": 200,
        "took": 0.5,
    }


def test_odd_extras_are_written_as_text_and_never_overwrite_the_own_fields() -> None:
    line = JsonFormatter().format(
        record("m", level="mine", peer=("1.2.3.4", 80), obj=object(), nan=float("nan"))
    )
    out = json.loads(line)
    assert out["level"] == "WARNING" and out["extra_level"] == "mine"
    assert out["peer"] == ["1.2.3.4", 80]
    assert out["obj"].startswith("<object object") and out["nan"] == "nan"


def test_an_exception_is_written_as_its_traceback_text() -> None:
    log = logging.getLogger("hubbub.test.json")
    try:
        raise ValueError("bad thing")
    except ValueError:
        rec = log.makeRecord(log.name, logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    out = json.loads(JsonFormatter().format(rec))
    assert out["message"] == "failed"
    assert out["exception"].startswith("Traceback (most recent call last):")
    assert out["exception"].endswith("ValueError: bad thing")


def test_formats_by_name() -> None:
    assert isinstance(formatter("json"), JsonFormatter)
    assert formatter("text")._fmt == LOG_FORMAT
    with pytest.raises(ValueError):
        formatter("xml")


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stderr


def test_configure_logs_json_to_stderr_at_the_level() -> None:
    err = run(
        "import logging; from hubbub import logs\n"
        "logs.configure('warning', 'json')\n"
        "logging.getLogger('x').info('hidden'); logging.getLogger('x').warning('shown')\n"
    )
    assert [json.loads(line)["message"] for line in err.splitlines()] == ["shown"]


def test_configure_leaves_an_application_s_logging_alone() -> None:
    """As logging.basicConfig: the root logger has handlers already, nothing changes."""
    err = run(
        "import logging, sys; from hubbub import logs\n"
        "logging.basicConfig(stream=sys.stderr, format='APP %(message)s', level='INFO')\n"
        "logs.configure('debug', 'json')\n"
        "logging.getLogger('x').debug('hidden'); logging.getLogger('x').info('shown')\n"
    )
    assert err.splitlines() == ["APP shown"]
