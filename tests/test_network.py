"""MixedVAE's categorical draws: one inverse-CDF draw per segment, distributed as softmax(logits).

The decoder's logits layer is set to weights 0 and bias = known logits, so every row's
logits are those whatever the latent draw: the drawn labels must then be independent draws
from softmax(logits) per segment. A chi-square goodness-of-fit test at a fixed seed checks
that (and rejects a distribution that differs from it, so the test can fail).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from synth.models.network import HEAD_CLASSES, SAMPLE_BLOCK_ROWS, TAIL_GROUPS, MixedVAE, group_classes
from synth.transforms import Segment

ROWS = 200_000
#: Known logits per discrete segment; every class expects >= 60 of ROWS draws (chi-square's validity).
LOGITS = {
    "one": [0.0],
    "flag": [0.3, -1.1],
    "small": [2.0, -1.0, 0.0, 0.5, 1.5],
    "wide": np.linspace(-3.0, 3.0, 600).tolist(),  # a diagnosis-code-sized segment
    "big": [40.0, 41.5, 39.0],  # large logits: exp would overflow without the per-segment shift
}
SEGMENTS = [Segment("x", "x", "continuous")] + [Segment(k, k, "discrete", len(v)) for k, v in LOGITS.items()]


def known_network(logits: dict[str, list[float]] = LOGITS) -> MixedVAE:
    net = MixedVAE(SEGMENTS, latent_dim=3, hidden_dims=[16])
    net.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        net.to_logits.weight.zero_()
        net.to_logits.bias.copy_(torch.tensor([v for values in logits.values() for v in values]))
    return net.eval()


def softmax(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    e = np.exp(values - values.max())
    return e / e.sum()


@pytest.fixture(scope="module")
def drawn() -> torch.Tensor:
    return known_network().generate(ROWS, torch.Generator().manual_seed(5))


@pytest.mark.parametrize("name", [k for k, v in LOGITS.items() if len(v) > 1])
def test_drawn_frequencies_pass_a_chi_square_test_against_the_softmax(drawn, name):
    column = 1 + list(LOGITS).index(name)
    counts = np.bincount(drawn[:, column].long().numpy(), minlength=len(LOGITS[name]))
    expected = ROWS * softmax(LOGITS[name])
    assert len(counts) == len(LOGITS[name])  # no label outside the segment
    assert chisquare(counts, expected).pvalue > 1e-3


@pytest.mark.parametrize("name", ["small", "wide"])
def test_the_chi_square_test_rejects_a_wrong_distribution(drawn, name):
    column = 1 + list(LOGITS).index(name)
    counts = np.bincount(drawn[:, column].long().numpy(), minlength=len(LOGITS[name]))
    wrong = np.asarray(LOGITS[name], dtype=np.float64)
    wrong[[0, -1]] = wrong[[-1, 0]]  # two classes' probabilities swapped
    assert chisquare(counts, ROWS * softmax(wrong)).pvalue < 1e-6


def test_one_class_segments_give_label_zero_and_impossible_classes_never_come(drawn):
    assert (drawn[:, 1] == 0).all()
    logits = {**LOGITS, "small": [-1e4, 0.0, -1e4, 0.0, -1e4]}  # probability exp(-1e4): 0 in float32
    labels = known_network(logits).generate(20_000, torch.Generator().manual_seed(1))[:, 3]
    assert set(labels.long().unique().tolist()) == {1, 3}


def test_one_uniform_per_categorical_value_and_seeded():
    net = known_network()
    first = net.generate(1_000, torch.Generator().manual_seed(9))
    assert torch.equal(first, net.generate(1_000, torch.Generator().manual_seed(9)))
    assert not torch.equal(first, net.generate(1_000, torch.Generator().manual_seed(10)))
    # The generator advances by the latent draw, the continuous noise and one uniform (float64)
    # per row and discrete segment, not one per class.
    used = torch.Generator().manual_seed(9)
    net.generate(1_000, used)
    expected = torch.Generator().manual_seed(9)
    torch.randn((1_000, net.latent_dim), generator=expected)
    torch.randn((1_000, 1), generator=expected)
    torch.rand((1_000, len(LOGITS)), generator=expected, dtype=torch.float64)
    assert torch.equal(torch.rand(8, generator=used), torch.rand(8, generator=expected))


def test_the_compiled_cpu_draw_gives_the_tensor_draws_labels():
    """The CPU's numba passes and the tensor version (CUDA's) draw the same label for every
    row and segment: random logits of every segment size here, over a row count that leaves
    a short last block."""
    net = known_network()
    rows = 3 * SAMPLE_BLOCK_ROWS + 77
    logits = 8.0 * torch.randn((rows, sum(net.head_sizes)), generator=torch.Generator().manual_seed(2))
    compiled = net._draw_labels(logits, torch.Generator().manual_seed(4))
    tensor = net._draw_labels_tensor(logits, torch.Generator().manual_seed(4))
    assert compiled.shape == (rows, len(LOGITS))
    assert torch.equal(compiled, tensor)
    assert len(torch.unique(compiled[:, 3])) > 300  # the wide segment's draws spread over its classes
    other = net._draw_labels(logits, torch.Generator().manual_seed(5))
    assert not torch.equal(compiled, other)


# -- frequency-grouped heads --------------------------------------------------------------------
WIDE_COUNTS = tuple(int(c) for c in np.random.default_rng(3).zipf(1.6, size=300).clip(max=5_000))


def grouped_network(head_logits: np.ndarray | None = None) -> MixedVAE:
    segments = [Segment("x", "x", "continuous"), Segment("few", "few", "discrete", 3),
                Segment("codes", "codes", "discrete", len(WIDE_COUNTS), WIDE_COUNTS)]
    net = MixedVAE(segments, latent_dim=3, hidden_dims=[16])
    net.reset_parameters(torch.Generator().manual_seed(0))
    if head_logits is not None:
        with torch.no_grad():
            net.to_logits.weight.zero_()
            net.to_logits.bias.copy_(torch.as_tensor(head_logits, dtype=torch.float32))
    return net.eval()


def class_probabilities(net: MixedVAE, head_logits: np.ndarray) -> np.ndarray:
    """What a grouped head means: P(class) = softmax(head)[its output] x its share of its group."""
    head = softmax(head_logits[3:])  # the "codes" head, after the 3 logits of "few"
    single, groups = group_classes(WIDE_COUNTS, HEAD_CLASSES, TAIL_GROUPS)
    p = np.zeros(len(WIDE_COUNTS))
    p[single] = head[: len(single)]
    for g, group in enumerate(groups):
        counts = np.array([WIDE_COUNTS[c] for c in group], dtype=np.float64)
        p[group] = head[len(single) + g] * counts / counts.sum()
    return p


def test_a_wide_segment_gets_its_frequent_classes_and_equal_share_tail_groups():
    single, groups = group_classes(WIDE_COUNTS, HEAD_CLASSES, TAIL_GROUPS)
    assert len(single) == HEAD_CLASSES and len(groups) == TAIL_GROUPS
    assert sorted(single + [c for g in groups for c in g]) == list(range(len(WIDE_COUNTS)))  # a partition
    assert min(WIDE_COUNTS[c] for c in single) >= max(WIDE_COUNTS[c] for g in groups for c in g)
    shares = [sum(WIDE_COUNTS[c] for c in g) for g in groups]
    assert max(shares) <= 3 * min(shares)  # roughly equal shares: rare classes pooled
    net = grouped_network()
    assert net.head_sizes == [3, HEAD_CLASSES + TAIL_GROUPS] and net.to_logits.out_features == 3 + 80
    assert net.class_sizes == [3, 300]  # the input (one-hot) layout is unchanged


def test_grouped_draws_pass_a_chi_square_test_against_the_head_times_the_group_shares():
    head_logits = np.random.default_rng(4).normal(0, 0.5, size=3 + HEAD_CLASSES + TAIL_GROUPS)
    net = grouped_network(head_logits)
    labels = net.generate(ROWS, torch.Generator().manual_seed(6))[:, 2].long().numpy()
    p = class_probabilities(net, head_logits)
    counts = np.bincount(labels, minlength=len(p))
    assert len(counts) == len(p)
    assert (ROWS * p >= 5).all()  # chi-square's validity: every class expected at least 5 times
    assert chisquare(counts, ROWS * p).pvalue > 1e-3
    assert chisquare(counts, ROWS * np.roll(p, 1)).pvalue < 1e-6  # a wrong distribution is rejected


def test_the_training_loss_is_the_negative_log_of_the_same_class_probabilities():
    head_logits = np.random.default_rng(5).normal(0, 0.5, size=3 + HEAD_CLASSES + TAIL_GROUPS)
    net = grouped_network(head_logits)
    p = class_probabilities(net, head_logits)
    classes = torch.tensor([0, 5, 77, 299, 150])
    x = torch.zeros((len(classes), 3))
    x[:, 2] = classes.float()
    out = net.decode(torch.zeros((len(classes), 3)))
    nll = net.reconstruction_nll(x, {"logits": out["logits"]})
    few = -np.log(softmax(head_logits[:3])[0])
    assert np.allclose(nll.detach().numpy(), few - np.log(p[classes.numpy()]), rtol=1e-4)


def test_segments_without_counts_keep_one_logit_per_class():
    segments = [Segment("codes", "codes", "discrete", len(WIDE_COUNTS))]  # a model saved before counts
    assert MixedVAE(segments, latent_dim=2, hidden_dims=[8]).to_logits.out_features == len(WIDE_COUNTS)


def test_opacus_computes_per_sample_gradients_of_a_grouped_network():
    from opacus import GradSampleModule

    net = GradSampleModule(grouped_network().train())
    x = torch.zeros((6, 3))
    x[:, 1], x[:, 2] = torch.tensor([0.0, 1, 2, 0, 1, 2]), torch.tensor([0.0, 5, 77, 299, 150, 3])
    net(x, generator=torch.Generator().manual_seed(0)).mean().backward()
    for parameter in net.parameters():
        assert parameter.grad_sample.shape == (6, *parameter.shape)


def test_a_grouped_head_starts_at_the_marginals_of_its_groups():
    net = grouped_network()
    rng = np.random.default_rng(7)
    p = np.asarray(WIDE_COUNTS, dtype=np.float64) / sum(WIDE_COUNTS)
    x = torch.zeros((5_000, 3))
    x[:, 0] = torch.as_tensor(rng.normal(size=5_000), dtype=torch.float32)
    x[:, 2] = torch.as_tensor(rng.choice(len(p), size=5_000, p=p), dtype=torch.float32)
    net.start_at_marginals(x)
    heads = net.head_label[x[:, 2].long() + net.class_offsets[1]]
    counts = torch.bincount(heads, minlength=HEAD_CLASSES + TAIL_GROUPS).float() + 0.5
    assert torch.allclose(net.to_logits.bias[3:], torch.log(counts / counts.sum()))
