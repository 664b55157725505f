"""Protocol files: every duration, count, temperature, limit and screen text of a visit.

`load_protocol(path)` reads a TOML file and validates it with pydantic. Any problem raises one
ProtocolFileError naming the file, the key (dotted path), what was expected and what was found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from cpm_session.errors import ProtocolFileError
from cpm_session.limits import ABSOLUTE_MAX_C


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


MAX_WAIT_S = 3600.0
"""No single wait of a visit (acclimatization, rest, interval, delay, rating time-out) may exceed an hour."""
MAX_TEXT = 5000
"""Characters of one screen text or name."""


Pos = Field(gt=0)


class Meta(_Strict):
    name: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=50)
    description: str = Field(default="", max_length=MAX_TEXT)
    ts_modality: Literal["thermal", "pressure"]
    visits: list[str] = Field(min_length=1, max_length=20)
    baseline_visit: str

    @model_validator(mode="after")
    def _baseline_listed(self) -> Meta:
        if self.baseline_visit not in self.visits:
            raise ValueError(f"baseline_visit '{self.baseline_visit}' must be one of visits {self.visits}")
        return self


class Safety(_Strict):
    thermode_cap_c: float = Field(gt=0, le=ABSOLUTE_MAX_C)
    neutral_c: float = Field(ge=20, le=40)
    max_pressure_kpa: float = Field(gt=0, le=2000)


class Acclimatization(_Strict):
    duration_s: float = Field(ge=0, le=MAX_WAIT_S)
    min_s: float = Field(ge=0, le=MAX_WAIT_S)
    max_s: float = Field(ge=0, le=MAX_WAIT_S)

    @model_validator(mode="after")
    def _in_range(self) -> Acclimatization:
        if not (self.min_s <= self.duration_s <= self.max_s):
            raise ValueError(f"duration_s {self.duration_s} must lie in [min_s {self.min_s}, max_s {self.max_s}]")
        return self


class ThermodeSettings(_Strict):
    rise_c_per_s: float = Field(gt=0, le=300)
    return_c_per_s: float = Field(gt=0, le=300)
    zones: str = Field(pattern=r"^[01]{5}$")


class Calibration(_Strict):
    """Heat calibration (cpm_session.calibration): every temperature in [floor_c, cap], at most
    max_step_up_c above the hottest one rated below stop_rating; the TS is verified (verify_n stimuli
    with a mean within target_rating ± tolerance) or there is none."""

    method: Literal["bayes", "ascending", "staircase"]
    site: str = Field(max_length=200)
    target_rating: float = Field(gt=0, lt=100)
    floor_c: float = Field(ge=30, le=ABSOLUTE_MAX_C)
    start_c: float = Field(gt=0, le=ABSOLUTE_MAX_C)
    step_c: float = Field(gt=0, le=5)
    max_step_up_c: float = Field(gt=0, le=5)
    stop_rating: float = Field(gt=0, le=100)
    max_stimuli: int = Field(ge=3, le=40)
    ci_halfwidth_c: float = Field(gt=0, le=5)
    stimulus_s: float = Field(gt=0, le=30)
    rest_s: float = Field(ge=0, le=600)
    verify_n: int = Field(ge=1, le=5)
    tolerance: float = Field(gt=0, le=50)
    max_refinements: int = Field(ge=0, le=5)
    min_slope_per_c: float = Field(gt=0, le=100)
    min_r2: float = Field(ge=0, le=1)
    staircase_trials: int = Field(ge=2, le=40)
    # pressure modality
    ppt_measurements: int = Field(ge=1, le=10)
    ppt_ramp_kpa_per_s: float = Field(gt=0, le=200)
    ts_pressure_factor: float = Field(gt=0, le=3)

    @model_validator(mode="after")
    def _levels(self) -> Calibration:
        if self.stop_rating < self.target_rating:
            raise ValueError(f"stop_rating {self.stop_rating} must be >= target_rating {self.target_rating}")
        if self.start_c < self.floor_c:
            raise ValueError(f"start_c {self.start_c} must be >= floor_c {self.floor_c}")
        if self.tolerance >= min(self.target_rating, 100 - self.target_rating):
            raise ValueError(f"tolerance {self.tolerance} must leave target_rating {self.target_rating} ± tolerance "
                             "inside the 0-100 scale")
        return self


class TestStimulus(_Strict):
    site: str = Field(max_length=200)
    duration_s: float = Field(gt=0, le=30)
    pre_repeats: int = Field(ge=1, le=10)
    post_repeats: int = Field(ge=1, le=10)
    interval_s: float = Field(ge=0, le=600)
    post_delay_s: float = Field(ge=0, le=MAX_WAIT_S)
    rating_mode: Literal["prompt", "continuous"] = "prompt"
    """prompt: one slider rating after each stimulus; continuous: the slider is live from the onset and every
    frame's value is kept (continuous_ratings.csv); the stimulus's rating is then `continuous_summary`."""
    continuous_summary: Literal["peak", "mean", "at"] = "peak"
    continuous_at_s: float = Field(default=0.0, ge=0, le=120)
    """With continuous_summary = "at": the value this many seconds after the onset."""
    continuous_tail_s: float = Field(default=2.0, ge=0, le=30)
    """Continuous rating goes on this long after the thermode is back at neutral."""


class ColdPressor(_Strict):
    site: str = Field(max_length=200)
    duration_s: float = Field(gt=0, le=300)
    max_s: float = Field(gt=0, le=300)
    bath_min_c: float = Field(ge=-5, le=40)
    bath_max_c: float = Field(ge=-5, le=40)
    rating_at_s: float = Field(gt=0, le=300)
    min_cs_rating: float = Field(ge=0, le=100)
    bath_stable_s: float = Field(ge=0, le=600)
    rating_mode: Literal["prompt", "continuous"] = "prompt"
    """continuous: the hand's pain is rated on a live slider for the whole immersion; the 30 s rating is then
    the slider's value at `rating_at_s`."""

    @model_validator(mode="after")
    def _order(self) -> ColdPressor:
        if self.bath_min_c >= self.bath_max_c:
            raise ValueError(f"bath_min_c {self.bath_min_c} must be below bath_max_c {self.bath_max_c}")
        if self.duration_s > self.max_s:
            raise ValueError(f"duration_s {self.duration_s} must not exceed max_s {self.max_s}")
        if self.rating_at_s >= self.duration_s:
            raise ValueError(f"rating_at_s {self.rating_at_s} must be inside the immersion ({self.duration_s} s)")
        return self


class ControlConditioning(_Strict):
    enabled: bool
    bath_min_c: float = Field(ge=0, le=40)
    bath_max_c: float = Field(ge=0, le=40)
    duration_s: float = Field(gt=0, le=300)


class Ratings(_Strict):
    timeout_s: float = Field(gt=0, le=600)
    repeat_missing: bool
    max_attempts: int = Field(ge=1, le=5)
    scale_min: float = Field(ge=-1000, le=1000)
    scale_max: float = Field(ge=-1000, le=1000)

    @model_validator(mode="after")
    def _scale(self) -> Ratings:
        if self.scale_min >= self.scale_max:
            raise ValueError("scale_min must be below scale_max")
        return self


class Analysis(_Strict):
    cpm_threshold_abs: float = Field(ge=0, le=100, allow_inf_nan=False)
    # CPM_pct = CPM_abs / TS_pre * 100 is null (with a note) when TS_pre is below this floor (rating points):
    # a barely painful test stimulus makes the percentage meaningless (TS_pre 0.5, TS_post 3 would be -500 %).
    cpm_pct_min_ts_pre: float = Field(default=10.0, ge=0, le=100, allow_inf_nan=False)
    # Smallest real difference (SRD95 = 1.96 * sqrt(2) * SEM, rating points) of CPM_abs measured in a
    # test-retest study. The trial analysis counts inhibition / reactivation only beyond it; without it the
    # analysis estimates the SRD95 from the trial's own control arm (and says so).
    cpm_srd95_abs: float | None = Field(default=None, gt=0, le=100, allow_inf_nan=False)


class Fidelity(_Strict):
    """Limits of protocol fidelity: how far a visit may stray from its plan before it is a deviation.

    Every duration in session seconds, temperatures in °C, pressures in kPa; all finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    max_cs_to_ts_post_s: float = Field(gt=0, le=600)
    """Longest interval from the end of the immersion to the TS_post onset (the seed's "immediately")."""
    warn_before_s: float = Field(ge=0, le=600)
    """The staff view warns when the TS_post limit is this close."""
    max_onset_error_s: float = Field(gt=0, le=60)
    """Largest |actual - planned| stimulus onset (and time of the 30 s hand rating)."""
    max_ts_interval_error_s: float = Field(gt=0, le=60)
    """Largest |actual - planned| interval between consecutive TS_pre stimuli."""
    max_delivered_error_c: float = Field(gt=0, le=10)
    """Largest |delivered plateau mean - target| of a heat stimulus (thermode trace)."""
    max_delivered_error_kpa: float = Field(gt=0, le=500)
    """Largest |delivered hold mean - target| of a pressure stimulus (algometer samples)."""
    bath_range_c: list[Annotated[float, Field(ge=-5, le=40)]] = Field(min_length=2, max_length=2)
    """[min, max] bath temperature tolerated during the immersion."""
    max_immersion_shortfall_s: float = Field(ge=0, le=300)
    """How much shorter than planned an immersion may be (a withdrawal beyond this is a deviation)."""
    max_missing_ratings: int = Field(ge=0, le=100)
    max_pauses: int = Field(ge=0, le=100)

    @field_validator("bath_range_c")
    @classmethod
    def _bath_order(cls, v: list[float]) -> list[float]:
        if not v[0] < v[1]:
            raise PydanticCustomError("fidelity_range", "[min, max] with min below max")
        return v

    @field_validator("warn_before_s")
    @classmethod
    def _warn_inside(cls, v: float, info: ValidationInfo) -> float:
        limit = info.data.get("max_cs_to_ts_post_s")
        if limit is not None and v >= limit:
            raise PydanticCustomError("fidelity_warn", "a number below max_cs_to_ts_post_s ({limit})", {"limit": limit})
        return v


class Resume(_Strict):
    allowed: bool
    max_gap_s: float = Field(gt=0, le=30 * 86400)


class Questionnaires(_Strict):
    names: list[str] = Field(max_length=20)
    entry: Literal["participant", "staff"]


class Sync(_Strict):
    """Sync markers for other recorders (EEG, physiology): `[sync] lsl = true` asks for a marker stream."""

    lsl: bool = False
    stream_name: str = Field(default="cpm-session-markers", min_length=1, max_length=64)


class Screen(_Strict):
    fullscreen: bool
    size: list[Annotated[int, Field(ge=100, le=16384)]] = Field(min_length=2, max_length=2)
    background: str = Field(pattern=r"^#[0-9A-Fa-f]{6}$")
    text_color: str = Field(pattern=r"^#[0-9A-Fa-f]{6}$")
    accent_color: str = Field(pattern=r"^#[0-9A-Fa-f]{6}$")
    text_height: float = Field(gt=0, le=0.2)


class Texts(_Strict):
    welcome: str = Field(max_length=MAX_TEXT)
    acclimatization: str = Field(max_length=MAX_TEXT)
    calibration_intro: str = Field(max_length=MAX_TEXT)
    stimulus_coming: str = Field(max_length=MAX_TEXT)
    stimulus_on: str = Field(max_length=MAX_TEXT)
    rest: str = Field(max_length=MAX_TEXT)
    rate_heat: str = Field(max_length=MAX_TEXT)
    rate_pressure: str = Field(max_length=MAX_TEXT)
    rate_hand: str = Field(max_length=MAX_TEXT)
    rate_continuous: str = Field(default="Move the slider whenever the pain changes", max_length=MAX_TEXT)
    """Shown over a continuous (live) rating slider."""
    anchor_low: str = Field(max_length=MAX_TEXT)
    anchor_high: str = Field(max_length=MAX_TEXT)
    confirm: str = Field(max_length=MAX_TEXT)
    cold_pressor_prepare: str = Field(max_length=MAX_TEXT)
    cold_pressor_keep: str = Field(max_length=MAX_TEXT)
    cold_pressor_out: str = Field(max_length=MAX_TEXT)
    pressure_instructions: str = Field(max_length=MAX_TEXT)
    questionnaires_intro: str = Field(max_length=MAX_TEXT)
    paused: str = Field(max_length=MAX_TEXT)
    aborted: str = Field(max_length=MAX_TEXT)
    thanks: str = Field(max_length=MAX_TEXT)


class Protocol(_Strict):
    """A validated, immutable protocol. `path` and `sha256` identify the exact file used."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    protocol: Meta
    safety: Safety
    acclimatization: Acclimatization
    thermode: ThermodeSettings
    calibration: Calibration
    test_stimulus: TestStimulus
    cold_pressor: ColdPressor
    control_conditioning: ControlConditioning
    ratings: Ratings
    analysis: Analysis
    fidelity: Fidelity
    resume: Resume
    questionnaires: Questionnaires
    screen: Screen
    texts: Texts
    sync: Sync = Sync()
    path: str = ""
    sha256: str = ""

    @model_validator(mode="after")
    def _cross(self) -> Protocol:
        cap = self.safety.thermode_cap_c
        if self.calibration.start_c >= cap:
            raise ValueError(f"calibration.start_c {self.calibration.start_c} must be below safety.thermode_cap_c {cap}")
        if self.calibration.floor_c <= self.safety.neutral_c:
            raise ValueError(f"calibration.floor_c {self.calibration.floor_c} must be above safety.neutral_c "
                             f"{self.safety.neutral_c} (a calibration stimulus must be warmer than the baseline)")
        if self.safety.neutral_c >= cap:
            raise ValueError(f"safety.neutral_c {self.safety.neutral_c} must be below safety.thermode_cap_c {cap}")
        return self


_CROSS_KEYS = {
    "calibration.start_c": "calibration.start_c",
    "calibration.floor_c": "calibration.floor_c",
    "safety.neutral_c": "safety.neutral_c",
}


def describe_validation_error(err: dict[str, Any]) -> tuple[str, str, object]:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    typ = err.get("type", "")
    found: object = err.get("input", "<missing>")
    msg = err.get("msg", "")
    if typ == "missing":
        return loc, "this key to be present", "<missing>"
    if typ == "extra_forbidden":
        return loc, "no such key (unknown keys are not allowed; check the spelling)", found
    if typ == "value_error" and not loc:
        text = msg.removeprefix("Value error, ")
        for key in _CROSS_KEYS:
            if text.startswith(key):
                return key, text, "see message"
        return "<file>", text, "see message"
    if typ == "value_error":
        return loc, msg.removeprefix("Value error, "), "see message"
    return loc, msg[0].lower() + msg[1:] if msg else typ, found


def parse_protocol(data: dict[str, Any], path: str | Path = "<memory>", sha256: str = "") -> Protocol:
    """Validate already-parsed TOML data; raise ProtocolFileError on the first problem."""
    if not isinstance(data, dict):
        raise ProtocolFileError(str(path), "<file>", "a TOML table", type(data).__name__)
    try:
        return Protocol.model_validate({**data, "path": str(path), "sha256": sha256})
    except ValidationError as e:
        errs = e.errors()
        key, expected, found = describe_validation_error(dict(errs[0]))
        more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
        raise ProtocolFileError(str(path), key, expected + more, found) from None


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a protocol TOML file (a regular file of at most 1 MB)."""
    from cpm_session.config.files import ConfigReadError, read_toml

    p = Path(path)
    try:
        data, sha = read_toml(p)
    except ConfigReadError as e:
        raise ProtocolFileError(str(p), "<file>", "a readable file (UTF-8 TOML, at most 1 MB)", str(e)) from None
    except RecursionError:
        raise ProtocolFileError(str(p), "<file>", "a protocol file", "TOML nested far too deeply") from None
    return parse_protocol(data, p, sha)


_describe_error = describe_validation_error  # old private name, kept for importers
