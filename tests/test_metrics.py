import pytest

from handnet.annotations import Hand
from handnet.metrics import average_precision, evaluate_matches, match_image
from handnet.peaks import Detection

FRAME = (240, 320)


def det(x, y, score, radius=20):
    return Detection(x, y, radius, score, "open")


def test_match_rule_true_false_positives_and_misses():
    hands = [Hand(100, 100, 30, "open", "positive"), Hand(250, 60, 10, "open", "positive")]
    counted, truths = match_image([det(110, 95, 0.9), det(200, 200, 0.8), det(100, 100, 0.7)], hands, FRAME)
    assert [(s, tp) for s, tp, _ in counted] == [(0.9, True), (0.8, False), (0.7, False)]  # a duplicate is wrong
    assert [score for _, score in truths] == [0.9, None]


def test_ignore_hands_are_neither_hits_nor_misses():
    hands = [Hand(100, 100, 30, "other", "ignore"), Hand(200, 100, 30, "open", "positive")]
    counted, truths = match_image([det(105, 100, 0.9)], hands, FRAME)
    assert counted == [] and len(truths) == 1
    result = evaluate_matches([(counted, truths)], 0.5)
    assert result["recall"] == 0 and result["false_positives"] == 0


def test_far_hands_match_within_the_floor_and_split_by_size():
    hands = [Hand(50, 50, 4, "open", "positive"), Hand(200, 120, 60, "open", "positive")]
    counted, truths = match_image([det(56, 50, 0.9, 5), det(230, 120, 0.6, 60)], hands, FRAME)
    result = evaluate_matches([(counted, truths)], 0.5)
    assert result["precision"] == result["recall"] == result["f1"] == 1.0
    assert result["far"]["hands"] == 1 and result["near"]["hands"] == 1


def test_threshold_changes_precision_recall():
    hands = [Hand(100, 100, 30, "open", "positive"), Hand(250, 60, 30, "open", "positive")]
    per_image = [match_image([det(100, 100, 0.9), det(250, 60, 0.3), det(20, 200, 0.5)], hands, FRAME)]
    high = evaluate_matches(per_image, 0.4)
    assert (high["precision"], high["recall"]) == (0.5, 0.5)
    low = evaluate_matches(per_image, 0.2)
    assert (low["precision"], low["recall"]) == pytest.approx((2 / 3, 1.0))


def test_average_precision_all_points():
    assert average_precision([0.9, 0.8, 0.7], [True, True, True], 3) == pytest.approx(1.0)
    # TP, FP, TP with 2 hands: recall 0.5 at precision 1, then 1.0 at precision 2/3
    assert average_precision([0.9, 0.8, 0.7], [True, False, True], 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision([], [], 0) == 0.0


def test_best_threshold_picks_the_f1_maximum():
    from handnet.evaluate import best_threshold

    hands = [Hand(100, 100, 30, "open", "positive"), Hand(250, 60, 30, "open", "positive")]
    # Both hands score 0.5 or more; a false positive scores 0.35: the best cut lies above 0.35.
    per_image = [match_image([det(100, 100, 0.9), det(250, 60, 0.5), det(20, 200, 0.35)], hands, FRAME)]
    assert best_threshold(per_image) == 0.5
    assert best_threshold(per_image, grid=(0.2, 0.3, 0.4)) == 0.4  # the best the grid offers


def test_a_bucket_without_hands_reports_no_figures():
    hands = [Hand(100, 100, 60, "open", "positive")]  # near only
    result = evaluate_matches([match_image([det(100, 100, 0.9, 60)], hands, FRAME)], 0.5)
    assert result["near"]["f1"] == 1.0
    assert result["far"]["hands"] == 0 and result["far"]["recall"] is None and result["far"]["f1"] is None
    assert result["far"]["precision"] is None  # nothing was detected there either


def test_cuts_score_each_image_at_its_own_threshold():
    hands = [Hand(100, 100, 30, "open", "positive")]
    per_image = [match_image([det(100, 100, 0.6), det(20, 200, 0.3)], hands, FRAME),
                 match_image([det(100, 100, 0.3)], hands, FRAME)]
    # First image cut at 0.5: its hand found, the 0.3 false positive dropped; second at 0.2: found.
    result = evaluate_matches(per_image, 0.4, cuts=[0.5, 0.2])
    assert (result["precision"], result["recall"], result["threshold"]) == (1.0, 1.0, 0.4)
    assert result["ap"] == evaluate_matches(per_image, 0.4)["ap"]  # AP is threshold-free
    with pytest.raises(ValueError, match="2 images"):
        evaluate_matches(per_image, 0.4, cuts=[0.5])


def test_cross_fitting_scores_each_fold_at_the_other_folds_best_threshold():
    from handnet.evaluate import cross_fit_cuts

    hands = [Hand(100, 100, 30, "open", "positive")]
    # Fold A: hands at 0.9, false positives at 0.55, so its best cut is 0.9 (ties go higher).
    # Fold B: hands at 0.35, nothing else, so its best cut is 0.35.
    fold_a = [match_image([det(100, 100, 0.9), det(20, 200, 0.55)], hands, FRAME)] * 2
    fold_b = [match_image([det(100, 100, 0.35)], hands, FRAME)] * 2
    cuts, halves = cross_fit_cuts(fold_a + fold_b, [True, True, False, False])
    assert halves == (0.9, 0.35) and cuts == [0.35, 0.35, 0.9, 0.9]
    # Honest figures: fold A at 0.35 keeps its false positives, fold B at 0.9 loses its hands.
    crossed = evaluate_matches(fold_a + fold_b, 0.35, cuts)
    assert (crossed["true_positives"], crossed["false_positives"], crossed["recall"]) == (2, 2, 0.5)


def test_cross_fitting_tunes_each_fold_on_its_chosen_images_only():
    from handnet.evaluate import cross_fit_cuts

    hands = [Hand(100, 100, 30, "open", "positive")]
    clean = match_image([det(100, 100, 0.35)], hands, FRAME)  # best cut 0.35
    noisy = match_image([det(100, 100, 0.9), *(det(20 + 60 * k, 200, 0.55) for k in range(3))], hands, FRAME)
    # Each fold holds one of each; only the clean images may tune: both folds pick 0.35.
    cuts, halves = cross_fit_cuts([clean, noisy, clean, noisy], [True, True, False, False],
                                  tuned=[True, False, True, False])
    assert halves == (0.35, 0.35) and cuts == [0.35] * 4
    # Tuned on all four, the noisy images' false positives pull each fold's cut up.
    assert cross_fit_cuts([clean, noisy, clean, noisy], [True, True, False, False])[1] == (0.9, 0.9)


def test_f1_interval_resamples_whole_groups():
    from handnet.metrics import f1_interval

    hit = ([(0.9, True, "near")], [("near", 0.9)])
    alarm = ([(0.8, False, "near")], [])
    miss = ([], [("far", None)])
    # Every group alike: any resampling has the same F1, the point figure.
    same = [hit, alarm] * 5
    point = evaluate_matches(same, 0.5)["f1"]
    assert f1_interval(same, 0.5, [k // 2 for k in range(10)]) == pytest.approx((point, point))
    # Groups that differ spread it around the point figure, and more of them narrow it.
    mixed = [hit, hit, alarm, miss]
    low, high = f1_interval(mixed * 2, 0.5, list(range(8)))
    assert low < evaluate_matches(mixed, 0.5)["f1"] < high
    many = f1_interval(mixed * 50, 0.5, list(range(200)))
    assert many[1] - many[0] < (high - low) / 2
    # Near-duplicate frames move together: copying each frame within its group buys no precision.
    copies = [image for image in mixed * 2 for _ in range(10)]
    assert f1_interval(copies, 0.5, [k // 10 for k in range(80)]) == pytest.approx((low, high))
    # Each image at its own threshold, as cross-fitted figures are.
    assert f1_interval([hit, hit], 0.5, [0, 1], cuts=[0.95, 0.5]) == pytest.approx((0.0, 1.0))
    assert f1_interval(mixed, 0.5, [0] * 4) is None  # one group: nothing to resample


def test_the_box_rule_finds_a_hand_by_a_centre_inside_its_box():
    """The benchmark's rule: a detection is the hand whose box holds its centre, however far from
    the box's middle (a loose box takes in the forearm); hands without boxes fall back to reach."""
    arm = Hand(100, 100, 20, "hello", "positive", box=(80, 60, 120, 200))
    fist = Hand(300, 100, 20, "fist", "ignore", box=(280, 80, 320, 120))
    dets = [Detection(100, 190, 10, 0.9, "open"), Detection(318, 118, 10, 0.8, "open"), Detection(100, 300, 10, 0.7, "open")]
    counted, truths = match_image(dets, [arm, fist], (480, 640), rule="box")
    assert [(score, tp) for score, tp, _ in counted] == [(0.9, True), (0.7, False)]  # the fist's is ignored
    assert truths[0][1] == 0.9
    counted, _ = match_image(dets, [arm, fist], (480, 640))  # by radius: 90 px from the centre is too far,
    assert [tp for _, tp, _ in counted] == [False, False, False]  # and the fist's box corner beyond its reach
    plain = Hand(100, 100, 20, "open")
    assert match_image([Detection(110, 100, 5, 0.9, "open")], [plain], (480, 640), rule="box")[1][0][1] == 0.9
