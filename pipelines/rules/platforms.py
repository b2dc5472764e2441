"""The platforms a regulator supervises: who may push feeds and receives tasks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Platform(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    compensation_first: bool = False


class PlatformRegistry(BaseModel):
    """``config/platforms.yaml``: every platform omm knows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platforms: list[Platform]

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.platforms]

    def __contains__(self, platform_id: object) -> bool:
        return platform_id in self.ids

    def only(self, ids: list[str]) -> PlatformRegistry:
        """The registry cut down to ``ids``; an id it does not know is an error."""
        unknown = set(ids) - set(self.ids)
        if unknown:
            raise ValueError(f"unknown platform(s) {sorted(unknown)}; see config/platforms.yaml")
        return PlatformRegistry(platforms=[p for p in self.platforms if p.id in ids])
