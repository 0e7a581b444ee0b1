"""Masked PSNR/SSIM, the dynamic mask and the Fréchet distance against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from timelapse_d.metrics.frechet import RunningGaussian, frechet_distance, gaussian_stats
from timelapse_d.metrics.pixels import (
    PSNR_CAP,
    dynamic_mask,
    masked_psnr,
    masked_ssim,
    score_video,
    ssim_map,
)


def _image(seed: int, shape: tuple[int, int] = (24, 28)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


# --- PSNR -----------------------------------------------------------------------------------


def test_psnr_of_a_constant_offset_is_the_hand_computed_value() -> None:
    reference = np.full((16, 16, 3), 100, dtype=np.uint8)
    assert masked_psnr(reference, reference + 5) == pytest.approx(10 * math.log10(255**2 / 25))


def test_psnr_ignores_changes_confined_to_dynamic_pixels() -> None:
    reference = _image(0)
    generated = reference.astype(np.float64) + 5.0
    static = np.ones(reference.shape[:2], dtype=bool)
    static[4:10, 6:14] = False
    generated[4:10, 6:14] = 255.0 - reference[4:10, 6:14]  # large errors, but only where dynamic
    assert masked_psnr(reference, generated, static) == pytest.approx(10 * math.log10(255**2 / 25))
    assert masked_psnr(reference, generated) < 20.0


def test_psnr_of_identical_images_is_infinite() -> None:
    image = _image(1)
    assert masked_psnr(image, image.copy()) == math.inf


def test_all_dynamic_mask_is_rejected() -> None:
    image = _image(2)
    nothing_static = np.zeros(image.shape[:2], dtype=bool)
    with pytest.raises(ValueError, match="no pixel"):
        masked_psnr(image, image, nothing_static)
    with pytest.raises(ValueError, match="no pixel"):
        masked_ssim(image, image, nothing_static)


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        masked_psnr(_image(0), _image(0, (24, 27)))
    with pytest.raises(ValueError, match="mask"):
        masked_psnr(_image(0), _image(1), np.ones((24, 27), dtype=bool))


# --- SSIM -----------------------------------------------------------------------------------


def _slow_ssim(reference: np.ndarray, generated: np.ndarray) -> float:
    """SSIM straight from its definition: explicit windows, centred moments, per channel."""
    x, y = reference.astype(np.float64), generated.astype(np.float64)
    offsets = np.arange(-5, 6)
    g = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    w = g / g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for c in range(x.shape[2]):
        for i in range(x.shape[0] - 10):
            for j in range(x.shape[1] - 10):
                wx, wy = x[i : i + 11, j : j + 11, c], y[i : i + 11, j : j + 11, c]
                mx, my = (w * wx).sum(), (w * wy).sum()
                vx, vy = (w * (wx - mx) ** 2).sum(), (w * (wy - my) ** 2).sum()
                cxy = (w * (wx - mx) * (wy - my)).sum()
                values.append(
                    (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
                )
    return float(np.mean(values))


def _noisy_pair() -> tuple[np.ndarray, np.ndarray]:
    reference = _image(3)
    noise = np.random.default_rng(4).normal(0, 25, reference.shape)
    return reference, np.clip(reference + noise, 0, 255).astype(np.uint8)


def test_ssim_of_identical_images_is_one() -> None:
    image = _image(5)
    assert masked_ssim(image, image) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_constant_images_is_the_luminance_term() -> None:
    a, b = 80.0, 120.0
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a**2 + b**2 + c1)
    reference, generated = np.full((15, 15, 3), a), np.full((15, 15, 3), b)
    assert masked_ssim(reference, generated) == pytest.approx(expected, rel=1e-12)


def test_ssim_matches_a_direct_implementation() -> None:
    reference, generated = _noisy_pair()
    value = masked_ssim(reference, generated)
    assert 0.2 < value < 0.95
    assert value == pytest.approx(_slow_ssim(reference, generated), rel=1e-9)


def test_ssim_matches_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    reference, generated = _noisy_pair()
    expected = metrics.structural_similarity(
        reference,
        generated,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
    )
    assert masked_ssim(reference, generated) == pytest.approx(expected, rel=1e-9)


def test_masked_ssim_averages_the_map_over_static_pixels() -> None:
    reference, generated = _noisy_pair()
    generated[:, :14] = reference[:, :14]  # left half identical, right half noisy
    static = np.zeros(reference.shape[:2], dtype=bool)
    static[:, :9] = True  # windows centred here never reach the noisy half
    assert masked_ssim(reference, generated, static) == pytest.approx(1.0, abs=1e-12)
    assert masked_ssim(reference, generated) < 0.99
    values = ssim_map(reference, generated)
    assert values.shape == (14, 18)
    static[:, 20:] = True
    expected = np.concatenate([values[:, :4], values[:, 15:]], axis=1).mean()
    assert masked_ssim(reference, generated, static) == pytest.approx(expected, rel=1e-12)


# --- dynamic mask and per-video score --------------------------------------------------------


def _clip_with_regions() -> np.ndarray:
    """5 frames of 12 x 12: still except three 4 x 4 blocks whose mean change is known.

    Over the 4 consecutive pairs the red channel of block A moves 9 levels in all (mean 2.25,
    below t = 2.5) and block B 11 (mean 2.75, above); block C moves its green and blue
    channels 10 levels in all (mean 2.5, not above). Blocks B and C also go down, so unsigned
    wrap-around would show.
    """
    clip = np.full((5, 12, 12, 3), 128, dtype=np.uint8)
    clip[:, 0:4, 0:4, 0] += np.array([0, 3, 6, 9, 9], dtype=np.uint8)[:, None, None]
    clip[:, 4:8, 4:8, 0] = np.array([128, 131, 128, 132, 131], dtype=np.uint8)[:, None, None]
    clip[:, 8:12, 8:12, 1] += np.array([0, 3, 3, 3, 0], dtype=np.uint8)[:, None, None]
    clip[:, 8:12, 8:12, 2] += np.array([0, 2, 2, 2, 0], dtype=np.uint8)[:, None, None]
    return clip


def test_dynamic_mask_of_a_hand_built_clip() -> None:
    clip = _clip_with_regions()
    expected = np.zeros((12, 12), dtype=bool)
    expected[4:8, 4:8] = True  # only block B is above the threshold
    assert np.array_equal(dynamic_mask(clip), expected)
    assert np.array_equal(dynamic_mask(clip.astype(np.float32)), expected)
    lower = expected.copy()
    lower[0:4, 0:4] = lower[8:12, 8:12] = True  # blocks A and C exceed 2.0
    assert np.array_equal(dynamic_mask(clip, threshold=2.0), lower)


def test_dynamic_mask_sums_channels() -> None:
    clip = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    clip[1, 0, 0] = [1, 1, 1]  # L1 change 3 > 2.5, though each channel moved by 1
    assert dynamic_mask(clip).sum() == 1 and dynamic_mask(clip)[0, 0]


def test_dynamic_mask_needs_two_frames() -> None:
    with pytest.raises(ValueError, match="2 frames"):
        dynamic_mask(np.zeros((1, 4, 4, 3)))


def test_score_video_masks_with_the_ground_truth_and_averages_frames() -> None:
    first = _image(6, (20, 20)).astype(np.float64)
    ground_truth = np.repeat(first[None], 4, axis=0)
    ground_truth[1::2, 0:6, 0:6] += 20.0  # a flickering corner: dynamic
    generated = np.repeat(first[None], 2, axis=0)
    generated[:, 0:6, 0:6] = 0.0  # wrong only where dynamic
    generated[0] += 5.0
    generated[1] += 10.0
    score = score_video(first, generated, ground_truth)
    psnrs = [10 * math.log10(255**2 / 25), 10 * math.log10(255**2 / 100)]
    assert score.psnr == pytest.approx(np.mean(psnrs))
    assert score.static_fraction == pytest.approx(1 - 36 / 400)
    assert 0.9 < score.ssim < 1.0


def test_an_exact_frame_scores_the_rounding_cap_not_infinity() -> None:
    first = _image(7, (20, 20)).astype(np.float64)
    generated = np.repeat(first[None], 2, axis=0)
    generated[1] += 5.0  # frame 0 exact, frame 1 off by 5 everywhere
    score = score_video(first, generated, np.repeat(first[None], 3, axis=0))
    assert pytest.approx(58.92, abs=0.01) == PSNR_CAP
    assert score.psnr == pytest.approx((PSNR_CAP + 10 * math.log10(255**2 / 25)) / 2)


# --- Fréchet distance ------------------------------------------------------------------------


def _closed_form(mu1, cov1, mu2, cov2) -> float:
    """Closed form via the eigenvalues of cov1 cov2 (those of cov1^1/2 cov2 cov1^1/2)."""
    cross = np.sqrt(np.linalg.eigvals(cov1 @ cov2).real.clip(0)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * cross)


def _random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
    factor = rng.normal(size=(dim, dim))
    return factor @ factor.T / dim + 0.1 * np.eye(dim)


def test_frechet_distance_of_fitted_samples_matches_the_true_gaussians() -> None:
    rng = np.random.default_rng(7)
    dim = 4
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    cov1, cov2 = _random_covariance(rng, dim), _random_covariance(rng, dim)
    expected = _closed_form(mu1, cov1, mu2, cov2)
    samples1 = rng.multivariate_normal(mu1, cov1, size=200_000)
    samples2 = rng.multivariate_normal(mu2, cov2, size=200_000)
    fitted = frechet_distance(*gaussian_stats(samples1), *gaussian_stats(samples2))
    assert expected > 1.0
    assert fitted == pytest.approx(expected, rel=0.02)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_diagonal_gaussians_is_exact() -> None:
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 1.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert expected == pytest.approx(0.25 + 9.0 + 4 + 1)
    distance = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert distance == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_is_symmetric_and_zero_for_identical_stats() -> None:
    rng = np.random.default_rng(8)
    a = gaussian_stats(rng.normal(size=(50, 6)))
    b = gaussian_stats(rng.normal(size=(60, 6)) * 2 + 1)
    assert frechet_distance(*a, *b) == pytest.approx(frechet_distance(*b, *a), rel=1e-10)
    assert frechet_distance(*a, *b) > 1.0
    assert frechet_distance(*a, *a) == pytest.approx(0.0, abs=1e-10)


def test_frechet_distance_with_singular_covariances() -> None:
    rng = np.random.default_rng(9)
    a = gaussian_stats(rng.normal(size=(5, 32)))  # rank 4 covariance in 32 dimensions
    b = gaussian_stats(rng.normal(size=(5, 32)))
    distance = frechet_distance(*a, *b)
    assert math.isfinite(distance) and distance > 0.0
    assert frechet_distance(*a, *a) == pytest.approx(0.0, abs=1e-9)


def test_gaussian_stats_and_shape_checks() -> None:
    mean, cov = gaussian_stats(np.array([[1.0, 2.0], [3.0, 6.0]]))
    assert np.allclose(mean, [2.0, 4.0]) and np.allclose(cov, [[2.0, 4.0], [4.0, 8.0]])
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_stats(np.ones((1, 3)))
    with pytest.raises(ValueError, match="inconsistent"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_running_gaussian_over_uneven_batches_equals_the_whole_set() -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(loc=5.0, scale=[1.0, 2.0, 0.5], size=(50, 3))
    running = RunningGaussian(3)
    for start, stop in ((0, 1), (1, 1), (1, 17), (17, 50)):  # one row, none, then larger ones
        running.add(data[start:stop])
    mean, cov = running.stats()
    assert running.count == 50
    np.testing.assert_allclose(mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(data, rowvar=False), rtol=1e-10)
    with pytest.raises(ValueError, match="N x 3"):
        running.add(np.ones((2, 4)))
