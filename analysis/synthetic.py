"""The synthetic 2-D study: why a long inner trajectory (large K) makes meta-learning hard.

``python -m analysis.synthetic [--out DIR] [--seed S] [--grid N]`` (CPU, seconds).

Eight task losses on phi in R^2, each a Himmelblau-type function

    f_i(p) = (x^2 + y - a_i)^2 + (x + y^2 - b_i)^2,   (x, y) = R_i (p - c_i),

with a_i ~ 11 + N(0, 1), b_i ~ 7 + N(0, 1), a random rotation R_i, and the centre c_i on a
circle of radius 2. Task i's inner trajectory is K steps of plain gradient descent (step
``INNER_LR``) from phi, theta_i^K(phi), and the Reptile meta-update field is

    F_K(phi) = mean_i theta_i^K(phi) - phi.

For small K, F_K ~ -K alpha grad(mean_i f_i): its zeros are the few stationary points of
the mean loss. For large K each theta_i^K lands in one of its task's four minima, F_K is
piecewise "average of the chosen minima minus phi", and nearly every consistent choice
of minima is a fixed point: many local meta-optima.

Outputs (PNG + PDF, and a Markdown table, also printed):
- ``meta_update_field``: streamlines of F_K for K = 5 and K = 100 (coloured by speed,
  relative to the panel's fastest) over the mean task loss (grey, log scale), with the
  fixed points (filled: attractors of phi <- phi + beta F_K, all eigenvalues of dF_K/dphi
  with negative real part; open: saddles and repellers).
- ``meta_trajectories``: Reptile (phi <- phi + beta F_K every K steps) and CTS (every
  inner step, Delta = beta (mean_i theta_i - phi) moves phi and every theta_i; reset every
  K steps, as ``methods/ours.py``), K = 100, from the same starts and for the same number
  of inner steps, over the mean task loss and the K = 100 fixed points.
- ``fixed_points.md``: fixed points and attractors per K, and the mean task loss where
  each trajectory ends.

Fixed points are found by damped Newton on F_K from every point of a grid, with the
Jacobian dF_K/dphi propagated exactly through the unrolled descent
(J <- (I - alpha H(theta)) J), kept when ||F_K|| < ``TOL`` and deduplicated. Newton
finds the attractors (every Reptile and CTS trajectory below ends next to one) but
misses most saddles at large K: they sit in the thin layers between basins, where F_K
turns over a tiny distance. The table bounds how many zeros were missed by the
Poincare-Hopf theorem (the indices of all zeros sum to the winding number of F_K along
the boundary). Everything runs in float64 from one seeded generator, so the numbers are
deterministic.

The CTS authors' ``synthetic/`` scripts build their tasks differently: a and b fixed at
11 and 7 with random weights on the two squares, coordinates divided by 3, centres on a
circle of radius 7, SGD with momentum (lr 0.05) inside, and meta-optima found by iterating
the Reptile map from a 41 x 41 grid until it stops (attractors only). This module follows
the same construction in spirit (rotated, shifted Himmelblau tasks; the Reptile field at
K = 5 and 100) at a scale where plain gradient descent stays stable everywhere.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from analysis.plots import DPI, RC  # noqa: E402

DTYPE = torch.float64
N_TASKS = 8
RADIUS = 2.0  # the task centres' circle
COEF_SD = 1.0  # spread of a_i and b_i around 11 and 7
LIM = 6.0  # phi ranges over [-LIM, LIM]^2
INNER_LR = 5e-3  # alpha: plain gradient descent stays bounded from every phi of the square at this step
META_LR = 0.1  # beta, for both Reptile and CTS
TOL = 1e-8  # ||F_K|| below which a Newton end point is a fixed point
FIGURE_KS = (5, 100)
TABLE_KS = (1, 5, 10, 20, 50, 100)
TRAJECTORY_K = 100
META_STEPS = 100  # Reptile's meta-updates; CTS gets the same META_STEPS * K inner steps
STARTS = 8  # trajectory starts, evenly spaced on a circle of radius 0.8 * LIM
FIELD_GRID, STREAM_DENSITY, CONTOUR_GRID = 60, 1.1, 120  # the figures' resolution


@dataclass(frozen=True)
class Tasks:
    a: torch.Tensor  # [T]
    b: torch.Tensor  # [T]
    rot: torch.Tensor  # [T, 2, 2]
    centre: torch.Tensor  # [T, 2]


def make_tasks(seed: int = 0, n_tasks: int = N_TASKS, radius: float = RADIUS) -> Tasks:
    g = torch.Generator().manual_seed(seed)
    a = 11 + COEF_SD * torch.randn(n_tasks, generator=g, dtype=DTYPE)
    b = 7 + COEF_SD * torch.randn(n_tasks, generator=g, dtype=DTYPE)
    turn = 2 * math.pi * torch.rand(n_tasks, generator=g, dtype=DTYPE)
    # evenly spread around the circle, each jittered within its own sector
    around = 2 * math.pi * (torch.arange(n_tasks, dtype=DTYPE) + 0.5 * torch.rand(n_tasks, generator=g, dtype=DTYPE))
    around = around / n_tasks
    cos, sin = turn.cos(), turn.sin()
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    return Tasks(a, b, rot, radius * torch.stack([around.cos(), around.sin()], 1))


def _parts(theta: torch.Tensor, tasks: Tasks, hessian: bool):
    """grad f_i(theta_i) and, optionally, the Hessian's entries (h00, h01, h11), in phi's
    coordinates, for theta [..., T, 2]. Written out for 2 x 2: batched tiny matmuls are slower."""
    cos, sin = tasks.rot[:, 0, 0], tasks.rot[:, 1, 0]
    dx, dy = (theta - tasks.centre).unbind(-1)
    x, y = cos * dx - sin * dy, sin * dx + cos * dy  # the task's own coordinates R_i (theta - c_i)
    u, v = x * x + y - tasks.a, x + y * y - tasks.b
    gx, gy = 4 * x * u + 2 * v, 2 * u + 4 * y * v
    grad = (cos * gx + sin * gy, cos * gy - sin * gx)  # R^T g
    if not hessian:
        return grad, None
    a, b, d = 4 * u + 8 * x * x + 2, 4 * (x + y), 4 * v + 8 * y * y + 2
    cc, ss, cs = cos * cos, sin * sin, cos * sin
    return grad, (a * cc + 2 * b * cs + d * ss, (d - a) * cs + b * (cc - ss), a * ss - 2 * b * cs + d * cc)  # R^T H R


def task_losses(phi: torch.Tensor, tasks: Tasks) -> torch.Tensor:
    """f_i(phi) for every task: [..., 2] -> [..., T]."""
    dx, dy = (phi[..., None, :] - tasks.centre).unbind(-1)
    cos, sin = tasks.rot[:, 0, 0], tasks.rot[:, 1, 0]
    x, y = cos * dx - sin * dy, sin * dx + cos * dy
    return (x * x + y - tasks.a) ** 2 + (x + y * y - tasks.b) ** 2


def task_grads(theta: torch.Tensor, tasks: Tasks, hessian: bool = False):
    """grad f_i(theta_i) [..., T, 2] for theta [..., T, 2] (and the Hessians [..., T, 2, 2])."""
    grad, h = _parts(theta, tasks, hessian)
    if not hessian:
        return torch.stack(grad, -1)
    h00, h01, h11 = h
    return torch.stack(grad, -1), torch.stack([torch.stack([h00, h01], -1), torch.stack([h01, h11], -1)], -2)


def inner_descent(phi: torch.Tensor, tasks: Tasks, K: int, lr: float = INNER_LR, jacobian: bool = False):
    """theta_i^K: K gradient steps of every task from phi [..., 2] -> [..., T, 2] (and d theta_i^K / d phi)."""
    theta = phi[..., None, :].expand(*phi.shape[:-1], len(tasks.a), 2).clone()
    if not jacobian:
        for _ in range(K):
            theta -= lr * task_grads(theta, tasks)
        return theta
    one, zero = torch.ones_like(theta[..., 0]), torch.zeros_like(theta[..., 0])
    j00, j01, j10, j11 = one, zero, zero, one
    for _ in range(K):
        (gx, gy), (h00, h01, h11) = _parts(theta, tasks, hessian=True)
        # chain rule through theta <- theta - lr grad f(theta): J <- (I - lr H) J
        j00, j01, j10, j11 = (j00 - lr * (h00 * j00 + h01 * j10), j01 - lr * (h00 * j01 + h01 * j11),
                              j10 - lr * (h01 * j00 + h11 * j10), j11 - lr * (h01 * j01 + h11 * j11))
        theta = theta - lr * torch.stack([gx, gy], -1)
    return theta, torch.stack([torch.stack([j00, j01], -1), torch.stack([j10, j11], -1)], -2)


def meta_update(phi: torch.Tensor, tasks: Tasks, K: int, lr: float = INNER_LR) -> torch.Tensor:
    """Reptile's meta-update direction F_K(phi) = mean_i theta_i^K(phi) - phi, for phi [..., 2]."""
    return inner_descent(phi, tasks, K, lr).mean(-2) - phi


def meta_update_jacobian(phi: torch.Tensor, tasks: Tasks, K: int, lr: float = INNER_LR):
    """F_K(phi) and dF_K/dphi = mean_i d theta_i^K/d phi - I."""
    theta, J = inner_descent(phi, tasks, K, lr, jacobian=True)
    return theta.mean(-2) - phi, J.mean(-3) - torch.eye(2, dtype=phi.dtype)


@dataclass(frozen=True)
class FixedPoints:
    K: int
    points: torch.Tensor  # [N, 2]
    attractor: torch.Tensor  # [N] bool: stable under phi <- phi + beta F_K for small beta
    index: torch.Tensor  # [N] +1 (node or focus) or -1 (saddle): the sign of det dF_K/dphi
    residual: torch.Tensor  # [N] ||F_K(point)||

    def __len__(self) -> int:
        return len(self.points)


def grid_points(grid: int, lim: float = LIM) -> torch.Tensor:
    xs = torch.linspace(-lim, lim, grid, dtype=DTYPE)
    return torch.stack(torch.meshgrid(xs, xs, indexing="xy"), -1).reshape(-1, 2)


def fixed_points(K: int, seed: int = 0, grid: int = 41, tasks: Tasks | None = None, lim: float = LIM,
                 tol: float = TOL, iters: int = 40, max_step: float = 0.5, lr: float = INNER_LR) -> FixedPoints:
    """Zeros of F_K in [-lim, lim]^2 by damped Newton from every point of a grid x grid lattice."""
    tasks = tasks or make_tasks(seed)
    phi = grid_points(grid, lim)
    live = torch.arange(len(phi))  # starts still moving: converged ones drop out, which saves most of the work
    for _ in range(iters):
        F, J = meta_update_jacobian(phi[live], tasks, K, lr)
        step = (torch.linalg.pinv(J) @ F[:, :, None])[:, :, 0]  # pinv: a singular J gives a finite step
        step *= max_step / step.norm(dim=1, keepdim=True).clamp_min(max_step)  # at most max_step long
        phi[live] = (phi[live] - step).clamp(-lim, lim)
        live = live[F.norm(dim=1) > 1e-2 * tol]
        if not len(live):
            break
    residual = meta_update(phi, tasks, K, lr).norm(dim=1)
    found = phi[residual < tol]
    kept: list[torch.Tensor] = []
    for p in found[residual[residual < tol].argsort()]:  # the most precise copy of each point first
        if all((p - q).norm() > 1e-4 * lim for q in kept):
            kept.append(p)
    points = torch.stack(kept) if kept else torch.zeros(0, 2, dtype=DTYPE)
    F, J = meta_update_jacobian(points, tasks, K, lr)
    attractor = (torch.linalg.eigvals(J).real < 0).all(1)
    index = torch.linalg.det(J).sign().long()
    order = torch.argsort(points[:, 0] * 4 * lim + points[:, 1])  # a stable order for tables and tests
    return FixedPoints(K, points[order], attractor[order], index[order], F.norm(dim=1)[order])


def boundary_winding(K: int, tasks: Tasks, lim: float = LIM, n: int = 4000, lr: float = INNER_LR) -> int:
    """The winding number of F_K around the square's boundary: by the Poincare-Hopf index theorem,
    the sum of the indices of all its zeros inside. Newton can miss zeros (saddles sit in thin
    layers between basins at large K); this total says how many it must have missed at least."""
    side = torch.linspace(-lim, lim, n // 4 + 1, dtype=DTYPE)[:-1]
    edge = torch.full_like(side, lim)
    loop = torch.cat([torch.stack(xy, 1) for xy in
                      [(side, -edge), (edge, side), (-side, edge), (-edge, -side)]])  # counter-clockwise
    F = meta_update(loop, tasks, K, lr)
    turn = torch.diff(torch.atan2(F[:, 1], F[:, 0]), append=torch.atan2(F[:1, 1], F[:1, 0]))
    turn = (turn + math.pi) % (2 * math.pi) - math.pi
    return round(float(turn.sum()) / (2 * math.pi))


def starts(n: int = STARTS, lim: float = LIM) -> torch.Tensor:
    angle = 2 * math.pi * (torch.arange(n, dtype=DTYPE) + 0.5) / n
    return 0.8 * lim * torch.stack([angle.cos(), angle.sin()], 1)


def reptile_trajectory(start: torch.Tensor, tasks: Tasks, K: int = TRAJECTORY_K, meta_lr: float = META_LR,
                       meta_steps: int = META_STEPS, lr: float = INNER_LR) -> torch.Tensor:
    """phi <- phi + beta F_K(phi), from every start [S, 2]: [S, meta_steps + 1, 2]."""
    path = [start]
    for _ in range(meta_steps):
        path.append(path[-1] + meta_lr * meta_update(path[-1], tasks, K, lr))
    return torch.stack(path, 1)


def cts_trajectory(start: torch.Tensor, tasks: Tasks, K: int = TRAJECTORY_K, meta_lr: float = META_LR,
                   steps: int = META_STEPS * TRAJECTORY_K, lr: float = INNER_LR) -> torch.Tensor:
    """CTS from every start [S, 2], phi after every inner step: [S, steps + 1, 2]."""
    phi = start.clone()
    theta = phi[:, None, :].expand(-1, len(tasks.a), 2).clone()
    path = [phi.clone()]
    for step in range(1, steps + 1):
        theta -= lr * task_grads(theta, tasks)
        delta = meta_lr * (theta.mean(1) - phi)
        phi += delta
        theta += delta[:, None, :]  # the shift
        if step % K == 0:
            theta = phi[:, None, :].expand(-1, len(tasks.a), 2).clone()  # the reset
        path.append(phi.clone())
    return torch.stack(path, 1)


def _loss_background(ax, tasks: Tasks, lim: float):
    xs = torch.linspace(-lim, lim, CONTOUR_GRID, dtype=DTYPE)
    X, Y = torch.meshgrid(xs, xs, indexing="xy")
    mean = task_losses(torch.stack([X, Y], -1), tasks).mean(-1)
    # rasterized: the filled contours are a background, and as vectors they make the PDF slow and large
    return ax.contourf(X, Y, mean.log10(), levels=20, cmap="Greys", alpha=0.55, rasterized=True)


def _mark(ax, fp: FixedPoints, size: float = 14) -> None:
    p, a = fp.points, fp.attractor
    ax.scatter(p[a, 0], p[a, 1], s=size, c="tab:red", edgecolors="k", linewidths=0.4, zorder=5,
               label="attractor")
    ax.scatter(p[~a, 0], p[~a, 1], s=size, facecolors="white", edgecolors="tab:red", linewidths=0.8, zorder=5,
               label="saddle / repeller")


def _frame(ax, lim: float) -> None:
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([-lim, 0, lim])
    ax.set_yticks([-lim, 0, lim])


def _save(fig, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=DPI, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"CreationDate": None, "Creator": None, "Producer": None})
    plt.close(fig)
    return paths


def plot_field(tasks: Tasks, found: dict[int, FixedPoints], out: Path, lim: float = LIM,
               name: str = "meta_update_field") -> list[Path]:
    xs = torch.linspace(-lim, lim, FIELD_GRID, dtype=DTYPE)
    X, Y = torch.meshgrid(xs, xs, indexing="xy")
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, len(found), figsize=(3.3 * len(found), 3.3), layout="constrained")
        for ax, (K, fp) in zip(axes, found.items()):
            _loss_background(ax, tasks, lim)
            F = meta_update(torch.stack([X, Y], -1), tasks, K)
            speed = F.norm(dim=-1)
            ax.streamplot(X.numpy(), Y.numpy(), F[..., 0].numpy(), F[..., 1].numpy(), density=STREAM_DENSITY,
                          linewidth=0.5, arrowsize=0.6, color=(speed / speed.max()).sqrt().numpy(), cmap="viridis")
            _mark(ax, fp)
            ax.set_title(f"K = {K}: {len(fp)} fixed points, {int(fp.attractor.sum())} attractors")
            _frame(ax, lim)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
        return _save(fig, out, name)


def plot_trajectories(tasks: Tasks, fp: FixedPoints, paths: dict[str, torch.Tensor], out: Path,
                      lim: float = LIM, name: str = "meta_trajectories") -> list[Path]:
    colors = plt.get_cmap("tab10").colors
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, len(paths), figsize=(3.3 * len(paths), 3.3), layout="constrained")
        for ax, (label, path) in zip(axes, paths.items()):
            _loss_background(ax, tasks, lim)
            ax.scatter(fp.points[:, 0], fp.points[:, 1], s=5, c="0.35", zorder=3, label=f"fixed points, K = {fp.K}")
            for s, line in enumerate(path):
                ax.plot(line[:, 0], line[:, 1], color=colors[s % 10], lw=1.0, zorder=4)
                ax.plot(*line[0], "o", ms=3, color=colors[s % 10], zorder=4)
                ax.plot(*line[-1], "*", ms=7, color=colors[s % 10], mec="k", mew=0.4, zorder=6)
            final = task_losses(path[:, -1], tasks).mean(-1)
            ax.set_title(f"{label}, K = {fp.K}, {path.shape[1] - 1} meta-updates\n"
                         f"final mean task loss: {final.mean():.1f} on average, best {final.min():.1f}")
            _frame(ax, lim)
        handles, labels = axes[0].get_legend_handles_labels()
        handles += [Line2D([], [], ls="", marker="o", ms=3, color="k"),
                    Line2D([], [], ls="", marker="*", ms=7, color="w", mec="k", mew=0.4)]
        labels += ["start", f"end, after {path.shape[1] - 1} inner steps" if label == "CTS" else "end"]
        fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
        return _save(fig, out, name)


def table(found: dict[int, FixedPoints], ends: dict[str, torch.Tensor], tasks: Tasks, seed: int) -> str:
    lines = [f"Fixed points of the Reptile meta-update F_K in [-{LIM:g}, {LIM:g}]^2 (seed {seed}, "
             f"alpha {INNER_LR:g}, ||F_K|| < {TOL:g}). Zeros missed: at least |sum of the found points' "
             "indices - the winding number of F_K on the boundary| (Poincare-Hopf).", "",
             "| K | fixed points found | attractors | saddles found | zeros missed (at least) |",
             "|---|---|---|---|---|"]
    for K, fp in found.items():
        missed = abs(int(fp.index.sum()) - boundary_winding(K, tasks))
        lines.append(f"| {K} | {len(fp)} | {int(fp.attractor.sum())} | {int((fp.index < 0).sum())} | {missed} |")
    names = list(ends)
    inner_steps = (next(iter(ends.values())).shape[1] - 1) * TRAJECTORY_K  # Reptile's meta-updates times K
    lines += ["", f"Meta-trajectories (K = {TRAJECTORY_K}, beta {META_LR:g}, {inner_steps} inner steps each): "
              "mean task loss at the end", "",
              "| start | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    start = next(iter(ends.values()))[:, 0]
    finals = {n: task_losses(e[:, -1], tasks).mean(-1) for n, e in ends.items()}
    for s in range(len(start)):
        cells = " | ".join(f"{finals[n][s]:.2f}" for n in names)
        lines.append(f"| ({start[s, 0]:.1f}, {start[s, 1]:.1f}) | {cells} |")
    lines.append("| mean | " + " | ".join(f"{finals[n].mean():.2f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/reference/synthetic"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", type=int, default=41, help="Newton starts per axis")
    parser.add_argument("--ks", type=int, nargs="+", default=list(TABLE_KS), help="the table's K values")
    parser.add_argument("--meta-steps", type=int, default=META_STEPS,
                        help="Reptile's meta-updates (CTS gets as many inner steps as Reptile)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small tensors: threads only add overhead on a shared machine
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = make_tasks(args.seed)
    found = {K: fixed_points(K, tasks=tasks, grid=args.grid) for K in sorted({*args.ks, *FIGURE_KS, TRAJECTORY_K})}
    x0 = starts()
    ends = {"Reptile": reptile_trajectory(x0, tasks, meta_steps=args.meta_steps),
            "CTS": cts_trajectory(x0, tasks, steps=args.meta_steps * TRAJECTORY_K)}
    written = plot_field(tasks, {K: found[K] for K in FIGURE_KS}, args.out)
    written += plot_trajectories(tasks, found[TRAJECTORY_K], ends, args.out)
    text = table(found, ends, tasks, args.seed)
    (args.out / "fixed_points.md").write_text(text)
    print(text)
    for path in [*written, args.out / "fixed_points.md"]:
        print(f"wrote {path}")
    print(f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
