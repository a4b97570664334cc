# t_prepare_formats.sh: `cetus prepare` on the corpus formats people have: JSONL with a custom
# --text-field, gzip-compressed files, standard input. Each document's ids equal `cetus
# tokenize` of its text; gzip and plain give identical shards; 1 and 2 threads identical
# shards; malformed lines are refused as FILE:LINE with nothing written (a fresh output
# directory not even made, an earlier output untouched) or skipped and counted with
# --skip-bad; a truncated gzip stream, an empty split and bad options are refused; the
# prepared data trains.
source tests/e2e/lib.sh
export CETUS_DATA=$(realpath "${CETUS_DATA:-data}") # the BPE files, from the scratch directory
cd "$SCRATCH"
py=/usr/bin/python3

# six small distinct documents as text files, and the same texts as JSONL lines ("content")
mkdir text
$py - <<'EOF'
import json
docs = ["Hello world, this is document %d.\n\nIt has two  paragraphs\tand a tab.\n" % i for i in range(5)]
docs.append("caf\u00e9 \u2014 na\u00efve \U0001F600 and \"quotes\"\nlast line without newline")
with open("docs.jsonl", "w") as f:
    for i, d in enumerate(docs):
        open("text/doc_%d.txt" % i, "w").write(d)
        f.write(json.dumps({"id": i, "content": d}) + "\n")
        if i == 2:
            f.write("   \n")  # blank lines are skipped
EOF
"$CETUS" tokenize text/doc_*.txt >want.txt

# check_ids OUT: the documents of OUT's train and val shards, each after an EOT, are the
# lines of want.txt, each split in input order
check_ids() {
    $py - "$1" <<'EOF' || fail "$1: the ids differ from cetus tokenize"
import struct, sys
def docs(path):
    b = open(path, "rb").read()
    assert b[:8] == b"CETUSTOK"
    ids = list(struct.unpack("<%dH" % ((len(b) - 40) // 2), b[40:]))
    out = []
    for t in ids:
        if t == 50256: out.append([])
        else: out[-1].append(t)
    return out
want = [[int(x) for x in l.split()] for l in open("want.txt")]
train, val = docs(sys.argv[1] + "/train_000.bin"), docs(sys.argv[1] + "/val_000.bin")
assert train and val, (len(train), len(val))
for w in want:
    if train and train[0] == w: train.pop(0)
    elif val and val[0] == w: val.pop(0)
    else: sys.exit("document %r not next in either split" % w[:8])
assert not train and not val
EOF
    echo "ok: $1: every document's ids equal cetus tokenize of its text"
}
prep() { # OUT ARGS...: prepare into OUT, one thread, every space kept
    local out=$1; shift
    "$CETUS" prepare --out "$out" --threads 1 --keep-whitespace --val-fraction 0.5 "$@" 2>"$out.log" ||
        fail "prepare $*: $(tail -n 2 "$out.log")"
}

# text files, JSONL with a custom field, the same gzip-compressed, and on standard input
prep t --input text
check_ids t
prep j --input docs.jsonl --text-field content
check_ids j
grep -q '"text_field":	"content"' j/meta.json || fail "meta.json lacks the text field"
gzip -k docs.jsonl
prep g --input docs.jsonl.gz --text-field content
for f in train_000.bin val_000.bin; do cmp j/$f g/$f || fail "gzip-compressed JSONL gives other shards"; done
echo "ok: JSONL and gzip-compressed JSONL give identical shards"
prep s --input - --format jsonl --text-field content <docs.jsonl.gz
check_ids s
grep -q '"inputs":	\["-"\]' s/meta.json || fail "meta.json does not name standard input"
echo "ok: gzip-compressed JSONL on standard input"
prep st --input - --input text <text/doc_5.txt
grep -q 'train 3 documents.*val 4 documents' st.log || fail "text on standard input is not one document: $(cat st.log)"
echo "ok: text on standard input is one document"

# malformed lines: refused with FILE:LINE and nothing written, or skipped and counted
{
    head -n 2 docs.jsonl
    echo '{"content": 7}'
    echo '[1, 2]'
    echo 'not json'
    tail -n +3 docs.jsonl
} >bad.jsonl
expect_error 'bad.jsonl:3: field "content" is a number, expected a string' \
    "$CETUS" prepare --input bad.jsonl --text-field content --out fresh --val-fraction 0.5
[ ! -e fresh ] || fail "a refused run left $(ls -A fresh)"
cp -a j j-before
expect_error 'docs.jsonl:1: no field "text"' "$CETUS" prepare --input docs.jsonl --out j --val-fraction 0.5
diff -r j-before j >/dev/null || fail "a refused run changed the earlier output: $(diff -rq j-before j)"
echo "ok: a refused run leaves a fresh output directory unmade and an earlier one untouched"
prep k --input bad.jsonl --text-field content --skip-bad --val-fraction 0.7
check_ids k
grep -q '"skipped_lines":	3' k/meta.json || fail "meta.json does not count 3 skipped lines"
grep -q 'skipping bad.jsonl:5: not valid JSON' k.log && grep -q 'skipped 3 malformed line' k.log ||
    fail "the skipped lines are not reported: $(cat k.log)"
echo "ok: --skip-bad skips and counts 3 malformed lines"

# a truncated gzip stream, a split left empty, bad options
head -c 60 docs.jsonl.gz >cut.jsonl.gz
expect_error "reading cut.jsonl.gz: the gzip stream is truncated" \
    "$CETUS" prepare --input cut.jsonl.gz --text-field content --out fresh
head -n 1 docs.jsonl >one.jsonl
expect_error "1 training and 0 validation documents: each split needs at least one" \
    "$CETUS" prepare --input one.jsonl --text-field content --out fresh
expect_error "bad value 'xml' for --format" "$CETUS" prepare --format xml
expect_error "standard input (-) is given as an input twice" "$CETUS" prepare --input - --input - </dev/null
[ ! -e fresh ] || fail "a refused run left $(ls -A fresh)"

# 1 and 2 threads: identical shards over several batches and shards (600 lines of the Python docs)
find /usr/share/doc/python3.11/html/_sources/tutorial -name '*.rst.txt' | sort | head -n 6 |
    xargs cat | $py -c '
import json, sys
paras = [p for p in sys.stdin.read().split("\n\n") if p.strip()]
for i in range(600): print(json.dumps({"text": paras[i % len(paras)] + " (%d)" % i}))' >big.jsonl
for n in 1 2; do
    "$CETUS" prepare --input big.jsonl --out big$n --threads $n --shard-tokens 20000 2>/dev/null ||
        fail "prepare --threads $n failed"
done
diff -r big1 big2 >/dev/null || fail "1 and 2 threads differ: $(diff -rq big1 big2)"
echo "ok: 1 and 2 threads give identical shards ($(ls big1 | wc -l) files)"

# the prepared data trains
"$CETUS" train $TINY data.dir=big2 run.dir=run train.steps=2 train.eval_interval=2 \
    train.sample_interval=0 >train.log 2>&1 || fail "training on JSONL data: $(tail -n 3 train.log)"
grep -q '"step": 2' run/metrics.jsonl || fail "no step 2 in the metrics"
echo "ok: the prepared JSONL data trains"
