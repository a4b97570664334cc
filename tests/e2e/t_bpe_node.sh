#!/usr/bin/env bash
# t_bpe_node.sh: a byte-level BPE trained by `cetus prepare --vocab-size` against Hugging
# Face's tokenizers in JavaScript (npm @huggingface/tokenizers under node) reading the same
# tokenizer.json: trains a 1000-token vocabulary on the Python tutorial, then encodes text the
# training never saw (other Python docs, Unicode, whitespace runs, digits, <|endoftext|>,
# invalid UTF-8) with `cetus tokenize --tokenizer` and with the reference, and requires the
# same ids and exact round trips. Also checks meta.json's tokenizer record, the shards'
# vocabulary and the refusals of bad vocabulary sizes and unsupported tokenizer files.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
CETUS=$BUILD/cetus
CORPUS=${CETUS_CORPUS:-/usr/share/doc/python3.11/html/_sources}
DATA=${CETUS_DATA:-data}

fail() { echo "t_bpe_node: FAIL: $*" >&2; exit 1; }
[ -x "$CETUS" ] || fail "$CETUS not built (run make)"
command -v node >/dev/null || fail "node not found (run scripts/setup.sh)"
[ -f "$DATA/npm/huggingface-tokenizers/dist/tokenizers.cjs" ] || fail "$DATA/npm/huggingface-tokenizers missing (run scripts/setup.sh)"
[ -d "$CORPUS/tutorial" ] || fail "corpus $CORPUS missing (run scripts/setup.sh: python3.11-doc)"

tmp=$(mktemp -d /tmp/cetus_bpe_XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Train on the tutorial (about 300 KB).
"$CETUS" prepare --input "$CORPUS/tutorial" --out "$tmp/data" --val-fraction 0.2 --vocab-size 1000 2>"$tmp/prep.log" \
    || { cat "$tmp/prep.log"; fail "prepare --vocab-size failed"; }
grep -E "trained a 1000-token BPE.*MB/s" "$tmp/prep.log" || fail "no training report in the progress output"
tok=$tmp/data/tokenizer.json
[ -f "$tok" ] || fail "no tokenizer.json beside the shards"
node -e '
const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const t = m.tokenizer;
if (t.file !== "tokenizer.json" || t.vocab_size !== 1000 || m.vocab_size !== 1000 || m.eot_token !== 999 ||
    !/^[0-9a-f]{16}$/.test(t.hash) || t.name !== "bpe-1000")
  { console.error("bad meta.json tokenizer record: " + JSON.stringify(m)); process.exit(1); }' "$tmp/data/meta.json" \
    || fail "meta.json does not record the trained tokenizer"

# Held-out text: other directories of the docs, and handcrafted cases.
mapfile -t held < <(find "$CORPUS/howto" -type f -name '*.txt' -size -30001c | LC_ALL=C sort | head -8)
node -e '
const s = [
  "caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u{1F44D}\u{1F3FD} \u{1F468}\u200d\u{1F469}\u200d\u{1F467} e\u0301",
  "runs:    four spaces,\t\ttabs,\n\n\n newlines \r\n crlf \u00a0nbsp\u3000ideographic   trailing   ",
  "digits 1234567890 3.14159 1,000,000 \u0663\u0664\u0665 x\u00b2 0xFF",
  "doc one<|endoftext|>doc two <|endoftext|><|endoftext|> <|endoftext| <|endoftext|>",
  "It\x27s we\x27re they\x27ll I\x27ve \x27d ``code`` --flag=value **bold** {{{ }}} ::",
  "a".repeat(700) + " " + "ab".repeat(300),
].join("\n");
require("fs").writeFileSync(process.argv[1] + "/hand.txt", s);' "$tmp"
printf 'bad \xff\xfe utf-8 \xc3 caf\xc3\xa9 \xe2\x82' >"$tmp/invalid.txt"
inputs=("${held[@]}" "$tmp/hand.txt" "$tmp/invalid.txt")
[ "${#held[@]}" -ge 4 ] || fail "too few held-out files under $CORPUS/howto"

node tests/tools/bpe_ref.js encode "$tok" "${inputs[@]}" >"$tmp/ref.ids"
"$CETUS" tokenize --tokenizer "$tok" "${inputs[@]}" >"$tmp/ours.ids"
paste -d '\t' "$tmp/ref.ids" "$tmp/ours.ids" | awk -F '\t' '
{ n = split($1, r, " "); m = split($2, o, " "); total += n; bad = 0
  for (i = 1; i <= (n > m ? n : m); i++) if (r[i] != o[i]) { if (!bad) printf "MISMATCH input %d at id %d: ref %s cetus %s\n", NR, i, r[i], o[i]; bad++ }
  mismatches += bad }
END { printf "compared %d reference ids in %d held-out inputs: %d mismatches\n", total, NR, mismatches; exit mismatches > 0 }' \
    || fail "ids differ from @huggingface/tokenizers"
grep -qw 999 <(sed -n "$((${#held[@]} + 1))p" "$tmp/ours.ids") || fail "<|endoftext|> did not encode to id 999"

# Round trips: cetus decodes its ids to the text; the reference decodes them to the same text.
cat "${held[@]}" "$tmp/hand.txt" >"$tmp/all.txt"
"$CETUS" tokenize --tokenizer "$tok" "$tmp/all.txt" >"$tmp/all.ids"
"$CETUS" tokenize --tokenizer "$tok" --decode "$tmp/all.ids" >"$tmp/all.back"
cmp "$tmp/all.txt" "$tmp/all.back" || fail "decode(encode(text)) differs from the text"
node tests/tools/bpe_ref.js decode "$tok" "$tmp/all.ids" >"$tmp/all.ref"
cmp "$tmp/all.txt" "$tmp/all.ref" || fail "the reference decodes cetus's ids to other text"
echo "round trips: exact"

# Bad input: vocabulary sizes out of range, a tokenizer.json of another model type.
for v in 256 16777217 x; do
    if "$CETUS" prepare --input "$CORPUS/tutorial" --out "$tmp/bad" --vocab-size "$v" 2>"$tmp/err"; then fail "--vocab-size $v accepted"; fi
    grep -q "vocab-size" "$tmp/err" || fail "--vocab-size $v: unclear error: $(cat "$tmp/err")"
done
[ ! -e "$tmp/bad" ] || fail "a refused --vocab-size left $tmp/bad behind"
node -e 'const fs = require("fs"); const j = JSON.parse(fs.readFileSync(process.argv[1])); j.model.type = "WordPiece";
fs.writeFileSync(process.argv[2], JSON.stringify(j));' "$tok" "$tmp/wp.json"
if echo hi | "$CETUS" tokenize --tokenizer "$tmp/wp.json" 2>"$tmp/err"; then fail "a WordPiece tokenizer.json was accepted"; fi
grep -q "wp.json: model.type WordPiece is not supported" "$tmp/err" || fail "unclear error: $(cat "$tmp/err")"
echo "t_bpe_node: ok"
