"""Reference RecordIO files written by MXNet itself, for tests that must not trust our own writer.

Produced once with ``mxnet==1.9.1`` (installed in a throw-away virtualenv with ``numpy==1.23.5``;
mxnet is not a dependency of hardmine) by::

    import struct, mxnet as mx
    M = struct.pack("<I", 0xCED7230A)
    P = [b"", b"a", b"abcd", M, M + M, b"xx" + M + b"yy", b"abcd" + M + b"efgh" + M + b"ij",
         M + b"abcd" + M + M + b"q", b"abcdefgh" + M]
    w = mx.recordio.MXIndexedRecordIO("small.idx", "small.rec", "w")
    for i, p in enumerate(P):
        w.write_idx(i * 10, p)
    w.close()

    w = mx.recordio.MXIndexedRecordIO("img.idx", "img.rec", "w")
    w.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(2, [3.0, 5.0], 0, 0), b""))
    w.write_idx(1, mx.recordio.pack(mx.recordio.IRHeader(0, 0.0, 7, 9), b"\xff\xd8\xff\xe0jpeg0"))
    w.write_idx(2, mx.recordio.pack(mx.recordio.IRHeader(0, [1.0, 1.0], 0, 0), b"\xff\xd8\xff" + b"\x00" + M + b"z"))
    w.write_idx(3, mx.recordio.pack(mx.recordio.IRHeader(2, [1.0, 2.0], 0, 0), b""))
    w.write_idx(4, mx.recordio.pack(mx.recordio.IRHeader(2, [2.0, 3.0], 0, 0), b""))
    w.close()

The same check was run the other way round (MXNet's ``MXIndexedRecordIO.read_idx`` and sequential
``MXRecordIO.read`` on files written by ``fr_data.formats.recordio``): identical payloads.
"""

import struct

M = struct.pack("<I", 0xCED7230A)

MXNET_PAYLOADS = [
    b"", b"a", b"abcd", M, M + M, b"xx" + M + b"yy", b"abcd" + M + b"efgh" + M + b"ij",
    M + b"abcd" + M + M + b"q", b"abcdefgh" + M,
]
MXNET_KEYS = [10 * i for i in range(len(MXNET_PAYLOADS))]

MXNET_SMALL_REC = bytes.fromhex(
    "0a23d7ce000000000a23d7ce01000000610000000a23d7ce04000000616263640a23d7ce000000200a23d7ce00000060"
    "0a23d7ce000000200a23d7ce000000400a23d7ce000000600a23d7ce0800000078780a23d7ce79790a23d7ce04000020"
    "616263640a23d7ce04000040656667680a23d7ce02000060696a00000a23d7ce000000200a23d7ce0400004061626364"
    "0a23d7ce000000400a23d7ce01000060710000000a23d7ce0800002061626364656667680a23d7ce00000060"
)
MXNET_SMALL_IDX = "0\t0\n10\t8\n20\t20\n30\t32\n40\t48\n50\t72\n60\t88\n70\t124\n80\t164\n"

MXNET_IMG_REC = bytes.fromhex(
    "0a23d7ce20000000020000000000000000000000000000000000000000000000000040400000a0400a23d7ce21000000"
    "000000000000000007000000000000000900000000000000ffd8ffe06a706567300000000a23d7ce2400002002000000"
    "00000000000000000000000000000000000000000000803f0000803fffd8ff000a23d7ce010000607a0000000a23d7ce"
    "200000000200000000000000000000000000000000000000000000000000803f000000400a23d7ce2000000002000000"
    "00000000000000000000000000000000000000000000004000004040"
)
MXNET_IMG_IDX = "0\t0\n1\t40\n2\t84\n3\t140\n4\t180\n"


def tiny_image(value: int, fmt: str = "JPEG") -> bytes:
    """A real 8x8 encoded image whose grey level is ``value`` (distinct bytes per value)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (value % 256, 0, 255 - value % 256)).save(buf, format=fmt)
    return buf.getvalue()
