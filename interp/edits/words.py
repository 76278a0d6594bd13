"""Word classes of keys: what kind of token an edit removed (image patch, special, padding, function word,
attribute, relation, noun).

Design
------
``word_class(layout)`` labels every key of a token layout. Image keys are ``image``; the layout's own
flags give ``special`` (BOS / EOS) and ``pad``; a text token is then normalised (the tokenizers'
word-start marks ``▁`` / ``Ġ``, CLIP's ``</w>``, case, surrounding punctuation) and looked up in three
small word lists: attributes (GenEval's colours and counts), spatial relations, and closed-class
function words (plus the caption template's ``photo``, identical in every GenEval caption). Any other
word is a ``noun`` (GenEval's open-class words are its object names). The lists are written here by
hand because no installed library ships an English function-word list without a corpus download
(nltk's stopwords need one; scikit-learn's list is not a dependency, and counts "above" / "below" as
stop words, which are relations here). Sub-word pieces of a word split by a tokenizer are classified
piece by piece, so an unknown piece of a long object name counts as a noun.

Groups used by the edit selectors (``words=`` of ``mask_topk`` / ``mask_random``) and the token-identity
analysis: ``CONTENT`` (attribute, relation, noun) and ``NON_CONTENT`` (special, pad, function).
"""

from __future__ import annotations

import numpy as np

from interp.adapters.base import TokenLayout

WORD_CLASSES = ("image", "special", "pad", "function", "attribute", "relation", "noun")
CONTENT = ("attribute", "relation", "noun")
NON_CONTENT = ("special", "pad", "function")
GROUPS = {"content": CONTENT, "non_content": NON_CONTENT, "text": WORD_CLASSES[1:]}

COLORS = frozenset(
    [
        "red",
        "orange",
        "yellow",
        "green",
        "blue",
        "purple",
        "pink",
        "brown",
        "black",
        "white",
        "gray",
        "grey",
        "cyan",
        "magenta",
        "violet",
    ]
)
COUNTS = frozenset(
    [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "single",
        "pair",
        "couple",
        "several",
        "many",
    ]
    + [str(i) for i in range(13)]
)
ATTRIBUTES = COLORS | COUNTS
RELATIONS = frozenset(
    [
        "left",
        "right",
        "above",
        "below",
        "under",
        "over",
        "behind",
        "front",
        "beside",
        "near",
        "next",
        "top",
        "bottom",
        "between",
    ]
)
FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "those",
        "some",
        "any",
        "each",
        "every",
        "no",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "with",
        "from",
        "by",
        "into",
        "onto",
        "about",
        "as",
        "and",
        "or",
        "but",
        "nor",
        "so",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "has",
        "have",
        "had",
        "do",
        "does",
        "did",
        "it",
        "its",
        "they",
        "them",
        "their",
        "he",
        "she",
        "his",
        "her",
        "we",
        "our",
        "you",
        "your",
        "i",
        "my",
        "there",
        "here",
        "which",
        "who",
        "whom",
        "whose",
        "what",
        "where",
        "when",
        "how",
        "photo",
    ]
)
_MARKS = ("▁", "Ġ", "</w>")
_PUNCT = ".,;:!?'\"()[]{}"


def normalise(token: str) -> str:
    """A token string as a plain lower-case word (tokenizer marks and surrounding punctuation removed)."""
    for mark in _MARKS:
        token = token.replace(mark, "")
    return token.strip().strip(_PUNCT).lower()


def classify_word(token: str) -> str:
    """The class of one text token that is neither special nor padding."""
    word = normalise(token)
    if word in ATTRIBUTES:
        return "attribute"
    if word in RELATIONS:
        return "relation"
    if word in FUNCTION_WORDS or not any(ch.isalnum() for ch in word):
        return "function"
    return "noun"


def word_class(layout: TokenLayout) -> np.ndarray:
    """Per key of ``layout``: one of ``WORD_CLASSES`` (a str array)."""
    out = np.array([classify_word(str(t)) for t in layout.token_str], dtype=object)
    out[layout.modality == "image"] = "image"
    out[np.asarray(layout.is_pad, bool)] = "pad"
    out[np.asarray(layout.is_bos, bool) | np.asarray(layout.is_eos, bool)] = "special"
    return out.astype(str)


def expand_words(words: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """Word classes and group names (``content``, ``non_content``, ``text``) as sorted unique classes."""
    items = (words,) if isinstance(words, str) else tuple(words)
    out: list[str] = []
    for w in items:
        if w in GROUPS:
            out.extend(GROUPS[w])
        elif w in WORD_CLASSES:
            out.append(w)
        else:
            raise ValueError(
                f"unknown word class {w!r}; known: {', '.join(WORD_CLASSES)} or a group ({', '.join(GROUPS)})"
            )
    return tuple(sorted(set(out), key=WORD_CLASSES.index))
