// tokenizer_ref.js: runs the reference GPT-2 encoder (the npm package gpt-3-encoder, as
// fetched by scripts/setup.sh) so tests can compare cetus's ids with it.
//   node tests/tools/tokenizer_ref.js encode FILE...   one line of space-separated ids per file
//   node tests/tools/tokenizer_ref.js decode FILE      ids (whitespace-separated) -> text on stdout
// Files are read as UTF-8 the way node does (invalid sequences become U+FFFD). An id the
// reference cannot produce (undefined) is printed as -1 so any comparison fails.
'use strict';
const fs = require('fs');
const path = require('path');

const dataDir = process.env.CETUS_DATA || 'data';
const encoder = require(path.resolve(dataDir, 'npm', 'gpt-3-encoder'));

function main(argv) {
  const [cmd, ...files] = argv;
  if (cmd === 'encode' && files.length > 0) {
    const out = [];
    for (const f of files) {
      const ids = encoder.encode(fs.readFileSync(f, 'utf8'));
      out.push(ids.map(x => (Number.isInteger(x) ? x : -1)).join(' '));
    }
    process.stdout.write(out.join('\n') + '\n');
    return 0;
  }
  if (cmd === 'decode' && files.length === 1) {
    const text = fs.readFileSync(files[0], 'utf8').trim();
    const ids = text.length ? text.split(/\s+/).map(Number) : [];
    process.stdout.write(encoder.decode(ids));
    return 0;
  }
  process.stderr.write('usage: node tests/tools/tokenizer_ref.js encode FILE... | decode FILE\n');
  return 2;
}

process.exitCode = main(process.argv.slice(2));
