#!/usr/bin/env bash
# t_tokenizer_node.sh: cetus's GPT-2 tokenizer against the reference JavaScript encoder (npm
# gpt-3-encoder under node), token for token, on a deterministic ~2 MB selection of the
# Python docs corpus plus handcrafted Unicode edge cases, long words and invalid UTF-8; then
# checks that decoding round-trips byte for byte. Needs $BUILD/cetus (make), node and
# scripts/setup.sh's data. Exits 0 only when every id matches and every round trip is exact.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
CETUS=$BUILD/cetus
CORPUS=${CETUS_CORPUS:-/usr/share/doc/python3.11/html/_sources}
DATA=${CETUS_DATA:-data}

fail() { echo "t_tokenizer_node: FAIL: $*" >&2; exit 1; }
[ -x "$CETUS" ] || fail "$CETUS not built (run make)"
command -v node >/dev/null || fail "node not found (run scripts/setup.sh)"
[ -f "$DATA/npm/gpt-3-encoder/Encoder.js" ] || fail "$DATA/npm/gpt-3-encoder missing (run scripts/setup.sh)"
[ -d "$CORPUS" ] || fail "corpus $CORPUS missing (run scripts/setup.sh: python3.11-doc)"

tmp=$(mktemp -d /tmp/cetus_tok_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }

# Corpus selection: every second file (sorted by name) of those up to 40,000 bytes. The
# reference encoder grows its output array by concatenation, quadratic in a file's length,
# so small files keep node's share of the run to seconds.
mapfile -t files < <(find "$CORPUS" -type f -name '*.txt' -size -40001c | LC_ALL=C sort | awk 'NR % 2 == 1')
[ "${#files[@]}" -gt 0 ] || fail "no corpus files under $CORPUS"

# Handcrafted edge cases (written with JavaScript escapes to keep invisible characters visible).
node -e '
const fs = require("fs");
const long = "a".repeat(3000) + " ".repeat(2000) + "9".repeat(500) + "\t".repeat(300) + "x";
const s = [
  "Hello world! It\x27s, we\x27re, they\x27ll, I\x27ve, I\x27m, he\x27d, don\x27t; IT\x27S WE\x27RE \x27s \x27t \x27re \x27ve \x27m \x27ll \x27d \x27x",
  "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m Stra\u00dfe \u00c9COLE \u00f1 \u0130stanbul",
  "e\u0301 a\u0308 o\u0302\u0323 combining: Z\u0351\u0364\u0350a\u0300\u0301l\u0336g\u0337o \u0301lead",
  "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3001\u4e2d\u6587\u6587\u672c\u3002 \ud55c\uad6d\uc5b4 \u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea \u0939\u093f\u0928\u094d\u0926\u0940 \u0e44\u0e17\u0e22",
  "emoji: \u{1F44D} \u{1F44D}\u{1F3FD} \u{1F468}\u200d\u{1F469}\u200d\u{1F467}\u200d\u{1F466} \u{1F389}\u{1F389} \u2764\ufe0f \u{1F1E9}\u{1F1EA} \u{1F600}x",
  "nbsp:a\u00a0b \u00a0\u00a0c, narrow\u202fnbsp, ideographic\u3000space, BOM\ufeffmid, NEL\u0085x, LS\u2028PS\u2029end, thin\u2009sp, zero\u200bwidth, ogham\u1680m, vt\x0bff\x0c, mongolian\u180esep",
  "runs:    four spaces,\t\ttabs,\n\n\nnewlines, \r\n crlf, mixed \t \n \t  x\n   \n\n  indented",
  "digits 12345678901234567890123456789012345678901234567890 3.14159 1,000,000 \u0663\u0664\u0665 \u216b\u2163 \u00bd x\u00b2",
  "punct ... !!! ??? --- === *** ### @@@ $$$ %%% ^^^ &&& ((( ))) {{{ }}} [[[ ]]] <<< >>> ``` \u2014\u2013 \u201cq\u201d",
  "comma runs \",,\" \x27],,\" \x27),,\" \",,,,,,,,,\" },,{\" \x27,,\x27 \".,,\" [1,,2] {\"a\":\",\",\",\"b\"} \",},{\" \":\",\",\"",
  "<|endoftext|> is ordinary text here <|endoftext|>",
  "Unicode 15-17: \u{31350}\u{31351} a\u{31350}b (\u{2EBF0}) x\u{1E030}y 1\u{1E4F0}2 (\u{1E4F1}) \u{11F04}\u{11F05}. \u{31350}\x27s \u{2EBF0}\x27ll 5\u{1E4F0}\x27d",
  "surrogate-free astral: \u{10000}\u{1D400}\u{1D7CE} \u{E0001}tag",
  long,
  "end with spaces   "
].join("\n");
fs.writeFileSync(process.argv[1] + "/handcrafted.txt", s);
// long words with many distinct merges (the heap-ordered BPE path): pseudo-random letters, CJK
let x = 12345;
const rnd = () => { x = (x * 1103515245 + 12345) % 2147483648; return x; };
let lw = "";
for (let i = 0; i < 4000; i++) lw += String.fromCharCode(97 + rnd() % 26);
lw += " ";
for (let i = 0; i < 1500; i++) lw += String.fromCodePoint(0x4e00 + rnd() % 20000);
fs.writeFileSync(process.argv[1] + "/longwords.txt", lw);
fs.writeFileSync(process.argv[1] + "/short.txt", "Hello world");
fs.writeFileSync(process.argv[1] + "/empty.txt", "");
' "$tmp"
# Invalid UTF-8: stray continuation bytes, overlong forms, surrogates, truncated sequences.
printf '\xef\xbb\xbfa\xff\xc0\x80b\xed\xa0\x80c\xf0\x9f\x98d\xe0\x80e\xf4\x90\x80\x80f \xc3\n caf\xc3\xa9\xe2\x82' >"$tmp/invalid.txt"
extra=("$tmp/handcrafted.txt" "$tmp/longwords.txt" "$tmp/short.txt" "$tmp/empty.txt" "$tmp/invalid.txt")
inputs=("${files[@]}" "${extra[@]}")
bytes=$(cat "${inputs[@]}" | wc -c)
echo "inputs: ${#files[@]} corpus files + ${#extra[@]} handcrafted, $bytes bytes"
[ "$bytes" -ge 1000000 ] || fail "selection has only $bytes bytes, expected at least 1 MB"

t0=$(now); node tests/tools/tokenizer_ref.js encode "${inputs[@]}" >"$tmp/ref.ids"; t1=$(now)
"$CETUS" tokenize "${inputs[@]}" >"$tmp/ours.ids"; t2=$(now)
"$CETUS" tokenize --count "${inputs[@]}" >/dev/null 2>"$tmp/speed.txt"
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "reference (node): %.2f s; cetus tokenize (whole process: load, encode, print): %.2f s\n", b - a, c - b }'
cat "$tmp/speed.txt"

# Token-for-token comparison, one line per input; a length difference counts each extra id.
paste -d '\t' "$tmp/ref.ids" "$tmp/ours.ids" | awk -F '\t' -v names="${inputs[*]}" '
BEGIN { split(names, file, " ") }
{
    n = split($1, r, " "); m = split($2, o, " "); total += n
    bad = 0; first = 0
    for (i = 1; i <= (n > m ? n : m); i++) if (r[i] != o[i]) { bad++; if (!first) first = i }
    if (bad) { printf "MISMATCH %s: %d of %d ids differ, first at %d: ref %s cetus %s\n", file[NR], bad, n, first, r[first], o[first] }
    mismatches += bad
}
END { printf "compared %d reference ids in %d inputs: %d mismatches\n", total, NR, mismatches; exit mismatches > 0 }' \
    || fail "ids differ from the reference"
[ "$(wc -l <"$tmp/ref.ids")" -eq "${#inputs[@]}" ] || fail "reference produced the wrong number of lines"

# Round trips: decode(encode(x)) == x for valid UTF-8, byte for byte.
cat "${files[@]}" "$tmp/handcrafted.txt" "$tmp/longwords.txt" >"$tmp/all.txt"
"$CETUS" tokenize "$tmp/all.txt" >"$tmp/all.ids"
"$CETUS" tokenize --decode "$tmp/all.ids" >"$tmp/all.back"
cmp "$tmp/all.txt" "$tmp/all.back" || fail "decode(encode(text)) differs from the text"
# the reference decodes cetus's ids of the handcrafted text to the same bytes
"$CETUS" tokenize "$tmp/handcrafted.txt" >"$tmp/hand.ids"
node tests/tools/tokenizer_ref.js decode "$tmp/hand.ids" >"$tmp/hand.back"
cmp "$tmp/handcrafted.txt" "$tmp/hand.back" || fail "reference decode of cetus ids differs"
# invalid UTF-8 decodes to node's U+FFFD-substituted text
"$CETUS" tokenize "$tmp/invalid.txt" | "$CETUS" tokenize --decode >"$tmp/invalid.back"
node -e 'process.stdout.write(require("fs").readFileSync(process.argv[1], "utf8"))' "$tmp/invalid.txt" >"$tmp/invalid.node"
cmp "$tmp/invalid.node" "$tmp/invalid.back" || fail "invalid UTF-8 does not decode to node's U+FFFD substitution"
echo "round trips: exact"
echo "t_tokenizer_node: ok"
