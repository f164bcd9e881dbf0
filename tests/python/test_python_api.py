"""Python callbacks, Ctrl-C, and predictions from the inputs Python users hold."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import histocnn


def small_trainer(data, out, **extra):
    options = dict(backbone="simple_cnn", freeze_backbone=False, image_size=40, epochs=2, hidden1=32, hidden2=16,
                   output_dir=str(out), progress=False, seed=4)
    options.update(extra)
    return histocnn.Trainer(data_dir=str(data), **options)


def test_python_callback_is_called_and_can_stop_and_change_lr(synthetic_data, tmp_path):
    calls = []

    class Recorder(histocnn.Callback):
        def on_train_begin(self, logs):
            calls.append(("begin", logs["epochs"]))

        def on_batch_end(self, batch, loss):
            calls.append(("batch", batch))

        def on_epoch_end(self, epoch, logs):
            calls.append(("epoch", epoch, logs["val_auc"]))
            self.learning_rate = 1e-5
            self.stop_training = epoch == 2

    history = small_trainer(synthetic_data, tmp_path, epochs=4, callbacks=[Recorder()]).fit()
    assert calls[0] == ("begin", 4)
    epochs = [c for c in calls if c[0] == "epoch"]
    assert [c[1] for c in epochs] == [1, 2]  # stopped after epoch 2
    assert sum(1 for c in calls if c[0] == "batch") > 2
    assert len(history) == 2
    assert history[1]["learning_rate"] == pytest.approx(1e-5)  # set at the end of epoch 1
    assert history[0]["val_auc"] == pytest.approx(epochs[0][2])


def test_per_patient_caps_each_epoch_at_n_patches_of_each_patient(synthetic_data, tmp_path, capfd):
    batches = []

    class Counter(histocnn.Callback):
        def on_epoch_begin(self, epoch):
            batches.append(0)

        def on_batch_end(self, batch, loss):
            batches[-1] += 1

    small_trainer(synthetic_data, tmp_path, epochs=2, batch_size=4, per_patient=5, callbacks=[Counter()]).fit()
    match = re.search(r"at most 5 patches of each patient: (\d+) of the (\d+) training patches", capfd.readouterr().err)
    assert match, "the trainer did not say how many patches an epoch draws"
    drawn, total = map(int, match.groups())
    assert total % 30 == 0 and drawn == 5 * (total // 30)  # 30 patches per synthetic patient
    assert batches == [-(-drawn // 4)] * 2
    with pytest.raises(ValueError, match="cannot be combined"):
        small_trainer(synthetic_data, tmp_path / "both", per_patient=5, sampler="balanced").fit()


def test_an_exception_in_a_callback_reaches_the_caller(synthetic_data, tmp_path):
    class Broken(histocnn.Callback):
        def on_epoch_end(self, epoch, logs):
            raise ZeroDivisionError("from the callback")

    with pytest.raises(ZeroDivisionError, match="from the callback"):
        small_trainer(synthetic_data, tmp_path, callbacks=[Broken()]).fit()


def test_sigint_stops_training_and_keeps_the_checkpoint(synthetic_data, tmp_path):
    script = textwrap.dedent(f"""
        import histocnn, sys
        class Slow(histocnn.Callback):
            def on_epoch_end(self, epoch, logs):
                print("epoch", epoch, flush=True)
        t = histocnn.Trainer(data_dir={str(synthetic_data)!r}, backbone="simple_cnn", freeze_backbone=False,
                             image_size=40, epochs=50, hidden1=32, hidden2=16, output_dir={str(tmp_path)!r},
                             name="r", progress=False, callbacks=[Slow()])
        try:
            t.fit()
        except KeyboardInterrupt:
            print("interrupted", len(t.result.history.epochs), flush=True)
            sys.exit(3)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HISTOCNN_PROGRESS": "0"})
    line = proc.stdout.readline()
    assert line.startswith("epoch 1"), line + proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err
    done = int(out.split("interrupted")[1])
    assert 1 <= done < 50
    latest = (tmp_path / "r" / "checkpoint" / "latest").read_text().strip()
    assert latest == f"epoch-{done}"
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_predict_accepts_paths_numpy_torch_and_pil(synthetic_data, tmp_path):
    import torch
    from PIL import Image
    trainer = small_trainer(synthetic_data, tmp_path, epochs=1)
    trainer.fit()
    predictor = histocnn.Predictor(trainer.result.model_dir)
    files = sorted(synthetic_data.glob("*/*/*.png"))[:6]
    arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    from_paths = predictor.predict([str(f) for f in files])
    from_numpy = predictor.predict(arrays)
    from_torch = predictor.predict([torch.from_numpy(a.copy()) for a in arrays])
    from_torch_chw = predictor.predict([torch.from_numpy(a.copy()).permute(2, 0, 1) for a in arrays])
    from_pil = predictor.predict([Image.open(f) for f in files])
    assert from_paths.shape == (6,)
    for other in (from_numpy, from_torch, from_torch_chw, from_pil):
        np.testing.assert_allclose(other, from_paths, atol=1e-6)
    assert np.all((from_paths >= 0) & (from_paths <= 1))
    # The same numbers as the run's own batch evaluation of those patches.
    manifest = histocnn.data.Manifest.load_csv(str(trainer.result.run_dir / "manifest.csv"))
    evaluation = histocnn.evaluate(trainer.result.model_dir, manifest=str(trainer.result.run_dir / "manifest.csv"),
                                   split="all")
    by_name = {os.path.basename(r.path): p for r, p in zip(manifest.rows, evaluation.predictions.p_positive)}
    np.testing.assert_allclose(from_paths, [by_name[f.name] for f in files], atol=1e-6)
    # The run's own test predictions, as training wrote them to predictions_test.csv.
    with open(trainer.result.run_dir / "predictions_test.csv") as f:
        written = list(csv.DictReader(f))
    assert list(trainer.result.test_predictions.labels) == [int(r["label"]) for r in written]
    np.testing.assert_allclose(trainer.result.test_predictions.p_positive, [float(r["p_positive"]) for r in written])
    feats = predictor.features(arrays[:2])
    assert isinstance(feats, torch.Tensor) and feats.shape == (2, 256)
    with pytest.raises(ValueError, match="HxWx3"):
        predictor.predict(np.zeros((5, 5), dtype=np.uint8))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        predictor.predict([str(tmp_path / "missing.png")])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores to tell every core from one thread")
def test_a_manifest_built_from_some_rows_of_another_keeps_them_and_round_trips(synthetic_data, tmp_path):
    import histocnn
    whole = histocnn.data.scan_directory(str(synthetic_data)).manifest
    keep = set(whole.patients()[:2])
    rows = [r for r in whole.rows if r.patient in keep]
    part = histocnn.data.Manifest(whole.root, rows)
    assert part.patients() == sorted(keep) and len(part) == len(rows) < len(whole)
    assert [(r.path, r.label, r.x, r.y) for r in part.rows] == [(r.path, r.label, r.x, r.y) for r in rows]
    part.save_csv(str(tmp_path / "part.csv"))
    again = histocnn.data.Manifest.load_csv(str(tmp_path / "part.csv"))
    def files(m):
        return [(os.path.realpath(os.path.join(m.root, r.path)), r.patient, r.label) for r in m.rows]
    assert files(again) == files(part)
    with pytest.raises(TypeError):
        histocnn.data.Manifest(whole.root, ["not a row"])


def test_predictor_sets_every_core_unless_told_to_leave_threads_alone(serving_runs):
    # A fresh interpreter whose torch starts on one thread, as Debian's can: a Predictor then
    # predicts on every core (threads=0), on the count it is given, or leaves the setting (None).
    model = str(serving_runs[0] / "model")
    script = textwrap.dedent(f"""
        import torch, histocnn
        counts = []
        for threads, before in ((None, 1), (0, 1), (1, 2)):
            torch.set_num_threads(before)
            histocnn.Predictor({model!r}, threads=threads)
            counts.append(torch.get_num_threads())
        print(*counts)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"})
    assert out.returncode == 0, out.stderr
    assert list(map(int, out.stdout.split())) == [1, os.cpu_count(), 1]
    with pytest.raises(ValueError, match="threads must be"):
        histocnn.Predictor(model, threads=-1)


@pytest.mark.parametrize("variable", [None, "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS"])
def test_configure_threads_gives_openblas_one_thread_unless_told_otherwise(variable):
    # A fresh interpreter: OpenBLAS reads its variables when it loads. The extension module's
    # libraries are loaded privately (RTLD_LOCAL), the case the library's lookup must still find.
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")}
    cores = os.cpu_count() or 1
    if variable:
        env[variable] = str(cores)
    script = "import histocnn; before = histocnn.blas_threads(); histocnn.configure_threads(); " \
             "print(before, histocnn.blas_threads())"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    assert before == cores  # OpenBLAS's own default (or the variable): its pool, one thread a core
    assert after == (cores if variable else 1)
