"""Case ids of the Studio: moved to `workbench.cases` (the CLI names its cases the same way); re-exported
here for the old import path."""
from workbench.cases import (DIGEST_LEN, STEM_MAX, KnownCases, _case_ids, canonical_voice, case_digest,  # noqa: F401
                             case_id, case_stem, readable_stem)
