"""What the TF-IDF features read besides the folded words: negation scope and the head clause.

Stdlib only (the crossval script and the tests use it without Rasa).

- Negation: "không thấy ai xử lý" and "đã xử lý" share "xu ly"; words in the scope of a
  negation ("không", "chưa", "chẳng") are read again as `neg_<word>`, so that "chưa ai đến"
  is not "ai đến".
- Head clause: a long message often opens with a greeting, an apology and who is writing
  ("Chào admin, xin lỗi làm phiền, em là người dân ở …") before the point. The clauses up
  to the point are dropped and the rest is read again on its own, so the point weighs more.

- Unfolded words: folding makes "bán" and "bạn", "đã" and "đá" one word. A message typed
  with diacritics is also read as typed (lowercased, marks kept), so that what the marks
  tell apart stays apart; a message without any mark leaves this part empty.

A message becomes one document string,
`<folded words>\t<negation-marked words>\t<head>\t<unfolded words>`, which the vectorizers
of `civicbot_nlu.labels` split again by field.
"""

from __future__ import annotations

import re
import unicodedata

from civicbot_nlu.normalize import has_diacritics, normalize

# Folded negators. "dung" (đừng/đúng/dừng) is left out: folded, it is mostly "đúng".
NEGATORS = frozenset(("khong", "chua", "chang", "cha", "deo", "hem", "chac"))
NEGATION_SCOPE = 3  # words after a negator that it governs
# Words that end a negation's scope: conjunctions and the start of a new point.
_SCOPE_ENDS = frozenset(("ma", "nhung", "va", "thi", "con", "nen", "vi", "roi"))

# Clause boundaries in what was typed: sentence punctuation, commas, line breaks, dashes.
_CLAUSES = re.compile(r"[.!?;,\n…]+|\s[-–—]\s|:\s")
# Folded words that only open a message: greetings, apologies, address, who is writing.
_PREAMBLE = frozenset(
    (
        *"chao xin loi lam phien a ad admin oi da vang em anh chi minh toi ban bot ".split(),
        *"hello hi alo alio dear kinh gui thua cac co chu bac ong ba".split(),
        *"la nguoi dan o song tai nha so phuong quan xa ngo ngach pho duong".split(),
        *"cho hoi cam on truoc nhe nha voi lai nua ve viec mot chut".split(),
        *"sorry toi nay sang chieu hom nay qua moi nguoi mn".split(),
    )
)
_PREAMBLE_CUES = frozenset(("chao", "loi", "phien", "hello", "hi", "alo", "kinh", "dear", "oi"))
# "em là người dân ở phường X", "tôi sống tại ngõ Y": who is writing, with any place name.
_INTRODUCTION = re.compile(
    r"^(?:da )?(?:em|toi|minh|chau|con|anh|chi|nha em|nha toi|nha minh)"
    r"(?: (?:la|dang|hien|cung))* (?:nguoi dan|cu dan|dan|song|o|sinh song|ong|ba|co|chu|bac)\b"
)
_INTRODUCTION_WORDS = 12


def negation_marked(folded: list[str]) -> list[str]:
    """`neg_<word>` for each word in a negation's scope; the negators themselves are kept."""
    out: list[str] = []
    left = 0
    for word in folded:
        if word in NEGATORS:
            left = NEGATION_SCOPE
            out.append(word)
        elif left and word not in _SCOPE_ENDS:
            out.append(f"neg_{word}")
            left -= 1
        else:
            left = 0
            out.append(word)
    return out


def head_clause(text: str) -> str:
    """The folded text from the first clause that is more than a greeting or apology.

    Empty when nothing was dropped (a short message is its own head), so that the head
    features add weight only where a preamble was cut off.
    """
    clauses = [c for c in _CLAUSES.split(text) if c.strip()]
    for i, clause in enumerate(clauses):
        folded = normalize(clause).split()
        if not folded:
            continue
        preamble = all(w in _PREAMBLE or w.isdigit() for w in folded) and (
            any(w in _PREAMBLE_CUES for w in folded) or i > 0
        )
        if not preamble and i > 0 and len(folded) <= _INTRODUCTION_WORDS:
            preamble = _INTRODUCTION.match(" ".join(folded)) is not None
        if not preamble:
            return "" if i == 0 else normalize(" ".join(clauses[i:]))
    return ""


_LETTERS = re.compile(r"[^\W_]+")


def unfolded_words(text: str) -> str:
    """The words as typed, lowercased with their marks kept (NFC)."""
    return " ".join(_LETTERS.findall(unicodedata.normalize("NFC", text).lower()))


def document(text: str, *, negation: bool = True, head: bool = True, unfolded: bool = True) -> str:
    """The string the vectorizers read: folded words, negation-marked words, head clause,
    unfolded words.

    A part that is not asked for stays empty: the head clause costs a second normalisation.
    """
    return document_of(
        normalize(text).split(), text, negation=negation, head=head, unfolded=unfolded
    )


def document_of(
    folded: list[str], text: str, *, negation: bool, head: bool, unfolded: bool = False
) -> str:
    """`document` from words already folded (the tokenizer's), so they are folded once."""
    negated = " ".join(negation_marked(folded)) if negation else ""
    typed = unfolded_words(text) if unfolded else ""
    return "\t".join((" ".join(folded), negated, head_clause(text) if head else "", typed))


def words_field(doc: str) -> str:
    """The folded words."""
    return doc.split("\t")[0]


def negation_field(doc: str) -> str:
    """The negation-marked words."""
    parts = doc.split("\t")
    return parts[1] if len(parts) > 1 else parts[0]


def head_field(doc: str) -> str:
    """The head clause (empty when the message has no preamble)."""
    parts = doc.split("\t")
    return parts[2] if len(parts) > 2 else ""


def marked_field(doc: str) -> str:
    """The words as typed when the message carries diacritics; empty otherwise (folded
    text is already read by the other fields, and "ban" typed bare is no "bạn")."""
    parts = doc.split("\t")
    typed = parts[3] if len(parts) > 3 else ""
    return typed if has_diacritics(typed) else ""
