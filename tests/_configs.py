"""Model sizes shared by the tests: imported, never copied.

TINY is the smallest sensible model (one encoder convolution, 8 lags of
memory; with ``decoder="wavenet"`` a receptive field of 4). SMALL is small but
real: it learns fBM in a few epochs.
"""

TINY = dict(n_components=2, encoder_channels=4, encoder_layers=1, pool_size=2,
            encoder_hidden=(8,), decoder_hidden=(8,), memory=8, residual_channels=4,
            skip_channels=4, layer_size=1, batch_size=16, device="cpu")
SMALL = dict(n_components=3, encoder_channels=8, encoder_layers=2, pool_size=4,
             encoder_hidden=(32,), decoder_hidden=(32,), memory=16, residual_channels=8,
             skip_channels=8, layer_size=2, batch_size=32, lr=1e-2, device="cpu")
