"""The tracked quickstart notebook stays free of outputs when JupyterLab saves it (make lab's pre-save hook)."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]


def _with_outputs() -> dict:
    nb = json.loads((REPO / "notebooks" / "01_quickstart.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["4 jobs\n"]}]
            cell["execution_count"] = 3
            cell["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def test_the_tracked_quickstart_is_committed_without_outputs_and_saved_without_them(tmp_path):
    from workbench.ui.nbstrip import strip_outputs_hook

    tracked = json.loads((REPO / "notebooks" / "01_quickstart.ipynb").read_text())
    assert tracked["metadata"]["workbench"]["tracked_as"] == "notebooks/01_quickstart.ipynb"
    assert all(not c.get("outputs") for c in tracked["cells"] if c["cell_type"] == "code")
    cm = SimpleNamespace(root_dir=str(tmp_path))  # a server over any copy of the project
    model = {"type": "notebook", "content": _with_outputs()}
    strip_outputs_hook(model=model, path="notebooks/01_quickstart.ipynb", contents_manager=cm)
    code = [c for c in model["content"]["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert all("execution" not in c["metadata"] for c in code) and "widgets" not in model["content"]["metadata"]
    assert [c["source"] for c in model["content"]["cells"]] == [c["source"] for c in tracked["cells"]]
    # saved as a working copy elsewhere (File > Save Notebook As... into runs/): outputs kept
    kept = {"type": "notebook", "content": _with_outputs()}
    before = copy.deepcopy(kept)
    strip_outputs_hook(model=kept, path="runs/my-quickstart.ipynb", contents_manager=cm)
    assert kept == before
    # other files pass untouched
    text = {"type": "file", "content": "x"}
    strip_outputs_hook(model=text, path="notebooks/notes.txt", contents_manager=cm)
    assert text == {"type": "file", "content": "x"}


def test_opening_the_quickstart_in_lab_and_saving_it_unrun_leaves_the_file_as_committed(tmp_path):
    """Lab autosaves a notebook as soon as its kernel connects: the kernel's language_info (Python version,
    lexer, mimetype) is added to the metadata. The saved file must still be the committed bytes."""
    import nbformat

    from workbench.ui.nbstrip import strip_outputs_hook

    path = REPO / "notebooks" / "01_quickstart.ipynb"
    committed = path.read_text()
    nb = json.loads(committed)
    nb["metadata"]["language_info"] = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                                       "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                                       "pygments_lexer": "ipython3", "version": "3.11.7"}
    for cell in nb["cells"]:
        cell["metadata"]["trusted"] = True  # Lab sends it; nbformat drops it on write
    model = {"type": "notebook", "content": nb}
    strip_outputs_hook(model=model, path="notebooks/01_quickstart.ipynb",
                       contents_manager=SimpleNamespace(root_dir=str(REPO)))
    out = tmp_path / "saved.ipynb"
    nbformat.write(nbformat.from_dict(model["content"]), str(out))  # as the contents manager writes it
    assert out.read_text() == committed
