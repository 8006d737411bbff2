"""Secret masking and the discovery of sensitive values in a work directory."""

from __future__ import annotations

import json
from pathlib import Path

from kombify.tofu.redact import MASK, Redactor, discover_secrets, sensitive_variable_names


def test_masks_every_occurrence_longest_first() -> None:
    mask = Redactor(["abc", "abcdef"])
    assert mask("x abcdef y abc") == f"x {MASK} y {MASK}"


def test_masks_json_escaped_form_and_lines_of_multiline_secrets() -> None:
    key = "-----BEGIN KEY-----\nAAAAsecretbody\n-----END KEY-----"
    mask = Redactor([key, 'pa"ss'])
    assert mask(json.dumps({"k": key})) == json.dumps({"k": "X"}).replace("X", MASK)
    assert mask("  AAAAsecretbody") == f"  {MASK}"
    assert mask('value: pa\\"ss') == f"value: {MASK}"


def test_empty_secrets_mask_nothing() -> None:
    mask = Redactor(["", ""])
    assert not mask
    assert mask("anything") == "anything"


def test_masks_strings_inside_values() -> None:
    mask = Redactor(["tok"])
    assert mask.value({"a": ["tok", 1, {"b": "x tok"}]}) == {"a": [MASK, 1, {"b": f"x {MASK}"}]}


def test_sensitive_variables_from_json_and_hcl(tmp_path: Path) -> None:
    (tmp_path / "variables.tf.json").write_text(
        json.dumps(
            {
                "variable": {
                    "ssh_key": {"type": "string", "sensitive": True},
                    "name": {"type": "string"},
                }
            }
        )
    )
    (tmp_path / "main.tf").write_text(
        'variable "token" {\n  type = string\n  sensitive = true\n}\n'
        'variable "region" {\n  default = "x"\n}\n'
    )
    assert sensitive_variable_names(tmp_path) == {"ssh_key", "token"}


def test_discovers_values_from_tfvars_files_and_env(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'variable "token" {\n  sensitive = true\n}\nvariable "pw" { sensitive = true }\n'
        'variable "keys" {\n  sensitive = true\n}\nvariable "name" {}\n'
        'variable "env_secret" {\n  sensitive = true\n}\n'
    )
    (tmp_path / "terraform.tfvars").write_text('token = "tok-123"\nname = "public"\n')
    (tmp_path / "secrets.auto.tfvars.json").write_text(
        json.dumps({"pw": "hunter22", "keys": ["k1-aaaa", {"x": "k2-bbbb"}]})
    )
    found = discover_secrets(tmp_path, {"TF_VAR_env_secret": "from-env"})
    assert found == {
        "token": "tok-123",
        "pw": "hunter22",
        "keys": "k1-aaaa",
        "keys[1]": "k2-bbbb",
        "env_secret": "from-env",
    }


def test_no_sensitive_variables_no_secrets(tmp_path: Path) -> None:
    (tmp_path / "terraform.tfvars.json").write_text(json.dumps({"name": "x"}))
    assert discover_secrets(tmp_path) == {}
