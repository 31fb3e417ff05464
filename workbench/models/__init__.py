"""Generation backends behind one `Generator` interface and a name registry.

`base.py` is the registry the adapters import (`@register`); this package's entry point imports every
built-in adapter once, so importing any `workbench.models.*` module leaves them all registered. The
registry never imports an adapter: registration runs one way, adapter -> registry.
"""
from workbench.models.base import (GenerationError, GenerationRequest, Generator, UnknownModel, get_generator,
                                   register, registry)
# the built-in adapters, imported for their registrations (another adapter: add its module here)
from workbench.models import baselines, diffusers_pipeline, external  # noqa: E402,F401  (register on import)
from workbench.models import hosted  # noqa: E402,F401  (hosted providers: Hedra, fal, Replicate, ...)
from workbench.models import faceswap  # noqa: E402,F401  (face-swap floor: faceswap-landmarks)

__all__ = ["GenerationError", "GenerationRequest", "Generator", "UnknownModel", "get_generator", "register", "registry"]
