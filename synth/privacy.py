"""Differential privacy end to end: what is released, under which mechanism, from which noise.

With ``privacy.epsilon`` set, the budget (epsilon, delta) is split by basic composition:

* ``COUNT_SHARE`` (2%) of epsilon releases the **number of privacy units** with the
  Laplace mechanism. Everything that needs "n" is computed from that noisy count, never
  from the exact one: the default delta, the batch size and the sampling rate.
* ``transform_share`` of it learns what the transforms need - ranges, GMM modes,
  category sets, null rates, rows per patient - through DP mechanisms
  (:mod:`synth.dp_domain`), so rare real values never reach the model folder;
* the rest trains the network(s) with DP-SGD: ``PrivacyEngine.make_private_with_epsilon``
  wraps an ordinary model, optimizer and Poisson data loader; per-unit gradients are
  clipped to ``max_grad_norm`` (Opacus's ghost clipping: per-unit norms without
  materialising per-unit gradients, 30x faster than hooks, same guarantee), Gaussian
  noise is added, and the noise is chosen so the planned epochs spend the run's share.
  The patient-level synthesizer trains two networks (patients, rows) and splits the
  training share 30/70. An empty Poisson batch is still a noised, counted step.

The reported epsilon is the sum of what every part spent, at most the target; training
also stops before a step would spend more than ``max_epsilon`` (default: epsilon).

**Delta.** ``privacy.delta`` when given; otherwise ``1 / (10 n_up)`` where ``n_up`` is the
noisy count plus ``ln(1 / (2 beta)) / epsilon_count`` (beta = ``COUNT_FAILURE``), an upper
bound on n except with probability beta. Because delta is then a function of a DP
release, the guarantee is (epsilon, delta_bar) with delta_bar the expectation of delta
over the count's noise: the count is pure epsilon_count-DP, and for every count value the
rest is (epsilon - epsilon_count, delta(count))-DP, so P[M(D) in S] <= e^epsilon
P[M(D') in S] + E[delta]; and E[delta] <= 1/(10 n) + beta/10, since n_up >= n except
with probability beta and n_up >= 1 always. ``privacy.json`` reports the delta the
mechanisms ran with and states this bound (``delta_rule``).

**Noise.** Every draw that touches real data under DP - Laplace, exponential-mechanism
(Gumbel) and uniform draws of :mod:`synth.dp_domain`, the replacement of unreleased
categories, the GMM component each real value is encoded with, the contribution-bound
subset of a patient's rows, Poisson sampling, the VAE's reparameterisation noise and
DP-SGD's Gaussian noise - comes from generators keyed by the operating system's CSPRNG
(:mod:`secrets`): Philox (NumPy) and the Mersenne Twister (torch), each keyed afresh
per fit and never stored. The config seed, which is saved in ``config.json``, keys none
of them, so holding the model folder does not let anyone replay and subtract the noise.
DP-SGD's noise uses Opacus's floating-point-safe sum of Gaussians (``secure_mode``'s
noise; Opacus's own ``secure_mode=True`` needs ``torchcsprng``, which has no build for
this torch). The price: **a DP run is not bit-reproducible**; two runs with one seed
give different weights. What only post-processes released values stays seeded and
reproducible: the network's initial weights, the sample RDT is fitted on (drawn from the
released summaries), and every synthetic row sampled from a saved model.

* **Unit of privacy:** the patient when the extract has an entity key (all of a
  patient's rows are in or out of a batch together, and gradients are clipped per
  patient); otherwise the row. The row model refuses to train with DP on data with an
  entity key, where a row-level guarantee would be a silent downgrade. For related tables the
  patient is a root row and every row under it in every table, and one DP-SGD run clips each
  patient's gradient over all tables' networks together (:mod:`synth.relational.dp`).
* **Not covered** (decided from the data unless declared in the config): column kinds,
  which columns are patient-level, which dates follow which and their time units; the
  real/holdout split used for evaluation. Declare them in the config to cover them too.
  On an extract with more rows than ``model.max_training_rows`` the guarantee is for the
  seeded subsample trained on (which units it keeps depends on the others).
  Validation-based early stopping is off under DP: choosing the stopping epoch from
  real data would be a release the accountant does not see.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import secrets
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from synth.config import PrivacyOptions
from synth.errors import PrivacyError
from synth.io.atomic import write_json_atomic

if TYPE_CHECKING:
    from opacus.data_loader import DPDataLoader

COVERS = [
    "network weights (all gradient updates, DP-SGD)",
    "the number of privacy units (Laplace), from which delta and the sampling rate are computed",
    "the transforms' domain: numeric/date ranges, GMM modes, category sets, null rates, rows per patient",
]
NOT_COVERED = [
    "column kinds, patient-level columns, date links and time units, unless declared in the config",
    "which columns are direct identifiers and whether each is constant within a patient (decided from the "
    "column names and a sample of values unless declared with columns.<name>.pii); no identifier value and "
    "no writing style learned from the values is kept, and fakes never depend on the real values",
    "the real/holdout split used for evaluation (nothing of the holdout is released)",
    "above model.max_training_rows: which units the seeded training subsample keeps (its cut-off depends on "
    "the other units); the guarantee is for that subsample",
]
NOISE_SOURCE = (
    "generators keyed from the OS CSPRNG (secrets) for every fit, never from the config seed: "
    "a DP run is not bit-reproducible"
)
PATIENT_SHARE = 0.3  # of the training budget, for the patient-level network; the row network gets the rest
COUNT_SHARE = 0.02  # of epsilon, for the noisy number of units
DELTA_FACTOR = 10  # default delta = 1 / (DELTA_FACTOR * n_up)
COUNT_FAILURE = 1e-9  # beta: the chance that n_up is below the true count
RELEASES_JSON = "releases.json"


# -- secure randomness ------------------------------------------------------------------------
def secure_numpy() -> np.random.Generator:
    """A NumPy generator (Philox) keyed by 128 bits from the OS CSPRNG; nothing stored can replay it."""
    return np.random.Generator(np.random.Philox(key=secrets.randbits(128)))


def secure_torch(device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator seeded by 63 bits from the OS CSPRNG; nothing stored can replay it."""
    return torch.Generator(device=device).manual_seed(secrets.randbits(63))


# -- what a DP fit reports -----------------------------------------------------------------------
@dataclass
class PrivacyReport:
    """What a DP run promised and spent; ``None`` fields when DP is off.

    ``parts`` lists every release: what it is, its mechanism, and the (epsilon, delta)
    it spent; ``epsilon_spent`` and ``delta`` are their sums (basic composition).
    """

    enabled: bool
    epsilon_target: float | None = None
    epsilon_spent: float | None = None
    delta: float | None = None
    max_grad_norm: float | None = None
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    accountant: str | None = None
    unit: str = "row"
    parts: dict = field(default_factory=dict)
    covers: list[str] = field(default_factory=lambda: list(COVERS))
    not_covered: list[str] = field(default_factory=lambda: list(NOT_COVERED))
    epsilon_cap: float | None = None
    stopped_at_cap: bool = False
    units_estimate: float | None = None
    delta_rule: str | None = None
    noise_source: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class UnitCount:
    """The number of privacy units released with the Laplace mechanism (sensitivity 1).

    ``estimate`` = n + Laplace(1/epsilon); ``upper`` adds ``ln(1/(2 beta))/epsilon`` so it
    is at least n except with probability beta (``COUNT_FAILURE``).
    """

    estimate: float
    epsilon: float

    @classmethod
    def release(cls, n: int, epsilon: float, rng: np.random.Generator) -> UnitCount:
        return cls(estimate=float(n + rng.laplace(0.0, 1.0 / epsilon)), epsilon=epsilon)

    @property
    def upper(self) -> float:
        return max(self.estimate + math.log(1 / (2 * COUNT_FAILURE)) / self.epsilon, 1.0)

    @property
    def planning(self) -> float:
        """The count batch sizes and sampling rates are computed from (at least 1)."""
        return max(self.estimate, 1.0)


@dataclass(frozen=True)
class TrainingBudget:
    """What one DP-SGD run may spend, and the public numbers it is planned from.

    Attributes:
        epsilon: the noise is chosen so the configured epochs spend this.
        delta: the run's delta.
        cap: the run never spends more than this (its share of ``max_epsilon``).
        units: the DP estimate of the number of units; sets batch size and sampling rate.
        max_grad_norm: per-unit clipping norm.
        accountant: ``prv`` or ``rdp``.
    """

    epsilon: float
    delta: float
    cap: float
    units: float
    max_grad_norm: float
    accountant: str


@dataclass(frozen=True)
class BudgetPlan:
    """How (epsilon, delta) is split between the count, the transforms and each training run."""

    epsilon: float
    cap: float
    delta: float
    delta_rule: str
    count: UnitCount
    transforms: tuple[float, float]
    trainings: dict[str, TrainingBudget]


def plan_budget(options: PrivacyOptions, count: UnitCount, training_shares: dict[str, float]) -> BudgetPlan:
    """Split the budget: the count, ``transform_share`` to the transforms, the rest by ``training_shares``."""
    if options.delta is not None:
        delta, rule = options.delta, "privacy.delta (given)"
    else:
        delta = 1.0 / (DELTA_FACTOR * count.upper)
        rule = (
            f"1/({DELTA_FACTOR} n_up), n_up = {count.upper:.0f}: the DP count plus ln(1/(2 beta))/epsilon_count, "
            f"at least the true number of units n except with probability beta = {COUNT_FAILURE:g}. As delta "
            f"follows a DP release, the guarantee's delta is its expectation over the count's noise: at most "
            f"1/({DELTA_FACTOR} n) + beta/{DELTA_FACTOR}"
        )
    share = options.transform_share
    epsilon_transforms = options.epsilon * share
    spent_before_training = count.epsilon + epsilon_transforms
    epsilon_train = options.epsilon - spent_before_training
    cap = options.max_epsilon if options.max_epsilon is not None else options.epsilon
    cap_train = cap - spent_before_training
    if cap_train <= 0:
        raise PrivacyError(
            f"privacy.max_epsilon={cap} leaves nothing for training: the unit count and the transforms "
            f"spend {spent_before_training:.3g} of epsilon={options.epsilon} first"
        )
    delta_train = delta * (1 - share)
    total = sum(training_shares.values())
    trainings = {
        name: TrainingBudget(
            epsilon=epsilon_train * w / total,
            delta=delta_train * w / total,
            cap=cap_train * w / total,
            units=count.planning,
            max_grad_norm=options.max_grad_norm,
            accountant=options.accountant,
        )
        for name, w in training_shares.items()
    }
    return BudgetPlan(options.epsilon, cap, delta, rule, count, (epsilon_transforms, delta * share), trainings)


def combine(plan: BudgetPlan, reports: dict[str, PrivacyReport], unit: str, domains: dict[str, str]) -> PrivacyReport:
    """One report for the whole fit: every release, its mechanism and what it spent, and their sums.

    Args:
        plan: the budget split.
        reports: per network, its DP-SGD report.
        unit: "patient" or "row".
        domains: the DP domains the transforms' budget released (name -> its file in the
            model folder), named in the report.
    """
    parts = {
        "count": {
            "releases": f"the number of {unit}s (units_estimate)",
            "mechanism": "Laplace, sensitivity 1",
            "epsilon": plan.count.epsilon,
            "delta": 0.0,
        },
        "transforms": {
            "releases": "per column: bounds, histogram, category set and shares, null share ("
            + ", ".join(domains.values())
            + ")",
            "mechanism": "exponential mechanism (quantiles), Laplace (histograms), Laplace with a threshold (categories)",
            "epsilon": plan.transforms[0],
            "delta": plan.transforms[1],
        },
    }
    for name, report in reports.items():
        parts[name] = {
            "releases": f"the {name} network's weights (model.pt)",
            "mechanism": f"DP-SGD: Poisson sampling, per-{unit} clipping, Gaussian noise ({report.accountant} accountant)",
            "epsilon": report.epsilon_spent,
            "delta": report.delta,
            "noise_multiplier": report.noise_multiplier,
            "sample_rate": report.sample_rate,
            "steps": report.steps,
            "epsilon_cap": report.epsilon_cap,
            "stopped_at_cap": report.stopped_at_cap,
        }
    first = next(iter(reports.values()))
    return PrivacyReport(
        enabled=True,
        epsilon_target=plan.epsilon,
        epsilon_spent=sum(p["epsilon"] for p in parts.values()),
        delta=sum(p["delta"] for p in parts.values()),
        max_grad_norm=first.max_grad_norm,
        noise_multiplier=first.noise_multiplier,
        sample_rate=first.sample_rate,
        steps=sum(r.steps for r in reports.values()),
        accountant=first.accountant,
        unit=unit,
        parts=parts,
        epsilon_cap=plan.cap,
        stopped_at_cap=any(r.stopped_at_cap for r in reports.values()),
        units_estimate=plan.count.estimate,
        delta_rule=plan.delta_rule,
        noise_source=NOISE_SOURCE,
    )


class Releases:
    """The DP releases of one fit, kept in its checkpoint folder.

    A resumed fit reuses what it released before instead of drawing (and paying for) it
    again. ``fingerprint`` names the data and settings; a folder written for others is
    refused rather than mixed in.

    Args:
        folder: the fit's checkpoint folder; ``None`` keeps releases in memory only.
        fingerprint: the data and settings of this fit (see ``training.fit_fingerprint``).
    """

    def __init__(self, folder: str | Path | None, fingerprint: str):
        self.path = Path(folder) / RELEASES_JSON if folder is not None else None
        self.fingerprint = fingerprint
        self.saved: dict[str, dict] = {}
        if self.path is not None and self.path.is_file():
            data = json.loads(self.path.read_text())
            if data.get("fingerprint") != fingerprint:
                raise PrivacyError(
                    f"{self.path} holds DP releases of other data or settings; delete its folder to train "
                    "from scratch (that spends epsilon again)"
                )
            self.saved = data["releases"]

    def get(self, name: str, release: Callable[[], dict]) -> dict:
        """The release ``name``: the saved one, or ``release()`` saved before it is used."""
        if name not in self.saved:
            self.saved[name] = release()
            if self.path is not None:
                write_json_atomic(self.path, {"fingerprint": self.fingerprint, "releases": self.saved})
        return self.saved[name]

    def identity(self) -> str:
        """The fingerprint with every release made so far: what a training checkpoint was written for."""
        text = json.dumps(self.saved, sort_keys=True, default=str)
        return hashlib.sha256((self.fingerprint + text).encode()).hexdigest()

    def unit_count(self, n: int, options: PrivacyOptions) -> UnitCount:
        released = self.get("units", lambda: asdict(UnitCount.release(n, COUNT_SHARE * options.epsilon, secure_numpy())))
        return UnitCount(**released)


# -- DP-SGD through Opacus ------------------------------------------------------------------------
class MeanOfUnits(torch.nn.Module):
    """The batch loss from per-unit losses; Opacus sets ``reduction`` to "none" to get them back."""

    reduction = "mean"

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        if self.reduction == "none":
            return losses
        return losses.sum() if self.reduction == "sum" else losses.mean()


def as_batch(batch):
    """Batches come whole from the dataset's ``__getitems__``: nothing to collate."""
    return batch


class PrivateTraining:
    """Opacus wiring for one training run.

    The sampling rate is ``1/k``, ``k = round(units / batch_size)`` steps per epoch, with
    ``units`` the DP count (the exact count would be a release), and the sum of clipped
    gradients is divided by that public expected batch size, not by one computed from
    the exact count as Opacus would.

    Args:
        budget: target and cap epsilon, delta, clipping norm, accountant, DP count of units.
    """

    def __init__(self, budget: TrainingBudget):
        self.budget = budget
        from opacus import PrivacyEngine  # here, not at the top: sampling never loads Opacus (~1 s)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "secure RNG turned off": our generators are keyed from secrets
            self.engine = PrivacyEngine(accountant=budget.accountant)

    def steps_per_epoch(self, batch_size: int) -> int:
        return max(1, round(self.budget.units / batch_size))

    def wrap(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        dataset: Dataset,
        batch_size: int,
        epochs: int,
        noise_generator: torch.Generator,
        sampling_generator: torch.Generator,
    ) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.nn.Module, DPDataLoader]:
        """Return the private versions of model, optimizer, loss and a Poisson loader over ``dataset``.

        The returned loss takes the model's per-unit losses and performs Opacus's
        two-pass ghost-clipping backward.
        """
        from opacus.data_loader import DPDataLoader

        steps = self.steps_per_epoch(batch_size)
        loader = DPDataLoader(
            dataset,
            sample_rate=1 / steps,
            collate_fn=as_batch,
            generator=sampling_generator,
            pin_memory=torch.cuda.is_available(),
        )
        loader.batch_sampler.steps = steps  # int(1 / (1/k)) is k - 1 for some k; the accountant uses 1/k
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model, optimizer, criterion, loader = self.engine.make_private_with_epsilon(
                    module=model,
                    optimizer=optimizer,
                    criterion=MeanOfUnits(),
                    data_loader=loader,
                    target_epsilon=self.budget.epsilon,
                    target_delta=self.budget.delta,
                    epochs=epochs,
                    max_grad_norm=self.budget.max_grad_norm,
                    loss_reduction="mean",  # the loss is a mean over the batch (see network.py)
                    poisson_sampling=False,  # the loader is Opacus's Poisson loader already, at our rate
                    noise_generator=noise_generator,
                    grad_sample_mode="ghost",
                )
        except ValueError as exc:
            raise PrivacyError(
                f"cannot reach epsilon={self.budget.epsilon:.3g} with delta={self.budget.delta:.3g} "
                f"in {epochs} epochs: {exc}"
            ) from None
        optimizer.expected_batch_size = self.budget.units / steps
        optimizer.secure_mode = True  # Opacus's floating-point-safe noise (a sum of Gaussians), from our generator
        self.steps = steps
        self.noise_multiplier = float(optimizer.noise_multiplier)
        return model, optimizer, criterion, loader

    # -- the accountant ----------------------------------------------------------------------
    def spent(self, extra_steps: int = 0) -> float:
        """Epsilon spent so far, or after ``extra_steps`` more steps."""
        accountant = self.engine.accountant
        if extra_steps:
            accountant = copy.deepcopy(accountant)
            accountant.history.append((self.noise_multiplier, 1 / self.steps, extra_steps))
        if not accountant.history:
            return 0.0
        return float(accountant.get_epsilon(self.budget.delta))

    def steps_within_cap(self, steps: int) -> int:
        """How many of the next ``steps`` steps keep the epsilon spent within the cap."""
        if self.spent(steps) <= self.budget.cap:
            return steps
        low, high = 0, steps  # spent(low) <= cap < spent(high)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if self.spent(middle) <= self.budget.cap else (low, middle)
        return low

    def count_steps(self, steps: int) -> None:
        """Charge ``steps`` steps that ran but whose effect was lost (an interrupted epoch)."""
        for _ in range(steps):
            self.engine.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=1 / self.steps)

    def report(self, stopped_at_cap: bool) -> PrivacyReport:
        """The accountant's view after training."""
        history = self.engine.accountant.history
        return PrivacyReport(
            enabled=True,
            epsilon_target=self.budget.epsilon,
            epsilon_spent=self.spent(),
            delta=self.budget.delta,
            max_grad_norm=self.budget.max_grad_norm,
            noise_multiplier=self.noise_multiplier,
            sample_rate=1 / self.steps,
            steps=int(sum(h[2] for h in history)),
            accountant=self.budget.accountant,
            epsilon_cap=self.budget.cap,
            stopped_at_cap=stopped_at_cap,
        )
