"""The organism's closed caption language: GenEval's six templates over shapes, colours and counts.

Design
------
A scene is described by a frozen ``SceneSpec`` (its GenEval tag, one or two object phrases and, for
``position``, a relation). ``spec.caption`` writes the caption exactly as GenEval phrases its prompts
("a photo of two red circles" is *not* a GenEval form; "a photo of two circles", "a photo of an orange
square", "a photo of a circle left of a triangle" are), and ``parse_caption`` is its exact inverse:
``parse_caption(spec.caption) == spec`` for every valid spec, and any other string raises
``ValueError``. ``spec.geneval_metadata()`` gives the benchmark's own metadata format
(``include``/``exclude`` clauses with ``class``, ``count``, ``color``, ``position``), which the scorer
evaluates with GenEval's rules.

The vocabulary is small on purpose: four shapes (distinguishable at 7 pixels), eight of GenEval's ten
colours (pink and brown dropped: too close to red and orange at this size), counts two to four as in
GenEval's ``counting`` tag, and GenEval's four relations. ``position`` captions may also name the two
objects' colours ("a photo of a blue square left of a yellow triangle"); GenEval's own position prompts
do not, and the evaluation set follows GenEval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
PLURALS: dict[str, str] = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses"}
COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "black", "white")
COUNT_WORDS: dict[int, str] = {2: "two", 3: "three", 4: "four"}
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
PREFIX = "a photo of "


def article(word: str) -> str:
    """GenEval's indefinite article: "an" before a vowel ("an orange circle"), else "a"."""
    return "an" if word[0] in "aeiou" else "a"


@dataclass(frozen=True)
class ObjectSpec:
    """One noun phrase: ``count`` objects of ``shape``, all of ``color`` when given."""

    shape: str
    count: int = 1
    color: str | None = None

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; expected one of {SHAPES}")
        if self.count != 1 and self.count not in COUNT_WORDS:
            raise ValueError(f"count must be 1 or one of {tuple(COUNT_WORDS)}, got {self.count}")
        if self.color is not None and self.color not in COLORS:
            raise ValueError(f"unknown colour {self.color!r}; expected one of {COLORS}")

    @property
    def phrase(self) -> str:
        if self.count > 1:
            words = [COUNT_WORDS[self.count], *([self.color] if self.color else []), PLURALS[self.shape]]
            return " ".join(words)
        words = [*([self.color] if self.color else []), self.shape]
        return " ".join([article(words[0]), *words])

    def clause(self) -> dict:
        out: dict = {"class": self.shape, "count": self.count}
        if self.color is not None:
            out["color"] = self.color
        return out


@dataclass(frozen=True)
class SceneSpec:
    """What a caption asks for: a GenEval tag, its object phrases in caption order, and a relation.

    For ``position`` the relation is that of ``objects[0]`` to ``objects[1]`` ("a photo of a circle
    left of a square": the circle is left of the square).
    """

    tag: str
    objects: tuple[ObjectSpec, ...]
    relation: str | None = None

    def __post_init__(self) -> None:
        if self.tag not in TAGS:
            raise ValueError(f"unknown tag {self.tag!r}; expected one of {TAGS}")
        objs = self.objects
        n_colored = sum(o.color is not None for o in objs)
        counts = [o.count for o in objs]
        ok = {
            "single_object": len(objs) == 1 and counts == [1] and n_colored == 0,
            "colors": len(objs) == 1 and counts == [1] and n_colored == 1,
            "counting": len(objs) == 1 and counts[0] > 1 and n_colored == 0,
            "two_object": len(objs) == 2 and counts == [1, 1] and n_colored == 0,
            "position": len(objs) == 2 and counts == [1, 1] and n_colored in (0, 2),
            "color_attr": len(objs) == 2 and counts == [1, 1] and n_colored == 2,
        }[self.tag]
        if ok and len(objs) == 2:
            ok = objs[0].shape != objs[1].shape
            if n_colored == 2:
                ok = ok and objs[0].color != objs[1].color
        if not ok:
            raise ValueError(f"objects {objs} do not form a {self.tag!r} scene")
        if (self.relation is not None) != (self.tag == "position"):
            raise ValueError(f"a relation is required for 'position' scenes and only there, got {self.relation!r}")
        if self.relation is not None and self.relation not in RELATIONS:
            raise ValueError(f"unknown relation {self.relation!r}; expected one of {RELATIONS}")

    @property
    def caption(self) -> str:
        a = self.objects[0].phrase
        if self.tag == "position":
            return f"{PREFIX}{a} {self.relation} {self.objects[1].phrase}"
        if len(self.objects) == 2:
            return f"{PREFIX}{a} and {self.objects[1].phrase}"
        return PREFIX + a

    def geneval_metadata(self) -> dict:
        """This scene in GenEval's metadata format (as in ``evaluation_metadata.jsonl``)."""
        meta: dict = {"tag": self.tag, "prompt": self.caption}
        if self.tag == "position":
            target, mover = self.objects[1], self.objects[0]
            meta["include"] = [target.clause(), {**mover.clause(), "position": [self.relation, 0]}]
        else:
            meta["include"] = [o.clause() for o in self.objects]
        if self.tag == "counting":
            o = self.objects[0]
            meta["exclude"] = [{"class": o.shape, "count": o.count + 1}]
        return meta


_SHAPE = "|".join(SHAPES)
_PLURAL = "|".join(PLURALS.values())
_COLOR = "|".join(COLORS)
_COUNT = "|".join(COUNT_WORDS.values())
_NP_ONE = re.compile(rf"^(a|an) (?:({_COLOR}) )?({_SHAPE})$")
_NP_MANY = re.compile(rf"^({_COUNT}) ({_PLURAL})$")
_REL = re.compile(rf"^(.+?) ({'|'.join(RELATIONS)}) (.+)$")


def _parse_np(text: str, caption: str) -> ObjectSpec:
    m = _NP_ONE.match(text)
    if m:
        art, color, shape = m.groups()
        obj = ObjectSpec(shape, 1, color)
    else:
        m = _NP_MANY.match(text)
        if not m:
            raise ValueError(f"{caption!r} is not a caption of the organism's grammar (phrase {text!r})")
        count = {v: k for k, v in COUNT_WORDS.items()}[m.group(1)]
        shape = {v: k for k, v in PLURALS.items()}[m.group(2)]
        obj = ObjectSpec(shape, count)
    if obj.phrase != text:  # wrong article ("a orange circle")
        raise ValueError(f"{caption!r} is not a caption of the organism's grammar (expected {obj.phrase!r})")
    return obj


def parse_caption(caption: str) -> SceneSpec:
    """The scene a caption asks for; ``ValueError`` for any string ``SceneSpec.caption`` cannot produce."""
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    if not caption.startswith(PREFIX):
        raise ValueError(f"{caption!r} is not a caption of the organism's grammar (must start {PREFIX!r})")
    body = caption[len(PREFIX) :]
    m = _REL.match(body)
    if m:
        a, rel, b = m.groups()
        objs = (_parse_np(a, caption), _parse_np(b, caption))
        spec = SceneSpec("position", objs, rel)
    elif " and " in body:
        parts = body.split(" and ")
        if len(parts) != 2:
            raise ValueError(f"{caption!r} is not a caption of the organism's grammar")
        objs = (_parse_np(parts[0], caption), _parse_np(parts[1], caption))
        tag = "color_attr" if objs[0].color is not None else "two_object"
        spec = SceneSpec(tag, objs)
    else:
        obj = _parse_np(body, caption)
        tag = "counting" if obj.count > 1 else ("colors" if obj.color is not None else "single_object")
        spec = SceneSpec(tag, (obj,))
    if spec.caption != caption:
        raise ValueError(f"{caption!r} is not a caption of the organism's grammar")
    return spec


def words() -> list[str]:
    """Every word a caption can contain, in a fixed order (the tokenizer's vocabulary after specials)."""
    out = ["a", "an", "photo", "of", "and", *COUNT_WORDS.values()]
    out += [w for rel in RELATIONS for w in rel.split() if w != "of"]
    out += [*COLORS, *SHAPES, *PLURALS.values()]
    seen: dict[str, None] = {}
    for w in out:
        seen.setdefault(w, None)
    return list(seen)
