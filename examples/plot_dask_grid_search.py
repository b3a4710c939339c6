"""
Scaling a grid search out with Dask
===================================

Each candidate of a hyper-parameter search trains its own model, independently
of the others: the search spreads over the cores of a machine, or the machines
of a cluster, through joblib's Dask backend. Install the extra with
``pip install -e ".[distributed]"``.

Two things matter for PyTorch models:

- one estimator per worker at a time (``threads_per_worker=1``), with as many
  PyTorch threads as the worker has cores. A worker plugin sets them in every
  worker process; Dask's nanny also starts workers with ``OMP_NUM_THREADS=1``.
  Without a limit, every worker starts one thread per core of the machine and
  they slow each other down many times over;
- worker processes (``LocalCluster``'s default) rather than threads: PyTorch's
  thread pool and random generator belong to a process.

.. note::

   This example starts a cluster of worker processes, so the documentation
   build does not run it (``sphinx_gallery_conf["filename_pattern"]`` in
   ``docs/conf.py`` leaves out ``plot_dask_*``) and shows no output. Run it
   as a script, ``python examples/plot_dask_grid_search.py``; without
   ``distributed`` installed it says so and stops.
"""

# %%
import sys

import joblib
import numpy as np
from sklearn.model_selection import GridSearchCV, KFold

from skspivae import SPIVAE
from skspivae.datasets import make_fbm

try:
    from distributed import Client, LocalCluster
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:
    print("This example needs dask.distributed: pip install 'skspivae[distributed]'")
    sys.exit(0)


class TorchThreads(WorkerPlugin):
    """Set the number of PyTorch threads in every worker process."""

    def __init__(self, n_threads=1):
        self.n_threads = n_threads

    def setup(self, worker):
        import torch

        torch.set_num_threads(self.n_threads)


# %%
# The search
# ----------
# The same tiny search as in the GridSearchCV example.
X, y = make_fbm(360, n_timesteps=64, alpha=np.linspace(0.3, 1.7, 6),
                D=np.geomspace(1e-4, 1e-2, 3), shuffle=True, random_state=0)
tiny = dict(encoder_channels=8, encoder_hidden=(32,), decoder_hidden=(32,),
            residual_channels=8, skip_channels=8, layer_size=3)
search = GridSearchCV(
    SPIVAE(**tiny, max_epochs=8, batch_size=32, random_state=0),
    {"n_components": [1, 4], "beta": [1e-3, 1e-1]},
    cv=KFold(2, shuffle=True, random_state=0),
)

# %%
# Run it on a local cluster
# -------------------------
# On a real cluster, ``Client("scheduler-address:8786")`` instead. The
# ``if __name__`` guard lets worker processes import this file safely.
if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, \
            Client(cluster) as client:
        client.register_plugin(TorchThreads(1))
        print(client)
        with joblib.parallel_backend("dask"):
            search.fit(X)
    print("best:", search.best_params_, f"ELBO per step {search.best_score_:.3f}")

    # Each candidate was trained with its own ``random_state``, so the scores,
    # and the best parameters, are those of the serial search.
    serial = GridSearchCV(search.estimator, search.param_grid, cv=search.cv).fit(X)
    print("same as serial:", serial.best_params_ == search.best_params_)
