"""--allow-uid with the real daemon and the Python client run as another user:
the refusal, sent as soon as the connection is accepted, is read as a typed
PermissionDeniedError even when it closes the socket before the HELLO is
written (the C++ client reads it the same way)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

import genomed
from genomed_testing import Daemon

NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="runs a client as another user: needs root")
def test_an_unlisted_user_gets_permission_denied_every_time() -> None:
    with Daemon(extra_args=["--socket-mode", "0666", "--allow-uid", "12345"]) as daemon:
        # mkdtemp's 0700 would stop the other user at a directory: the daemon's
        # and the session's scratch parent it lies in (genomed_testing).
        os.chmod(daemon.dir, 0o755)
        if daemon.dir.parent != Path(tempfile.gettempdir()):  # never /tmp itself
            os.chmod(daemon.dir.parent, 0o755)
        attempts = 40
        child = os.fork()
        if child == 0:
            code = 0
            try:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                for _ in range(attempts):
                    try:
                        genomed.connect(daemon.socket).close()
                        code = 3  # served
                    except genomed.PermissionDeniedError:
                        pass
                    except genomed.Error:
                        code = 4  # another error: the refusal was lost
            except BaseException:
                code = 5
            os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.WIFEXITED(status), status
        assert os.WEXITSTATUS(status) == 0, "3: served, 4: not permission_denied, 5: crashed"
        with genomed.connect(daemon.socket) as client:
            assert client.stats()["permission_denied"] == attempts
