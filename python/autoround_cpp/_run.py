"""Running long C++ work so that Ctrl-C stops it.

The C++ runs without the GIL, and CPython runs its SIGINT handler only in the main thread, between
bytecodes. So the work runs in a worker thread while the main thread waits in short joins: Ctrl-C
raises KeyboardInterrupt in the main thread, which asks the library to stop at its next safe
point (a SignRound step, a calibration sample, a block boundary; the checkpoint is kept) and then
raises KeyboardInterrupt once the worker has stopped. A second Ctrl-C raises at once without
waiting (the worker still stops at its safe point).
"""

import threading
import time

from . import _core

# How often the waiting main thread gives the signal handler a chance to run.
_POLL_SECONDS = 0.05


def run_interruptible(fn, *args, **kwargs):
    if threading.current_thread() is not threading.main_thread():
        # Signals never reach other threads; run in place.
        return _reraise_interrupt(fn, args, kwargs)
    box = {}
    done = threading.Event()

    def work():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # handed to the main thread as is
            box["error"] = e
        finally:
            done.set()

    worker = threading.Thread(target=work, name="autoround_cpp", daemon=True)
    worker.start()
    stop_requested = False
    # Polled with sleep, not Thread.join(timeout): on CPython 3.11 a KeyboardInterrupt inside
    # join() can mark the still-running thread as stopped (the bpo-45274 cleanup).
    while not done.is_set():
        try:
            time.sleep(_POLL_SECONDS)
        except KeyboardInterrupt:
            if stop_requested:
                raise
            stop_requested = True
            _core.request_interrupt()
    worker.join()
    error = box.get("error")
    if isinstance(error, _core.Interrupted):
        raise KeyboardInterrupt(str(error)) from error
    if error is not None:
        raise error
    if stop_requested:  # the work finished before its next safe point; Ctrl-C still means stop
        raise KeyboardInterrupt("interrupted after the work had finished")
    return box["value"]


def _reraise_interrupt(fn, args, kwargs):
    try:
        return fn(*args, **kwargs)
    except _core.Interrupted as e:
        raise KeyboardInterrupt(str(e)) from e
