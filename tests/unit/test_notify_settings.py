"""KOMBIFY_NOTIFY_URLS: split, checked at start, and never shown with its credentials."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kombify.errors import ConfigError
from kombify.notify import mask_url, split_urls
from kombify.settings import Settings, get_settings

SECRET = "s3cr3t-t0ken"


def test_urls_are_split_on_spaces_and_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "KOMBIFY_NOTIFY_URLS", f" json://127.0.0.1:9000/hook, jsons://me:{SECRET}@example.org/x\n"
    )
    settings = Settings()

    assert settings.notify_url_list == [
        "json://127.0.0.1:9000/hook",
        f"jsons://me:{SECRET}@example.org/x",
    ]
    # Shown, dumped or printed, the value stays hidden.
    assert SECRET not in repr(settings)
    assert SECRET not in settings.model_dump_json()


def test_unset_means_no_urls() -> None:
    assert Settings().notify_url_list == []
    assert split_urls(" , ") == []


def test_a_bad_entry_is_refused_at_start_named_and_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "KOMBIFY_NOTIFY_URLS", f"json://127.0.0.1:9000/hook nosuch://me:{SECRET}@example.org/x"
    )
    get_settings.cache_clear()

    with pytest.raises(ConfigError) as caught:
        get_settings()

    assert caught.value.message == (
        "KOMBIFY_NOTIFY_URLS: not a notification URL Apprise knows: "
        "`nosuch://me:****@example.org/****`"
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_cli_refuses_to_start_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOMBIFY_NOTIFY_URLS", f"tgram-typo://{SECRET}/chat")
    result = subprocess.run(
        [sys.executable, "-m", "kombify", "stacks", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr == (
        "error: KOMBIFY_NOTIFY_URLS: not a notification URL Apprise knows: "
        "`tgram-typo://****/****`\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("json://127.0.0.1:8080/hooks/abc", "json://127.0.0.1:8080/****"),
        ("json://localhost:8080", "json://localhost:8080"),
        (f"jsons://user:{SECRET}@hooks.example.org/x?token=y", "jsons://user:****@hooks.example.org/****"),
        (f"tgram://123456:{SECRET}/987", "tgram://****/****"),
        (f"discord://1234/{SECRET}", "discord://****/****"),
        ("json://[::1]:80/a", "json://[::1]:80/****"),
        (f"json://host.example.org?token={SECRET}", "json://host.example.org/****"),
        (SECRET, "****"),
    ],
)
def test_mask_keeps_where_and_hides_credentials(url: str, shown: str) -> None:
    assert mask_url(url) == shown
