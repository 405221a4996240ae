"""Pictures a person would rather look at than read: mel spectrograms side by side."""
from __future__ import annotations

from typing import Sequence

import torch


def mel_figure(mels: Sequence[torch.Tensor], titles: Sequence[str] | None = None):
    """A matplotlib Figure with one mel [n_mels, F] per row (needs matplotlib: the dev/eval extras)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(mels), 1, figsize=(10, 2.6 * len(mels)), squeeze=False)
    for ax, mel, title in zip(axes[:, 0], mels, titles or [""] * len(mels)):
        m = torch.as_tensor(mel).detach().float().cpu()
        m = m[0] if m.dim() == 3 else m
        im = ax.imshow(m.numpy(), origin="lower", aspect="auto", interpolation="none")
        ax.set_title(title)
        ax.set_ylabel("mel bin")
        fig.colorbar(im, ax=ax)
    axes[-1, 0].set_xlabel("frame")
    fig.tight_layout()
    return fig


def save_mel_png(path, mels: Sequence[torch.Tensor], titles: Sequence[str] | None = None) -> None:
    """Write :func:`mel_figure` to a PNG."""
    save_figure(mel_figure(mels, titles), path)


def alignment_figure(path: torch.Tensor, title: str = "alignment"):
    """A matplotlib Figure of a phoneme-to-frame alignment [N, T] (0/1 or soft)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    p = torch.as_tensor(path).detach().float().cpu()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.imshow(p.numpy(), origin="lower", aspect="auto", interpolation="none")
    ax.set_xlabel("frame")
    ax.set_ylabel("phoneme")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save_figure(fig, path) -> None:
    """Write a figure to PNG and free it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)
