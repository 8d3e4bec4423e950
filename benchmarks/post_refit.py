"""What a content-adaptive post network could buy (issue 18): post-v2's 1x1 tail refitted per
GOP on the stream's own frames, its quantised update priced as side information.

The tail is linear in the features it reads (``LitePostNet.features``), so the encoder's best
tail for a GOP is a least-squares fit (the overfitted-filter idea of Cool-chic, in closed
form). For the held-out clips coded by vcodec's own base layer (masks, post, Wiener and
temporal scaling off, --scale 1), per GOP, each of:

- base: the decoded base layer;
- post-v2: the shipped network;
- refit: the network with its tail replaced by the GOP's fit (ridge least squares of the
  folded residual on the 32 features and a bias), the update from the shipped tail quantised
  to UPDATE_STEP and its bits counted as signed exp-Golomb codes;

then the encoder's Wiener filter (one class) on top, as in the codec. Per clip and QP: the
stream's bytes, the Wiener and update bytes, PSNR-YUV, and the rate change that is worth
at the clip's own slope (the base layer's ln-rate per dB between neighbouring QPs) plus the
side information: an estimate of the BD-rate effect, not a bench.

    python benchmarks/post_refit.py [CLIP ...] [--frames 32] [--qps 22,27,32,37,42] [--always]
        [--per-stream]
"""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from post_gain import quality
from recon_vs_interp import HELD_OUT
from shared_clips import clip_parser, clip_paths

from vcodec.entropy import base_lambda
from vcodec.eval.bench import load_clip
from vcodec.frames import Gop, yuv_mse
from vcodec.models.postprocess import LUMA_UNSHUFFLE, condition, fold
from vcodec.models.registry import load
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops
from vcodec.stages.post import PostProcessor, neighbour_window
from vcodec.stages.wiener import WienerEncoder

UPDATE_STEP = 1 / 128  # the tail update's quantiser step (network units)
RIDGE = 1e-3  # x the mean diagonal of the normal matrix
BATCH = 4  # frames through the network at once


def _planes(gop: Gop) -> list[torch.Tensor]:
    """The GOP's planes as float tensors [T, H, W], edge-padded to a multiple of 4 (luma)."""
    r = LUMA_UNSHUFFLE
    hp, wp = -(-gop.height // r) * r, -(-gop.width // r) * r
    out = []
    for p, k in zip(gop.planes(), (1, 2, 2), strict=True):
        x = torch.from_numpy(p).float()[:, None]
        pad = (0, wp // k - x.shape[-1], 0, hp // k - x.shape[-2])
        out.append(F.pad(x, pad, "replicate")[:, 0])
    return out


def features(net, gop: Gop, qp: int) -> torch.Tensor:
    """[T, 33, H/4, W/4]: the tail's inputs for every frame of the GOP, and a constant 1."""
    y, u, v = _planes(gop)
    window, cond = neighbour_window(gop.n_frames), condition(qp, 1)[None]
    parts = []
    for first in range(0, gop.n_frames, BATCH):
        idx = window[first : first + BATCH]
        f = net.features(y[idx], u[idx], v[idx], cond.expand(len(idx), -1))
        parts.append(torch.cat([f, torch.ones_like(f[:, :1])], 1))
    return torch.cat(parts).double()


def exp_golomb_bits(q: np.ndarray) -> int:
    z = np.where(q > 0, 2 * q - 1, -2 * q)
    return int(np.sum(2 * np.floor(np.log2(z + 1)) + 1))


def normal_equations(net, source: Gop, base: Gop, qp: int) -> tuple[torch.Tensor, ...]:
    """(A^T A, A^T R) of the GOP: the tail's inputs A against the folded residual R (in the
    network's units: ``fold`` centres and scales both frames alike)."""
    f = features(net, base, qp)
    a = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
    src, dec = ([p[:, None] for p in _planes(g)] for g in (source, base))
    target = (fold(*src) - fold(*dec)).double()
    r = target.permute(0, 2, 3, 1).reshape(-1, target.shape[1])
    return a.T @ a, a.T @ r


def quantised_tail(net, ata: torch.Tensor, atr: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The least-squares tail [33, 24] as the decoder would rebuild it (the shipped tail plus
    the quantised update), and the update's bytes."""
    ata = ata + RIDGE * ata.diagonal().mean() * torch.eye(len(ata), dtype=ata.dtype)
    fitted = torch.linalg.solve(ata, atr)
    w = net.tail.weight.detach()[:, :, 0, 0].double()  # [24, 32]
    shipped = torch.cat([w.T, net.tail.bias.detach().double()[None]])
    q = torch.round((fitted - shipped) / UPDATE_STEP)
    nbytes = math.ceil(exp_golomb_bits(q.numpy().astype(np.int64)) / 8)
    return shipped + q * UPDATE_STEP, nbytes


def with_tail(net, base: Gop, qp: int, tail: torch.Tensor) -> Gop:
    """The GOP through post-v2 (the codec's PostProcessor) with ``tail`` [33, 24] in place of
    its own 1x1 tail."""
    adapted = copy.deepcopy(net)
    adapted.tail.weight.copy_(tail[:-1].T[:, :, None, None])
    adapted.tail.bias.copy_(tail[-1])
    return PostProcessor(torch.device("cpu"), net=adapted)(base, qp, 1)


def main() -> None:
    ap = clip_parser(__doc__, 32, "22,27,32,37,42")
    ap.add_argument("--always", action="store_true", help="take every refit (its upper bound)")
    ap.add_argument("--per-stream", action="store_true", help="one fit for the whole clip")
    args = ap.parse_args()
    if len(args.qps) < 2:
        ap.error("--qps needs two QPs at least: the rate estimate takes its slope between them")
    torch.set_grad_enabled(False)
    net = load("post-v2").float().eval()
    post = PostProcessor(torch.device("cpu"), name="post-v2")
    qps = args.qps
    print("clip         qp  kbytes  wiener B  update B   PSNR-YUV base  +wiener  post-v2+w  refit+w"
          "  rate: post-v2  refit")  # fmt: skip
    for path in clip_paths(args, HELD_OUT):
        clip = load_clip(path, args.frames)
        rows = []
        for qp in qps:
            buf = io.BytesIO()
            config = EncodeConfig(
                qp=qp, base="x265", scale="1", masks=False, post=False, wiener=False, temporal=False
            )
            encode_gops(iter(clip.gops), clip.info, buf, config)
            size = len(buf.getvalue())
            buf.seek(0)
            base = list(VcxDecoder(buf, "cpu").gops())
            lam = base_lambda(qp)
            out = {"wiener": [], "post": [], "refit": []}
            side = {"wiener": 0, "post": 0, "refit": 0}  # bytes: Wiener payloads + updates
            updates = 0
            wieners = {k: WienerEncoder(qp, layouts=1) for k in out}
            stream_tail = None
            if args.per_stream:  # one fit for the whole clip, sent once (an oracle: the
                # encoder would have to see the whole clip first)
                sums = [
                    normal_equations(net, src, b, qp)
                    for src, b in zip(clip.gops, base, strict=True)
                ]
                stream_tail, stream_bytes = quantised_tail(
                    net, sum(e[0] for e in sums), sum(e[1] for e in sums)
                )
            for k, (src, b) in enumerate(zip(clip.gops, base, strict=True)):
                generic = post(b, qp, 1)
                if stream_tail is None:
                    tail, update = quantised_tail(net, *normal_equations(net, src, b, qp))
                else:
                    tail, update = stream_tail, stream_bytes if k == 0 else 0
                adapted = with_tail(net, b, qp, tail)
                pixels = src.y.size  # yuv_mse is per luma-weighted pixel
                # the refit is sent only where it pays: D + lambda R against the generic net
                gain = (yuv_mse(src, generic) - yuv_mse(src, adapted)) * pixels
                if gain <= lam * 8 * update and not args.always:
                    adapted, update = generic, 0
                updates += update
                for key, g, extra in (("wiener", b, 0), ("post", generic, 0),
                                      ("refit", adapted, update)):  # fmt: skip
                    payload, filtered = wieners[key].encode_gop(src, g)
                    side[key] += extra + (len(payload) if payload else 0)
                    out[key].append(filtered)
            rows.append(
                (
                    qp,
                    size,
                    side,
                    updates,
                    quality(clip.gops, base)[0],
                    {k: quality(clip.gops, v)[0] for k, v in out.items()},
                )  # fmt: skip
            )
        for i, (qp, size, side, updates, q0, q) in enumerate(rows):
            j = i + 1 if i + 1 < len(rows) else i - 1  # the neighbouring QP for the slope
            slope = math.log(rows[j][1] / size) / (rows[j][4] - q0)  # ln rate per dB
            est = {}
            for key in ("post", "refit"):
                dq = q[key] - q["wiener"]
                extra = (side[key] - side["wiener"]) / size
                est[key] = 100 * (math.exp(-slope * dq) * (1 + extra) - 1)
            print(f"{path.name[:12]:12} {qp:3} {size / 1000:7.1f} {side['wiener']:9} "
                  f"{updates:9} {q0:14.2f} {q['wiener']:8.2f} {q['post']:10.2f} "
                  f"{q['refit']:8.2f} {est['post']:+13.2f}% {est['refit']:+6.2f}%")  # fmt: skip


if __name__ == "__main__":
    main()
