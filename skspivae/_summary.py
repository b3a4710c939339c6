"""Model summary: layers, output shapes and parameter counts (fastai's ``summary``).

Output shapes come from forward hooks on the leaf layers during one forward
pass of a trajectory. The convolutions are run through their weights (as
channels-last 2D convolutions or fused matrix products, see
:class:`~skspivae.nn.WaveNet`), so their hooks do not fire; their shapes
follow from the alignment rules: every convolution is unpadded, an encoder
layer shortens the time axis by ``kernel_size - 1`` and a decoder layer
lengthens it as much, a WaveNet layer is right-aligned and a dilated one
shortens the axis by ``dilation * (kernel_size - 1)``, and the head works on
the last ``length - receptive_field`` columns.
"""

from dataclasses import dataclass

import torch

from ._utils import format_table
from .nn import ConditioningDecoder, Encoder, GaussianDecoder, WaveNet


@dataclass(frozen=True)
class LayerSummary:
    """One leaf layer: dotted name, type, output shape without the batch."""

    name: str
    kind: str
    output_shape: tuple
    n_params: int
    trainable: bool
    from_hook: bool


class ModelSummary:
    """A model's layers with output shapes and parameter counts; prints as a table.

    Attributes
    ----------
    layers : list of LayerSummary
        Leaf layers in the order the module defines them.
    n_timesteps : int
        Trajectory length (rows of ``X``) the shapes are for.
    input_shape : tuple
        (1, displacements) entering the network, without the batch.
    total_params, trainable_params : int
    receptive_field : int
        Past displacements one prediction depends on.
    """

    def __init__(self, layers, n_timesteps, input_shape, total_params,
                 trainable_params, receptive_field):
        self.layers = layers
        self.n_timesteps = n_timesteps
        self.input_shape = input_shape
        self.total_params = total_params
        self.trainable_params = trainable_params
        self.receptive_field = receptive_field

    def __str__(self):
        def shape(dims, mark=""):
            if dims and isinstance(dims[0], tuple):  # several outputs
                return ", ".join(shape(d) for d in dims) + mark
            return "(B, " + ", ".join(str(d) for d in dims) + ")" + mark

        rows = [("input", shape(self.input_shape), "", "")]
        rows += [(f"{layer.name} ({layer.kind})",
                  shape(layer.output_shape, "" if layer.from_hook else " *"),
                  f"{layer.n_params:,}", str(layer.trainable) if layer.n_params else "")
                 for layer in self.layers]
        header = ("Layer (type)", "Output shape", "Param #", "Trainable")
        head, *body = format_table(header, rows, align="llrl").splitlines()
        rule = "=" * max(len(line) for line in [head, *body])
        out = [f"SPIVAE, trajectories of {self.n_timesteps} time steps "
               f"(B = batch size)", rule, head, rule, *body]
        out += [rule,
                f"Total params: {self.total_params:,}",
                f"Trainable params: {self.trainable_params:,}",
                f"Non-trainable params: {self.total_params - self.trainable_params:,}",
                f"Receptive field: {self.receptive_field} displacements"]
        if not all(layer.from_hook for layer in self.layers):
            out.append("* convolutions run through their weights: shape of the layer "
                       "applied to its whole input, from the alignment rules.")
        return "\n".join(out)

    __repr__ = __str__


def _encoder_shapes(encoder, length):
    """Output shape (channels, time) of each encoder convolution."""
    shapes = {}
    for i, conv in enumerate(encoder.convs):
        length -= conv.kernel_size[0] - 1
        shapes[f"convs.{i}"] = (conv.out_channels, length)
    return shapes


def _decoder_shapes(decoder, length):
    """Output shape (channels, time) of each transposed convolution of the decoder."""
    shapes, n = {}, length - decoder.grow
    for i, conv in enumerate(decoder.convs):
        n += conv.kernel_size[0] - 1
        shapes[f"convs.{i}"] = (conv.out_channels, n)
    return shapes


def _wavenet_shapes(wavenet, length):
    """Output shape (channels, time) of each WaveNet layer, by relative name."""
    head = wavenet.head
    n = length - 1  # the WaveNet reads dx[:, :, :-1]
    shapes = {"input_conv": (wavenet.input_conv.out_channels, n)}
    n -= wavenet.causal_conv.kernel_size[0] - 1
    shapes["causal_conv"] = (wavenet.causal_conv.out_channels, n)
    for i, conv in enumerate(wavenet.dilated):
        n -= conv.dilation[0] * (conv.kernel_size[0] - 1)
        shapes[f"dilated.{i}"] = (conv.out_channels, n)
        shapes[f"skip_res.{i}"] = (wavenet.skip_res[i].out_channels, n)
    shapes["cond"] = (wavenet.cond.out_channels, length)  # c has the full length
    n_out = length - wavenet.receptive_field
    shapes.update({"head.0": (wavenet.skip_channels, n_out),
                   "head.1": (head[1].out_channels, n_out),
                   "head.2": (head[1].out_channels, n_out),
                   "head.3": (head[3].out_channels, n_out)})
    return shapes


def summarize(module, length, n_timesteps=None):
    """Summarise an :class:`~skspivae.nn.SPIVAEModule` for ``length`` displacements.

    Parameters
    ----------
    module : SPIVAEModule
        Left as it was (one forward pass without gradients, hooks removed).
    length : int
        Displacements per trajectory.
    n_timesteps : int, default=None
        Length shown in the title; ``length`` when None.

    Returns
    -------
    ModelSummary
    """
    if length < module.min_length:
        raise ValueError(f"A summary needs trajectories of at least "
                         f"{module.min_length} displacement; got {length}.")
    # The Gaussian decoder's per-neuron networks are batched parameters, not
    # layers: it is one row.
    grouped = [name for name, m in module.named_modules() if isinstance(m, GaussianDecoder)]
    leaves = [(name, m) for name, m in module.named_modules()
              if name and not any(name.startswith(g + ".") for g in grouped)
              and (name in grouped or not any(True for _ in m.children()))]
    shapes, handles = {}, []
    for name, m in leaves:
        def hook(m, inputs, output, name=name):
            shapes[name] = (tuple(tuple(o.shape[1:]) for o in output)
                            if isinstance(output, tuple) else tuple(output.shape[1:]))
        handles.append(m.register_forward_hook(hook))
    was_training = module.training
    device = next(module.parameters()).device
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, 1, length, device=device), sample_latent=False)
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    hooked = set(shapes)
    rules = {Encoder: _encoder_shapes, ConditioningDecoder: _decoder_shapes,
             WaveNet: _wavenet_shapes}
    for prefix, m in module.named_modules():
        if type(m) in rules:
            for name, shape in rules[type(m)](m, length).items():
                shapes.setdefault(f"{prefix}.{name}", shape)
    layers = []
    for name, m in leaves:
        params = list(m.parameters(recurse=name in grouped))
        layers.append(LayerSummary(
            name, type(m).__name__, shapes[name], sum(p.numel() for p in params),
            all(p.requires_grad for p in params), name in hooked))
    params = list(module.parameters())
    return ModelSummary(layers, length if n_timesteps is None else n_timesteps,
                        (1, length), sum(p.numel() for p in params),
                        sum(p.numel() for p in params if p.requires_grad),
                        module.receptive_field)
