"""Assignment a4, training and metrics: the continuous-time fine-tuning loss on a tiny network (E11),
PSNR on the Y channel with the official conventions (E12), and reading the report's "SSIM" column
(E13).  References: a loss and its gradient computed here from the same random draws, a
Kolmogorov-Smirnov test, a tiny training run, scikit-image's colour conversion, ctlib.metrics
(golden-tested against the official code) and piq."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import kstest

from ..schedule import ExpAlphaSchedule, ResShiftSchedule
from ._core import ExerciseFailed, as_numpy, call, compare, exercise, need_tensor

ASSIGNMENT = "a4_training_and_metrics"


class TinyNet(torch.nn.Module):
    """A per-pixel linear 'network' f(inp, t, y) = w1 inp + w2 y + w3 t + b, in float64."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))

    def forward(self, inp: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        tt = t.reshape([-1] + [1] * (inp.ndim - 1)).to(inp.dtype)
        return self.w[0] * inp + self.w[1] * y + self.w[2] * tt + self.w[3]


def _ref_loss(net, x0, y, schedule, generator) -> torch.Tensor:
    T, kappa = schedule.T, schedule.kappa
    t = 1.0 / T + (1.0 - 1.0 / T) * torch.rand(x0.shape[0], generator=generator, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    eta = torch.as_tensor(schedule.eta(t.numpy()), dtype=x0.dtype).reshape([-1] + [1] * (x0.ndim - 1))
    x_t = x0 + eta * (y - x0) + kappa * eta.sqrt() * noise
    return ((net(x_t / (kappa**2 * eta + 1).sqrt(), t, y) - x0) ** 2).mean()


def _data(rng: np.random.Generator, B: int = 8, d: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    x0 = torch.from_numpy(0.5 * rng.standard_normal((B, 1, d, d)))
    return x0, x0 + torch.from_numpy(0.2 * rng.standard_normal((B, 1, d, d)))


@exercise("E11", "the continuous-time fine-tuning loss", points=15, minutes=30, assignment=ASSIGNMENT,
          names=("sample_train_t", "network_input", "score_loss_weight", "finetune_loss"))
def check_loss(sample_train_t, network_input, score_loss_weight, finetune_loss, *, rng: np.random.Generator,
               hidden: bool = False) -> None:
    seed = int(rng.integers(2**31))
    # time sampling: t ~ U(1/T, 1), one torch.rand draw in float64
    for T in (15, int(rng.integers(4, 40))):
        t = call(sample_train_t, 20_000, T, torch.Generator().manual_seed(seed), name="sample_train_t")
        if not isinstance(t, torch.Tensor) or t.shape != (20_000,):
            raise ExerciseFailed("sample_train_t(n, T, generator) must return a tensor of shape (n,)")
        if t.dtype != torch.float64:
            raise ExerciseFailed(f"sample_train_t returned {t.dtype}: draw in float64 (float32 cannot hold the times "
                                 "near 1/T that eta(t) is steep around)")
        tn = t.numpy()
        where = f"for T = {T}"
        if tn.min() < 1.0 / T - 1e-12 or tn.max() > 1.0:
            raise ExerciseFailed(f"times outside [1/T, 1] {where}: the fine-tune never trains below the official "
                                 "first step t = 1/T")
        if np.unique(np.round(tn * T, 9)).size < 100:
            raise ExerciseFailed(f"your times take few distinct values {where}: the continuous fine-tune draws t "
                                 "continuously, not the discrete steps k/T")
        p = kstest(tn, "uniform", args=(1.0 / T, 1.0 - 1.0 / T)).pvalue
        if p < 1e-6:
            raise ExerciseFailed(f"your times are not uniform on [1/T, 1] {where} (Kolmogorov-Smirnov p = {p:.2g})")
        ref = 1.0 / T + (1.0 - 1.0 / T) * torch.rand(20_000, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        compare(t, ref, "sample_train_t", rtol=1e-15, where=where,
                hint="Use exactly one draw torch.rand(n, generator=generator, dtype=torch.float64), mapped onto [1/T, 1].")
    # the network's input scale: unit variance when x0 has unit variance and y = x0
    n, kappa = 50_000, float(rng.uniform(0.5, 3.0))
    eta = torch.from_numpy(rng.uniform(0.01, 1.0, 4))
    x0 = torch.from_numpy(rng.standard_normal((4, n)))
    x_t = x0 + kappa * eta.sqrt()[:, None] * torch.from_numpy(rng.standard_normal((4, n)))
    inp = need_tensor(call(network_input, x_t, eta, kappa, name="network_input"), x_t, "network_input")
    compare(inp, x_t.numpy() / np.sqrt(kappa**2 * eta.numpy() + 1)[:, None], "network_input", rtol=1e-12,
            where=f"(kappa = {kappa:.3g})", diagnoses=[
                (x_t.numpy() / (3 * kappa * np.sqrt(eta.numpy()) + 1)[:, None],
                 "that is the official code's pixel-space scaling; this exercise uses the latent-space one"),
                (x_t.numpy() / np.sqrt(kappa**2 * eta.numpy())[:, None], "the '+ 1' is x0's own unit variance"),
            ], hint="Divide by the standard deviation x_t has when x0 has unit variance and y = x0.")
    var = as_numpy(inp, "network_input").var(axis=1, ddof=1)
    z = np.abs(var - 1.0) / math.sqrt(2.0 / (n - 1))
    if z.max() > 5.0:
        raise ExerciseFailed(f"the scaled input's variance is {z.max():.1f} standard errors away from 1")
    # the weight that turns the x0 loss into a score loss: |x0_hat - x0|^2 = w |s_hat - s|^2
    sched = ResShiftSchedule(kappa=float(rng.uniform(0.5, 3.0)))
    for tv in rng.uniform(1.0 / 15, 1.0, 3 if hidden else 2):
        eta_v = float(sched.eta(float(tv)))
        x0, x0_hat, yv = (torch.from_numpy(rng.standard_normal(6)) for _ in range(3))
        x = x0 + eta_v * (yv - x0) + sched.kappa * math.sqrt(eta_v) * torch.from_numpy(rng.standard_normal(6))
        scores = []
        for m in (x0, x0_hat):
            xr = x.clone().requires_grad_(True)
            lp = torch.distributions.Normal(m + eta_v * (yv - m), sched.kappa * math.sqrt(eta_v)).log_prob(xr).sum()
            scores.append(torch.autograd.grad(lp, xr)[0])
        ref = float(((x0_hat - x0) ** 2).sum() / ((scores[1] - scores[0]) ** 2).sum())
        w = call(score_loss_weight, eta_v, sched.kappa, name="score_loss_weight")
        alpha_v = float(sched.alpha(float(tv)))
        k2 = sched.kappa**2
        compare(w, ref, "score_loss_weight", rtol=1e-9, where=f"at eta = {eta_v:.4g}, kappa = {sched.kappa:.3g}", diagnoses=[
            (k2 * eta_v / (1 - eta_v), "the norms are squared: so is the ratio of the two parametrisations"),
            ((k2 * eta_v) ** 2, "x0 enters the score multiplied by (1 - eta)"),
            ((k2 * alpha_v / (1 - eta_v)) ** 2, "the score's denominator is kappa^2 eta (erratum 1)"),
            (((1 - eta_v) / (k2 * eta_v)) ** 2, "upside down: this weight multiplies the score loss to give the x0 loss"),
        ], hint="Write s_hat - s with the score of E2 (x0 -> x0_hat) and compare with x0_hat - x0.")
    # the loss: value and gradient against the same draws, then a tiny network trained with it
    for schedule in (ResShiftSchedule(), ExpAlphaSchedule(a=0.8, lam=1.4, kappa=float(rng.uniform(1.0, 2.5)))):
        x0, y = _data(rng)
        net = TinyNet()
        with torch.no_grad():
            net.w.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, 4)))
        s = int(rng.integers(2**31))
        loss = call(finetune_loss, net, x0, y, schedule, torch.Generator().manual_seed(s), name="finetune_loss")
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise ExerciseFailed("finetune_loss must return a scalar tensor (0-d), the mean over the batch")
        if not loss.requires_grad:
            raise ExerciseFailed("finetune_loss's value carries no gradient: compute it from the network's output")
        (g,) = torch.autograd.grad(loss, net.w)
        ref = _ref_loss(net, x0, y, schedule, torch.Generator().manual_seed(s))
        (g_ref,) = torch.autograd.grad(ref, net.w)
        where = f"({type(schedule).__name__})"
        compare(float(loss), float(ref), "the loss", rtol=1e-10, where=where, hint=(
            "Draw t with sample_train_t first, then the noise with one torch.randn(x0.shape, generator=generator, "
            "dtype=x0.dtype); x_t from the forward marginal; the network sees network_input(x_t, eta, kappa), t and "
            "y; the loss is the plain mean of (x0_hat - x0)^2 (x0 prediction, weight 1)."))
        compare(g.numpy(), g_ref.numpy(), "the loss's gradient", rtol=1e-8, where=where)
    x0, y = _data(rng, B=64)
    net = TinyNet()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        before = float(_ref_loss(net, x0, y, ResShiftSchedule(), torch.Generator().manual_seed(1)))
    for _ in range(150):
        opt.zero_grad()
        call(finetune_loss, net, x0, y, ResShiftSchedule(), gen, name="finetune_loss").backward()
        opt.step()
    with torch.no_grad():
        after = float(_ref_loss(net, x0, y, ResShiftSchedule(), torch.Generator().manual_seed(1)))
    if not after < 0.5 * before:
        raise ExerciseFailed(f"150 Adam steps on your loss took a tiny network from {before:.4g} to {after:.4g}: "
                             "training on it does not learn to predict x0")


# --------------------------------------------------------------------------------------------- E12
def _images(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    h, w = int(rng.integers(20, 48)), int(rng.integers(20, 48))
    hr = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    sr = np.clip(hr.astype(np.int64) + rng.integers(-12, 13, (h, w, 3)), 0, 255).astype(np.uint8)
    return sr, hr, int(rng.integers(0, 5))


def _y_ref(img: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2ycbcr

    return np.round(rgb2ycbcr(img)[..., 0])  # BT.601 on [0, 255] with the +16 offset, rounded as for uint8


@exercise("E12", "PSNR on the Y channel, the official way", points=10, minutes=20, assignment=ASSIGNMENT,
          names=("psnr_y",))
def check_psnr_y(psnr_y, *, rng: np.random.Generator, hidden: bool = False) -> None:
    from ..metrics import psnr

    for _ in range(5 if hidden else 3):
        sr, hr, b = _images(rng)
        got = call(psnr_y, sr.copy(), hr.copy(), b, name="psnr_y")
        ys, yh = _y_ref(sr), _y_ref(hr)

        def db(a, c, border=b):
            a = a[border:a.shape[0] - border, border:a.shape[1] - border] if border else a
            c = c[border:c.shape[0] - border, border:c.shape[1] - border] if border else c
            return 20 * math.log10(255.0 / math.sqrt(np.mean((a.astype(np.float64) - c.astype(np.float64)) ** 2)))

        ref = db(ys, yh)
        lib = float(psnr(sr, hr, y_channel=True, border=b))
        if abs(ref - lib) > 1e-9:  # pragma: no cover - the two references disagree
            raise RuntimeError(f"reference PSNRs disagree: {ref} vs {lib}")
        y_float = (sr.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255 + 16,
                   hr.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255 + 16)
        y709 = tuple(np.round(i.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722]) * 219 / 255 + 16) for i in (sr, hr))
        wraps = np.mean(((sr - hr).astype(np.float64)) ** 2)
        diagnoses = [
            (db(sr, hr), "that is the PSNR of the RGB values; the official convention scores the Y channel"),
            (db(*y_float), "the official code rounds Y to integers for uint8 images (MATLAB's rgb2ycbcr)"),
            (db(*y709), "those are BT.709 weights; MATLAB's rgb2ycbcr uses ITU-R BT.601"),
            (db(ys, yh, 0), "crop `border` pixels from every edge before scoring"),
            (20 * math.log10(255.0 / math.sqrt(wraps)) if wraps > 0 else 0.0,
             "uint8 arithmetic wraps around: convert to float64 before subtracting"),
            (ref - 20 * math.log10(255.0), "the peak is 255 for images on [0, 255]"),
        ]
        compare(got, ref, "psnr_y", rtol=1e-9, where=f"on a {sr.shape[0]}x{sr.shape[1]} image, border {b}",
                diagnoses=diagnoses, hint="Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255 on [0, 255] values, rounded; "
                                          "crop the border; PSNR = 20 log10(255 / RMSE).")


# --------------------------------------------------------------------------------------------- E13
REPORT_TABLE1_SSIM_COLUMN = {"Baseline": 0.428, "Euler rho 1": 0.457, "Euler rho 8": 0.449, "Euler rho -8": 0.453,
                             "Heun rho -8": 0.459}


@exercise("E13", "reading the report's \"SSIM\" column", points=5, minutes=10, assignment=ASSIGNMENT,
          names=("ssim_from_report", "row_with_highest_ssim"))
def check_report_ssim(ssim_from_report, row_with_highest_ssim, *, rng: np.random.Generator, hidden: bool = False) -> None:
    import piq

    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    for _ in range(3 if hidden else 2):
        x = torch.rand(1, 3, 48, 48, generator=gen, dtype=torch.float64)
        y = (x + 0.15 * torch.randn(x.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
        column_value = float(piq.SSIMLoss(data_range=1.0)(x, y))
        true_ssim = float(piq.ssim(x, y, data_range=1.0))
        got = call(ssim_from_report, column_value, name="ssim_from_report")
        compare(got, true_ssim, "ssim_from_report", rtol=1e-9, diagnoses=[
            (column_value, "the column's numbers come from piq.SSIMLoss, which is not SSIM itself (erratum 3)")],
            hint="What does piq.SSIMLoss return, in terms of SSIM?")
    tables = [dict(REPORT_TABLE1_SSIM_COLUMN)]
    for _ in range(3 if hidden else 2):
        names = [f"row {i}" for i in range(int(rng.integers(3, 8)))]
        tables.append({nm: float(v) for nm, v in zip(names, rng.uniform(0.2, 0.6, len(names)))})
    for table in tables:
        got = call(row_with_highest_ssim, dict(table), name="row_with_highest_ssim")
        best = min(table, key=table.get)
        if got != best:
            if got == max(table, key=table.get):
                raise ExerciseFailed("row_with_highest_ssim picked the largest number in the column: the report's "
                                     "'SSIM' is piq's SSIMLoss = 1 - SSIM, so a larger number is a lower SSIM (erratum 3)")
            raise ExerciseFailed(f"row_with_highest_ssim returned {got!r}, not the row with the highest SSIM")
