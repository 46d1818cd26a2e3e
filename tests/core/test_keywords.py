"""Classification of inbound SMS replies: keywords, free text, wrong numbers, the labelled corpus."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.core.keywords import (
    DEFAULT_US_KEYWORDS,
    Intent,
    KeywordRules,
    classify,
    keyword_sets_overlap,
    normalise_text,
)
from consentgate.core.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "sms_replies.csv"
LABELS = ("opt_out", "opt_in", "help", "wrong_number", "none")

# CTIA Messaging Principles 5.1.3 and 47 CFR 64.1200(a)(10): these may never be missed.
REGULATORY_KEYWORDS = (
    "STOP",
    "QUIT",
    "END",
    "REVOKE",
    "OPT OUT",
    "CANCEL",
    "UNSUBSCRIBE",
    "STOPALL",
    "STOP ALL",
    "OPTOUT",
    "ARRET",
)
OPT_OUT_INTENTS = {Intent.OPT_OUT, Intent.FREE_TEXT_OPT_OUT, Intent.WRONG_NUMBER}
LABEL_OF = {
    Intent.OPT_OUT: "opt_out",
    Intent.FREE_TEXT_OPT_OUT: "opt_out",
    Intent.WRONG_NUMBER: "wrong_number",
    Intent.OPT_IN: "opt_in",
    Intent.HELP: "help",
    Intent.NONE: "none",
}


def _renderings(keyword: str) -> list[str]:
    cases = {keyword, keyword.lower(), keyword.title(), keyword.capitalize()}
    cases.add("".join(c.lower() if i % 2 else c for i, c in enumerate(keyword)))  # "StOp"
    decorated = []
    for case in cases:
        decorated += [
            case,
            f"{case}.",
            f"{case}!",
            f"{case}!!!",
            f"{case}?",
            f" {case} ",
            f"\n{case}\n",
            f"\t{case}",
            f'"{case}"',
            f"*{case}*",
            f"{case}…",
            f"{case} 🛑",
            f"🛑{case}🛑",
            f"{case} 🙏",
            f"{case}\u00a0",
            f"({case})",
            f"{case}!!! 😡",
            f"-{case}-",
            f"{case} {case}",
            f"{case}. {case}.",
            f"{case}\u200b",
        ]
    # Full-width letters (NFKC folds them) and one zero-width space hidden inside.
    decorated.append("".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in keyword))
    decorated.append(keyword[:2] + "\u200b" + keyword[2:])
    return decorated


def test_every_regulatory_keyword_in_every_rendering_is_an_opt_out() -> None:
    missed = [
        text
        for keyword in REGULATORY_KEYWORDS
        for text in _renderings(keyword)
        if classify(text, DEFAULT_US_KEYWORDS).intent is not Intent.OPT_OUT
    ]
    assert missed == []


def test_accented_and_spelled_out_forms_are_keyword_opt_outs() -> None:
    for text in ("Arrêt", "ARRÊT!", "arrêt", "S T O P", "s.t.o.p", "Opt-Out", "opt-out."):
        assert classify(text, DEFAULT_US_KEYWORDS).intent is Intent.OPT_OUT, text


def test_the_default_policy_file_keeps_every_regulatory_keyword() -> None:
    sms = load_policy(ROOT / "policies" / "default.yaml").policy.sms
    rules = KeywordRules(
        opt_out=frozenset(sms.keywords.opt_out),
        opt_in=frozenset(sms.keywords.opt_in),
        help=frozenset(sms.keywords.help),
        free_text_opt_out=tuple(sms.free_text_opt_out),
        wrong_number=tuple(sms.wrong_number),
    )
    missed = [
        text
        for keyword in REGULATORY_KEYWORDS
        for text in _renderings(keyword)
        if classify(text, rules).intent is not Intent.OPT_OUT
    ]
    assert missed == []


def test_keyword_match_reports_the_normalised_text_and_the_keyword() -> None:
    result = classify("  STOP!!! 🛑 ", DEFAULT_US_KEYWORDS)
    assert (result.intent, result.normalised, result.matched) == (Intent.OPT_OUT, "stop", "stop")
    assert result.is_opt_out


def test_opt_in_and_help_match_the_whole_message_only() -> None:
    rules = DEFAULT_US_KEYWORDS
    assert classify("Yes!", rules).intent is Intent.OPT_IN
    assert classify("START", rules).intent is Intent.OPT_IN
    assert classify("unstop", rules).intent is Intent.OPT_IN
    assert classify("HELP?", rules).intent is Intent.HELP
    assert classify("info", rules).intent is Intent.HELP
    assert classify("Yes please send more", rules).intent is Intent.NONE
    assert classify("I need help with my order", rules).intent is Intent.NONE
    assert classify("What time does it start?", rules).intent is Intent.NONE


@pytest.mark.parametrize(
    "text",
    [
        "Please stop texting me",
        "remove me from your list",
        "Don't text me anymore",
        "take me off",
        "unsubscribe me",
        "no más",
        "No mas mensajes",
        "stop f***ing texting me",
        "I'm not interested",
        "why don't you stop texting me",
        "Please stop. Thanks",
        "STOP!! who is this?",
    ],
)
def test_free_text_a_reasonable_person_reads_as_stop_revokes(text: str) -> None:
    """FCC 24-24: revocation by any reasonable means, recorded as free text."""
    assert classify(text, DEFAULT_US_KEYWORDS).intent is Intent.FREE_TEXT_OPT_OUT


@pytest.mark.parametrize(
    "text",
    [
        "can I stop by tomorrow?",
        "what time does the store close?",
        "don't stop the deliveries",
        "yes please send more",
        "I will stop by the office",
        "stop sign on 5th",
        "non-stop flights?",
        "Don't stop texting me, I love the deals",
        "Please don't remove me",
        "Sorry, I'll stop texting you",
        "Why did you stop texting me?",
        "Can you stop by and text me when you're outside?",
        "Cancel my appointment please",
        "I quit my job",
        "the end of the month works",
    ],
)
def test_mentions_of_stop_that_are_not_requests_change_nothing(text: str) -> None:
    assert classify(text, DEFAULT_US_KEYWORDS).intent is Intent.NONE


@pytest.mark.parametrize(
    "text",
    [
        "STOP END", "STOP QUIT", "CANCEL STOP", "STOP/END", "ALTO STOP", "STOP STOPALL", "CANCEL ALL", "END ALL",
        "STOP HELP", "HELP STOP", "STOP - Mary", "STOP -John", "STOP (John)", "Stop John", "STOP 2", "STOP <3",
        "STOP CALLING", "STOP EVERYTHING", "STOP ALL COMMUNICATION", "stop txting me", "STOP TXT", "STOPPPP",
        "stooop", "I revoke my consent", "I withdraw my consent", "I want you to stop", "Make it stop",
        "Cancel my subscription", "please remove my name and number",
        "No envíen más mensajes", "No me manden más", "Basta de mensajes", "Bájame de la lista",
        "Eliminar mi número", "Desuscribirme", "No me molesten", "No estoy interesada",
    ],
)
def test_an_opt_out_keyword_in_company_is_still_an_opt_out(text: str) -> None:
    # Another keyword, a name, a number or a sign-off next to STOP does not hide it; neither do
    # the FCC's own words ("revoke my consent") or a held-down letter.
    assert classify(text, DEFAULT_US_KEYWORDS).is_opt_out, text


@pytest.mark.parametrize(
    "text",
    ["Please stop the shipment, I ordered the wrong size", "Need to stop at the bank first",
     "Can you stop the delivery until Monday?", "I don't want you to stop", "Cancel the 3pm, I will call you",
     "End of the day works for me"],
)
def test_a_keyword_with_an_object_of_its_own_is_not_an_opt_out(text: str) -> None:
    assert classify(text, DEFAULT_US_KEYWORDS).intent is Intent.NONE


def test_cancel_end_and_quit_count_only_as_the_whole_message() -> None:
    for word in ("cancel", "end", "quit"):
        assert classify(word.upper(), DEFAULT_US_KEYWORDS).intent is Intent.OPT_OUT
        assert classify(f"{word} please", DEFAULT_US_KEYWORDS).intent is Intent.NONE
    assert classify("stop please", DEFAULT_US_KEYWORDS).intent is Intent.FREE_TEXT_OPT_OUT


@pytest.mark.parametrize(
    "text",
    [
        "STIP",
        "sstop",
        "sotp",
        "Stpo",
        "stp",
        "st0p",
        "unsubscibe",
        "Unsubscirbe",
        "cancle",
        "Qiut",
        "revoek",
        "stpo please",
    ],
)
def test_one_edit_typos_of_regulatory_keywords_revoke(text: str) -> None:
    result = classify(text, DEFAULT_US_KEYWORDS)
    assert result.intent is Intent.FREE_TEXT_OPT_OUT
    assert result.matched in {"stop", "unsubscribe", "cancel", "quit", "revoke"}


@pytest.mark.parametrize(
    "text",
    [
        "step",
        "shop",
        "top",
        "stoop",
        "atop",
        "slop",
        "stomp",
        "sop",
        "quite",
        "quiet",
        "quiz",
        "suit",
        "cancer",
        "arrest",
        "evoke",
        "top please",
    ],
)
def test_real_words_one_edit_from_a_keyword_are_not_typos(text: str) -> None:
    assert classify(text, DEFAULT_US_KEYWORDS).intent is Intent.NONE


def test_wrong_number_outranks_the_other_free_text() -> None:
    for text in (
        "Wrong number",
        "wrong #",
        "Stop texting me, wrong number",
        "new phone who dis",
        "This isn't Mike, wrong number",
        "Número equivocado",
    ):
        assert classify(text, DEFAULT_US_KEYWORDS).intent is Intent.WRONG_NUMBER, text


def test_the_lists_come_from_the_rules_given() -> None:
    rules = KeywordRules(
        opt_out=frozenset({"halt"}),
        opt_in=frozenset({"go"}),
        help=frozenset({"aide"}),
        free_text_opt_out=("stop ... texting",),
        wrong_number=("not me",),
    )
    assert classify("HALT!", rules).intent is Intent.OPT_OUT
    assert classify("stop", rules).intent is Intent.NONE
    assert classify("go", rules).intent is Intent.OPT_IN
    assert classify("Aide", rules).intent is Intent.HELP
    assert classify("stop f***ing texting", rules).matched == "stop ... texting"
    assert classify("stop by and texting", rules).intent is Intent.NONE
    assert classify("not me, sorry", rules).intent is Intent.WRONG_NUMBER


def test_a_phrase_word_ending_in_a_star_matches_any_ending() -> None:
    rules = KeywordRules(frozenset(), frozenset(), frozenset(), free_text_opt_out=("quit text*",))
    assert classify("quit texting", rules).matched == "quit text*"
    assert classify("quit texts!", rules).matched == "quit text*"
    assert classify("quit", rules).intent is Intent.NONE


def test_default_families_do_not_overlap() -> None:
    assert keyword_sets_overlap(DEFAULT_US_KEYWORDS) == []


def test_overlapping_families_are_named() -> None:
    rules = KeywordRules(
        opt_out=frozenset({"stop", "opt out"}), opt_in=frozenset({"YES", "optout"}), help=frozenset({"yes"})
    )
    assert keyword_sets_overlap(rules) == ["YES", "opt out", "optout", "yes"]


# -- the labelled corpus ---------------------------------------------------------------------------


def _corpus() -> list[tuple[str, str]]:
    with CORPUS.open(encoding="utf-8", newline="") as f:
        return [(row["text"], row["label"]) for row in csv.DictReader(f)]


def _precision_recall(pairs: list[tuple[bool, bool]]) -> tuple[float, float, int, int, int]:
    tp = sum(1 for truth, guess in pairs if truth and guess)
    fp = sum(1 for truth, guess in pairs if guess and not truth)
    fn = sum(1 for truth, guess in pairs if truth and not guess)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


def test_corpus_is_large_and_labelled_with_known_labels() -> None:
    rows = _corpus()
    counts = Counter(label for _, label in rows)
    assert len(rows) >= 320
    assert set(counts) == set(LABELS)
    assert len({text for text, _ in rows}) == len(rows)


def test_corpus_precision_and_recall(capsys: pytest.CaptureFixture[str]) -> None:
    """Opt-out detection (opt_out + wrong_number positive) reaches recall 0.97 and precision 0.95."""
    rows = _corpus()
    guesses = [(text, label, classify(text, DEFAULT_US_KEYWORDS)) for text, label in rows]
    positive = {"opt_out", "wrong_number"}
    overall = _precision_recall(
        [(label in positive, result.intent in OPT_OUT_INTENTS) for _, label, result in guesses]
    )
    per_label = {
        name: _precision_recall(
            [(label == name, LABEL_OF[result.intent] == name) for _, label, result in guesses]
        )
        for name in LABELS
    }
    wrong = [
        (text, label, LABEL_OF[result.intent])
        for text, label, result in guesses
        if LABEL_OF[result.intent] != label
    ]
    with capsys.disabled():
        print(f"\nSMS reply classifier on {len(rows)} labelled replies ({CORPUS.name})")
        print(
            f"  {'opt-out detection':<18} precision {overall[0]:.3f}  recall {overall[1]:.3f}"
            f"  (tp {overall[2]}, fp {overall[3]}, fn {overall[4]})"
        )
        for name, (p, r, tp, fp, fn) in per_label.items():
            print(f"  {name:<18} precision {p:.3f}  recall {r:.3f}  (tp {tp}, fp {fp}, fn {fn})")
        for text, label, got in wrong:
            print(f"  misclassified: {text!r} labelled {label}, classified {got}")
    assert overall[1] >= 0.97
    assert overall[0] >= 0.95


# -- properties -------------------------------------------------------------------------------------

EMOJI = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF, categories=["So"])
DECORATION = st.text(
    st.one_of(st.characters(categories=["P", "Zs"]), EMOJI, st.sampled_from(" \t\n\r")), max_size=6
)
KEYWORDS = sorted(DEFAULT_US_KEYWORDS.opt_out | DEFAULT_US_KEYWORDS.opt_in | DEFAULT_US_KEYWORDS.help)


@given(st.text())
def test_normalisation_is_idempotent(raw: str) -> None:
    once = normalise_text(raw)
    assert normalise_text(once) == once


@given(st.sampled_from(KEYWORDS), DECORATION, DECORATION, st.sampled_from([str.upper, str.lower, str.title]))
@settings(max_examples=300)
def test_surrounding_decoration_never_changes_a_keyword(keyword: str, before: str, after: str, case) -> None:
    plain = classify(case(keyword), DEFAULT_US_KEYWORDS)
    decorated = classify(before + case(keyword) + after, DEFAULT_US_KEYWORDS)
    assert (decorated.intent, decorated.matched) == (plain.intent, plain.matched)


@given(st.sampled_from(sorted(DEFAULT_US_KEYWORDS.opt_out)), DECORATION, DECORATION)
def test_decorated_opt_out_keyword_is_always_an_opt_out(keyword: str, before: str, after: str) -> None:
    assert classify(before + keyword.upper() + after, DEFAULT_US_KEYWORDS).intent is Intent.OPT_OUT


@given(st.text(max_size=400))
def test_classification_never_raises(raw: str) -> None:
    result = classify(raw, DEFAULT_US_KEYWORDS)
    assert result.normalised == normalise_text(raw)
    assert result.intent in Intent
