"""dump_format.py: reads the tagged binary dumps of tests/tools/dump.h into numpy arrays."""
import struct

import numpy as np


def read_dump(path):
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos); pos += 4
        name = data[pos:pos + n].decode(); pos += n
        dtype, ndim = struct.unpack_from("<II", data, pos); pos += 8
        shape = struct.unpack_from("<%dI" % ndim, data, pos); pos += 4 * ndim
        count = int(np.prod(shape)) if ndim else 1
        arr = np.frombuffer(data, dtype="<f4" if dtype == 0 else "<i4", count=count, offset=pos)
        pos += 4 * count
        out[name] = arr.reshape(shape).copy()
    return out
