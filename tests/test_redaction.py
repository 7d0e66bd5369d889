"""The redaction policy and its detectors: what each must catch, what it must leave alone, what a
policy file may say, and that a value nothing matches comes back as the very same object."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftline.collector import ConfigError, RedactionPolicy
from driftline.collector._redaction import Redactor, redactor

DEFAULT = Redactor(RedactionPolicy())

CAUGHT = [
    ("email", "write to jane.doe+work@example.co.uk today"),
    ("email", '{"role":"user","content":"I am bob@corp.io"}'),
    ("api_key", "my key is sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"),
    ("api_key", "anthropic sk-ant-api03-AAAAbbbbCCCCddddEEEEffff1234"),
    ("api_key", "AIzaSyD-1234567890abcdefghijklmnopqrstu"),
    ("api_key", "aws AKIAIOSFODNN7EXAMPLE"),
    ("api_key", "token ghp_0123456789abcdefghijABCDEFGHIJ012345"),
    ("api_key", "hf_abcdefghijklmnopqrstuvwxyzABCDEF"),
    ("bearer_token", "Authorization: Bearer 0a1b2c3d4e5f6a7b8c9d"),
    ("bearer_token", "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("private_key", "-----BEGIN RSA PRIVATE KEY-----\\nMIIEpAIBAAKCAQEA\\n-----END RSA PRIVATE KEY-----"),
    ("connection_string", "DATABASE_URL=postgres://app:s3cr3t-pw@db.internal:5432/prod"),
    ("password", "Server=tcp:x.database.windows.net;User ID=app;Password=Hunter2Hunter2;"),
    ("password", "aws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"),
    ("card", "card 4111 1111 1111 1111 exp 12/29"),
    ("card", "amex 378282246310005"),
    ("card", "mc 5555-5555-5555-4444"),
    ("iban", "pay to DE89 3704 0044 0532 0130 00 please"),
    ("iban", "GB82WEST12345698765432"),
    ("phone", "call me on +1 415 555 0100"),
    ("phone", "ring +44 20 7946 0958 tomorrow"),
    ("phone", "office (415) 555-0100"),
]

LEFT_ALONE = [
    "gpt-4o-2024-08-06",
    "claude-3-5-sonnet-20241022",
    "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
    "version 1.2.3, prompt v12, index 2024.11.05",
    "timestamp 1733222400000000000 and 1733222400",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "the answer is 3.14159265358979 or 42 or 1,234,567",
    "card-like but fails Luhn: 4111 1111 1111 1112",
    "not an iban: DE12 3456 7890 1234 5678 90",
    "date 2024-01-15 10:30:00, ip 192.168.10.200",
    "order 1000000000000001",
    "skills: sk-learn is great",
    "ask the user for their email @ the end",
    "docs at https://docs.example.com:8443/guide?q=1 and http://localhost:4318/v1/traces",
    "choose a strong password and never share it",
    "bearer of bad news, eyJ alone is no token",
]


@pytest.mark.parametrize(("detector", "text"), CAUGHT)
def test_each_detector_masks_what_it_must_catch(detector: str, text: str) -> None:
    masked = DEFAULT.detect(text)
    assert masked is not None and f"[REDACTED:{detector}]" in masked
    assert not any(token in masked for token in ("jane.doe", "bob@", "s3cr3t", "Hunter2", "4111 1111", "AKIAIOSF", "0a1b2c3d", "MIIEpA", "0100", "wJalrXUt"))


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_detectors_leave_models_ids_versions_and_ordinary_numbers_alone(text: str) -> None:
    assert DEFAULT.detect(text) is text


def test_a_value_with_a_lone_surrogate_is_scanned_like_any_other() -> None:
    assert DEFAULT.detect("bad \udc80 bytes, mail a@b.io") == "bad \udc80 bytes, mail [REDACTED:email]"


def test_only_the_password_of_a_connection_string_is_masked() -> None:
    assert DEFAULT.detect("postgres://app:pw1234@db:5432/x") == "postgres://app:[REDACTED:connection_string]@db:5432/x"


def test_an_unmatched_value_and_a_map_of_kept_names_are_returned_untouched() -> None:
    attrs = {"gen_ai.request.model": "gpt-4o", "gen_ai.input.messages": '[{"content":"hello"}]'}
    content = attrs["gen_ai.input.messages"]
    DEFAULT.attributes(attrs)
    assert attrs["gen_ai.input.messages"] is content


def test_only_content_attributes_are_scanned_by_default() -> None:
    attrs = {"gen_ai.input.messages": "from a@b.io", "gen_ai.prompt.name": "a@b.io", "gen_ai.prompt.0.content": "a@b.io"}
    DEFAULT.attributes(attrs)
    assert attrs == {"gen_ai.input.messages": "from [REDACTED:email]", "gen_ai.prompt.name": "a@b.io",
                     "gen_ai.prompt.0.content": "[REDACTED:email]"}  # fmt: skip


def test_event_attributes_are_scanned_whatever_their_name() -> None:
    attrs = {"anything": "reach me at c@d.org"}
    DEFAULT.attributes(attrs, event=True)
    assert attrs == {"anything": "reach me at [REDACTED:email]"}


def test_content_and_events_can_be_left_unscanned(tmp_path: Path) -> None:
    quiet = Redactor(RedactionPolicy.load(write_policy(tmp_path, "content = false\nevents = false\n")))
    span, event = {"gen_ai.input.messages": "a@b.io"}, {"anything": "a@b.io"}
    quiet.attributes(span)
    quiet.attributes(event, event=True)
    assert span == {"gen_ai.input.messages": "a@b.io"} and event == {"anything": "a@b.io"}


def write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_hashed_values_correlate_without_being_readable(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k3y")
    policy = RedactionPolicy.load(write_policy(tmp_path, f'hash_key_file = "{key}"\n[detectors]\nemail = "hash"\n'))
    hashing = Redactor(policy)
    one, two, other = (hashing.detect(f"from {who}") for who in ("x@y.io", "x@y.io", "z@y.io"))
    assert one == two != other
    assert one is not None and one.startswith("from [HASH:email:") and "x@y.io" not in one
    key.write_text("another key")
    assert Redactor(RedactionPolicy.load(tmp_path / "policy.toml")).detect("from x@y.io") != one


def test_attribute_rules_by_glob_come_first_and_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_REDACTION_KEY", "k")
    path = write_policy(
        tmp_path,
        """
[detectors]
phone = "keep"
card = "drop"

[[attributes]]
match = "user.*"
action = "hash"

[[attributes]]
match = "debug.body"
action = "drop"

[[attributes]]
match = "gen_ai.input.messages"
action = "keep"
""",
    )
    rules = Redactor(RedactionPolicy.load(path))
    attrs = {"user.email": "a@b.io", "debug.body": "x", "gen_ai.input.messages": "a@b.io", "gen_ai.output.messages": "+1 415 555 0100",
             "gen_ai.system_instructions": "card 4111111111111111"}  # fmt: skip
    rules.attributes(attrs)
    assert set(attrs) == {"user.email", "gen_ai.input.messages", "gen_ai.output.messages"}
    assert attrs["user.email"].startswith("[HASH:") and attrs["gen_ai.input.messages"] == "a@b.io"
    assert attrs["gen_ai.output.messages"] == "+1 415 555 0100"
    assert rules.counts() == {"attribute:user.*": 1, "attribute:debug.body": 1, "card": 1}


@pytest.mark.parametrize(("text", "message"), [
    ("detectors = 3", "[detectors] must be a table"),
    ("[detectors]\nssn = 'mask'", "unknown detector 'ssn'"),
    ("[detectors]\nemail = 'scramble'", "action must be one of mask, hash, keep, drop"),
    ("[[attributes]]\nmatch = 'x'\naction = 'erase'", "attributes[0] (x): action must be one of"),
    ("[[attributes]]\naction = 'drop'", "attributes[0] must be a table with match"),
    ("colour = 'red'", "unknown key(s) colour"),
    ("events = 'yes'", "events must be true or false"),
    ("[[attributes]]\nmatch = 'user.id'\naction = 'hash'", "hashes values but has no key"),
    ("[detectors\nemail = 'mask'", "is not valid TOML"),
])  # fmt: skip
def test_a_bad_policy_file_is_a_config_error_naming_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="policy") as caught:
        RedactionPolicy.load(write_policy(tmp_path, text))
    assert message in str(caught.value)


def test_policy_precedence_argument_then_environment_then_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_policy(tmp_path, "[detectors]\nemail = 'keep'\n")
    assert redactor(False) is None and redactor("off") is None
    assert redactor(path).detect("a@b.io") == "a@b.io"  # type: ignore[union-attr]
    monkeypatch.setenv("DRIFTLINE_REDACTION", str(path))
    assert redactor().detect("a@b.io") == "a@b.io"  # type: ignore[union-attr]
    monkeypatch.setenv("DRIFTLINE_REDACTION", "off")
    assert redactor() is None
    monkeypatch.setenv("DRIFTLINE_REDACTION", str(tmp_path / "missing.toml"))
    assert redactor().detect("a@b.io") == "[REDACTED:email]"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="missing.toml"):
        redactor(tmp_path / "missing.toml")
