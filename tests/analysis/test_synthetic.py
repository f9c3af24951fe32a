"""The synthetic 2-D study: its maths against hand and finite-difference numbers, the
fixed points it reports, and the CLI's outputs on a coarse grid."""
import math

import matplotlib.image
import pytest
import torch

from analysis import synthetic

GRID = 9  # Newton starts per axis: coarse, for speed


@pytest.fixture(scope="module")
def tasks():
    return synthetic.make_tasks(0)


@pytest.fixture(scope="module")
def found(tasks):
    return {K: synthetic.fixed_points(K, tasks=tasks, grid=GRID) for K in (5, 100)}


def test_himmelblau_by_hand():
    """One task with no rotation or shift is Himmelblau's function: zero at (3, 2), 170 at 0."""
    one = synthetic.Tasks(a=torch.tensor([11.0], dtype=torch.float64), b=torch.tensor([7.0], dtype=torch.float64),
                          rot=torch.eye(2, dtype=torch.float64)[None], centre=torch.zeros(1, 2, dtype=torch.float64))
    points = torch.tensor([[3.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    assert synthetic.task_losses(points, one)[:, 0].tolist() == [0.0, 170.0]
    # at the origin: grad = (4x u + 2v, 2u + 4y v) with u = -11, v = -7
    assert synthetic.task_grads(points[1:, None, :], one)[0, 0].tolist() == [-14.0, -22.0]


def test_tasks_are_seeded_and_centred_on_the_circle(tasks):
    assert torch.equal(synthetic.make_tasks(0).a, tasks.a)
    assert not torch.equal(synthetic.make_tasks(1).a, tasks.a)
    torch.testing.assert_close(tasks.centre.norm(dim=1), torch.full((8,), synthetic.RADIUS, dtype=torch.float64))
    torch.testing.assert_close(tasks.rot @ tasks.rot.transpose(1, 2), torch.eye(2, dtype=torch.float64).expand(8, 2, 2))


def central(f, phi, h=1e-6):
    """d f / d phi by central differences, the derivative direction last."""
    return torch.stack([(f(phi + h * e) - f(phi - h * e)) / (2 * h) for e in torch.eye(2, dtype=phi.dtype)], -1)


def test_gradient_hessian_and_jacobian_match_finite_differences(tasks):
    torch.manual_seed(0)
    phi = torch.randn(5, 2, dtype=torch.float64)
    per_task = phi[:, None, :].expand(5, 8, 2)
    g, H = synthetic.task_grads(per_task, tasks, hessian=True)
    torch.testing.assert_close(g, central(lambda p: synthetic.task_losses(p, tasks), phi), atol=1e-4, rtol=1e-6)
    fd_H = central(lambda p: synthetic.task_grads(p[:, None, :].expand(5, 8, 2), tasks), phi)
    torch.testing.assert_close(H, fd_H, atol=1e-4, rtol=1e-6)
    F, J = synthetic.meta_update_jacobian(phi, tasks, K=20)
    torch.testing.assert_close(F, synthetic.meta_update(phi, tasks, K=20))
    torch.testing.assert_close(J, central(lambda p: synthetic.meta_update(p, tasks, 20), phi), atol=1e-5, rtol=1e-5)


def test_more_fixed_points_at_large_K(found):
    assert len(found[100]) > len(found[5])
    assert found[100].attractor.sum() > found[5].attractor.sum()


def test_a_reported_fixed_point_is_one(found, tasks):
    for fp in found.values():
        residual = synthetic.meta_update(fp.points, tasks, fp.K).norm(dim=1)
        assert (residual < synthetic.TOL).all()
        assert (fp.points.abs() <= synthetic.LIM).all()
        assert torch.cdist(fp.points, fp.points).add(torch.eye(len(fp)) * 1e9).min() > 1e-4, "deduplicated"
    # an attractor attracts: a Reptile trajectory started next to it stays there
    a = found[100].points[found[100].attractor][:1]
    end = synthetic.reptile_trajectory(a + 0.01, tasks, K=100, meta_lr=0.5, meta_steps=30)[:, -1]
    torch.testing.assert_close(end, a, atol=1e-6, rtol=0)


def test_cts_with_meta_lr_zero_stays_put_and_reptile_moves(tasks):
    start = synthetic.starts(2)
    cts = synthetic.cts_trajectory(start, tasks, K=5, meta_lr=0.0, steps=10)
    assert torch.equal(cts[:, -1], start)
    reptile = synthetic.reptile_trajectory(start, tasks, K=5, meta_lr=0.1, meta_steps=2)
    assert not torch.allclose(reptile[:, -1], start)


def test_cli_writes_figures_and_table(tmp_path, capsys, monkeypatch):
    for name, value in [("FIELD_GRID", 20), ("STREAM_DENSITY", 0.3), ("CONTOUR_GRID", 30)]:
        monkeypatch.setattr(synthetic, name, value)  # coarse figures: drawing them is most of the time
    assert synthetic.main(["--out", str(tmp_path), "--grid", "5", "--ks", "5", "--meta-steps", "3"]) == 0
    table = (tmp_path / "fixed_points.md").read_text()
    assert "| 5 |" in table and "| 100 |" in table and "| mean |" in table
    assert table in capsys.readouterr().out
    for name in ("meta_update_field", "meta_trajectories"):
        image = matplotlib.image.imread(tmp_path / f"{name}.png")
        assert image.shape[1] > 2 * image.shape[0] * 0.9 and image[..., :3].std() > 0.05
        assert (tmp_path / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    assert not math.isnan(float(table.split("| mean | ")[1].split(" |")[0]))
