"""Tests for the quiet TensorFlow environment helpers."""

from __future__ import annotations

import os

import pytest

from backend.vision.tfenv import quiet_native_stderr


def test_native_banners_are_dropped_and_other_output_kept(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with quiet_native_stderr():
        os.write(2, b"I0000 00:00:1795599830.979215   13451 port.cc:153] oneDNN custom ops\n")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called\n")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"a real problem\n")
    assert capfd.readouterr().err == "a real problem\n"


def test_verbose_switch_disables_capture(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXMART_TF_VERBOSE", "1")
    with quiet_native_stderr():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert "XNNPACK" in capfd.readouterr().err
