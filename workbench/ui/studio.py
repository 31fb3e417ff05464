"""The Studio: Generate, Compare, Evaluate, History and Judge tabs over one runs folder."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import ipywidgets as W

from workbench.ui.compare import CompareTab
from workbench.ui.evaluate import EvaluateTab
from workbench.ui.generate import GenerateTab
from workbench.ui.history import HistoryTab
from workbench.ui.judge import JudgeTab
from workbench.ui.paths import default_runs_root


class Studio(W.VBox):
    """`Studio()` in a notebook cell: generate clips, compare models, score clips, revisit past jobs.

    runs: folder that holds run folders (default `default_runs_root()`); run: the Generate tab's run
    folder (default runs/studio). Every tab is a thin shell over the Python API (Runner, evaluate,
    load_records, stats, write_report)."""

    TITLES = ("Generate", "Compare", "Evaluate", "History", "Judge")

    def __init__(self, runs: str | Path | None = None, run: str | Path | None = None) -> None:
        self.runs_root = Path(runs).expanduser().resolve() if runs else default_runs_root()
        run_dir = Path(run).expanduser() if run else self.runs_root / "studio"
        if not run_dir.is_absolute():
            run_dir = self.runs_root.parent / run_dir
        self.generate = GenerateTab(self.runs_root, run_dir, on_finished=self._finished)
        self.compare = CompareTab(self.runs_root)
        self.evaluate = EvaluateTab(self.runs_root)
        self.history = HistoryTab(self.runs_root, on_load=self._load_settings)
        self.judge = JudgeTab(self.runs_root)
        self.tabs = W.Tab(children=[self.generate, self.compare, self.evaluate, self.history, self.judge])
        self.tabs.titles = self.TITLES
        header = W.HTML(
            "<div style='display:flex;align-items:baseline;gap:12px;margin-bottom:4px'>"
            "<span style='font-size:16px;font-weight:700'>workbench studio</span>"
            f"<span style='color:#777;font-size:12px'>runs in <code>{html.escape(str(self.runs_root))}</code></span></div>")
        super().__init__([header, self.tabs], layout=W.Layout(max_width="100%", overflow_x="hidden"))
        self.add_class("wb-studio")
        if (run_dir / "results.jsonl").is_file():
            self._finished(run_dir)

    def _finished(self, run_dir: Path) -> None:
        """A run ended (or the Studio opened on an existing one): point Compare, Evaluate and History at it."""
        for tab in (self.compare, self.history, self.evaluate, self.judge):
            tab.picker.set(run_dir, reload=True)  # loads it, again when it is the folder shown (new records)

    def _load_settings(self, record: dict[str, Any], run_dir: Path) -> None:
        self.generate.load_settings(record, run_dir)
        self.tabs.selected_index = 0
