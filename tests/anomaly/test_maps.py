from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ndimage = pytest.importorskip("scipy.ndimage")

from sitesight.models.anomaly.maps import gaussian_blur, l2_error_map, ssim_map, to_batch, top_percent_mean  # noqa: E402
from sitesight.models.anomaly.memory import greedy_coreset, nearest_distances  # noqa: E402


@pytest.mark.parametrize("sigma", [0.7, 1.5, 4.0])
def test_gaussian_blur_matches_scipy(sigma):
    x = np.random.default_rng(0).random((2, 3, 21, 17)).astype(np.float32)
    ours = gaussian_blur(torch.from_numpy(x), sigma).numpy()
    ref = np.stack([[ndimage.gaussian_filter(c.astype(np.float64), sigma, mode="reflect", truncate=4.0) for c in img] for img in x])
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def _ssim_reference(x: np.ndarray, y: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Wang et al. (2004) eq. 13 with scipy Gaussian statistics, float64."""
    f = lambda a: ndimage.gaussian_filter(a, sigma, mode="reflect", truncate=4.0)  # noqa: E731
    c1, c2 = 0.01**2, 0.03**2
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def test_ssim_map_hand_cases_and_reference():
    a = torch.full((1, 1, 16, 16), 0.4, dtype=torch.float64)
    b = torch.full((1, 1, 16, 16), 0.6, dtype=torch.float64)
    # Constant images: only the luminance term remains, (2ab + C1) / (a^2 + b^2 + C1).
    expected = (2 * 0.4 * 0.6 + 1e-4) / (0.4**2 + 0.6**2 + 1e-4)
    np.testing.assert_allclose(ssim_map(a, b).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(ssim_map(a, a).numpy(), 1.0, rtol=1e-6)
    rng = np.random.default_rng(1)
    x = rng.random((24, 20))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    ours = ssim_map(torch.tensor(x[None, None], dtype=torch.float64), torch.tensor(y[None, None], dtype=torch.float64))[0, 0].numpy()
    np.testing.assert_allclose(ours, _ssim_reference(x, y), atol=1e-6)


def test_l2_and_top_percent_hand_computed():
    x = torch.zeros(1, 3, 2, 2)
    y = torch.zeros(1, 3, 2, 2)
    y[0, :, 0, 0] = torch.tensor([0.3, 0.6, 0.9])
    err = l2_error_map(x, y)
    np.testing.assert_allclose(err[0].numpy(), [[(0.09 + 0.36 + 0.81) / 3, 0], [0, 0]], rtol=1e-6)
    maps = torch.arange(100, dtype=torch.float32).reshape(1, 10, 10)
    assert float(top_percent_mean(maps, 5.0)[0]) == pytest.approx(np.mean([95, 96, 97, 98, 99]))
    assert float(top_percent_mean(maps, 0.01)[0]) == 99.0  # at least one pixel


def test_nearest_distances_match_sklearn():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(2)
    memory = rng.standard_normal((300, 24)).astype(np.float32)
    queries = rng.standard_normal((1000, 24)).astype(np.float32)
    ref = NearestNeighbors(n_neighbors=1).fit(memory).kneighbors(queries)[0][:, 0]
    ours = nearest_distances(torch.from_numpy(queries), torch.from_numpy(memory), chunk=128).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_greedy_coreset_is_farthest_point_sampling():
    rng = np.random.default_rng(3)
    pts = rng.standard_normal((400, 5)).astype(np.float32)
    idx = greedy_coreset(torch.from_numpy(pts), 25, projection_dim=0, seed=4).numpy()
    # Brute-force k-center from the same first point, in float64.
    chosen = [int(idx[0])]
    d = np.linalg.norm(pts - pts[chosen[0]], axis=1).astype(np.float64)
    for _ in range(24):
        nxt = int(np.argmax(d))
        chosen.append(nxt)
        d = np.minimum(d, np.linalg.norm(pts - pts[nxt], axis=1))
    assert idx.tolist() == chosen
    # Covering radius beats random subsets of the same size.
    cover = np.linalg.norm(pts[:, None] - pts[idx][None], axis=2).min(1).max()
    rand = [np.linalg.norm(pts[:, None] - pts[rng.choice(400, 25, replace=False)][None], axis=2).min(1).max() for _ in range(20)]
    assert cover < min(rand)


def test_to_batch_rejects_bad_images():
    from sitesight.errors import InputError

    with pytest.raises(InputError, match="image 1"):
        to_batch([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 4), np.uint8)], 8, torch.device("cpu"))
    assert to_batch([np.zeros((8, 6), np.uint8)], 16, torch.device("cpu")).shape == (1, 3, 16, 16)
