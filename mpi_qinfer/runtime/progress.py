"""Progress of a loop of experiments: a bar on a terminal, plain lines in a batch log.

A batch job's stderr is a file, and a progress bar's carriage-return frames
make that file unreadable. :class:`Progress` therefore draws a tqdm bar only
when its stream is a terminal or a Jupyter kernel's output (``tqdm.auto``: a
widget where ipywidgets is installed); otherwise it writes one plain line every
``every`` steps and one at the end, each with the rate and the estimated
time left, and never a carriage return::

    SMC on 4 rank(s): 20/100 exp (20%), 8.31 exp/s, 2.4 s elapsed, ETA 9.6 s

Use it around any loop (the demo's, your own SMC loop)::

    with Progress(n_experiments, "SMC") as progress:
        for _ in range(n_experiments):
            ...
            progress.update()
"""

from __future__ import annotations

import math
import sys
import time
import warnings

__all__ = ["Progress", "format_seconds", "is_terminal", "is_notebook_output"]


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes and closed streams).

    Parameters
    ----------
    stream : file-like

    Returns
    -------
    bool
    """
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def is_notebook_output(stream) -> bool:
    """Whether ``stream`` is the output of a Jupyter kernel (ipykernel's), which shows a bar as it should.

    Parameters
    ----------
    stream : file-like

    Returns
    -------
    bool
    """
    return type(stream).__module__.startswith("ipykernel.")


def format_seconds(seconds: float) -> str:
    """A duration for people: ``"4.2 s"``, ``"3 min 05 s"``, ``"2 h 03 min"``.

    Parameters
    ----------
    seconds : float

    Returns
    -------
    str
    """
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Reports how far a loop of ``total`` steps has got.

    Parameters
    ----------
    total : int
        The number of steps the loop will take.
    description : str
        What runs, printed first on every line (e.g. ``"SMC on 4 rank(s)"``).
    file : file-like, optional
        Where to report; default ``sys.stderr``.
    enabled : bool
        False reports nothing at all.
    every : int, optional
        In line mode, a line every this many steps; default a tenth of
        ``total`` (at least 1). The last step always gets a line.
    unit : str
        The name of a step in the report.
    bar : bool, optional
        True forces the tqdm bar, False the plain lines; default: a bar
        exactly when ``file`` is a terminal or a notebook's output and tqdm
        is installed.
    clock : callable, optional
        Returns the time in seconds; default :func:`time.perf_counter`.
    """

    def __init__(self, total: int, description: str, *, file=None, enabled: bool = True, every: int | None = None,
                 unit: str = "exp", bar: bool | None = None, clock=None):
        if total < 0:
            raise ValueError(f"total must be >= 0, got {total}")
        if every is not None and every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.total = int(total)
        self.description = description
        self.file = sys.stderr if file is None else file
        self.enabled = enabled
        self.every = every if every is not None else max(1, math.ceil(self.total / 10))
        self.unit = unit
        self.count = 0
        self._clock = time.perf_counter if clock is None else clock
        self._start = self._clock()
        self._bar = None
        if enabled and ((is_terminal(self.file) or is_notebook_output(self.file)) if bar is None else bar):
            self._bar = self._make_bar()

    def _make_bar(self):
        try:
            with warnings.catch_warnings():  # tqdm.auto warns when a notebook has no ipywidgets (a text bar then)
                warnings.simplefilter("ignore")
                from tqdm.auto import tqdm
        except ImportError:
            return None
        return tqdm(total=self.total, desc=self.description, unit=self.unit, file=self.file,
                    mininterval=0.5, leave=False)

    @property
    def uses_bar(self) -> bool:
        """bool : Whether a tqdm bar is drawn (else plain lines, or nothing when disabled)."""
        return self._bar is not None

    def update(self, steps: int = 1) -> None:
        """Count ``steps`` more steps done, and report if it is time to.

        Parameters
        ----------
        steps : int
        """
        before = self.count
        self.count += steps
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(steps)
            return
        if self.count // self.every > before // self.every or (self.count >= self.total > before):
            self.file.write(self.line() + "\n")
            self.file.flush()

    def line(self) -> str:
        """The plain report line for the steps counted so far.

        Returns
        -------
        str
        """
        elapsed = self._clock() - self._start
        rate = self.count / elapsed if elapsed > 0 else math.inf
        percent = 100 * self.count / self.total if self.total else 100.0
        text = (f"{self.description}: {self.count}/{self.total} {self.unit} ({percent:.0f}%), "
                f"{rate:.3g} {self.unit}/s, {format_seconds(elapsed)} elapsed")
        if self.count >= self.total:
            return text + ", done"
        left = (self.total - self.count) / rate if rate > 0 else math.inf
        return text + f", ETA {format_seconds(left)}"

    def close(self) -> None:
        """Remove the bar, if any (lines need no closing)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
