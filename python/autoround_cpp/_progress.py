"""Per-block progress of a quantize run: a tqdm bar when tqdm is installed, otherwise one plain
line per block on stderr; or the user's own callable."""

import math
import sys


def _loss_text(b):
    if math.isnan(b.loss_before):
        return "resumed from checkpoint" if b.resumed else "no tuning"
    return f"loss {b.loss_before:.4g} -> {b.loss_after:.4g} (iter {b.best_iter})"


class _Plain:
    def __call__(self, b, n_blocks):
        print(f"[{b.layer + 1}/{n_blocks}] {_loss_text(b)}  {b.seconds:.1f} s  "
              f"peak RSS {b.peak_rss_bytes / 2**20:.0f} MiB", file=sys.stderr, flush=True)

    def write(self, line):
        print(line, file=sys.stderr, flush=True)

    def close(self):
        pass


class _Tqdm:
    def __init__(self, tqdm):
        self._tqdm = tqdm
        self._bar = None

    def __call__(self, b, n_blocks):
        if self._bar is None:
            self._bar = self._tqdm(total=n_blocks, desc="blocks", unit="block", file=sys.stderr)
        self._bar.set_postfix_str(_loss_text(b), refresh=False)
        self._bar.update(1)

    def write(self, line):
        self._tqdm.write(line, file=sys.stderr)

    def close(self):
        if self._bar is not None:
            self._bar.close()


def make_progress(progress, verbose):
    """The on_block callback for `progress` (True: the default display, False/None: none, a
    callable: called as progress(block, n_blocks)), and the object log lines go through (or None:
    the library prints them to stderr itself)."""
    if callable(progress):
        return progress, None
    if not progress:
        return None, None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        # Verbose runs already print a line per block; the plain display is for quiet ones.
        return (None, None) if verbose else (_Plain(), None)
    bar = _Tqdm(tqdm)
    return bar, bar
