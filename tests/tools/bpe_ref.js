// bpe_ref.js: runs Hugging Face's tokenizers in JavaScript (the npm package
// @huggingface/tokenizers, as fetched by scripts/setup.sh) on a tokenizer.json, so tests can
// compare cetus's ids for the same file with an independent implementation.
//   node tests/tools/bpe_ref.js encode TOKENIZER_JSON FILE...   one line of ids per file
//   node tests/tools/bpe_ref.js decode TOKENIZER_JSON FILE      ids (whitespace-separated) -> text
// Files are read as UTF-8 the way node does (invalid sequences become U+FFFD).
'use strict';
const fs = require('fs');
const path = require('path');

const dataDir = process.env.CETUS_DATA || 'data';
const { Tokenizer } = require(path.resolve(dataDir, 'npm', 'huggingface-tokenizers', 'dist', 'tokenizers.cjs'));

function main(argv) {
  const [cmd, json, ...files] = argv;
  if ((cmd !== 'encode' && cmd !== 'decode') || !json || files.length === 0) {
    process.stderr.write('usage: node tests/tools/bpe_ref.js encode|decode TOKENIZER_JSON FILE...\n');
    return 2;
  }
  // no cleanup of spaces before punctuation when decoding: cetus returns the exact bytes
  const tok = new Tokenizer(JSON.parse(fs.readFileSync(json, 'utf8')), { clean_up_tokenization_spaces: false });
  if (cmd === 'encode') {
    const out = files.map(f => tok.encode(fs.readFileSync(f, 'utf8'), { add_special_tokens: false }).ids.join(' '));
    process.stdout.write(out.join('\n') + '\n');
    return 0;
  }
  const text = fs.readFileSync(files[0], 'utf8').trim();
  const ids = text.length ? text.split(/\s+/).map(Number) : [];
  process.stdout.write(ids.length ? tok.decode(ids) : '');
  return 0;
}

process.exitCode = main(process.argv.slice(2));
