# t_generate_image.sh: `cetus generate --image` captions PNG and PGM files of any size with an
# image-prefix checkpoint (one line, greedy by default, so repeatable), and refuses clearly a
# missing, truncated, foreign or empty image, a text-only checkpoint, and --image with --prompt.
source tests/e2e/lib.sh
make_corpus "$SCRATCH"
D="data.dir=$SCRATCH/data train.sample_interval=0 train.steps=2"
"$CETUS" train $TINY $D image.patch=8 image.height=16 image.width=16 model.seq_len=32 \
    run.dir="$SCRATCH/run" >"$SCRATCH/train.log" 2>&1 || fail "image model: $(tail -n 3 "$SCRATCH/train.log")"
"$CETUS" train $TINY $D run.dir="$SCRATCH/text" >"$SCRATCH/text.log" 2>&1 || fail "text model: $(tail -n 3 "$SCRATCH/text.log")"

# a 30 x 20 gradient as binary PGM (printf) and as 8-bit gray PNG (standard library only)
pgm="$SCRATCH/img.pgm" png="$SCRATCH/img.png"
{ printf 'P5\n30 20\n255\n'; for y in $(seq 0 19); do for x in $(seq 0 29); do printf "\\$(printf '%03o' $(( (x * 8 + y * 4) % 256 )))"; done; done; } >"$pgm"
[ "$(stat -c %s "$pgm")" = $((13 + 600)) ] || fail "the test PGM has $(stat -c %s "$pgm") bytes"
/usr/bin/python3 - "$png" <<'PY'
import struct, sys, zlib
w, h = 30, 20
raw = b"".join(b"\0" + bytes((x * 8 + y * 4) % 256 for x in range(w)) for y in range(h))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
open(sys.argv[1], "wb").write(png)
PY

caption() { # FILE [extra args]: one line of caption on stdout
    local file=$1; shift
    "$CETUS" generate --ckpt "$SCRATCH/run" --image "$file" --tokens 12 "$@" >"$SCRATCH/out.txt" 2>"$SCRATCH/err.txt" ||
        fail "generate --image $file: $(cat "$SCRATCH/err.txt")"
    [ "$(wc -l <"$SCRATCH/out.txt")" = 1 ] || fail "generate --image $file printed $(wc -l <"$SCRATCH/out.txt") lines"
    cat "$SCRATCH/out.txt"
}
a=$(caption "$pgm"); b=$(caption "$png"); again=$(caption "$pgm")
echo "PGM caption: '$a'"
echo "PNG caption: '$b'"
[ "$a" = "$again" ] || fail "greedy captions of one image differ: '$a' vs '$again'"
[ "$a" = "$b" ] || fail "the same pixels as PGM and PNG give different captions: '$a' vs '$b'"
caption "$png" --temperature 1 --top-k 5 --seed 3 >/dev/null

# refusals: each names the file or the problem, exits non-zero
head -c 60 "$png" >"$SCRATCH/short.png"
echo "not an image at all" >"$SCRATCH/text.png"
printf 'P5\n0 0\n255\n' >"$SCRATCH/empty.pgm"
G=("$CETUS" generate --ckpt "$SCRATCH/run" --image)
expect_error "cannot open $SCRATCH/missing.png" "${G[@]}" "$SCRATCH/missing.png"
expect_error "$SCRATCH/short.png is truncated" "${G[@]}" "$SCRATCH/short.png"
expect_error "$SCRATCH/text.png is not an image" "${G[@]}" "$SCRATCH/text.png"
expect_error "$SCRATCH/empty.pgm has zero" "${G[@]}" "$SCRATCH/empty.pgm"
expect_error "has no image input (image.patch = 0)" "$CETUS" generate --ckpt "$SCRATCH/text" --image "$png"
expect_error "--image and --prompt cannot be combined" "${G[@]}" "$png" --prompt "A"
"$CETUS" generate --help | grep -q -- "--image FILE" || fail "--help does not describe --image"
echo "captions print one line for PNG and PGM; bad images and text-only checkpoints are refused"
