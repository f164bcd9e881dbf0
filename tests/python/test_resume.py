"""A training run killed with SIGKILL and restarted with the same command ends as if never killed."""
import csv
import json
import os
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

LEARNED = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_auc", "learning_rate"]


def learned_history(run_dir):
    with open(run_dir / "history.csv") as f:
        return [[row[k] for k in LEARNED] for row in csv.DictReader(f)]


def train_command(cli, data, out, epochs=5):
    return [cli, "train", "--data", str(data), "--out", str(out), "--backbone", "simple_cnn", "--unfreeze",
            "--image-size", "40", "--epochs", str(epochs), "--hidden1", "32", "--hidden2", "16",
            "--optimizer", "adam", "--augment", "histology", "--seed", "3", "--workers", "2"]


def test_kill_and_resume_gives_the_uninterrupted_history(cli, synthetic_data, tmp_path):
    env = {**os.environ, "HISTOCNN_PROGRESS": "0"}
    subprocess.run(train_command(cli, synthetic_data, tmp_path / "straight"), env=env, check=True,
                   capture_output=True, timeout=900)
    [straight] = list((tmp_path / "straight").iterdir())

    # Same command, killed with SIGKILL as soon as the checkpoint of epoch 2 exists.
    cmd = train_command(cli, synthetic_data, tmp_path / "killed")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    latest = None
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "killed").glob("*/checkpoint/latest"))
        if found and found[0].read_text().strip() == "epoch-2":
            latest = found[0]
            break
        time.sleep(0.05)
    assert latest is not None, "the run finished or failed before its second checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = latest.parent.parent
    assert not (run_dir / "metrics.json").exists()

    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from the checkpoint of epoch" in resumed.stderr
    assert run_dir.name == straight.name  # the default run name comes from the options
    assert learned_history(run_dir) == learned_history(straight)
    assert untimed_metrics(run_dir) == untimed_metrics(straight)


def untimed_metrics(run_dir):
    """metrics.json without its wall times, which differ between identical runs."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("seconds", "fit_seconds", "feature_cache_seconds"):
        metrics.pop(key)
    return metrics


def _read_records(path):
    import crc32c

    def masked(crc):
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    data = path.read_bytes()
    records, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        (length_crc,) = struct.unpack_from("<I", data, pos + 8)
        assert length_crc == masked(crc32c.crc32c(data[pos:pos + 8]))
        payload = data[pos + 12:pos + 12 + length]
        (payload_crc,) = struct.unpack_from("<I", data, pos + 12 + length)
        assert payload_crc == masked(crc32c.crc32c(payload))
        records.append(payload)
        pos += 12 + length + 4
    return records


def _event_class():
    """tensorflow.Event and Summary, declared from their .proto field numbers (not from histocnn)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    f = descriptor_pb2.FileDescriptorProto(name="event_test.proto", package="tensorflow")
    value = f.message_type.add(name="Value")
    value.field.add(name="tag", number=1, type=9, label=1)
    value.field.add(name="simple_value", number=2, type=2, label=1)
    summary = f.message_type.add(name="Summary")
    summary.field.add(name="value", number=1, type=11, label=3, type_name=".tensorflow.Value")
    event = f.message_type.add(name="Event")
    event.field.add(name="wall_time", number=1, type=1, label=1)
    event.field.add(name="step", number=2, type=3, label=1)
    event.field.add(name="file_version", number=3, type=9, label=1)
    event.field.add(name="summary", number=5, type=11, label=1, type_name=".tensorflow.Summary")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("tensorflow.Event"))


def test_tensorboard_event_file_is_valid(cli, synthetic_data, tmp_path):
    subprocess.run(train_command(cli, synthetic_data, tmp_path, epochs=2), check=True, capture_output=True,
                   env={**os.environ, "HISTOCNN_PROGRESS": "0"}, timeout=900)
    [run_dir] = list(tmp_path.iterdir())
    [events] = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    Event = _event_class()
    parsed = [Event.FromString(r) for r in _read_records(events)]
    assert parsed[0].file_version == "brain.Event:2"
    history = list(csv.DictReader(open(run_dir / "history.csv")))
    for step, row in enumerate(history, start=1):
        ev = parsed[step]
        assert ev.step == step
        values = {v.tag: v.simple_value for v in ev.summary.value}
        assert values["train/loss"] == pytest.approx(float(row["train_loss"]), rel=1e-6)
        assert values["val/auc"] == pytest.approx(float(row["val_auc"]), rel=1e-6)
