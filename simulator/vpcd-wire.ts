// The vpcd socket protocol (vsmartcard's virtual reader): each message is a 2-byte big-endian length and
// its bytes; a 1-byte message is a control (0x04: send the ATR), anything longer a command APDU. The
// virtual card and the virtual PSAM both speak it.
import type { Socket } from 'node:net';

/** Write one vpcd message. */
export function vpcdSend(sock: Socket, b: Uint8Array): void {
  const frame = Buffer.alloc(2 + b.length);
  frame.writeUInt16BE(b.length, 0);
  frame.set(b, 2);
  sock.write(frame);
}

/** Call `onMessage` with every whole message that arrives on `sock`, however the bytes are split. */
export function onVpcdMessages(sock: Socket, onMessage: (msg: Uint8Array) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      const msg = Uint8Array.from(buf.subarray(2, 2 + len));
      buf = buf.subarray(2 + len);
      onMessage(msg);
    }
  });
}
