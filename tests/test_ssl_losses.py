"""Losses: hand-computed values, an independent NT-Xent, the two R-NCE properties, finite gradients."""

import math

import pytest
import torch

from rnce.ssl.losses import (
    barlow_twins,
    lssl_direction,
    nt_xent,
    reconstruction,
    rnce_loss,
    rnce_residuals,
)


def reference_nt_xent(z1, z2, tau):
    """SimCLR's loss written anchor by anchor (Chen et al. 2020, Algorithm 1)."""
    z = torch.cat([z1, z2]).double()
    n = z.shape[0]
    b = n // 2

    def sim(i, j):
        return float(torch.dot(z[i], z[j]) / (z[i].norm() * z[j].norm()))

    total = 0.0
    for i in range(n):
        positive = (i + b) % n
        denominator = sum(math.exp(sim(i, k) / tau) for k in range(n) if k != i)
        total += -math.log(math.exp(sim(i, positive) / tau) / denominator)
    return total / n


def test_nt_xent_by_hand_two_images():
    # orthogonal unit vectors: the positive has similarity 1, the two negatives 0
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = nt_xent(z1, z1.clone(), temperature=1.0)
    expected = -math.log(math.e / (math.e + 2))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("tau", [0.07, 0.5, 1.0])
def test_nt_xent_equals_an_independent_implementation(tau):
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    assert nt_xent(z1, z2, tau).item() == pytest.approx(reference_nt_xent(z1, z2, tau), rel=1e-5)


def test_nt_xent_prefers_matching_views():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 8, generator=g)
    assert nt_xent(z, z + 0.01 * torch.randn(16, 8, generator=g)) < nt_xent(z, torch.randn(16, 8, generator=g))


def test_barlow_twins_by_hand():
    # two dimensions, perfectly correlated views, uncorrelated dimensions: loss 0
    z = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    assert barlow_twins(z, z.clone(), eps=0).item() == pytest.approx(0.0, abs=1e-7)
    # second view's dimensions swapped: c = [[0, 1], [1, 0]] -> on-diagonal 2, off-diagonal lambda * 2
    assert barlow_twins(z, z[:, [1, 0]], lambd=0.5, eps=0).item() == pytest.approx(2 + 0.5 * 2)


def test_rnce_aux_term_vanishes_when_a_lies_in_the_span_of_h():
    g = torch.Generator().manual_seed(1)
    h1 = torch.randn(40, 6, generator=g)
    aux = h1 @ torch.randn(6, 3, generator=g)
    r, _ = rnce_residuals(h1, aux)
    assert r.pow(2).sum().item() < 1e-8
    # with aux in span(H1) and span(H2) the whole loss is the NCE term alone
    shared = torch.randn(40, 6, generator=g)
    aux = shared @ torch.randn(6, 3, generator=g)
    loss = rnce_loss(shared, shared.clone(), aux, aux_weight=10.0)
    _, rp = rnce_residuals(shared, aux)
    assert loss.item() == pytest.approx(nt_xent(rp, rp.clone()).item(), rel=1e-4)


def test_rnce_nce_term_unchanged_when_h_moves_along_a():
    g = torch.Generator().manual_seed(2)
    h1, h2 = torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g)
    aux = torch.randn(50, 4, generator=g)
    shift = aux @ torch.randn(4, 8, generator=g)
    base = rnce_loss(h1, h2, aux, aux_weight=0.0)
    moved = rnce_loss(h1 + shift, h2 - 2 * shift, aux, aux_weight=0.0)
    assert moved.item() == pytest.approx(base.item(), rel=1e-4)


def test_rnce_loss_is_the_weighted_sum_of_its_terms():
    g = torch.Generator().manual_seed(4)
    h1, h2, aux = torch.randn(30, 5, generator=g), torch.randn(30, 5, generator=g), torch.randn(30, 3, generator=g)
    r1, p1 = rnce_residuals(h1, aux)
    r2, p2 = rnce_residuals(h2, aux)
    expected = 0.3 * 0.5 * (r1.pow(2).sum() + r2.pow(2).sum()) + nt_xent(p1, p2, 0.2)
    assert rnce_loss(h1, h2, aux, 0.2, 0.3).item() == pytest.approx(expected.item(), rel=1e-5)
    # one auxiliary matrix per view (stage 2)
    aux2 = torch.randn(30, 2, generator=g)
    r2b, p2b = rnce_residuals(h2, aux2)
    expected = 0.5 * (r1.pow(2).sum() + r2b.pow(2).sum()) + nt_xent(p1, p2b, 0.1)
    assert rnce_loss(h1, h2, (aux, aux2)).item() == pytest.approx(expected.item(), rel=1e-5)


def test_rnce_aux_ridge_tells_an_h_that_carries_a_from_a_random_one_when_b_is_close_to_d():
    """At B = 96, d = 64 the exact projection fits two thirds of any A by chance; the shrunk fit does not."""
    g = torch.Generator().manual_seed(5)
    b, d, k = 96, 64, 5
    aux = torch.randn(b, k, generator=g)
    random_h = torch.randn(b, d, generator=g)
    carrying = torch.cat([aux @ torch.randn(k, k, generator=g) * 3, torch.randn(b, d - k, generator=g)], dim=1)

    def explained(h, ridge):
        r, _ = rnce_residuals(h, aux, ridge)
        return 1 - r.pow(2).sum().item() / aux.pow(2).sum().item()

    assert explained(random_h, 0.0) > 0.6  # the chance fit of eq. (2): about d / B
    assert explained(random_h, 1.0) < 0.5
    assert explained(carrying, 1.0) > 0.85
    # the margin between carrying A and not carrying it is half as large again under the shrunk fit
    assert explained(carrying, 1.0) - explained(random_h, 1.0) > 1.4 * (explained(carrying, 0.0)
                                                                        - explained(random_h, 0.0))
    # R' is the exact residual whatever the shrinkage; ridge 0 is eq. (2) itself
    assert torch.equal(rnce_residuals(random_h, aux, 1.0)[1], rnce_residuals(random_h, aux)[1])
    h2 = torch.randn(b, d, generator=g)
    assert rnce_loss(random_h, h2, aux, aux_ridge=0.0).item() == pytest.approx(rnce_loss(random_h, h2, aux).item())
    with pytest.raises(ValueError, match="aux_ridge"):
        rnce_loss(random_h, h2, aux, aux_ridge=-1.0)


@pytest.mark.parametrize("b,d,k", [(8, 8, 2), (8, 4, 8), (8, 10, 2)])
def test_rnce_needs_batch_larger_than_d_and_k(b, d, k):
    with pytest.raises(ValueError, match="B > d and B > k"):
        rnce_loss(torch.randn(b, d), torch.randn(b, d), torch.randn(b, k))


@pytest.mark.parametrize("bad", [
    lambda: nt_xent(torch.randn(4, 3), torch.randn(5, 3)),
    lambda: nt_xent(torch.randn(4, 3), torch.randn(4, 3), temperature=0),
    lambda: nt_xent(torch.randn(1, 3), torch.randn(1, 3)),
    lambda: barlow_twins(torch.randn(4, 3, 2), torch.randn(4, 3, 2)),
    lambda: rnce_loss(torch.randn(20, 3), torch.randn(20, 3), torch.randn(19, 2)),
    lambda: reconstruction(torch.randn(2, 1, 4, 4, 4), torch.randn(2, 1, 4, 4, 3)),
    lambda: lssl_direction(torch.randn(4, 3), torch.randn(4, 3), torch.randn(4)),
])
def test_bad_shapes_are_errors(bad):
    with pytest.raises(ValueError):
        bad()


def test_gradients_are_finite():
    g = torch.Generator().manual_seed(5)
    h1 = torch.randn(40, 6, generator=g, requires_grad=True)
    h2 = torch.randn(40, 6, generator=g, requires_grad=True)
    aux = torch.randn(40, 4, generator=g)
    total = rnce_loss(h1, h2, aux) + nt_xent(h1, h2) + barlow_twins(h1, h2) + lssl_direction(h1, h2, torch.ones(6))
    total.backward()
    assert torch.isfinite(h1.grad).all() and torch.isfinite(h2.grad).all()
    assert h1.grad.abs().sum() > 0


def test_lssl_direction_zero_when_differences_align():
    z1 = torch.randn(5, 3)
    direction = torch.tensor([1.0, 2.0, -1.0])
    z2 = z1 + torch.rand(5, 1) * direction + 0.1
    assert lssl_direction(z1, z1 + (z2 - z1 - 0.1), direction).item() == pytest.approx(0.0, abs=1e-6)
    assert lssl_direction(z1, z1 - direction, direction).item() == pytest.approx(2.0, abs=1e-6)
