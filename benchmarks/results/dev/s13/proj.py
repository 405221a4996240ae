"""Prototype: mel-envelope projection of a waveform onto a target mel."""
import math, torch, torch.nn.functional as F
from wavediff.audio.mel import mel_basis_np, decompress_mel

def mel_project(wav, mel, config, n_iter=4, floor_only=False):
    """wav [B, L] (L = frames*hop), mel [B, n_mels, frames] -> wav [B, L]."""
    hop, n_fft = config.hop_length, config.n_fft
    B, L = wav.shape
    frames = mel.shape[-1]
    basis = torch.from_numpy(mel_basis_np(config)).float()  # [M, K]
    cover = basis.sum(0)  # [K]
    covered = cover > cover.max() * 1e-3
    last = int(covered.nonzero().max()); first = int(covered.nonzero().min())
    window = torch.hann_window(config.win_length, periodic=True)
    offset = n_fft // 2 - config.pad_each_side
    tgt = decompress_mel(mel.float(), config).clamp(min=config.clamp_min)  # [B, M, F]
    x = F.pad(wav, (0, offset))[:, offset:]  # shift so target frame j is centred at j*hop
    for _ in range(n_iter):
        X = torch.stft(x, n_fft, hop, config.win_length, window, center=True, pad_mode="reflect", return_complex=True)
        mag = X.abs()[..., :frames]
        cur = (basis @ mag).clamp(min=config.clamp_min)
        g = tgt / cur
        if floor_only:
            g = g.clamp(max=1.0)
        h = (basis.T @ g) / cover.clamp(min=1e-12)[:, None]  # [B, K, F]
        h[:, last + 1:] = h[:, last:last + 1]
        h[:, :first] = h[:, first:first + 1]
        h = torch.cat([h, torch.ones_like(h[..., :1]).expand(-1, -1, X.shape[-1] - frames)], -1)
        x = torch.istft(X * h, n_fft, hop, config.win_length, window, center=True, length=L)
    out = torch.cat([wav[:, :offset], x[:, : L - offset]], 1)
    return out
