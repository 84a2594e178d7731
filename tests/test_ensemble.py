"""Tests of honest ensembles: action names, the classification report, the weight search on validation
scores, presets, and ``csre-ensemble`` / ``csre-eval`` with them."""
from __future__ import annotations

import pytest

from skeldata.actions import action_names, action_names_for_classes


# ------------------------------------------------------------------------------------- action names

def test_action_names_of_each_data_set():
    ntu60, ntu120, ucla = action_names("ntu60"), action_names("ntu120"), action_names("ucla")
    assert (len(ntu60), len(ntu120), len(ucla)) == (60, 120, 10)
    assert ntu120[:60] == ntu60 and len(set(ntu120)) == 120
    assert (ntu60[0], ntu60[1], ntu60[59]) == ("drink water", "eat meal/snack", "walking apart from each other")
    assert (ntu120[60], ntu120[119]) == ("put on headphone", "finger-guessing game (playing rock-paper-scissors)")
    assert ucla == ("pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
                    "stand up", "donning", "doffing", "throw", "carry")
    assert action_names_for_classes(60) == ntu60 and action_names_for_classes(10) == ucla
    assert action_names_for_classes(3) == ("class 0", "class 1", "class 2")
    with pytest.raises(KeyError, match="unknown data set 'kinetics'"):
        action_names("kinetics")
