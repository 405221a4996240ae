"""The mel upsampler of :class:`~wavediff.nn.denoiser.ConditionUpsampler` as Triton kernels (training).

Same maths and parameters as :func:`~wavediff.nn.denoiser._transposed_stage` followed by
``leaky_relu(0.4)`` (lmnt-com/diffwave's ``ConvTranspose2d(1, 1, [3, 2s], stride [1, s], padding [1, s // 2])``):
for output block ``n`` (samples ``n s + j - s // 2``, ``j < s``) and bin ``f``

    y[n s + j - s // 2, f] = lrelu(b + Σ_kh w[kh, j] x[n, f + 1 - kh] + w[kh, s + j] x[n - 1, f + 1 - kh])

with x zero outside its frames and bins. Each stage is one forward kernel that writes its time-major
``[B, N s, C]`` output once. Backward, :func:`_up_bwd_kernel` reads the output's gradient once, without
shifts, and takes per-program partial sums of the weight and bias gradients (reduced with
``torch.sum``, so results are deterministic) and a 6-row summary ``E`` per frame, each as a small
tensor-core product; :func:`_up_dx_kernel` turns ``E`` into the input's gradient.

At DiffWave-base's training sizes the last stage writes 325 M values per batch of 256 crops. Run as
:func:`~wavediff.nn.denoiser._transposed_stage` does it, through a matrix product with a 6-deep inner
dimension plus padding, concatenation, cropping and bias passes, its forward and backward took ≈ 9 ms
of a 188-ms step on an H200 (``benchmarks/README.md``, session 9).

Used by :class:`~wavediff.nn.denoiser.Denoiser` where the fused residual stack runs
(:func:`~wavediff.nn.fused_stack.fused_stack_supported`: training on a CUDA device, or on the CPU under
Triton's interpreter in the tests) and every stride is at most 16 (the tile sizes below; 8 frames per
tile already asked for more shared memory than an H200 has).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .fused_stack import _interpreting, _next_pow2, tl, triton

__all__ = ["fused_upsample"]

SLOPE = 0.4  # leaky_relu's negative slope after every stage (lmnt's)
FRAMES = 4  # output blocks (input frames) per tile
MAX_ITERS = 16  # tiles per program of the backward kernel
WARPS = 4  # warps per program on a GPU

if triton is not None:

    @triton.jit
    def _up_fwd_kernel(
        x_ptr, w_ptr, b_ptr, y_ptr,
        N, C, S, start,
        FB: tl.constexpr, SP: tl.constexpr, CP: tl.constexpr, SLOPE_: tl.constexpr,
    ):
        """Program (block, b): output blocks n = block * FB ... (N + 1 blocks before the crop)."""
        blk = tl.program_id(0)
        b = tl.program_id(1).to(tl.int64)  # int64 offsets: B * N * S * C can pass 2^31
        n = blk * FB + tl.arange(0, FB)
        j = tl.arange(0, SP)
        f = tl.arange(0, CP)
        jm = j < S
        dt = y_ptr.dtype.element_ty
        acc = tl.zeros((FB, SP, CP), dtype=tl.float32) + tl.load(b_ptr).to(tl.float32)
        x_base = x_ptr + b * N * C
        cur_ok = (n < N)[:, None]
        prev_ok = ((n >= 1) & (n <= N))[:, None]
        for kh in tl.static_range(3):
            src = f + 1 - kh  # the bin tap kh reads
            fm = ((src >= 0) & (src < C))[None, :]
            w_cur = tl.load(w_ptr + kh * 2 * S + j, mask=jm, other=0.0).to(tl.float32)
            w_prev = tl.load(w_ptr + kh * 2 * S + S + j, mask=jm, other=0.0).to(tl.float32)
            x_cur = tl.load(x_base + n[:, None] * C + src[None, :], mask=cur_ok & fm, other=0.0).to(tl.float32)
            x_prev = tl.load(x_base + (n - 1)[:, None] * C + src[None, :], mask=prev_ok & fm,
                             other=0.0).to(tl.float32)
            acc += w_cur[None, :, None] * x_cur[:, None, :] + w_prev[None, :, None] * x_prev[:, None, :]
        y = tl.where(acc > 0, acc, acc * SLOPE_)
        p = n[:, None, None] * S + j[None, :, None] - start  # the output row after the crop
        mask = jm[None, :, None] & (p >= 0) & (p < N * S) & (f < C)[None, None, :]
        tl.store(y_ptr + b * N * S * C + p * C + f[None, None, :], y.to(dt), mask=mask)

    @triton.jit
    def _up_bwd_kernel(
        x_ptr, y_ptr, dy_ptr, w_ptr,  # inputs
        e_ptr, part_ptr,  # outputs: E [B, N + 1, 6, C] (for the input's gradient), [programs, 6 S + 1] partial sums
        N, C, S, start, n_chunks,
        FB: tl.constexpr, SP: tl.constexpr, CP: tl.constexpr, SLOPE_: tl.constexpr, NEED_DX: tl.constexpr,
        ITERS: tl.constexpr, SPM: tl.constexpr,
    ):
        """Program (chunk, b) loops over ITERS tiles of FB output blocks m. With D the gradient before the
        leaky ReLU, both sums are tensor-core products over each tile of D, read once, unshifted:

            dw[kh, j] = Σ_{m,f} D[m, j, f] x[m, f + 1 - kh]     dw[kh, s + j] = Σ_{m,f} D[m, j, f] x[m - 1, f + 1 - kh]

        (D as [j, (m, f)] times the six shifted copies of x as [(m, f), 16], plus a column of ones for the
        bias), and E[m, kh, f] = Σ_j w[kh, j] D[m, j, f], E[m, 3 + kh, f] = Σ_j w[kh, s + j] D[m, j, f] (a
        block-diagonal [(m, c), (m, j)] matrix of the weights times D as [(m, j), f]), from which
        :func:`_up_dx_kernel` takes dx[m, h] = Σ_kh E[m, kh, h - 1 + kh] + E[m + 1, 3 + kh, h - 1 + kh]."""
        chunk = tl.program_id(0)
        b = tl.program_id(1).to(tl.int64)
        dt = x_ptr.dtype.element_ty  # the products' operand dtype
        x_base = x_ptr + b * N * C
        y_base = b * N * S * C
        # D as [j, (m, f)] and the shifted x as [(m, f), c]: c < 3 x[m, f + 1 - c], 3 <= c < 6 x[m - 1, f + 4 - c]
        ja = tl.arange(0, SPM)
        q = tl.arange(0, FB * CP)
        qm = q // CP
        qf = q % CP
        cx = tl.arange(0, 16)
        kh_x = cx % 3
        back = ((cx >= 3) & (cx < 6)).to(tl.int32)
        # D as [(m, j), f] and the block-diagonal weights [(m', c), (m, j)] (8 rows per block, c < 6 used)
        r = tl.arange(0, FB * SP)
        rm = r // SP
        rj = r % SP
        f = tl.arange(0, CP)
        e = tl.arange(0, FB * 8)
        em = e // 8
        ec = e % 8
        w_idx = (ec % 3) * 2 * S + (ec >= 3).to(tl.int32) * S
        wmask = (em[:, None] == rm[None, :]) & (ec < 6)[:, None] & (rj < S)[None, :]
        wblk = tl.load(w_ptr + w_idx[:, None] + rj[None, :], mask=wmask, other=0.0).to(dt)
        acc = tl.zeros((SPM, 16), dtype=tl.float32)
        for it in range(ITERS):  # blocks past the last (m > N) are fully masked
            m0 = (chunk * ITERS + it) * FB
            pa = (m0 + qm)[None, :] * S + ja[:, None] - start
            ma = (ja < S)[:, None] & (pa >= 0) & (pa < N * S) & (qf < C)[None, :]
            ga = tl.load(dy_ptr + y_base + pa * C + qf[None, :], mask=ma, other=0.0).to(tl.float32)
            ya = tl.load(y_ptr + y_base + pa * C + qf[None, :], mask=ma, other=0.0).to(tl.float32)
            da = tl.where(ya > 0, ga, ga * SLOPE_).to(dt)  # y > 0 exactly where the leaky ReLU's input is
            fr = (m0 + qm)[:, None] - back[None, :]
            bn = qf[:, None] + 1 - kh_x[None, :]
            mx = (cx < 6)[None, :] & (fr >= 0) & (fr < N) & (bn >= 0) & (bn < C)
            xv = tl.load(x_base + fr * C + bn, mask=mx, other=0.0).to(tl.float32)
            xv = tl.where((cx == 6)[None, :], 1.0, xv).to(dt)
            acc = tl.dot(da, xv, acc)
            if NEED_DX:
                pb = (m0 + rm)[:, None] * S + rj[:, None] - start
                mb = (rj < S)[:, None] & (pb >= 0) & (pb < N * S) & (f < C)[None, :]
                gb = tl.load(dy_ptr + y_base + pb * C + f[None, :], mask=mb, other=0.0).to(tl.float32)
                yb = tl.load(y_ptr + y_base + pb * C + f[None, :], mask=mb, other=0.0).to(tl.float32)
                db = tl.where(yb > 0, gb, gb * SLOPE_).to(dt)
                ev = tl.dot(wblk, db)  # [(m', c), f]
                rows = m0 + em
                tl.store(e_ptr + ((b * (N + 1) + rows) * 6 + ec)[:, None] * C + f[None, :], ev.to(dt),
                         mask=((ec < 6) & (rows <= N))[:, None] & (f < C)[None, :])
        part = part_ptr + (b * n_chunks + chunk) * (6 * S + 1)
        for c in tl.static_range(6):
            col = tl.sum(tl.where((cx == c)[None, :], acc, 0.0), axis=1)  # [SPM]
            tl.store(part + (c % 3) * 2 * S + (c // 3) * S + ja, col, mask=ja < S)
        tl.store(part + 6 * S, tl.sum(tl.sum(tl.where((cx == 6)[None, :], acc, 0.0), axis=1), axis=0))

    @triton.jit
    def _up_dx_kernel(e_ptr, dx_ptr, N, C, FBX: tl.constexpr, CP: tl.constexpr):
        """dx[m, h] = Σ_kh E[m, kh, h - 1 + kh] + E[m + 1, 3 + kh, h - 1 + kh] (see :func:`_up_bwd_kernel`)."""
        blk = tl.program_id(0)
        b = tl.program_id(1).to(tl.int64)
        m = blk * FBX + tl.arange(0, FBX)
        h = tl.arange(0, CP)
        acc = tl.zeros((FBX, CP), dtype=tl.float32)
        for kh in tl.static_range(3):
            src = h - 1 + kh
            mask = (m < N)[:, None] & ((src >= 0) & (src < C))[None, :]
            cur = ((b * (N + 1) + m) * 6 + kh)[:, None] * C + src[None, :]
            acc += tl.load(e_ptr + cur, mask=mask, other=0.0).to(tl.float32)
            acc += tl.load(e_ptr + cur + (6 + 3) * C, mask=mask, other=0.0).to(tl.float32)  # E[m + 1, 3 + kh]
        tl.store(dx_ptr + b * N * C + m[:, None] * C + h[None, :], acc.to(dx_ptr.dtype.element_ty),
                 mask=(m < N)[:, None] & (h < C)[None, :])


def _launch(kernel: Any, grid: tuple[int, int], *args: Any, **meta: Any) -> None:
    kernel[grid](*args, **meta, **({} if _interpreting() else {"num_warps": WARPS}))


class _Stage(torch.autograd.Function):
    """x [B, N, C] (time-major), weight [1, 1, 3, 2s], bias [1] -> lrelu(stage(x)) [B, N s, C] in ``dtype``."""

    @staticmethod
    def forward(ctx: Any, x, weight, bias, stride, dtype):  # type: ignore[override]
        batch, frames, bins = x.shape
        x = x.contiguous()
        w = weight.detach().reshape(-1).float().contiguous()
        b = bias.detach().float().contiguous()
        y = torch.empty(batch, frames * stride, bins, device=x.device, dtype=dtype)
        # at least 4 rows per block, so that the backward's products have 16 (FRAMES · SP) rows
        meta = dict(FB=FRAMES, SP=max(4, _next_pow2(stride)), CP=max(16, _next_pow2(bins)), SLOPE_=SLOPE)
        n_blocks = triton.cdiv(frames + 1, FRAMES)
        _launch(_up_fwd_kernel, (n_blocks, batch), x, w, b, y, frames, bins, stride, stride // 2, **meta)
        ctx.save_for_backward(x, y, w)
        ctx.stride, ctx.meta, ctx.n_blocks = stride, meta, n_blocks
        ctx.types = (weight.dtype, bias.dtype)
        return y

    @staticmethod
    def backward(ctx: Any, dy):  # type: ignore[override]
        x, y, w = ctx.saved_tensors
        batch, frames, bins = x.shape
        stride = ctx.stride
        need_dx = ctx.needs_input_grad[0]
        # each program loops over up to ITERS tiles (a power of two: few compiled variants)
        iters = min(MAX_ITERS, _next_pow2(ctx.n_blocks))
        n_chunks = triton.cdiv(ctx.n_blocks, iters)
        part = torch.empty(batch * n_chunks, 6 * stride + 1, device=x.device, dtype=torch.float32)
        # E (written only for the input's gradient; otherwise x stands in as a pointer never stored to)
        e = torch.empty(batch, frames + 1, 6, bins, device=x.device, dtype=x.dtype) if need_dx else x
        meta = dict(ctx.meta, SPM=max(16, ctx.meta["SP"]))
        _launch(_up_bwd_kernel, (n_chunks, batch), x, y, dy.contiguous(), w, e, part,
                frames, bins, stride, stride // 2, n_chunks, NEED_DX=need_dx, ITERS=iters, **meta)
        dx = None
        if need_dx:
            dx = torch.empty_like(x)
            _launch(_up_dx_kernel, (triton.cdiv(frames, 16), batch), e, dx, frames, bins, FBX=16, CP=meta["CP"])
        sums = part.sum(0)
        d_w = sums[:-1].view(1, 1, 3, 2 * stride).to(ctx.types[0])
        d_b = sums[-1:].to(ctx.types[1])
        return dx, d_w, d_b, None, None


@torch.compiler.disable  # under torch.compile: a graph break, as for the fused residual stack
def fused_upsample(stages: Sequence[Any], strides: Sequence[int], cond: torch.Tensor,
                   dtype: torch.dtype) -> torch.Tensor:
    """:class:`~wavediff.nn.denoiser.ConditionUpsampler`'s stages on cond [B, C, N] -> [B, C, N·Πs],
    stored time-major, in ``dtype`` (sums in float32). Gradients flow to every stage's weight and bias,
    and to ``cond`` when it needs one."""
    x = cond.transpose(1, 2)  # [B, N, C]
    for stride, stage in zip(strides, stages):
        x = _Stage.apply(x, stage.weight, stage.bias, stride, dtype)
    return x.transpose(1, 2)
