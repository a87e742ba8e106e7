"""Moving the data of COPY and UNLOAD between S3 and the upstream session.

CopyFeeder streams the S3 objects of a COPY (downloaded, decompressed and converted from
Redshift's formats in a worker thread) into the upstream COPY FROM STDIN through a bounded
queue. UnloadWriter writes the rows of an UNLOAD query into files named as Redshift names them
(slices and parts, or serial files) in a work directory; unload_manifest renders the manifest.
The session (session.py) owns the protocol; this module only moves and formats bytes.
"""

import asyncio
import bz2
import gzip
import json
import os
import queue as thread_queue
import threading

from . import commands, formats, s3io, wire
from .commands import RsError


class CopyAborted(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class CopyFeeder:
    """Streams the S3 files of a COPY into the upstream COPY FROM STDIN. A worker thread
    downloads, decompresses and converts; the event loop sends CopyData. A bounded queue
    between them keeps memory flat and lets a slow upstream hold back the downloads."""

    def __init__(self, cmd, columns, s3, files):
        self.cmd = cmd
        self.input = formats.CopyInput(cmd, columns)
        self.s3 = s3
        self.files = files
        self.q = thread_queue.Queue(maxsize=8)
        self.stopping = threading.Event()
        self.rows = 0

    def _put(self, item):
        while not self.stopping.is_set():
            try:
                self.q.put(item, timeout=0.2)
                return True
            except thread_queue.Full:
                continue
        return False

    def _produce(self):
        try:
            for bucket, key in self.files:
                url = f"s3://{bucket}/{key}"
                body = self.s3.open(bucket, key)
                try:
                    stream = body
                    if self.cmd.compression == "gzip":
                        stream = gzip.GzipFile(fileobj=body, mode="rb")
                    elif self.cmd.compression == "bzip2":
                        stream = bz2.BZ2File(body, mode="rb")
                    for chunk in self.input.batches(stream, url):
                        if not self._put(("data", chunk)):
                            return
                finally:
                    body.close()
            self._put(("done", self.input.rows))
        except formats.LoadError as e:
            self._put(("error", e))
        except s3io.S3Failure as e:
            self._put(("error", e))
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            self._put(("error", formats.LoadError(f"Error decompressing or reading input: {e}",
                                                  code=1215)))
        except Exception as e:  # noqa: BLE001 - reported to the client, never lost
            self._put(("error", formats.LoadError(f"internal error in the stand-in: {e!r}",
                                                  code=9999)))

    def _get(self):
        while not self.stopping.is_set():
            try:
                return self.q.get(timeout=0.2)
            except thread_queue.Empty:
                continue
        return ("stopped", None)

    async def feed(self, session, failure):
        thread = threading.Thread(target=self._produce, daemon=True)
        thread.start()
        try:
            while True:
                kind, val = await asyncio.to_thread(self._get)
                if kind == "stopped":
                    raise CopyAborted("COPY stopped")
                if kind == "data":
                    session.uw.write(wire.fe_copy_data(val))
                    await session.uw.drain()
                elif kind == "done":
                    self.rows = val
                    # In an extended-protocol COPY the server holds CommandComplete until a
                    # Flush (the one sent after Execute was swallowed by copy-in mode).
                    session.uw.write(wire.FE_COPY_DONE + wire.FE_FLUSH)
                    await session.uw.drain()
                    return
                else:
                    failure["rs"] = self._error(val)
                    raise CopyAborted("COPY aborted by the Redshift stand-in")
        finally:
            self.stopping.set()

    def _error(self, e):
        table = self.cmd.table[-1].strip('"')
        if isinstance(e, s3io.S3Failure):
            return e.to_rs_error(context=f"S3 key being read : {self.cmd.source}")
        msg = (f"Load into table '{table}' failed.  Check 'stl_load_errors' system table for "
               "details.")
        where = e.reason
        if e.line is not None:
            where += f" (line {e.line}"
            if e.column:
                where += f", column {e.column}"
            where += ")"
        if e.filename:
            where += f" in {e.filename}"
        return RsError("XX000", msg, detail=commands.redshift_block(
            msg, code=e.code, context=where, location="load.cpp:1200"))

    def stop(self):
        self.stopping.set()


class UnloadWriter:
    """Writes UNLOAD output files into a work directory, as Redshift names them."""

    def __init__(self, cmd, workdir, slices):
        self.cmd = cmd
        self.dir = workdir
        self.slices = slices if cmd.parallel else 1
        self.fmt = None
        self.columns = []
        self.rows = 0
        self.files = []        # finished: [key, path, size, rows]
        self.open = []         # per slice: [key, path, fileobj, raw, bytes, rows, part]
        self.next_slice = 0
        self.prefix_key = s3io.split_url(cmd.target)[1]

    def _name(self, slice_no, part):
        ext = ""
        if self.cmd.extension:
            ext += "." + self.cmd.extension
        if self.cmd.compression == "gzip":
            ext += ".gz"
        elif self.cmd.compression == "bzip2":
            ext += ".bz2"
        if self.cmd.parallel:
            return f"{self.prefix_key}{slice_no:04d}_part_{part:02d}{ext}"
        # reference §7.3: serial files are <prefix>000, 001, ... (the 3-digit form of the
        # PARALLEL parameter's documentation; one doc example shows 4 digits).
        return f"{self.prefix_key}{part:03d}{ext}"

    def _open(self, slice_no, part):
        key = self._name(slice_no, part)
        path = os.path.join(self.dir, f"s{slice_no}_p{part}")
        raw = open(path, "wb")
        f = raw
        if self.cmd.compression == "gzip":
            f = gzip.GzipFile(fileobj=raw, mode="wb")
        elif self.cmd.compression == "bzip2":
            f = bz2.BZ2File(raw, mode="wb")
        entry = [key, path, f, raw, 0, 0, part]
        if self.cmd.header:
            self._write(entry, self.fmt.header(), header=True)
        return entry

    def _write(self, entry, text, header=False):
        data = text.encode("utf-8")
        entry[2].write(data)
        entry[4] += len(data)
        entry[5] += 1  # MANIFEST VERBOSE counts the header line as a record

    def _close(self, entry):
        entry[2].close()
        if entry[2] is not entry[3]:
            entry[3].close()
        self.files.append([entry[0], entry[1], os.path.getsize(entry[1]), entry[5]])

    def start(self, columns):
        self.columns = columns
        self.fmt = formats.UnloadOutput(self.cmd, columns)
        self.open = [self._open(s, 0) for s in range(self.slices)]

    def add(self, body):
        values = wire.parse_data_row(body)
        s = self.next_slice
        self.next_slice = (s + 1) % self.slices
        entry = self.open[s]
        limit = self.cmd.maxfilesize or int(6.2 * 1024 ** 3)
        if entry[4] >= limit:
            self._close(entry)
            entry = self.open[s] = self._open(s, entry[6] + 1)
        self._write(entry, self.fmt.row(values))
        self.rows += 1

    def finish(self):
        if self.fmt is None:  # the query described no rows (cannot happen for a SELECT)
            self.start([])
        for entry in self.open:
            self._close(entry)
        self.open = []
        self.files.sort(key=lambda f: f[0])
        return self.files


def unload_manifest(cmd, entries, out):
    """Redshift's UNLOAD manifest (reference §7.3), in its layout."""
    if not cmd.verbose:
        lines = ",\n".join(f'    {{"url":"{url}"}}' for url, _s, _r in entries)
        return '{\n  "entries": [\n' + lines + "\n  ]\n}\n"
    doc = {
        "entries": [{"url": url, "meta": {"content_length": size, "record_count": rows}}
                    for url, size, rows in entries],
        "schema": {"elements": [{"name": name, "type": formats.manifest_type(oid, typmod)}
                                for name, oid, typmod in out.columns]},
        "meta": {"content_length": sum(s for _u, s, _r in entries),
                 "record_count": sum(r for _u, _s, r in entries)},
        "author": {"name": "Amazon Redshift", "version": "1.0.0"},
    }
    return json.dumps(doc, indent=2) + "\n"
