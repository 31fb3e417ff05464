"""Reading a YAML file that must hold a mapping (suites, recipes, calibration suites), every failure one
line naming the file, the place and the fix. A foundation: imports nothing from the workbench."""
from __future__ import annotations

from pathlib import Path

import yaml


def read_yaml_mapping(path: str | Path, what: str, keys: str, error: type[Exception] = ValueError,
                      where_to_look: str = "evals/suites/") -> dict:
    """Read a YAML file that must hold a mapping; every failure is one `error` line naming the file,
    the line and column of a syntax error, and the fix. `what` names the file kind, `keys` its keys."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a folder, not a {what}; pass a YAML file (see {where_to_look})")
    if path.exists() and not path.is_file():
        raise error(f"{path}: is not a regular file (a pipe or device); pass a YAML {what} (see {where_to_look})")
    if not path.is_file():
        raise error(f"{path}: {what} not found; pass a YAML file (see {where_to_look})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise error(f"{path}: is not UTF-8 text (a binary file?); pass a YAML {what} (see {where_to_look})") from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e}); check its permissions") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(f"{path}: not valid YAML{where} ({getattr(e, 'problem', e)}); fix the syntax") from None
    if not isinstance(data, dict):
        raise error(f"{path}: a {what} must be a YAML mapping with {keys} (got {type(data).__name__})")
    return data
