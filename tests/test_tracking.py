"""handnet.tracking: stable ids across frames, and One Euro smoothing that calms a still hand
without lagging a moving one."""

import numpy as np
import pytest

from handnet.peaks import Detection
from handnet.tracking import HandTracker, OneEuroFilter

FPS = 30


def det(x, y, radius=20.0, score=0.9):
    return Detection(float(x), float(y), float(radius), score, "open")


def test_one_euro_calms_a_still_noisy_signal():
    rng = np.random.default_rng(0)
    raw = 100 + rng.normal(0, 3, 120)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    smooth = np.array([f(v, k / FPS) for k, v in enumerate(raw)])
    assert np.std(smooth[30:]) < 0.35 * np.std(raw[30:])
    assert abs(np.mean(smooth[30:]) - 100) < 1.5


def test_one_euro_beta_cuts_lag_on_a_fast_move():
    ramp = [10.0 * k for k in range(60)]  # 300 px/s
    lag = {}
    for beta in (0.0, 0.05):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        lag[beta] = ramp[-1] - [f(v, k / FPS) for k, v in enumerate(ramp)][-1]
    assert lag[0.05] < 0.3 * lag[0.0]
    assert lag[0.05] > 0


def test_one_euro_rejects_bad_settings():
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0)


def test_two_moving_hands_keep_their_ids():
    tracker = HandTracker()
    ids = []
    for k in range(20):
        hands = tracker.update([det(50 + 6 * k, 100), det(300 - 5 * k, 60, radius=30)], k / FPS)
        ids.append({h.track_id: round(h.y) for h in hands})
    assert all(len(frame) == 2 for frame in ids)
    assert all(frame == ids[0] for frame in ids), "each hand keeps one id, and ids never swap"


def test_a_far_hand_may_move_its_minimum_gate():
    tracker = HandTracker()
    first = tracker.update([det(100, 100, radius=4)], 0)[0].track_id
    second = tracker.update([det(110, 100, radius=4)], 1 / FPS)[0].track_id  # 10 px: < 1.5 x 8 px
    assert first == second


def test_a_hand_that_vanishes_briefly_keeps_its_id_and_ids_are_never_reused():
    tracker = HandTracker(max_missed=3)
    first = tracker.update([det(100, 100)], 0)[0].track_id
    for k in range(1, 4):
        assert tracker.update([], k / FPS) == []
    assert tracker.update([det(102, 101)], 4 / FPS)[0].track_id == first
    for k in range(5, 10):
        tracker.update([], k / FPS)
    again = tracker.update([det(102, 101)], 10 / FPS)[0].track_id
    assert again != first and again > first


def test_min_age_hides_one_frame_false_alarms_and_shows_a_steady_hand_from_its_second_frame():
    tracker = HandTracker(min_age=2)
    assert tracker.update([det(100, 100), det(250, 40, score=0.4)], 0) == []  # both new: not yet shown
    shown = tracker.update([det(101, 100)], 1 / FPS)  # the false alarm at (250, 40) is gone
    assert [h.age for h in shown] == [2] and 100 <= shown[0].x <= 101  # smoothed towards 101
    assert [h.track_id for h in tracker.update([det(102, 100)], 2 / FPS)] == [shown[0].track_id]
    # A new detection elsewhere is a new track: hidden in its first frame, shown from its second.
    assert [h.track_id for h in tracker.update([det(102, 100), det(40, 200, score=0.4)], 3 / FPS)] == [shown[0].track_id]
    assert len(tracker.update([det(102, 100), det(40, 200, score=0.4)], 4 / FPS)) == 2
    with pytest.raises(ValueError, match="min_age"):
        HandTracker(min_age=0)


def test_a_jump_across_the_frame_is_a_new_hand():
    tracker = HandTracker()
    a = tracker.update([det(50, 50)], 0)[0].track_id
    b = tracker.update([det(250, 200)], 1 / FPS)[0].track_id
    assert a != b


def test_smoothing_steadies_a_jittery_hand_and_can_be_turned_off():
    rng = np.random.default_rng(1)
    noisy = [det(200 + rng.normal(0, 2), 150 + rng.normal(0, 2), 30 + rng.normal(0, 2)) for _ in range(60)]
    smooth = HandTracker()
    raw = HandTracker(smooth=False)
    s = np.array([[h.x, h.radius] for k, d in enumerate(noisy) for h in smooth.update([d], k / FPS)])
    r = np.array([[h.x, h.radius] for k, d in enumerate(noisy) for h in raw.update([d], k / FPS)])
    assert np.allclose(r, [[d.x, d.radius] for d in noisy])
    assert (s[20:].std(axis=0) < 0.5 * r[20:].std(axis=0)).all()


def test_hands_come_strongest_first_with_their_scores():
    tracker = HandTracker()
    hands = tracker.update([det(10, 10, score=0.5), det(200, 10, score=0.8)], 0)
    assert [h.score for h in hands] == [0.8, 0.5]
    assert all(h.age == 1 for h in hands)
    assert [h.age for h in tracker.update([det(12, 10, score=0.5)], 1 / FPS)] == [2]


def test_a_tracks_gesture_is_the_vote_of_its_last_frames():
    from handnet.peaks import Detection

    tracker = HandTracker(gesture_votes=3, smooth=False)
    seen = []
    for k, gesture in enumerate(["fist", "palm", "fist", "palm", "palm", "fist"]):
        hands = tracker.update([Detection(50 + k, 50, 10, 0.9, "open", gesture, 0.5 + 0.1 * k)], t=k / 30)
        seen.append(hands[0].gesture)
    # windows: [f] [f p] [f p f] [p f p] [f p p] [p p f]; a tie goes to the latest gesture
    assert seen == ["fist", "palm", "fist", "palm", "palm", "palm"]
    assert hands[0].gesture_score == pytest.approx((0.8 + 0.9) / 2)  # the mean of palm's votes in the window
    assert HandTracker().update([Detection(5, 5, 5, 0.9, "open")], t=0)[0].gesture is None
    with pytest.raises(ValueError, match="gesture_votes"):
        HandTracker(gesture_votes=0)


def test_a_tracks_open_or_other_label_changes_only_after_label_frames_in_a_row():
    tracker = HandTracker(smooth=False)  # label_frames 2 by default
    labels = ["other", "other", "open", "other", "open", "open", "open", "other", "other"]
    seen = [tracker.update([Detection(50, 50, 10, 0.9, label, open_score=0.1)], t=k / 30)[0].label
            for k, label in enumerate(labels)]
    # one noisy open frame does not release a grab; two in a row do
    assert seen == ["other", "other", "other", "other", "other", "open", "open", "open", "other"]
    at_once = HandTracker(smooth=False, label_frames=1)
    assert [at_once.update([Detection(50, 50, 10, 0.9, label)], t=k / 30)[0].label
            for k, label in enumerate(labels)] == labels
    assert tracker.update([Detection(50, 50, 10, 0.9, "other", open_score=0.25)], t=1)[0].open_score == 0.25
    with pytest.raises(ValueError, match="label_frames"):
        HandTracker(label_frames=0)
