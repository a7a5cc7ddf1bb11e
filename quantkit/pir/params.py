"""Read the header of a combined ``.pdiparams`` file (Paddle ``save_combine`` format).

Pure Python. The file is a sequence of tensors, one per persistable variable in sorted
name order, each:
    uint32 version (0) | uint64 lod_level | lod_level x (uint64 nbytes, data)
    | uint32 tensor version (0) | int32 desc size | VarType.TensorDesc protobuf
    | raw data (numel x element size)
Names are not stored: the loader pairs tensors with the program's persistable variables
by sorted name, which is why the translated program must declare exactly the PIR
program's parameters with their names.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from quantkit.pir.errors import PirTransError

# framework.proto VarType.Type values
VARTYPE = {"bool": 0, "int16": 1, "int32": 2, "int64": 3, "float16": 4, "float32": 5,
           "float64": 6, "uint8": 20, "int8": 21, "bfloat16": 22, "complex64": 23,
           "complex128": 24}
VARTYPE_NAME = {v: k for k, v in VARTYPE.items()}
ELEMENT_SIZE = {"bool": 1, "int16": 2, "int32": 4, "int64": 8, "float16": 2, "float32": 4,
                "float64": 8, "uint8": 1, "int8": 1, "bfloat16": 2, "complex64": 8,
                "complex128": 16}


@dataclass(frozen=True)
class StoredTensor:
    dtype: str
    shape: tuple
    offset: int  # of the raw data
    nbytes: int


def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _tensor_desc(buf):
    """Minimal protobuf decode of VarType.TensorDesc {1: data_type, 2: repeated int64 dims}."""
    pos, dtype, dims = 0, None, []
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        fieldno, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
            if val >= 1 << 63:
                val -= 1 << 64
            if fieldno == 1:
                dtype = val
            elif fieldno == 2:
                dims.append(val)
        elif wire == 2:
            ln, pos = _varint(buf, pos)
            chunk = buf[pos:pos + ln]
            pos += ln
            if fieldno == 2:  # packed dims
                p = 0
                while p < len(chunk):
                    v, p = _varint(chunk, p)
                    dims.append(v - (1 << 64) if v >= 1 << 63 else v)
        else:
            raise ValueError(f"unexpected wire type {wire}")
    if dtype not in VARTYPE_NAME:
        raise ValueError(f"unknown tensor data type {dtype}")
    return VARTYPE_NAME[dtype], tuple(dims)


def read_params_header(params_path) -> list:
    """List the tensors stored in ``params_path``; PirTransError naming the file if malformed."""
    path = os.fspath(params_path)
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except OSError as e:
        raise PirTransError(f"{path}: cannot read the parameters file ({e.strerror or e})") from None
    out = []
    with f:
        try:
            pos = 0
            while pos < size:
                f.seek(pos)
                head = f.read(12)
                if len(head) < 12:
                    raise ValueError("truncated tensor header")
                version, lod_level = struct.unpack("<IQ", head)
                if version != 0:
                    raise ValueError(f"tensor version {version}")
                pos += 12
                for _ in range(lod_level):
                    f.seek(pos)
                    (nb,) = struct.unpack("<Q", f.read(8))
                    pos += 8 + nb
                f.seek(pos)
                h2 = f.read(8)
                if len(h2) < 8:
                    raise ValueError("truncated tensor desc")
                tversion, dsize = struct.unpack("<Ii", h2)
                if tversion != 0 or not 0 <= dsize < 1 << 20:
                    raise ValueError("bad tensor desc header")
                desc = f.read(dsize)
                dtype, dims = _tensor_desc(desc)
                pos += 8 + dsize
                numel = 1
                for d in dims:
                    if d < 0:
                        raise ValueError("negative dim")
                    numel *= d
                nbytes = numel * ELEMENT_SIZE[dtype]
                if pos + nbytes > size:
                    raise ValueError("truncated tensor data")
                out.append(StoredTensor(dtype, dims, pos, nbytes))
                pos += nbytes
        except (ValueError, struct.error) as e:
            raise PirTransError(f"{path}: not a combined Paddle parameters file "
                                f"(tensor {len(out)}: {e})") from None
    return out
