"""Whole dumps: every entry of a map, as bpftool prints it, at batch speed.

write_dump() streams the batches of maps.walk(); _Plan picks, in one place, how a batch
is formatted:
- one entry at a time (mapfmt.EntryFormatter through the JSON writer): small batches,
  fd-holding maps, and whatever the fast paths cannot express;
- FixedFormatter, maps without BTF: every record has the same length, so a batch is one
  uint8 matrix filled from a 256-entry hex table;
- TemplateFormatter, maps with BTF: one bytes template per layout (rendered by the JSON
  writer from the entry's tree with placeholders for its leaves), filled with one `%` per
  chunk from numpy columns of the batch.
Big dumps format every other chunk in a forked worker (the second core), written in
order. numpy is imported only for big dumps.
"""

from __future__ import annotations

import os
import struct
from itertools import chain

from bpfsession.btf.dump import Dumper, char_array
from bpfsession.btf.parse import (
    INT_BOOL,
    INT_CHAR,
    INT_SIGNED,
    KIND_ARRAY,
    KIND_DATASEC,
    KIND_ENUM,
    KIND_ENUM64,
    KIND_FLOAT,
    KIND_FWD,
    KIND_INT,
    KIND_PTR,
    KIND_STRUCT,
    KIND_UNION,
    KIND_VAR,
    MODIFIERS,
)
from bpfsession.errors import BpfSessionError
from bpfsession.jsonw import Obj, compact, json_string, pretty
from bpfsession.mapfmt import EntryFormatter, Layout

FAST_MIN = 4096  # batches at least this big take a fast path (numpy's import costs ~60 ms)
CHUNK = 8192  # entries formatted at once by a fast path (and handed to the worker)
FORK_MIN = 65536  # maps at least this big (max_entries) are formatted on two cores


class FixedFormatter:
    """Formats a batch of entries of a map without `formatted` output in one go.

    Every record (text line, or JSON object) of such a map has the same length, so a
    record is a template with two hex digits to fill per byte: a batch becomes an
    (n, record) uint8 matrix filled column-wise from the key/value bytes. numpy is
    imported here only; small dumps never get here.
    """

    def __init__(self, layout: Layout, as_json: bool, open_end: bool = False):
        """`open_end`: JSON records without the closing "}" (and without `formatted`),
        for a caller that appends the formatted part itself."""
        import numpy as np

        self.np = np
        if open_end:
            layout = Layout(layout.type_name, layout.key_size, layout.value_size,
                            layout.ncpus)
        fmt = EntryFormatter(layout, as_json)
        self.layout = layout
        ks, vbuf = layout.key_size, layout.value_buf_size

        def render(byte: int) -> bytes:
            key, value = bytes([byte]) * ks, bytes([byte]) * vbuf
            if as_json:
                text = "," + compact(fmt.json_node(key, value))
                return (text[:-1] if open_end else text).encode()
            return fmt.plain(key, value).encode()

        # Render all-0x00 and all-0xff records: the literal text is the same in both, and
        # the places that differ are the hex digits, two per byte, in output order.
        zeros, ones = render(0), render(0xFF)
        if len(zeros) != len(ones) or fmt.id_field or layout.formatted:
            raise ValueError("records of this map are not fixed-width")
        diff = np.flatnonzero(np.frombuffer(zeros, np.uint8) != np.frombuffer(ones, np.uint8))
        self.hi = diff[0::2]
        self.cols = np.array(self._columns_in_output_order(ks + vbuf), dtype=np.intp)
        if self.hi.size != self.cols.size or not np.all(diff[1::2] == self.hi + 1):
            raise ValueError("unexpected record template")
        self.template = np.frombuffer(zeros, dtype=np.uint8)
        self.hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)

    def _columns_in_output_order(self, width: int) -> list[int]:
        lay = self.layout
        ks = lay.key_size
        if not lay.percpu:
            return list(range(width))
        cols = list(range(ks))
        for cpu in range(lay.ncpus):
            base = ks + cpu * lay.stride
            cols += list(range(base, base + lay.value_size))
        return cols

    def format(self, keys: bytes | bytearray, values: bytes | bytearray, n: int):
        """The batch's records as one contiguous uint8 array (a buffer for write())."""
        np = self.np
        lay = self.layout
        ks, vbuf = lay.key_size, lay.value_buf_size
        src = np.empty((n, ks + vbuf), dtype=np.uint8)
        src[:, :ks] = np.frombuffer(keys, dtype=np.uint8, count=n * ks).reshape(n, ks)
        src[:, ks:] = np.frombuffer(values, dtype=np.uint8, count=n * vbuf).reshape(n, vbuf)
        sel = src[:, self.cols]
        out = np.empty((n, self.template.size), dtype=np.uint8)
        out[:] = self.template
        out[:, self.hi] = self.hexdigits[sel >> 4]
        out[:, self.hi + 1] = self.hexdigits[sel & 15]
        return out.reshape(-1)



# --- maps with BTF: one template per layout -----------------------------------------------

# Placeholders in the rendered tree, turned into conversions of the bytes template.
_D, _S, _X = "\x01", "\x02", "\x03"  # %d (an int), %s (bytes), %#x (an int in hex)
_MASK64 = (1 << 64) - 1


class TemplateFormatter:
    """A batch of a map with BTF, as bpftool prints it (text, -j or -p), in one `%` per
    chunk: the entry's tree (the same one EntryFormatter builds) is rendered once by the
    JSON writer with placeholders for its leaves, and every leaf becomes a column of the
    batch, read with numpy. Raises NotImplementedError for a layout it cannot express."""

    def __init__(self, lay: Layout, as_json: bool, pretty_json: bool):
        import numpy as np

        self.np = np
        self.lay = lay
        self.cols: list = []
        plain = not as_json
        depth = 1  # entries are rendered at depth 1 (inside the top-level array)
        if as_json:
            tree = Obj([("key", [self._hex("k", 0, lay.key_size)])])
            if lay.percpu:
                tree.append(("values", [
                    Obj([("cpu", str(i)),
                         ("value", [self._hex("v", i * lay.stride, lay.value_size)])])
                    for i in range(lay.ncpus)]))
            else:
                tree.append(("value", [self._hex("v", 0, lay.value_size)]))
            tree.append(("formatted", self._formatted(plain, depth + 1, pretty_json)))
        else:
            tree = self._formatted(plain, depth, True)
        text = pretty(tree, depth) if pretty_json or plain else compact(tree)
        text = "," + text.replace("%", "%%")
        self.template = (text.replace(_D, "%d").replace(_S, "%s").replace(_X, "%#x")
                         .encode())

    def _formatted(self, plain: bool, depth: int, pretty_json: bool) -> Obj:
        """bpftool's do_dump_btf tree: {key, value} or {key, values: [{cpu, value}]}."""
        lay = self.lay
        node = Obj()
        if lay.key_type:
            c = _Compiler(self, lay.key_btf, plain, pretty_json, "k")
            node.append(("key", c.node(lay.key_type, 0, 0, depth + 1)))
        if lay.value_type:
            c = _Compiler(self, lay.value_btf, plain, pretty_json, "v")
            if lay.percpu:
                node.append(("values", [
                    Obj([("cpu", str(i)),
                         ("value", c.node(lay.value_type, i * lay.stride, 0, depth + 3))])
                    for i in range(lay.ncpus)]))
            else:
                node.append(("value", c.node(lay.value_type, 0, 0, depth + 1)))
        return node

    def column(self, marker: str, get) -> str:
        """A leaf: `get(mats)` gives its values for a chunk ({"k": keys, "v": values})."""
        self.cols.append(get)
        return marker

    def field(self, mat, off: int, size: int, signed: bool):
        """Little-endian ints of `size` bytes at `off` of every row, as a numpy array."""
        np = self.np
        dt = np.dtype({"names": ["v"], "formats": [f"<{'i' if signed else 'u'}{size}"],
                       "offsets": [off], "itemsize": mat.shape[1]})
        return mat.reshape(-1).view(dt)["v"]

    _CELLS = b"".join(b'"0x%02x",' % b for b in range(256))

    def _hex(self, side: str, off: int, size: int) -> str:
        """bpftool's ["0x01","0x00",...] items, gathered from a 256 x 7 table."""
        if not size:
            raise NotImplementedError("empty key or value")
        np = self.np
        cells = np.frombuffer(self._CELLS, np.uint8).reshape(256, 7)
        width = size * 7 - 1

        def get(mats):
            sub = mats[side][:, off:off + size]
            g = cells[sub].reshape(len(sub), size * 7)[:, :width]
            return np.ascontiguousarray(g).view(f"S{width}").ravel().tolist()

        return self.column(_S, get)

    def format(self, keys, values, n: int) -> bytes:
        """n entries, each with its leading separator (the caller drops the first)."""
        np = self.np
        lay = self.lay
        mats = {"k": np.frombuffer(keys, np.uint8, n * lay.key_size).reshape(n, lay.key_size),
                "v": np.frombuffer(values, np.uint8, n * lay.value_buf_size)
                .reshape(n, lay.value_buf_size)}
        cols = [get(mats) for get in self.cols]
        rows = zip(*cols, strict=True)
        return b"".join([self.template] * n) % tuple(chain.from_iterable(rows))


class _Compiler:
    """One side (key or value) of a layout: walks the BTF type the way bpftool's
    btf_dumper does (and btf.dump.Dumper after it), emitting literal tokens where the
    output does not depend on the data and columns where it does."""

    def __init__(self, tf: TemplateFormatter, btf, plain: bool, pretty_json: bool,
                 side: str):
        self.tf, self.btf, self.plain, self.pretty, self.side = tf, btf, plain, pretty_json, side
        self.np = tf.np
        self.leaves = 0

    def _col(self, marker: str, get) -> str:
        self.leaves += 1
        if self.leaves > 4096:
            raise NotImplementedError("too many fields for a template")
        side = self.side
        return self.tf.column(marker, lambda mats: get(mats[side]))

    def node(self, tid: int, off: int, bit_offset: int, depth: int):
        t = self.btf.types[tid]
        kind = t.kind
        if kind == KIND_INT:
            return self._int(t, off, bit_offset)
        if kind in (KIND_STRUCT, KIND_UNION):
            out = Obj()
            for m in t.members:
                data_off = off + m.bit_offset // 8
                if m.bitfield_size:
                    out.append((m.name, self._bits(m.bitfield_size, m.bit_offset % 8,
                                                   data_off)))
                else:
                    out.append((m.name, self.node(m.type, data_off, m.bit_offset % 8,
                                                  depth + 1)))
            return out
        if kind == KIND_ARRAY:
            if char_array(self.btf, t):
                return self._chars(tid, t, off, depth)
            step = self.btf.size_of(t.ref)
            return [self.node(t.ref, off + i * step, 0, depth + 1) for i in range(t.nelems)]
        if kind in (KIND_ENUM, KIND_ENUM64):
            return self._enum(t, off)
        if kind in MODIFIERS:
            return self.node(self.btf.resolve(tid), off, bit_offset, depth)
        if kind == KIND_PTR:
            if not self.plain:
                return self._col(_D, lambda m: self.tf.field(m, off, 8, False).tolist())
            return self._col(_S, lambda m: [b"%#x" % v if v else b"(nil)"
                                            for v in self.tf.field(m, off, 8, False).tolist()])
        if kind == KIND_VAR:
            return Obj([(t.name, self.node(t.ref, off, bit_offset, depth + 1))])
        if kind == KIND_DATASEC:
            return Obj([(t.name, [self.node(v, off + voff, 0, depth + 2)
                                  for v, voff, _ in t.vars])])
        if kind == KIND_FLOAT:
            fmt = {2: "<e", 4: "<f", 8: "<d"}.get(t.size)
            if not fmt:
                return "null"
            return self._col(_S, lambda m: [repr(x).encode() for (x,) in struct.iter_unpack(
                fmt, m[:, off:off + t.size].tobytes())])
        if kind == 0:
            return "(unknown)"
        if kind == KIND_FWD:
            return "(fwd-kind-invalid)"
        return "(unsupported-kind"

    def _int(self, t, off: int, bit_offset: int):
        bits = t.bits
        if bit_offset or t.bit_offset or bits % 8 or bits not in (8, 16, 32, 64, 128):
            total = bit_offset + t.bit_offset
            return self._bits(bits, total % 8, off + total // 8)
        field = self.tf.field
        if bits == 128:
            return self._hexint(lambda m: [hi << 64 | lo for lo, hi in zip(
                field(m, off, 8, False).tolist(), field(m, off + 8, 8, False).tolist(),
                strict=True)])
        size, enc = bits // 8, t.encoding
        if enc in (0, INT_SIGNED):
            return self._col(_D, lambda m: field(m, off, size, enc == INT_SIGNED).tolist())
        if enc == INT_CHAR:
            np = self.np
            table = np.array([_char_token(c, self.plain).encode() for c in range(256)],
                             dtype=object)
            return self._col(_S, lambda m: table[m[:, off]].tolist())
        if enc == INT_BOOL:
            return self._col(_S, lambda m: [b"true" if v else b"false"
                                            for v in field(m, off, size, False).tolist()])
        return "(unsupported-kind"

    def _hexint(self, get) -> str:
        """bpftool prints bitfields and 128-bit ints in hex: 0x1 in text, "0x1" in JSON."""
        marker = self._col(_X, get)
        return marker if self.plain else f'"{marker}"'

    def _bits(self, nr_bits: int, bit_offset: int, off: int) -> str:
        nbytes = (bit_offset + nr_bits + 7) // 8
        mask = (1 << nr_bits) - 1
        np = self.np
        if nbytes > 8:
            return self._hexint(lambda m: [
                (int.from_bytes(row, "little") >> bit_offset) & mask
                for row in np.ascontiguousarray(m[:, off:off + nbytes]).view(
                    f"V{nbytes}").ravel().tolist()])

        def get(m):
            if nbytes in (1, 2, 4, 8):
                raw = self.tf.field(m, off, nbytes, False).astype(np.uint64)
            else:
                raw = np.zeros(len(m), np.uint64)
                for i in range(nbytes):
                    raw |= m[:, off + i].astype(np.uint64) << np.uint64(8 * i)
            return ((raw >> np.uint64(bit_offset)) & np.uint64(mask)).tolist()

        return self._hexint(get)

    def _enum(self, t, off: int):
        if t.size not in (1, 2, 4, 8):
            return "(unsupported-kind"
        signed = True if t.kind == KIND_ENUM else t.kflag
        names: dict[int, bytes] = {}
        for name, val in t.values:
            names.setdefault(val & _MASK64, json_string(name).encode())
        field = self.tf.field
        return self._col(_S, lambda m: [names.get(v & _MASK64) or b"%d" % v
                                        for v in field(m, off, t.size, signed).tolist()])

    def _chars(self, tid: int, t, off: int, depth: int) -> str:
        """A char array: a string when its bytes are printable up to a NUL, else an array
        of chars (decided per entry, as bpftool does)."""
        np = self.np
        count = t.nelems
        dumper = Dumper(self.btf, self.plain)
        as_text = pretty if self.pretty else (lambda node, _depth: compact(node))

        def get(m):
            sub = np.ascontiguousarray(m[:, off:off + count])
            zero = sub == 0
            first = zero.argmax(1)
            unprintable = (sub < 0x20) | (sub >= 0x7F)
            before = np.arange(count) < first[:, None]
            is_str = zero.any(1) & ~(unprintable & before).any(1)
            raw = sub.view(f"V{count}").ravel().tolist()
            return [b'"' + r.partition(b"\0")[0].replace(b"\\", b"\\\\").replace(b'"', b'\\"')
                    + b'"' if s else as_text(dumper.dump(tid, r), depth).encode()
                    for s, r in zip(is_str.tolist(), raw, strict=True)]

        return self._col(_S, get)


def _char_token(c: int, plain: bool) -> str:
    """btf_dumper's char: the character when printable, else its code."""
    if 0x20 <= c < 0x7F:
        return json_string(chr(c))
    return f"{c:#x}" if plain else f'"\\u00{c:02x}"'


# --- two cores ------------------------------------------------------------------------------

_F_SETPIPE_SZ = 1031  # fcntl.h: a pipe buffer that holds a chunk (1 MiB is the default max)
_HEADER = struct.Struct("<QQQ")  # entries, key bytes, value bytes (0, 0, 0: stop)


class _Worker:
    """A forked child that formats the chunks it is sent with the parent's formatter and
    sends the bytes back; the parent writes them in order. The child only reads and
    writes its two pipes and leaves with os._exit (no atexit, no inherited buffers)."""

    def __init__(self, formatter):
        import fcntl

        to_child, self._to_child = os.pipe()
        self._from_child, from_child = os.pipe()
        for fd in (self._to_child, from_child):
            try:
                fcntl.fcntl(fd, _F_SETPIPE_SZ, 1 << 20)
            except OSError:
                pass  # a smaller pipe only means more wake-ups
        self.pid = os.fork()
        if self.pid == 0:
            status = 1
            try:
                os.close(self._to_child)
                os.close(self._from_child)
                _serve(formatter, to_child, from_child)
                status = 0
            finally:
                os._exit(status)
        os.close(to_child)
        os.close(from_child)
        self._reader = os.fdopen(self._from_child, "rb")

    def send(self, keys, values, n: int) -> None:
        _write_all(self._to_child, _HEADER.pack(n, len(keys), len(values)))
        _write_all(self._to_child, keys)
        _write_all(self._to_child, values)

    def receive(self) -> bytes:
        head = self._reader.read(8)
        if len(head) != 8:
            raise BpfSessionError("the dump's formatting worker died: run the dump again")
        (size,) = struct.unpack("<Q", head)
        return self._reader.read(size)

    def close(self) -> None:
        try:
            _write_all(self._to_child, _HEADER.pack(0, 0, 0))
        except OSError:
            pass
        os.close(self._to_child)
        self._reader.close()
        os.waitpid(self.pid, 0)


def _write_all(fd: int, data) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def _serve(formatter, inp: int, out: int) -> None:
    reader = os.fdopen(inp, "rb")
    while True:
        head = reader.read(_HEADER.size)
        if len(head) != _HEADER.size:
            return
        n, klen, vlen = _HEADER.unpack(head)
        if not n:
            return
        keys, values = reader.read(klen), reader.read(vlen)
        data = formatter.format(keys, values, n)
        _write_all(out, struct.pack("<Q", len(memoryview(data).cast("B"))))
        _write_all(out, data)


# --- the one choice, and the dump -------------------------------------------------------------


class _Plan:
    """How this dump's batches are formatted: the one place that decides."""

    def __init__(self, lay: Layout, as_json: bool, pretty_json: bool, big: bool):
        self.entries = EntryFormatter(lay, as_json)
        self.lay, self.as_json, self.pretty = lay, as_json, pretty_json
        self.bracketed = as_json or lay.formatted
        fast = big and not self.entries.id_field
        if lay.formatted:
            self.kind = "template" if fast else "entries"
        else:
            self.kind = "fixed" if fast and not pretty_json and \
                lay.key_size + lay.value_buf_size <= 4096 else "entries"
        self.two_cores = self.kind != "entries" and big == "huge" and _cpus() > 1
        self._fast = None
        if self.kind != "entries":
            # numpy takes ~60 ms to import: start now, while the first batches are walked.
            import importlib
            import threading

            threading.Thread(target=importlib.import_module, args=("numpy",),
                             daemon=True).start()

    def fast(self):
        """The batch formatter of a fast path (built at first use), or None."""
        if self._fast is None and self.kind != "entries":
            try:
                self._fast = (TemplateFormatter(self.lay, self.as_json, self.pretty)
                              if self.kind == "template"
                              else FixedFormatter(self.lay, self.as_json))
            except NotImplementedError:
                self.kind = "entries"
                self.two_cores = False
        return self._fast

    def one_by_one(self, keys, values, n: int, first: bool) -> bytes:
        fmt, lay = self.entries, self.lay
        ks, vs = lay.key_size, lay.value_buf_size
        parts = []
        for i in range(n):
            key = bytes(keys[i * ks:(i + 1) * ks])
            value = bytes(values[i * vs:(i + 1) * vs])
            if not self.bracketed:
                parts.append(fmt.plain(key, value))
                continue
            sep = "" if first and not i else ","
            if self.as_json and not self.pretty:
                parts.append(sep + compact(fmt.json_node(key, value)))
            else:
                parts.append(sep + pretty(fmt.node(key, value), 1))
        return "".join(parts).encode()


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return 1


def size_class(max_entries: int) -> bool | str:
    """`big` for write_dump from a map's max_entries: False, True (fast paths) or "huge"
    (fast paths on two cores)."""
    if max_entries >= FORK_MIN:
        return "huge"
    return max_entries >= FAST_MIN


def write_dump(out, batches, lay: Layout, as_json: bool, pretty_json: bool = False,
               big: bool | str = False) -> int:
    """Stream a dump to the binary file `out` as bpftool prints it; returns the count.

    `batches` yields (keys, values, n) with fixed-size records; a batch may be reused by
    the walk once the next one is taken, so each is formatted (or sent to the worker)
    before that. Output starts with the first batch and memory stays at a few chunks.
    `big`: size_class() of the map.
    """
    plan = _Plan(lay, as_json, pretty_json, big)
    total = 0
    if plan.bracketed:
        out.write(b"[")
    writer = _OrderedWriter(out, strip_first=plan.bracketed)
    worker: _Worker | None = None
    try:
        for keys, values, n in batches:
            fast = plan.fast() if n >= FAST_MIN or plan._fast is not None else None
            if fast is None:
                writer.local(plan.one_by_one(keys, values, n, not total), raw=True)
            else:
                if plan.two_cores and worker is None:
                    worker = _Worker(fast)
                _chunks(fast, worker, writer, keys, values, n, lay)
            total += n
        writer.finish(worker)
    finally:
        if worker is not None:
            worker.close()
    if not plan.bracketed:
        out.write(f"Found {total} element{'' if total == 1 else 's'}\n".encode())
    elif as_json and not pretty_json:
        out.write(b"]\n")
    else:
        out.write(b"\n]\n" if total else b"]\n")
    return total


def _chunks(fast, worker, writer, keys, values, n: int, lay: Layout) -> None:
    ks, vs = lay.key_size, lay.value_buf_size
    kv, vv = memoryview(keys), memoryview(values)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        k, v = kv[lo * ks:hi * ks], vv[lo * vs:hi * vs]
        if worker is not None and not writer.worker_busy:
            worker.send(k, v, hi - lo)
            writer.sent(worker)
        else:
            writer.local(fast.format(k, v, hi - lo), worker=worker)


class _OrderedWriter:
    """Writes chunks in order when every other one is formatted by the worker: chunk A
    goes to the worker, B is formatted here, then A's bytes and B's are written (B's after
    the worker got its next chunk, so that it is never idle while we write)."""

    def __init__(self, out, strip_first: bool):
        self.out, self.strip_first = out, strip_first
        self.worker_busy = False
        self.held = None
        self.started = False

    def _write(self, data) -> None:
        view = memoryview(data).cast("B")
        if not view:
            return
        if not self.started and self.strip_first:
            view = view[1:]  # the first record's separator
        self.started = True
        self.out.write(view)

    def sent(self, worker) -> None:
        self.worker_busy = True
        if self.held is not None:
            self._write(self.held)
            self.held = None

    def local(self, data, worker=None, raw: bool = False) -> None:
        if self.worker_busy:
            self._write(worker.receive())
            self.worker_busy = False
            self.held = data
            return
        if self.held is not None:
            self._write(self.held)
            self.held = None
        if raw:
            # one_by_one() wrote its own separators
            self.started = self.started or bool(data)
            if data:
                self.out.write(data)
            return
        self._write(data)

    def finish(self, worker) -> None:
        if self.worker_busy:
            self._write(worker.receive())
            self.worker_busy = False
        if self.held is not None:
            self._write(self.held)
            self.held = None
