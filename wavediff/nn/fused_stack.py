"""The residual stack of :class:`~wavediff.nn.denoiser.Denoiser` as fused Triton kernels (training).

Same maths and parameters as :class:`~wavediff.nn.denoiser.ResidualBlock` (lmnt-com/diffwave's
block); only how the work is split into kernels differs, so that the ``[B, L, 2C]`` intermediates
are written once and read once instead of going through memory between every op.

Forward, per layer (one kernel, :func:`_fwd_kernel`): for a tile of time steps it loads the
three dilated taps of the layer input (zero-padded at the edges as the conv pads) and the
conditioner, and computes

    pre  = Σ_k x[t + (k-1) d] W_k + Σ_k [tap k inside] s W_k + cond Wc + b     [T, 2C]  (gate, filter)
    z    = σ(gate) · tanh(filter)                                              [T, C]
    out  = (x + z Wo_res + bo_res) / √2                                        [T, C]

The 2C columns of ``W_k``, ``Wc``, ``b``, ``pre`` and its gradient ``G`` are stored with gate and
filter interleaved (column 2c is gate channel c, 2c + 1 filter channel c; :func:`fused_residual_stack`
permutes the weights and autograd permutes their gradients back), so each product has one
``[T, 2C]`` accumulator and the gate of a channel sits next to its filter in registers. The step
projection ``s`` is added to the conv's input, (x + s) W_k = x W_k + s W_k, so ``s W_k`` ([3, 2C]
per batch item) is computed once outside and the tiles go from memory straight into the products.
The kernel writes ``out`` (the next layer's input), ``pre`` (saved for backward) and ``z`` into
column block ``i`` of a ``[B, L, layers·C]`` buffer. The skip sum ``Σ_i (z_i Wo_skip_i +
bo_skip_i)`` is linear in the ``z_i``, so it is one matrix product over that buffer after the last
layer (no per-layer read-modify-write of a running sum); the buffer is not kept for backward.

Backward, per layer from the last: :func:`_bwd_pre_kernel` turns the gradients of the layer's
output (``D``) and of the skip sum into ``G`` (column block ``i`` of a ``[B, L, layers·2C]``
buffer). Each of its programs loops over a chunk of one batch item's rows and also sums, per chunk,
``G`` over all rows, over the first ``d`` and over the last ``d`` rows, and ``D`` (the biases' and
the step projection's gradients; taken on the tensor cores as one product of a 0/1 row-selection
matrix with the tile), and the output projection's weight gradient ``z_i^T [D / √2 | g_skip]``,
with ``z_i`` recomputed from ``pre``. :func:`_bwd_x_kernel` gives the gradient of the layer's input
(the transposed dilated conv of ``G``, one product over both halves per tap, plus the residual
path); :func:`_bwd_w_kernel` the dilated conv's weight gradient from the raw layer input, over all
2C columns of ``G`` in one program or over each half in two (autotuned; the step projection's share,
``s ⊗ Σ G`` over the rows where each tap is inside, is added from those sums).
The conditioner's weight gradient and the gradient of the conditioner itself are each one matrix
product over ``G`` for all layers at once. Partial sums are reduced with ``torch.sum``, so results
are deterministic.

On a GPU both kernels that evaluate the gate take σ and tanh as one ``tanh.approx.f32`` each, σ(x) =
(1 + tanh(x / 2)) / 2 (:func:`_gate`; relative error ≈ 2^-11, the precision of float16, which
lmnt-com/diffwave's fp16 mode computes them in). The exact forms, 1 / (1 + e^-x) with an IEEE division,
had made the stack's kernels issue-bound: the step of DiffWave-base at batch 384 on an H200 went from
1,051-1,065 to 1,190 audio s/s (``benchmarks/README.md``, session 12). ``WAVEDIFF_FAST_GATE=0`` keeps
the exact forms; Triton's interpreter (the tests) always does.

Tile sizes, tiles per program, pipeline stages and warps are autotuned per kernel on the first call
(:func:`_configs`: 50 compiled variants in all); ``benchmarks/fused_kernel_sweep.py`` prints what
each configuration measured.

Used by :class:`Denoiser` when training on a CUDA device with Triton installed, for power-of-two
residual channels and a conditioner (see :func:`fused_stack_supported`); ``WAVEDIFF_FUSED=0``
turns it off. The tests run the kernels through Triton's interpreter on the CPU
(``TRITON_INTERPRET=1``) against the module's own maths in float64.
"""

from __future__ import annotations

import os
from typing import Any

import torch

try:  # Triton is optional: the stack falls back to the module's own forward without it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised where triton is absent
    triton = None
    tl = None

__all__ = ["fast_gate", "fused_stack_supported", "fused_residual_stack", "tuned_configs"]

BLOCK_T = 64  # time steps per tile under the interpreter; on a GPU autotuned (see _configs)
MAX_TILE = 128  # the largest tile of any configuration
W_TILE = 64  # time steps per tile of the weight-gradient kernel
W_PROGRAMS = 1056  # programs of the weight-gradient kernel (each writes one [3, C, 2C] partial sum)
W_COLUMN_BLOCKS = 2  # the weight-gradient kernel's column blocks under the interpreter (on a GPU autotuned)
PRE_HOIST = False  # the pre-gradient kernel's weights loaded once per program, under the interpreter (ditto)
PRE_PROGRAMS = 2048  # about this many programs of the pre-gradient kernel (each writes one [C, 2C] partial sum)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def fast_gate() -> bool:
    """Whether the kernels take the gate's σ and tanh as one ``tanh.approx.f32`` each (:func:`_gate`): on a
    GPU unless ``WAVEDIFF_FAST_GATE=0``; never under Triton's interpreter, which cannot run PTX."""
    return not _interpreting() and os.environ.get("WAVEDIFF_FAST_GATE", "1") != "0"


SUPPORTED_CHANNELS = (16, 32, 64)  # residual channels; 64 with 80 mel bins is what ran on a GPU
MAX_COND_CHANNELS = 128  # the kernels keep a tile of conditioner channels and its weights in registers


def fused_stack_supported(channels: int, cond_channels: int | None, device: torch.device) -> bool:
    """Whether :func:`fused_residual_stack` can run this stack here: a conditional stack of the sizes
    the kernels were written and checked for (the vocoders: DiffWave-base's 64 channels and 80 mel
    bins, or smaller; not the acoustic model's 272-channel frame-rate conditioner)."""
    if triton is None or os.environ.get("WAVEDIFF_FUSED", "1") == "0":
        return False
    if cond_channels is None or cond_channels > MAX_COND_CHANNELS or channels not in SUPPORTED_CHANNELS:
        return False
    return device.type == "cuda" or (_interpreting() and device.type == "cpu")


# ------------------------------------------------------------------------------------------------
# kernels
# ------------------------------------------------------------------------------------------------

if triton is not None:

    @triton.jit
    def _sigmoid(x):
        return 1.0 / (1.0 + tl.exp(-x))

    @triton.jit
    def _tanh_approx(x):
        return tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=f,f", [x], dtype=tl.float32,
                                         is_pure=True, pack=1)

    @triton.jit
    def _gate(pg, pf, FAST: tl.constexpr):
        """σ(pg) and tanh(pf) in float32. FAST (on a GPU): one ``tanh.approx.f32`` each, σ(x) =
        (1 + tanh(x / 2)) / 2 (relative error ≈ 2^-11, an eighth of bfloat16's rounding); otherwise
        (Triton's interpreter) exact, as 1 / (1 + e^-x) and 2σ(2x) − 1."""
        if FAST:
            return 0.5 * _tanh_approx(0.5 * pg) + 0.5, _tanh_approx(pf)
        else:
            return _sigmoid(pg), 2.0 * _sigmoid(2.0 * pf) - 1.0

    @triton.jit
    def _fwd_kernel(
        x_ptr, cond_ptr, sw_ptr, wd_ptr, b_ptr, wc_ptr, wo_ptr, bo_ptr,  # inputs
        out_ptr, pre_ptr, z_ptr,  # outputs
        L, dil, CC, z_stride, z_col,
        C: tl.constexpr, CA: tl.constexpr, CB: tl.constexpr, BT: tl.constexpr, TPP: tl.constexpr,
        KST: tl.constexpr, WRITE_OUT: tl.constexpr, WRITE_PRE: tl.constexpr, FAST: tl.constexpr,
    ):
        chunk = tl.program_id(0)
        b = tl.program_id(1).to(tl.int64)  # int64 offsets: B * L * width passes 2^31
        ch = tl.arange(0, C)
        c2 = tl.arange(0, 2 * C)
        rows = tl.arange(0, BT)
        ca = tl.arange(0, CA)
        dt = x_ptr.dtype.element_ty
        w_full = ch[:, None] * (2 * C) + c2[None, :]  # W_k: [C, 2C], gate and filter columns interleaved
        bias = tl.load(b_ptr + c2).to(tl.float32)
        sw = sw_ptr + b * 3 * 2 * C  # s W_k for this batch item: [3, 2C]
        x_base = x_ptr + b * L * C
        c_base = cond_ptr + b * L * CC
        for it in range(TPP):  # tiles past the end are fully masked (no branch: the loop pipelines)
            t = (chunk * TPP + it) * BT + rows
            tmask = t < L
            tile_mask = tmask[:, None]
            acc = tl.zeros((BT, 2 * C), dtype=tl.float32) + bias[None, :]
            for k in tl.range(0, 3, num_stages=KST):  # the taps as a K loop (KST > 1: the next tap loads early)
                tk = t + (k - 1) * dil
                mk = ((tk >= 0) & (tk < L))[:, None]
                # the conv reads x + s where the tap is inside the signal and 0 (padding) outside:
                # x W_k from the raw tile, plus s W_k on the rows whose tap is inside
                xk = tl.load(x_base + tk[:, None] * C + ch[None, :], mask=mk, other=0.0)
                acc = tl.dot(xk, tl.load(wd_ptr + k * C * 2 * C + w_full), acc)
                acc += tl.where(mk, tl.load(sw + k * 2 * C + c2)[None, :], 0.0)
            # the conditioner's channels as two power-of-two blocks: [0, CA) and [CA, CA + CB)
            cva = tl.load(c_base + t[:, None] * CC + ca[None, :], mask=tile_mask & (ca[None, :] < CC), other=0.0)
            acc = tl.dot(cva, tl.load(wc_ptr + ca[:, None] * (2 * C) + c2[None, :], mask=ca[:, None] < CC,
                                      other=0.0), acc)
            if CB > 0:
                cb = CA + tl.arange(0, CB)
                cvb = tl.load(c_base + t[:, None] * CC + cb[None, :], mask=tile_mask & (cb[None, :] < CC),
                              other=0.0)
                acc = tl.dot(cvb, tl.load(wc_ptr + cb[:, None] * (2 * C) + c2[None, :], mask=cb[:, None] < CC,
                                          other=0.0), acc)
            if WRITE_PRE:
                tl.store(pre_ptr + b * L * 2 * C + t[:, None] * (2 * C) + c2[None, :], acc.to(dt), mask=tile_mask)
            # interleaved columns: the gate and filter of channel c sit side by side (a split in registers)
            pg, pf = tl.split(tl.reshape(acc, (BT, C, 2)))
            sg, th = _gate(pg, pf, FAST)
            zq = (sg * th).to(dt)
            tl.store(z_ptr + (b * L + t[:, None]) * z_stride + z_col + ch[None, :], zq, mask=tile_mask)
            if WRITE_OUT:
                xc = tl.load(x_base + t[:, None] * C + ch[None, :], mask=tile_mask, other=0.0)
                res = tl.dot(zq, tl.load(wo_ptr + ch[:, None] * (2 * C) + ch[None, :]))
                res += tl.load(bo_ptr + ch).to(tl.float32)[None, :]
                out = (xc.to(tl.float32) + res) * 0.7071067811865476
                tl.store(out_ptr + b * L * C + t[:, None] * C + ch[None, :], out.to(dt), mask=tile_mask)

    @triton.jit
    def _bwd_pre_kernel(
        pre_ptr, d_ptr, gsk_ptr, wo_ptr,  # inputs
        g_ptr, part_vec_ptr, part_wo_ptr,  # outputs
        L, rows_per_chunk, n_chunks, dil, g_stride, g_col,
        C: tl.constexpr, BT: tl.constexpr, HAS_D: tl.constexpr, HOIST: tl.constexpr, FAST: tl.constexpr,
    ):
        """Program (chunk, b) loops over the tiles of rows [chunk * rows_per_chunk, + rows_per_chunk).
        HOIST: the output projection's two [C, C] weight blocks are loaded once, before the loop (more
        registers), instead of next to each tile's products (more loads)."""
        chunk = tl.program_id(0)
        b = tl.program_id(1).to(tl.int64)  # int64 offsets: B * L * width passes 2^31
        ch = tl.arange(0, C)
        c2 = tl.arange(0, 2 * C)
        rows = tl.arange(0, BT)
        r16 = tl.arange(0, 16)[:, None]
        dt = pre_ptr.dtype.element_ty
        # column sums on the tensor cores: sel @ tile has in row 0 the tile's column sums, in row 1 the
        # sums over its rows t < dil, in row 2 over t >= L - dil (rows 3-15 of sel are zero)
        sum_g = tl.zeros((16, 2 * C), dtype=tl.float32)
        sum_d = tl.zeros((16, C), dtype=tl.float32)
        # the output projection's weight gradient: z^T D (residual half), z^T g_skip (skip half)
        acc_res = tl.zeros((C, C), dtype=tl.float32)
        acc_skip = tl.zeros((C, C), dtype=tl.float32)
        # Wo transposed, per half: element (co, ci) = wo[ci, half * C + co]
        w_t = ch[None, :] * (2 * C) + ch[:, None]
        if HOIST:
            wo_skip_t = tl.load(wo_ptr + C + w_t)
            wo_res_t = tl.load(wo_ptr + w_t)
        for it in tl.range(0, rows_per_chunk // BT):  # rows past L load as 0 and add nothing
            t = chunk * rows_per_chunk + it * BT + rows
            m2 = (t < L)[:, None]
            row = b * L + t[:, None]
            tt = t[None, :]
            sel = ((r16 == 0) | ((r16 == 1) & (tt < dil)) | ((r16 == 2) & (tt >= L - dil))).to(dt)
            gsk = tl.load(gsk_ptr + row * C + ch[None, :], mask=m2, other=0.0)
            if not HOIST:
                wo_skip_t = tl.load(wo_ptr + C + w_t)
            gz = tl.dot(gsk, wo_skip_t)
            pre2 = tl.load(pre_ptr + row * (2 * C) + c2[None, :], mask=m2, other=0.0).to(tl.float32)
            pg, pf = tl.split(tl.reshape(pre2, (BT, C, 2)))  # gate and filter columns are interleaved
            sg, th = _gate(pg, pf, FAST)
            zt = tl.trans((sg * th).to(dt))  # the layer's z, recomputed (0 on rows past L): [C, BT]
            acc_skip = tl.dot(zt, gsk, acc_skip)
            if HAS_D:
                dq = tl.load(d_ptr + row * C + ch[None, :], mask=m2, other=0.0)
                if not HOIST:
                    wo_res_t = tl.load(wo_ptr + w_t)
                gz += tl.dot(dq, wo_res_t) * 0.7071067811865476
                sum_d = tl.dot(sel, dq, sum_d)
                acc_res = tl.dot(zt, dq, acc_res)
            gq = tl.reshape(tl.join(gz * th * sg * (1.0 - sg), gz * sg * (1.0 - th * th)), (BT, 2 * C)).to(dt)
            tl.store(g_ptr + row * g_stride + g_col + c2[None, :], gq, mask=m2)
            sum_g = tl.dot(sel, gq, sum_g)  # rows past L are zero in gq and dq
        # [7, C]: Σ G over all rows, over t < dil, over t >= L - dil (each [2C], interleaved); Σ D / √2
        slot = b * n_chunks + chunk
        v = part_vec_ptr + slot * 7 * C
        for r in tl.static_range(3):
            tl.store(v + r * 2 * C + c2, tl.sum(tl.where(r16 == r, sum_g, 0.0), axis=0))
        tl.store(v + 6 * C + ch, tl.sum(tl.where(r16 == 0, sum_d, 0.0), axis=0) * 0.7071067811865476)
        wo_part = part_wo_ptr + slot * C * 2 * C + ch[:, None] * (2 * C) + ch[None, :]
        tl.store(wo_part, acc_res * 0.7071067811865476)
        tl.store(wo_part + C, acc_skip)

    @triton.jit
    def _bwd_x_kernel(
        g_ptr, d_ptr, wd_ptr,  # inputs
        dx_ptr,  # output
        L, dil, g_stride, g_col,
        C: tl.constexpr, BT: tl.constexpr, TPP: tl.constexpr, HAS_D: tl.constexpr,
    ):
        chunk = tl.program_id(0)
        b = tl.program_id(1).to(tl.int64)  # int64 offsets: B * L * width passes 2^31
        ch = tl.arange(0, C)
        c2 = tl.arange(0, 2 * C)
        rows = tl.arange(0, BT)
        dt = g_ptr.dtype.element_ty
        wt = c2[:, None] + ch[None, :] * (2 * C)  # W_k^T: element (j, ci) = wd[k, ci, j], j over both halves
        for it in range(TPP):  # tiles past the end are fully masked
            u = (chunk * TPP + it) * BT + rows
            umask = u < L
            acc = tl.zeros((BT, C), dtype=tl.float32)
            if HAS_D:
                acc += tl.load(d_ptr + (b * L + u[:, None]) * C + ch[None, :], mask=umask[:, None],
                               other=0.0).to(tl.float32) * 0.7071067811865476
            for k in tl.static_range(3):
                t = u - (k - 1) * dil
                mk = ((t >= 0) & (t < L) & umask)[:, None]
                gk = tl.load(g_ptr + (b * L + t[:, None]) * g_stride + g_col + c2[None, :], mask=mk, other=0.0)
                acc += tl.dot(gk, tl.load(wd_ptr + k * C * 2 * C + wt))
            tl.store(dx_ptr + (b * L + u[:, None]) * C + ch[None, :], acc.to(dt), mask=umask[:, None])

    @triton.jit
    def _bwd_w_kernel(
        x_ptr, g_ptr,  # inputs
        part_ptr,  # output [programs, 3, C, 2C]
        L, n_tiles, n_work, n_prog, dil, g_stride, g_col,
        C: tl.constexpr, BT: tl.constexpr, N_ITER: tl.constexpr, NH: tl.constexpr,
    ):
        """Dilated-conv weight gradient from the raw layer input (the step projection's share is added
        outside): program (p, h) sums tiles p, p + P, ... of all n_work (batch, tile) pairs, for column
        block h of NH (NH = 1: all 2C columns, each input tile read once; NH = 2: half the accumulators)."""
        pid = tl.program_id(0)
        h = tl.program_id(1)
        ch = tl.arange(0, C)
        cw = tl.arange(0, 2 * C // NH)
        rows = tl.arange(0, BT)
        acc0 = tl.zeros((C, 2 * C // NH), dtype=tl.float32)
        acc1 = tl.zeros((C, 2 * C // NH), dtype=tl.float32)
        acc2 = tl.zeros((C, 2 * C // NH), dtype=tl.float32)
        for it in range(N_ITER):  # a constant (Triton's interpreter wants one; a fixed crop compiles once)
            j = pid + it * n_prog
            b = (j // n_tiles).to(tl.int64)  # int64 offsets: B * L * width passes 2^31
            t = (j % n_tiles) * BT + rows
            tmask = (t < L) & (rows * 0 + j < n_work)  # (a vector mask: Triton 3.9's interpreter wants one)
            x_base = x_ptr + b * L * C
            g = tl.load(g_ptr + (b * L + t[:, None]) * g_stride + g_col + h * (2 * C // NH) + cw[None, :],
                        mask=tmask[:, None], other=0.0)
            for k in tl.static_range(3):
                tk = t + (k - 1) * dil
                mk = (tk >= 0) & (tk < L) & tmask
                xk = tl.load(x_base + tk[:, None] * C + ch[None, :], mask=mk[:, None], other=0.0)
                if k == 0:
                    acc0 = tl.dot(tl.trans(xk), g, acc0)
                elif k == 1:
                    acc1 = tl.dot(tl.trans(xk), g, acc1)
                else:
                    acc2 = tl.dot(tl.trans(xk), g, acc2)
        base = part_ptr + pid * 3 * C * 2 * C + ch[:, None] * (2 * C) + h * (2 * C // NH) + cw[None, :]
        tl.store(base, acc0)
        tl.store(base + C * 2 * C, acc1)
        tl.store(base + 2 * C * 2 * C, acc2)


# ------------------------------------------------------------------------------------------------
# autograd
# ------------------------------------------------------------------------------------------------


def _next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _cond_blocks(cc: int) -> tuple[int, int]:
    """Conditioner channels as power-of-two blocks of at least 16 (``tl.dot``'s minimum): 80 -> (64, 16)."""
    if cc <= 16:
        return 16, 0
    first = 1 << (cc.bit_length() - 1)  # the largest power of two <= cc
    rest = cc - first
    return first, (max(16, _next_pow2(rest)) if rest else 0)


_TUNED: dict[str, Any] = {}


def _configs(name: str) -> list[Any]:
    """The configurations autotuning tries for kernel ``name``: tile size ``BT``, warps and pipeline
    stages; for the forward and input-gradient kernels also tiles per program ``TPP`` (with as many
    stages for the loop over them), and for the forward kernel the stages of its loop over the three
    taps, ``KST``. The weight-gradient kernel's tile is fixed; it tunes its column blocks ``NH`` (1: all
    2C columns per program, fastest on an H200 in session 12; 2: halves, fewer registers). Each list
    holds the configurations that came within reach of the best on an H200 in a wider sweep
    (``benchmarks/README.md``, session 9) and a spread around them: every one is a compile on the
    first training step."""
    if name == "w":  # (column blocks NH, warps, stages)
        grid = [(2, w, st) for w in (4, 8) for st in (1, 2, 3)] + [(1, 8, 1), (1, 8, 2), (1, 8, 3), (1, 4, 2)]
        return [triton.Config({"NH": nh}, num_warps=w, num_stages=st) for nh, w, st in grid]
    if name == "fwd":  # (BT, TPP, KST, warps)
        grid = [(128, 1, 1, 8), (128, 1, 1, 4), (128, 1, 2, 4), (64, 1, 1, 4), (64, 1, 2, 4), (64, 2, 1, 4)]
        return [triton.Config({"BT": bt, "TPP": tpp, "KST": kst}, num_warps=w, num_stages=tpp)
                for bt, tpp, kst, w in grid]
    if name == "pre":  # (BT, warps, stages, HOIST)
        grid = [(32, 4, 3, False), (32, 4, 2, False), (64, 4, 2, False), (32, 8, 3, False), (64, 8, 2, False),
                (128, 8, 2, False), (32, 4, 3, True), (32, 4, 2, True), (64, 4, 2, True), (32, 8, 3, True),
                (64, 8, 2, True)]
        return [triton.Config({"BT": bt, "HOIST": ho}, num_warps=w, num_stages=st) for bt, w, st, ho in grid]
    # the input-gradient kernel: (BT, TPP, warps)
    grid = [(128, 1, 4), (64, 1, 4), (128, 1, 8), (32, 1, 4), (32, 2, 4), (64, 2, 4)]
    return [triton.Config({"BT": bt, "TPP": tpp}, num_warps=w, num_stages=tpp) for bt, tpp, w in grid]


def _kernel(name: str) -> Any:
    """The kernel, autotuned over :func:`_configs` on a GPU (fixed 64-step tiles under the interpreter).

    Every configuration writes all of the partial-sum buffers (their slots do not depend on the tile size),
    so trials need no reset."""
    if name in _TUNED:
        return _TUNED[name]
    raw = {"fwd": _fwd_kernel, "pre": _bwd_pre_kernel, "x": _bwd_x_kernel, "w": _bwd_w_kernel}[name]
    if _interpreting():
        meta = {"w": {"NH": W_COLUMN_BLOCKS}, "pre": {"BT": BLOCK_T, "HOIST": PRE_HOIST}, "fwd": {"BT": BLOCK_T, "TPP": 2, "KST": 2}}.get(
            name, {"BT": BLOCK_T, "TPP": 2})

        def launch(grid: Any, *args: Any, **kwargs: Any) -> None:
            raw[grid(meta)](*args, **kwargs, **meta)

    else:
        key = ["C", "HAS_D"] if name in ("pre", "x") else ["C"]  # HAS_D: every layer but the last
        tuned = triton.autotune(_configs(name), key=key)(raw)

        def launch(grid: Any, *args: Any, **kwargs: Any) -> None:
            tuned[grid](*args, **kwargs)

        launch.autotuner = tuned  # type: ignore[attr-defined]

    _TUNED[name] = launch
    return launch


def tuned_configs() -> dict[str, str]:
    """The configuration autotuning chose for each kernel run so far (for benchmark reports)."""
    out = {}
    for name, launch in _TUNED.items():
        best = getattr(getattr(launch, "autotuner", None), "best_config", None)
        if best is not None:
            out[name] = str(best)
    return out


def _chunks(length: int, bt: int, tpp: int) -> int:
    return triton.cdiv(triton.cdiv(length, bt), tpp)


class _FusedStack(torch.autograd.Function):
    """h0 [B, L, C], cond [B, L, Cc], sproj [N, B, C] and the stacked per-layer weights -> skip sum [B, L, C].

    Weights (N layers): wd [N, 3, C, 2C] (dilated conv, ``weight.permute(2, 1, 0)``), bias [N, 2C]
    (dilated-conv bias + conditioner bias), wc [N, Cc, 2C] (conditioner, transposed), each with gate and
    filter columns interleaved; wo [N, C, 2C] (output projection, transposed: residual | skip), bo [N, 2C].
    Activations are in ``h0``'s dtype, sums in fp32."""

    @staticmethod
    def forward(ctx: Any, h0, cond, sproj, wd, bias, wc, wo, bo, dilations):  # type: ignore[override]
        n_layers, batch, length, channels = len(dilations), h0.shape[0], h0.shape[1], h0.shape[2]
        cc = cond.shape[2]
        dt = h0.dtype
        wd_q, wc_q, wo_q = wd.to(dt).contiguous(), wc.to(dt).contiguous(), wo.to(dt).contiguous()
        bias32, bo32 = bias.float().contiguous(), bo.float().contiguous()
        s32 = sproj.float().contiguous()
        # the step projection s enters each tap as (x + s) W_k = x W_k + s W_k: s W_k per batch item,
        # so that the kernels read the layer inputs straight into their products
        with torch.autocast(h0.device.type, enabled=False):  # in float32 even under autocast
            sw = torch.einsum("nbc,nkcj->nbkj", s32, wd_q.float()).contiguous()  # [N, B, 3, 2C]
        cond = cond.contiguous()
        save = any(ctx.needs_input_grad[:8])
        z_all = torch.empty(batch, length, n_layers * channels, device=h0.device, dtype=dt)
        pre = torch.empty(n_layers if save else 1, batch, length, 2 * channels, device=h0.device, dtype=dt)
        inputs = [h0.contiguous()]
        fwd = _kernel("fwd")
        fast = ctx.fast = fast_gate()
        ca, cb = _cond_blocks(cc)
        for i, d in enumerate(dilations):
            last = i == n_layers - 1
            out = inputs[-1] if last else torch.empty_like(inputs[-1])
            fwd(lambda m: (_chunks(length, m["BT"], m["TPP"]), batch),
                inputs[-1], cond, sw[i], wd_q[i], bias32[i], wc_q[i], wo_q[i], bo32[i],
                out, pre[i if save else 0], z_all,
                length, d, cc, n_layers * channels, i * channels,
                C=channels, CA=ca, CB=cb, WRITE_OUT=not last, WRITE_PRE=save, FAST=fast)
            if not last:
                inputs.append(out)
        # skip sum: Σ_i z_i Wo_skip_i + bo_skip_i as one product over all layers
        wos = wo_q[:, :, channels:].reshape(n_layers * channels, channels)
        skip = torch.addmm(bo32[:, channels:].sum(0).to(dt), z_all.view(batch * length, -1), wos)
        if save:  # z is not kept: the backward recomputes it from ``pre``
            ctx.save_for_backward(cond, s32, wd_q, wc_q, wo_q, pre, *inputs)
            ctx.dilations = tuple(dilations)
            ctx.dtypes = (h0.dtype, cond.dtype, sproj.dtype, wd.dtype, bias.dtype, wc.dtype, wo.dtype, bo.dtype)
        return skip.view(batch, length, channels)

    @staticmethod
    def backward(ctx: Any, g_skip):  # type: ignore[override]
        cond, s32, wd_q, wc_q, wo_q, pre, *inputs = ctx.saved_tensors
        dilations = ctx.dilations
        n_layers = len(dilations)
        batch, length, channels = inputs[0].shape
        cc = cond.shape[2]
        dt = inputs[0].dtype
        dev = inputs[0].device
        f32 = torch.float32
        gsk = g_skip.to(dt).contiguous()
        # pre-gradient programs: (chunk, batch item), each over rows_per_chunk rows (a multiple of every tile)
        rows_per_chunk = triton.cdiv(triton.cdiv(length, max(1, PRE_PROGRAMS // batch)), MAX_TILE) * MAX_TILE
        n_chunks = triton.cdiv(length, rows_per_chunk)
        w_tiles = triton.cdiv(length, W_TILE)
        # tiles per weight-gradient program: a power of two (a compile-time constant; powers of two
        # keep the number of compiled variants small when lengths vary), programs as many as needed
        w_iter = _next_pow2(triton.cdiv(batch * w_tiles, W_PROGRAMS))
        n_prog_w = triton.cdiv(batch * w_tiles, w_iter)
        width = n_layers * 2 * channels
        g_all = torch.empty(batch, length, width, device=dev, dtype=dt)
        part_vec = torch.empty(batch * n_chunks, 7, channels, device=dev, dtype=f32)
        part_wo = torch.empty(batch * n_chunks, channels, 2 * channels, device=dev, dtype=f32)
        part_w = torch.empty(n_prog_w, 3, channels, 2 * channels, device=dev, dtype=f32)
        d_wd = torch.empty(n_layers, 3, channels, 2 * channels, device=dev, dtype=f32)
        d_wo = torch.empty(n_layers, channels, 2 * channels, device=dev, dtype=f32)
        d_bo = torch.empty(n_layers, 2 * channels, device=dev, dtype=f32)
        # per layer and batch item: Σ_t G, Σ_{t<d} G, Σ_{t>=L-d} G (each [2C]), Σ_t D / √2 [C]
        vecs = torch.empty(n_layers, batch, 7 * channels, device=dev, dtype=f32)
        d_bo[:, channels:] = g_skip.sum((0, 1), dtype=f32)
        pre_k, x_k, w_k = _kernel("pre"), _kernel("x"), _kernel("w")
        fast = ctx.fast  # the backward recomputes the gate as the forward took it
        grad = None  # gradient of the current layer's output (None for the last layer)
        for i in reversed(range(n_layers)):
            d = dilations[i]
            has_d = grad is not None
            col = i * 2 * channels
            # also the output projection's weight gradient z_i^T [D / √2 | g_skip] (the last layer's
            # residual half is 0: its residual output is unused)
            pre_k(lambda m: (n_chunks, batch),
                  pre[i], grad if has_d else gsk, gsk, wo_q[i], g_all, part_vec, part_wo,
                  length, rows_per_chunk, n_chunks, d, width, col, C=channels, HAS_D=has_d,
                  FAST=fast)
            w_k(lambda m: (n_prog_w, m["NH"]),
                inputs[i], g_all, part_w,
                length, w_tiles, batch * w_tiles, n_prog_w, d, width, col,
                C=channels, BT=W_TILE, N_ITER=w_iter)
            new_grad = torch.empty(batch, length, channels, device=dev, dtype=dt)
            x_k(lambda m: (_chunks(length, m["BT"], m["TPP"]), batch),
                g_all, grad if has_d else gsk, wd_q[i], new_grad,
                length, d, width, col, C=channels, HAS_D=has_d)
            grad = new_grad
            torch.sum(part_w, 0, out=d_wd[i])
            torch.sum(part_wo, 0, out=d_wo[i])
            torch.sum(part_vec.view(batch, n_chunks, 7 * channels), 1, out=vecs[i])
        total, lo, hi = (vecs[:, :, k * 2 * channels:(k + 1) * 2 * channels] for k in range(3))  # [N, B, 2C]
        d_bias = total.sum(1)
        d_bo[:, :channels] = vecs[:, :, 6 * channels:].sum(1)
        # the step projection is added to the conv's input where a tap reads inside the signal:
        # tap 0 (t - d) for t >= d, tap 2 (t + d) for t < L - d
        taps = torch.stack([total - lo, total, total - hi], 1)  # [N, 3, B, 2C]
        d_s = torch.einsum("nkcj,nkbj->nbc", wd_q.float(), taps)
        d_wd += torch.einsum("nbc,nkbj->nkcj", s32, taps)  # the kernels took x W_k; (x + s) W_k adds s W_k
        g_flat = g_all.view(batch * length, width)
        d_cond = torch.matmul(g_flat, wc_q.permute(0, 2, 1).reshape(width, cc))  # [B*L, Cc]
        d_wc = torch.matmul(cond.view(batch * length, cc).t(), g_flat).float()  # [Cc, N * 2C]
        d_wc = d_wc.view(cc, n_layers, 2 * channels).permute(1, 0, 2)
        types = ctx.dtypes
        return (
            grad.to(types[0]),
            d_cond.view(batch, length, cc).to(types[1]),
            d_s.to(types[2]),
            d_wd.to(types[3]),
            d_bias.to(types[4]),
            d_wc.to(types[5]),
            d_wo.to(types[6]),
            d_bo.to(types[7]),
            None,
        )


def _interleave(w: torch.Tensor) -> torch.Tensor:
    """[..., 2C] as [gate | filter] -> [..., 2C] with column 2c gate c and 2c + 1 filter c."""
    return w.unflatten(-1, (2, w.shape[-1] // 2)).transpose(-1, -2).flatten(-2)


@torch.compiler.disable  # under torch.compile: a graph break; the kernels are already fused
def fused_residual_stack(
    layers: Any, h: torch.Tensor, cond: torch.Tensor, step: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """The residual layers of a :class:`Denoiser` on h [B, C, L] and cond [B, Cc, L] (both stored
    time-major) and step [B, H] -> skip sum [B, C, L] (time-major), activations in ``dtype``.

    Gradients flow to every parameter of ``layers``, to ``h``, ``cond`` and ``step``."""
    dilations = [layer.dilated_conv.dilation[0] for layer in layers]
    # the kernels take the 2C columns of the dilated conv and the conditioner with gate and filter
    # interleaved (column 2c is gate channel c, 2c + 1 filter channel c); autograd un-permutes the gradients
    wd = _interleave(torch.stack([layer.dilated_conv.weight for layer in layers]).permute(0, 3, 2, 1))  # [N, 3, C, 2C]
    bias = _interleave(torch.stack([layer.dilated_conv.bias + layer.conditioner_projection.bias for layer in layers]))
    wc = _interleave(torch.stack([layer.conditioner_projection.weight.squeeze(-1) for layer in layers]).transpose(1, 2))
    wo = torch.stack([layer.output_projection.weight.squeeze(-1) for layer in layers]).transpose(1, 2)
    bo = torch.stack([layer.output_projection.bias for layer in layers])
    w_step = torch.stack([layer.diffusion_projection.weight for layer in layers])  # [N, C, H]
    b_step = torch.stack([layer.diffusion_projection.bias for layer in layers])  # [N, C]
    sproj = torch.einsum("nch,bh->nbc", w_step, step.to(w_step.dtype)) + b_step[:, None, :]
    h_tm = h.transpose(1, 2).to(dtype).contiguous()  # [B, L, C]: a free view of a time-major h
    cond_tm = cond.transpose(1, 2).to(dtype).contiguous()
    skip = _FusedStack.apply(h_tm, cond_tm, sproj, wd, bias, wc, wo, bo, dilations)
    return skip.transpose(1, 2)
