"""
Choosing the number of neurons and beta with GridSearchCV
=========================================================

:meth:`~skspivae.SPIVAE.score` is the evidence lower bound (ELBO) per scored
displacement, with the full KL term (beta = 1) whatever beta the model was
trained with. It is a log-likelihood bound, higher is better, so scikit-learn's
:class:`~sklearn.model_selection.GridSearchCV` can compare models with
different ``n_components`` and ``beta`` directly, as it compares PCA models
with different ``n_components``.

The models here are tiny so that the 4 x 2 fits run in seconds.
"""

# %%
import numpy as np
from sklearn.model_selection import GridSearchCV, KFold

from skspivae import SPIVAE
from skspivae.datasets import make_fbm

X, y = make_fbm(360, n_timesteps=64, alpha=np.linspace(0.3, 1.7, 6),
                D=np.geomspace(1e-4, 1e-2, 3), shuffle=True, random_state=0)

tiny = dict(encoder_channels=8, encoder_hidden=(32,), decoder_hidden=(32,),
            residual_channels=8, skip_channels=8, layer_size=3)
search = GridSearchCV(
    SPIVAE(**tiny, max_epochs=8, batch_size=32, random_state=0),
    {"n_components": [1, 4], "beta": [1e-3, 1e-1]},
    cv=KFold(2, shuffle=True, random_state=0),
)
search.fit(X)
print("best:", search.best_params_, f"ELBO per step {search.best_score_:.3f}")

# %%
# The cross-validated ELBO of every candidate. Folds are shuffled: the grid
# design of ``make_fbm`` orders trajectories by alpha and D, and unshuffled
# folds would hold out whole ranges of alpha (here the data are also shuffled).
results = search.cv_results_
print("n_components   beta   mean ELBO    std  rank")
for params, mean, std, rank in zip(results["params"], results["mean_test_score"],
                                   results["std_test_score"],
                                   results["rank_test_score"], strict=True):
    print(f"{params['n_components']:12d}  {params['beta']:5g}  {mean:9.3f}  "
          f"{std:5.3f}  {rank:4d}")

# %%
# The refitted best model keeps the neurons it needs:
best = search.best_estimator_
print("KL per neuron:", np.round(best.kl_divergence_, 3))
print("active:", best.active_components_)
