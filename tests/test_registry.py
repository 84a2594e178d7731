"""csre_models.encoders._registry: every registered encoder has a card, and the card tells the truth about
the encoder's inputs and recipes."""
from __future__ import annotations

import inspect

import pytest

from csre_models.encoders import EncoderCard, create_encoder, encoder_card, list_encoders, register_encoder
from csre_models.encoders._registry import DEFAULT_WINDOWS, FEEDER_VARIANTS


@pytest.mark.parametrize("name", list_encoders())
def test_the_card_names_the_inputs_forward_takes(name):
    card = encoder_card(name)
    assert card.name == name and card.published >= 2018
    encoder = create_encoder(name, num_class=60, window=card.window("ntu25"))
    for method in (encoder.forward, encoder.forward_features):
        keywords = [p for p in inspect.signature(method).parameters if p != "x"]
        assert set(card.extra_inputs) <= set(keywords) and card.takes_joint == ("joint" in keywords), method
    assert set(card.windows) == set(card.feeders) == set(DEFAULT_WINDOWS)
    assert set(card.feeders.values()) <= set(FEEDER_VARIANTS)
    assert card.recipes() and all(path.parent.name == name for path in card.recipes())


def test_the_published_feeders():
    assert [name for name in list_encoders() if encoder_card(name).spine_relative("ntu25")] == ["blockgcn",
                                                                                              "hyperformer"]
    assert not encoder_card("blockgcn").spine_relative("ucla20") and encoder_card("hyperformer").spine_relative("ucla20")
    assert {name: encoder_card(name).stgcn_feeder for name in list_encoders()} == {
        "agcn": "whole", "blockgcn": None, "ctrgcn": None, "hcn": "hcn", "hyperformer": None}
    assert [encoder_card(name).extra_inputs for name in list_encoders()] == [(), ("joint",), (), (), ()]


def test_a_card_refuses_an_unknown_feeder_and_a_name_is_registered_once():
    with pytest.raises(ValueError, match="feeders are centred, spine-relative"):
        EncoderCard("x", feeders={"ntu25": "sideways"})
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("ctrgcn")(lambda **kwargs: None)
    with pytest.raises(KeyError, match="unknown encoder 'resnet'"):
        encoder_card("resnet")
