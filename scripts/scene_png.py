"""scene_png.py: writes scene I of a scene shard (`cetus prepare --scenes`) as an 8-bit
grayscale PNG and prints its caption's record (labels, cells), with the standard library
only. For looking at the data and for the README's sample image.

usage: /usr/bin/python3 scripts/scene_png.py SHARD I OUT.png
"""
import struct
import sys
import zlib


def read_scene(path, i):
    with open(path, "rb") as f:
        head = f.read(48)
        magic, version, h, w, max_tokens, vocab, _, count, _ = struct.unpack("<8sIIIIIIQQ", head)
        if magic != b"CETUSIMG" or version != 1:
            sys.exit(f"{path}: not a scene shard")
        if not 0 <= i < count:
            sys.exit(f"{path}: scene {i} is outside 0..{count - 1}")
        record = h * w + 2 + 2 * max_tokens + 1 + 4 + 4
        f.seek(48 + i * record)
        rec = f.read(record)
    pixels = rec[:h * w]
    n = struct.unpack_from("<H", rec, h * w)[0]
    tokens = struct.unpack_from(f"<{n}H", rec, h * w + 2)
    at = h * w + 2 + 2 * max_tokens
    items = rec[at]
    return w, h, pixels, tokens, list(rec[at + 1:at + 1 + items]), list(rec[at + 5:at + 5 + items])


def write_png(path, w, h, pixels):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + pixels[y * w:(y + 1) * w] for y in range(h))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    w, h, pixels, tokens, labels, cells = read_scene(sys.argv[1], int(sys.argv[2]))
    write_png(sys.argv[3], w, h, pixels)
    print(f"{sys.argv[3]}: {w}x{h}; labels {labels} (0-9 digits, 10-19 clothes) in cells {cells}; "
          f"{len(tokens)} caption tokens")


if __name__ == "__main__":
    main()
