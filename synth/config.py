"""The pipeline's configuration: one pydantic model, validated at the edge.

A YAML file overrides what is inferred from the data. Everything else in the
library takes these typed objects, never raw dicts. Unknown keys are errors, so a
typo never becomes a silently ignored setting.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synth.errors import ConfigError
from synth.io.uri import is_remote, is_sql
from synth.pii.categories import PiiCategory, PiiHandling, check_handling
from synth.relational.schema import RelationalConfig, TableSpec


class ColumnKind(str, Enum):
    """What a column means, which decides how it is modelled."""

    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    IDENTIFIER = "identifier"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_TABLE_NAME = re.compile(r"^[A-Za-z_][\w-]*$")


class PiiOverride(_Strict):
    """What the user says about a column as a direct identifier; unset fields are detected or defaulted.

    ``pii: name`` is shorthand for ``pii: {category: name}``; ``pii: none`` says the column
    is not a direct identifier, whatever detection finds.
    """

    category: PiiCategory | Literal["none"] | None = Field(
        default=None, description="name, nhs_number, id, postcode, phone, email, date_of_birth, free_text, or none"
    )
    handling: PiiHandling | None = Field(
        default=None, description="drop, fake or generalise; unset: the category's default (docs/direct-identifiers.md)"
    )
    level: Literal["month", "year", "outward", "area"] | None = Field(
        default=None, description="what generalise keeps: date of birth month|year, postcode outward|area"
    )

    @model_validator(mode="after")
    def _fits_its_category(self) -> PiiOverride:
        if self.category == "none":
            if self.handling is not None or self.level is not None:
                raise ValueError("pii category 'none' (not a direct identifier) takes no handling or level")
        elif self.category is not None:
            problem = check_handling(self.category, self.handling, self.level)
            if problem:
                raise ValueError(problem)
        return self


class ColumnOverride(_Strict):
    """What the user says about one column; unset fields are inferred."""

    kind: ColumnKind | None = None
    datetime_format: str | None = Field(
        default=None, description="strptime format for text datetimes in CSV sources"
    )
    pii: PiiOverride | None = Field(
        default=None, description="direct identifier: a category, none, or {category, handling, level}"
    )

    @field_validator("pii", mode="before")
    @classmethod
    def _category_shorthand(cls, value: Any) -> Any:
        return {"category": value} if isinstance(value, str) else value

    public_values: list[Any] | None = Field(
        default=None,
        description="with DP: values of a categorical column known without looking at the data (a published code "
        "list); they are released with noisy shares and no threshold, other values only above the DP threshold",
    )
    public_codes: Literal["icd9-cm-3", "icd10-3"] | None = Field(
        default=None,
        description="with DP: the column holds codes of this published code system (synth/codes.py); its categories "
        "are public values, added to any public_values listed",
    )
    public_range: tuple[Any, Any] | None = Field(
        default=None,
        description="with DP: [low, high] of a numerical or datetime column known without looking at the data; "
        "used instead of DP quantiles (datetimes as ISO 8601 text)",
    )


class SourceOptions(_Strict):
    """How to read the extract."""

    format: Literal["auto", "csv", "parquet"] = "auto"
    na_values: list[str] = Field(default_factory=list, description="extra CSV strings read as missing")
    separator: str = Field(
        default="auto",
        description="CSV column separator (one character); auto: the one of , ; tab | that splits every one of the "
        "first lines alike (a separator other than a comma is logged)",
    )
    encoding: Literal["utf8", "utf8-lossy", "cp1252", "latin-1", "utf-16"] = Field(
        default="utf8",
        description="CSV text encoding; utf8-lossy replaces bytes that are not UTF-8; cp1252, latin-1 and utf-16 "
        "files are re-encoded to UTF-8 as they are read",
    )
    row_index: Literal["drop", "keep"] = Field(
        default="drop",
        description="an unnamed column of row numbers (the index pandas' to_csv and R's write.csv write) is dropped; "
        "keep: model it, as unnamed_<position>",
    )
    sql_url_env: str = Field(
        default="SYNTH_SQL_URL", description="environment variable holding the SQLAlchemy URL of `sql:` sources and sinks"
    )

    @field_validator("separator")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if value != "auto" and len(value) != 1:
            raise ValueError(f"the separator must be one character or auto, got {value!r}")
        return value


class TransformOptions(_Strict):
    """RDT set-up: mode-specific normalisation and the bounded fit sample."""

    max_clusters: Annotated[int, Field(ge=1, le=50)] = 10
    weight_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.005
    fit_sample_rows: Annotated[int, Field(ge=100)] = 50_000
    max_categories: Annotated[int, Field(ge=2)] = 1_000


class GanOptions(_Strict):
    """WGAN-GP settings of ``model.name: wgan-gp`` (see :mod:`synth.models.gan`)."""

    critic_steps: Annotated[int, Field(ge=1)] = Field(default=5, description="critic updates per generator update")
    penalty_weight: Annotated[float, Field(gt=0)] = Field(
        default=10.0, description="weight of the gradient penalty (lambda in Gulrajani et al. 2017)"
    )
    temperature: Annotated[float, Field(gt=0)] = Field(
        default=0.2, description="Gumbel-softmax temperature of the categorical heads while training"
    )
    learning_rate: Annotated[float, Field(gt=0)] = Field(default=2e-4, description="Adam, betas (0.5, 0.9)")
    pac: Annotated[int, Field(ge=1)] = Field(
        default=10, description="rows the critic judges together (PacGAN, Lin et al. 2018): curbs mode collapse"
    )
    epochs: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="the GAN's epochs (default: model.epochs); each costs critic_steps critic updates per "
        "generator update, so a comparison may give it fewer than the VAE",
    )


class ModelOptions(_Strict):
    """The synthesizer and its training loop (the VAE's settings unless a field says otherwise)."""

    name: Literal["auto", "vae", "patient-vae", "independent", "gaussian-copula", "pca", "smote", "wgan-gp"] = Field(
        default="auto",
        description="auto: patient-vae when the extract has an entity key, else vae; the others (baselines and "
        "the wgan-gp GAN) have no differential privacy (see synth/models)",
    )
    latent_dim: Annotated[int, Field(ge=1)] = 32
    hidden_dims: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [256, 256])
    epochs: Annotated[int, Field(ge=1)] = Field(default=300, description="maximum epochs; early stopping ends most runs sooner")
    batch_size: Annotated[int, Field(ge=2)] = 512
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 1e-5
    validation_fraction: Annotated[float, Field(ge=0, lt=0.5)] = 0.1
    patience: Annotated[int, Field(ge=1)] = 20
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: bool = Field(default=True, description="bf16 autocast on CUDA (never under DP)")
    int8_sampling: bool = Field(
        default=True,
        description="on the CPU, draw rows with the decoder's wide layers in int8: about twice the rows/s at the "
        "same quality (synth/models/int8.py)",
    )
    max_training_rows: Annotated[int, Field(ge=100)] = Field(
        default=1_000_000, description="train on at most this many rows: a seeded sample of the clean training split"
    )
    gan: GanOptions = Field(default_factory=GanOptions, description="used by wgan-gp only")

    @property
    def planned_epochs(self) -> int:
        """The epochs the chosen model trains for at most (the GAN may have its own)."""
        return (self.gan.epochs or self.epochs) if self.name == "wgan-gp" else self.epochs


class PrivacyOptions(_Strict):
    """Differential privacy through Opacus (off unless ``epsilon`` is set)."""

    epsilon: Annotated[float, Field(gt=0)] | None = None
    delta: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        default=None,
        description="defaults to 1/(10 n), n a DP upper bound on the number of privacy units (see synth/privacy.py)",
    )
    max_epsilon: Annotated[float, Field(gt=0)] | None = Field(
        default=None,
        description="hard cap on the epsilon spent in all (default: epsilon); training stops before a step would pass it",
    )
    max_grad_norm: Annotated[float, Field(gt=0)] = 1.0
    accountant: Literal["prv", "rdp"] = Field(
        default="prv", description="Opacus accountant (gdp is not offered: its CLT approximation under-reports epsilon)"
    )
    transform_share: Annotated[float, Field(gt=0, lt=0.9)] = Field(
        default=0.1, description="share of epsilon (and delta) spent learning the transforms' domain with DP"
    )

    @property
    def enabled(self) -> bool:
        return self.epsilon is not None


class SamplingOptions(_Strict):
    """Chunked generation straight to Parquet parts."""

    rows: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="rows to generate; defaults to the extract's row count"
    )
    chunk_rows: Annotated[int, Field(ge=1)] = 100_000
    workers: Annotated[int, Field(ge=1)] = Field(
        default=1,
        description="local worker processes writing chunks at once (each loads the model once, one torch "
        "thread each); 1: in the run's own process. The bytes are the same for any number",
    )
    dask_address: str | None = Field(
        default=None,
        description="scheduler address of an existing Dask cluster to map the chunks over instead (e.g. the "
        "preprocess one); its workers must read the model folder and the output folder",
    )


class PreprocessOptions(_Strict):
    """Parallel preprocessing: the extract is cut into partitions mapped over Dask workers."""

    partition_rows: Annotated[int, Field(ge=1_000)] = Field(
        default=500_000, description="rows per partition (Parquet row groups are kept whole)"
    )
    workers: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="worker processes of the local Dask cluster (default: CPU count, at most 8)"
    )
    dask_address: str | None = Field(
        default=None, description="scheduler address of an existing Dask cluster (e.g. tcp://dask:8786)"
    )


class ValidationOptions(_Strict):
    """The Great Expectations gate run on the extract before training."""

    suite: str | None = Field(
        default=None,
        description="GX expectation suite JSON merged over the schema's suite; a relative path is read from the "
        "config file's folder and may not leave it",
    )
    partitions: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="validate this many partitions (a seeded sample); all when unset"
    )
    null_tolerance: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.05, description="allowed rise of a column's null fraction over the profiled one"
    )
    value_tolerance: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.001, description="allowed share of values outside the profiled categories or ranges"
    )
    range_margin: Annotated[float, Field(ge=0)] = Field(
        default=0.1, description="numeric ranges are widened by this share of their span"
    )
    min_rows: Annotated[int, Field(ge=0)] = 1
    max_rows: Annotated[int, Field(ge=1)] | None = None


class EvaluationOptions(_Strict):
    """Evaluation of the synthetic data against the real extract."""

    sample_rows: Annotated[int, Field(ge=100)] = 20_000
    holdout_fraction: Annotated[float, Field(ge=0, le=0.5)] = Field(
        default=0.2, description="share of patients (or rows) kept from training, for privacy and utility baselines"
    )
    holdout_rows: Annotated[int, Field(ge=100)] = Field(
        default=200_000,
        description="holdout rows the evaluation reads: a seeded sample of whole patients when the holdout is larger "
        "(the training rows are the model's own sample, model.max_training_rows)",
    )
    target: str | None = Field(default=None, description="column predicted by the TSTR/TRTR utility models")
    sensitive: list[str] = Field(default_factory=list, description="columns an attribute-inference attacker tries to learn")
    protected: list[str] = Field(default_factory=list, description="protected attributes for the fairness check")
    profile: bool = Field(default=False, description="also write profile.html (needs the optional 'profile' extra)")
    suppress_below: Annotated[int, Field(ge=1)] = Field(
        default=10, description="report bins, categories and groups with fewer real rows than this are not shown"
    )
    distance_rows: Annotated[int, Field(ge=10)] = Field(
        default=10_000, description="synthetic and holdout rows whose closest-record distance to every training row is taken"
    )
    workers: Annotated[int, Field(ge=1)] = Field(
        default=1,
        description="processes sharing the closest-record distances and the attacks' nearest-neighbour searches by "
        "blocks of rows (the same numbers for any count; each costs a process start, worth it from about "
        "100,000 distance_rows)",
    )
    propensity_rows: Annotated[int, Field(ge=100)] = Field(default=20_000, description="rows per side for pMSE")
    attack_rows: Annotated[int, Field(ge=10)] = Field(
        default=5_000, description="members and non-members each for the privacy attacks"
    )
    attack_reference_rows: Annotated[int, Field(ge=10)] = Field(
        default=100_000, description="synthetic rows the privacy attacks search"
    )
    utility_rows: Annotated[int, Field(ge=100)] = Field(
        default=50_000, description="training rows for each TSTR/TRTR model"
    )


class GateOptions(_Strict):
    """The release gate: synthetic data reach the release folder only if every check passes.

    Each threshold's default is the strictest the checks support; a looser one, or
    ``enforce: false``, needs a ``reason``, which the verdict, the report, metrics.json and
    manifest.json repeat.
    """

    sampling_sigmas: Annotated[float, Field(ge=1, le=10)] = Field(
        default=3.0,
        description="sampling-noise allowance, in standard errors, of the checks that compare a synthetic share "
        "with the holdout's (exact copies, closeness tail, holdout overlap); 3 fails a faithful generator about "
        "once in 740 runs per check",
    )
    dcr_tolerance: Annotated[float, Field(ge=0, lt=1)] = Field(
        default=0.1,
        description="fail if median synthetic DCR < median holdout DCR x (1 - tolerance)",
    )
    dcr_quantile: Annotated[float, Field(gt=0, le=0.5)] = Field(
        default=0.05,
        description="closeness tail: the share of synthetic rows at most as far from a training row as this "
        "quantile of the holdout's distances may exceed the holdout's own share by sampling noise only",
    )
    max_mia_auc: Annotated[float, Field(ge=0.5, le=1)] = Field(
        default=0.6, description="membership-inference AUC, two-sided (max of AUC and 1 - AUC), rows and patients"
    )
    min_quality: Annotated[float, Field(ge=0, le=1)] = Field(default=0.7, description="SDMetrics quality score")
    enforce: bool = Field(
        default=True,
        description="false: report the verdict but release whatever it says (only for data that is already public; "
        "needs a reason)",
    )
    reason: str | None = Field(
        default=None,
        description="why the gate is not enforced or a threshold is looser than its default (required then)",
    )

    def relaxed(self) -> list[str]:
        """The settings looser than their defaults, as ``"name value (default d)"``."""
        defaults = GateOptions.model_fields
        looser = []
        for name, wider in _LOOSER.items():
            value, default = getattr(self, name), defaults[name].default
            if wider(value, default):
                looser.append(f"{name} {value:g} (default {default:g})")
        return looser

    @model_validator(mode="after")
    def _overrides_need_a_reason(self) -> GateOptions:
        if self.reason is not None and not self.reason.strip():
            raise ValueError("reason is empty: say why the gate is relaxed, or remove reason")
        overrides = (["enforce false"] if not self.enforce else []) + self.relaxed()
        if overrides and self.reason is None:
            raise ValueError(
                f"{', '.join(overrides)} relaxes the release gate: add gate.reason saying why "
                "(it is printed in the verdict, the report, metrics.json and manifest.json)"
            )
        return self


#: How each gate threshold becomes looser than its default.
_LOOSER = {
    "sampling_sigmas": lambda value, default: value > default,
    "dcr_tolerance": lambda value, default: value > default,
    "dcr_quantile": lambda value, default: value > default,  # a wider tail allows more noise (sqrt(q(1-q)))
    "max_mia_auc": lambda value, default: value > default,
    "min_quality": lambda value, default: value < default,
}


class PiiOptions(_Strict):
    """Direct identifiers: how fake values are made (detection and handling: ``columns.<name>.pii``)."""

    locale: str = Field(
        default="en_GB", description="Faker locale of fake names; phone numbers follow its country (GB, US...)"
    )

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        from faker.config import AVAILABLE_LOCALES

        if value not in AVAILABLE_LOCALES:
            raise ValueError(f"unknown Faker locale {value!r} (e.g. en_GB, en_US, fr_FR)")
        return value


class EntityOptions(_Strict):
    """Patient-aware modelling when the extract has an entity key."""

    static: list[str] | None = Field(
        default=None, description="patient-level columns; default: those constant within every patient"
    )
    order_threshold: Annotated[float, Field(gt=0.5, le=1)] = Field(
        default=0.99, description="a date column follows another when it does in this share of real rows"
    )
    max_rows_per_entity: Annotated[int, Field(ge=1)] = Field(
        default=64, description="with DP: rows one patient contributes to the row model (contribution bound)"
    )


class InequalityConstraint(_Strict):
    """``low <= high`` (``<`` when strict) within a row; dates: enforced by construction."""

    type: Literal["inequality"]
    low: str
    high: str
    strict: bool = False


class RangeConstraint(_Strict):
    """``min <= column <= max`` (either bound may be omitted); enforced by rejection."""

    type: Literal["range"]
    column: str
    min: float | None = None
    max: float | None = None


class CombinationConstraint(_Strict):
    """Value combinations of ``columns``: only ``allowed`` ones, or none of ``forbidden``; by rejection."""

    type: Literal["combination"]
    columns: list[str] = Field(min_length=2)
    allowed: list[list[Any]] | None = None
    forbidden: list[list[Any]] | None = None

    @model_validator(mode="after")
    def _one_list(self) -> CombinationConstraint:
        if (self.allowed is None) == (self.forbidden is None):
            raise ValueError("give exactly one of allowed or forbidden")
        for combo in self.allowed or self.forbidden or []:
            if len(combo) != len(self.columns):
                raise ValueError(f"combination {combo} does not have one value per column {self.columns}")
        return self


class AgeConstraint(_Strict):
    """``column`` = whole years from ``birth`` to ``at`` (capped at ``top_code``); derived by construction."""

    type: Literal["age"]
    column: str
    birth: str
    at: str
    top_code: int | None = None


Constraint = Annotated[
    InequalityConstraint | RangeConstraint | CombinationConstraint | AgeConstraint, Field(discriminator="type")
]


class PipelineConfig(_Strict):
    """Everything a run needs besides the source path and the output folder."""

    seed: Annotated[int, Field(ge=0)] = 0
    source: SourceOptions = Field(default_factory=SourceOptions)
    entity_key: str | None = None
    columns: dict[str, ColumnOverride] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)
    transforms: TransformOptions = Field(default_factory=TransformOptions)
    model: ModelOptions = Field(default_factory=ModelOptions)
    privacy: PrivacyOptions = Field(default_factory=PrivacyOptions)
    sampling: SamplingOptions = Field(default_factory=SamplingOptions)
    evaluation: EvaluationOptions = Field(default_factory=EvaluationOptions)
    gate: GateOptions = Field(default_factory=GateOptions)
    entity: EntityOptions = Field(default_factory=EntityOptions)
    pii: PiiOptions = Field(default_factory=PiiOptions)
    constraints: list[Constraint] = Field(default_factory=list)
    preprocess: PreprocessOptions = Field(default_factory=PreprocessOptions)
    validation: ValidationOptions = Field(default_factory=ValidationOptions)
    keep_work: bool = Field(
        default=False,
        description="keep the run's work folder (real-data intermediates) after the run completes; by default it "
        "is deleted then (a run that stops on an error always keeps it, so the rerun resumes)",
    )
    tables: dict[str, TableSpec] | None = Field(
        default=None,
        description="a relational extract: each table's source, primary key and foreign keys (synth.relational); "
        "`synth run` then takes no --source",
    )

    @field_validator("tables")
    @classmethod
    def _tables_named_as_folders(cls, value: dict[str, TableSpec] | None) -> dict[str, TableSpec] | None:
        # Each table becomes a folder synthetic/<table>/: its name must be a plain folder name.
        if value is not None:
            if not value:
                raise ValueError("list at least one table, or leave tables: out")
            bad = [name for name in value if not _TABLE_NAME.match(name)]
            if bad:
                raise ValueError(f"table names {bad} must be letters, digits, _ or - (each becomes a folder)")
            missing = [name for name, spec in value.items() if not spec.source]
            if missing:
                raise ValueError(f"tables {missing} have no source: give each a file, folder, URI or sql: query")
        return value

    def relational(self) -> RelationalConfig | None:
        """The ``tables:`` section as the relational library's config, or None for a flat extract."""
        return None if self.tables is None else RelationalConfig(tables=self.tables)

    @field_validator("columns", mode="before")
    @classmethod
    def _shorthand_kinds(cls, value: Any) -> Any:
        # `columns: {age: numerical}` is shorthand for `columns: {age: {kind: numerical}}`.
        if isinstance(value, dict):
            return {k: ({"kind": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _no_column_both_dropped_and_typed(self) -> PipelineConfig:
        clash = sorted(set(self.drop) & set(self.columns))
        if clash:
            raise ValueError(f"columns {clash} are both dropped and given a kind; keep one")
        if self.entity_key is not None and self.entity_key in self.drop:
            raise ValueError(f"entity_key {self.entity_key!r} is also listed under drop")
        return self

    def with_overrides(self, **sections: Any) -> PipelineConfig:
        """A copy with some settings replaced, validated again (e.g. CLI flags).

        ``model={"epochs": 5}`` replaces fields of a section; ``seed=3`` a top-level
        setting. ``None`` values leave the setting as it is.
        """
        data = self.model_dump(mode="json")
        for name, value in sections.items():
            if isinstance(value, dict):
                data[name] = {**(data.get(name) or {}), **{k: v for k, v in value.items() if v is not None}}
            elif value is not None:
                data[name] = value
        return parse_config(data, origin="command-line flags")


def parse_config(data: dict[str, Any] | None, origin: str = "config") -> PipelineConfig:
    """Validate a config mapping, turning pydantic's report into one readable error."""
    try:
        return PipelineConfig.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None


def load_config(path: str | Path | None) -> PipelineConfig:
    """Read and validate a YAML config; ``None`` gives the defaults."""
    if path is None:
        return PipelineConfig()
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config {path} is a folder; give the YAML file in it")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (is it a YAML file?)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings, got {type(data).__name__}")
    return _rooted(parse_config(data, origin=str(path)), path)


def _rooted(config: PipelineConfig, path: Path) -> PipelineConfig:
    """Files a config names by a relative path lie in the config's folder, and may not leave it.

    An absolute path is the author's explicit choice; a relative one is read from beside
    the config (wherever the run starts, e.g. on a worker), and ``..`` out of that folder
    is refused so a config cannot reach files around it unnoticed.

    Raises:
        ConfigError: naming the setting, the path and the folder.
    """
    suite = config.validation.suite
    if suite is not None:
        suite = _inside(path, "validation.suite", suite)
        config = config.model_copy(update={"validation": config.validation.model_copy(update={"suite": suite})})
    if config.tables is not None:
        tables = {
            name: spec if is_sql(spec.source) or is_remote(spec.source)
            else spec.model_copy(update={"source": _inside(path, f"tables.{name}.source", spec.source)})
            for name, spec in config.tables.items()
        }
        config = config.model_copy(update={"tables": tables})
    return config


def _inside(path: Path, setting: str, value: str) -> str:
    """``value`` read from beside the config at ``path``: absolute as given, relative from its folder, never out."""
    if Path(value).expanduser().is_absolute():
        return value
    folder = path.parent.resolve()
    target = (folder / value).resolve()
    if folder not in target.parents:
        raise ConfigError(
            f"{path}: {setting} {value!r} leads out of the config's folder {folder}; a relative path is read "
            "from that folder: put the file there, or give its absolute path"
        )
    return str(target)


def _describe(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown setting")
        else:
            lines.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return f"{origin}: " + "; ".join(lines)
