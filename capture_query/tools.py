"""The tools' command lines for one chunk, and their outputs cut into per-packet records.

Each tool is run with its own arguments plus an input option naming the chunk and, where
needed, an option that makes it print the chunk's packet number with each packet's output:
`-e frame.number` (tshark fields), `--number` (tcpdump), ngrep's own `#N`. The chunk's index
turns that number into the packet's place in the source file, so the output can be
renumbered as on the whole file (ngrep) and merged in the source's time order (--merge).
Outputs are bytes throughout: what the tool printed is what comes out.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


class ToolArgumentError(ValueError):
    pass


@dataclass
class OutRecord:
    """A packet's output lines (number: the packet's number in the chunk), or lines that
    belong to no packet (number None: a banner or header, printed once)."""
    number: int | None
    lines: list[bytes]
    banner: bool = False     # printed once, not once per chunk


class Tool(ABC):
    name: str
    input_options: frozenset[str]     # the tool's own input options: the store gives the input

    def check(self, args: Sequence[str]) -> None:
        for arg in args:
            if arg in self.input_options:
                raise ToolArgumentError(f"{self.name}: {arg} is not allowed, every chunk is the input")

    @abstractmethod
    def argv(self, args: Sequence[str], chunk: Path) -> list[str]:
        """The command line for one chunk."""

    @abstractmethod
    def records(self, args: Sequence[str], lines: Iterable[bytes]) -> Iterator[OutRecord]:
        """The output cut into records."""

    def render(self, args: Sequence[str], record: OutRecord, number: int) -> list[bytes]:
        """The record's lines as the tool prints them on the whole file (`number`: the packet's
        number there)."""
        return record.lines

    def mergeable(self, args: Sequence[str]) -> str | None:
        """None if --merge works with these arguments, else why not."""
        return None


class Tshark(Tool):
    name = "tshark"
    input_options = frozenset({"-r", "-i", "--read-file", "--interface"})

    def _fields(self, args: Sequence[str]) -> bool:
        return any(a == "-T" and b == "fields" for a, b in zip(args, args[1:])) or "-Tfields" in args

    def _separator(self, args: Sequence[str]) -> bytes:
        sep = "\t"
        for a, b in zip(args, args[1:]):
            if a == "-E" and b.startswith("separator="):
                value = b.split("=", 1)[1]
                sep = {"/t": "\t", "/s": " "}.get(value, value[:1])
        return sep.encode()

    def _header(self, args: Sequence[str]) -> bool:
        return any(a == "-E" and b in ("header=y", "header=Y") for a, b in zip(args, args[1:]))

    def argv(self, args: Sequence[str], chunk: Path) -> list[str]:
        args = list(args)
        if self._fields(args) and "-e" in args:
            # frame.number first: which packet each line is about (removed from the output).
            at = args.index("-e")
            args[at:at] = ["-e", "frame.number"]
        return ["tshark", "-r", str(chunk), *args]

    def records(self, args: Sequence[str], lines: Iterable[bytes]) -> Iterator[OutRecord]:
        numbered = self._fields(args) and "-e" in args
        sep, header = self._separator(args), self._header(args)
        for line in lines:
            if header:
                header = False
                first, _, rest = line.partition(sep)
                yield OutRecord(None, [rest], banner=True)
            elif numbered:
                first, _, rest = line.partition(sep)
                yield OutRecord(int(first) if first.strip().isdigit() else None, [rest])
            else:
                yield OutRecord(None, [line])     # not tied to a packet: printed as it comes

    def mergeable(self, args: Sequence[str]) -> str | None:
        if self._fields(args) and "-e" in args:
            return None
        return "tshark --merge needs field output (-T fields -e FIELD ...)"


_TCPDUMP_NUMBER = re.compile(rb"^ *(\d+)  (.*)$", re.S)


class Tcpdump(Tool):
    name = "tcpdump"
    input_options = frozenset({"-r", "-i", "-w", "-V", "--interface"})

    def argv(self, args: Sequence[str], chunk: Path) -> list[str]:
        # --number prefixes each packet's first line with its number in the chunk;
        # continuation lines (-v, -X) have no such prefix.
        return ["tcpdump", "-r", str(chunk), "--number", *args]

    def records(self, args: Sequence[str], lines: Iterable[bytes]) -> Iterator[OutRecord]:
        current: OutRecord | None = None
        for line in lines:
            match = _TCPDUMP_NUMBER.match(line)
            if match:
                if current is not None:
                    yield current
                current = OutRecord(int(match.group(1)), [match.group(2)])
            elif current is not None:
                current.lines.append(line)
            else:
                yield OutRecord(None, [line])
        if current is not None:
            yield current

    def render(self, args: Sequence[str], record: OutRecord, number: int) -> list[bytes]:
        if "--number" in args or "-#" in args:
            return [b"%5d  " % number + record.lines[0], *record.lines[1:]]
        return record.lines


_NGREP_HEADER = re.compile(rb"^[A-Z?] .* #(\d+)\r?\n?$")


class Ngrep(Tool):
    name = "ngrep"
    input_options = frozenset({"-I", "-d", "-O"})

    def argv(self, args: Sequence[str], chunk: Path) -> list[str]:
        # -q: no '#' marks for packets that do not match (they would run across lines).
        quiet = [] if "-q" in args else ["-q"]
        return ["ngrep", "-I", str(chunk), *quiet, *args]

    def records(self, args: Sequence[str], lines: Iterable[bytes]) -> Iterator[OutRecord]:
        current = OutRecord(None, [], banner=True)
        for line in lines:
            match = _NGREP_HEADER.match(line)
            if match:
                # The blank line before a packet's header belongs to that packet.
                lead = [current.lines.pop()] if current.lines and not current.lines[-1].strip() else []
                if current.lines:
                    yield current
                current = OutRecord(int(match.group(1)), [*lead, line])
            elif current.number is None and line.startswith(b"input: "):
                continue   # names the chunk file, not what the user asked about
            else:
                current.lines.append(line)
        if current.lines:
            yield current

    def render(self, args: Sequence[str], record: OutRecord, number: int) -> list[bytes]:
        lines = list(record.lines)
        for k, line in enumerate(lines):
            match = _NGREP_HEADER.match(line)
            if match:
                lines[k] = line[:match.start(1)] + str(number).encode() + line[match.end(1):]
                break
        return lines


TOOLS: dict[str, type[Tool]] = {"tshark": Tshark, "tcpdump": Tcpdump, "ngrep": Ngrep}


@dataclass(frozen=True)
class Query:
    """A tool and the user's arguments for it: what every chunk's task runs."""
    tool: str
    args: tuple[str, ...]
    wrapper: tuple[str, ...] = ()   # a command put in front (tests: a delay; benchmarks: limits)

    def impl(self) -> Tool:
        return TOOLS[self.tool]()

    def argv(self, chunk: Path) -> list[str]:
        return [*self.wrapper, *self.impl().argv(self.args, chunk)]

    def records(self, lines: Iterable[bytes]) -> Iterator[OutRecord]:
        return self.impl().records(self.args, lines)

    def render(self, record: OutRecord, number: int) -> list[bytes]:
        return self.impl().render(self.args, record, number)


def make_query(tool: str, args: Sequence[str], merge: bool = False) -> Query:
    if tool not in TOOLS:
        raise ToolArgumentError(f"unknown tool {tool!r}: one of {', '.join(TOOLS)}")
    impl = TOOLS[tool]()
    impl.check(args)
    if merge and (why := impl.mergeable(args)):
        raise ToolArgumentError(why)
    return Query(tool, tuple(args))
