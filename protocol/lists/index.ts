// The lists room's one entry: signed list snapshots and deltas (what the back office publishes), and
// the segmented list file (what a gate keeps). Importers outside protocol/lists/ import from here; the
// files behind it import each other directly. Byte tables: protocol/README.md, "List snapshots and
// deltas". Pure: no I/O, no timers (node:crypto for hashing and Ed25519 only).
//
// A snapshot is laid out so the gate can serve lookups straight from the file bytes (typed-array
// views, no parsing, no V8 heap per entry): card numbers are mapped injectively to 64 bits (exact, no
// hash), every other key is kept in full in a key heap behind a 64-bit hash, so a hash collision is
// resolved by comparing the key bytes and a false accept is impossible.
//
// Not re-exported (room-internal helpers): fail, writeCommon, checkSignature, sameBytes,
// digestGen, digestOf, latin1, SIGNED_BYTES, SIG_AT, MAGIC_SNAPSHOT, MAGIC_DELTA.
//
//   keys.ts            list keys, status byte, card code, key hash
//   header.ts          the 256-byte header, errors as values, the snapshot body's column layout
//   signature.ts       signing keys, Ed25519 signatures, SHA-256, snapshot checks (whole, sliced, streamed)
//   delta.ts           deltas: encode, split, verify, decode
//   snapshot.ts        SnapshotView: lookups straight over snapshot bytes
//   builder.ts         ListBuilder: entries in any order → a snapshot; bucket index; header
//   change-set.ts      changes (or verified deltas) → a sorted change set
//   merge.ts           a snapshot (or a range of it) merged with a change set; segment ranges
//   segmented-file.ts  the segmented list file's header and directory: encode, decode, check
//   run.ts             the one loop that drives the generators above
//   freshness.ts       the signed list freshness statement: latest version and trust-list seq at a time, nonce-bound

export {
  BLOCKED_BIT,
  MAX_KEY_BYTES,
  REMOVED,
  STATUS_BITS,
  bindingOf,
  classifyKey,
  encodeCardKey,
  encodeCardParts,
  hashKey,
  isBlockedByte,
  statusByte,
  type KeyClass,
  type ListStatus,
} from './keys.js';
export {
  HEADER_BYTES,
  LIST_FORMAT_VERSION,
  MAX_SKIP_BITS,
  bucketBitsFor,
  readDeltaHeader,
  readSnapshotHeader,
  snapshotLayout,
  type Checked,
  type DeltaHeader,
  type ListFormatError,
  type SnapshotHeader,
  type SnapshotLayout,
} from './header.js';
export { SnapshotStreamCheck, listKeyId, signList, trustedListKey, verifySnapshot, verifySnapshotGen, type TrustedListKey } from './signature.js';
export { encodeDelta, verifyDeltas, verifyDeltasGen, type DeltaFile, type ListChange } from './delta.js';
export { SnapshotView } from './snapshot.js';
export { ListBuilder, allocBytes, fillBuckets, fillBucketsGen, finishSnapshot, finishSnapshotGen } from './builder.js';
export { changeSet, changeSetFromDeltasGen, changeSetGen } from './change-set.js';
export { mergeChanges, mergeSorted, segmentRange, wholeRange, type EntryRange } from './merge.js';
export {
  DIRECTORY_ENTRY_BYTES,
  SEGMENTED_FORMAT_VERSION,
  SEGMENTED_HEADER_BYTES,
  SEGMENTED_MAGIC,
  SegmentedFileDirectory,
  checkSegment,
  checkSegmentHeader,
  checkSegmentedTotals,
  directoryBytes,
  readDirectory,
  readSegmentedHeader,
  type SegmentedChecked,
  type SegmentedDirectory,
  type SegmentedFileError,
  type SegmentedFileMeta,
} from './segmented-file.js';
export { runToEnd, runUntil } from './run.js';
export {
  FRESHNESS_BYTES,
  FRESHNESS_FORMAT_PARAM,
  FRESHNESS_FORMAT_VERSION,
  FRESHNESS_HEADER,
  FRESHNESS_NONCE_BYTES,
  FRESHNESS_NONCE_PARAM,
  acceptFreshness,
  checkFreshness,
  freshnessHeaderValue,
  nonceFromHex,
  nonceHex,
  readFreshness,
  signFreshness,
  type FreshnessChecked,
  type FreshnessError,
  type FreshnessFormat,
  type FreshnessStatement,
} from './freshness.js';
