"""histocnn: deep transfer learning on histopathology patches.

The heavy lifting is done by the C++ library (``libhistocnn``); this package re-exports it and
adds the Python conveniences::

    import histocnn
    trainer = histocnn.Trainer(data_dir="patches/", backbone="mobilenet_v2", weights="imagenet",
                               image_size=96, epochs=10)
    history = trainer.fit()          # list of per-epoch records; history.to_pandas() for a DataFrame
    print(trainer.result.test.roc_auc)
"""
from ._loader import _histocnn

__version__ = _histocnn.__version__
torch_version = _histocnn.torch_version
default_device = _histocnn.default_device
configure_threads = _histocnn.configure_threads
blas_threads = _histocnn.blas_threads

data = _histocnn.data
models = _histocnn.models
metrics = _histocnn.metrics

inference = _histocnn.inference
io = _histocnn.io
train = _histocnn.train
ContextModel = inference.ContextModel

from . import plots  # noqa: E402
from .callbacks import Callback, TqdmProgress  # noqa: E402
from .pipeline import Pipeline  # noqa: E402
from .predictor import Predictor  # noqa: E402
from .serving import Client, Server, ServingError, serve  # noqa: E402
from .trainer import History, Trainer, cross_validate, demo, evaluate, option_defaults  # noqa: E402

__all__ = ["Pipeline", "Trainer", "History", "cross_validate", "option_defaults", "Callback", "TqdmProgress", "Predictor", "plots", "demo",
           "evaluate", "serve", "Server", "Client", "ServingError",
           "ContextModel", "data", "models", "metrics", "inference", "io", "train", "__version__"]
