"""Window alignment against hand-computed examples; zero-copy layout."""

import numpy as np
import pandas as pd
import pytest

from deepcast.features.windows import (
    Epochs,
    Panel,
    gather_windows,
    last_windows,
    make_dataset,
    panel_from_frame,
    window_starts,
)


def _panel() -> Panel:
    # series a: 0..9 (10 points), series b: 100..103 (4 points)
    df = pd.DataFrame({
        "unique_id": ["a"] * 10 + ["b"] * 4,
        "ds": list(range(1, 11)) + list(range(5, 9)),
        "y": [float(v) for v in range(10)] + [100.0, 101.0, 102.0, 103.0],
    })
    return panel_from_frame(df)


def test_panel_layout():
    p = _panel()
    assert list(p.ids) == ["a", "b"]
    assert list(p.offsets) == [0, 10, 14]
    assert list(p.last_ds) == [10, 8]
    assert p.values.dtype == np.float32


def test_panel_from_arrow_string_ids_and_tail():
    df = pd.DataFrame({"unique_id": pd.array(["a"] * 10 + ["b"] * 4, dtype="string[pyarrow]"),
                       "ds": list(range(1, 11)) + list(range(5, 9)),
                       "y": [float(v) for v in range(10)] + [100.0, 101.0, 102.0, 103.0]})
    p = panel_from_frame(df)
    assert list(p.ids) == ["a", "b"] and list(p.offsets) == [0, 10, 14]
    t = p.tail(5)
    assert list(t.offsets) == [0, 5, 9] and list(t.last_ds) == [10, 8]
    assert list(t.values) == [5, 6, 7, 8, 9, 100, 101, 102, 103]


def test_window_starts_hand_computed():
    p = _panel()
    # lookback 3, horizon 2 -> a window needs 5 points: a has starts 0..5, b has none
    starts = window_starts(p.offsets, 3, 2)
    assert list(starts) == [0, 1, 2, 3, 4, 5]
    w = gather_windows(p.values, starts, 5)
    assert w[0].tolist() == [0, 1, 2, 3, 4]
    assert w[-1].tolist() == [5, 6, 7, 8, 9]


def test_window_starts_stop_and_min_target_end():
    p = _panel()
    # keep the last 2 points of each series out (holdout): targets must end <= 8 for a
    stop = p.ends - 2
    assert list(window_starts(p.offsets, 3, 2, stop=stop)) == [0, 1, 2, 3]
    # validation windows: target end in (6, 8]
    val = window_starts(p.offsets, 3, 2, stop=stop, min_target_end=stop - 2)
    assert list(val) == [2, 3]
    x_y = gather_windows(p.values, val, 5)
    assert x_y[:, 3:].tolist() == [[5, 6], [6, 7]]  # targets never reach the holdout 8, 9


def test_windows_never_cross_series():
    p = _panel()
    starts = window_starts(p.offsets, 2, 1)
    series_of_start = np.searchsorted(p.offsets, starts, side="right") - 1
    series_of_end = np.searchsorted(p.offsets, starts + 2, side="right") - 1
    assert (series_of_start == series_of_end).all()
    assert len(starts) == (10 - 3 + 1) + (4 - 3 + 1)


def test_last_windows_and_truncate():
    p = _panel()
    assert last_windows(p, 3).tolist() == [[7, 8, 9], [101, 102, 103]]
    t = p.truncate(1)
    assert list(t.lengths) == [9, 3]
    assert last_windows(t, 2).tolist() == [[7, 8], [101, 102]]
    with pytest.raises(ValueError, match="lookback"):
        last_windows(p, 5)


def test_gather_is_a_view_over_the_series():
    p = _panel()
    view = np.lib.stride_tricks.sliding_window_view(p.values, 3)
    assert np.shares_memory(view, p.values)


def test_make_dataset_batches_match_numpy():
    p = _panel()
    starts = window_starts(p.offsets, 3, 2)
    ds = make_dataset(p.values, starts, (3, 2, 4))
    xs, ys = zip(*[(x["y"].numpy(), y.numpy()) for x, y in ds], strict=True)
    x, y = np.concatenate(xs), np.concatenate(ys)
    ref = gather_windows(p.values, starts, 5)
    assert x.shape == (6, 3, 1) and y.shape == (6, 2)
    np.testing.assert_array_equal(x[..., 0], ref[:, :3])
    np.testing.assert_array_equal(y, ref[:, 3:])


def test_make_dataset_shuffle_depends_only_on_seed_and_epoch():
    p = _panel()
    starts = window_starts(p.offsets, 3, 2)

    def epochs(seed, first, last):
        ds = make_dataset(p.values, starts, (3, 2, 6), epochs=Epochs(seed, range(first, last)))
        return [y.numpy()[:, 0].tolist() for _, y in ds]

    full = epochs(1, 0, 3)
    assert len(full) == 3 and all(sorted(e) == [3, 4, 5, 6, 7, 8] for e in full)
    assert full == epochs(1, 0, 3)
    assert full[1:] == epochs(1, 1, 3)  # a resumed run sees the same later epochs
    assert full[0] != full[1] or full[1] != full[2]  # reshuffled between epochs
    assert epochs(1, 0, 3) != epochs(2, 0, 3)


def test_windows_per_epoch_draw_a_fresh_seeded_sample_each_epoch():
    """``per_epoch``: each epoch is a sample of that many distinct windows (its order's
    first ones), another one every epoch, the same for the same seed and epoch."""
    values = np.arange(200, dtype=np.float32)
    starts = np.arange(150)  # windows of 5 points: y[:, 0] = start + 3

    def epochs(first, last, per_epoch=40, seed=3):
        ds = make_dataset(values, starts, (3, 2, 16),
                          epochs=Epochs(seed, range(first, last), per_epoch))
        out, sizes = [], []
        for _, y in ds:
            sizes.append(len(y))
            out.extend(y.numpy()[:, 0].astype(int).tolist())
        k = per_epoch or len(starts)
        return [out[i:i + k] for i in range(0, len(out), k)], sizes

    sample, sizes = epochs(0, 4)
    assert sizes == [16, 16, 8] * 4  # 40 windows per epoch, the remainder batch included
    assert all(len(set(e)) == 40 and set(e) <= set(range(3, 153)) for e in sample)
    assert len({tuple(sorted(e)) for e in sample}) == 4  # another sample every epoch
    assert len(set().union(*map(set, sample))) > 40
    assert epochs(0, 4)[0] == sample and epochs(2, 4)[0] == sample[2:]  # resumable
    assert epochs(0, 4, seed=4)[0] != sample
    # more than the window count (training.min_steps_per_epoch): the first pass in the
    # order of no cap, then further passes, each every window once in an order of its own
    long, sizes = epochs(0, 2, per_epoch=400)
    plain = epochs(0, 2, per_epoch=None)[0]
    assert sizes == [16] * 25 * 2 and [e[:150] for e in long] == plain
    for e in long:
        assert sorted(e[150:300]) == sorted(plain[0]) and e[150:300] != e[:150]
        assert len(set(e[300:])) == 100 and e[300:] != e[150:250]
    assert long[0] != long[1] and epochs(0, 2, per_epoch=400)[0] == long


def test_make_dataset_batch_sizes_with_remainder():
    """Full batches, then the remainder of every epoch; fewer windows than one batch."""
    p = _panel()
    starts = window_starts(p.offsets, 3, 2)  # 6 windows
    sizes = [len(y) for _, y in make_dataset(p.values, starts, (3, 2, 4),
                                             epochs=Epochs(0, range(2)))]
    assert sizes == [4, 2, 4, 2]
    one = [y.numpy() for _, y in make_dataset(p.values, starts, (3, 2, 10))]
    assert [len(y) for y in one] == [6]
    np.testing.assert_array_equal(one[0], gather_windows(p.values, starts, 5)[:, 3:])
