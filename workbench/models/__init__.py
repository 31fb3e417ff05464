"""Generation backends behind one `Generator` interface and a name registry."""
from workbench.models.base import (GenerationError, GenerationRequest, Generator, UnknownModel, get_generator,
                                   register, registry)

__all__ = ["GenerationError", "GenerationRequest", "Generator", "UnknownModel", "get_generator", "register", "registry"]
