"""histocnn pipeline from the command line and from Python: a run that ends in a version
`histocnn serve` answers with, a worse model refused, kill -9 and resume, two pipelines on one
store, and the compiled Kubeflow file checked against a schema of KFP's PipelineSpec and run."""
import base64
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import time
import urllib.request

import pytest

from conftest import ROOT, ServeProcess, run_cli

SCHEMA = ROOT / "src" / "pipeline" / "kfp_pipeline_spec.schema.json"

TINY = """
name: tiny
pipeline_root: {root}
ExampleGen:
  synthetic: {{patients: 8, patches_per_patient: {per_patient}, seed: 5}}
  split: {{train: 0.6, val: 0.2, test: 0.2, seed: 1}}
Trainer:
  backbone: simple_cnn
  freeze_backbone: false
  image_size: 32
  hidden1: 16
  hidden2: 8
  epochs: {epochs}
  batch_size: 16
  workers: 1
  seed: {seed}
  tensorboard: false
Evaluator:
  value_thresholds: {{roc_auc: 0.0}}
  change_thresholds: {change}
  stain_shift: 0.1
Pusher:
  model_base_path: {base}
"""


def tiny(tmp_path, name="pipeline.yaml", root="root", base="models", epochs=1, seed=42, per_patient=20,
         change="{roc_auc: -0.01}"):
    path = tmp_path / name
    path.write_text(TINY.format(root=tmp_path / root, base=tmp_path / base, epochs=epochs, seed=seed,
                                per_patient=per_patient, change=change))
    return path


def versions(base):
    return sorted(int(p.name) for p in pathlib.Path(base).iterdir() if p.name.isdigit()) if base.exists() else []


def assert_no_half_written_version(base):
    """Every numeric folder a server would look at is a complete bundle."""
    if not base.exists():
        return
    for p in base.iterdir():
        if p.name.isdigit():
            assert (p / "model.json").exists() and (p / "model.safetensors").exists(), p


def executions(store):
    with sqlite3.connect(store) as db:
        return db.execute("SELECT type, state FROM executions ORDER BY id").fetchall()


def test_python_pipeline_reports_progress_and_lineage(tmp_path, capsys):
    import histocnn
    pipeline = histocnn.Pipeline(tiny(tmp_path))
    with pytest.raises(FileNotFoundError):
        pipeline.runs()  # nothing has run yet: no store is created by asking
    assert not (tmp_path / "root" / "metadata.sqlite").exists()
    events = []
    result = pipeline.run(callback=events.append)
    assert result["state"] == "COMPLETE"
    assert result["blessed"] is True and result["pushed_version"] == 1
    components = ["ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer", "Evaluator",
                  "Pusher"]
    assert [(e["component"], e["state"]) for e in events] == [(c, s) for c in components for s in ("RUNNING", "COMPLETE")]
    err = capsys.readouterr().err
    assert "[6/8] Trainer" in err and "[8/8] Pusher" in err
    # Each event carries the line the CLI prints for it, and that is what went to stderr.
    assert events[10]["line"] == "[6/8] Trainer ..."
    assert events[11]["line"].startswith("[6/8] Trainer           COMPLETE  ")
    assert all(e["line"] in err.splitlines() for e in events)

    lineage = pipeline.lineage(1)
    assert set(lineage["component"]) == set(components)
    push = lineage[lineage["depth"] == 0].iloc[0]
    assert push["component"] == "Pusher" and push["properties"]["version"] == "1"
    examples = lineage[lineage["artifact_type"] == "Examples"].iloc[0]
    assert (pathlib.Path(examples["uri"]) / "manifest.csv").exists()
    runs = pipeline.runs()
    assert list(runs["component"]) == components and set(runs["state"]) == {"COMPLETE"}

    # The same pipeline again: nothing is trained twice, nothing is pushed twice.
    again = pipeline.run(progress=False)
    assert {c["component"]: c["state"] for c in again["components"]}["Trainer"] == "CACHED"
    assert again["pushed_version"] == 1 and versions(tmp_path / "models") == [1]


def post_predict(url, png):
    body = json.dumps({"instances": [{"b64": base64.b64encode(png.read_bytes()).decode()}]}).encode()
    request = urllib.request.Request(f"{url}/v1/models/idc:predict", data=body,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["X-Model-Version"], json.loads(response.read())["predictions"]


def test_a_run_ends_in_a_version_serve_answers_and_a_worse_model_is_not_pushed(cli, tmp_path):
    yaml = tiny(tmp_path)
    base = tmp_path / "models"
    out = run_cli(cli, "pipeline", "run", yaml).stdout
    assert ": BLESSED" in out and "version 1 of" in out  # ": " so that NOT_BLESSED does not pass
    patch = next((tmp_path / "root" / "ExampleGen").glob("*/examples/data/*/1/*.png"))
    server = ServeProcess(cli, base)
    try:
        version, predictions = post_predict(server.url, patch)
        assert version == "1" and len(predictions) == 1 and abs(sum(predictions[0]) - 1) < 1e-5

        # A model that must beat the served one by 0.5 AUC cannot: NOT_BLESSED, version 1 stays live.
        worse = run_cli(cli, "pipeline", "run", yaml, "--set", "Evaluator.change_thresholds.roc_auc=0.5").stdout
        assert "NOT_BLESSED" in worse and "nothing pushed" in worse
        assert "Pusher            COMPLETE" in worse and "not pushed" in worse
        assert versions(base) == [1]
        [blessing] = [p for p in (tmp_path / "root" / "Evaluator").glob("*/blessing") if (p / "NOT_BLESSED").exists()]
        assert "failed" in (blessing / "reasons.txt").read_text()
        assert post_predict(server.url, patch)[0] == "1"
    finally:
        assert server.stop() == 0

    runs = run_cli(cli, "pipeline", "runs", "--pipeline", yaml).stdout
    assert runs.count("tiny-") == 2 and "CACHED" in runs
    lineage = run_cli(cli, "pipeline", "lineage", "--model-base-path", base, "--version", "1", "--pipeline", yaml).stdout
    for component in ("Pusher", "Evaluator", "Trainer", "StatisticsGen", "SchemaGen", "ExampleGen"):
        assert component in lineage
    missing = run_cli(cli, "pipeline", "lineage", "--model-base-path", base, "--version", "7", "--pipeline", yaml,
                      check=False)
    assert missing.returncode == 2 and "no record of version 7" in missing.stderr


def test_kill_9_at_any_moment_then_the_same_command_finishes_with_one_version(cli, tmp_path):
    """Killed while training (at its second checkpoint), the rerun reuses the finished components and
    resumes the Trainer; killed at other moments, no half-written version is ever in the base path;
    in the end exactly one version is pushed."""
    yaml = tiny(tmp_path, epochs=4)
    base = tmp_path / "models"
    store = tmp_path / "root" / "metadata.sqlite"
    env = {**os.environ, "HISTOCNN_PROGRESS": "0"}
    cmd = [cli, "pipeline", "run", str(yaml)]

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    latest = None
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "root" / "Trainer").glob("*/model/checkpoint/latest"))
        if found and found[0].read_text().strip() == "epoch-2":
            latest = found[0]
            break
        time.sleep(0.02)
    assert latest is not None, "the pipeline finished or failed before the Trainer's second checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_no_half_written_version(base)
    assert versions(base) == []
    # Python sees what `pipeline runs` shows: the killed process's run and Trainer as CANCELED, not
    # as RUNNING forever.
    import histocnn
    killed = histocnn.Pipeline(yaml).runs()
    assert set(killed["run_state"]) == {"CANCELED"}
    assert killed.set_index("component").loc["Trainer", "state"] == "CANCELED"

    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    for component in ("ExampleGen", "StatisticsGen", "SchemaGen", "Transform"):
        assert f"{component:<17} CACHED" in resumed.stdout
    assert f"{'Trainer':<17} COMPLETE" in resumed.stdout
    assert "resuming from the checkpoint of epoch 2" in resumed.stderr
    assert versions(base) == [1]
    runs = run_cli(cli, "pipeline", "runs", "--metadata", store).stdout
    assert "CANCELED" in runs  # the killed run and its Trainer execution

    # Killed at other moments of a run that must push a new version (another seed: a new model):
    # while it trains, and as soon as the Evaluator has blessed it (the Pusher's moment).
    cmd_seed = cmd + ["--set", "Trainer.seed=7", "--set", "Evaluator.change_thresholds=null"]
    blessings = lambda: len(list((tmp_path / "root" / "Evaluator").glob("*/blessing/BLESSED")))
    kills = 0
    for moment in (1.0, 2.5, "blessed"):
        before = blessings()
        proc = subprocess.Popen(cmd_seed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + (moment if moment != "blessed" else 600)
        while time.time() < deadline and proc.poll() is None and not (moment == "blessed" and blessings() > before):
            time.sleep(0.005)
        if proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert_no_half_written_version(base)
        with sqlite3.connect(store) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert kills >= 1, "every run finished before its moment came: nothing was killed"
    final = subprocess.run(cmd_seed, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert versions(base) == [1, 2]
    assert_no_half_written_version(base)


def test_two_pipelines_at_once_on_one_store(cli, tmp_path):
    """Two processes, one metadata store and pipeline root: both complete, the shared data work is
    done once, the store stays consistent."""
    env = {**os.environ, "HISTOCNN_PROGRESS": "0"}
    yamls = [tiny(tmp_path, name=f"p{seed}.yaml", seed=seed, change="null") for seed in (1, 2)]
    procs = [subprocess.Popen([cli, "pipeline", "run", str(y)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for y in yamls]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    store = tmp_path / "root" / "metadata.sqlite"
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        runs = db.execute("SELECT state FROM contexts WHERE type = 'run'").fetchall()
    assert runs == [("COMPLETE",), ("COMPLETE",)]
    done = executions(store)
    assert sorted(s for t, s in done if t == "ExampleGen") == ["CACHED", "COMPLETE"]
    assert sorted(s for t, s in done if t == "Trainer") == ["COMPLETE", "COMPLETE"]
    assert len(done) == 16
    assert versions(tmp_path / "models") == [1, 2]


def test_the_compiled_pipeline_is_a_valid_kfp_spec_and_runs_as_the_yaml_does(cli, tmp_path):
    jsonschema = pytest.importorskip("jsonschema", reason="python3-jsonschema is not installed")
    yaml_lib = pytest.importorskip("yaml", reason="python3-yaml is not installed")
    yaml = tiny(tmp_path)
    compiled = tmp_path / "pipeline.kfp.yaml"
    job_file = tmp_path / "trainer.pytorchjob.yaml"
    out = run_cli(cli, "pipeline", "compile", yaml, "-o", compiled, "--set",
                  f"Pusher.model_base_path={tmp_path / 'models-ir'}", "--pytorchjob", job_file, "--workers", "2").stdout
    assert "8 tasks" in out
    job = yaml_lib.safe_load(job_file.read_text())
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "PyTorchJob"
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 2
    [container] = replicas["Worker"]["template"]["spec"]["containers"]
    command = container.get("command", []) + container.get("args", [])
    assert command[:4] == ["histocnn", "pipeline", "component", "Trainer"]
    assert json.loads(command[command.index("--config") + 1])["epochs"] == 1
    ir = yaml_lib.safe_load(compiled.read_text())
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(ir, schema)
    assert ir["schemaVersion"] == "2.1.0"
    tasks = ir["root"]["dag"]["tasks"]
    assert tasks["trainer"]["dependentTasks"] == ["examplegen", "transform"]
    assert tasks["pusher"]["inputs"]["artifacts"]["blessing"]["taskOutputArtifact"] == {
        "outputArtifactKey": "blessing", "producerTask": "evaluator"}
    args = ir["deploymentSpec"]["executors"]["exec-trainer"]["container"]["args"]
    assert args[:3] == ["pipeline", "component", "Trainer"]
    assert "model={{$.outputs.artifacts['model'].path}}" in args
    version = ir["root"]["inputDefinitions"]["parameters"]["pipeline_version"]["defaultValue"]
    assert version.startswith("tiny_")
    import histocnn
    assert histocnn.Pipeline(compiled, compiled=True).version == version

    # The schema can fail: a missing image, a misspelt field, a task without its component.
    for break_it in (lambda d: d["deploymentSpec"]["executors"]["exec-trainer"]["container"].pop("image"),
                     lambda d: d["root"]["dag"]["tasks"]["trainer"].update(dependentTask=["x"]),
                     lambda d: d["root"]["dag"]["tasks"]["pusher"].pop("componentRef"),
                     lambda d: d.update(schemaVersion="1.0.0")):
        broken = json.loads(json.dumps(ir))
        break_it(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)

    # The file Kubeflow would get, run here, gives the verdict and artifacts of the YAML run.
    ran_ir = run_cli(cli, "pipeline", "run", "--ir", compiled).stdout
    ran_yaml = run_cli(cli, "pipeline", "run", yaml, "--pipeline-root", tmp_path / "root-yaml").stdout
    assert f"pipeline {version}" in ran_ir
    assert ": BLESSED" in ran_ir and ": BLESSED" in ran_yaml
    [ir_manifest] = (tmp_path / "root").glob("ExampleGen/*/examples/manifest.csv")
    [yaml_manifest] = (tmp_path / "root-yaml").glob("ExampleGen/*/examples/manifest.csv")
    assert ir_manifest.read_text() == yaml_manifest.read_text()
    assert versions(tmp_path / "models-ir") == [1] and versions(tmp_path / "models") == [1]

    # One step as a Kubeflow pod runs it: the same statistics from the same examples.
    [examples] = (tmp_path / "root").glob("ExampleGen/*/examples")
    [statistics] = (tmp_path / "root").glob("StatisticsGen/*/statistics")
    run_cli(cli, "pipeline", "component", "StatisticsGen", "--config", "{}", "--input", f"examples={examples}",
            "--output", f"statistics={tmp_path / 'step'}")
    assert json.loads((tmp_path / "step" / "statistics.json").read_text()) == \
        json.loads((statistics / "statistics.json").read_text())
