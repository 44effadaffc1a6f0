"""Tests of fr_train.logs: JSONL records, truncation on resume, rank gating, throughput and the bar."""

from __future__ import annotations

import io
import json

import torch

import fr_train.logs as logs
from fr_train.logs import MetricsLog, Progress, ThroughputMeter, read_metrics, truncate_metrics


def test_metrics_log_writes_one_json_record_per_call(tmp_path):
    log = MetricsLog(tmp_path, tensorboard=False)
    log.write(1, {"loss": torch.tensor(2.5), "lr": 0.1})
    log.write(2, {"loss": float("nan"), "name": "x"})
    log.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"step": 1, "loss": 2.5, "lr": 0.1},
                                                     {"step": 2, "loss": "nan", "name": "x"}]


def test_disabled_log_writes_nothing(tmp_path):
    log = MetricsLog(tmp_path / "rank1", enabled=False)
    log.write(1, {"loss": 1.0})
    log.close()
    assert not (tmp_path / "rank1").exists()


def test_log_appends_to_an_existing_file(tmp_path):
    for step in (1, 2):
        log = MetricsLog(tmp_path, tensorboard=False)
        log.write(step, {"loss": float(step)})
        log.close()
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2]


def test_truncate_keeps_records_up_to_the_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": s / 10}) + "\n" for s in (1, 2, 3, 4)))
    truncate_metrics(path, 2)
    assert read_metrics(path) == [{"step": 1, "loss": 0.1}, {"step": 2, "loss": 0.2}]
    truncate_metrics(tmp_path / "missing.jsonl", 2)  # nothing to do, no error
    assert not (tmp_path / "missing.jsonl").exists()


def test_throughput_counts_images_per_second(monkeypatch):
    clock = iter([10.0, 12.0, 13.0])
    monkeypatch.setattr(logs.time, "perf_counter", lambda: next(clock))
    meter = ThroughputMeter()  # t = 10
    meter.add(64)
    meter.add(36)
    assert meter.rate() == 50.0  # 100 images in 2 s
    meter.add(30)
    assert meter.rate() == 30.0  # counting restarted at t = 12


def test_progress_bar_shows_steps_loss_and_img_s():
    out = io.StringIO()
    bar = Progress(total=10, initial=4, file=out)
    bar.update(3, loss=1.5, img_s=100.0)
    bar.update_to(9)
    bar.close()  # draws the final state
    final = out.getvalue().split("\r")[-1]
    assert "9/10" in final and "loss=1.5" in final and "img_s=100" in final


def test_disabled_progress_bar_draws_nothing():
    out = io.StringIO()
    bar = Progress(total=10, enabled=False, file=out)
    bar.update(3, loss=1.0)
    bar.close()
    assert out.getvalue() == ""


def test_tensorboard_events_hold_the_logged_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fr_train.logs import MetricsLog

    log = MetricsLog(tmp_path, tensorboard=True)
    log.write(3, {"loss": 1.5, "lr": 0.1})
    log.write(4, {"loss": 1.25, "lr": 0.1})
    log.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    losses = [(e.step, e.value) for e in events.Scalars("loss")]
    assert losses == [(3, 1.5), (4, 1.25)]
