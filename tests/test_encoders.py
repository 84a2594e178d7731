"""Encoders: the common interface, equivalence with the official models, and the reference figures.

Three groups of tests:

- interface tests on every registered encoder and both layouts (no steering data needed);
- one case per folder of ``../shared/reference/encoders`` (official weights and logits);
- one case per encoder row of ``../shared/reference/encoders/params.md`` (parameter counts, feature maps).

The last two are collected from the steering data, so a newly registered encoder is checked against its
folders and rows without editing this file; cases of encoders not registered yet are skipped.
"""
from __future__ import annotations

import json
import re
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED, shared_path
from csre_models import create_encoder, list_encoders
from csre_models.encoders import encoder_card
from csre_models.encoders._graph import spatial_adjacency

REFERENCE_PARTS = ("reference", "encoders")
REFERENCE_ROOT = SHARED.joinpath(*REFERENCE_PARTS)
PARAMS_TABLE = "params.md"

#: create_encoder arguments per layout for the interface tests (small window to stay fast).
LAYOUT_KWARGS = {"ntu25": dict(layout="ntu25", num_person=2), "ucla20": dict(layout="ucla20", num_person=1)}
SMALL_WINDOW = 32

#: Encoder names in params.md -> registry names. Rows of other encoders (the CSRE total) are not collected.
PARAMS_ENCODERS = {"HCN": "hcn", "2s-AGCN": "agcn", "CTR-GCN": "ctrgcn", "Hyperformer": "hyperformer",
                   "BlockGCN": "blockgcn"}
#: Classes per dataset prefix of a params.md setting.
DATASET_CLASSES = {"ntu60": 60, "ntu120": 120, "ucla": 10}
JOINTS_TO_LAYOUT = {25: "ntu25", 20: "ucla20"}


@pytest.fixture(autouse=True)
def one_thread():
    """The test machine is shared: run every test on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def require_encoder(name: str) -> None:
    if name not in list_encoders():
        pytest.skip(f"encoder {name!r} is not registered yet")


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def assert_logits_close(out: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    """The reference tolerance: rtol 1e-4, atol 1e-4 of the largest reference logit."""
    scale = ref.abs().max()
    error = float((out - ref).abs().max() / scale)
    assert out.shape == ref.shape, f"{what}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * scale), f"{what}: max error {error:.2e} of max |logit|"


# --------------------------------------------------------------------------------------------------
# Interface: every registered encoder on both layouts, random weights, no steering data.
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", sorted(LAYOUT_KWARGS))
@pytest.mark.parametrize("name", list_encoders())
def test_interface(name: str, layout: str):
    torch.manual_seed(0)
    kwargs = LAYOUT_KWARGS[layout]
    model = create_encoder(name, num_class=7, window=SMALL_WINDOW, **kwargs)
    joints = model.num_joints
    x = torch.randn(2, 3, SMALL_WINDOW, joints, kwargs["num_person"])

    model.eval()
    with torch.no_grad():
        fmap = model.forward_features(x)
        logits = model(x)
    assert fmap.shape == (2 * kwargs["num_person"], *model.feature_map_shape)
    assert logits.shape == (2, 7)
    assert torch.equal(logits, model.forward_head(fmap, kwargs["num_person"]))

    model.train()
    loss = F.cross_entropy(model(x), torch.tensor([1, 5]))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without a gradient: {no_grad}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", list_encoders())
def test_cpu_convolutions_in_chunks_give_the_whole_batchs_values(name: str, monkeypatch):
    """Convolutions on chunks of person maps (here of 4, so that 10 maps make 2.5 chunks): logits and
    gradients equal those of whole-batch convolutions (eval mode: no dropout draw in between)."""
    from csre_models.encoders import _blocks
    torch.manual_seed(0)
    model = create_encoder(name, num_class=5, layout="ntu25", num_person=2, window=SMALL_WINDOW).eval()
    convolutions = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(type(m) is _blocks.CPUChunkedConv2d for m in convolutions)
    x = torch.randn(5, 3, SMALL_WINDOW, 25, 2)
    labels = torch.arange(len(x)) % 5

    def logits_and_gradients(chunk: int):
        monkeypatch.setattr(_blocks, "CPU_CONV_CHUNK", chunk)
        model.zero_grad()
        extra = {"joint": x} if "joint" in encoder_card(name).extra_inputs else {}
        logits = model.forward_head(model.forward_features(x, **extra), 2)
        F.cross_entropy(logits, labels).backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    chunked, chunked_grads = logits_and_gradients(4)
    whole, whole_grads = logits_and_gradients(10 ** 6)
    assert not torch.equal(chunked, torch.zeros_like(chunked)) and len(chunked_grads) == len(whole_grads) > 0
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    for chunked_grad, whole_grad in zip(chunked_grads, whole_grads):   # (a bias before BatchNorm has ~1e-17)
        torch.testing.assert_close(chunked_grad, whole_grad, rtol=1e-4,
                                   atol=1e-5 * float(whole_grad.abs().max()) + 1e-12)


@pytest.mark.parametrize("name", list_encoders())
def test_input_of_the_wrong_shape_is_refused(name: str):
    model = create_encoder(name, num_class=5, layout="ntu25", num_person=2, window=SMALL_WINDOW)
    with pytest.raises(ValueError, match="V=20"):
        model(torch.randn(1, 3, SMALL_WINDOW, 20, 2))


@pytest.mark.parametrize("name", list_encoders())
def test_load_reference_state_dict_prefixes_and_unknown_keys(name: str):
    source = create_encoder(name, num_class=5, layout="ucla20", num_person=1, window=SMALL_WINDOW)
    target = create_encoder(name, num_class=5, layout="ucla20", num_person=1, window=SMALL_WINDOW)
    state = {f"module.{k}": v.clone() for k, v in source.state_dict().items()}
    state["std.conv1.weight"] = torch.zeros(3)  # CSRE head weights: ignored by the encoder
    target.load_reference_state_dict(state)
    loaded = target.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in source.state_dict().items())

    state["not_a_layer.weight"] = torch.zeros(3)
    with pytest.raises(KeyError, match="not_a_layer.weight"):
        target.load_reference_state_dict(state)
    first_key = next(iter(source.state_dict()))
    with pytest.raises(KeyError, match=re.escape(first_key)):
        target.load_reference_state_dict({k: v for k, v in source.state_dict().items() if k != first_key})


def test_hcn_one_person_is_the_two_person_model_on_a_duplicated_person():
    """HCN's max over persons: a lone person gives what two identical persons give."""
    torch.manual_seed(0)
    two = create_encoder("hcn", num_class=5, layout="ntu25", num_person=2, window=SMALL_WINDOW).eval()
    one = create_encoder("hcn", num_class=5, layout="ntu25", num_person=1, window=SMALL_WINDOW).eval()
    one.load_reference_state_dict(two.state_dict())
    x = torch.randn(2, 3, SMALL_WINDOW, 25, 1)
    with torch.no_grad():
        assert torch.allclose(one(x), two(x.repeat(1, 1, 1, 1, 2)))


def test_hcn_gives_each_sample_its_own_logits_across_its_chunks():
    """HCN convolves at most CHUNK person maps per call: a batch of 2.5 chunks gives, in order, the maps and
    logits of its samples one at a time."""
    from csre_models.encoders.hcn import CHUNK
    torch.manual_seed(0)
    model = create_encoder("hcn", num_class=5, layout="ntu25", num_person=2, window=SMALL_WINDOW).eval()
    x = torch.randn(CHUNK + CHUNK // 4, 3, SMALL_WINDOW, 25, 2)       # 2.5 chunks of person maps
    with torch.no_grad():
        fmap = model.forward_features(x)
        one_by_one = torch.cat([model.forward_features(sample[None]) for sample in x])
        torch.testing.assert_close(fmap, one_by_one, rtol=0, atol=1e-5)
        torch.testing.assert_close(model.forward_head(fmap, 2), model(x))
        assert fmap.shape[0] == 2 * len(x) > 2 * CHUNK


# --------------------------------------------------------------------------------------------------
# Equivalence with the official models: one case per reference folder.
# --------------------------------------------------------------------------------------------------

def reference_folders(prefix: str = "") -> List[str]:
    """Folder names under ``../shared/reference/encoders`` starting with ``prefix``; when there are none,
    a placeholder name whose test skips because the folder does not exist."""
    folders = sorted(p.parent.name for p in REFERENCE_ROOT.glob(f"{prefix}*/facts.json"))
    return folders or [f"<{prefix}* reference folders>"]


def features_and_logits(model, x: torch.Tensor, call: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """One forward split at the feature map, with the extra inputs the folder's ``call`` names."""
    extra = {"joint": x} if "joint=x" in call else {}
    fmap = model.forward_features(x, **extra)
    return fmap, model.forward_head(fmap, x.shape[-1])


@pytest.mark.parametrize("folder", reference_folders())
def test_reproduces_official_logits(folder: str):
    path = shared_path(*REFERENCE_PARTS, folder)
    facts = json.loads((path / "facts.json").read_text())
    build = facts["create_encoder"]
    require_encoder(build["name"])
    model = create_encoder(build["name"], **build["kwargs"])
    assert trainable_parameters(model) == facts["params_trainable"]

    model.load_reference_state_dict(torch.load(path / "state.pt"))
    x = torch.load(path / "input.pt")
    model.eval()
    with torch.no_grad():
        fmap, logits = features_and_logits(model, x, facts["call"])
    assert tuple(fmap.shape[1:]) == model.feature_map_shape == tuple(facts["feature_map_shape_batch2"][1:])
    assert_logits_close(logits, torch.load(path / "logits.pt"), f"{folder} eval")

    if (path / "logits_train.pt").exists():
        model.train()
        with torch.no_grad():
            _, logits = features_and_logits(model, x, facts["call"])
        assert_logits_close(logits, torch.load(path / "logits_train.pt"), f"{folder} train")


def reference_perturbation(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The noise the reference added to each floating-point tensor of ``state`` (README of
    ``../shared/reference/encoders``, "Recipe" step 2: one generator seeded 2, keys in sorted order,
    ``0.5 + rand`` for running variances, ``+ 0.02 * randn`` for everything else), replayed."""
    generator = torch.Generator().manual_seed(2)
    noise = {}
    for key in sorted(state):
        tensor = state[key]
        if not tensor.is_floating_point():
            continue
        if key.endswith("running_var"):
            torch.rand(tensor.shape, generator=generator)
        else:
            noise[key] = 0.02 * torch.randn(tensor.shape, generator=generator)
    return noise


@pytest.mark.parametrize("folder", reference_folders("ctrgcn"))
def test_ctrgcn_reference_graph_is_ours(folder: str):
    """CTR-GCN's learnable PA starts at the graph; the reference's PA is that graph plus its documented
    ``0.02 * randn`` noise. Replaying the noise gives the graph back bit for bit (a 0.02 bound on
    ``|PA - graph|`` would not hold: the noise is 0.02 standard deviations, up to about 0.08)."""
    path = shared_path(*REFERENCE_PARTS, folder)
    layout = json.loads((path / "facts.json").read_text())["create_encoder"]["kwargs"]["layout"]
    state = torch.load(path / "state.pt")
    noise = reference_perturbation(state)
    graph = torch.from_numpy(np.asarray(spatial_adjacency(layout), dtype=np.float32))
    keys = [k for k in state if k.endswith("gcn1.PA")]
    assert len(keys) == 10
    for key in keys:
        assert torch.equal(state[key], graph + noise[key]), key


# --------------------------------------------------------------------------------------------------
# params.md: exact parameter counts and feature-map shapes of every setting.
# --------------------------------------------------------------------------------------------------

def parse_params_table(text: str) -> List[Dict]:
    """Encoder rows of params.md as ``create_encoder`` arguments plus the expected figures."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or cells[0] not in PARAMS_ENCODERS:
            continue
        encoder, setting, params, _, model_input, fmap = cells[:6]
        _, _, window, joints, persons = (int(v) for v in re.findall(r"\d+", model_input))
        rows.append(dict(
            id=f"{PARAMS_ENCODERS[encoder]}-{setting}",
            name=PARAMS_ENCODERS[encoder],
            kwargs=dict(num_class=DATASET_CLASSES[setting.split("_")[0]], layout=JOINTS_TO_LAYOUT[joints],
                        num_person=persons, window=window),
            params=int(params.replace(",", "")),
            feature_map=tuple(int(v) for v in re.match(r"\(([\d, ]+)\)", fmap).group(1).split(","))[1:],
        ))
    return rows


def params_rows() -> List:
    path = REFERENCE_ROOT / PARAMS_TABLE
    if not path.exists():
        return [pytest.param(None, id=PARAMS_TABLE)]
    return [pytest.param(row, id=row["id"]) for row in parse_params_table(path.read_text())]


@pytest.mark.parametrize("row", params_rows())
def test_params_md_setting(row):
    shared_path(*REFERENCE_PARTS, PARAMS_TABLE)
    require_encoder(row["name"])
    model = create_encoder(row["name"], **row["kwargs"])
    assert trainable_parameters(model) == row["params"]
    assert model.feature_map_shape == row["feature_map"]
