"""Pipelines from Python: ``histocnn.Pipeline("pipeline.yaml").run()``.

The C++ runner does the work (histocnn._histocnn.pipeline); this class adds progress lines per
component and pandas tables of runs and lineage::

    import histocnn
    p = histocnn.Pipeline("examples/pipeline.yaml", overrides=["Trainer.epochs=1"])
    result = p.run()                      # prints a line as each component ends
    result["blessed"], result["pushed_version"]
    p.lineage(result["pushed_version"])  # pandas DataFrame: from the served version back to the data
    p.runs()                             # one row per component execution of each run
"""
from __future__ import annotations

import os
import pathlib
import sys
from typing import Callable, Iterable, Optional

from ._loader import _histocnn

_pipeline = _histocnn.pipeline


class Pipeline:
    """A pipeline.yaml (or, with ``compiled=True``, a compiled Kubeflow file) to run locally.

    ``overrides`` are ``"Section.key=value"`` strings, as ``histocnn pipeline run --set`` takes them.
    ``pipeline_root`` and ``metadata`` replace the file's artifact folder and metadata store.
    """

    def __init__(self, path: str | os.PathLike, overrides: Iterable[str] = (), compiled: bool = False,
                 pipeline_root: str | os.PathLike | None = None, metadata: str | os.PathLike | None = None):
        self.path = os.fspath(path)
        overrides = list(overrides)
        if compiled and overrides:
            raise ValueError("overrides change a pipeline.yaml; a compiled file runs as compiled")
        self.spec = _pipeline.load_kfp(self.path) if compiled else _pipeline.load_pipeline_spec(self.path, overrides)
        self.pipeline_root = os.fspath(pipeline_root) if pipeline_root else ""
        self.metadata = os.fspath(metadata) if metadata else ""

    @property
    def version(self) -> str:
        """The pipeline version name: <name>_<hash of its tasks>."""
        return self.spec.version

    @property
    def metadata_path(self) -> str:
        if self.metadata:
            return self.metadata
        # As the runner does: a new pipeline root moves the store only when it was the default one.
        if self.pipeline_root and pathlib.Path(self.spec.metadata) == pathlib.Path(self.spec.pipeline_root) / "metadata.sqlite":
            return os.path.join(self.pipeline_root, "metadata.sqlite")
        return os.fspath(self.spec.metadata)

    def run(self, use_cache: bool = True, progress: bool = True,
            callback: Optional[Callable[[dict], None]] = None) -> dict:
        """Runs every component; returns the run (state, blessed, pushed_version, components,
        artifacts). With ``progress`` a line per component goes to stderr as it starts and ends;
        ``callback(event)`` receives the same events as dicts. A failing component raises."""

        def on_event(event: dict) -> None:
            if progress:
                print(event["line"], file=sys.stderr, flush=True)
            if callback is not None:
                callback(event)

        return _pipeline.run_pipeline(self.spec, use_cache=use_cache, progress=False,
                                      pipeline_root=self.pipeline_root, metadata=self.metadata, on_event=on_event)

    def compile(self, output: str | os.PathLike) -> str:
        """Writes the Kubeflow Pipelines v2 PipelineSpec to ``output`` and returns its text."""
        text = _pipeline.compile_kfp(self.spec)
        with open(output, "w") as f:
            f.write(text)
        return text

    def _store(self):
        if not os.path.exists(self.metadata_path):
            raise FileNotFoundError(f"metadata store '{self.metadata_path}' does not exist: the pipeline has not run "
                                    "with it yet (run() first, or pass metadata=)")
        return _pipeline.MetadataStore(self.metadata_path)

    def lineage(self, version: int, model_base_path: str | os.PathLike | None = None):
        """From served ``version`` of the Pusher's base path (or ``model_base_path``) back to its
        evaluation, training run, statistics, schema and data: a pandas DataFrame, one row per
        (execution, artifact it wrote), ``depth`` 0 for the push."""
        import pandas as pd
        if model_base_path is None:
            import json
            model_base_path = json.loads(self.spec.config("Pusher"))["model_base_path"]
        rows = self._store().lineage(os.fspath(model_base_path), int(version))
        return pd.DataFrame(rows, columns=["depth", "component", "state", "artifact_type", "artifact_name", "uri",
                                           "properties", "execution_id", "artifact_id", "run", "pipeline_version",
                                           "seconds"])

    def runs(self, limit: int = 0):
        """Every component execution of the recorded runs (newest run first) as a pandas DataFrame.
        Runs whose process ended without finishing (killed) show as CANCELED, as ``histocnn
        pipeline runs`` shows them."""
        import pandas as pd
        rows = []
        store = self._store()
        store.cancel_orphans()
        for run in store.runs(limit):
            for e in run["executions"]:
                rows.append({"run": run["name"], "run_state": run["state"], "pipeline_version": run["pipeline_version"],
                             "component": e["component"], "state": e["state"], "seconds": e["seconds"],
                             "summary": e["summary"], "error": e["error"], "execution_id": e["id"],
                             "cached_from": e["cached_from"]})
        return pd.DataFrame(rows, columns=["run", "run_state", "pipeline_version", "component", "state", "seconds",
                                           "summary", "error", "execution_id", "cached_from"])

    def __repr__(self) -> str:
        return f"Pipeline({self.path!r}, version={self.version!r})"
