"""The action names of each data set, in label order, for reports and figures that a person reads.

A label is a number to the code; a confusion matrix or a per-class table is read by someone who thinks in
"drink water" and "pick up with two hands". The names are the data sets' own:

* NTU RGB+D 120: ``A001`` .. ``A120`` as the dataset's README lists them (label ``k`` is ``A{k+1:03d}``);
  NTU RGB+D 60 is its first 60 classes. The spelling is kept as published (``hush (quite)``), with
  plain apostrophes where the README mixes in typographic ones.
* NW-UCLA: its ten actions ``a01`` .. ``a12`` (no ``a07``, ``a10``), label ``k`` the ``k``-th of them, as
  :data:`skeldata.formats.ucla.ACTIONS` numbers them.
"""
from __future__ import annotations

from typing import Dict, Tuple

from .formats.ucla import ACTIONS as UCLA_ACTIONS

__all__ = ["NTU120_ACTIONS", "UCLA_ACTION_NAMES", "action_code", "action_names", "action_names_for_classes"]

#: ``A001`` .. ``A120``; the first 60 are NTU RGB+D 60's.
NTU120_ACTIONS: Tuple[str, ...] = (
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw",
    "sitting down", "standing up (from sitting position)", "clapping", "reading", "writing", "tear up paper",
    "wear jacket", "take off jacket", "wear a shoe", "take off a shoe", "wear on glasses", "take off glasses",
    "put on a hat/cap", "take off a hat/cap", "cheer up", "hand waving", "kicking something", "reach into pocket",
    "hopping (one foot jumping)", "jump up", "make a phone call/answer phone", "playing with phone/tablet",
    "typing on a keyboard", "pointing to something with finger", "taking a selfie", "check time (from watch)",
    "rub two hands together", "nod head/bow", "shake head", "wipe face", "salute", "put the palms together",
    "cross hands in front (say stop)", "sneeze/cough", "staggering", "falling", "touch head (headache)",
    "touch chest (stomachache/heart pain)", "touch back (backache)", "touch neck (neckache)",
    "nausea or vomiting condition", "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
    "kicking other person", "pushing other person", "pat on back of other person", "point finger at the other person",
    "hugging other person", "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
    # NTU RGB+D 120 only
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball", "tennis bat swing",
    "juggling table tennis balls", "hush (quite)", "flick hair", "thumb up", "thumb down", "make ok sign",
    "make victory sign", "staple book", "counting money", "cutting nails", "cutting paper (using scissors)",
    "snapping fingers", "open bottle", "sniff (smell)", "squat down", "toss a coin", "fold paper", "ball up paper",
    "play magic cube", "apply cream on face", "apply cream on hand back", "put on bag", "take off bag",
    "put something into a bag", "take something out of a bag", "open a box", "move heavy objects", "shake fist",
    "throw up cap/hat", "hands up (both hands)", "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself", "blow nose",
    "hit other person with something", "wield knife towards other person", "knock over other person (hit with body)",
    "grab other person's stuff", "shoot at other person with a gun", "step on foot", "high-five", "cheers and drink",
    "carry something with other person", "take a photo of other person", "follow other person",
    "whisper in other person's ear", "exchange things with other person", "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",
)

#: NW-UCLA action number (the ``aAA`` of the file names) -> name.
UCLA_ACTION_NAMES: Dict[int, str] = {
    1: "pick up with one hand", 2: "pick up with two hands", 3: "drop trash", 4: "walk around", 5: "sit down",
    6: "stand up", 8: "donning", 9: "doffing", 11: "throw", 12: "carry",
}

_BY_DATASET: Dict[str, Tuple[str, ...]] = {
    "ntu60": NTU120_ACTIONS[:60],
    "ntu120": NTU120_ACTIONS,
    "ucla": tuple(UCLA_ACTION_NAMES[action] for action in UCLA_ACTIONS),
}


def action_names(dataset: str) -> Tuple[str, ...]:
    """The action names of ``dataset`` (``ntu60``, ``ntu120`` or ``ucla``), indexed by 0-based label."""
    try:
        return _BY_DATASET[dataset]
    except KeyError:
        raise KeyError(f"unknown data set {dataset!r}; known: {', '.join(_BY_DATASET)}") from None


def action_names_for_classes(num_classes: int) -> Tuple[str, ...]:
    """Names for ``num_classes`` labels when the data set is not recorded: the data set with that many
    classes (60: NTU60, 120: NTU120, 10: NW-UCLA), else ``class 0``, ``class 1``, ..."""
    for names in _BY_DATASET.values():
        if len(names) == num_classes:
            return names
    return tuple(f"class {k}" for k in range(num_classes))


def action_code(family: str, label: int) -> str:
    """The action code of a 0-based label: ``A001`` (NTU) or ``a01`` (NW-UCLA, whose codes skip a07/a10)."""
    if family == "ucla":
        return f"a{UCLA_ACTIONS[label]:02d}"
    return f"A{label + 1:03d}"
