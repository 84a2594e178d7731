"""The pipeline rules one by one, on hand-made bodies: each test pins one rule of the reference."""
from __future__ import annotations

import numpy as np
import pytest

from skeldata.errors import SampleDropped
from skeldata.layouts import NTU25, UCLA20
from skeldata.pipeline.denoise import denoise, remove_zero_sum_rows, valid_frames_by_spread
from skeldata.pipeline.extract import Body, RawSample, body_motion, group_bodies
from skeldata.pipeline.streams import bones, motion
from skeldata.pipeline.transform import centre, to_bodies
from skeldata.splits import BENCHMARKS
from skeldata.formats.ntu import SkeletonRecords


def standing(frames: int, x: float = 0.0, amplitude: float = 0.05, seed: int = 0) -> np.ndarray:
    """A narrow, tall body (valid by the spread rule) that moves a little."""
    rng = np.random.default_rng(seed)
    joints = np.zeros((frames, 25, 3), dtype=np.float32)
    joints[:, :, 0] = x + rng.uniform(-0.1, 0.1, size=(1, 25))
    joints[:, :, 1] = np.linspace(-0.8, 0.8, 25)
    joints[:, :, 2] = 3.0
    joints += (amplitude * rng.standard_normal((frames, 25, 3))).astype(np.float32)
    return joints


def wide(frames: int) -> np.ndarray:
    """A flat body: x extent far above 0.8 times the y extent in every frame."""
    joints = standing(frames)
    joints[:, :, 0] = np.linspace(-1, 1, 25)
    joints[:, :, 1] = 0.01 * np.arange(25) % 0.05
    return joints.astype(np.float32)


def sample(*bodies: Body, frames: int) -> RawSample:
    if len(bodies) > 1:
        for b in bodies:
            b.motion = body_motion(b.joints)
    return RawSample("S001C001P001R001A001", frames, np.zeros(0, np.int64), list(bodies))


def test_group_bodies_packs_appearances_and_keeps_first_appearance_order():
    joints = np.arange(5 * 25 * 3, dtype=np.float32).reshape(5, 25, 3)
    records = SkeletonRecords(raw_frames=4, dropped_frames=np.array([1]), body_ids=["b", "a", "b", "b", "a"],
                              record_frame=np.array([0, 0, 1, 2, 2]), joints=joints)
    raw = group_bodies("S001C001P001R001A001", records)
    assert [b.body_id for b in raw.bodies] == ["b", "a"]
    b, a = raw.bodies
    assert (b.first_frame, b.length, a.first_frame, a.length) == (0, 3, 0, 2)
    # "a" vanished in frame 1 and came back in frame 2: packed from its first frame, so it ends early
    assert a.last_frame == 1 and np.array_equal(a.joints, joints[[1, 4]])
    assert b.motion == np.sum(np.var(joints[[0, 2, 3]].reshape(-1, 3), axis=0))
    assert raw.num_frames == 3


@pytest.mark.parametrize("rows", [1, 2, 25, 26, 7500])
def test_body_motion_is_numpys_float32_variance_bit_for_bit(rows):
    rng = np.random.default_rng(rows)
    for _ in range(200):
        joints = (rng.standard_normal((rows, 3)) * rng.uniform(0.01, 5) + rng.uniform(-4, 4, 3)).astype(np.float32)
        expected = np.sum(np.var(joints, axis=0))
        assert body_motion(joints).tobytes() == expected.tobytes()


def test_body_motion_falls_back_to_numpy_when_the_compiled_one_disagrees(monkeypatch):
    from skeldata.formats import ntu
    from skeldata.pipeline import extract

    class WrongReader:
        @staticmethod
        def body_motion(joints):
            return 1.0

    monkeypatch.setattr(ntu, "_compiled", WrongReader)
    extract._compiled_body_motion.cache_clear()
    try:
        assert extract._compiled_body_motion() is None
        joints = np.random.default_rng(0).standard_normal((50, 25, 3)).astype(np.float32)
        assert body_motion(joints) == np.sum(np.var(joints.reshape(-1, 3), axis=0))
    finally:
        extract._compiled_body_motion.cache_clear()


def test_single_body_files_are_not_denoised():
    joints = standing(8)
    joints[3] = 0.0  # an all-zero frame survives: no zero-row removal for single-body files
    result = denoise(sample(Body("1", joints, 0), frames=8))
    assert result.joints.shape == (8, 75) and result.actors == 1
    assert not result.joints[3].any() and result.report.rows_removed == 0


def test_length_rule_drops_bodies_of_11_frames_or_fewer():
    result = denoise(sample(Body("1", standing(30), 0), Body("2", standing(11, x=1), 0),
                            Body("3", standing(12, x=2), 0), frames=30))
    assert result.report.removed_by_length == 1 and result.actors == 2


def test_all_bodies_short_is_dropped_where_the_reference_crashes():
    with pytest.raises(SampleDropped) as info:
        denoise(sample(Body("1", standing(8), 0), Body("2", standing(8, x=1), 0), frames=8))
    assert info.value.code == "all_bodies_short"


def test_spread_rule_drops_flat_bodies():
    result = denoise(sample(Body("1", standing(30), 0), Body("2", wide(30), 0), frames=30))
    assert result.report.removed_by_spread == 1 and result.joints.shape == (30, 75)


def test_spread_rule_stops_when_one_body_is_left():
    # The first body is removed; the loop then stops, so the second (also flat) one is kept.
    result = denoise(sample(Body("1", wide(20), 0), Body("2", wide(20), 0), frames=20))
    assert result.report.removed_by_spread == 1 and result.actors == 1


def test_spread_threshold():
    def noisy(frames: int, n_noisy: int, x: float) -> Body:
        joints = standing(frames, x=x)
        joints[:n_noisy, :, 0] = x + np.linspace(-1, 1, 25)
        return Body(f"{n_noisy}", joints, 0)

    assert valid_frames_by_spread(noisy(20, 14, 0).joints).sum() == 6
    result = denoise(sample(Body("main", standing(20, x=2, amplitude=0.3), 0), noisy(20, 14, 0), noisy(20, 13, 4),
                            frames=20))
    # 14 of 20 noisy frames (0.70 >= 0.69754): removed; 13 of 20 (0.65): kept
    assert result.report.removed_by_spread == 1 and result.actors == 2


def test_motion_ranking_and_spread_motion_update():
    calm, lively = standing(20, amplitude=0.01), standing(20, x=1, amplitude=0.2, seed=1)
    lively[:5, :, 0] = np.linspace(-3, 3, 25)  # 5 of 20 noisy: kept, motion lowered to its valid frames
    result = denoise(sample(Body("calm", calm, 0), Body("lively", lively, 0), frames=20))
    expected_lively = min(body_motion(lively), body_motion(lively[5:]))
    assert expected_lively > body_motion(calm)
    assert np.array_equal(result.joints[:, :75], lively.reshape(20, 75))  # the livelier body is actor 1


def test_merge_rules_one_shared_frame_counts_as_no_overlap():
    first = Body("a", standing(12, amplitude=0.3), 0)      # frames 0..11, most motion
    touching = Body("b", standing(12, amplitude=0.2), 11)  # frames 11..22: shares frame 11 with actor 1
    second = Body("c", standing(20, amplitude=0.1), 2)      # overlaps actor 1: goes to actor 2
    third = Body("d", standing(15, amplitude=0.05), 5)      # overlaps both: dropped
    result = denoise(sample(first, touching, second, third, frames=23))
    joints = result.joints
    assert result.actors == 2 and result.report.unassigned == 1
    assert np.array_equal(joints[11, :75], touching.joints[0].ravel())  # frame 11 overwritten by "b"
    assert np.array_equal(joints[2:22, 75:], second.joints.reshape(20, 75))


def test_actor2_span_always_starts_at_frame_0():
    # Actor 2 starts as the virtual interval [0, 0] and its start never moves from 0, so once a body
    # at frames 14..29 joins it, a body at frames 0..12 "overlaps" actor 2 although it does not.
    main = Body("a", standing(30, amplitude=0.3), 0)
    late = Body("b", standing(16, amplitude=0.2), 14)
    early = Body("c", standing(13, amplitude=0.1), 0)
    result = denoise(sample(main, late, early, frames=30))
    assert result.report.unassigned == 1
    assert not result.joints[:13, 75:].any()


def test_zero_sum_rows_are_removed_even_when_not_all_zero():
    joints = np.ones((4, 150), dtype=np.float32)
    joints[1] = 0.0
    joints[2, :2] = [1.0, -1.0]
    joints[2, 2:] = 0.0
    kept, removed = remove_zero_sum_rows(joints)
    assert removed == 2 and kept.shape == (2, 150)


def test_body_seen_more_often_than_frames_is_dropped():
    with pytest.raises(SampleDropped) as info:
        denoise(sample(Body("1", standing(6), 0), frames=5))
    assert info.value.code == "body_overflow"


def test_centre_on_spinemid_of_actor1_first_nonzero_frame_and_reset_absent_actors():
    joints = np.zeros((3, 150), dtype=np.float32)
    joints[1:, :75] = np.arange(75, dtype=np.float32) + 1
    joints[0, 75:] = 5.0
    out = centre(joints)
    origin = joints[1, 3:6]
    assert np.array_equal(out[1:, :75], joints[1:, :75] - np.tile(origin, 25))
    assert not out[0, :75].any() and not out[1:, 75:].any()  # absent actor rows back to zero
    assert np.array_equal(out[0, 75:], 5.0 - np.tile(origin, 25))


def test_centre_one_actor_has_no_reset():
    joints = np.ones((2, 75), dtype=np.float32)
    joints[0] = 0.0
    out = centre(joints)
    assert np.array_equal(out[0], -np.tile(joints[1, 3:6], 25))


def test_centre_drops_a_sample_without_actor1():
    with pytest.raises(SampleDropped, match="all zero"):
        centre(np.zeros((3, 150), dtype=np.float32))


def test_to_bodies_layout():
    joints = np.arange(2 * 75, dtype=np.float32).reshape(2, 75)
    out = to_bodies(joints)
    assert out.shape == (2, 2, 25, 3) and np.array_equal(out[:, 0].reshape(2, 75), joints) and not out[:, 1].any()


def test_bone_and_motion_streams():
    rng = np.random.default_rng(0)
    joints = rng.standard_normal((4, 2, 25, 3)).astype(np.float32)
    b = bones(joints, NTU25)
    assert np.array_equal(b[:, :, 0], joints[:, :, 0] - joints[:, :, 1])      # (1, 2)
    assert np.array_equal(b[:, :, 22], joints[:, :, 22] - joints[:, :, 7])    # (23, 8)
    assert not b[:, :, 20].any()                                              # (21, 21): the root
    m = motion(joints)
    assert np.array_equal(m[:3], joints[1:] - joints[:3]) and not m[3].any()
    assert bones(rng.standard_normal((2, 1, 20, 3)), UCLA20)[:, :, 2].sum() == 0


def test_split_indices_are_grouped_by_id_in_list_order():
    bench = BENCHMARKS["ntu60"]["xview"]
    cameras = np.array([1, 3, 2, 3, 2, 1])
    assert bench.indices(cameras, "train").tolist() == [2, 4, 1, 3]  # camera 2 first, then camera 3
    assert bench.indices(cameras, "test").tolist() == [0, 5]
    performers = np.array([2, 1, 2, 1])
    assert BENCHMARKS["ntu60"]["xsub"].indices(performers, "train").tolist() == [1, 3, 0, 2]
