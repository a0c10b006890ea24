// The one question we ask pcscd ourselves, to learn that it is serving clients (see protocol/README.md,
// "pcscd readiness"). libpcsclite asks the same thing first in SCardEstablishContext, but blocks the
// calling thread until pcscd answers; we ask without blocking.

/** CMD_VERSION in pcsc-lite's winscard_msg.h. */
export const PCSCD_CMD_VERSION = 0x11;
/** pcscd answers with the version block: i32 major, i32 minor, u32 rv. */
export const PCSCD_VERSION_ANSWER_BYTES = 12;

/** Header { u32 size = 12, u32 command = 0x11 } then { i32 major = 4, i32 minor = 4, u32 rv = 0 }, host byte order. */
export function pcscdVersionQuestion(littleEndian: boolean): Uint8Array {
  const b = new Uint8Array(20);
  const v = new DataView(b.buffer);
  [PCSCD_VERSION_ANSWER_BYTES, PCSCD_CMD_VERSION, 4, 4, 0].forEach((x, i) => v.setUint32(i * 4, x, littleEndian));
  return b;
}
