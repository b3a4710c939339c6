"""GridSearchCV over SPIVAE on a Dask cluster matches the serial search."""

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold

from skspivae import SPIVAE
from skspivae.datasets import make_fbm

distributed = pytest.importorskip("distributed")


class TorchThreads(distributed.WorkerPlugin):
    """One PyTorch thread per worker process, as the user guide recommends."""

    def setup(self, worker):
        import torch

        torch.set_num_threads(1)


def test_dask_grid_search_matches_serial():
    X, _ = make_fbm(48, n_timesteps=40, alpha=[0.5, 1.5], D=[1e-3, 1e-2],
                    shuffle=True, random_state=0)
    est = SPIVAE(n_components=2, encoder_channels=4, encoder_hidden=(8,),
                 decoder_hidden=(8,), residual_channels=4, skip_channels=4,
                 layer_size=2, max_epochs=2, batch_size=16, device="cpu",
                 random_state=0)
    grid = {"n_components": [1, 2], "beta": [0.0, 1.0]}
    cv = KFold(2, shuffle=True, random_state=0)
    serial = GridSearchCV(est, grid, cv=cv).fit(X)

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                       processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        client.register_plugin(TorchThreads())
        with joblib.parallel_backend("dask"):
            parallel = GridSearchCV(est, grid, cv=cv).fit(X)

    assert parallel.best_params_ == serial.best_params_
    np.testing.assert_allclose(parallel.cv_results_["mean_test_score"],
                               serial.cv_results_["mean_test_score"], rtol=1e-5)
