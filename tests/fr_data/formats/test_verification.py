"""Tests of InsightFace .bin verification packs: round trip, Python-2 and numpy-array packs, the
restricted unpickler (malicious pickles refused, nothing executed), and decoding."""

from __future__ import annotations

import _codecs
import io
import os
import pickle
import struct
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from fr_data.formats.verification import (
    _RECONSTRUCT,
    VerificationPack,
    check_images,
    decode_pack,
    load_bin,
    save_bin,
)
from fr_data.io.errors import DataError
from tests.damage import BYTE_KINDS, damage_bytes


def _jpeg(value: int, size: int = 112) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _py2_pickle(bins: list[bytes], issame: list[bool]) -> bytes:
    """What Python 2's cPickle.dump((bins, issame), f, protocol=2) writes: byte strings as BINSTRING."""
    out = [b"\x80\x02", b"]", b"("]  # PROTO 2, EMPTY_LIST, MARK
    for b in bins:
        out.append(b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b)
    out += [b"e", b"]", b"("]  # APPENDS, EMPTY_LIST, MARK
    out += [b"\x88" if v else b"\x89" for v in issame]  # NEWTRUE / NEWFALSE
    out += [b"e", b"\x86", b"."]  # APPENDS, TUPLE2, STOP
    return b"".join(out)


class _RunsCommand:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_round_trip(tmp_path):
    images = [_jpeg(v) for v in (10, 20, 30, 40)]
    save_bin(tmp_path / "p.bin", images, [True, False])
    pack = load_bin(tmp_path / "p.bin")
    assert pack.images == images and pack.issame.dtype == bool and pack.issame.tolist() == [True, False]
    assert len(pack) == 2 and pack.path == str(tmp_path / "p.bin")
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temp file


def test_python2_byte_string_pickle_loads_with_bytes_encoding(tmp_path):
    images = [_jpeg(50), b"\xff\xd8\xff\xe0short\x80\x81"]  # > 255 bytes (BINSTRING) and non-ASCII short
    data = _py2_pickle(images, [True])
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(data)  # a plain Python-3 load fails: this is a real Python-2 style pickle
    (tmp_path / "py2.bin").write_bytes(data)
    pack = load_bin(tmp_path / "py2.bin")
    assert pack.images == images and pack.issame.tolist() == [True]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_array_packs(tmp_path, protocol):
    images = [_jpeg(60), _jpeg(70)]
    arrays = [np.frombuffer(b, np.uint8).reshape(-1, 1) for b in images]  # like cv2.imencode
    (tmp_path / "np.bin").write_bytes(pickle.dumps((arrays, [np.bool_(False)]), protocol=protocol))
    pack = load_bin(tmp_path / "np.bin")
    assert pack.images == images and pack.issame.tolist() == [False]
    save_bin(tmp_path / "again.bin", arrays, [False])
    assert load_bin(tmp_path / "again.bin").images == images


@pytest.mark.parametrize("func", [os.system, eval, subprocess.Popen])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, func):
    marker = tmp_path / "pwned"
    args = {os.system: (f"touch {marker}",), eval: (f"open({str(marker)!r}, 'w').close()",),
            subprocess.Popen: (["touch", str(marker)],)}[func]
    payload = ([_jpeg(1), _RunsCommand(func, args)], [True])
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DataError) as err:
        load_bin(path)
    assert str(path) in str(err.value) and "refused" in str(err.value)
    assert func.__name__ in str(err.value)  # names the refused global
    assert not marker.exists()


def test_codecs_encode_is_limited_to_latin1(tmp_path):
    # _codecs.encode is allowed for protocol-2 byte strings, but only with latin-1
    evil = pickle.dumps(([_RunsCommand(_codecs.encode, ("abc", "zlib_codec")), b""], [True]), protocol=2)
    path = tmp_path / "codec.bin"
    path.write_bytes(evil)
    with pytest.raises(DataError, match="not allowed"):
        load_bin(path)


@pytest.mark.parametrize("payload, message", [
    (([b"a", b"b", b"c"], [True]), "3 images for 1 pairs"),
    (([b"a", b"b"], [2]), "issame_list\\[0\\]"),
    (([b"a", 5], [True]), "image 1"),
    (({"bins": 1},), "expected a \\(bins, issame_list\\) pair"),
])
def test_malformed_packs_name_the_problem(tmp_path, payload, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(payload[0] if len(payload) == 1 else payload))
    with pytest.raises(DataError, match=message):
        load_bin(path)


def test_truncated_and_missing_files(tmp_path):
    path = tmp_path / "cut.bin"
    save_bin(path, [_jpeg(1), _jpeg(2)], [True])
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match="cut.bin"):
        load_bin(path)
    with pytest.raises(DataError, match="cannot read"):
        load_bin(tmp_path / "missing.bin")


def test_save_bin_rejects_wrong_counts(tmp_path):
    with pytest.raises(ValueError):
        save_bin(tmp_path / "x.bin", [b"a"], [True])
    assert not (tmp_path / "x.bin").exists()


def test_decode_pack_normalises_resizes_and_flips():
    left = np.zeros((56, 56, 3), np.uint8)
    left[:, :28] = 255
    buf = io.BytesIO()
    Image.fromarray(left).save(buf, format="PNG")
    pack = VerificationPack([_jpeg(0), buf.getvalue()], np.array([True]))
    x = decode_pack(pack)
    assert x.shape == (2, 3, 112, 112) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.full_like(x[0], -1.0), atol=0.02)  # black -> -1
    assert x[1, :, :, :50].min() > 0.99 and x[1, :, :, 62:].max() < -0.99  # resized 56 -> 112
    flipped = decode_pack(pack, flip=True)
    assert torch.equal(flipped, x.flip(-1))


def test_decode_pack_names_an_undecodable_image():
    pack = VerificationPack([_jpeg(0), b"not an image"], np.array([False]), "lfw.bin")
    with pytest.raises(DataError, match=r"lfw.bin \(image 1\)"):
        decode_pack(pack)


def _small(value: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("seed", range(48))
def test_damaged_packs_load_and_decode_or_raise_a_data_error(tmp_path, seed):
    """Seeded damage (bit flips, truncation, zeroed bytes, appended garbage) to a Python-3 and a Python-2
    pack: every outcome is a pack that decodes or a DataError naming the file, never another exception."""
    images, issame = [_small(v, "PNG" if v % 20 else "JPEG") for v in range(0, 80, 10)], [True, False] * 2
    save_bin(tmp_path / "clean.bin", images, issame)
    data = (tmp_path / "clean.bin").read_bytes() if seed % 2 else _py2_pickle(images, issame)
    data = damage_bytes(data, BYTE_KINDS[seed // 2 % 4], np.random.default_rng(seed))
    path = tmp_path / "damaged.bin"
    path.write_bytes(data)
    try:
        pack = load_bin(path)
        check_images(pack)
        assert decode_pack(pack, size=16).shape == (8, 3, 16, 16)
    except DataError as exc:
        assert exc.path == str(path) and "\n" not in str(exc)


def test_check_images_names_a_damaged_image(tmp_path):
    images = [_small(v, "JPEG") for v in (0, 50, 100, 150)]
    images[2] = b"\x00" * 40
    pack = VerificationPack(images, np.array([True, False]), "p.bin")
    with pytest.raises(DataError, match=r"p\.bin \(image 2\): no JPEG or PNG"):
        check_images(pack)


class _Call:
    """Pickles as ``func(*args)``: how a crafted pack asks an allowed global for memory."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _crafted(tmp_path, obj, name="crafted.bin"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


@pytest.mark.parametrize("kind", [bytearray, bytes])
@pytest.mark.parametrize("size", [3_000_000_000, 10**30])
def test_a_pack_asking_for_more_than_its_size_is_refused(tmp_path, kind, size):
    path = _crafted(tmp_path, ([_Call(kind, size)] * 2, [True]))
    assert path.stat().st_size < 100
    with pytest.raises(DataError) as err:
        load_bin(path)
    assert err.value.path == str(path) and err.value.where == f"{kind.__name__}({size})"
    assert err.value.reason == f"refused: asks for {size} bytes, more than the file's own " \
                               f"{path.stat().st_size} bytes"


def test_many_allocations_each_within_the_size_are_refused_together(tmp_path):
    path = _crafted(tmp_path, ([_Call(bytes, 900 + i) for i in range(100)], [True] * 50))
    size = path.stat().st_size
    assert 900 < size < 3000  # each bytes(N) alone fits the file; 100 of them are far more than 4x it
    with pytest.raises(DataError, match="more than 4 times the file's"):
        load_bin(path)


def test_numpy_arrays_asking_for_more_than_the_file_are_refused(tmp_path):
    reconstruct = _RECONSTRUCT()
    huge = _crafted(tmp_path, ([_Call(reconstruct, np.ndarray, (10**12,), b"b")] * 2, [True]), "r.bin")
    with pytest.raises(DataError, match=r"numpy array of shape \(1000000000000,\).*refused: asks for"):
        load_bin(huge)
    direct = _crafted(tmp_path, ([_Call(np.ndarray, (10**6, 1000))] * 2, [True]), "n.bin")
    with pytest.raises(DataError, match=r"numpy.ndarray\(\(1000000, 1000\)\).*refused"):
        load_bin(direct)


def test_small_allocations_within_the_file_size_still_load(tmp_path):
    img = _jpeg(3)
    images = [img, bytearray(img), np.frombuffer(img, np.uint8).copy(), bytes(img)]
    path = _crafted(tmp_path, (images, [True, False]))
    pack = load_bin(path)
    assert pack.images == [img] * 4 and pack.issame.tolist() == [True, False]
