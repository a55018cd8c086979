"""What a soak reports: the memory trend after the warm-up, stalls (sample intervals
without a dream step), the source's absences, and the CSV and plot it writes."""
from __future__ import annotations

import cv2
import pytest

from qa.soak_report import Sample, absences, plot, read_csv, slope_mb_per_hour, stalls, summary, warm, write_csv


def samples(rss, steps, ok) -> list[Sample]:
    return [Sample(10.0 * i, r, 9, 6, s, 0, 100 * i, 300 * i, o, 76800) for i, (r, s, o) in enumerate(zip(rss, steps, ok))]


def test_trend_stalls_and_absences(tmp_path):
    # 3.6 MB over 360 s = 36 MB/h; steps stop between 40 and 70 s; the source is away 20-50 s
    run = samples([900.0 + 0.1 * i for i in range(37)], [0, 5, 9, 14, 20, 20, 20, 20, *range(25, 54)],
                  [True, True, False, False, False, True, *[True] * 31])
    assert slope_mb_per_hour(run) == pytest.approx(36.0)
    assert [s.seconds for s in warm(run)][0] == pytest.approx(80.0)      # a fifth of the run
    assert stalls(run) == [(40.0, 70.0)] and absences(run) == [(20.0, 50.0)]
    lines = summary(run, warm(run), slope_mb_per_hour(warm(run)))
    assert "slope after warm-up +36.00 MB/hour" in lines[1] and "stalls (sample intervals without a dream step): 1, " \
        "longest 30 s" == lines[3]
    write_csv(run, tmp_path / "soak.csv")
    assert read_csv(tmp_path / "soak.csv") == run
    plot(run, warm(run), 36.0, "test", tmp_path / "soak.png")
    assert cv2.imread(str(tmp_path / "soak.png")).shape[2] == 3
    flat = samples([950.0] * 10, list(range(10)), [True] * 10)
    assert slope_mb_per_hour(flat) == 0.0 and stalls(flat) == [] and absences(flat) == []
