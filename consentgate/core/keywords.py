"""Classify an inbound SMS reply: opt-out, opt-in, help, wrong number or nothing.

Pure: text and rules in, a ``Classification`` out. The rules (keyword families and free-text
phrases) come from the policy; ``DEFAULT_US_KEYWORDS`` holds the lists of the default US policy.

Order of the checks, first hit wins:

1. Whole-message keywords (opt-out, then opt-in, then help) on the normalised text, also when
   the keyword is repeated ("stop stop") or spelled out ("S T O P"), and a message made of
   opt-out keywords only ("STOP END", "CANCEL ALL").  CTIA Messaging Principles 5.1.3 and 47 CFR
   64.1200(a)(10) name these words; they must never be missed.
2. Wrong-number phrases ("wrong number", "new phone who dis"): an opt-out that also tells us the
   number was reassigned, so it outranks the generic free-text phrases.
3. Free-text opt-out phrases.  FCC 24-24 lets a consumer revoke "by any reasonable means", so a
   reply a reasonable person reads as "stop" counts even when it is not a keyword.
4. A strong opt-out keyword standing as its own clause, wrapped in politeness, other keywords or
   numbers ("please stop", "STOP!! who is this?", "STOP HELP", "STOP 2"), or opening a short
   clause ("Stop John", "STOP CALLING") unless it has an object of its own ("stop the shipment").
5. One-edit typos of the regulatory keywords ("STIP", "stopp", "sotp", "unsubscibe") and
   held-down letters ("STOPPPP").

Only 2-5 give ``FREE_TEXT_OPT_OUT`` / ``WRONG_NUMBER``; opt-in and help stay whole-message only,
because restoring consent needs an unambiguous reply.

Phrases are matched on whole words, accents folded ("no mas" = "no más") and English
contractions expanded ("don't" = "do not"), clause by clause.  A phrase in the policy may hold
``...`` for a gap of up to three words, never spanning "by", "in", "over" or "and" ("stop ...
texting" matches "stop f***ing texting" but not "stop by and text me"), and a word ending in
``*`` matches any ending ("text*" = texts, texting).  A free-text phrase does not count after a
negation ("don't stop texting me"), in a question about the past ("why did you stop texting
me?") or when followed by "you" ("sorry, I'll stop texting you").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache


class Intent(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    FREE_TEXT_OPT_OUT = "free_text_opt_out"
    WRONG_NUMBER = "wrong_number"
    NONE = "none"


OPT_OUT_INTENTS = frozenset({Intent.OPT_OUT, Intent.FREE_TEXT_OPT_OUT, Intent.WRONG_NUMBER})


@dataclass(frozen=True)
class KeywordRules:
    """The keyword families and free-text phrases of a policy."""

    opt_out: frozenset[str]
    opt_in: frozenset[str]
    help: frozenset[str]
    free_text_opt_out: tuple[str, ...] = ()
    wrong_number: tuple[str, ...] = ()


@dataclass(frozen=True)
class Classification:
    """What a reply means, the normalised text and the keyword or phrase that decided it."""

    intent: Intent
    normalised: str
    matched: str | None = None

    @property
    def is_opt_out(self) -> bool:
        """True for every intent that revokes consent (keyword, free text, wrong number)."""
        return self.intent in OPT_OUT_INTENTS


# The default US lists; policies/default.yaml carries the same lists.
# fmt: off
DEFAULT_US_KEYWORDS = KeywordRules(
    # CTIA Messaging Principles 5.1.3 and 47 CFR 64.1200(a)(10) name the first eleven; the rest
    # are common single-word opt-outs (Spanish, French, German) and plain "remove"/"unsub".
    opt_out=frozenset(
        {
            "stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "revoke",
            "optout", "opt out", "arret",
            "unsub", "remove", "stopp", "arrete", "arretez", "alto", "parar", "basta", "cancelar",
            "baja",
        }
    ),
    opt_in=frozenset({"start", "unstop", "yes"}),
    help=frozenset({"help", "info"}),
    free_text_opt_out=(
        # English: stop/quit/cease + the messages ("*" matches any ending: texts, texting)
        "stop ... text*", "stop ... messag*", "stop ... msg*", "stop ... sms", "stop ... contact*",
        "stop ... call* me", "stop ... sending me", "stop sending these", "stop sending this",
        "stop sending them", "stop ... email*", "stop ... bother*",
        "stop ... harass*", "stop ... spam*",
        "quit ... text*", "quit ... messag*", "quit ... msg*", "quit ... sending me", "quit ... contact*",
        "quit ... bother*",
        "cease and desist", "cease ... text*", "cease ... contact*",
        "no more ... text*", "no more ... messag*", "no more ... msg*", "no more ... sms",
        "no more ... spam", "enough ... text*", "enough ... messag*",
        # "do not ..." (contractions are expanded before matching)
        "do not text", "do not ever text", "do not message", "do not msg", "do not contact",
        "do not call", "do not send ... text*", "do not send ... messag*", "do not send ... sms",
        "do not want ... text*", "do not want ... messag*", "do not want ... msg*",
        "do not want to receive", "never ... text me", "never ... contact me", "never ... message me",
        "never ... call me",
        # lists and numbers
        "remove me", "remove us", "remove* ... number", "remove* ... name", "removed from ... list*", "take me off",
        "take us off", "take ... number off", "taken off ... list*", "delete ... number", "delete me",
        "lose my number", "erase ... number", "opt me out", "opt out", "optout", "unsubscrib*",
        "unsub",
        # refusals and no consent given
        "leave me alone", "not interested", "no longer interested", "go away", "fuck off",
        "f off", "piss off", "get lost", "never signed up", "did not sign up",
        "never asked for", "did not ask for", "never opted in", "did not opt in",
        # consent and subscriptions named outright, and stop said last
        "revok* ... consent*", "withdraw* ... consent*", "cancel* ... subscription*", "end ... subscription*",
        "stop ... subscription*", "make it stop", "want ... to stop",
        # Spanish
        "no más", "no me ... mensajes", "no me escriban", "no me escribas", "no me contacten",
        "no me llamen", "ya no ... mensajes", "no quiero ... mensajes", "no quiero recibir",
        "deja de ... mensajes", "dejen de ... mensajes", "para de ... mensajes",
        "paren de ... mensajes", "deja de escribirme",
        "dejen de escribirme", "deja de enviarme", "dejen de enviarme", "deja de mandarme",
        "dejen de mandarme", "de baja", "bórrame", "bórrenme", "elimíname", "elimínenme",
        "sácame de", "sáquenme de", "quítame de", "quítenme de", "no me interesa",
        "cancelar suscripción",
        "no ... más", "basta de", "ya basta", "bájame", "bájenme", "dar de baja", "eliminar mi número",
        "eliminen mi número", "borrar mi número", "borren mi número", "desuscrib*", "no me molest*", "no molesten",
        "no estoy interesad*", "no me manden", "no me envíen", "no envíen", "no manden",
        # French, German, Portuguese, Italian
        "arrêtez", "arrête de", "désabonner", "désinscrire", "ne plus recevoir",
        "plus de messages", "plus de sms", "pas intéressé",
        "abmelden", "keine ... nachrichten", "keine sms", "keine werbung",
        "pare de ... mensagens", "pare de enviar", "não quero ... mensagens", "descadastrar",
        "cancellami", "non voglio ... messaggi",
    ),
    wrong_number=(
        "wrong number", "wrong phone", "wrong person", "wrong guy", "wrong girl", "wrong lady",
        "wrong man", "not my number", "no longer my number", "new number who", "new phone who",
        "got this number", "this number is new", "recycled number", "number was reassigned",
        "no one by that name", "nobody by that name", "no one here by", "nobody here by",
        "does not live here", "no longer lives here", "belongs to someone else",
        "someone elses number",
        "número equivocado", "número incorrecto", "equivocó de número", "equivocaste de número",
        "mauvais numéro", "falsche nummer",
    ),
)

# Typos are tolerated only on the regulatory keywords: their one-edit neighbours are known and
# the real words among them are excluded below ("step", "shop", "quite", "cancer", "arrest"...).
_TYPO_TOLERANT = frozenset(
    {"stop", "stopall", "stop all", "unsubscribe", "cancel", "quit", "revoke", "optout", "opt out",
     "arret"}
)
_NEAR_MISS_WORDS = frozenset(
    {
        "step", "stomp", "stoop", "atop", "shop", "slop", "stow", "swop", "top", "sop", "stoa",
        "quiz", "quip", "quid", "quilt", "quite", "quiet", "quint", "suit",
        "cancer", "evoke", "arrest", "barret",
    }
)
# Keywords that mean "stop" even inside a polite sentence. CANCEL, END and QUIT count only as
# the whole message: "cancel please" usually answers an appointment reminder.
_STRONG = frozenset(
    {"stop", "stopall", "stop all", "unsubscribe", "unsub", "revoke", "optout", "opt out", "arret",
     "arrete", "arretez", "stopp", "alto", "basta", "parar"}
)
# Words that do not change what a bare keyword means ("STOP please", "ok stop now").
_FILLERS = frozenset({
    "please", "pls", "plz", "plez", "plse", "pleas", "now", "it", "thanks", "thank", "you", "thx",
    "ty", "ok", "okay", "k", "just", "already", "immediately", "asap", "right", "away", "me",
    "sir", "maam", "man", "dude", "bro", "omg", "god", "lol", "seriously", "really", "the", "this",
    "these", "texts", "text", "texting", "messages", "message", "msgs", "msg", "sms", "again",
    "for", "good", "forever", "all", "yes", "yeah", "yep", "no", "nope", "oh", "hey", "hi",
    "hello", "geez", "jeez", "damn", "dammit", "fucking", "freaking", "frickin", "hell", "ffs",
    "wtf", "por", "favor", "ya", "gracias", "si", "merci", "svp", "bitte", "danke",
})
_NEGATIONS = frozenset({"not", "never"})
_OBJECTS = frozenset({"the", "a", "an", "my", "our", "your", "his", "her", "their", "that", "at", "to", "on"})
_CONTRACTIONS = {
    "dont": "do not", "doesnt": "does not", "didnt": "did not", "wont": "will not",
    "cant": "can not", "cannot": "can not", "isnt": "is not", "arent": "are not",
    "wasnt": "was not", "shouldnt": "should not", "wouldnt": "would not", "couldnt": "could not",
    "havent": "have not", "aint": "am not", "im": "i am",
}
# fmt: on
_HELD_LETTER = re.compile(r"(\w)\1{2,}")
_GAP = "..."
_MAX_GAP_WORDS = 3
# A gap never spans these: "stop by and text me" is a visit, not a request to stop texting.
_GAP_STOPPERS = ("by", "in", "over", "and")

_APOSTROPHES = re.compile("(?<=\\w)['`\u2018\u2019\u02bc](?=\\w)")
_INVISIBLE = ("Cf", "Cc")
_NON_WORD = re.compile(r"[^\w]+|_+")
# Clause breaks: sentence punctuation, dashes (and a hyphen that stands apart from a word, as in
# "STOP - Mary"; "opt-out" stays one), brackets, slashes, emoji and other symbols, line breaks.
_CLAUSE_BREAK = re.compile(
    r"[.!?,;:\n\r…\u2012-\u2015\U0001f000-\U0001faff\u2600-\u27bf()\[\]{}<>/\\|~]+|(?:^|\s)-+|-+(?:\s|$)")


def normalise_text(raw: str) -> str:
    """NFKC, case-fold, drop invisible characters, strip surrounding punctuation/emoji, collapse spaces."""
    text = raw
    for _ in range(8):  # a fixed point: NFKC and case-folding can feed each other
        step = _normalise_once(text)
        if step == text:
            break
        text = step
    return text


def _unstripped(raw: str) -> str:
    """NFKC, case-folded, without invisible characters; surrounding punctuation still there."""
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold())
    # Format and control characters (zero-width spaces, joiners, BOM) hide inside "S\u200bTOP".
    return "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in _INVISIBLE
    )


def _normalise_once(raw: str) -> str:
    text = _unstripped(raw)
    start, end = 0, len(text)
    while start < end and not _is_word_char(text[start]):
        start += 1
    while end > start and not _is_word_char(text[end - 1]):
        end -= 1
    return " ".join(text[start:end].split())


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in ("L", "N")


def _fold(text: str) -> str:
    """Normalised text without accents or apostrophes."""
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _APOSTROPHES.sub("", text)


def _tokens(text: str) -> list[str]:
    """Words of an already normalised text, accents folded and English contractions expanded."""
    words: list[str] = []
    for word in _NON_WORD.split(_fold(text)):
        if word:
            words.extend(_CONTRACTIONS.get(word, word).split())
    return words


def _key(text: str) -> str:
    """The form keywords are compared in: folded words joined by single spaces."""
    return " ".join(_tokens(normalise_text(text)))


@dataclass(frozen=True)
class _Phrase:
    source: str
    pattern: re.Pattern[str]
    first: str  # the first word (a prefix when the phrase wrote it with '*'): a cheap pre-check
    first_is_prefix: bool

    def may_occur_in(self, words: frozenset[str]) -> bool:
        """False when the phrase's first word is nowhere in the text, so the regex can be skipped."""
        if self.first_is_prefix:
            return any(w.startswith(self.first) for w in words)
        return self.first in words


@dataclass(frozen=True)
class _Compiled:
    families: tuple[tuple[Intent, dict[str, str]], ...]  # intent, key or compact form -> keyword
    strong: dict[str, str]
    others: frozenset[str]  # one-word keywords of every family but the strong ones: "STOP END", "STOP HELP"
    typo: dict[str, str]  # compact form -> keyword
    strong_typo: dict[str, str]
    wrong_number: tuple[_Phrase, ...]
    free_text: tuple[_Phrase, ...]


def _forms(words: frozenset[str]) -> dict[str, str]:
    forms: dict[str, str] = {}
    for word in sorted(words):
        key = _key(word)
        if key:
            forms.setdefault(key, word)
            forms.setdefault(key.replace(" ", ""), word)
    return forms


def _phrase(source: str) -> _Phrase | None:
    parts = [_phrase_words(part) for part in source.split(_GAP)]
    parts = [p for p in parts if p]
    if not parts:
        return None
    stoppers = "|".join(_GAP_STOPPERS)
    gap = rf"(?: (?!(?:{stoppers})(?: |$))\S+){{0,{_MAX_GAP_WORDS}}} "
    body = gap.join(_words_pattern(p) for p in parts)
    first = parts[0].split()[0]
    return _Phrase(source, re.compile(rf"(?:^| )({body})(?= |$)"), first.rstrip("*"), first.endswith("*"))


def _phrase_words(part: str) -> str:
    """A phrase part in matching form, keeping a trailing '*' (prefix match) on its words."""
    words: list[str] = []
    for word in part.split():
        tokens = _tokens(normalise_text(word))
        if tokens and word.endswith("*"):
            tokens[-1] += "*"
        words.extend(tokens)
    return " ".join(words)


def _words_pattern(words: str) -> str:
    """Words to match literally; a word written with a trailing '*' matches any ending."""
    return " ".join(
        re.escape(w[:-1]) + r"\S*" if w.endswith("*") and len(w) > 1 else re.escape(w) for w in words.split()
    )


@lru_cache(maxsize=32)
def _compile(rules: KeywordRules) -> _Compiled:
    opt_out = _forms(rules.opt_out)
    strong = {k: v for k, v in opt_out.items() if _key(v) in _STRONG}
    typo = {k: v for k, v in opt_out.items() if " " not in k and len(k) >= 4 and _key(v) in _TYPO_TOLERANT}
    families = ((Intent.OPT_OUT, opt_out), (Intent.OPT_IN, _forms(rules.opt_in)), (Intent.HELP, _forms(rules.help)))
    return _Compiled(
        families=families,
        strong=strong,
        others=frozenset(k for _, forms in families for k in forms if " " not in k and k not in strong),
        typo=typo,
        strong_typo={k: v for k, v in typo.items() if k in strong},
        wrong_number=tuple(p for p in map(_phrase, rules.wrong_number) if p),
        free_text=tuple(p for p in map(_phrase, rules.free_text_opt_out) if p),
    )


def classify(raw: str, rules: KeywordRules) -> Classification:
    """Classify one inbound SMS body against the policy's keyword rules."""
    normalised = normalise_text(raw)
    compiled = _compile(rules)
    words = _tokens(normalised)

    for intent, forms in compiled.families:
        keyword = _whole_message(words, forms)
        if keyword is not None:
            return Classification(intent, normalised, keyword)
    # Nothing but opt-out keywords, several of them ("STOP END", "cancel stop", "END ALL").
    keyword = _keywords_only(words, compiled.families[0][1])
    if keyword is not None:
        return Classification(Intent.OPT_OUT, normalised, keyword)

    # Phrases are read clause by clause so a negation does not reach across a sentence break.
    # Surrounding '#' is kept here: "wrong #" is "wrong number".
    clauses = [" ".join(_tokens(c.replace("#", " number "))) for c in _CLAUSE_BREAK.split(_unstripped(raw))]
    for intent, phrases in (
        (Intent.WRONG_NUMBER, compiled.wrong_number),
        (Intent.FREE_TEXT_OPT_OUT, compiled.free_text),
    ):
        phrase = _find_phrase(clauses, phrases, intent is Intent.FREE_TEXT_OPT_OUT)
        if phrase is not None:
            return Classification(intent, normalised, phrase)

    keyword = _keyword_clause(normalised, compiled)
    if keyword is None:
        keyword = _typo(words, compiled.typo)
    if keyword is not None:
        return Classification(Intent.FREE_TEXT_OPT_OUT, normalised, keyword)
    return Classification(Intent.NONE, normalised, None)


def _whole_message(words: list[str], forms: dict[str, str]) -> str | None:
    """The keyword the whole message is: as written, repeated ("stop stop") or spelled out."""
    if not words:
        return None
    candidates = [" ".join(words), " ".join(_unrepeated(words))]
    if all(len(w) == 1 for w in words):  # "S T O P", "s.t.o.p"
        candidates.append("".join(words))
    for candidate in candidates:
        if candidate in forms:
            return forms[candidate]
    return None


def _keywords_only(words: list[str], forms: dict[str, str]) -> str | None:
    """The first keyword of a message made of keywords of one family and nothing else ("all" aside)."""
    rest = [w for w in words if w != "all"]
    first = None
    at = 0
    while at < len(rest):
        for size in range(min(3, len(rest) - at), 0, -1):
            key = " ".join(rest[at:at + size])
            if key in forms:
                first = first or forms[key]
                at += size
                break
        else:
            return None
    return first


def _unrepeated(words: list[str]) -> list[str]:
    """The shortest run of words the message repeats ("opt out opt out" -> "opt out")."""
    for size in range(1, len(words) // 2 + 1):
        if len(words) % size == 0 and words == words[:size] * (len(words) // size):
            return words[:size]
    return words


def _find_phrase(clauses: list[str], phrases: tuple[_Phrase, ...], check_intent: bool) -> str | None:
    words = frozenset(w for clause in clauses for w in clause.split())
    for phrase in phrases:
        if not phrase.may_occur_in(words):
            continue
        for clause in clauses:
            for match in phrase.pattern.finditer(clause):
                before = clause[: match.start(1)].split()
                if not check_intent or _is_request(before, clause[match.end(1) :].split()[:1]):
                    return phrase.source
    return None


def _is_request(before: list[str], after: list[str]) -> bool:
    """False when the words around a phrase turn it into something else than a request to stop."""
    if after == ["you"]:  # "sorry, I'll stop texting you"
        return False
    near = before[-3:]
    if "did" in near and "not" not in near:  # "why did you stop texting me?" asks about the past
        return False
    # "don't stop texting me" negates; the rhetorical "why don't you stop texting me" does not.
    return not (any(w in _NEGATIONS for w in near) and "why" not in before)


def _keyword_clause(normalised: str, compiled: _Compiled) -> str | None:
    """A strong opt-out keyword that is a clause of its own once politeness, other keywords and
    numbers are removed ("STOP please", "STOP HELP", "STOP 2"), or that opens a clause of at most
    two more words ("Stop John", "STOP CALLING", "stop txting me"), unless what follows makes it
    a visit ("stop by") or a negation comes first ("don't stop")."""
    for clause in _CLAUSE_BREAK.split(normalised):
        tokens = _tokens(clause)
        words = [w for w in tokens
                 if w in compiled.strong or not (w in _FILLERS or w in compiled.others or w.isdigit())]
        keyword = (_whole_message(words, compiled.strong) or _typo(words, compiled.strong_typo)
                   or _opening(words, tokens, compiled.strong))
        if keyword is not None:
            return keyword
    return None


def _opening(words: list[str], tokens: list[str], strong: dict[str, str]) -> str | None:
    if not (1 < len(words) <= 3 and words[0] in strong and words[1] not in _GAP_STOPPERS):
        return None
    # "stop the shipment", "stop at the bank": the keyword has an object of its own.
    if _OBJECTS.intersection(tokens[tokens.index(words[0]) + 1:]):
        return None
    return strong[words[0]]


def _typo(words: list[str], typo: dict[str, str]) -> str | None:
    """A regulatory keyword mistyped by one edit (insert, delete, substitute, swap)."""
    if len(words) == 1:
        candidate = words[0]
    elif all(len(w) == 1 for w in words):
        candidate = "".join(words)
    else:
        return None
    if candidate in _NEAR_MISS_WORDS:
        return None
    # A letter held down ("stooop", "STOPPPP"): three or more in a row are one.
    held = _HELD_LETTER.sub(r"\1", candidate)
    if held != candidate and held in typo:
        return typo[held]
    for form, keyword in typo.items():
        if abs(len(form) - len(candidate)) <= 1 and _within_one_edit(candidate, form):
            return keyword
    return None


def _within_one_edit(a: str, b: str) -> bool:
    """Optimal string alignment distance of at most one."""
    if a == b:
        return True
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    if len(long_) - len(short) != 1:
        return False
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


def keyword_sets_overlap(rules: KeywordRules) -> list[str]:
    """Keywords that fall in more than one family (compared as the classifier compares them)."""
    families = {"opt_out": rules.opt_out, "opt_in": rules.opt_in, "help": rules.help}
    owners: dict[str, set[str]] = {}
    for family, words in families.items():
        for form in _forms(words):
            owners.setdefault(form, set()).add(family)
    clashing = {form for form, names in owners.items() if len(names) > 1}
    return sorted(
        {
            word
            for words in families.values()
            for word in words
            if {_key(word), _key(word).replace(" ", "")} & clashing
        }
    )
