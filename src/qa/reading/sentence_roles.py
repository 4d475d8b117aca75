"""What each sentence of a chunk says, by its shape and cue words: a reason, a date, a number, a
proposal; a list's lead-in or one of its items; a continuation of the sentence before it.

The answer reads these to put first the sentence that answers the question's kind (answering/
answers.py). They depend only on the chunk's text and sentence spans, so they can be computed once
per chunk, at build time or on first use, and hold for any text: signals a reader of any document
would use (causal connectives, dates, numerals, modal and proposal verbs, a colon ending a line, the
shape of a list item), none written for one question or one document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Span = tuple[int, int]


@dataclass(frozen=True)
class SentenceRole:
    reason: bool = False  # gives a cause or an aim: "because", "due to", "so that", "which is why"
    date: bool = False  # names a year, a decade or century, or a day of a month
    number: bool = False  # holds a count or an amount, not only a year: "435", "2 million", "thirteen"
    proposal: bool = False  # says what should be done: "should", "must", "recommends", "proposes"
    lead_in: bool = False  # ends in a colon: it announces what follows
    item: bool = False  # one item of the list a lead-in announces
    items_end: int = -1  # for a lead-in: index of its last item (-1: none in the chunk)
    continues: bool = False  # carries on the sentence before it, in the same paragraph
    means: bool = False  # says how: "by doing", "through offering", "using", "can", "should"


# Each sentence is read once into its words (lower case, punctuation dropped); the cues are sets of
# words and phrases looked up in them: a regular expression per cue over the raw text cost about four
# times as much.
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")

def _phrases(*phrases: str) -> re.Pattern:
    """One search for any of the phrases (each padded with spaces, as `_Cues.joined` is)."""
    return re.compile("|".join(re.escape(p) for p in phrases))


# Causal and purpose connectives. "since" counts unless a time follows it ("since 1987", "since the
# 1990s", "since then"); "as" is too ambiguous to count at all.
_REASON_WORDS = frozenset("because therefore hence caused causes reason reasons motivated prompted".split())
_REASON_PHRASES = _phrases(*(f" {p} " for p in (
    "due to", "owing to", "thanks to", "as a result", "as a consequence", "result of", "results of",
    "resulted from", "resulting from", "so that", "so as to", "in order to", "in order that", "for fear",
    "in protest", "in response", "led to", "leads to", "lead to", "which is why", "that is why", "this is why",
    "aim at", "aims at", "aimed at", "aim to", "aims to", "aimed to", "to avoid", "to prevent", "to encourage",
    "to ensure")))
_MONTHS = ("january february march april may june july august september october november december "
           "jan feb mar apr jun jul aug sep sept oct nov dec").split()
_TIME_AFTER_SINCE = frozenset(["then", "early", "late", "at", "about", "around", *_MONTHS])
_PERIOD_PARTS = frozenset("early late mid middle end start beginning turn war".split())
# A month or weekday named alone ("in June", "the first Saturday of June") is a time; with its capital
# only, so that "march" and "may" the verbs, and "May", which opens many sentences, do not count.
_TIME_NAMES = frozenset("January February March April June July August September October November December "
                        "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split())
_ORDINALS = frozenset("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
                      "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth "
                      "twentieth".split())
_ERAS = frozenset("bc bce ad ce".split())
_NUMBER_WORDS = frozenset(
    "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred hundreds thousand "
    "thousands million millions billion billions dozen dozens half quarter".split())
_PROPOSAL_WORDS = frozenset("should must recommend recommends recommended recommendation recommendations "
                            "propose proposes proposed proposal proposals urge urges advise advises suggest "
                            "suggests".split())
_PROPOSAL_PHRASES = _phrases(" ought to ", " need to ", " needs to ", " call for ", " calls for ", " call on ",
                             " calls on ")
# A means is "by doing" ("by building capacity", "through offering"), not any "by": "formed by the
# eruption", "written by" and "by the end of the century" name an agent or a time; "need" counts as
# "need to", not "the need for". Lower-case "-ing" only, so "by Beijing" is not a means.
_MEANS_WORDS = frozenset("should must can could would using".split())
_MEANS_PHRASES = _phrases(" need to ", " needs to ")
_MEANS_BEFORE = frozenset(["by", "through", "via"])
# A sentence that opens with one of these, or says what would or will happen, carries on the one before
# it: "It would be raised...", "The payment would be set...", "In doing so, ...", "This means...".
_CONTINUING_OPENINGS = frozenset("it its this these that those they their such also then instead otherwise "
                                 "first second third finally moreover furthermore thus so".split())
_CONTINUING_PHRASES = _phrases(" doing so ", " in doing so ", " to do so ", " to that end ", " for this ",
                               " in addition ", " in particular ", " for example ", " for instance ")
_MODALS = frozenset("would will could can should must may".split())
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_LIST_MARKER = re.compile(r"(?:[-*•◦▪‣–]|\d{1,3}[.)]|\(?[a-z][.)])\s+\S")
# A list item without a marker (Markdown's markers do not reach the text): it opens in lower case
# or ends as a list item does, with a semicolon or a comma; or it is short.
_ITEM_WORDS = 25


def sentence_roles(text: str, spans: tuple[Span, ...] | list[Span]) -> tuple[SentenceRole, ...]:
    """The role of each sentence of `text` (`spans` are offsets within `text`, in order).

    A lead-in's items are the sentences after it that each start a line of their own and look like
    list items (a marker, a lower-case start, a final ';' or ',', or at most 25 words), up to the first
    that does not. A sentence continues the one before it when no blank line separates them and it
    opens with a pronoun or connective, or speaks in the conditional or future.
    """
    sentences = [text[a:b] for a, b in spans]
    gaps = [text[spans[i - 1][1]:spans[i][0]] if i else "" for i in range(len(spans))]
    lead_ins = [s.rstrip().endswith(":") for s in sentences]
    items_end = [-1] * len(spans)
    item = [False] * len(spans)
    for i, is_lead_in in enumerate(lead_ins):
        if not is_lead_in:
            continue
        j = i + 1
        while j < len(spans) and "\n" in gaps[j] and not lead_ins[j] and _item_shaped(sentences[j]):
            item[j] = True
            items_end[i] = j
            j += 1
    roles = []
    for i, sentence in enumerate(sentences):
        cues = _Cues(sentence)
        roles.append(SentenceRole(
            reason=cues.reason(), date=cues.date(), number=cues.number(), proposal=cues.proposal(),
            lead_in=lead_ins[i], item=item[i], items_end=items_end[i], means=cues.means(),
            continues=(i > 0 and not _BLANK_LINE.search(gaps[i]) and not lead_ins[i - 1] and not lead_ins[i]
                       and cues.continuing()),
        ))
    return tuple(roles)


class _Cues:
    """One sentence's words, as the cue tests look them up: sets for words, one search per group of
    phrases, and a look at the few numerals only."""

    def __init__(self, sentence: str) -> None:
        self.tokens = _TOKEN.findall(sentence)
        self.words = [t.lower() for t in self.tokens]
        self.set = frozenset(self.words)
        self.joined = f" {' '.join(self.words)} "
        self.numerals = [n for n, w in enumerate(self.words) if w[:1].isdigit()]

    def _has(self, words: frozenset, phrases: re.Pattern | None = None) -> bool:
        return not self.set.isdisjoint(words) or (phrases is not None and phrases.search(self.joined) is not None)

    def reason(self) -> bool:
        if self._has(_REASON_WORDS, _REASON_PHRASES):
            return True
        return "since" in self.set and any(
            w == "since" and not self._time_follows(n + 1) for n, w in enumerate(self.words))

    def _time_follows(self, n: int) -> bool:
        after = self.words[n:n + 2]
        if not after:
            return False
        if after[0] == "the":  # "since the 1990s", "since the end of the war"
            return len(after) > 1 and (after[1][:1].isdigit() or after[1] in _PERIOD_PARTS)
        return after[0][:1].isdigit() or after[0] in _TIME_AFTER_SINCE

    def date(self) -> bool:
        words = self.words
        if not _TIME_NAMES.isdisjoint(self.tokens):
            return True
        for n in self.numerals:
            w = words[n]
            if _is_year(w):
                return True
            if w.isdigit() and len(w) <= 2 and ((n and words[n - 1] in _MONTHS)
                                                or (n + 1 < len(words) and words[n + 1] in _MONTHS)):
                return True  # "June 2", "2 June"
            if n + 1 < len(words) and words[n + 1] in _ERAS:
                return True  # "300 BC"
        if "century" in self.set:
            return any(w == "century" and n and (words[n - 1] in _ORDINALS or _is_ordinal_numeral(words[n - 1]))
                       for n, w in enumerate(words))
        return False

    def number(self) -> bool:
        """A count or amount: a numeral that is not a year ("1,200", "435", "3 per cent"), or a number word.
        A numeral right after a capitalised word names something ("ISO 7812", "Article 11", "Stage 3")."""
        if not self.set.isdisjoint(_NUMBER_WORDS):
            return True
        return any(not _is_year(self.words[n]) and not _is_ordinal_numeral(self.words[n])
                   and not (n > 1 and self.tokens[n - 1][:1].isupper()) for n in self.numerals)

    def proposal(self) -> bool:
        return self._has(_PROPOSAL_WORDS, _PROPOSAL_PHRASES)

    def means(self) -> bool:
        if self._has(_MEANS_WORDS, _MEANS_PHRASES):
            return True
        return not self.set.isdisjoint(_MEANS_BEFORE) and any(
            w in _MEANS_BEFORE and n + 1 < len(self.tokens) and self.tokens[n + 1].endswith("ing")
            and self.tokens[n + 1].islower() for n, w in enumerate(self.words))

    def continuing(self) -> bool:
        return bool(self.words) and (self.words[0] in _CONTINUING_OPENINGS
                                     or _CONTINUING_PHRASES.match(self.joined) is not None
                                     or not self.set.isdisjoint(_MODALS))


def _is_year(word: str) -> bool:
    """"1987", "1990s": a year or decade from 1000 to 2099."""
    digits = word[:-1] if word.endswith("s") else word
    return len(digits) == 4 and digits.isdigit() and 1000 <= int(digits) <= 2099


def _is_ordinal_numeral(word: str) -> bool:
    return word[:-2].isdigit() and word[-2:] in ("st", "nd", "rd", "th")


def _item_shaped(sentence: str) -> bool:
    flat = " ".join(sentence.split())
    return bool(_LIST_MARKER.match(flat) or flat[:1].islower() or flat.endswith((";", ",", "; and", "; or"))
                or len(flat.split()) <= _ITEM_WORDS)
