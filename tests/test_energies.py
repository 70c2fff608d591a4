"""Energies of Rezende & Mohamed (2015, Table 1): values computed by hand, symmetries, and their normalisers."""
import dataclasses
import math

import pytest
import torch

from dgm.data.energies import ENERGIES, log_normalizer
from dgm.registry import DATASETS


def energy(name: str, z1: float, z2: float) -> float:
    return ENERGIES[name].energy(torch.tensor([[z1, z2]], dtype=torch.float64)).item()


def test_u1_by_hand():
    # z = 0: ½(2/0.4)² = 12.5 and −log(2 exp(−½(2/0.6)²)) = 50/9 − log 2
    assert energy("U1", 0.0, 0.0) == pytest.approx(12.5 + 50 / 9 - math.log(2), abs=1e-12)
    # z = (2, 0): on the ring, at the centre of the right bump; the left bump adds exp(−½(4/0.6)²)
    assert energy("U1", 2.0, 0.0) == pytest.approx(-math.log1p(math.exp(-200 / 9)), abs=1e-15)
    # z = (0, 2.4): one std outside the ring, both bumps at distance 2: ½ + 50/9 − log 2
    assert energy("U1", 0.0, 2.4) == pytest.approx(0.5 + 50 / 9 - math.log(2), abs=1e-12)


def test_u2_by_hand():
    assert energy("U2", 1.0, 1.0) == pytest.approx(0.0, abs=1e-15)          # w1(1) = sin(π/2) = 1
    assert energy("U2", 0.0, 0.4) == pytest.approx(0.5, abs=1e-15)          # w1(0) = 0, one std away
    assert energy("U2", -1.0, 0.2) == pytest.approx(0.5 * 3 ** 2, abs=1e-12)  # w1(−1) = −1, 1.2 = 3 std away


def test_u3_by_hand():
    # z1 = 1: w1 = 1, w2 = 3; z2 = 1 sits on the first wave, the second is 3/0.35 std away
    assert energy("U3", 1.0, 1.0) == pytest.approx(-math.log1p(math.exp(-0.5 * (3 / 0.35) ** 2)), abs=1e-15)
    # z2 = −2 sits on the second wave (z2 − w1 + w2 = 0), the first is 3/0.35 std away: the same value
    assert energy("U3", 1.0, -2.0) == pytest.approx(energy("U3", 1.0, 1.0), abs=1e-12)


def test_u4_by_hand():
    # z1 = 1: w1 = 1, w3 = 3σ(0) = 1.5; z2 = −0.5 is on the second wave and (−1.5/0.4) std from the first
    assert energy("U4", 1.0, -0.5) == pytest.approx(-math.log1p(math.exp(-0.5 * 3.75 ** 2)), abs=1e-12)
    # far right, w3 → 3: the two waves lie 3 apart; at z2 = w1(5) = 1 only the first one counts
    w3 = 3 / (1 + math.exp(-4 / 0.3))
    assert energy("U4", 5.0, 1.0) == pytest.approx(-math.log1p(math.exp(-0.5 * (w3 / 0.35) ** 2)), abs=1e-15)


def test_symmetries_of_the_formulas():
    z = torch.randn(100, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    mirrored = z * torch.tensor([-1.0, 1.0], dtype=torch.float64)
    flipped = z * torch.tensor([1.0, -1.0], dtype=torch.float64)
    shifted = z + torch.tensor([4.0, 0.0], dtype=torch.float64)   # w1 has period 4
    assert torch.allclose(ENERGIES["U1"].energy(z), ENERGIES["U1"].energy(mirrored))
    assert torch.allclose(ENERGIES["U1"].energy(z), ENERGIES["U1"].energy(flipped))
    assert torch.allclose(ENERGIES["U2"].energy(z), ENERGIES["U2"].energy(shifted))
    for target in ENERGIES.values():
        assert torch.equal(target.log_density(z), -target.energy(z))


@pytest.mark.parametrize("name", sorted(ENERGIES))
def test_log_normalizer_is_finite_and_stable_under_refinement(name):
    coarse, fine = log_normalizer(name, grid=400), log_normalizer(name, grid=800)
    assert math.isfinite(fine)
    assert coarse == pytest.approx(fine, abs=1e-4)


def test_u2_normalizer_in_closed_form():
    # ∫ exp(−½((z2 − w1)/0.4)²) dz2 = 0.4 √(2π) for every z1 (the box cuts off beyond 7 std), times the width 8
    assert log_normalizer("U2") == pytest.approx(math.log(8 * 0.4 * math.sqrt(2 * math.pi)), abs=1e-9)


def test_u1_box_holds_its_mass(monkeypatch):
    wide = dataclasses.replace(ENERGIES["U1"], name="U1-wide", bounds=((-8.0, 8.0), (-8.0, 8.0)))
    monkeypatch.setitem(ENERGIES, "U1-wide", wide)
    assert log_normalizer("U1-wide", grid=2000) == pytest.approx(log_normalizer("U1"), abs=1e-6)


def test_energies_are_not_data_sets_and_refuse_bad_input():
    assert not set(ENERGIES) & set(DATASETS)
    with pytest.raises(ValueError, match="shape"):
        ENERGIES["U1"].energy(torch.zeros(3))
    with pytest.raises(ValueError, match="unknown energy"):
        log_normalizer("U5")
    with pytest.raises(ValueError, match="grid"):
        log_normalizer("U1", grid=1)
