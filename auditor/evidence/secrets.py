"""Credential patterns: HF, OpenAI, AWS, GitHub, Slack, private key blocks, and generic
`*_TOKEN=` / `*_KEY=` assignments whose values look random (high entropy)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("OpenAI API key", re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}\b")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b")),
    ("private key block", re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")),
    ("Anthropic API key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b")),
    ("npm token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("Stripe key", re.compile(r"\b[sr]k_live_[A-Za-z0-9]{20,}\b")),
)
_ASSIGNMENT = re.compile(
    r"\b(?P<name>[A-Za-z0-9_]*(?:TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY|_KEY))\b[\"']?\s*[:=]\s*[\"']?"
    r"(?P<value>[A-Za-z0-9/+_.=-]{20,})",
    re.I,
)
MIN_ENTROPY = 3.5
# Literal fragments every pattern contains (upper-cased): a line holding none of them holds no finding.
PREFILTER = (b"HF_", b"SK-", b"AKIA", b"ASIA", b"GHP_", b"GHO_", b"GHU_", b"GHS_", b"GHR_", b"GITHUB_PAT_", b"XOX",
             b"-----BEGIN", b"TOKEN", b"SECRET", b"PASSWORD", b"_KEY", b"AIZA", b"GLPAT-", b"NPM_", b"K_LIVE_")
PREFILTER_BYTES = re.compile(b"|".join(re.escape(p) for p in PREFILTER), re.I)
PREFILTER_TEXT = re.compile(PREFILTER_BYTES.pattern.decode(), re.I)


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


def mask(secret: str) -> str:
    """Show only enough of a secret to find it: `hf_Ab…(37 chars)`."""
    return f"{secret[:5]}…({len(secret)} chars)"


@dataclass(frozen=True)
class SecretFinding:
    """A credential-looking string at path:line."""

    kind: str
    path: str
    line: int
    masked: str


# What a name says about its value: API keys, tokens, secrets and passwords are credentials whatever their
# alphabet (a W&B key is 40 hex digits); a bare `*_key` (cache_key, sort_key, dataset_key) is only when its value
# has a credential's shape.
_STRONG_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|AUTH", re.I)
_HEX = re.compile(r"(?:sha(?:1|256|512)[:-])?[0-9a-f]+\Z", re.I)
_UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\Z", re.I)
_MASKED = re.compile(r"\*{3,}|x{4,}|X{4,}|REDACTED|MASKED|HIDDEN|\.\.\.|…|<[^>]*>|\$\{[^}]*\}|changeme|example",
                     re.I)
_MIXED = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"))


def looks_like_credential(name: str, value: str) -> bool:
    """Whether `name = value` holds a credential, by context and shape rather than entropy alone: a masked
    value, a placeholder, a UUID or a run id is none; a digest (hex) is one only under a name that says key,
    token or secret; a bare `*_key` needs a random-looking mix of letters and digits."""
    if _MASKED.search(value) or _UUID.match(value) or entropy(value) < MIN_ENTROPY:
        return False
    if _STRONG_NAME.search(name):
        return True
    if _HEX.match(value) or "/" in value or "." in value:  # a digest, a cache key, a path or a file name
        return False
    return all(p.search(value) for p in _MIXED) and entropy(value) >= 4.0


def scan_lines(lines: Iterable[str], path: str) -> list[SecretFinding]:
    """Every credential-looking string in `lines`."""
    return scan_numbered(enumerate(lines, start=1), path)


def scan_numbered(lines: Iterable[tuple[int, str]], path: str) -> list[SecretFinding]:
    """Every credential-looking string in (line number, text) pairs."""
    found: list[SecretFinding] = []
    for number, line in lines:
        for kind, pattern in PATTERNS:
            for match in pattern.finditer(line):
                found.append(SecretFinding(kind, path, number, mask(match.group(0))))
        for match in _ASSIGNMENT.finditer(line):
            value = match.group("value")
            if looks_like_credential(match.group("name"), value) and not any(f.line == number for f in found):
                found.append(SecretFinding(f"credential in {match.group('name')}", path, number, mask(value)))
    return found


REDACTED = "[REDACTED]"
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY|_KEY$|CREDENTIAL", re.I)


def redact(text: str) -> str:
    """`text` with every credential-looking value replaced by [REDACTED] (the same patterns verify detects)."""
    for _, pattern in PATTERNS:
        text = pattern.sub(REDACTED, text)

    def assignment(match: re.Match[str]) -> str:
        value = match.group("value")
        return match.group(0).replace(value, REDACTED) if looks_like_credential(match.group("name"), value) \
            else match.group(0)

    return _ASSIGNMENT.sub(assignment, text)


def redact_env(name: str, value: str) -> str:
    """An environment variable's value as it may be recorded: withheld entirely when the name says secret."""
    return REDACTED if _SECRET_NAME.search(name) else redact(value)
