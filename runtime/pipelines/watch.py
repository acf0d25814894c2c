"""``emseg-lite watch INBOX -o OUT``: segment sections as the microscope writes them.

The inbox is polled (``os.scandir``), which works on the SMB and NFS shares
that acquisition PCs write to and inotify does not see. A file is taken when
it is complete: its size and modification time unchanged for ``settle``
seconds *and* it decodes; some shares reserve a file's full size before its
bytes arrive, and some keep the time too until the writer closes the file, so
neither proves the bytes are there. A settled file that does not decode is
tried again quietly at every poll; only one that stays broken for another
``settle`` seconds is reported, once, and skipped until it changes. With
``--once`` there is no next poll: a broken file is reported when its modification
time is at least twice ``settle`` old, else left for the next run.

Each section gets one output, written atomically: ``<name>_mask.png`` for a
single-section file, ``<name>_z0000_mask.png``, ``..._z0001_...`` for the
sections of a stack (an MRC file -- SerialEM appends to one -- or a TIFF with
several pages). A growing stack only has its new sections segmented; existing
outputs are never rewritten unless the input was replaced. The outputs are
the state: after a kill -9 the same command finds what is done by what exists
in OUT (temporary files of the killed run are removed), plus a small journal
(``.emseg-watch.json``, written atomically) of what was replaced or failed and
of the settings that decide a mask (model, post-processing, resampling): a
restart with other settings is refused rather than leave OUT with masks of two
kinds that nothing tells apart.

Every section goes through the block-wise core (``blockwise``), one at a time,
on an interpreter with every core: at the microscope the latency of the newest
section matters more than throughput.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from ..core.card import PostProcessing
from ..core.errors import EmsegError, InputError, OutputError
from ..core.files import atomic_write_text
from ..formats import sinks
from ..formats.pixelsize import ScaleCheck
from ..formats.reader import natural_key, open_section
from ..formats.section import IMAGE_SUFFIXES, MRC_SUFFIXES, Section
from ..post.postprocess import region_ops
from .blockwise import finish_block, infer_block, plan_for, prepare_page
from .outputs import OUTPUT_TAGS
from .segmenter import Segmenter

JOURNAL = ".emseg-watch.json"


@dataclass
class SectionWritten:
    path: Path
    section: int | None  # None: a single-section file
    output: Path
    seconds: float
    regions: int | None
    settled_at: float
    written_at: float

    def record(self) -> dict:
        return {"file": str(self.path), "section": self.section, "output": str(self.output),
                "seconds": round(self.seconds, 4), "regions": self.regions, "settled_at": self.settled_at,
                "written_at": self.written_at, "latency_s": round(self.written_at - self.settled_at, 4)}


@dataclass
class FileSkipped:
    path: Path
    error: EmsegError


Event = Union[SectionWritten, FileSkipped]


@dataclass
class _Entry:
    """What the journal remembers of an input."""

    size: int
    mtime_ns: int
    stack: bool
    failed: str | None = None


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float = field(default_factory=time.monotonic)
    broken_since: float | None = None
    """When this version of the file first failed to decode (``Watcher._broken``)."""


class Watcher:
    def __init__(self, segmenter: Segmenter, inbox: Path, out: Path, post: PostProcessing,
                 settle: float = 2.0, block: int | None = None, scale: ScaleCheck | None = None):
        self.segmenter = segmenter
        self.inbox = inbox
        self.out = out
        self.post = post
        self.settle = settle
        self.block = block
        self._seen: dict[str, _Seen] = {}
        self._scale = scale or ScaleCheck(segmenter.card.training.pixel_size_nm)
        self._settings = self._mask_settings()
        self._journal = self._load_journal()
        self._save_journal()
        self._remove_leftovers()

    # -- state ---------------------------------------------------------------------------------

    def _mask_settings(self) -> dict:
        """What decides a section's mask besides the section (not ``--block`` or threads: the
        block-wise core gives the same mask whatever the block), in the journal's JSON form."""
        resample = self._scale.resample
        return json.loads(json.dumps({
            "model": self.segmenter.card.model.sha256, "post-processing": asdict(self.post),
            "--resample": resample, "--pixel-size-nm": self._scale.pixel_size_nm if resample else None}))

    def _load_journal(self) -> dict[str, _Entry]:
        """The journal of a previous run into OUT; refused (``OutputError``) if its masks were
        made with other settings. A journal from before settings were kept is taken as it is."""
        try:
            data = json.loads((self.out / JOURNAL).read_text())
            files = {name: _Entry(**entry) for name, entry in data.get("files", {}).items()}
        except (FileNotFoundError, ValueError, TypeError):
            return {}
        before = data.get("settings", self._settings)
        changed = [key for key, value in self._settings.items() if before.get(key) != value]
        if changed:
            raise OutputError(self.out, f"holds masks made with another {', '.join(changed)}: watch into a new "
                                        "folder, or empty this one to start again")
        return files

    def _save_journal(self) -> None:
        data = {"settings": self._settings,
                "files": {name: asdict(entry) for name, entry in sorted(self._journal.items())}}
        atomic_write_text(self.out / JOURNAL, json.dumps(data, indent=1) + "\n")

    def _remove_leftovers(self) -> None:
        """Temporary files of a run that was killed mid-write (``files.AtomicFile``)."""
        for entry in os.scandir(self.out):
            if entry.name.startswith(".") and ".tmp." in entry.name and entry.is_file():
                Path(entry.path).unlink(missing_ok=True)

    # -- scanning ------------------------------------------------------------------------------

    def candidates(self) -> list[os.DirEntry]:
        """Image files in the inbox, ours excluded, in natural order."""
        found = []
        with os.scandir(self.inbox) as entries:
            for entry in entries:
                name = entry.name
                stem, suffix = os.path.splitext(name)
                if name.startswith(".") or suffix.lower() not in IMAGE_SUFFIXES or stem.endswith(OUTPUT_TAGS):
                    continue
                found.append(entry)
        return sorted(found, key=lambda e: natural_key(Path(e.name)))

    def _settled(self, entry: os.DirEntry, now_wall: float, once: bool) -> tuple[bool, os.stat_result | None]:
        try:
            info = entry.stat()
        except FileNotFoundError:  # gone since the scan
            self._seen.pop(entry.name, None)
            return False, None
        except OSError:  # a symlink loop, say: settled as far as it will ever be, and open_section says why
            info = entry.stat(follow_symlinks=False)
        seen = self._seen.get(entry.name)
        if seen is None or (seen.size, seen.mtime_ns) != (info.st_size, info.st_mtime_ns):
            self._seen[entry.name] = _Seen(info.st_size, info.st_mtime_ns)
            if not once:
                return False, info
        age = now_wall - info.st_mtime_ns / 1e9
        stable = time.monotonic() - self._seen[entry.name].since
        return age >= self.settle and (once or stable >= self.settle), info

    def poll(self, once: bool = False, stop: threading.Event | None = None) -> Iterator[Event]:
        """One pass over the inbox: every settled file with sections not yet segmented."""
        for entry in self.candidates():
            if stop is not None and stop.is_set():
                return
            settled, info = self._settled(entry, time.time(), once)
            if not settled:
                continue
            yield from self._process(Path(entry.path), info, time.time(), once, stop)

    # -- processing ----------------------------------------------------------------------------

    def _process(self, path: Path, info: os.stat_result, settled_at: float, once: bool,
                 stop: threading.Event | None) -> Iterator[Event]:
        name = path.name
        entry = self._journal.get(name)
        changed = entry is not None and (entry.size, entry.mtime_ns) != (info.st_size, info.st_mtime_ns)
        if entry is not None and not changed:
            return  # finished (the journal is written after a file's last section) or failed and reported once
        try:
            section = open_section(path)
        except EmsegError as exc:
            yield from self._broken(path, info, exc, entry, once)
            return
        with section:
            try:
                factor = self._scale.check(section)
            except EmsegError as exc:
                yield from self._broken(path, info, exc, entry, once)
                return
            stack = section.is_stack or path.suffix.lower() in MRC_SUFFIXES
            replaced = changed and not (entry.stack and stack and info.st_size > entry.size)
            try:
                for index in range(section.pages):
                    if stop is not None and stop.is_set():
                        return
                    output = self._output(path, index if stack else None, section)
                    if output.exists() and not replaced:
                        continue
                    yield self._segment(section, index, stack, output, settled_at, factor)
            except EmsegError as exc:
                yield from self._broken(path, info, exc, entry, once)
                return
        self._journal[name] = _Entry(info.st_size, info.st_mtime_ns, stack)
        self._save_journal()

    def _broken(self, path: Path, info: os.stat_result, error: EmsegError, entry: _Entry | None,
                once: bool) -> Iterator[Event]:
        """A settled file that did not decode: perhaps its bytes are still arriving, so it is
        left for the next poll without a word until it has stayed so, unchanged, for another
        ``settle`` seconds (with ``once``: until its time is two settle periods old, else it
        is left for the next run), then reported once."""
        seen = self._seen[path.name]
        if seen.broken_since is None:
            seen.broken_since = time.monotonic()
        if once:
            waited = time.time() - info.st_mtime_ns / 1e9 - self.settle
        else:
            waited = time.monotonic() - seen.broken_since
        if waited >= self.settle:
            yield from self._failed(path, info, error, entry)

    def _failed(self, path: Path, info: os.stat_result, error: EmsegError, entry: _Entry | None) -> Iterator[Event]:
        self._journal[path.name] = _Entry(info.st_size, info.st_mtime_ns, bool(entry and entry.stack), str(error))
        self._save_journal()
        yield FileSkipped(path, error)

    def _output(self, path: Path, index: int | None, section: Section) -> Path:
        kind = sinks.layout(1, section.height, section.width)
        tag = "" if index is None else f"_z{index:04d}"
        return self.out / f"{path.stem}{tag}_mask{sinks.suffix(kind)}"

    def _segment(self, section: Section, index: int, stack: bool, output: Path, settled_at: float,
                 scale: float | None) -> SectionWritten:
        start = time.perf_counter()
        plan = plan_for(self.segmenter.card, section.height, section.width, self.post, self.block,
                        self.segmenter.grid.halo, scale)
        page = prepare_page(self.segmenter, section, index, plan)
        sink = sinks.open_sink(sinks.layout(1, section.height, section.width), output, 1, section.height,
                               section.width, np.uint8, compress=True, pixel_size_nm=section.pixel_size_nm)
        regions = None
        try:
            for block in page.blocks:
                done = finish_block(infer_block(self.segmenter, page, block), self.post)
                sink.write(0, block.core, self.segmenter.to_mask(done.membrane))
                if len(page.blocks) == 1:
                    regions = region_ops().label(~done.membrane)[1]
            sink.end_page(0)
            sink.commit()
        except BaseException:
            sink.abort()
            raise
        return SectionWritten(section.path, index if stack else None, output, time.perf_counter() - start, regions,
                              settled_at, time.time())


def check_folders(inbox: Path, out: Path) -> None:
    if not inbox.is_dir():
        raise InputError(inbox, "no such folder to watch" if not inbox.exists() else "is not a folder")
    if out.resolve() == inbox.resolve():
        raise OutputError(out, "the output folder must not be the inbox (masks would look like new sections)")
