"""The chaos suite's fault-injection points: off by default, refused when misspelt, loud
when on (a deploy check fails), and doing exactly what they say."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from nventory import fault_injection
from tests.channels.e2e.conftest import REPO_ROOT


def _run(code: str, spec: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != fault_injection.ENV_VAR}
    if spec is not None:
        env[fault_injection.ENV_VAR] = spec
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=REPO_ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "nventory.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_no_fault_is_on_by_default():
    assert fault_injection.FAULTS == {}
    fault_injection.after_push_answered(lambda: [["101", 7]])
    fault_injection.before_applying_receipt(b'{"sku": "ANY"}')


@pytest.mark.parametrize(
    "spec",
    ["push-exit-after-answer", "push-exit-after-answer=soon", "kill-everything=1"],
)
def test_a_fault_this_build_does_not_know_is_refused(spec):
    with pytest.raises(ImproperlyConfigured):
        fault_injection._parse(spec)


def test_the_push_fault_exits_the_process_at_its_nth_answer_only():
    call = (
        "from nventory import fault_injection as f; "
        "f.after_push_answered(lambda: [['shop', '101', 7]]); print('one', flush=True)"
    )
    ended = _run(f"{call}; {call}; print('two')", "push-exit-after-answer=2")
    assert ended.returncode == fault_injection.EXIT_STATUS
    assert ended.stdout.split() == ["one"]
    assert "never in production" in ended.stderr
    assert "exiting after push answer 2: [['shop', '101', 7]]" in ended.stderr


def test_the_receipt_fault_raises_for_the_marked_body_only(monkeypatch):
    monkeypatch.setattr(fault_injection, "FAULTS", {fault_injection.INGEST_RAISE_ON: '"SKU-9"'})
    fault_injection.before_applying_receipt(b'{"sku": "SKU-90"}')
    with pytest.raises(fault_injection.InjectedFault):
        fault_injection.before_applying_receipt(b'{"sku": "SKU-9"}')


def test_the_deploy_check_fails_while_a_fault_is_set(monkeypatch):
    monkeypatch.setenv(fault_injection.ENV_VAR, "push-exit-after-answer=1")
    with pytest.raises(SystemCheckError, match=r"channels\.E002"):
        call_command("check", "--deploy", "--fail-level", "ERROR")
    monkeypatch.delenv(fault_injection.ENV_VAR)
    call_command("check", "--tag", "security", "--deploy", "--fail-level", "ERROR")
