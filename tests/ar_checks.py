"""Checks shared by the tests of autoregressive image models: normalisation on tiny spaces and causality."""
import itertools

import torch


def all_images(shape, levels):
    """Every image of ``shape`` with ``levels`` values, ``(levels ** D, *shape)`` in float64."""
    size = shape[0] * shape[1] * shape[2]
    return torch.tensor(list(itertools.product(range(levels), repeat=size)), dtype=torch.float64).view(-1, *shape)


def total_probability(model, shape, levels, **condition):
    """``Σ_x p(x)`` over every image (``condition`` tensors are given for one example and repeated)."""
    images = all_images(shape, levels)
    repeated = {key: value.expand(len(images), *value.shape[1:]) for key, value in condition.items()}
    return model.log_prob(images, **repeated).exp().sum().item()


def dependency_violations(model, x, **condition):
    """The ``(output parameter, i, j, input channel, i', j')`` pairs where the network's parameter at pixel (i, j)
    has a non-zero derivative with respect to an input entry that does not precede it: a later pixel, the pixel's
    own channel or a later one (channel_wise outputs: parameter ``p`` belongs to channel ``p mod C``), or any
    channel of the pixel itself for joint outputs."""
    channels, height, width = model.shape
    jacobian = torch.autograd.functional.jacobian(
        lambda inputs: model.network(inputs, condition.get("labels"), condition.get("condition")), model.scaled(x))
    jacobian = jacobian[0, :, :, :, 0]  # (P, H, W, C, H, W)
    params = jacobian.shape[0]
    out_pixel = torch.arange(height * width).view(1, height, width, 1, 1, 1)
    in_pixel = torch.arange(height * width).view(1, 1, 1, 1, height, width)
    out_channel = (torch.arange(params) % channels).view(-1, 1, 1, 1, 1, 1)
    in_channel = torch.arange(channels).view(1, 1, 1, -1, 1, 1)
    same_pixel_allowed = in_channel < out_channel if getattr(model.output, "channel_wise", False) else False
    allowed = (in_pixel < out_pixel) | ((in_pixel == out_pixel) & same_pixel_allowed)
    return ((jacobian != 0) & ~allowed).nonzero()
