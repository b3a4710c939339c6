"""Settings for the whole test session: tests/ and the doctests in skspivae/.

The tests train tiny models, for which torch's intra-op threads cost more in
synchronisation than they gain, and GridSearchCV tests run two workers on a
2-core machine: one torch thread per process avoids oversubscription. Plots
draw off-screen.
"""

import matplotlib
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)
