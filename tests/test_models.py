import pytest
import torch
import torch.nn.functional as F

from augment.diffaug import make_diffaug
from augment.config import TrainConfig
from augment.errors import ConfigError
from augment.losses import (OBJECTIVES, Term, gradient_penalty, make_loss, mode_seeking,
                            r1_penalty)
from augment.models import (MinibatchStd, build_discriminator, build_generator,
                            resolution_plan)


@pytest.mark.parametrize("size,expected", [(8, (4, 1)), (28, (7, 2)), (32, (4, 3)),
                                           (64, (4, 4)), (24, (6, 2)), (9, (9, 0))])
def test_resolution_plan(size, expected):
    s0, n = resolution_plan(size)
    assert (s0, n) == expected and s0 * 2 ** n == size


@pytest.mark.parametrize("preset", ["dcgan", "sngan", "classic"])
@pytest.mark.parametrize("channels,size", [(1, 8), (1, 28), (3, 32), (3, 64)])
def test_generator_and_discriminator_shapes(preset, channels, size):
    hp = dict(preset=preset, image_shape=[channels, size, size], num_classes=3, z_dim=16, width=8)
    g, d = build_generator(hp), build_discriminator(hp)
    z, y = torch.randn(5, 16), torch.tensor([0, 1, 2, 1, 0])
    x = g(z, y)
    assert x.shape == (5, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert d(x, y).shape == (5,)
    # g.hparams (what a checkpoint stores) is enough to rebuild G: the weights load strictly
    # and the rebuilt G draws the same images
    rebuilt = build_generator(g.hparams)
    rebuilt.load_state_dict(g.state_dict())  # strict: same layers, same shapes
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(z, y), g.eval()(z, y))


def test_minibatch_std_channel_is_the_std_of_each_group():
    """Batch of 8, group 4: sample i sits in group i mod 2; its channel is that group's std."""
    x = torch.randn(8, 3, 4, 4)
    out = MinibatchStd(group=4)(x)
    assert out.shape == (8, 4, 4, 4) and torch.equal(out[:, :3], x)
    for i in range(8):
        group = x[i % 2::2]  # the 4 samples of sample i's group
        expected = group.var(0, unbiased=False).add(1e-8).sqrt().mean()
        assert torch.allclose(out[i, 3], expected.expand(4, 4), atol=1e-6)
    same = MinibatchStd(group=4)(x[:1].repeat(8, 1, 1, 1))  # a collapsed batch: std ≈ 0
    assert same[:, 3].max() < 1e-3 < out[:, 3].min()
    assert MinibatchStd(group=4)(x[:6]).shape == (6, 4, 4, 4)  # 4 ∤ 6: groups of gcd = 2
    # the layout the training loop uses (channels_last) survives, values unchanged
    nhwc = MinibatchStd(group=4)(x.contiguous(memory_format=torch.channels_last))
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and torch.equal(nhwc, out)
    # two minibatches stacked (D's real and fake in one pass): each keeps its own groups
    other = torch.randn(8, 3, 4, 4)
    stacked = MinibatchStd(group=4)(torch.cat([x, other]), parts=2)
    torch.testing.assert_close(stacked, torch.cat([out, MinibatchStd(group=4)(other)]))


@pytest.mark.parametrize("preset", ["dcgan", "sngan", "classic"])
def test_one_pass_over_real_and_fake_equals_two(preset):
    """D(cat(real, fake), parts=2) gives each half the logits a pass of its own gives: the
    merged pass the D step uses changes speed, not what D computes (6 ∤ 4: groups of 2)."""
    torch.manual_seed(0)
    hp = dict(preset=preset, image_shape=[1, 8, 8], num_classes=3, z_dim=8, width=8)
    d = build_discriminator(hp).eval()  # eval: spectral norm without a power-iteration step
    real, fake, y = torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8), torch.arange(6) % 3
    with torch.no_grad():
        merged = d(torch.cat([real, fake]), torch.cat([y, y]), parts=2)
        torch.testing.assert_close(merged, torch.cat([d(real, y), d(fake, y)]))
        one_batch = d(torch.cat([real, fake]), torch.cat([y, y]))  # std groups mix the halves
    assert torch.allclose(merged, one_batch) == (preset == "classic")  # MLP: no batch statistics


@pytest.mark.parametrize("preset", ["dcgan", "sngan"])
def test_conv_discriminator_sees_batch_diversity(preset):
    """The same image scores differently in a varied batch and in a collapsed one."""
    torch.manual_seed(0)
    hp = dict(preset=preset, image_shape=[1, 8, 8], num_classes=2, z_dim=8, width=8)
    d = build_discriminator(hp).eval()
    x, y = torch.randn(8, 1, 8, 8), torch.zeros(8, dtype=torch.long)
    with torch.no_grad():
        varied, collapsed = d(x, y)[0], d(x[:1].repeat(8, 1, 1, 1), y)[0]
    assert not torch.allclose(varied, collapsed)


def test_generator_is_conditional():
    """Changing only the label changes the image (the label reaches G)."""
    hp = dict(preset="dcgan", image_shape=[1, 8, 8], num_classes=3, z_dim=16, width=8)
    g = build_generator(hp).eval()
    with torch.no_grad():
        for emb in g.modules():  # random class embeddings so labels differ from init
            if isinstance(emb, torch.nn.Embedding):
                emb.weight.normal_()
        z = torch.randn(1, 16).repeat(2, 1)
        a, b = g(z, torch.tensor([0, 2]))
    assert not torch.allclose(a, b)


def test_diffaug_keeps_shape_and_identity_policy():
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    torch.manual_seed(0)
    out = make_diffaug("color,translation,cutout")(x)
    assert out.shape == x.shape and not torch.equal(out, x)
    assert torch.equal(make_diffaug("")(x), x)
    cut = make_diffaug("cutout")(x)
    zeroed = (cut == 0).flatten(1).float().mean(1)
    assert torch.all(zeroed > 0.1)  # every image lost a square
    with pytest.raises(ConfigError, match="unknown op.*rotate"):
        make_diffaug("translation,rotate")


def test_flip_mirrors_about_half_the_images_and_leaves_the_rest():
    x = torch.rand(400, 3, 4, 4) * 2 - 1
    torch.manual_seed(1)
    out = make_diffaug("flip")(x)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    assert torch.all(same ^ mirrored)  # each image whole: as it was, or its mirror image
    assert 160 < int(mirrored.sum()) < 240


def test_losses_on_known_logits():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    d_hinge, g_hinge = OBJECTIVES["hinge"]
    assert d_hinge(real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert g_hinge(fake).item() == pytest.approx(1.0)
    d_bce, _ = OBJECTIVES["bce"]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.cat([real, fake]), torch.tensor([1.0, 1, 0, 0]), reduction="none")
    assert d_bce(real, fake).item() == pytest.approx(expected[:2].mean() + expected[2:].mean())


@pytest.mark.parametrize("name", ["hinge", "bce", "wgan-gp"])
def test_gan_loss_backpropagates(name):
    hp = dict(preset="dcgan", image_shape=[1, 8, 8], num_classes=2, z_dim=8, width=8)
    g, d = build_generator(hp), build_discriminator(hp)
    loss = make_loss(name, augment=make_diffaug("translation"), r1_gamma=1.0)
    assert [t.on for t in loss.terms] == (["d", "d"] if name == "wgan-gp" else ["d"])
    y = torch.tensor([0, 1, 1, 0])
    real, fake = torch.rand(4, 1, 8, 8) * 2 - 1, g(torch.randn(4, 8), y)
    d_loss, stats = loss.discriminator(d, real, fake, y)
    d_loss.backward()
    assert all(p.grad is not None for p in d.parameters() if p.requires_grad)
    g_loss = loss.generator(d, fake, y, torch.randn(4, 8))
    g_loss.backward()
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss) and set(stats) == {"d_real", "d_fake"}


class _KnownGradientD(torch.nn.Module):
    """D(x, y) = ⟨w_y, x⟩ + c/2·‖x‖² on x: B×1×1×2, so ∇ₓD(x, y) = w_y + c·x by hand."""

    def __init__(self, c: float = 0.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([[3.0, 0.0], [0.3, 0.4]]))  # ‖w₀‖ = 3, ‖w₁‖ = ½
        self.c = c

    def forward(self, x, y, parts=1):
        x = x.flatten(1)
        return (self.w[y] * x).sum(1) + 0.5 * self.c * x.pow(2).sum(1)


_Y = torch.tensor([0, 1, 1])
_REAL = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, -0.4]]).view(3, 1, 1, 2)
_FAKE = torch.tensor([[5.0, -2.0], [7.0, 1.0], [-3.0, 4.0]]).view(3, 1, 1, 2)


def test_gradient_penalty_is_the_mean_of_squared_gradient_norm_minus_one():
    """WGAN-GP: E(‖∇D(x̂)‖ − 1)². A linear D has ∇D = w_y at every interpolate x̂, whatever α:
    ((3 − 1)² + (½ − 1)² + (½ − 1)²) / 3 = 1.5 (a norm per sample, averaged over samples)."""
    d = _KnownGradientD()
    gp = gradient_penalty(d, _REAL, _FAKE, _Y)
    assert gp.item() == pytest.approx(1.5, rel=1e-6)
    # differentiable in D's weights (create_graph), as the D step needs:
    # ∂/∂w₀ = (1/3)·2(‖w₀‖ − 1)·w₀/‖w₀‖ = (4/3, 0); ∂/∂w₁ = (2/3)·2(½ − 1)·w₁/½ = −(4/3)·w₁
    gp.backward()
    torch.testing.assert_close(d.w.grad, torch.tensor([[4 / 3, 0.0], [-0.4, -0.16 / 0.3]]))


def test_r1_penalty_is_half_the_mean_squared_gradient_norm_on_real_data():
    """R1: ½·E‖∇ₓD(x)‖² at the real x. With ∇ₓD = w_y + x: (4, 0), (0.3, 0.4), (0.3, 0) →
    ½·(16 + 0.25 + 0.09) / 3; the fakes (far from the reals) must not enter it."""
    d = _KnownGradientD(c=1.0)
    r1 = r1_penalty(d, _REAL, _FAKE, _Y)
    assert r1.item() == pytest.approx(0.5 * (16 + 0.25 + 0.09) / 3, rel=1e-6)
    r1.backward()  # differentiable in D's weights: ∂/∂w_k = Σ_{i: y_i = k} (w_k + x_i) / 3
    torch.testing.assert_close(d.w.grad, torch.tensor([[4.0, 0.0], [0.6, 0.4]]) / 3)


@pytest.mark.parametrize("name, weights", [("hinge", {"r1_gamma": 0.2}),
                                           ("wgan-gp", {"gp_weight": 10.0, "r1_gamma": 0.2})])
def test_penalties_enter_d_loss_with_their_weights(name, weights):
    """D's loss = adversarial term + gp_weight·GP + γ·R1 (γ·½E‖∇D(x)‖²), computed by hand."""
    d = _KnownGradientD(c=0.0 if name == "wgan-gp" else 1.0)  # GP by hand needs a linear D
    loss = make_loss(name, augment=make_diffaug(""), **weights)
    total, _ = loss.discriminator(d, _REAL, _FAKE, _Y)
    with torch.no_grad():
        real_logits, fake_logits = d(_REAL, _Y), d(_FAKE, _Y)
    expected = OBJECTIVES[name][0](real_logits, fake_logits)
    grad_real = d.w[_Y].detach() + d.c * _REAL.flatten(1)
    expected = expected + weights["r1_gamma"] * 0.5 * grad_real.pow(2).sum(1).mean()
    if name == "wgan-gp":
        expected = expected + weights["gp_weight"] * 1.5
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("preset", ["dcgan", "sngan"])
def test_projection_scores_agree_with_forward(preset):
    """D(x, y) = ψ(h) + ⟨embed(y), h⟩ and the class scores are that inner product for every y."""
    hp = dict(preset=preset, image_shape=[1, 8, 8], num_classes=3, z_dim=8, width=8)
    d = build_discriminator(hp).eval()
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 2, 1, 2])
    with torch.no_grad():
        psi, classes = d.scores(x)
        h = d.pooled(x)
        assert classes.shape == (4, 3)
        torch.testing.assert_close(d(x, y), psi + (d.embed(y) * h).sum(1))


def test_dual_projection_term_trains_a_classifier():
    """With cls_weight > 0, D's class scores learn the labels even when fakes equal reals.

    Fakes identical to the reals leave the adversarial hinge terms with no net gradient, so only
    the class term can lower D's cross-entropy on the labels.
    """
    torch.manual_seed(0)
    hp = dict(preset="dcgan", image_shape=[1, 8, 8], num_classes=2, z_dim=8, width=8)
    d = build_discriminator(hp)
    loss = make_loss("hinge", augment=make_diffaug(""), cls_weight=1.0)
    assert make_loss("hinge", augment=make_diffaug("")).cls_weight == 0
    y = torch.arange(64) % 2
    real = torch.where(y[:, None, None, None] == 1, 0.8, -0.8) + 0.1 * torch.randn(64, 1, 8, 8)
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    for _ in range(30):
        d_loss, _ = loss.discriminator(d, real, real.clone(), y)
        opt.zero_grad()
        d_loss.backward()
        opt.step()
    with torch.no_grad():
        assert F.cross_entropy(d.scores(real)[1], y) < 0.05
    g_loss = loss.generator(d, real.clone().requires_grad_(True), y, torch.randn(64, 8))
    assert g_loss.requires_grad and torch.isfinite(g_loss)


def test_mode_seeking_term_rewards_spread_within_a_class_only():
    torch.manual_seed(0)
    z, y = torch.randn(6, 8), torch.tensor([0, 0, 1, 1, 2, 3])
    fake = torch.randn(6, 1, 4, 4)
    base = mode_seeking(fake, z, y)
    # The term is 1 / (image gap / latent gap): twice the spread halves it.
    assert mode_seeking(2 * fake, z, y).item() == pytest.approx(base.item() / 2, rel=1e-4)
    # Only same-label pairs count: moving the singleton classes' images changes nothing.
    moved = fake.clone()
    moved[4:] += 10
    assert mode_seeking(moved, z, y).item() == pytest.approx(base.item(), rel=1e-5)
    assert mode_seeking(fake, z, torch.arange(6)).item() == 0  # no same-label pair
    # Collapsed classes (one image per class) are penalised hard.
    assert mode_seeking(fake[[0, 0, 2, 2, 4, 5]], z, y) > 1e3 * base
    # Minimising it pushes same-class samples apart.
    fake.requires_grad_(True)
    mode_seeking(fake, z, y).backward()
    spread = (fake[0] - fake[1]).abs().sum()
    stepped = (fake - 0.5 * fake.grad).detach()
    assert (stepped[0] - stepped[1]).abs().sum() > spread


def test_mode_seeking_pairs_within_groups_so_memory_is_linear_in_the_batch():
    torch.manual_seed(0)
    z, y, fake = torch.randn(10, 8), torch.randint(0, 2, (10,)), torch.randn(10, 1, 4, 4)

    def ratios(idx):  # (sum of same-label pair ratios, pair count) among the samples ``idx``
        pairs = [(i, j) for i in idx for j in idx if i < j and y[i] == y[j]]
        gap = lambda a, b: (a - b).abs().mean()  # noqa: E731
        return sum(gap(fake[i], fake[j]) / gap(z[i], z[j]) for i, j in pairs), len(pairs)

    whole = ratios(range(10))
    assert mode_seeking(fake, z, y).item() == pytest.approx(float(whole[1] / whole[0]), rel=1e-4)
    (s1, n1), (s2, n2) = ratios(range(4)), ratios(range(4, 8))
    s3, n3 = ratios(range(8, 10))
    grouped = 1 / ((s1 + s2 + s3) / (n1 + n2 + n3))  # groups of 4: 0-3, 4-7, 8-9
    assert mode_seeking(fake, z, y, group=4).item() == pytest.approx(float(grouped), rel=1e-4)


def test_mode_seeking_is_a_generator_term_chosen_at_setup():
    assert make_loss("hinge", augment=make_diffaug("")).terms == ()
    loss = make_loss("hinge", augment=make_diffaug(""), ms_weight=0.5)
    assert loss.terms == (Term(0.5, mode_seeking, "g"),)
    hp = dict(preset="dcgan", image_shape=[1, 8, 8], num_classes=2, z_dim=8, width=8)
    g, d = build_generator(hp), build_discriminator(hp).eval()  # eval: no power iteration
    z, y = torch.randn(4, 8), torch.tensor([0, 1, 1, 0])
    fake = g(z, y)
    plain = make_loss("hinge", augment=make_diffaug("")).generator(d, fake, y, z)
    torch.testing.assert_close(loss.generator(d, fake, y, z),
                               plain + 0.5 * mode_seeking(fake, z, y))


def test_class_term_needs_projection_discriminator():
    with pytest.raises(ConfigError, match="cls_weight.*projection"):
        TrainConfig(preset="classic", cls_weight=0.5)
    TrainConfig(preset="classic", cls_weight=0.0)  # off: no projection D needed
    TrainConfig(preset="dcgan", cls_weight=0.5)  # a projection D: accepted
