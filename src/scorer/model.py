"""A tiny deterministic classifier: 4 iris-like measurements -> 3 species.

The weights come from a short training run on synthetic data generated in
code from a fixed seed, so the service needs no downloaded weights or data
and every start (and every machine) serves the same model.
"""

from __future__ import annotations

import torch
from torch import nn

MODEL_NAME = "iris-mlp"
N_FEATURES = 4
LABELS = ("setosa", "versicolor", "virginica")
SEED = 20240607

# Per-class feature means (sepal length/width, petal length/width, cm), close
# to the real iris data so that hand-written test inputs behave as expected.
_CENTERS = ((5.0, 3.4, 1.5, 0.25), (5.9, 2.8, 4.3, 1.3), (6.6, 3.0, 5.6, 2.0))
_SPREAD = 0.3
_PER_CLASS = 100
_STEPS = 150
_LR = 0.1
_MOMENTUM = 0.9


class Classifier(nn.Module):
    """Standardize inputs, then a 4 -> 16 -> 3 MLP returning logits."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        # Buffers, not parameters: the input scaling is part of the model but is not trained.
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.net = nn.Sequential(nn.Linear(N_FEATURES, 16), nn.ReLU(), nn.Linear(16, len(LABELS)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def train(seed: int = SEED) -> Classifier:
    """Train a fresh classifier; the same seed always gives bit-identical weights."""
    # One thread (process-wide): the model is tiny, so threads only add
    # overhead, and results then do not depend on the host's core count.
    torch.set_num_threads(1)
    # fork_rng: seed torch without disturbing the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        centers = torch.tensor(_CENTERS)
        y = torch.arange(len(LABELS)).repeat_interleave(_PER_CLASS)
        x = centers[y] + _SPREAD * torch.randn(len(y), N_FEATURES)
        model = Classifier(x.mean(0), x.std(0))
        params = list(model.parameters())
        velocity = [torch.zeros_like(p) for p in params]
        # Hand-written full-batch SGD with momentum: torch.optim's first step
        # imports torch._dynamo, which alone costs over a second of startup.
        for _ in range(_STEPS):
            loss = nn.functional.cross_entropy(model(x), y)
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, v, g in zip(params, velocity, grads, strict=True):
                    v.mul_(_MOMENTUM).add_(g)
                    p.sub_(_LR * v)
    return model.eval()


class Scorer:
    """The served model: rows of features in, labels and class probabilities out."""

    name = MODEL_NAME
    labels = LABELS

    def __init__(self, seed: int = SEED) -> None:
        self.model = train(seed)

    def predict(self, rows: list[list[float]]) -> tuple[list[str], list[list[float]]]:
        with torch.inference_mode():
            probs = torch.softmax(self.model(torch.tensor(rows, dtype=torch.float32)), dim=1)
        labels = [LABELS[i] for i in probs.argmax(dim=1).tolist()]
        # Rounded so responses are short and stable against last-bit float noise.
        scores = [[round(p, 6) for p in row] for row in probs.tolist()]
        return labels, scores
