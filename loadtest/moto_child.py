"""moto's server as a child that stops when its parent goes away.

The parent keeps this process's stdin open; when the parent exits, even by
SIGKILL, the pipe closes and this process exits too, so no emulator is left
behind (fauxqs's starter does the same).

    python -m loadtest.moto_child -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import os
import sys
import threading


def _exit_when_orphaned() -> None:
    sys.stdin.buffer.read()  # returns at end of file: the parent closed or died
    os._exit(0)


if __name__ == "__main__":
    # Here, not at the top: moto belongs to the `loadtest` extra, not to the runtime.
    from moto.server import main

    threading.Thread(target=_exit_when_orphaned, name="orphan-watch", daemon=True).start()
    main(sys.argv[1:])
