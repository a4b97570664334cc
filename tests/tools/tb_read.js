// tb_read.js: an independent reader of TensorBoard event files, for t_tensorboard.sh.
//
//   NODE_PATH=data/npm node tests/tools/tb_read.js [--prefix] FILE...
//
// Reads each file as TFRecords, checking every record's length and data against their
// masked CRC-32C (its own implementation below, not cetus's), decodes each record with
// protobufjs as TensorBoard's Event message (tb_event.proto: the field numbers of
// TensorBoard's event.proto and summary.proto), and prints one line per scalar,
// "STEP TAG VALUE". It fails (exit 1, the reason on stderr) on a bad checksum, a file that
// ends inside a record, a first record that is not file_version "brain.Event:2", a later one
// that is not a summary of simple values, a step going backwards within a file, or a (tag,
// step) seen twice over all the files. With --prefix a damaged file is read up to its first
// bad record, which is reported on stderr ("damaged: FILE at byte N"), and the rest skipped.
"use strict";
const fs = require("fs");
const path = require("path");
const protobuf = require("protobufjs");

const root = protobuf.loadSync(path.join(__dirname, "tb_event.proto"));
const Event = root.lookupType("tensorboard.Event");

const TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c >>> 0;
}
function crc32c(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function masked(buf) {
  const c = crc32c(buf);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

function die(msg) {
  process.stderr.write("tb_read: " + msg + "\n");
  process.exit(1);
}

// The records of one file: [{at, data}], up to the first bad one when prefix is set.
function records(file, prefix) {
  const buf = fs.readFileSync(file);
  const out = [];
  for (let at = 0; at < buf.length; ) {
    let bad = null;
    if (buf.length - at < 16) bad = "the file ends inside a record header";
    else if (masked(buf.subarray(at, at + 8)) !== buf.readUInt32LE(at + 8)) bad = "length checksum";
    const len = bad ? 0 : Number(buf.readBigUInt64LE(at));
    if (!bad && len > buf.length - at - 16) bad = "the file ends inside a record";
    if (!bad && masked(buf.subarray(at + 12, at + 12 + len)) !== buf.readUInt32LE(at + 12 + len))
      bad = "data checksum";
    if (bad) {
      if (!prefix) die(`${file}: record at byte ${at}: ${bad}`);
      process.stderr.write(`damaged: ${file} at byte ${at} (${bad})\n`);
      break;
    }
    out.push({ at, data: buf.subarray(at + 12, at + 12 + len) });
    at += 16 + len;
  }
  return out;
}

function main() {
  const args = process.argv.slice(2);
  const prefix = args[0] === "--prefix";
  const files = prefix ? args.slice(1) : args;
  if (!files.length) die("usage: tb_read.js [--prefix] FILE...");
  const seen = new Set();
  const now = Date.now() / 1000;
  const lines = [];
  for (const file of files) {
    let last = -1;
    records(file, prefix).forEach((r, i) => {
      const e = Event.toObject(Event.decode(r.data), { longs: Number, oneofs: true });
      const where = `${file}: record at byte ${r.at}`;
      if (!(e.wallTime > 1.5e9 && e.wallTime < now + 60)) die(`${where}: wall_time ${e.wallTime}`);
      if (i === 0) {
        if (e.what !== "fileVersion" || e.fileVersion !== "brain.Event:2") die(`${where}: not file_version brain.Event:2`);
        return;
      }
      if (e.what !== "summary" || !e.summary.value || !e.summary.value.length) die(`${where}: not a summary`);
      const step = e.step || 0;
      if (step < last) die(`${where}: step ${step} after step ${last}`);
      last = step;
      for (const v of e.summary.value) {
        if (v.value !== "simpleValue") die(`${where}: ${v.tag} is not a simple value`);
        const key = v.tag + "@" + step;
        if (seen.has(key)) die(`${where}: ${v.tag} at step ${step} twice`);
        seen.add(key);
        lines.push(`${step} ${v.tag} ${v.simpleValue}`);
      }
    });
  }
  process.stdout.write(lines.join("\n") + (lines.length ? "\n" : ""));
}

main();
