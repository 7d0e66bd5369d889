"""Masking of secrets and personal data where data enters, so a masked value never reaches disk:
`driftline serve` applies it before the spool, the in-process exporter before the insert.

A policy says what happens to each attribute, by name (globs, first rule that matches wins):
`keep` it, `mask` it (`[REDACTED]`), `hash` it (keyed HMAC-SHA256, `[HASH:<16 hex>]`: equal values
still correlate, nobody can read them), `drop` it, or `detect`: run the detectors (`_detectors`)
over it and treat each one's finds by that detector's action (`[REDACTED:email]`,
`[HASH:email:<16 hex>]`, keep, or drop the whole attribute). Without a rule, content attributes
(`_names.CONTENT_ATTRIBUTES`), span-event attributes and log bodies are `detect`; everything else is
kept without being looked at, so model names, ids, versions and counts cost nothing and never change.

The policy file (TOML; every key optional):

    hash_key_file = "/run/secrets/driftline-hmac"  # the HMAC key for `hash` (else $DRIFTLINE_REDACTION_KEY)
    content = true    # the built-in content attributes are `detect`
    events = true     # span-event attributes and log bodies are `detect`

    [detectors]       # what becomes of each detector's finds: mask (default), hash, keep, drop
    email = "hash"
    phone = "keep"

    [[attributes]]    # rules by attribute name, in order
    match = "user.email"
    action = "hash"

Counts, not contents: `counts()` says how many values each rule changed; nothing here logs a value.
"""

from __future__ import annotations

import fnmatch
import hmac
import logging
import os
import re
import threading
import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from . import _names as n
from ._config import DRIFTLINE_REDACTION, DRIFTLINE_REDACTION_KEY
from ._detectors import DETECTORS, Detector
from ._errors import ConfigError

__all__ = ["ACTIONS", "DETECTOR_ACTIONS", "RedactionPolicy", "Redactor", "redactor"]

_log = logging.getLogger("driftline")

ACTIONS: Final = ("keep", "detect", "mask", "hash", "drop")
"""What an attribute rule may do with a whole value."""
DETECTOR_ACTIONS: Final = ("mask", "hash", "keep", "drop")
"""What a detector may do with its finds (`drop` drops the whole attribute)."""
_POLICY_KEYS: Final = frozenset({"hash_key_file", "content", "events", "detectors", "attributes"})
_CACHE_LIMIT: Final = 8192
"""Distinct attribute names whose rule is remembered; past it, names are looked up each time."""


@dataclass(frozen=True)
class RedactionPolicy:
    """What to mask, hash or drop; `RedactionPolicy()` is the default (detectors mask content)."""

    rules: tuple[tuple[str, str], ...] = ()
    detectors: Mapping[str, str] = field(default_factory=dict)
    content: bool = True
    events: bool = True
    hash_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> RedactionPolicy:
        """Read a policy file; ConfigError names the file and what is wrong with it."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read the redaction policy {path}: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"redaction policy {path} is not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "redaction policy") -> RedactionPolicy:
        """A policy from the file's data, checked: unknown keys, detectors or actions are errors."""
        unknown = sorted(set(data) - _POLICY_KEYS)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_POLICY_KEYS))})")
        detectors = _checked_detectors(data.get("detectors", {}), source)
        rules = tuple(_checked_rule(rule, i, source) for i, rule in enumerate(_list(data.get("attributes", []), "attributes", source)))
        policy = cls(rules=rules, detectors=detectors, content=_flag(data, "content", source), events=_flag(data, "events", source))
        key_file = data.get("hash_key_file")
        if key_file is not None and not isinstance(key_file, str):
            raise ConfigError(f"{source}: hash_key_file must be a path (a string)")
        return policy.with_key(_read_key(Path(key_file), source) if key_file else None)

    def with_key(self, key: bytes | None) -> RedactionPolicy:
        """This policy with its HMAC key: the one given, else $DRIFTLINE_REDACTION_KEY; ConfigError when
        a `hash` action has none."""
        key = key or self.hash_key or os.environ.get(DRIFTLINE_REDACTION_KEY, "").encode() or None
        hashing = any(action == "hash" for _, action in self.rules) or "hash" in self.detectors.values()
        if hashing and not key:
            raise ConfigError(f"the redaction policy hashes values but has no key: set hash_key_file or ${DRIFTLINE_REDACTION_KEY}")
        return RedactionPolicy(self.rules, self.detectors, self.content, self.events, key)


def _list(value: Any, name: str, source: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{source}: {name} must be a list of tables ([[{name}]])")
    return value


def _flag(data: Mapping[str, Any], name: str, source: str) -> bool:
    value = data.get(name, True)
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: {name} must be true or false, not {value!r}")
    return value


def _checked_detectors(value: Any, source: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [detectors] must be a table of name = action")
    known = {d.name for d in DETECTORS}
    for name, action in value.items():
        if name not in known:
            raise ConfigError(f"{source}: unknown detector {name!r} (known: {', '.join(d.name for d in DETECTORS)})")
        if action not in DETECTOR_ACTIONS:
            raise ConfigError(f"{source}: detector {name}: action must be one of {', '.join(DETECTOR_ACTIONS)}, not {action!r}")
    return dict(value)


def _checked_rule(rule: Any, index: int, source: str) -> tuple[str, str]:
    where = f"{source}: attributes[{index}]"
    if not isinstance(rule, dict) or set(rule) - {"match", "action"} or not isinstance(rule.get("match"), str) or not rule["match"]:
        raise ConfigError(f'{where} must be a table with match = "glob" and action = "..."')
    if rule.get("action") not in ACTIONS:
        raise ConfigError(f"{where} ({rule['match']}): action must be one of {', '.join(ACTIONS)}, not {rule.get('action')!r}")
    return rule["match"], rule["action"]


def _read_key(path: Path, source: str) -> bytes:
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read hash_key_file {path}: {exc.strerror or exc}") from None
    if not key:
        raise ConfigError(f"{source}: hash_key_file {path} is empty")
    return key


class Redactor:
    """Applies one policy; thread-safe; keeps per-rule counts of the values it changed."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self._key = policy.with_key(policy.hash_key).hash_key
        self._detectors = tuple((d, policy.detectors.get(d.name, "mask")) for d in DETECTORS if policy.detectors.get(d.name) != "keep")
        self._triggers, self._fired_by = _trigger_set([d for d, _ in self._detectors])
        globs = [*policy.rules, *((glob, "detect") for glob in n.CONTENT_ATTRIBUTES if policy.content)]
        self._globs = [(re.compile(fnmatch.translate(glob)).match, glob, action) for glob, action in globs]
        self._actions: tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]] = ({}, {})
        self.plain: tuple[set[str], set[str]] = (set(), set())
        """Names known to be kept as they are, outside events and inside them: the fast path's test."""
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._unsaved: Counter[str] = Counter()

    def rules(self) -> list[tuple[str, str]]:
        """(glob, action) of every rule that can change a value, in order (serve's cheap pre-check)."""
        return [(glob, action) for _, glob, action in self._globs if action != "keep"]

    # --- which rule ----------------------------------------------------------------------------

    def action(self, key: str, *, event: bool = False) -> tuple[str, str]:
        """(action, rule name) for an attribute; inside events (and log bodies) unruled names are `detect`."""
        cached = self._actions[event].get(key)
        if cached is not None:
            return cached
        found = next(((action, glob) for match, glob, action in self._globs if match(key)), None)
        if found is None:
            found = ("detect", "events") if event and self.policy.events else ("keep", "")
        if len(self._actions[event]) < _CACHE_LIMIT:
            self._actions[event][key] = found
            if found[0] == "keep":
                self.plain[event].add(key)
        return found

    # --- values --------------------------------------------------------------------------------

    def value(self, key: str, text: str, *, event: bool = False) -> str | None:
        """The value to store for attribute `key` (the same object when unchanged); None: drop it."""
        action, rule = self.action(key, event=event)
        if action == "keep":
            return text
        if action == "detect":
            return self.detect(text)
        self._count(f"attribute:{rule}")
        if action == "mask":
            return "[REDACTED]"
        if action == "hash":
            return f"[HASH:{self._digest(text)}]"
        return None

    def detect(self, text: str) -> str | None:
        """`text` with each detector's finds masked or hashed (the same object when nothing matched);
        None when a detector whose action is `drop` found something."""
        fired = self._triggers.Match(text.encode("utf-8", "surrogatepass"))  # one pass: which detectors can match at all
        if not fired:
            return text
        for (detector, action), trigger in zip(self._detectors, self._fired_by):
            if trigger not in fired:
                continue
            spans = detector.spans(text)
            if spans:
                self._count(detector.name)
                if action == "drop":
                    return None
                text = self._replace(text, spans, detector, action)
        return text

    def _replace(self, text: str, spans: list[tuple[int, int]], detector: Detector, action: str) -> str:
        pieces: list[str] = []
        last = 0
        for start, end in spans:
            found = text[start:end]
            pieces += (text[last:start], f"[HASH:{detector.name}:{self._digest(found)}]" if action == "hash" else f"[REDACTED:{detector.name}]")
            last = end
        pieces.append(text[last:])
        return "".join(pieces)

    def _digest(self, text: str) -> str:
        assert self._key is not None  # with_key refused a hashing policy without one
        return hmac.digest(self._key, text.encode("utf-8", "surrogatepass"), "sha256")[:8].hex()

    def attributes(self, attrs: dict[str, str], *, event: bool = False) -> None:
        """Apply the policy to a stringified attribute map, in place; a map of only kept names costs
        one subset test."""
        plain = self.plain[event]
        if attrs.keys() <= plain:
            return
        for key in attrs.keys() - plain:
            old = attrs[key]
            new = self.value(key, old, event=event)
            if new is None:
                del attrs[key]
            elif new is not old:
                attrs[key] = new

    # --- counts --------------------------------------------------------------------------------

    def _count(self, rule: str) -> None:
        with self._lock:
            self._counts[rule] += 1
            self._unsaved[rule] += 1

    def counts(self) -> dict[str, int]:
        """Values changed so far, by rule (a detector's name, or `attribute:<glob>`)."""
        with self._lock:
            return dict(self._counts)

    def take_unsaved(self) -> dict[str, int]:
        """The counts since the last call, for the store; give them back with `restore` if that fails."""
        with self._lock:
            taken, self._unsaved = dict(self._unsaved), Counter()
        return taken

    def restore(self, unsaved: Mapping[str, int]) -> None:
        with self._lock:
            self._unsaved.update(unsaved)


def _trigger_set(detectors: list[Detector]) -> tuple[Any, tuple[int, ...]]:
    """An RE2 set of the detectors' distinct triggers, and each detector's index in it."""
    import re2  # only a process that redacts pays for loading it

    triggers = re2.Set.SearchSet()
    index: dict[str, int] = {}
    for detector in detectors:
        if detector.trigger not in index:
            index[detector.trigger] = triggers.Add(detector.trigger)
    triggers.Compile()
    return triggers, tuple(index[d.trigger] for d in detectors)


def redactor(policy: RedactionPolicy | str | Path | bool | None = None) -> Redactor | None:
    """The one precedence rule for the policy: an explicit policy or file; False or "off" for none;
    None: $DRIFTLINE_REDACTION (a file or `off`), else the default policy. A bad file given
    explicitly raises ConfigError; a bad one in the variable warns and falls back to the default."""
    if policy is None:
        policy = os.environ.get(DRIFTLINE_REDACTION) or True
        if isinstance(policy, str) and policy != "off":
            try:
                return Redactor(RedactionPolicy.load(policy))
            except ConfigError as exc:
                _log.warning("ignoring %s: %s; using the default redaction policy", DRIFTLINE_REDACTION, exc)
                return Redactor(RedactionPolicy())
    if policy is False or policy == "off":
        return None
    if policy is True:
        return Redactor(RedactionPolicy())
    return Redactor(policy if isinstance(policy, RedactionPolicy) else RedactionPolicy.load(policy))
