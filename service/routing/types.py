"""Routes: a name clients send as `model` that splits traffic between weighted variants."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.numbers import StrictScalars

from service.routing.progression import RolloutSpec, RolloutState

MAX_VARIANTS = 8
# The guard's thresholds: a guard must set at least one.
THRESHOLDS = ("max_error_rate", "max_invalid_rate", "max_p95_latency_ratio", "max_needs_review_rate",
              "min_shadow_agreement")


class RouteVariant(StrictScalars):
    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1, description="The base model or a registered adapter.")
    weight: float = Field(ge=0, le=1_000_000, description="Relative share of traffic (0 = none).")


class ShadowTarget(StrictScalars):
    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1, description="The base model or a registered adapter to mirror to.")
    fraction: float = Field(gt=0, le=1, description="Share of the route's requests mirrored.")


class RouteGuard(StrictScalars):
    """Thresholds that roll a variant back to weight 0; the control (first variant) is never
    rolled back, and nothing is judged before `min_samples` requests of the variant."""

    model_config = ConfigDict(extra="forbid")

    # Server errors only: a 5xx is the variant's fault (e.g. no schema-valid output); a 4xx is the client's.
    max_error_rate: float | None = Field(
        None, ge=0, le=1, description="Share of requests answered with a server error (status >= 500; 4xx "
        "replies are the client's fault and never count).")
    max_invalid_rate: float | None = Field(
        None, ge=0, le=1, description="Share of structured replies not valid (invalid or truncated).")
    max_p95_latency_ratio: float | None = Field(
        None, gt=0, description="Variant p95 latency / the control's p95 latency.")
    # Absolute, not relative to the control: it is the review workload people must staff for; the
    # control's rate is stated beside the figure for context.
    max_needs_review_rate: float | None = Field(
        None, ge=0, le=1, description="Share of the variant's triage decisions flagged for a person to review "
        "(absolute; the control's rate is shown beside it).")
    min_shadow_agreement: float | None = Field(
        None, ge=0, le=1, description="Least share of mirrored requests on which the variant, as the route's "
        "shadow target, decides the same label as the control did for the client, per label (triage: "
        "category and priority). Needs a shadow whose target is the variant judged.")
    min_samples: int = Field(20, ge=1, description="Requests a variant needs before it is judged.")
    window_s: float = Field(300.0, ge=10, description="Window of recent requests judged (seconds).")

    def thresholds(self) -> list[str]:
        """The thresholds set: a guard without any judges nothing (refused on writes, see registry)."""
        return [name for name in THRESHOLDS if getattr(self, name) is not None]


class RouteSpec(BaseModel):
    """What a client PUTs: variants in order (the first is the control), a shadow, a guard, and a
    progressive rollout of a candidate against the control."""

    model_config = ConfigDict(extra="forbid")

    variants: list[RouteVariant] = Field(min_length=1, max_length=MAX_VARIANTS)
    shadow: ShadowTarget | None = None
    guard: RouteGuard | None = None
    rollout: RolloutSpec | None = Field(None, description="Progressive rollout: the variants are the control "
                                        "and the candidate (added if absent), their weights set by the rollout.")

    @field_validator("variants")
    @classmethod
    def _consistent(cls, variants: list[RouteVariant]) -> list[RouteVariant]:
        targets = [v.target for v in variants]
        if len(set(targets)) != len(targets):
            raise ValueError("each target may appear in only one variant")
        if sum(v.weight for v in variants) <= 0:
            raise ValueError("the variant weights must have a positive sum")
        return variants

    @property
    def control(self) -> str:
        return self.variants[0].target

    def targets(self) -> set[str]:
        return {v.target for v in self.variants} | ({self.shadow.target} if self.shadow else set())


class Route(BaseModel):
    """A stored route: its spec plus what the service did to it (version, rollbacks)."""

    name: str
    spec: RouteSpec
    # The traffic version: samples carry it, and the guard and report judge the current one only.
    version: int = Field(1, ge=1, description="Increases on every change of the variants or their weights "
                         "(a set, a PATCH, a rollback); samples of earlier versions are not judged.")
    updated_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    rollbacks: dict[str, str] = Field(default_factory=dict, description="Variant -> why a guard zeroed it.")
    rollout: RolloutState | None = Field(None, description="Where the route's rollout stands (with `spec.rollout`).")


class RoutesFile(BaseModel):
    """The routes of `--routes-file`, with the hash of the file's content."""

    sha256: str
    routes: dict[str, RouteSpec] = Field(default_factory=dict)


class AppliedRoutesFile(BaseModel):
    """What `--routes-file` last applied: a route in it applies again only when its spec changed,
    so a restart never undoes a rollback or an API change."""

    sha256: str = Field(description="Content hash of the whole file as last applied.")
    applied_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    routes: dict[str, str] = Field(default_factory=dict, description="Route -> hash of its spec as last applied.")


class RouteTable(BaseModel):
    format_version: int = 1
    routes: dict[str, Route] = Field(default_factory=dict)
    # Highest version ever given per name: a deleted and re-created route never reuses one.
    last_versions: dict[str, int] = Field(default_factory=dict)
    routes_file: AppliedRoutesFile | None = None
