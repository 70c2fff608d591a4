"""KID, precision/recall, density/coverage, Inception Score and mode coverage against hand-computed values and the
behaviour their papers describe."""
import math

import pytest
import torch

from dgm.metrics.inception_score import inception_score
from dgm.metrics.kernel import kernel_inception_distance, mmd_unbiased, polynomial_kernel
from dgm.metrics.manifold import knn_radii, manifold_metrics
from dgm.metrics.modes import mode_metrics


def test_mmd_matches_the_pairwise_sums():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=generator, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert mmd_unbiased(x, y).item() == pytest.approx((xx + yy - 2 * xy).item(), rel=1e-12)
    assert polynomial_kernel(x, y).shape == (5, 4)


def test_kid_is_unbiased_for_equal_distributions():
    """The mean of MMD²_u over many independent draws of one distribution is 0 within its standard error, while
    a shifted distribution gives a clearly positive value."""
    generator = torch.Generator().manual_seed(1)
    values = torch.stack([mmd_unbiased(torch.randn(20, 4, generator=generator, dtype=torch.float64),
                                       torch.randn(20, 4, generator=generator, dtype=torch.float64))
                          for _ in range(2000)])
    assert abs(values.mean().item()) < 3 * values.std().item() / math.sqrt(len(values))
    assert (values < 0).any()  # unbiased, so single draws go negative
    shifted = kernel_inception_distance(torch.randn(200, 4, generator=generator),
                                        torch.randn(200, 4, generator=generator) + 1, subsets=10, subset_size=100)
    assert shifted["kid"] > 10 * shifted["kid_std"] / math.sqrt(10)


def test_kid_subsets_and_bad_input():
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(2))
    result = kernel_inception_distance(x, x, subsets=5, subset_size=1000)  # subset size capped at 30
    assert result["kid"] == pytest.approx(mmd_unbiased(x.double(), x.double()).item())
    with pytest.raises(ValueError, match="shapes"):
        kernel_inception_distance(x, torch.zeros(5, 3))


# a tiny hand-computed configuration on the line (second coordinate 0)
REAL = torch.tensor([[0.0, 0], [1, 0], [3, 0], [7, 0]], dtype=torch.float64)
FAKE = torch.tensor([[0.5, 0], [3.2, 0], [20, 0]], dtype=torch.float64)


def test_knn_radii_by_hand():
    # nearest other points (k = 1): 0→1, 1→0, 3→1 (2), 7→3 (4); k = 2: 0→3, 1→3 (2), 3→0 (3), 7→1 (6)
    assert knn_radii(REAL, 1).tolist() == [1, 1, 2, 4]
    assert knn_radii(REAL, 2).tolist() == [3, 2, 3, 6]


def test_precision_recall_density_coverage_by_hand():
    """k = 1. Real balls: [−1, 1], [0, 2], [1, 5], [3, 11]. Fake radii: 0.5→3.2 (2.7), 3.2→0.5 (2.7), 20→3.2
    (16.8): balls [−2.2, 3.2], [0.5, 5.9], [3.2, 36.8].
    0.5 lies in 2 real balls, 3.2 in 2, 20 in none: precision 2/3, density (2 + 2)/(1·3), coverage: balls of
    0, 1, 3 and 7 hold 0.5, 0.5, 3.2, 3.2 → 4/4. Recall: 0, 1, 3 lie in fake balls, 7 in the third → 4/4."""
    result = manifold_metrics(REAL, FAKE, k=1)
    assert result == pytest.approx({"precision": 2 / 3, "recall": 1.0, "density": 4 / 3, "coverage": 1.0})
    shrunk = manifold_metrics(REAL, FAKE[:2], k=1)  # fake balls: radius 2.7 around 0.5 and 3.2: 7 is outside
    assert shrunk["recall"] == 0.75


def test_manifold_metrics_on_identical_and_disjoint_sets():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(300, 5, generator=generator)
    same = manifold_metrics(x, x, k=5)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] >= 1.0  # each point lies in its own ball and in those of its k neighbours
    far = manifold_metrics(x, x + 100, k=5)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    fresh = manifold_metrics(x, torch.randn(300, 5, generator=generator), k=5)
    assert 0.7 < fresh["density"] < 1.3  # Naeem et al.: density is about 1 for samples of the real distribution


def test_inception_score_of_certain_uniform_classifier_is_the_number_of_classes():
    probabilities = torch.eye(10).repeat(20, 1)  # 200 certain predictions, every class equally often
    assert inception_score(probabilities, splits=4)["is"] == pytest.approx(10.0, rel=1e-12)
    assert inception_score(torch.full((50, 7), 1 / 7), splits=5)["is"] == pytest.approx(1.0)
    collapsed = inception_score(torch.eye(10)[torch.zeros(100, dtype=torch.long)], splits=1)
    assert collapsed["is"] == pytest.approx(1.0) and math.isnan(collapsed["is_std"])


def test_inception_score_matches_the_course_formula():
    """exp(mean_x KL(p(y|x) ‖ p(y))) per split with scipy.stats.entropy, mean over splits."""
    from scipy.stats import entropy
    probabilities = torch.softmax(torch.randn(90, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64), 1)
    scores = []
    for part in torch.tensor_split(probabilities, 3):
        marginal = part.mean(0).numpy()
        scores.append(math.exp(sum(entropy(p.numpy(), marginal) for p in part) / len(part)))
    assert inception_score(probabilities, splits=3)["is"] == pytest.approx(sum(scores) / 3, rel=1e-10)
    with pytest.raises(ValueError, match="one sample per split"):
        inception_score(probabilities[:2], splits=3)


def test_mode_metrics_by_hand():
    centres = torch.tensor([[0.0, 0], [10, 0]])
    samples = torch.tensor([[0.1, 0], [0.29, 0], [0.31, 0], [5, 0]])  # std 0.1: within 0.3 is high quality
    result = mode_metrics(samples, centres, std=0.1)
    assert result == {"modes_covered": 1, "modes": 2, "high_quality": 0.5, "mode_counts": [2, 0]}
    assert mode_metrics(samples, centres, std=0.1, min_count=3)["modes_covered"] == 0
