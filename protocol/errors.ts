// One error class for the runtime, with a code per failure and the context attached (in the style of
// zwave-js's ZWaveError + ZWaveErrorCodes): callers branch on `code`, never on message text.

export const GateErrorCode = {
  /** A config file or section is invalid; the message names the field and why. */
  Config: 'config',
  /** A list file is missing, damaged or not signed by a trusted key. */
  ListFile: 'list-file',
  /** The journal cannot make records durable (disk full, I/O error, closed). */
  JournalUnavailable: 'journal-unavailable',
  /** A barrier command could not be encoded into a frame. */
  FrameEncode: 'frame-encode',
  /** An HTTP request was malformed or refused (dashboards, back office). */
  BadRequest: 'bad-request',
  /** A peer (back office, card, board) answered with something we cannot use. */
  BadAnswer: 'bad-answer',
  /** A wait ran out. */
  Timeout: 'timeout',
  /** A card was pulled or replaced mid-exchange. */
  CardGone: 'card-gone',
  /** A lane recording is truncated, tampered with, out of order or not a recording (context: problem, file, offset). */
  RecordingDamaged: 'recording-damaged',
  /** A lane recording's key is missing, unreadable or not the one it was recorded with. */
  RecordingKey: 'recording-key',
} as const;
export type GateErrorCode = (typeof GateErrorCode)[keyof typeof GateErrorCode];

export class GateError extends Error {
  constructor(
    message: string,
    readonly code: GateErrorCode,
    /** What a technician needs to act: the field, file, port, command. */
    readonly context: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'GateError';
  }
}

export function isGateError(e: unknown, code?: GateErrorCode): e is GateError {
  return e instanceof GateError && (code === undefined || e.code === code);
}
