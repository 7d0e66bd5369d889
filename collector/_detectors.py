"""The built-in detectors of secrets and personal data that redaction runs over content.

Most values never reach a detector's regular expression. Each detector has a trigger, a pattern
(RE2 syntax) that every match contains: a provider's key prefix, `@` before a domain, `://`,
thirteen digits for a card, a country code and check digits for an IBAN, the shape of a phone
number. The redactor tests all of them in one pass with an RE2 set and runs only the detectors
whose trigger fired, so an order number or a date costs nothing more than that pass. Matches are validated where a pattern alone would catch ordinary
numbers (Luhn for cards, mod 97 for IBANs, a digit count for phones). A match's named group,
where it has one, is what gets replaced (the password of a connection string, the token after
`Bearer`).

Why not a detector library: presidio needs a spaCy model and runs per-language NLP; detect-secrets
runs dozens of plugins per line. Both cost more per value than serve spends on a whole span.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["DETECTORS", "Detector"]


@dataclass(frozen=True)
class Detector:
    """One kind of sensitive value: when to look, how to find it, how to confirm a match."""

    name: str
    pattern: re.Pattern[str]
    trigger: str
    """A pattern (RE2 syntax, no lookaround) that every match of `pattern` contains."""
    valid: Callable[[str], bool] | None = None

    def spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of each confirmed match, the named group where the pattern has one."""
        found = []
        for match in self.pattern.finditer(text):
            start, end = _secret_span(match)
            if self.valid is None or self.valid(text[start:end]):
                found.append((start, end))
        return found


def _secret_span(match: re.Match[str]) -> tuple[int, int]:
    """The named group that matched (the secret part), else the whole match."""
    for name in match.re.groupindex:
        if match.group(name) is not None:
            return match.span(name)
    return match.span()


def _luhn(candidate: str) -> bool:
    """A payment card number: 13-19 digits, a card network's leading digit, the Luhn checksum."""
    digits = [int(c) for c in candidate if c.isdigit()]
    if not 13 <= len(digits) <= 19 or digits[0] not in (2, 3, 4, 5, 6):
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_IBAN_COUNTRIES: Final = frozenset(
    "AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE GI GL GR GT HN HR HU IE IL IQ "
    "IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI NL NO OM PK PL PS PT QA RO RS RU SA SC SD SE SI SK SM "
    "SO ST SV TL TN TR UA VA VG XK YE".split()
)


def _iban(candidate: str) -> bool:
    """An IBAN: a country that issues them, 15-34 characters, the mod-97 check."""
    compact = candidate.replace(" ", "")
    if compact[:2] not in _IBAN_COUNTRIES or not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _phone(candidate: str) -> bool:
    return 8 <= sum(c.isdigit() for c in candidate) <= 15


_API_KEY: Final = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"sk-(?:ant-|proj-|svcacct-|admin-|or-v1-)?[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic, OpenRouter, DeepSeek
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|AIza[0-9A-Za-z_-]{35}"  # Google (Gemini, Vertex, Maps)
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|glpat-[A-Za-z0-9_-]{20,}"  # GitHub, GitLab
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|hf_[A-Za-z0-9]{30,}|gsk_[A-Za-z0-9]{40,}|xai-[A-Za-z0-9]{40,}|r8_[A-Za-z0-9]{30,}"  # Hugging Face, Groq, xAI, Replicate
    r"|pplx-[A-Za-z0-9]{40,}|nvapi-[A-Za-z0-9_-]{40,}"  # Perplexity, NVIDIA
    r")",
    re.ASCII,
)
_PASSWORD_WORDS: Final = r"password|passwd|pwd|accountkey|sharedaccesskey|aws_secret_access_key|client_secret"
_PHONE: Final = re.compile(
    r"(?<![\w+.-])\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?![\w.-])"  # international: +44 20 7946 0958
    r"|(?<![\w.-])(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]|\.\d)",  # North American: (415) 555-0100
    re.ASCII,
)

DETECTORS: Final = (
    Detector("private_key", re.compile(r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)", re.S), "PRIVATE KEY"),
    Detector("connection_string", re.compile(r"://[^\s:/@\"'<>]+:(?P<secret>[^\s@/\"'<>]+)@", re.ASCII), "://"),  # scheme://user:password@host
    Detector("password", re.compile(rf"(?i:{_PASSWORD_WORDS})\s*[=:]\s*[\"']?(?P<secret>[^\s\"';,&]{{4,}})", re.ASCII),
             f"(?i){_PASSWORD_WORDS}"),  # Password=...; AccountKey=...
    Detector("bearer_token", re.compile(r"(?i:bearer)\s+(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)"
                                        r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", re.ASCII),  # and JWTs
             "(?i:bearer)|eyJ"),
    Detector("api_key", _API_KEY, "sk[-_]|rk_|AIza|A[KS]IA|gh[pousr]_|github_pat_|glpat-|xox[abposr]-|hf_|xai-|r8_|pplx-|nvapi-"),
    Detector("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "@[A-Za-z0-9-]+\\."),
    Detector("iban", re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])", re.ASCII),
             "[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2}", _iban),
    Detector("card", re.compile(r"(?<![\d.-])(?:\d[ -]?){12,18}\d(?![\d-]|\.\d)", re.ASCII), "[0-9](?:[ -]?[0-9]){12}", _luhn),
    Detector("phone", _PHONE, r"\+[1-9][0-9]{0,2}[ .-]?\(?[0-9]|(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}", _phone),
)  # fmt: skip
"""In the order they run: secrets before personal data (a key's digits are not a phone number),
IBANs before cards and phones (theirs are not either)."""
