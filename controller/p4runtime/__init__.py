"""A small synchronous P4Runtime client over grpcio and the P4Runtime protos (from finsy)."""

from controller.p4runtime.client import P4RuntimeClient, P4RuntimeError, WriteError
from controller.p4runtime.p4info import P4InfoIndex

__all__ = ["P4RuntimeClient", "P4RuntimeError", "WriteError", "P4InfoIndex"]
