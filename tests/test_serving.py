"""The serving rule: windows ending at every second, each second from the last window holding it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mmgat.model.serving import LatestPerSecond, served_windows


@given(length=st.integers(1, 60), window=st.integers(1, 20))
def test_each_second_comes_from_the_last_served_window_holding_it(length, window):
    seconds = LatestPerSecond()
    for start, end in served_windows(length, window):
        seconds.add(end, [[end, k] for k in range(start, end)])  # row: (window end, its second)
    rows = seconds.array()
    assert rows[:, 1].tolist() == list(range(length))
    assert rows[:, 0].tolist() == [min(k + window, length) for k in range(length)]


def test_impossible_windows_and_gaps_are_errors():
    seconds = LatestPerSecond()
    with pytest.raises(ValueError):
        seconds.add(2, np.zeros((3, 20)))
    seconds.add(5, np.zeros((2, 20)))  # seconds 0-2 never held
    with pytest.raises(ValueError, match="never held"):
        seconds.array()
