"""The local application check behind the heartbeat's application-down flag.

`tcp`: the service port accepts a connection. `http`: a GET gets the expected status.
`none`: the application is assumed up while the agent runs. The check's timeout must stay
well under the period, so a hung application cannot delay the heartbeat past its period.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from typing import Literal

CheckKind = Literal["none", "tcp", "http"]


@dataclass(frozen=True)
class AppCheck:
    kind: CheckKind = "none"
    address: str = "127.0.0.1"
    port: int = 80
    path: str = "/"
    expect_status: int = 200
    timeout_s: float = 0.5

    def __call__(self) -> tuple[bool, str]:
        """(up, why): why is empty when up."""
        if self.kind == "none":
            return True, ""
        try:
            if self.kind == "tcp":
                with socket.create_connection((self.address, self.port), timeout=self.timeout_s):
                    return True, ""
            # http.client: exactly one request, no proxy from the environment, no redirect.
            connection = http.client.HTTPConnection(self.address, self.port, timeout=self.timeout_s)
            try:
                connection.request("GET", self.path)
                response = connection.getresponse()
                response.read(64 * 1024)
            finally:
                connection.close()
        except (OSError, http.client.HTTPException) as exc:
            return False, f"{self.kind} check {self.address}:{self.port}: {exc or type(exc).__name__}"
        if response.status != self.expect_status:
            return False, f"GET {self.path}: status {response.status}, expected {self.expect_status}"
        return True, ""
