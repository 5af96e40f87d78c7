"""The four meta-learned variants of every tracker family, in one table.

A family registers its four trackers from :data:`VARIANTS` (``tracker.api.register_family``):
the baseline under the family's own name, then ``<family>-l2f``, ``<family>-dropgrad`` and
``<family>-l2f-dropgrad``. The table says what each variant adds (L2F, DropGrad), the
``metatrack meta-train`` flags that make it (what the recipes in ``weights/`` train the shipped
files with, through ``metatrack variant``) and its overlay colour (the seed's Fig. A). Nothing
here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass

from foundation.errors import UserError

__all__ = ["Variant", "VARIANTS", "L2F_FLAGS", "DROPGRAD_FLAGS", "variant"]

# L2F as the paper writes it (gamma = sigmoid(g_phi(e))) on a scale-free task embedding: with the
# paper's raw mean gradients gamma came out the same for every sequence (docs/metacrest.md, "L2F")
L2F_FLAGS = ("--l2f", "--l2f-mode", "sigmoid", "--l2f-input", "normalized")
DROPGRAD_FLAGS = ("--dropgrad", "binary", "--dropgrad-rate", "0.1")


@dataclass(frozen=True)
class Variant:
    """One row of the table: ``key`` is the recipes' word (``VARIANTS="base l2f"``)."""

    key: str
    l2f: bool
    dropgrad: bool
    color: str     # a name of tracker.overlay.NAMED_COLORS; a family may shade it
    about: str     # what "<Family> meta-trained with ..." says in the registry

    def name(self, family: str) -> str:
        """The registered tracker name of this variant of ``family``."""
        return family if self.key == "base" else f"{family}-{self.key}"

    def flags(self) -> tuple[str, ...]:
        """The ``metatrack meta-train`` flags that make this variant."""
        return (L2F_FLAGS if self.l2f else ()) + (DROPGRAD_FLAGS if self.dropgrad else ())


VARIANTS: tuple[Variant, ...] = (
    Variant("base", l2f=False, dropgrad=False, color="red", about=""),
    Variant("l2f", l2f=True, dropgrad=False, color="green", about="L2F (task-and-layer-wise attenuation)"),
    Variant("dropgrad", l2f=False, dropgrad=True, color="blue", about="DropGrad (binary, p=0.1)"),
    Variant("l2f-dropgrad", l2f=True, dropgrad=True, color="cyan", about="L2F and DropGrad"),
)


def variant(key: str) -> Variant:
    """The row of ``key``; an unknown key is one :class:`UserError` line listing the known."""
    for v in VARIANTS:
        if v.key == key:
            return v
    raise UserError(f"unknown variant {key!r}; known variants: {', '.join(v.key for v in VARIANTS)}")
